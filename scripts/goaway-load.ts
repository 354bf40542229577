// Steady load across GOAWAYs: LOOPS fetch() loops, each one request at a
// time, against a server that sends GOAWAY on a connection once it has been
// asked EVERY requests, for SECONDS. The agent moves to a new connection at
// each GOAWAY; requests the server did not process are resent. Counts requests
// lost (a fetch that rejected) and bodies that differ (SHA-256); exits 1 if
// any. Client and server share this process.
//   tsx scripts/goaway-load.ts [--loops 50] [--every 300] [--seconds 10]
import { parseArgs } from 'node:util'
import { Agent, ConnectionParams, type ServerH3Controller, fetch, listen } from 'tokio-quiche'
import { patternBytes, sha256, testIdentity } from '../__test__/helpers.js'

const { values } = parseArgs({
  options: { loops: { type: 'string', default: '50' }, every: { type: 'string', default: '300' }, seconds: { type: 'string', default: '10' } },
})
const loops = Number(values.loops)
const every = Number(values.every)
const seconds = Number(values.seconds)
if (![loops, every, seconds].every((n) => Number.isInteger(n) && n > 0)) {
  throw new Error('usage: goaway-load.ts [--loops N] [--every N] [--seconds N] (positive whole numbers)')
}

/** The body of request `n`: its length and bytes depend on `n`, so a mix-up shows in the hash. */
const body = (n: number) => patternBytes(1000 + (n % 1000), n % 251)

async function serveConnection(controller: ServerH3Controller, stats: { goaways: number }): Promise<void> {
  let asked = 0
  for await (const event of controller) {
    if (event.type !== 'headers') continue
    if (++asked === every) {
      controller.sendGoaway()
      stats.goaways++
    }
    const n = Number(event.headers.find(([name]) => name === ':path')![1].slice(1))
    event.send.respond([[':status', '200']], body(n)).catch(() => {})
  }
}

async function main(): Promise<void> {
  const id = await testIdentity()
  const [listener] = await listen(['127.0.0.1:0'], ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath } }))
  const server = { connections: 0, goaways: 0 }
  void (async () => {
    for await (const controller of listener!.startH3()) {
      server.connections++
      void serveConnection(controller, server)
    }
  })()
  const agent = new Agent({ ca: id.cert })
  const base = `https://localhost:${listener!.localAddress.split(':').pop()}`
  const deadline = Date.now() + seconds * 1000
  const lost = new Map<string, number>()
  let ok = 0
  let corrupted = 0
  let next = 0
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < deadline) {
        const n = next++
        try {
          const received = new Uint8Array(await (await fetch(`${base}/${n}`, { agent })).arrayBuffer())
          if (sha256(received) === sha256(body(n))) ok++
          else corrupted++
        } catch (err) {
          const key = `${(err as { code?: string }).code ?? (err as Error).name}: ${(err as Error).message.replace(/\d+/g, 'N')}`
          lost.set(key, (lost.get(key) ?? 0) + 1)
        }
      }
    }),
  )
  await agent.close()
  await listener!.close()
  const lostTotal = [...lost.values()].reduce((a, b) => a + b, 0)
  console.log(JSON.stringify({ loops, every, seconds, requests: next, ok, lost: lostTotal, corrupted, serverConnections: server.connections, goaways: server.goaways, errors: Object.fromEntries(lost) }))
  if (lostTotal > 0 || corrupted > 0) process.exitCode = 1
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
