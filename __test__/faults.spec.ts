// Faults (issue 18): close() with 100 requests in flight (every promise
// settles, completed responses keep every byte, the others fail with a typed
// error, whichever side closes); a peer that vanishes; certificate files that
// change or vanish after start; controllers nobody closed; SIGTERM under load.
// Where a fault could disturb others, a well-behaved client is served at the
// same time (its latency in t.log).
import test from 'ava'
import { rm, writeFile } from 'node:fs/promises'
import { CertificateRejectedError, type CloseInfo, type IncomingHeadersEvent, type ServerH3Controller, TokioQuicheError, connect, generateSelfSignedCertificate, writeSelfSignedCertificate } from 'tokio-quiche'
import { fetchText, header, latencySummary, patternBytes, servedDuring, sha256, sleep, spawnFixture, startServer } from './helpers.js'

const REQUESTS = 100
const BODY = 48 * 1024
const SETTLE_LIMIT_MS = 5000

const modes = [['client', 'as they arrive'], ['server', 'as they arrive'], ['client', 'only after the close']] as const
for (const [closer, reading] of modes) {
  test(`${closer} close() with ${REQUESTS} requests in flight, bodies read ${reading}: all settle, completed responses are whole`, async (t) => {
    let ended = 0
    const server = await startServer(async (req) => {
      const i = Number(req.headers.find(([n]) => n === ':path')![1].slice(1))
      await req.send.sendHeaders([[':status', '200']])
      if (i % 2 === 0) {
        await req.send.end(patternBytes(BODY, i + 1))
        ended++
      } else {
        await req.send.write('partial') // and never ends
      }
    })
    t.teardown(() => server.close())
    const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
    let closed!: () => void
    const afterClose = new Promise<void>((r) => (closed = r))
    // Each body is read as it comes (as an application would), or held unread until after the close.
    const outcomes = Array.from({ length: REQUESTS }, (_, i) =>
      client
        .request({ path: `/${i}` })
        .then(async (res) => (reading === 'as they arrive' ? res : afterClose.then(() => res)))
        .then((res) => res.body.bytes())
        .then((body) => ({ i, hash: sha256(body), size: body.length }), (err: unknown) => ({ i, err })),
    )
    while (ended < REQUESTS / 2) await sleep(10)
    if (reading === 'as they arrive') {
      // The completed responses must have arrived before the close for "lost" to mean anything.
      const completed = await Promise.race([Promise.all(outcomes.filter((_, i) => i % 2 === 0)), sleep(SETTLE_LIMIT_MS).then(() => null)])
      t.truthy(completed, 'the completed responses arrived')
    } else {
      await sleep(300) // the server has ended them: let the bytes cross loopback
    }
    if (closer === 'client') await client.close()
    else await server.close()
    closed()
    const settled = await Promise.race([Promise.all(outcomes), sleep(SETTLE_LIMIT_MS).then(() => null)])
    if (!settled) return t.fail(`not every promise settled within ${SETTLE_LIMIT_MS} ms`)
    for (const outcome of settled) {
      if (outcome.i % 2 === 0) {
        t.deepEqual(outcome, { i: outcome.i, hash: sha256(patternBytes(BODY, outcome.i + 1)), size: BODY }, `response ${outcome.i}`)
      } else {
        const err = (outcome as { err?: unknown }).err
        t.true(err instanceof TokioQuicheError, `request ${outcome.i}: ${String(err)}`)
        t.true(['ERR_CLOSED', 'ERR_STREAM_CLOSED'].includes((err as TokioQuicheError).code), `request ${outcome.i}: ${(err as TokioQuicheError).code}`)
      }
    }
    await client.close()
  })
}

/** Answers "ok", except /upload, which is handed to `onUpload` and left to it. */
async function uploadServer(settings: { maxIdleTimeoutMs: number }) {
  let uploaded!: (upload: { event: IncomingHeadersEvent; controller: ServerH3Controller }) => void
  const upload = new Promise<{ event: IncomingHeadersEvent; controller: ServerH3Controller }>((r) => (uploaded = r))
  const server = await startServer(async (event, controller) => {
    if (header(event.headers, ':path') === '/upload') return uploaded({ event, controller })
    await event.send.respond([[':status', '200']], 'ok')
  }, { settings })
  return { server, upload }
}

/** Reads what is left of a body: its size, or the error code it failed with. */
const readRest = (event: IncomingHeadersEvent) => event.recv.bytes().then((b) => `${b.length} bytes`, (e: TokioQuicheError) => e.code)

