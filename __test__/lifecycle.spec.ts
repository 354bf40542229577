// Lifecycle: close() settles everything and the process then exits on its
// own, within 5 s, in a fresh child process.
import test from 'ava'
import { spawn } from 'node:child_process'
import { type CloseInfo, ConnectionParams, ServerH3Driver, connect, listen } from 'tokio-quiche'
import { startServer, testIdentity } from './helpers.js'

function run(script: string, args: string[] = []): Promise<{ code: number | null; stdout: string; ms: number }> {
  const started = Date.now()
  const child = spawn(process.execPath, ['--import=tsx', `${__dirname}/fixtures/${script}`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  child.stdout!.on('data', (d) => (stdout += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), 5000)
  return new Promise((resolve) => {
    child.on('exit', (code) => {
      clearTimeout(killer)
      resolve({ code, stdout, ms: Date.now() - started })
    })
  })
}

for (const [mode, start] of [['client-first', 'accept'], ['server-first', 'accept'], ['client-first', 'startH3'], ['server-first', 'startH3']] as const) {
  test(`server (${start}) + client + one request, closed ${mode}: the process exits by itself within 5 s`, async (t) => {
    const { code, stdout, ms } = await run('one-request.ts', [mode, start])
    t.is(code, 0, `exit code (killed after 5 s if it hung); stdout:\n${stdout}`)
    t.regex(stdout, /^body ok$/m)
    t.regex(stdout, /^events iterator done true$/m)
    t.regex(stdout, /^closed$/m)
    if (mode === 'server-first') t.regex(stdout, /^client saw peer close 256$/m)
    t.log(`exited in ${ms} ms`)
  })
}

for (const [mode, start] of [['client-first', 'startRaw'], ['server-first', 'startRaw'], ['client-first', 'accept']] as const) {
  test(`raw QUIC server (${start}) + connectQuic client, one echo, closed ${mode}: the process exits by itself within 5 s`, async (t) => {
    const { code, stdout } = await run('raw-echo.ts', [mode, start])
    t.is(code, 0, `exit code (killed after 5 s if it hung); stdout:\n${stdout}`)
    t.regex(stdout, /^echo ping$/m)
    t.regex(stdout, /^datagram dgram$/m)
    t.regex(stdout, /^streams iterator done true$/m)
    t.regex(stdout, /^closed$/m)
    // A listener closes its raw connections with application code 0.
    if (mode === 'server-first') t.regex(stdout, /^client saw peer close 0$/m)
  })
}

test('close() settles a pending accept(), event iteration and body reads', async (t) => {
  let serverSide!: () => void
  const requestSeen = new Promise<void>((r) => (serverSide = r))
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200']])
    await req.send.write('part')
    serverSide() // and never finish the body
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const res = await client.request()
  await requestSeen
  const first = await res.body.recv()
  t.is(first?.data.toString(), 'part')
  const pendingRead = res.body.recv().then(
    () => 'resolved',
    (e: { code: string }) => e.code,
  )
  const drained = (async () => {
    for await (const _ of client.events());
    return 'done'
  })()
  const pendingAccept = server.listener.accept()
  await client.close()
  t.is(await pendingRead, 'ERR_STREAM_CLOSED')
  t.is(await drained, 'done')
  await server.close()
  t.is(await pendingAccept, null)
})

test('close() releases the UDP port: the same address can be bound again at once', async (t) => {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '204']])
    await req.send.end()
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.is((await client.request()).status, 204)
  await server.close() // also closes the client's connection from the server side
  await client.closed
  // tokio-quiche keeps an idle listener's socket until a packet wakes it
  // (cloudflare/quiche#2760); close() wakes it. Allow the worker a moment.
  let rebound: Awaited<ReturnType<typeof listen>> | undefined
  for (let attempt = 0; attempt < 20 && !rebound; attempt++) {
    rebound = await listen([server.address], ConnectionParams.newServer({ tls: { cert: server.identity.certPath, privateKey: server.identity.keyPath } })).catch(async () => {
      await new Promise((r) => setTimeout(r, 50))
      return undefined
    })
  }
  t.truthy(rebound, `${server.address} was bound again`)
  await rebound?.[0]?.close()
})

