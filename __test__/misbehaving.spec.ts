// Misbehaving clients (issue 18) against serve(): our client, and aioquic
// patched to break the rules (interop/aioquic_hostile.py): a client that never
// reads a large response, one that never sends the body it announced or is
// killed mid-body, one that opens streams beyond the limit, and slowloris.
// Each: the server's memory stays bounded, the handler sees what happened,
// and a well-behaved client served at the same time gets its answer
// (latency in t.log).
import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { connect, createServer, serve, type Http3SettingsInit, type TokioQuicheError } from 'tokio-quiche'
import { fetchText, latencySummary as summary, servedDuring, sleep, testIdentity } from './helpers.js'

const ROOT = `${__dirname}/..`
const PYTHON = `${ROOT}/.venv-interop/bin/python`
const HOSTILE = `${ROOT}/interop/aioquic_hostile.py`

const CHUNK = new Uint8Array(64 * 1024).fill(0x5a)
const MiB = 2 ** 20

async function start(settings: { maxIdleTimeoutMs?: number } = {}, http3: Http3SettingsInit = {}, requestTimeoutMs?: number) {
  const identity = await testIdentity()
  const state = { requests: 0, generated: 0, cancelled: false, uploadStarted: false, upload: undefined as undefined | string }
  const server = await serve(
    { socket: { host: '127.0.0.1', port: 0 }, tls: { cert: identity.certPath, privateKey: identity.keyPath }, settings, http3, ...(requestTimeoutMs === undefined ? {} : { requestTimeoutMs }) },
    async (request) => {
      state.requests++
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
        state.uploadStarted = true
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

/** Starts `aioquic_hostile.py CASE` against `port`; `result` is its JSON line, `line` any line it prints. */
function hostile(port: number, ca: string, testCase: string, args: string[] = []) {
  const child = spawn(PYTHON, [HOSTILE, testCase, '--port', String(port), '--ca', ca, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout! })
  const exited = once(child, 'exit')
  return {
    child,
    exited,
    line: () => once(lines, 'line').then(([line]) => JSON.parse(line as string) as Record<string, unknown>),
  }
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

const STREAM_LIMIT_ERROR = 0x4
const H3_NO_ERROR = 0x100

test('aioquic opening 150 streams past the limit of 100: the server closes that connection with STREAM_LIMIT_ERROR, others are served', async (t) => {
  const { server, identity, address } = await start()
  t.teardown(() => server.close())
  let result: Record<string, unknown> = {}
  const latencies = await servedDuring({ address, identity }, async () => {
    const peer = hostile(server.port, identity.certPath, 'streams-beyond-limit', ['--count', '150'])
    result = await peer.line()
    await peer.exited
  })
  t.log(`aioquic: ${JSON.stringify(result)}; well-behaved client: ${summary(latencies)}`)
  t.like(result, { close_code: STREAM_LIMIT_ERROR })
  t.true((result.answered as number) < 150, 'not every stream was served')
  t.true(latencies.length > 0)
})

test('slowloris from aioquic (100 streams whose HEADERS never end, a byte every 200 ms): the app never sees them, others are served; postAcceptTimeoutMs closes such a connection', async (t) => {
  const { server, identity, state, address } = await start()
  t.teardown(() => server.close())
  let held: Record<string, unknown> = {}
  const latencies = await servedDuring({ address, identity }, async () => {
    const peer = hostile(server.port, identity.certPath, 'slowloris', ['--count', '100', '--seconds', '3'])
    held = await peer.line()
    await peer.exited
  })
  t.log(`default server: ${JSON.stringify(held)}; well-behaved client: ${summary(latencies)}`)
  // The defaults (postAcceptTimeoutMs and headersTimeoutMs, 60 s) are far: 3 s in, the connection stays.
  t.like(held, { close_code: null })
  t.true((held.bytes_sent as number) > 100 * 8, 'the dribble went on for the whole run')
  t.is(state.requests, latencies.length, 'the app saw only the well-behaved requests')

  const guarded = await start({}, { postAcceptTimeoutMs: 1000 })
  t.teardown(() => guarded.server.close())
  const peer = hostile(guarded.server.port, guarded.identity.certPath, 'slowloris', ['--count', '100', '--seconds', '5'])
  const closed = await peer.line()
  t.log(`postAcceptTimeoutMs 1000: ${JSON.stringify(closed)}`)
  t.like(closed, { close_code: H3_NO_ERROR })
  t.true((closed.closed_after_ms as number) < 3000, `closed after ${closed.closed_after_ms} ms`)
  t.is(guarded.state.requests, 0)
})

// H3_REQUEST_REJECTED (RFC 9114 §8.1): not processed, the client may retry.
const H3_REQUEST_REJECTED = 0x10b

test('slowloris after a first request (100 streams whose HEADERS never end): headersTimeoutMs 1000 stops and resets each with H3_REQUEST_REJECTED between 1 and 1.5 s, the connection and others are served', async (t) => {
  const { server, identity, state, address } = await start({}, { headersTimeoutMs: 1000 })
  t.teardown(() => server.close())
  let result: Record<string, unknown> = {}
  const latencies = await servedDuring({ address, identity }, async () => {
    const peer = hostile(server.port, identity.certPath, 'slowloris', ['--count', '100', '--seconds', '4', '--first-request'])
    result = await peer.line()
    await peer.exited
  })
  t.log(`headersTimeoutMs 1000: ${JSON.stringify(result)}; well-behaved client: ${summary(latencies)}`)
  // postAcceptTimeoutMs (the first request) does not apply: the deadline is each stream's.
  t.like(result, { first_status: 200, close_code: null, stopped: 100, reset: 100, reset_codes: [H3_REQUEST_REJECTED] })
  const [firstStop, lastStop] = result.stopped_after_ms as [number, number]
  t.true(firstStop >= 1000, `the first stream stopped ${firstStop} ms after it opened, before the timeout`)
  // 1.5 s at most by the walk's period; the rest is slack for a loaded machine.
  t.true(lastStop < 3000, `the last stream stopped ${lastStop} ms after it opened`)
  t.is(state.requests, latencies.length + 1, 'the app saw the first request and the well-behaved ones, no stalled one')
})

test('aioquic killed (SIGKILL) mid-upload: the handler gets an error at the idle timeout, others are served', async (t) => {
  const { server, identity, state, address } = await start({ maxIdleTimeoutMs: 1000 })
  t.teardown(() => server.close())
  const peer = hostile(server.port, identity.certPath, 'hang-mid-body', ['--post-bytes', '100000'])
  t.teardown(() => peer.child.kill('SIGKILL'))
  t.deepEqual(await peer.line(), { event: 'sent' })
  for (let i = 0; i < 300 && !state.uploadStarted; i++) await sleep(10)
  t.true(state.uploadStarted, 'the handler started reading the body')
  peer.child.kill('SIGKILL')
  const killedAt = Date.now()
  const latencies = await servedDuring({ address, identity }, async () => {
    for (let i = 0; i < 500 && state.upload === undefined; i++) await sleep(10)
  })
  const ms = Date.now() - killedAt
  t.log(`handler: ${state.upload} ${ms} ms after the kill; well-behaved client: ${summary(latencies)}`)
  t.regex(state.upload ?? 'still waiting after 5 s', /^rejected: .*closed before the body ended/)
  t.true(ms < 4000, `the handler waited ${ms} ms (idle timeout 1 s)`)
  t.true(latencies.length > 0)
})

test('aioquic that grants no flow-control credit on an endless response: the server writer stalls, and stops when it goes', async (t) => {
  const { server, identity, state, address } = await start()
  t.teardown(() => server.close())
  const peer = hostile(server.port, identity.certPath, 'never-read', ['--seconds', '3'])
  let atOneSecond = 0
  let result: Record<string, unknown> = {}
  const latencies = await servedDuring({ address, identity }, async () => {
    await sleep(1500)
    atOneSecond = state.generated
    result = await peer.line()
  })
  const stalledAt = state.generated
  t.log(`aioquic: ${JSON.stringify(result)}; produced ${(stalledAt / MiB).toFixed(1)} MiB (${(atOneSecond / MiB).toFixed(1)} MiB after 1.5 s); well-behaved client: ${summary(latencies)}`)
  t.like(result, { status: 200 })
  // aioquic's initial windows are 1 MiB: it cannot have received more.
  t.true((result.received as number) <= MiB, `aioquic received ${result.received} bytes`)
  t.true(stalledAt < 16 * MiB, `${stalledAt} bytes produced`)
  t.true(stalledAt - atOneSecond <= 2 * CHUNK.length, 'nothing more produced once stalled')
  await peer.exited
  for (let i = 0; i < 300 && !state.cancelled; i++) await sleep(10)
  t.true(state.cancelled, "the response body's stream is cancelled once aioquic went")
})

/** A request body of one byte every 100 ms, never FIN: the connection never goes idle. */
async function* dribble(): AsyncGenerator<Uint8Array> {
  for (;;) {
    yield new Uint8Array(1)
    await sleep(100)
  }
}

test('a client that dribbles its body forever: requestTimeoutMs errors the handler\'s body and stops the client sending; bad values are typed errors', async (t) => {
  const { server, identity, state, address } = await start({}, {}, 500)
  t.teardown(() => server.close())
  const dribbler = await connect(address, { serverName: 'localhost', ca: identity.cert })
  t.teardown(() => dribbler.close())
  const pending = dribbler.request({ method: 'POST', path: '/upload', body: dribble() }).then((r) => r.body.text(), (err: Error) => err)
  const started = Date.now()
  for (let i = 0; i < 300 && state.upload === undefined; i++) await sleep(10)
  const ms = Date.now() - started
  t.log(`handler: ${state.upload} after ${ms} ms`)
  t.is(state.upload, 'rejected: stream 0: the request body did not end within 500 ms (requestTimeoutMs)')
  t.true(ms >= 400 && ms < 2000, `${ms} ms`)
  const outcome = await pending
  t.log(`dribbling client: ${outcome instanceof Error ? outcome.message : outcome}`)
  t.is(await fetchText(address, { serverName: 'localhost', ca: identity.cert }), 'ok', 'the server keeps serving')
  for (const bad of [-1, 1.5, '1000', 2 ** 31]) {
    const err = await t.throwsAsync(serve({ tls: { cert: identity.certPath, privateKey: identity.keyPath }, requestTimeoutMs: bad as number }, () => new Response('x')))
    t.is((err as TokioQuicheError).code, 'ERR_INVALID_ARG')
    t.regex(err!.message, /^options\.requestTimeoutMs: expected a whole number of ms/)
  }
})

test('createServer({ requestTimeoutMs }): a dribbled body gets 408 and req an ERR_STREAM_CLOSED error; a GET answered slowly and a body sent in time do not; bad values are typed errors', async (t) => {
  const identity = await testIdentity()
  const seen: Record<string, string> = {}
  const server = createServer({ tls: { cert: identity.certPath, privateKey: identity.keyPath }, requestTimeoutMs: 500 }, (req, res) => {
    if (req.method === 'GET') return void setTimeout(() => res.end('slow but fine'), 800)
    let bytes = 0
    req.on('data', (chunk: Buffer) => (bytes += chunk.length))
    req.on('end', () => res.end(`read ${bytes}`))
    req.on('error', (err: TokioQuicheError) => (seen[req.url] = `${err.code}: ${err.message}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const client = await connect(`127.0.0.1:${server.address()!.port}`, { serverName: 'localhost', ca: identity.cert })
  t.teardown(() => client.close())
  const started = Date.now()
  const dribbled = await client.request({ method: 'POST', path: '/dribble', body: dribble() })
  const ms = Date.now() - started
  t.is(dribbled.status, 408)
  t.true(ms >= 400 && ms < 2000, `408 after ${ms} ms`)
  await sleep(50)
  t.is(seen['/dribble'], 'ERR_STREAM_CLOSED: stream 0: the request body did not end within 500 ms (requestTimeoutMs)')
  // Sent whole in time, answered after the deadline would have passed: no 408.
  const slowGet = await client.request({ path: '/get' })
  t.is(slowGet.status, 200)
  t.is(await slowGet.body.text(), 'slow but fine')
  const inTime = await client.request({ method: 'POST', path: '/in-time', body: new Uint8Array(3000) })
  t.is(await inTime.body.text(), 'read 3000')
  await sleep(600)
  t.false('/in-time' in seen, seen['/in-time'])
  for (const bad of [-1, 1.5, '1000', 2 ** 31]) {
    const err = t.throws(() => createServer({ tls: { cert: identity.certPath, privateKey: identity.keyPath }, requestTimeoutMs: bad as number }))
    t.is((err as TokioQuicheError).code, 'ERR_INVALID_ARG')
    t.regex(err!.message, /^options\.requestTimeoutMs: expected a whole number of ms/)
  }
})
