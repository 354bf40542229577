// Subjects P and S: our package's server through the controller API (P) or
// through serve() (S), doing what crates/bench/src/server.rs (subject N)
// does: /bytes/<n> is n bytes in 64 KiB frames, anything else 1 KiB.
//   tsx bench/server.ts ADDR CERT KEY [controller|serve]
import { ConnectionParams, type ServerH3Controller, ServerH3Driver, listen, serve } from 'tokio-quiche'

const CHUNK = 64 * 1024
const SMALL = 1024
const DATA = Buffer.alloc(CHUNK, 0x57)

function responseSize(path: string | undefined): number {
  const n = path?.startsWith('/bytes/') ? Number(path.slice(7)) : NaN
  return Number.isInteger(n) ? n : SMALL
}

async function serveConnection(controller: ServerH3Controller): Promise<void> {
  for await (const event of controller) {
    if (event.type !== 'headers') continue
    const { send, headers } = event
    void (async () => {
      let left = responseSize(headers.find(([n]) => n === ':path')?.[1])
      await send.sendHeaders([[':status', '200']])
      while (left > 0) {
        const n = Math.min(left, CHUNK)
        await send.write(n === CHUNK ? DATA : DATA.subarray(0, n))
        left -= n
      }
      await send.end()
    })().catch(() => send.close())
  }
}

/** The same bytes as a Response body: a stream of 64 KiB chunks. */
function responseBody(size: number): ReadableStream<Uint8Array> {
  let left = size
  return new ReadableStream({
    pull(controller) {
      const n = Math.min(left, CHUNK)
      controller.enqueue(n === CHUNK ? DATA : DATA.subarray(0, n))
      left -= n
      if (left === 0) controller.close()
    },
  })
}

async function main(): Promise<void> {
  const [addr = '127.0.0.1:0', cert, key, api = 'controller'] = process.argv.slice(2)
  if (api === 'serve') {
    const server = await serve({ socket: addr, tls: { cert: cert!, privateKey: key! } }, (request) => {
      const size = responseSize(new URL(request.url).pathname)
      return new Response(size > 0 ? responseBody(size) : null)
    })
    console.log(`listening ${server.address}`)
    process.once('SIGTERM', () => void server.close())
    return
  }
  const [listener] = await listen([addr], ConnectionParams.newServer({ tls: { cert: cert!, privateKey: key! } }))
  console.log(`listening ${listener!.localAddress}`)
  process.once('SIGTERM', () => void listener!.close())
  for await (const conn of listener!) {
    const { driver, controller } = ServerH3Driver.new()
    conn.start(driver)
    void serveConnection(controller)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
