// Misbehaving clients (issue 18) against serve(): a client that never reads
// a large response and one that never sends the body it announced. Each:
// the server's memory stays bounded, the handler sees what happened, and a
// well-behaved client served at the same time gets its answer (latency in t.log).
import test from 'ava'
import { connect, serve } from 'tokio-quiche'
import { latencySummary as summary, servedDuring, sleep, testIdentity } from './helpers.js'

const CHUNK = new Uint8Array(64 * 1024).fill(0x5a)
const MiB = 2 ** 20

async function start(settings: { maxIdleTimeoutMs?: number } = {}) {
  const identity = await testIdentity()
  const state = { generated: 0, cancelled: false, upload: undefined as undefined | string }
  const server = await serve(
    { socket: { host: '127.0.0.1', port: 0 }, tls: { cert: identity.certPath, privateKey: identity.keyPath }, settings },
    async (request) => {
      const path = new URL(request.url).pathname
      if (path === '/endless') {
        return new Response(
          new ReadableStream({
            pull(controller) {
              state.generated += CHUNK.length
              controller.enqueue(CHUNK)
            },
            cancel() {
              state.cancelled = true
            },
          }),
        )
      }
      if (path === '/upload') {
        try {
          state.upload = `read ${(await request.arrayBuffer()).byteLength} bytes`
        } catch (err) {
          state.upload = `rejected: ${(err as Error).message}`
        }
        return new Response('done')
      }
      return new Response('ok')
    },
  )
  return { server, identity, state, address: server.address }
}

test('a client that never reads an endless response: the server writer stalls (bytes produced and RSS bounded), and stops when the client goes', async (t) => {
  const { server, identity, state, address } = await start()
  t.teardown(() => server.close())
  const rssBefore = process.memoryUsage().rss
  const reader = await connect(address, { serverName: 'localhost', ca: identity.cert })
  const response = await reader.request({ path: '/endless' })
  t.is(response.status, 200)
  let atOneSecond = 0
  const latencies = await servedDuring({ address, identity }, async () => {
    await sleep(1000)
    atOneSecond = state.generated
    await sleep(2000)
  })
  const stalledAt = state.generated
  const rssGrowth = process.memoryUsage().rss - rssBefore
  t.log(`produced ${(stalledAt / MiB).toFixed(1)} MiB in 3 s (${(atOneSecond / MiB).toFixed(1)} MiB after 1 s); RSS +${(rssGrowth / MiB).toFixed(1)} MiB; well-behaved client: ${summary(latencies)}`)
  // Flow control (the client's 1 MB stream window, not grown while it does not read)
  // plus the bridge's bounded chunk queues on both sides: a few MiB, then nothing.
  t.true(stalledAt < 16 * MiB, `${stalledAt} bytes produced for a reader that reads nothing`)
  t.true(stalledAt - atOneSecond <= 2 * CHUNK.length, 'nothing more produced between 1 s and 3 s')
  t.true(rssGrowth < 64 * MiB, `RSS grew ${rssGrowth} bytes`)
  t.true(latencies.length > 0)
  await reader.close()
  const closedAt = Date.now()
  for (let i = 0; i < 200 && !state.cancelled; i++) await sleep(10)
  t.log(`cancelled: ${state.cancelled} after ${Date.now() - closedAt} ms`)
  t.true(state.cancelled, "the response body's stream is cancelled once the client closed")
  const afterClose = state.generated
  await sleep(300)
  t.is(state.generated, afterClose, 'nothing produced after the client closed')
})

test('a client that never sends the body it announced: the handler gets an error when the connection times out, others are served', async (t) => {
  const { server, identity, state, address } = await start({ maxIdleTimeoutMs: 1000 })
  t.teardown(() => server.close())
  const silent = await connect(address, { serverName: 'localhost', ca: identity.cert })
  // Headers go out, then the body never comes and never ends.
  const never = { async *[Symbol.asyncIterator]() { await new Promise(() => {}) } }
  const pending = silent.request({ method: 'POST', path: '/upload', body: never as AsyncIterable<Uint8Array> }).catch((err: Error) => err)
  const started = Date.now()
  const latencies = await servedDuring({ address, identity }, async () => {
    for (let i = 0; i < 500 && state.upload === undefined; i++) await sleep(10)
  })
  const ms = Date.now() - started
  t.log(`handler: ${state.upload} after ${ms} ms; well-behaved client: ${summary(latencies)}`)
  t.regex(state.upload ?? 'still waiting after 5 s', /^rejected: /)
  t.true(ms < 4000, `the handler waited ${ms} ms (idle timeout 1 s)`)
  t.true(latencies.length > 0)
  t.true((await pending) instanceof Error, "the silent client's request fails too")
  await silent.close()
})
