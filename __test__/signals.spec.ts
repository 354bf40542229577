// Stream shutdowns as AbortSignals: request({ signal }) cancels a request;
// the stream objects' `signal` aborts on a peer reset, a local
// shutdownStream() and a closed connection; serve()'s Request.signal follows.
import test from 'ava'
import { type IncomingHeadersEvent, type ServerH3Controller, connect, serve } from 'tokio-quiche'
import { sleep, startServer, testIdentity } from './helpers.js'

/** A server whose handlers park until `release()`, recording each request. */
async function parkingServer() {
  const requests: { event: IncomingHeadersEvent; controller: ServerH3Controller }[] = []
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  const server = await startServer(async (event, controller) => {
    requests.push({ event, controller })
    await released
  })
  return { server, requests, release }
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await sleep(20)
}

/**
 * A request body that sends one chunk and then waits for `signal`: the
 * request stays unfinished, so a cancel reaches the server as RESET_STREAM
 * (after the request's FIN only STOP_SENDING would, which a server sees at
 * its next write).
 */
async function* unfinished(signal: AbortSignal): AsyncGenerator<Uint8Array> {
  yield Buffer.from('partial')
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
}

test('request({ signal }): aborting before the response rejects and resets the stream with 0x10c; the server sees its reader abort', async (t) => {
  const { server, requests, release } = await parkingServer()
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const aborter = new AbortController()
  const pending = client.request({ method: 'POST', body: unfinished(aborter.signal), signal: aborter.signal })
  await until(() => requests.length === 1)
  const { event } = requests[0]!
  aborter.abort(new Error('user gave up'))
  await t.throwsAsync(pending, { message: 'user gave up' })
  await until(() => event.recv.signal.aborted)
  t.true(event.recv.signal.aborted, "the server's reader signal aborted")
  t.regex(String(event.recv.signal.reason), /stream 0 was reset by the peer/)
  await t.throwsAsync(event.recv.bytes(), { code: 'ERR_STREAM_RESET', message: /code 0x10c/ })
  t.false(event.send.signal.aborted, 'RESET_STREAM alone leaves the server free to write')
  release()
  await client.close()
})

test('a writer never used before its connection closed: respond() and write() are refused with ERR_STREAM_CLOSED', async (t) => {
  const outcomes: unknown[] = []
  let handled!: () => void
  const done = new Promise<void>((r) => (handled = r))
  const server = await startServer(async (req, controller) => {
    await controller.closed
    outcomes.push(req.send.signal.aborted, await req.send.respond([[':status', '200']], 'too late').catch((e) => e))
    outcomes.push(await req.send.write('too late').catch((e) => e), req.send.isClosed)
    handled()
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const pending = client.request()
  await sleep(100)
  await client.close()
  await t.throwsAsync(pending, { code: 'ERR_CLOSED' })
  await done
  t.true(outcomes[0], 'the connection closing aborted send.signal')
  for (const refused of [outcomes[1], outcomes[2]]) {
    t.is((refused as { code?: string }).code, 'ERR_STREAM_CLOSED')
    t.regex(String(refused), /stream 0: the stream is closed for writing/)
  }
  t.true(outcomes[3], 'isClosed')
})

test('a signal already aborted rejects at once', async (t) => {
  const { server } = await parkingServer()
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  await t.throwsAsync(client.request({ signal: AbortSignal.abort(new Error('too late')) }), { message: 'too late' })
  await client.close()
})

test('shutdownStream() aborts the local objects it shuts; closing the connection aborts the rest', async (t) => {
  const { server, requests, release } = await parkingServer()
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  void client.request({ path: '/a' }).catch(() => {})
  void client.request({ path: '/b' }).catch(() => {})
  await until(() => requests.length === 2)
  const [a, b] = requests.map((r) => r.event)
  requests[0]!.controller.shutdownStream(a!.streamId, { write: 0x10c })
  t.true(a!.send.signal.aborted)
  t.like(a!.send.signal.reason, { code: 'ERR_STREAM_CLOSED' })
  t.regex(String(a!.send.signal.reason), /was shut down locally \(RESET_STREAM 0x10c\)/)
  t.false(a!.recv.signal.aborted, 'only the write side was shut')
  t.false(b!.send.signal.aborted)
  await client.close()
  await until(() => b!.send.signal.aborted)
  t.like(b!.send.signal.reason, { code: 'ERR_CLOSED' })
  t.false(b!.recv.signal.aborted, 'a GET has no body whose end could fail')
  release()
})

test("serve(): the handler's request.signal aborts when the client cancels", async (t) => {
  const id = await testIdentity()
  let seen: Request | undefined
  const server = await serve({ socket: '127.0.0.1:0', tls: { cert: id.certPath, privateKey: id.keyPath } }, async (request) => {
    seen = request
    await new Promise((resolve) => request.signal.addEventListener('abort', resolve, { once: true }))
    return new Response('never read')
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: id.cert })
  const aborter = new AbortController()
  const pending = client.request({ method: 'POST', body: unfinished(aborter.signal), signal: aborter.signal }).catch((e) => e)
  await until(() => seen !== undefined)
  aborter.abort(new Error('cancelled'))
  t.is((await pending).message, 'cancelled')
  await until(() => seen!.signal.aborted)
  t.true(seen!.signal.aborted)
  await client.close()
})
