#!/usr/bin/env node
/**
 * `tokio-quiche`, the package's command line: `serve [dir]` (static files
 * over HTTP/3) and `get <url>` (curl-like). `docs/cli.md` lists the options
 * and exit codes.
 */
import { createHash, createPublicKey } from 'node:crypto'
import { readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { serve } from '../serve.js'
import { writeSelfSignedCertificate } from '../tls.js'
import { CliError, EXIT, classify } from './exit.js'
import { get } from './get.js'
import { staticFiles } from './static.js'

const USAGE = `usage:
  tokio-quiche serve [dir] [--port N] [--host H] [--cert FILE --key FILE]
                     [--max-connections N] [--max-connections-per-source N]
  tokio-quiche get <url> [-i] [-o FILE] [-X METHOD] [-d DATA|@FILE] [--data-binary DATA|@FILE]
                   [-H 'name: value']... [--ca FILE] [--insecure] [--timeout SECONDS] [--fail] [-v]
                   [--progress|--no-progress]
  tokio-quiche --help | --version
`

function version(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}

/** The SPKI pin of a PEM certificate: base64 SHA-256 of its SubjectPublicKeyInfo (Chromium's `--ignore-certificate-errors-spki-list`). */
function spkiPin(certPem: string): string {
  const spki = createPublicKey(certPem).export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(spki).digest('base64')
}

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>) {
  try {
    return parseArgs({ args, options, allowPositionals: true, allowNegative: true })
  } catch (err) {
    throw new CliError(EXIT.usage, `${(err as Error).message}\n${USAGE}`)
  }
}

function number(value: unknown, flag: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined
  const n = Number(value)
  if (typeof value !== 'string' || !Number.isFinite(n) || n < min || n > max) throw new CliError(EXIT.usage, `${flag}: expected a number from ${min} to ${max}, got ${String(value)}`)
  return n
}

/** A whole number of connections, 1 or more, or `unlimited`. */
function count(value: unknown, flag: string): number | undefined {
  if (value === 'unlimited') return Infinity
  const n = number(value, flag, 1, Number.MAX_SAFE_INTEGER)
  if (n !== undefined && !Number.isInteger(n)) throw new CliError(EXIT.usage, `${flag}: expected a whole number or unlimited, got ${String(value)}`)
  return n
}

async function serveCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    port: { type: 'string', short: 'p' },
    host: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'max-connections': { type: 'string' },
    'max-connections-per-source': { type: 'string' },
  })
  if (positionals.length > 1) throw new CliError(EXIT.usage, `serve takes one directory, got ${positionals.length}\n${USAGE}`)
  if ((values.cert === undefined) !== (values.key === undefined)) throw new CliError(EXIT.usage, '--cert and --key go together')
  const dir = positionals[0] ?? '.'
  const port = number(values.port, '--port', 0, 65535) ?? 4433
  const host = (values.host as string | undefined) ?? '127.0.0.1'
  // Unset flags keep serve()'s defaults (10,000 and 1,000).
  const limits = {
    maxConnections: count(values['max-connections'], '--max-connections'),
    maxConnectionsPerSource: count(values['max-connections-per-source'], '--max-connections-per-source'),
  }
  let tls = { cert: values.cert as string, privateKey: values.key as string }
  let certPem: string
  // The generated pair is only good for this run: removed on the way out so private keys do not pile up in tmp.
  let generatedDir: string | undefined
  if (values.cert === undefined) {
    const generated = await writeSelfSignedCertificate(['localhost', '127.0.0.1', '::1'])
    generatedDir = dirname(generated.certPath)
    tls = { cert: generated.certPath, privateKey: generated.keyPath }
    certPem = generated.cert
    process.stderr.write(`development certificate: ${generated.certPath} (key ${generated.keyPath})\n`)
  } else {
    certPem = readFileSync(tls.cert, 'utf8')
  }
  try {
    process.stderr.write(`certificate SPKI pin (sha256, base64): ${spkiPin(certPem)}\n`)
    const server = await serve({ socket: { host, port }, tls, limits, onError: (err) => process.stderr.write(`error: ${String(err)}\n`) }, staticFiles(dir))
    process.stderr.write(`serving ${dir} over HTTP/3 on https://${server.address}/ (Ctrl-C stops)\n`)
    await new Promise<void>((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        process.stderr.write(`${signal}: sending GOAWAY, finishing responses in progress\n`)
        // A second Ctrl-C does not wait.
        process.once(signal, () => void server.close())
        void server.shutdown().then(resolve)
      }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
    })
  } finally {
    if (generatedDir !== undefined) rmSync(generatedDir, { recursive: true, force: true })
  }
  return EXIT.ok
}

async function getCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    include: { type: 'boolean', short: 'i', default: false },
    output: { type: 'string', short: 'o' },
    request: { type: 'string', short: 'X' },
    data: { type: 'string', short: 'd' },
    'data-binary': { type: 'string' },
    header: { type: 'string', short: 'H', multiple: true, default: [] },
    ca: { type: 'string' },
    insecure: { type: 'boolean', short: 'k', default: false },
    timeout: { type: 'string', short: 'm' },
    fail: { type: 'boolean', short: 'f', default: false },
    verbose: { type: 'boolean', short: 'v', default: false },
    progress: { type: 'boolean' },
  })
  if (positionals.length !== 1) throw new CliError(EXIT.usage, `get takes one URL\n${USAGE}`)
  const timeoutSeconds = number(values.timeout, '--timeout', 0.001, 86_400)
  return get({
    url: positionals[0]!,
    headers: values.header as string[],
    include: values.include as boolean,
    verbose: values.verbose as boolean,
    insecure: values.insecure as boolean,
    fail: values.fail as boolean,
    ...(values.request === undefined ? {} : { method: values.request as string }),
    ...(values.data === undefined ? {} : { data: values.data as string }),
    ...(values['data-binary'] === undefined ? {} : { dataBinary: values['data-binary'] as string }),
    ...(values.output === undefined ? {} : { output: values.output as string }),
    ...(values.ca === undefined ? {} : { ca: values.ca as string }),
    ...(timeoutSeconds === undefined ? {} : { timeoutSeconds }),
    ...(values.progress === undefined ? {} : { progress: values.progress as boolean }),
  })
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve':
      return serveCommand(rest)
    case 'get':
      return getCommand(rest)
    case '--version':
      process.stdout.write(`${version()}\n`)
      return EXIT.ok
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return EXIT.ok
    default:
      throw new CliError(EXIT.usage, `${command === undefined ? 'no command' : `unknown command ${JSON.stringify(command)}`}\n${USAGE}`)
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code
    },
    (err: unknown) => {
      const failure = classify(err)
      process.stderr.write(`tokio-quiche: ${failure.message}\n`)
      process.exitCode = failure.exitCode
    },
  )
}
