import { type FileHandle, open, readFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { once } from 'node:events'
import { connect, type ConnectOptions } from '../client.js'
import type { BodyInit } from '../client.js'
import type { Header } from '../frames.js'
import { CliError, EXIT } from './exit.js'
import { ProgressBar, formatBytes } from './progress.js'

export interface GetOptions {
  url: string
  method?: string
  headers: string[]
  /** `-d`: the text itself, or `@file`. */
  data?: string
  /** `--data-binary`: as `data`; both send bytes unchanged. */
  dataBinary?: string
  output?: string
  include: boolean
  verbose: boolean
  ca?: string
  insecure: boolean
  timeoutSeconds?: number
  fail: boolean
  /** `--progress` forces the bar, `--no-progress` hides it; default: on a TTY stderr when the body goes to a file or a TTY. */
  progress?: boolean
}

/**
 * A request body from `-d`/`--data-binary`: `@file` streams the file from
 * disk. The file is opened first, so that a missing one fails here and not
 * as an unhandled stream error after the request went out.
 */
async function requestBody(data: string | undefined): Promise<BodyInit | undefined> {
  if (data === undefined) return undefined
  if (!data.startsWith('@')) return data
  const path = data.slice(1)
  if (path === '-') return process.stdin
  const file = await open(path, 'r').catch((err: Error) => {
    throw new CliError(EXIT.read, `${data}: ${err.message}`)
  })
  return file.createReadStream({ highWaterMark: 256 * 1024 })
}

function parseHeaders(lines: string[]): Header[] {
  return lines.map((line) => {
    const colon = line.indexOf(':')
    if (colon <= 0) throw new CliError(EXIT.usage, `-H ${JSON.stringify(line)}: expected "name: value"`)
    return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()]
  })
}

function parseUrl(input: string): URL {
  let url: URL
  try {
    url = new URL(input)
  } catch {
    throw new CliError(EXIT.badUrl, `${JSON.stringify(input)} is not a URL (expected https://host[:port]/path)`)
  }
  if (url.protocol === 'http:') throw new CliError(EXIT.badUrl, `${input}: HTTP/3 runs over QUIC with TLS: use https://`)
  if (url.protocol !== 'https:') throw new CliError(EXIT.badUrl, `${input}: unsupported scheme ${url.protocol} (expected https://)`)
  return url
}

/** Where the body goes: a file (each write awaited) or stdout (awaiting 'drain' when full). */
async function sink(path: string | undefined): Promise<{ write(data: Uint8Array): Promise<void>; close(): Promise<void> }> {
  if (path === undefined) {
    return {
      write: async (data) => {
        if (!process.stdout.write(data)) await once(process.stdout, 'drain')
      },
      close: async () => {},
    }
  }
  let file: FileHandle
  try {
    file = await open(path, 'w')
  } catch (err) {
    throw new CliError(EXIT.write, `-o ${path}: ${(err as Error).message}`)
  }
  return {
    write: async (data) => {
      await file.write(data).catch((err: Error) => {
        throw new CliError(EXIT.write, `-o ${path}: ${err.message}`)
      })
    },
    close: () => file.close(),
  }
}

const ms = (from: number) => `${(performance.now() - from).toFixed(1)} ms`

/** `tokio-quiche get`: one request, the body to stdout or `-o`. */
export async function get(options: GetOptions): Promise<number> {
  const url = parseUrl(options.url)
  const headers = parseHeaders(options.headers)
  const data = options.dataBinary ?? options.data
  const method = options.method ?? (data === undefined ? 'GET' : 'POST')
  const ca = options.ca === undefined ? undefined : await readFile(options.ca, 'utf8').catch((err: Error) => {
    throw new CliError(EXIT.read, `--ca: ${err.message}`)
  })
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const port = url.port || '443'
  const signal = options.timeoutSeconds === undefined ? undefined : AbortSignal.timeout(options.timeoutSeconds * 1000)
  const log = (line: string) => {
    if (options.verbose) process.stderr.write(`* ${line}\n`)
  }

  const started = performance.now()
  const connectOptions: ConnectOptions = {
    ...(isIP(host) ? {} : { serverName: host }),
    ...(ca === undefined ? {} : { ca }),
    ...(options.insecure ? { insecureSkipVerify: true } : {}),
    ...(signal ? { signal } : {}),
  }
  log(`connecting to ${host}:${port} over QUIC${options.insecure ? ' (certificate NOT verified: --insecure)' : ''}`)
  const controller = await connect(`${isIP(host) === 6 ? `[${host}]` : host}:${port}`, connectOptions)
  try {
    log(`handshake done in ${ms(started)}`)
    const body = await requestBody(data)
    const response = await controller.request({
      method,
      path: url.pathname + url.search,
      authority: url.host,
      headers: [['user-agent', 'tokio-quiche-cli'], ...headers],
      ...(body === undefined ? {} : { body }),
      ...(signal ? { signal } : {}),
    })
    log(`response headers after ${ms(started)}: status ${response.status}`)
    const lines = [`HTTP/3 ${response.status}`, ...response.headers.filter(([n]) => !n.startsWith(':')).map(([n, v]) => `${n}: ${v}`)]
    const head = lines.join('\r\n')
    if (options.verbose) process.stderr.write(lines.map((line) => `< ${line}\n`).join(''))
    if (options.fail && response.status >= 400) {
      response.body.close()
      throw new CliError(EXIT.httpError, `the server answered ${response.status}`)
    }

    const out = await sink(options.output)
    if (options.include) await out.write(Buffer.from(`${head}\r\n\r\n`))
    const length = Number(response.headers.find(([n]) => n === 'content-length')?.[1])
    const showBar = options.progress ?? (process.stderr.isTTY && (options.output !== undefined || process.stdout.isTTY) && !(length < 1 << 20))
    const bar = showBar ? new ProgressBar(process.stderr, Number.isFinite(length) ? length : undefined) : undefined
    let received = 0
    let firstByte: string | undefined
    for await (const frame of response.body) {
      firstByte ??= ms(started)
      received += frame.data.length
      bar?.add(frame.data.length)
      // Back-pressure: no more QUIC reads until the file or pipe took this chunk.
      await out.write(frame.data)
    }
    bar?.finish()
    await out.close()
    log(`first body byte after ${firstByte ?? '-'}; ${formatBytes(received)} in ${ms(started)}`)
    if (options.verbose) {
      const stats = await controller.stats()
      log(`connection: ${JSON.stringify(stats, (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v))}`)
    }
    return EXIT.ok
  } finally {
    await controller.close()
  }
}