test('a peer that vanishes mid-upload (SIGKILL): the body read fails and the connection ends by idle timeout', async (t) => {
  const IDLE_MS = 1000
  const { server, upload } = await uploadServer({ maxIdleTimeoutMs: IDLE_MS })
  t.teardown(() => server.close())
  const peer = spawnFixture('uploading-client.ts', [server.address, server.identity.certPath])
  t.teardown(() => peer.child.kill('SIGKILL'))
  const { event, controller } = await upload
  await peer.line('sending')
  const first = await event.recv.recv()
  t.true((first?.data.length ?? 0) > 0, 'the first part of the body arrived')
  peer.child.kill('SIGKILL')
  const killed = performance.now()
  const rest = readRest(event)
  let info!: CloseInfo
  const latencies = await servedDuring(server, async () => (info = await controller.closed))
  const ms = performance.now() - killed
  t.log(`closed ${ms.toFixed(0)} ms after the SIGKILL (idle timeout ${IDLE_MS} ms); meanwhile ${latencySummary(latencies)}`)
  t.is((await peer.exited).signal, 'SIGKILL')
  t.like(info, { timedOut: true, peerTransportCode: undefined, peerApplicationCode: undefined, localApplicationCode: undefined })
  t.true(ms >= IDLE_MS * 0.8 && ms < IDLE_MS * 4, `ended ${ms.toFixed(0)} ms after the peer vanished`)
  t.is(await rest, 'ERR_STREAM_CLOSED')
  t.regex(String(event.recv.signal.reason), /the connection closed/, "the request's body signal aborted")
})

test("certificate files that change or vanish after start: new handshakes use the loaded certificate until setSecureContext(); a vanished file there is a typed error", async (t) => {
  const first = await writeSelfSignedCertificate(['localhost'])
  const server = await startServer(async (req) => req.send.respond([[':status', '200']], 'ok'), { identity: first })
  t.teardown(() => server.close())
  const trusting = (ca: string) => ({ serverName: 'localhost', ca })
  const open = await connect(server.address, trusting(first.cert))
  // Overwritten with another certificate: nothing reloads them behind the app's back.
  const second = generateSelfSignedCertificate(['localhost'])
  await writeFile(first.certPath, second.cert)
  await writeFile(first.keyPath, second.key)
  t.is(await fetchText(server.address, trusting(first.cert)), 'ok', 'still the certificate loaded at start')
  // Gone: the loaded certificate still serves new handshakes.
  await rm(first.certPath)
  await rm(first.keyPath)
  t.is(await fetchText(server.address, trusting(first.cert)), 'ok', 'served with the files gone')
  const missing = (() => {
    try {
      server.listener.setSecureContext({ cert: first.certPath, privateKey: first.keyPath })
    } catch (err) {
      return err
    }
  })()
  t.true(missing instanceof TokioQuicheError, String(missing))
  t.is((missing as TokioQuicheError).code, 'ERR_TLS_CERT')
  t.regex((missing as Error).message, /tls\.cert: cannot read/)
  t.is(await fetchText(server.address, trusting(first.cert)), 'ok', 'a failed setSecureContext changed nothing')
  // Reloaded from new files: new handshakes present the new certificate; the open connection keeps working.
  const third = await writeSelfSignedCertificate(['localhost'])
  server.listener.setSecureContext({ cert: third.certPath, privateKey: third.keyPath })
  t.is(await fetchText(server.address, trusting(third.cert)), 'ok', 'the reloaded certificate')
  await t.throwsAsync(fetchText(server.address, trusting(first.cert)), { instanceOf: CertificateRejectedError })
  t.is(await (await open.request()).body.text(), 'ok', 'the connection made before the change')
  await open.close()
})

interface Sample {
  rss: number
  heap: number
  fds: number
}

/** Runs dropped-controllers.ts; its per-round samples, exit code and time. */
async function controllersRun(rounds: number, perRound: number, mode: 'drop' | 'close') {
  const started = performance.now()
  const run = spawnFixture('dropped-controllers.ts', [String(rounds), String(perRound), '300', mode], ['--expose-gc'])
  const killer = setTimeout(() => run.child.kill('SIGKILL'), 60_000)
  const { code } = await run.exited
  clearTimeout(killer)
  const samples = (word: string) => run.lines.filter((l) => l.startsWith(`${word} `)).map((l) => JSON.parse(l.slice(word.length + 1)) as Sample)
  return { code, ms: performance.now() - started, baseline: samples('baseline')[0]!, rounds: samples('round'), closed: run.lines.includes('closed') }
}

