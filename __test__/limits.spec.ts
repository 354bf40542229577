// Connection caps (ConnectionLimits, crates/core/src/limits.rs): tokio-quiche
// has none. Real connections on loopback, all from 127.0.0.1, so a per-source
// cap and the server-wide one are both reached from one process.
import test from 'ava'
import { Agent, type ClientH3Controller, RequestRefusedError, connect, createServer, fetch, serve } from 'tokio-quiche'
import { sleep, startServer, testIdentity } from './helpers.js'

async function ok(client: ClientH3Controller): Promise<string> {
  return (await client.request()).body.text()
}

/** Resolves once `predicate` holds, checking every 10 ms for up to 5 s. */
async function until(predicate: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !predicate(); i++) await sleep(10)
  if (!predicate()) throw new Error(`timed out waiting for ${what}`)
}

test('a source over maxConnectionsPerSource is refused with CONNECTION_REFUSED; a closed connection frees its place', async (t) => {
  const server = await startServer(async (req) => req.send.respond([[':status', '200']], 'ok'), { limits: { maxConnectionsPerSource: 3 } })
  const options = { serverName: 'localhost', ca: server.identity.cert }
  const admitted = await Promise.all([0, 1, 2].map(() => connect(server.address, options)))
  t.deepEqual(await Promise.all(admitted.map(ok)), ['ok', 'ok', 'ok'])
  t.is(server.listener.connectionCount, 3)

  const started = Date.now()
  const refused = await connect(server.address, options)
  const err = await t.throwsAsync(ok(refused))
  const info = await refused.closed
  t.log(`refused after ${Date.now() - started} ms: ${err?.message}`)
  t.is(info.peerTransportCode, 0x2, 'CONNECTION_REFUSED')
  t.regex(err!.message, /CONNECTION_REFUSED/)
  t.true(Date.now() - started < 2000, 'refused at once, not left to time out')
  await t.throwsAsync(refused.request(), { code: 'ERR_CLOSED', message: /CONNECTION_REFUSED/ }, 'a request after the close says why too')
  // Block this thread while the refusal arrives and the client's driver stops, so request() meets
  // a stopped driver before JS has heard the close: it is refused with the close's cause all the same.
  const raced = await connect(server.address, options)
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000)
  await t.throwsAsync(raced.request(), { instanceOf: RequestRefusedError, message: /CONNECTION_REFUSED/ })
  t.is(server.listener.refusedConnections, 2)
  t.is(server.listener.connectionCount, 3, 'the refused connection holds no place')
  t.deepEqual(await Promise.all(admitted.map(ok)), ['ok', 'ok', 'ok'], 'the admitted ones are unaffected')

  await admitted[0]!.close()
  await until(() => server.listener.connectionCount === 2, 'the closed connection to give its place back')
  const next = await connect(server.address, options)
  t.is(await ok(next), 'ok')
  t.is(server.listener.refusedConnections, 2)
  await Promise.all([...admitted.slice(1), next].map((c) => c.close()))
  await server.close()
})

test('serve({ limits: { maxConnections } }) caps the whole server and gives places back as connections end', async (t) => {
  const id = await testIdentity()
  const server = await serve(
    {
      socket: { host: '127.0.0.1', port: 0 },
      tls: { cert: id.certPath, privateKey: id.keyPath },
      settings: { maxIdleTimeoutMs: 500 },
      limits: { maxConnections: 2, maxConnectionsPerSource: Infinity },
    },
    () => new Response('hi'),
  )
  const options = { serverName: 'localhost', ca: id.cert, settings: { maxIdleTimeoutMs: 500 } }
  const clients = [await connect(server.address, options), await connect(server.address, options)]
  t.deepEqual(await Promise.all(clients.map(ok)), ['hi', 'hi'])
  const third = await connect(server.address, options)
  await t.throwsAsync(ok(third), { message: /CONNECTION_REFUSED/ })
  t.is((await third.closed).peerTransportCode, 0x2)
  // Idle connections that time out give their places back too.
  await Promise.all(clients.map((c) => c.closed))
  const later = await connect(server.address, options)
  t.is(await ok(later), 'hi')
  await later.close()
  await server.close()
})

test('a connection refused before JS started it frees no place it never had; accept() never sees it', async (t) => {
  let accepted = 0
  const server = await startServer(async (req) => req.send.respond([[':status', '200']], 'ok'), {
    limits: { maxConnections: 1 },
    onEvent: (e) => void (e.type === 'headers' && accepted++),
  })
  const options = { serverName: 'localhost', ca: server.identity.cert }
  const first = await connect(server.address, options)
  t.is(await ok(first), 'ok')
  for (let i = 0; i < 5; i++) {
    const refused = await connect(server.address, options)
    t.is((await refused.closed).peerTransportCode, 0x2)
  }
  t.is(server.listener.refusedConnections, 5)
  t.is(server.listener.connectionCount, 1)
  t.is(accepted, 1, 'no request of a refused connection reached the app')
  await first.close()
  await server.close()
})

test('fetch() to a server at its limit fails fast with the refusal, and works once a place is free', async (t) => {
  const server = await startServer(async (req) => req.send.respond([[':status', '200']], 'ok'), { limits: { maxConnections: 1 } })
  const holder = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.is(await ok(holder), 'ok')
  const agent = new Agent({ ca: server.identity.cert })
  const url = `https://localhost:${server.listener.port}/`
  const started = Date.now()
  await t.throwsAsync(fetch(url, { agent }), { message: /CONNECTION_REFUSED/ })
  t.true(Date.now() - started < 3000, `failed in ${Date.now() - started} ms`)
  await holder.close()
  await until(() => server.listener.connectionCount === 0, 'the holder to give its place back')
  t.is(await (await fetch(url, { agent })).text(), 'ok')
  await agent.close()
  await server.close()
})

test('serve() and createServer() check limits like ConnectionParams.newServer()', async (t) => {
  const id = await testIdentity()
  const tls = { cert: id.certPath, privateKey: id.keyPath }
  t.throws(() => createServer({ tls, limits: { maxConnections: -1 } }), { code: 'ERR_INVALID_ARG', message: /^limits\.maxConnections: / })
  await t.throwsAsync(serve({ tls, limits: { maxConnectionsPerSource: 0 } }, () => new Response()), { code: 'ERR_INVALID_ARG', message: /^limits\.maxConnectionsPerSource: / })
})