test('an accepted connection can be refused: the client fails its handshake, and start() then says it was closed', async (t) => {
  const id = await testIdentity()
  const [listener] = await listen(['127.0.0.1:0'], ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath } }))
  t.teardown(() => listener!.close())
  const refused = (async () => {
    const conn = await listener!.accept()
    await conn!.close()
    return conn!
  })()
  const err = await t.throwsAsync(connect(listener!.localAddress, { serverName: 'localhost', ca: id.cert, settings: { handshakeTimeoutMs: 1000 } }))
  t.is((err as { code?: string }).code, 'ERR_CONNECT')
  const conn = await refused
  const { driver } = ServerH3Driver.new()
  const startErr = t.throws(() => conn.start(driver))
  t.is((startErr as { code?: string }).code, 'ERR_CLOSED')
  t.regex(startErr!.message, /^connection: it was already started or closed$/)
})

test('concurrent accept() calls each get their own connection; one still pending resolves null on close()', async (t) => {
  const id = await testIdentity()
  const [listener] = await listen(['127.0.0.1:0'], ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath } }))
  const accepts = [listener!.accept(), listener!.accept(), listener!.accept()]
  const served = accepts.slice(0, 2).map(async (accepted) => {
    const conn = (await accepted)!
    const { driver, controller } = ServerH3Driver.new()
    const { peerAddress } = conn.start(driver)
    for await (const event of controller) if (event.type === 'headers') await event.send.respond([[':status', '200']], peerAddress)
  })
  const clients = await Promise.all([0, 1].map(() => connect(listener!.localAddress, { serverName: 'localhost', ca: id.cert })))
  const seen = await Promise.all(clients.map(async (c) => (await (await c.request()).body.text()) === c.localAddress))
  t.deepEqual(seen, [true, true], 'each connection was served by the accept() that got it')
  await Promise.all(clients.map((c) => c.close()))
  await listener!.close()
  t.is(await accepts[2], null)
  await Promise.all(served)
})

test("startH3(): a connection's end reaches its controller on an otherwise quiet listener, and so do several at once", async (t) => {
  const id = await testIdentity()
  const [listener] = await listen(['127.0.0.1:0'], ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath } }))
  const ended: Promise<CloseInfo>[] = []
  const serving = (async () => {
    for await (const controller of listener!.startH3()) {
      ended.push(controller.closed)
      void (async () => {
        for await (const event of controller) if (event.type === 'headers') await event.send.respond([[':status', '200']], 'hi')
      })()
    }
  })()
  const options = { serverName: 'localhost', ca: id.cert }
  // Alone: nothing else is coming, so the end must not wait for company.
  const alone = await connect(listener!.localAddress, options)
  t.is(await (await alone.request()).body.text(), 'hi')
  await alone.close({ errorCode: 0x100 })
  t.is((await ended[0])!.peerApplicationCode, 0x100)
  // Together: ends closed at once wait for each other (crates/core/src/outbox.rs
  // tests how); each still reaches its own controller.
  const clients = await Promise.all([0, 1, 2, 3].map(() => connect(listener!.localAddress, options)))
  await Promise.all(clients.map(async (c) => (await c.request()).body.text()))
  await Promise.all(clients.map((c, i) => c.close({ errorCode: 0x100 + i })))
  const infos = await Promise.all(ended.slice(1))
  t.deepEqual(infos.map((i) => i.peerApplicationCode).sort(), [0x100, 0x101, 0x102, 0x103])
  await listener!.close()
  await serving
})

test('startH3(): every connection is started and served; the iteration ends when the listener closes; accept() cannot be mixed in', async (t) => {
  const served: string[] = []
  const server = await startServer(async (req, controller) => {
    served.push(controller.peerAddress!)
    await req.send.respond([[':status', '200']], controller.peerAddress!)
  }, { startH3: true })
  const clients = await Promise.all([0, 1, 2].map(() => connect(server.address, { serverName: 'localhost', ca: server.identity.cert })))
  const bodies = await Promise.all(clients.map(async (c) => (await c.request()).body.text()))
  t.deepEqual(bodies, clients.map((c) => c.localAddress), "each client got its own connection's answer")
  t.is(new Set(served).size, 3)
  const again = t.throws(() => server.listener.startH3())
  t.is((again as { code?: string }).code, 'ERR_INVALID_ARG')
  t.regex(again!.message, /^startH3: this listener's connections already go to startH3\(\)$/)
  const mixed = await t.throwsAsync(server.listener.accept())
  t.regex(mixed!.message, /^accept: this listener's connections already go to startH3\(\)$/)
  await Promise.all(clients.map((c) => c.close()))
  await server.close()
  const after = await server.listener.startH3().next()
  t.true(after.done, 'a closed listener yields nothing')
})
