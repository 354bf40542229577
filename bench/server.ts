// Subjects P and S: our package's server through the controller API (P,
// connections started by listener.startH3()) or
// through serve() (S), serving bench/routes.ts as crates/bench (subject N) does.
//   tsx bench/server.ts ADDR CERT KEY [controller|serve]
import { ConnectionParams, type Header, type IncomingHeadersEvent, type ServerH3Controller, bridgeCounters, listen, serve } from 'tokio-quiche'
import { CHUNK, DATA, LIMITS, answerStats, bodyChunks, countUpload, responseSize } from './routes'

/** Serves one connection's requests (also used by cluster workers, bench/cluster-server.ts). */
export async function serveConnection(controller: ServerH3Controller): Promise<void> {
  for await (const event of controller) {
    if (event.type !== 'headers') continue
    answer(event).catch(() => event.send.close())
  }
}

/**
 * Answers one request. A named top-level function, not a closure per
 * request: tsx (esbuild's keepNames) names every named closure with
 * Object.defineProperty, a cost subjects H2 and H1 (no closures) do not pay.
 */
async function answer({ send, recv, headers }: IncomingHeadersEvent): Promise<void> {
  if (header(headers, ':method') === 'POST') {
    const received = await countUpload(recv.chunks())
    return send.respond([[':status', '200']], String(received))
  }
  const chunks = [...bodyChunks(responseSize(header(headers, ':path')))]
  const last = chunks.pop()
  // A one-chunk response is one call into the binding (respond());
  // longer ones stream, FIN on the last chunk, as subject N does.
  if (chunks.length === 0) return send.respond([[':status', '200']], last)
  await send.sendHeaders([[':status', '200']])
  for (const chunk of chunks) await send.write(chunk)
  await send.end(last)
}

function header(headers: Header[], name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1]
}

/** The same bytes as a Response body, pulled chunk by chunk. */
function responseBody(size: number): ReadableStream<Uint8Array> {
  const chunks = bodyChunks(size)
  return new ReadableStream({
    pull(controller) {
      const next = chunks.next()
      if (next.done) controller.close()
      else controller.enqueue(next.value)
    },
  })
}

async function main(): Promise<void> {
  const [addr = '127.0.0.1:0', cert, key, api = 'controller'] = process.argv.slice(2)
  answerStats(() => ({ bridge: bridgeCounters() }))
  if (api === 'serve') {
    const server = await serve({ socket: addr, tls: { cert: cert!, privateKey: key! }, limits: LIMITS }, async (request) => {
      if (request.method === 'POST') return new Response(String(await countUpload(request.body!)))
      const size = responseSize(new URL(request.url).pathname)
      // Bytes for a one-chunk body, as a handler would; a stream for longer ones.
      return new Response(size === 0 ? null : size <= CHUNK ? DATA.subarray(0, size) : responseBody(size))
    })
    console.log(`listening ${server.address}`)
    process.once('SIGTERM', () => void server.close())
    return
  }
  const [listener] = await listen([addr], ConnectionParams.newServer({ tls: { cert: cert!, privateKey: key! }, limits: LIMITS }))
  console.log(`listening ${listener!.localAddress}`)
  process.once('SIGTERM', () => void listener!.close())
  for await (const controller of listener!.startH3()) void serveConnection(controller)
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