const MiB = 1024 * 1024
const describe = (s: Sample) => `RSS ${(s.rss / MiB).toFixed(1)} MiB, heap ${(s.heap / MiB).toFixed(1)} MiB, ${s.fds} fds`

test('SIGTERM during load: the requests in flight finish whole (or are refused unprocessed), later ones fail typed, and the server exits 0 by itself', async (t) => {
  const server = spawnFixture('sigterm-server.ts', [])
  t.teardown(() => server.child.kill('SIGKILL'))
  const ca = await server.line('cert ')
  const address = await server.line('listening ')
  const client = await connect(address, { serverName: 'localhost', ca })
  type Outcome = { i: number; ok?: boolean; code?: string }
  const request = (i: number): Promise<Outcome> =>
    client
      .request({ path: `/${i}` })
      .then((res) => res.body.bytes())
      .then(
        (body): Outcome => ({ i, ok: sha256(body) === sha256(patternBytes(16 * 1024, i + 1)) }),
        (err: unknown): Outcome => ({ i, code: err instanceof TokioQuicheError ? err.code : `untyped: ${String(err)}` }),
      )
  // 20 requests always in flight on one connection, until the signal.
  const outcomes: Promise<Outcome>[] = []
  let next = 0
  let stop = false
  const workers = Array.from({ length: 20 }, async () => {
    while (!stop) {
      const outcome = request(next++)
      outcomes.push(outcome)
      // A refused request settles in microtasks alone: yield so the timers run.
      if ((await outcome).code) await sleep(1)
    }
  })
  while (next < 200) await sleep(5)
  const doneBefore = (await Promise.all(outcomes.map((o) => Promise.race([o, Promise.resolve(null)])))).filter(Boolean).length
  const inFlight = outcomes.length - doneBefore
  server.child.kill('SIGTERM')
  await server.line('sigterm')
  // New requests keep coming across the GOAWAY, so some reach the client's driver after it read it.
  await sleep(50)
  stop = true
  const all = await Promise.race([Promise.all(workers).then(() => Promise.all(outcomes)), sleep(10_000).then(() => null)])
  if (!all) return t.fail('requests still pending 10 s after SIGTERM')
  t.log(`${all.length} requests, ${inFlight} in flight at SIGTERM`)
  t.true(inFlight > 0, 'the signal came with requests in flight')
  for (const o of all) {
    if (o.ok !== undefined) t.true(o.ok, `request ${o.i}: the body's SHA-256`)
    else t.is(o.code, 'ERR_REQUEST_REFUSED', `request ${o.i} was lost, not refused`)
  }
  // The ones in flight at the signal may be refused unprocessed; none of those done before is lost.
  t.true(all.filter((o) => o.ok).length >= doneBefore)
  // After the GOAWAY: refused at once, or the connection is gone; typed either way, never a hang.
  const late = await Promise.race([Promise.all([0, 1, 2].map((k) => request(10_000 + k))), sleep(10_000).then(() => null)])
  if (!late) return t.fail('a request after the shutdown hung')
  for (const o of late) t.true(o.code === 'ERR_REQUEST_REFUSED' || o.code === 'ERR_CLOSED', `late request: ${JSON.stringify(o)}`)
  await client.close()
  const exited = await Promise.race([server.exited, sleep(10_000).then(() => null)])
  t.deepEqual(exited, { code: 0, signal: null }, 'the server exits 0 by itself after its graceful shutdown')
  t.true(server.lines.includes('drained'))
})

test('500 controllers nobody closed: garbage-collected without a crash, memory and fds flat across rounds, the process exits by itself', async (t) => {
  const { code, ms, baseline, rounds, closed } = await controllersRun(10, 50, 'drop')
  t.is(code, 0, 'exit code (killed after 60 s if it hung)')
  t.true(closed)
  t.is(rounds.length, 10)
  const [first, last] = [rounds[0]!, rounds[rounds.length - 1]!]
  t.log(`baseline ${describe(baseline)}; after round 1 ${describe(first)}; after round 10 ${describe(last)}; exited after ${(ms / 1000).toFixed(1)} s`)
  // Rounds 2-10 drop 450 more connections: nothing of them may stay.
  t.true(last.heap - first.heap < 2 * MiB, 'JS heap flat')
  t.true(last.rss - first.rss < 16 * MiB, 'RSS flat')
  // Every socket is released (one stuck send task used to keep some).
  t.true(last.fds - first.fds <= 5, `${last.fds - first.fds} more fds after 450 more dropped connections`)
})

