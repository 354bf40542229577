import native from './native.js'
import { callNative, invalidArg, shown } from './errors.js'

/** Log levels, most severe first. */
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'trace'

/** One record from tokio-quiche (or quiche, with `QuicSettings.captureQuicheLogs`). */
export interface LogRecord {
  level: LogLevel
  message: string
  /** Structured fields, e.g. `{ error: '...', module: 'tokio_quiche::quic:123' }`. */
  fields: Record<string, string>
}

const LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'trace']

function fieldsOf(pairs: readonly string[]): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const pair of pairs) {
    const eq = pair.indexOf('=')
    fields[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return fields
}

/**
 * Routes tokio-quiche's logs to `logger` at `level` and above (default
 * `info`); `null` turns them off again. Off by default. Records are dropped,
 * never queued without bound, if the logger falls behind, and the logger
 * does not keep the process running. `TOKIO_QUICHE_LOG=debug` (a level) in
 * the environment installs a stderr logger at load time.
 */
export function setLogger(logger: ((record: LogRecord) => void) | null, options: { level?: LogLevel } = {}): void {
  if (logger !== null && typeof logger !== 'function') throw invalidArg('logger', 'expected a function or null')
  const { level = 'info' } = options
  if (!LEVELS.includes(level)) throw invalidArg('options.level', `expected one of ${LEVELS.join(', ')}, got ${shown(level)}`)
  const forward =
    logger &&
    ((raw: { level: string; message: string; fields: string[] }) => {
      try {
        logger({ level: raw.level as LogLevel, message: raw.message, fields: fieldsOf(raw.fields) })
      } catch (err) {
        process.emitWarning(`tokio-quiche logger threw: ${String(err)}`)
      }
    })
  callNative(() => native.setLogger(forward, level))
}

/** The `TOKIO_QUICHE_LOG=<level>` logger: one line per record on stderr. */
export function logFromEnvironment(env: NodeJS.ProcessEnv = process.env): void {
  const level = env.TOKIO_QUICHE_LOG as LogLevel | undefined
  if (!level) return
  if (!LEVELS.includes(level)) {
    process.emitWarning(`TOKIO_QUICHE_LOG=${level} is not one of ${LEVELS.join(', ')}; logging stays off`)
    return
  }
  setLogger(
    (r) => process.stderr.write(`tokio-quiche ${r.level} ${r.message}${Object.entries(r.fields).map(([k, v]) => ` ${k}=${v}`).join('')}\n`),
    { level },
  )
}
