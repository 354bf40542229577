// Bad input gets a typed error whose code is stable and whose message names
// the field at fault; nothing crashes or hangs. The plain-argument cases are
// rows of bad-input.spec.ts; these need a live stream or a sequence of calls.
import test from 'ava'
import {
  ConnectionParams,
  OutboundFrame,
  TokioQuicheError,
  type ErrorCode,
  connect,
  listen,
} from 'tokio-quiche'
import { startServer, testIdentity } from './helpers.js'

async function params(overrides: { cert?: string; privateKey?: string } = {}) {
  const id = await testIdentity()
  return ConnectionParams.newServer({ tls: { cert: overrides.cert ?? id.certPath, privateKey: overrides.privateKey ?? id.keyPath } })
}

function expectCode(t: import('ava').ExecutionContext, err: unknown, code: ErrorCode, message: RegExp) {
  t.true(err instanceof TokioQuicheError, `expected a TokioQuicheError, got ${String(err)}`)
  t.is((err as TokioQuicheError).code, code)
  t.regex((err as Error).message, message)
}

test('listen: a port in use is ERR_LISTEN', async (t) => {
  const [first] = await listen(['127.0.0.1:0'], await params())
  t.teardown(() => first!.close())
  const err = await t.throwsAsync(listen([first!.localAddress], await params()))
  expectCode(t, err, 'ERR_LISTEN', /^sockets\[0\]\.address: cannot bind 127\.0\.0\.1:\d+: .*in use/i)
  // reusePort only shares a port among sockets that all set it.
  const shared = await t.throwsAsync(listen([{ address: first!.localAddress, reusePort: true }], await params()))
  expectCode(t, shared, 'ERR_LISTEN', /in use/i)
  const [a] = await listen([{ address: '127.0.0.1:0', reusePort: true }], await params())
  const [b] = await listen([{ address: a!.localAddress, reusePort: true }], await params())
  t.is(b!.localAddress, a!.localAddress)
  await Promise.all([a!.close(), b!.close()])
  expectCode(t, await t.throwsAsync(listen([{ port: 0, reusePort: 1 as never }], await params())), 'ERR_INVALID_ARG', /^sockets\[0\]\.reusePort: expected a boolean/)
})

test('headers: invalid names and values are refused before they reach the wire', async (t) => {
  const outcomes: unknown[] = []
  const server = await startServer(async (req) => {
    outcomes.push(await req.send.send(OutboundFrame.headers([[':status', '200'], [Buffer.from('bad name'), 'x']])).catch((e) => e))
    outcomes.push(await req.send.send(OutboundFrame.headers([[':status', '200'], ['x-ok', 'line\r\nbreak']])).catch((e) => e))
    outcomes.push(await req.send.send(OutboundFrame.headers([['x-no-status', '1']])).catch((e) => e))
    outcomes.push(await req.send.send(OutboundFrame.headers([[':status', '200'], ['connection', 'close']])).catch((e) => e))
    await req.send.send(OutboundFrame.headers([[':status', '200']]))
    await req.send.send(OutboundFrame.body(Buffer.from('still fine'), true))
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const res = await client.request()
  t.is(await res.body.text(), 'still fine', 'the stream survived the refused frames')
  expectCode(t, outcomes[0], 'ERR_INVALID_HEADER', /^headers\[1\]: the header name 'bad name' contains the invalid byte 0x20/)
  expectCode(t, outcomes[1], 'ERR_INVALID_HEADER', /^headers\[1\]: the value of 'x-ok' contains the forbidden byte 0x0d/)
  expectCode(t, outcomes[2], 'ERR_INVALID_HEADER', /response headers need a ':status'/)
  expectCode(t, outcomes[3], 'ERR_INVALID_HEADER', /'connection' is a connection-specific header/)

  expectCode(t, t.throws(() => client.requestSender().send({ requestId: 1, headers: [[':method', 'GET']] })), 'ERR_INVALID_HEADER', /request headers need a ':scheme'/)
  expectCode(t, await t.throwsAsync(client.request({ headers: { 'x-emoji': '\u{1F600}' } })), 'ERR_INVALID_HEADER', /^headers\[4\] value contains the character U\+1F600, which is not a single byte/)
  expectCode(t, t.throws(() => client.requestSender().send({ requestId: -1, headers: [] })), 'ERR_INVALID_ARG', /^request\.requestId/)
})

test('a frame after FIN, and writes after the connection closed', async (t) => {
  const outcomes: unknown[] = []
  let serverDone!: () => void
  const done = new Promise<void>((r) => (serverDone = r))
  let bodyArrived!: () => void
  const arrived = new Promise<void>((r) => (bodyArrived = r))
  const server = await startServer(
    async (req, controller) => {
      await req.send.sendHeaders([[':status', '200']])
      // The client closes once the response ends: its 'a' must have arrived by then.
      await arrived
      await req.send.end('bye')
      outcomes.push(await req.send.write('too late').catch((e) => e))
      await controller.closed
      outcomes.push((await req.recv.recv())?.data.toString())
      outcomes.push(await req.recv.recv().then((f) => 'read returned ' + JSON.stringify(f)).catch((e) => e))
      serverDone()
    },
    { onEvent: (event) => event.type === 'bodyBytesReceived' && event.numBytes > 0 && bodyArrived() },
  )
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const res = await client.request({ method: 'POST', body: (async function* () {
    yield Buffer.from('a')
    await done // the request body never ends: the connection closes first
  })() })
  t.is(await res.body.text(), 'bye')
  await client.close()
  await done
  expectCode(t, outcomes[0], 'ERR_STREAM_FINISHED', /^stream 0: a frame was sent after the stream's FIN/)
  t.is(outcomes[1], 'a', 'bytes that arrived before the close are still readable')
  expectCode(t, outcomes[2], 'ERR_STREAM_CLOSED', /^stream 0: the connection closed before the body ended/)
})

test('a body or trailers before the final response headers is refused; the connection keeps serving', async (t) => {
  const outcomes: unknown[] = []
  const server = await startServer(async (req) => {
    outcomes.push(await req.send.end('no head').catch((e) => e))
    outcomes.push(await req.send.send(OutboundFrame.trailers([['x-t', '1']])).catch((e) => e))
    await req.send.sendHeaders([[':status', '103'], ['link', '</a.css>; rel=preload']])
    outcomes.push(await req.send.write('after 103').catch((e) => e))
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end(`served ${req.streamId}`)
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.is(await (await client.request()).body.text(), 'served 0')
  t.is(await (await client.request()).body.text(), 'served 4', 'the connection survived')
  await client.close()
  for (const outcome of outcomes.slice(0, 3)) {
    expectCode(t, outcome, 'ERR_INVALID_ARG', /^frame: stream 0: send the response headers \(a final :status\) before body or trailers/)
  }
})

test('use after close: requests, commands and accept', async (t) => {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '204']])
    await req.send.end()
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  await client.close()
  expectCode(t, await t.throwsAsync(client.request()), 'ERR_CLOSED', /the connection is closed/)
  expectCode(t, t.throws(() => client.requestSender().send({ requestId: 1, headers: [[':method', 'GET'], [':scheme', 'https'], [':authority', 'a'], [':path', '/']] })), 'ERR_CLOSED', /closed/)
  expectCode(t, t.throws(() => client.sendGoaway()), 'ERR_CLOSED', /closed/)
  t.deepEqual(await client.close(), await client.closed, 'close() again resolves with the same info')
  await server.close()
  t.is(await server.listener.accept(), null, 'accept() after close() resolves null')
})
