// hq-interop (HTTP/0.9 over QUIC, the QUIC interop runner's protocol) on
// the raw QUIC API: a request is one bidirectional stream carrying
// "GET /path\r\n" and FIN; the response is the file's bytes and FIN.
//
//   npx tsx examples/hq-interop.ts server --root DIR [--port 4433] [--cert c.pem --key k.pem]
//   npx tsx examples/hq-interop.ts client https://127.0.0.1:4433/a.txt ... [--ca c.pem] [--out DIR]
//
// The server prints "listening <port>" (and, without --cert, where it wrote
// its self-signed certificate). The client prints one JSON line per URL:
// { path, size, sha256 } or { path, error }, saving bodies under --out.
import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { ConnectionParams, type QuicStream, type RawQuicConnection, connectQuic, listen, writeSelfSignedCertificate } from 'tokio-quiche'

export const HQ_ALPN = 'hq-interop'
/** The stream reset code for a path with no file (the protocol has no status). */
export const HQ_NOT_FOUND = 0x4
/** A request line longer than this is refused. */
const MAX_REQUEST = 8 * 1024

/** Reads "GET /path\r\n" (the FIN may come with it or after). */
async function requestPath(stream: QuicStream): Promise<string | null> {
  let line = ''
  for await (const chunk of stream) {
    line += chunk.toString('latin1')
    if (line.length > MAX_REQUEST) return null
  }
  const match = /^GET (\/\S*)\r?\n?$/.exec(line)
  try {
    return match ? decodeURIComponent(match[1]!) : null
  } catch {
    // Not valid percent-encoding (URIError).
    return null
  }
}

/** The file under `root` that `urlPath` names, or null (missing, a directory, or outside root through `..` or a link). */
async function resolveFile(root: string, urlPath: string): Promise<string | null> {
  try {
    const file = await realpath(path.join(root, urlPath))
    if (!file.startsWith(root + path.sep) || !(await stat(file)).isFile()) return null
    return file
  } catch {
    return null
  }
}

/**
 * Writes `chunks` to `stream`, the last one together with FIN: a bare FIN
 * after data the peer already acknowledged can be lost in quiche 0.30
 * (cloudflare/quiche#2525), so the FIN always rides on bytes.
 */
export async function sendAll(stream: QuicStream, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  let held: Uint8Array | undefined
  for await (const chunk of chunks) {
    if (held) await stream.write(held)
    held = chunk
  }
  await stream.end(held)
}

/** Answers one connection's requests until it closes. */
export async function serveHq(connection: RawQuicConnection, root: string): Promise<void> {
  const realRoot = await realpath(root)
  for await (const stream of connection) {
    if (!stream.bidirectional) {
      stream.stopSending(HQ_NOT_FOUND)
      continue
    }
    void (async () => {
      const urlPath = await requestPath(stream)
      const file = urlPath && (await resolveFile(realRoot, urlPath))
      if (!file) return stream.reset(HQ_NOT_FOUND)
      await sendAll(stream, createReadStream(file, { highWaterMark: 256 * 1024 }))
    })().catch(() =>
      // A read failed, or the peer went away mid-response: reset what is left so nothing waits on it.
      stream[Symbol.asyncDispose]().catch(() => {}),
    )
  }
}

export interface HqResult {
  path: string
  size?: number
  sha256?: string
  error?: string
}

/** Fetches `paths` from one hq-interop server over one connection; streams wait for the server's stream credit. */
export async function getHq(connection: RawQuicConnection, paths: readonly string[], outDir?: string): Promise<HqResult[]> {
  return Promise.all(
    paths.map(async (urlPath): Promise<HqResult> => {
      try {
        const stream = await connection.openBidi()
        await stream.end(`GET ${urlPath}\r\n`)
        const hash = createHash('sha256')
        let size = 0
        const counted = (async function* () {
          for await (const chunk of stream) {
            hash.update(chunk)
            size += chunk.length
            yield chunk
          }
        })()
        if (outDir) await pipeline(counted, createWriteStream(path.join(outDir, path.basename(urlPath))))
        else for await (const _ of counted);
        return { path: urlPath, size, sha256: hash.digest('hex') }
      } catch (err) {
        return { path: urlPath, error: (err as Error).message }
      }
    }),
  )
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      root: { type: 'string', default: '.' },
      port: { type: 'string', default: '4433' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      'server-name': { type: 'string' },
      out: { type: 'string' },
    },
  })
  const [mode, ...urls] = positionals
  if (mode === 'server') {
    let { cert, key } = values
    if (!cert || !key) {
      const written = await writeSelfSignedCertificate(['localhost', '127.0.0.1'])
      ;({ certPath: cert, keyPath: key } = written)
      console.error(`self-signed certificate: ${cert}`)
    }
    const params = ConnectionParams.newServer({ tls: { cert, privateKey: key }, alpn: [HQ_ALPN] })
    const [listener] = await listen([`127.0.0.1:${values.port}`], params)
    console.log(`listening ${listener!.port}`)
    process.once('SIGINT', () => void listener!.close())
    for await (const connection of listener!.startRaw()) void serveHq(connection, values.root)
  } else if (mode === 'client' && urls.length > 0) {
    const parsed = urls.map((u) => new URL(u))
    const { host } = parsed[0]!
    const connection = await connectQuic(host, {
      alpn: HQ_ALPN,
      ...(values.ca ? { ca: values.ca } : {}),
      serverName: values['server-name'] ?? parsed[0]!.hostname,
    })
    const results = await getHq(connection, parsed.map((u) => u.pathname), values.out)
    for (const result of results) console.log(JSON.stringify(result))
    await connection.close()
    process.exitCode = results.some((r) => r.error) ? 1 : 0
  } else {
    console.error('usage: hq-interop.ts server --root DIR [--port P] [--cert C --key K] | client URL... [--ca C] [--out DIR]')
    process.exitCode = 2
  }
}

// Run as a script, not when a test imports the functions above.
if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
