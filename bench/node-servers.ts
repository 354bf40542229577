// Subjects H2 and H1: Node's own http2.createSecureServer and
// https.createServer over TLS 1.3 with the same certificate; and R: this
// package's createServer(), node:http2's compatibility API over HTTP/3. All
// three run the one (req, res) handler below, serving bench/routes.ts
// exactly as subjects N, P and S do.
//   tsx bench/node-servers.ts h2|h1|h3 ADDR CERT KEY
import { readFileSync } from 'node:fs'
import { createSecureServer } from 'node:http2'
import { createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { bridgeCounters, createServer as createH3Server } from 'tokio-quiche'
import { type BodySink, LIMITS, answerStats, countUpload, responseSize, writeBody } from './routes'

/** What the handler uses of a request and a response: all three servers' have it. */
type Request = AsyncIterable<Uint8Array> & { method?: string; url?: string }
interface Response extends BodySink {
  writeHead(status: number, headers: Record<string, number>): unknown
  end(): unknown
  end(body: string): unknown
  destroy(): unknown
}

const MiB = 1024 * 1024

async function handle(req: Request, res: Response): Promise<void> {
  if (req.method === 'POST') {
    const body = String(await countUpload(req))
    res.writeHead(200, { 'content-length': Buffer.byteLength(body) })
    res.end(body)
    return
  }
  const size = responseSize(req.url)
  res.writeHead(200, { 'content-length': size })
  await writeBody(res, size)
}

function onRequest(req: Request, res: Response): void {
  handle(req, res).catch(() => res.destroy())
}

async function main(): Promise<void> {
  const [kind, addr = '127.0.0.1:0', cert, key] = process.argv.slice(2)
  const tls = { cert: readFileSync(cert!), key: readFileSync(key!), minVersion: 'TLSv1.3' as const }
  const server =
    kind === 'h2'
      ? // The flow-control windows of the QUIC subjects (tokio-quiche's defaults: 1 MB per
        // stream, 10 MB per connection) instead of HTTP/2's 64 KiB, so uploads are not
        // throttled by a setting the others do not have.
        createSecureServer({ ...tls, settings: { initialWindowSize: MiB } }, onRequest).on('session', (s) => s.setLocalWindowSize(10 * MiB))
      : kind === 'h1'
        ? createServer(tls, onRequest)
        : kind === 'h3'
          ? createH3Server({ tls: { cert: cert!, privateKey: key! }, limits: LIMITS }, onRequest)
          : undefined
  if (!server) throw new Error(`usage: node-servers.ts h2|h1|h3 ADDR CERT KEY (got '${kind}')`)
  // Idle connections stay open as long as the QUIC subjects' would (their idle
  // timeout is 30 s or more); Node's HTTP/1.1 default closes them after 5 s.
  if ('keepAliveTimeout' in server) server.keepAliveTimeout = 0
  answerStats(kind === 'h3' ? () => ({ bridge: bridgeCounters() }) : undefined)
  const sep = addr.lastIndexOf(':')
  server.listen(Number(addr.slice(sep + 1)), addr.slice(0, sep), () => {
    const { address, port } = server.address() as AddressInfo
    console.log(`listening ${address}:${port}`)
  })
  process.once('SIGTERM', () => server.close())
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