// Found here: client connections closed with close() kept their UDP socket
// (97 of 100 closed one at a time) until the process exited. One of
// tokio-quiche's Initial-sending tasks never woke (see crates/core/src/client.rs).
test('client connections closed with close() release their UDP sockets', async (t) => {
  const { code, rounds } = await controllersRun(10, 5, 'close')
  t.is(code, 0)
  const [first, last] = [rounds[0]!, rounds[rounds.length - 1]!]
  t.log(`after round 1 ${first.fds} fds, after round 10 ${last.fds} (45 connections later)`)
  t.true(last.fds - first.fds <= 5, `${last.fds - first.fds} more fds after 45 more closed connections`)
})

/** A server whose responses stop after ~100 ms of body and are reset (0x10c), announcing `length` if given. */
async function resettingServer(length?: number) {
  return startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200'], ...(length === undefined ? [] : [['content-length', String(length)] as [string, string]])])
    const until = Date.now() + 100
    while (Date.now() < until) await req.send.write(new Uint8Array(16 * 1024))
    req.send.close()
  })
}

/** How each of `rounds` downloads from `server` ended: 'complete' or the error's code. */
async function downloadEnds(server: Awaited<ReturnType<typeof resettingServer>>, rounds: number): Promise<Record<string, number>> {
  const ends: Record<string, number> = {}
  for (let i = 0; i < rounds; i++) {
    const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
    const response = await client.request({ path: '/' })
    const end = await response.body.bytes().then(() => 'complete', (e: TokioQuicheError) => e.code)
    ends[end] = (ends[end] ?? 0) + 1
    await client.close()
  }
  return ends
}

test('a response with a content-length that the server resets midway never reads as complete', async (t) => {
  const server = await resettingServer(1e9)
  t.teardown(() => server.close())
  const ends = await downloadEnds(server, 20)
  t.log(JSON.stringify(ends))
  t.is(ends.complete ?? 0, 0, 'no truncated body reported complete')
})

test.failing('KNOWN (quiche#2277): a response without content-length that the server resets midway never reads as complete', async (t) => {
  // quiche's HTTP/3 layer reports the reset stream as finished when its DATA
  // was read before the RESET_STREAM arrived; tokio-quiche then sends FIN.
  // aioquic sees 0x10c from the same server every time.
  const server = await resettingServer()
  t.teardown(() => server.close())
  const ends = await downloadEnds(server, 20)
  t.log(JSON.stringify(ends))
  t.is(ends.complete ?? 0, 0, 'no truncated body reported complete')
})

test('a body shorter or longer than its content-length is an error (RFC 9114 §4.1.2); a matching or empty one is not', async (t) => {
  const server = await startServer(async (req) => {
    const [length, body, chunks] = header(req.headers, ':path')!.slice(1).split('/') as [string, string, string?]
    if (chunks === undefined) return req.send.respond([[':status', '200'], ['content-length', length]], body)
    // `body` sent `chunks` times, each its own write: a body in many chunks.
    await req.send.sendHeaders([[':status', '200'], ['content-length', length]])
    for (let i = 0; i < Number(chunks); i++) await req.send.write(body.repeat(4096))
    await req.send.end()
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const read = async (path: string) => (await client.request({ path })).body.text().then((text) => `ok ${text}`, (e: TokioQuicheError) => `${e.code}: ${e.message}`)
  t.is(await read('/5/short'), 'ok short')
  t.is(await read('/100/'), 'ok ', 'an empty body (as for HEAD or 304) is not checked')
  t.regex(await read('/10/short'), /^ERR_STREAM_CLOSED: stream \d+: the body ended after 5 of the 10 bytes its content-length announced$/)
  t.regex(await read('/3/short'), /^ERR_STREAM_CLOSED: .* after 5 of the 3 bytes/)
  // Bodies in many chunks, read whole by bytes() (which fills a buffer of the announced size).
  const readBytes = async (path: string) => (await client.request({ path })).body.bytes().then((b) => `ok ${sha256(b)}`, (e: TokioQuicheError) => `${e.code}: ${e.message}`)
  const total = 'abcd'.length * 4096 * 32
  t.is(await readBytes(`/${total}/abcd/32`), `ok ${sha256(Buffer.from('abcd'.repeat(4096 * 32)))}`)
  t.regex(await readBytes(`/${total - 1}/abcd/32`), new RegExp(`^ERR_STREAM_CLOSED: .* after ${total} of the ${total - 1} bytes`))
  t.regex(await readBytes(`/${total + 1}/abcd/32`), new RegExp(`^ERR_STREAM_CLOSED: .* after ${total} of the ${total + 1} bytes`))
})
