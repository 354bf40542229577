import { TokioQuicheError } from '../errors.js'

/**
 * Exit codes, curl's numbers where curl has one, so scripts written for curl
 * read them the same way.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  badUrl: 3,
  refused: 7,
  httpError: 22,
  write: 23,
  read: 26,
  timeout: 28,
  certificate: 60,
} as const

/** A failure the CLI reports as one line on stderr, then exits with `code`. */
export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message)
  }
}

/** The exit code and one-line message for an error from the package or Node. */
export function classify(err: unknown): CliError {
  if (err instanceof CliError) return err
  if (err instanceof DOMException && err.name === 'TimeoutError') return new CliError(EXIT.timeout, 'timed out')
  if (err instanceof TokioQuicheError) {
    const message = err.message
    if (err.code === 'ERR_TLS_CERT' || err.code === 'ERR_TLS_CERT_REJECTED') {
      return new CliError(EXIT.certificate, `certificate problem: ${message} (pass --ca FILE, or --insecure for a server you run)`)
    }
    // Nothing answers on a closed UDP port: the handshake times out.
    if (/no QUIC handshake within/.test(message)) return new CliError(EXIT.refused, `could not connect: ${message}: nothing answered (no server on that port, or unreachable)`)
    if (err.code === 'ERR_CONNECT' || err.code === 'ERR_INVALID_ADDRESS') return new CliError(EXIT.refused, `could not connect: ${message}`)
    if (err.code === 'ERR_INVALID_ARG' || err.code === 'ERR_INVALID_HEADER') return new CliError(EXIT.usage, message)
    return new CliError(EXIT.failure, message)
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return new CliError(EXIT.read, (err as Error).message)
  return new CliError(EXIT.failure, err instanceof Error ? err.message : String(err))
}
