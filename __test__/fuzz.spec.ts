// TS-side fuzzing (issue 18) with fast-check: arbitrary values thrown at the
// public API's option and header checks. Each call must either work or throw
// a TokioQuicheError with an ERR_ code and a message, never another error,
// a crash or a hang; and a connection fed such requests keeps serving.
// FUZZ_RUNS raises the number of cases (npm test uses the defaults below).
import test from 'ava'
import fc from 'fast-check'
import { ConnectionParams, Http3Settings, TokioQuicheError, connect } from 'tokio-quiche'
import { startServer, testIdentity } from './helpers.js'

const RUNS = Number(process.env.FUZZ_RUNS ?? 0)

/** Works, or fails the way bad input must: a typed error naming what was wrong. */
function typedOrNothing(call: () => unknown): boolean {
  try {
    call()
    return true
  } catch (err) {
    return err instanceof TokioQuicheError && /^ERR_[A-Z_]+$/.test(err.code) && err.message.length > 0
  }
}

const SETTINGS_KEYS = ['maxIdleTimeoutMs', 'handshakeTimeoutMs', 'initialMaxData', 'initialMaxStreamsBidi', 'initialMaxStreamsUni', 'enableDgram', 'disableClientIpValidation', 'maxAmplificationFactor', 'listenBacklog', 'cc']
const HTTP3_KEYS = ['maxHeaderListSize', 'postAcceptTimeoutMs', 'headersTimeoutMs', 'maxRequestsPerConnection', 'qpackMaxTableCapacity', 'qpackBlockedStreams']
const LIMIT_KEYS = ['maxConnections', 'maxConnectionsPerSource']

/** Objects with real and made-up keys, and any value at all. */
const options = (keys: string[]) =>
  fc.oneof(
    fc.anything(),
    fc.dictionary(fc.oneof(fc.constantFrom(...keys), fc.string()), fc.oneof(fc.anything(), fc.double(), fc.integer(), fc.bigInt())),
  )

test('fuzz: Http3Settings takes anything and answers with a value or a typed error', (t) => {
  fc.assert(fc.property(options(HTTP3_KEYS), (init) => typedOrNothing(() => new Http3Settings(init as never))), { numRuns: RUNS || 2000 })
  t.pass()
})

test('fuzz: ConnectionParams.newServer settings, http3 and limits', async (t) => {
  const id = await testIdentity()
  const tls = { cert: id.certPath, privateKey: id.keyPath }
  fc.assert(
    fc.property(options(SETTINGS_KEYS), options(LIMIT_KEYS), (settings, limits) =>
      typedOrNothing(() => ConnectionParams.newServer({ tls, settings: settings as never, limits: limits as never })),
    ),
    { numRuns: RUNS || 1000 },
  )
  t.pass()
})

/** Header names and values: plausible ones, pseudo-headers, control bytes, Unicode, empties. */
const headerName = fc.oneof(fc.constantFrom(':path', ':method', ':status', 'content-length', 'x-a', 'X-Upper', 'te', 'connection'), fc.string(), fc.string({ unit: 'binary' }))
const headerValue = fc.oneof(fc.constantFrom('', 'trailers', '1', ' x ', 'a\r\nb', 'a\0b'), fc.string(), fc.string({ unit: 'binary' }))

test('fuzz: request headers on a live connection: each request is sent or refused with a typed error, and the connection keeps serving', async (t) => {
  const server = await startServer(async (req) => req.send.respond([[':status', '200']], String(req.headers.length)))
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  let sent = 0
  let refused = 0
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }), async (headers) => {
      try {
        const response = await client.request({ path: '/fuzz', headers })
        await response.body.text()
        sent++
        return response.status === 200
      } catch (err) {
        refused++
        return err instanceof TokioQuicheError && /^ERR_[A-Z_]+$/.test(err.code)
      }
    }),
    { numRuns: RUNS || 300 },
  )
  t.log(`${sent} requests sent, ${refused} refused`)
  t.true(sent > 0 && refused > 0, 'both kinds of input came up')
  const after = await client.request({ path: '/after' })
  t.is(after.status, 200)
  t.is(await after.body.text(), '4', 'the server got the four pseudo-headers and nothing else')
})

test('fuzz: response headers a handler writes: each response is sent or refused with a typed error, and the server keeps serving', async (t) => {
  // The client names the case; the handler answers with that case's headers.
  const cases = new Map<string, [string, string][]>()
  const outcomes: boolean[] = []
  const server = await startServer(async (req) => {
    const headers = cases.get(req.headers.find(([name]) => name === ':path')![1]) ?? []
    try {
      await req.send.respond([[':status', '200'], ...headers], 'ok')
    } catch (err) {
      outcomes.push(err instanceof TokioQuicheError && /^ERR_[A-Z_]+$/.test(err.code))
      await req.send.respond([[':status', '500']])
    }
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  let n = 0
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }), async (headers) => {
      const path = `/${n++}`
      cases.set(path, headers)
      const response = await client.request({ path })
      const body = await response.body.text().catch((err: unknown) => err)
      // A content-length other than 2 makes the body malformed: the client says so.
      if (body instanceof TokioQuicheError) return body.code === 'ERR_STREAM_CLOSED'
      return (response.status === 200 && body === 'ok') || response.status === 500
    }),
    { numRuns: RUNS || 300 },
  )
  t.log(`${n} responses, ${outcomes.length} refused by the binding`)
  t.true(outcomes.length > 0 && outcomes.every(Boolean), 'every refusal was a typed error')
  t.is((await client.request({ path: '/none' })).status, 200)
})
