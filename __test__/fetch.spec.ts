// fetch() over HTTP/3 against our own serve() server.
import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Agent, type CertificateRejectedError, type ServerH3Controller, type StreamResetError, type TokioQuicheError, fetch, serve } from 'tokio-quiche'
import { header, patternBytes, sha256, sleep, startServer, testIdentity } from './helpers.js'

/** An echo server: the request's method, content-type and body SHA-256 in headers, the body echoed back. */
async function start(handler?: Parameters<typeof serve>[1], onConnection?: (remote: string) => void) {
  const id = await testIdentity()
  const server = await serve({ socket: '127.0.0.1:0', tls: { cert: id.certPath, privateKey: id.keyPath } }, handler ?? (async (request, info) => {
    onConnection?.(info.remoteAddress)
    const bytes = new Uint8Array(await request.arrayBuffer())
    return new Response(bytes, { headers: { 'x-method': request.method, 'x-type': request.headers.get('content-type') ?? '', 'x-sha': sha256(bytes) } })
  }))
  const agent = new Agent({ ca: id.cert })
  const base = `https://localhost:${server.port}`
  return { server, agent, base, id }
}

const bodies: [string, () => unknown, Uint8Array][] = [
  ['string', () => 'hello h3', Buffer.from('hello h3')],
  ['Uint8Array', () => patternBytes(70_000), patternBytes(70_000)],
  ['ArrayBuffer', () => new Uint8Array(patternBytes(1000)).buffer, patternBytes(1000)],
  ['Blob', () => new Blob([new Uint8Array(patternBytes(5000))]), patternBytes(5000)],
  ['URLSearchParams', () => new URLSearchParams({ a: '1', b: 'two' }), Buffer.from('a=1&b=two')],
  ['ReadableStream', () => new Blob([new Uint8Array(patternBytes(3000))]).stream(), patternBytes(3000)],
  ['async iterable', () => (async function* () { yield patternBytes(10); yield patternBytes(20, 3) })(), Buffer.concat([patternBytes(10), patternBytes(20, 3)])],
]
for (const [name, make, expected] of bodies) {
  test(`a ${name} body is echoed byte for byte`, async (t) => {
    const { server, agent, base } = await start()
    t.teardown(async () => { await agent.close(); await server.close() })
    const res = await fetch(`${base}/echo?q=1`, { method: 'POST', body: make() as BodyInit, agent })
    t.is(res.status, 200)
    t.is(res.url, `${base}/echo?q=1`)
    t.is(res.headers.get('x-sha'), sha256(expected))
    t.is(sha256(new Uint8Array(await res.arrayBuffer())), sha256(expected))
    if (name === 'URLSearchParams') t.is(res.headers.get('x-type'), 'application/x-www-form-urlencoded;charset=UTF-8')
  })
}

test('FormData gets a multipart content-type with its boundary', async (t) => {
  const { server, agent, base } = await start()
  t.teardown(async () => { await agent.close(); await server.close() })
  const form = new FormData()
  form.set('field', 'value')
  const res = await fetch(base, { method: 'PUT', body: form, agent })
  t.regex(res.headers.get('x-type')!, /^multipart\/form-data; boundary=/)
  t.regex(await res.text(), /name="field"\r\n\r\nvalue/)
})

test('a streamed 20 MiB upload and download match by SHA-256; 10 concurrent fetches share one connection', async (t) => {
  const remotes = new Set<string>()
  const { server, agent, base } = await start(undefined, (r) => remotes.add(r))
  t.teardown(async () => { await agent.close(); await server.close() })
  const big = patternBytes(20 * 1024 * 1024, 5)
  const res = await fetch(base, { method: 'POST', body: new Blob([new Uint8Array(big)]).stream(), agent })
  t.is(res.headers.get('x-sha'), sha256(big))
  t.is(sha256(new Uint8Array(await res.arrayBuffer())), sha256(big))
  const all = await Promise.all(Array.from({ length: 10 }, (_, i) => fetch(base, { method: 'POST', body: `n${i}`, agent }).then((r) => r.text())))
  t.deepEqual(all, Array.from({ length: 10 }, (_, i) => `n${i}`))
  t.is(remotes.size, 1)
})

test("the Response behaves as undici's whichever way its body is read", async (t) => {
  const { server, agent, base } = await start(async (request) => {
    const path = new URL(request.url).pathname
    if (path === '/bom') return new Response(new Uint8Array([0xef, 0xbb, 0xbf, ...Buffer.from('{"a":"é"}')]))
    if (path === '/empty') return new Response(null, { status: 204, headers: { 'x-empty': '1' } })
    return new Response('{"n":42}', { status: 201, headers: { 'content-type': 'application/json', 'x-n': '42' } })
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  const reference = new Response('{"n":42}')
  await reference.text()
  const res = await fetch(`${base}/json`, { agent })
  t.true(res instanceof Response)
  t.like(res, { status: 201, ok: true, statusText: '', type: 'default', redirected: false, bodyUsed: false, url: `${base}/json` })
  t.deepEqual(await res.json(), { n: 42 })
  t.true(res.bodyUsed)
  const again = (await t.throwsAsync(res.text(), { instanceOf: TypeError }))!
  t.regex(again.message, /Body is unusable/)
  t.is(res.body!.locked, reference.body!.locked)
  await t.throwsAsync(res.arrayBuffer(), { instanceOf: TypeError })

  const bom = await fetch(`${base}/bom`, { agent })
  t.deepEqual(await bom.json(), { a: 'é' })
  const buffer = await (await fetch(`${base}/bom`, { agent })).arrayBuffer()
  t.true(buffer instanceof ArrayBuffer)
  t.is(Buffer.from(buffer).toString('hex'), 'efbbbf' + Buffer.from('{"a":"é"}').toString('hex'))
  const bytes = await (await fetch(`${base}/x`, { agent })).bytes()
  t.is(Object.getPrototypeOf(bytes), Uint8Array.prototype)
  t.is(Buffer.from(bytes).toString(), '{"n":42}')

  // What the stand-in defers to a real Response: the stream, clone(), blob(), undici's own methods.
  const streamed = await fetch(`${base}/x`, { agent })
  const chunks: Uint8Array[] = []
  for await (const chunk of streamed.body!) chunks.push(chunk)
  t.is(Buffer.concat(chunks).toString(), '{"n":42}')
  t.true(streamed.bodyUsed)
  await t.throwsAsync(streamed.text(), { instanceOf: TypeError })
  const cloned = await fetch(`${base}/x`, { agent })
  const twin = cloned.clone()
  t.deepEqual([await cloned.text(), await twin.text()], ['{"n":42}', '{"n":42}'])
  const blob = await (await fetch(`${base}/x`, { agent })).blob()
  t.like(blob, { type: 'application/json', size: 8 })
  t.is(await Response.prototype.text.call(await fetch(`${base}/x`, { agent })), '{"n":42}')
  const proxied = new Response((await fetch(`${base}/x`, { agent })).body, await fetch(`${base}/x`, { agent }))
  t.like(proxied, { status: 201 })
  t.is(proxied.headers.get('x-n'), '42')
  t.is(await proxied.text(), '{"n":42}')

  const empty = await fetch(`${base}/empty`, { agent })
  t.like(empty, { status: 204, ok: true, body: null, bodyUsed: false })
  t.deepEqual([await empty.text(), await empty.text()], ['', ''])
  t.is(empty.headers.get('x-empty'), '1')
  const head = await fetch(`${base}/x`, { method: 'HEAD', agent })
  t.is(head.body, null)
  t.is(await head.text(), '')
})

test('abort before the response rejects with AbortError; a timeout with TimeoutError', async (t) => {
  const { server, agent, base } = await start(async () => { await sleep(2000); return new Response('late') })
  t.teardown(async () => { await agent.close(); await server.close() })
  const aborter = new AbortController()
  setTimeout(() => aborter.abort(), 100)
  const err = await t.throwsAsync(fetch(base, { agent, signal: aborter.signal }), { any: true })
  t.is((err as Error).name, 'AbortError')
  const timeout = await t.throwsAsync(fetch(base, { agent, signal: AbortSignal.timeout(100) }), { any: true })
  t.is((timeout as Error).name, 'TimeoutError')
})

test('redirects: follow (303 becomes GET), manual, error', async (t) => {
  const { server, agent, base } = await start(async (request) => {
    const path = new URL(request.url).pathname
    if (path === '/see-other') return new Response(null, { status: 303, headers: { location: '/final' } })
    return new Response(`${request.method} ${path}`)
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  const followed = await fetch(`${base}/see-other`, { method: 'POST', body: 'x', agent })
  t.is(await followed.text(), 'GET /final')
  t.true(followed.redirected)
  t.is(followed.url, `${base}/final`)
  const manual = await fetch(`${base}/see-other`, { redirect: 'manual', agent })
  t.is(manual.status, 303)
  const err = await t.throwsAsync<TokioQuicheError>(fetch(`${base}/see-other`, { redirect: 'error', agent }))
  t.is(err?.code, 'ERR_REDIRECT')
})

test('TLS: an untrusted certificate is refused by default; ca and insecureSkipVerify accept it', async (t) => {
  const { server, agent, base } = await start(() => new Response('ok'))
  t.teardown(async () => { await agent.close(); await server.close() })
  const err = await t.throwsAsync<TokioQuicheError>(fetch(base, { agent: new Agent() }))
  t.is(err?.code, 'ERR_TLS_CERT_REJECTED')
  t.is((err as CertificateRejectedError).verifyError, 'DEPTH_ZERO_SELF_SIGNED_CERT')
  t.is(await (await fetch(base, { agent })).text(), 'ok')
  const insecure = new Agent({ insecureSkipVerify: true })
  t.is(await (await fetch(base, { agent: insecure })).text(), 'ok')
  await insecure.close()
})

// fetch() parses common inits itself (faster than a Request on Node 20) and
// hands the rest to Request: both paths must send what Request would.
test('methods, content-types and bodies go out as new Request() reads them, on both parsing paths', async (t) => {
  const { server, agent, base } = await start()
  t.teardown(async () => { await agent.close(); await server.close() })
  const view = patternBytes(100).subarray(10, 60)
  const cases: [string | URL, RequestInit][] = [
    [base, {}],
    [new URL(`${base}/url-object`), { method: 'delete' }],
    [base, { method: 'post', body: 'héllo' }],
    [base, { method: 'PUT', body: 'x', headers: { 'content-type': 'application/json' } }],
    [base, { method: 'POST', body: view as Uint8Array<ArrayBuffer> }],
    [base, { method: 'POST', body: new DataView(patternBytes(64).buffer as ArrayBuffer, 8, 16) }],
    [base, { method: 'PATCH', body: patternBytes(30) as Uint8Array<ArrayBuffer> }],
    [base, { method: 'patch', body: 'lower-case patch is not normalized' }],
    [base, { method: 'POST', body: 'through Request', cache: 'no-store' }],
  ]
  for (const [input, init] of cases) {
    const expected = new Request(input, init)
    const sent = new Uint8Array(await expected.arrayBuffer())
    const res = await fetch(input, { ...init, agent })
    const what = `${init.method ?? 'GET'} ${typeof init.body}`
    t.is(res.headers.get('x-method'), expected.method, what)
    t.is(res.headers.get('x-type'), expected.headers.get('content-type') ?? '', what)
    t.is(res.headers.get('x-sha'), sha256(sent), what)
  }
  // The body is copied when fetch() is called, as Request does.
  const reused = Buffer.from('original')
  const pending = fetch(base, { method: 'POST', body: reused, agent })
  reused.write('changed!')
  t.is(await (await pending).text(), 'original')
})

test('inits that Request rejects are ERR_INVALID_ARG on both parsing paths', async (t) => {
  const cases: [string, RequestInit][] = [
    ['https://localhost/', { method: 'GET', body: 'a GET with a body' }],
    ['https://localhost/', { method: 'HEAD', body: new Uint8Array(1) }],
    ['https://localhost/', { method: 'CONNECT' }],
    ['https://localhost/', { method: 'bad method' }],
    ['https://localhost/', { headers: { 'bad name': 'x' } }],
    ['https://localhost/', { headers: { ok: 'bad\nvalue' } }],
    ['https://localhost/', { redirect: 'bogus' as RequestRedirect }],
    ['https://user:secret@localhost/', {}],
    ['https://localhost/', { mode: 'navigate' }],
  ]
  for (const [input, init] of cases) {
    t.throws(() => new Request(input, init), { instanceOf: TypeError }, JSON.stringify(init))
    const err = await t.throwsAsync<TokioQuicheError>(fetch(input, init), undefined, JSON.stringify(init))
    t.is(err?.code, 'ERR_INVALID_ARG', JSON.stringify(init))
    t.regex(err!.message, /^input: /)
  }
})

test('bad URL and http: URLs are ERR_INVALID_ARG', async (t) => {
  t.is((await t.throwsAsync<TokioQuicheError>(fetch('not a url')))?.code, 'ERR_INVALID_ARG')
  t.is((await t.throwsAsync<TokioQuicheError>(fetch('http://localhost/')))?.code, 'ERR_INVALID_ARG')
})

test("the process exits by itself after a fetch: idle connections close on an unref'd timer", async (t) => {
  const { server, base, id } = await start(() => new Response('bye'))
  t.teardown(() => server.close())
  // The default agent's idle timer is unref'd: after the response, nothing keeps the child alive.
  const script = `import { Agent, fetch } from 'tokio-quiche'
// The default agent's options plus our test CA (it trusts only the system store).
const agent = new Agent({ ca: ${JSON.stringify(id.cert)}, idleTimeout: 1000 })
const res = await fetch(${JSON.stringify(base)}, { agent })
console.log(await res.text())`
  const child = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 15_000,
  }).catch((err: { stdout: string; stderr: string; code: unknown }) => ({ ...err, failed: true }))
  t.is(child.stdout.trim(), 'bye', child.stderr)
})

test('abort while the upload streams resets it with 0x10c; abort after the headers errors the body', async (t) => {
  let resetSeen!: (code: number) => void
  const resetCode = new Promise<number>((resolve) => (resetSeen = resolve))
  const server = await startServer(async (event) => {
    if (header(event.headers, ':path') === '/upload') {
      return void (await event.recv.bytes().catch((err: StreamResetError) => resetSeen(err.errorCode)))
    }
    await event.send.sendHeaders([[':status', '200']])
    await event.send.write(Buffer.from('first'))
  })
  const agent = new Agent({ ca: server.identity.cert })
  t.teardown(async () => { await agent.close(); await server.close() })
  const base = `https://localhost:${server.address.split(':')[1]}`
  const aborter = new AbortController()
  const never = new ReadableStream<Uint8Array>({ start: (c) => c.enqueue(new Uint8Array(10)) })
  const upload = fetch(`${base}/upload`, { method: 'POST', body: never, agent, signal: aborter.signal })
  await sleep(200)
  aborter.abort()
  t.is(((await t.throwsAsync(upload, { any: true })) as Error).name, 'AbortError')
  t.is(await resetCode, 0x10c)
  const late = new AbortController()
  const res = await fetch(`${base}/slow`, { agent, signal: late.signal })
  const reader = res.body!.getReader()
  t.is(Buffer.from((await reader.read()).value!).toString(), 'first')
  late.abort()
  t.is(((await t.throwsAsync(reader.read(), { any: true })) as Error).name, 'AbortError')
  // The same while text() reads the body whole, without a stream.
  const whole = new AbortController()
  const text = (await fetch(`${base}/slow`, { agent, signal: whole.signal })).text()
  setTimeout(() => whole.abort(), 100)
  t.is(((await t.throwsAsync(text, { any: true })) as Error).name, 'AbortError')
  const timed = (await fetch(`${base}/slow`, { agent, signal: AbortSignal.timeout(100) })).arrayBuffer()
  t.is(((await t.throwsAsync(timed, { any: true })) as Error).name, 'TimeoutError')
})

test('a connection that closed is replaced on the next request', async (t) => {
  const remotes: string[] = []
  const { server, agent, base } = await start(async (request, info) => {
    remotes.push(info.remoteAddress)
    return new Response(request.method)
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  t.is(await (await fetch(base, { agent })).text(), 'GET')
  const lease = await agent.lease(new URL(base))
  lease.release()
  await lease.controller.close()
  t.is(await (await fetch(base, { agent })).text(), 'GET')
  t.is(new Set(remotes).size, 2)
})

test('a port nobody answers on is ERR_CONNECT after the handshake timeout; a bad idleTimeout is ERR_INVALID_ARG', async (t) => {
  const agent = new Agent({ settings: { handshakeTimeoutMs: 300 } })
  t.teardown(() => agent.close())
  const err = await t.throwsAsync<TokioQuicheError>(fetch('https://127.0.0.1:9/', { agent }))
  t.is(err?.code, 'ERR_CONNECT')
  t.regex(err!.message, /no QUIC handshake within 300 ms/)
  t.is(t.throws<TokioQuicheError>(() => new Agent({ idleTimeout: -1 }))?.code, 'ERR_INVALID_ARG')
})

/** A test server whose handler also learns the request's number (`/<n>`) and which connection it came on. */
async function startCounting(handler: (n: number, event: Parameters<Parameters<typeof startServer>[0]>[0], controller: ServerH3Controller) => Promise<void>, settings?: { initialMaxStreamsBidi: number }) {
  const connections: ServerH3Controller[] = []
  const server = await startServer(async (event, controller) => {
    if (!connections.includes(controller)) connections.push(controller)
    await handler(Number(header(event.headers, ':path')!.slice(1)), event, controller)
  }, settings ? { settings } : {})
  const agent = new Agent({ ca: server.identity.cert })
  const base = `https://localhost:${server.address.split(':')[1]}`
  return { server, agent, base, connections }
}

/** Response `n`'s body: distinct per request, so a mixed-up answer shows in the hash. */
const answer = (n: number) => patternBytes(30_000 + n, n + 1)

/**
 * 20 fetches on a server taking 10 streams at a time: the first 10 are held
 * by the handler, which sends GOAWAY once it has them all, waits `holdMs`, then
 * answers request `n` after `stagger(n)` ms; the other 10 wait for stream credit.
 */
async function goawayInFlight(holdMs: number, stagger: (n: number) => number) {
  let release!: () => void
  const released = new Promise<void>((resolve) => (release = resolve))
  let onFirst = 0
  const counting = await startCounting(async (n, event, controller) => {
    if (controller === counting.connections[0]) {
      if (++onFirst === 10) {
        controller.sendGoaway()
        setTimeout(release, holdMs)
      }
      await released
      await sleep(stagger(n))
    }
    await event.send.sendHeaders([[':status', '200'], ['x-conn', String(counting.connections.indexOf(controller))]])
    await event.send.end(answer(n))
  }, { initialMaxStreamsBidi: 10 })
  const results = await Promise.all(Array.from({ length: 20 }, async (_, n) => {
    const res = await fetch(`${counting.base}/${n}`, { agent: counting.agent })
    return { n, status: res.status, conn: res.headers.get('x-conn'), sha: sha256(new Uint8Array(await res.arrayBuffer())) }
  }).map((p) => p.catch((err: Error) => ({ n: -1, status: 0, conn: null, sha: err.message }))))
  return { ...counting, results, onFirst: () => onFirst }
}

test.serial('GOAWAY with 20 fetches in flight: none lost, the unprocessed ones are retried on a new connection', async (t) => {
  // The hold lets the GOAWAY out before the responses take the send capacity (see docs/fetch.md).
  const { server, agent, base, connections, results, onFirst } = await goawayInFlight(50, () => 0)
  t.teardown(async () => { await agent.close(); await server.close() })
  for (const [n, { status, sha }] of results.entries()) {
    t.is(status, 200, `request ${n}: ${sha}`)
    t.is(sha, sha256(answer(n)), `request ${n}`)
  }
  t.is(onFirst(), 10, 'the first connection processed exactly the 10 requests it held')
  t.is(results.filter((r) => r.conn === '0').length, 10)
  t.is(results.filter((r) => r.conn === '1').length, 10)
  t.is(connections.length, 2)
  // Later fetches go on the new connection; the old one is closed by the agent once idle.
  t.is((await fetch(`${base}/99`, { agent })).headers.get('x-conn'), '1')
  t.is(connections.length, 2)
  const retired = await connections[0]!.closed
  t.log('the retired connection closed with', JSON.stringify(retired))
  t.is(retired.peerApplicationCode, 0x100)
  t.false(connections[1]!.isClosed)
})

// tokio-quiche 0.20.1's client driver keeps requests that found no stream credit in its own queue
// and retries them when credit comes; after a GOAWAY quiche's send_request() refuses with
// FrameUnexpected, which the driver made fatal, losing the other in-flight responses (ERR_CLOSED).
// The binding's GoawayGuard (client_driver.rs) drops only the refused request.
test('GOAWAY while fetches wait for stream credit and the in-flight ones end one by one: none lost', async (t) => {
  const { server, agent, results } = await goawayInFlight(50, (n) => n * 10)
  t.teardown(async () => { await agent.close(); await server.close() })
  for (const [n, { status, sha }] of results.entries()) t.is(status, 200, `request ${n}: ${sha}`)
})

test('a connection that got GOAWAY is not reused: its in-flight response completes, the next fetch opens a new connection', async (t) => {
  const { server, agent, base, connections } = await startCounting(async (n, event, controller) => {
    if (n === 1) {
      controller.sendGoaway()
      await sleep(100) // the GOAWAY reaches the client while this response is in flight
    }
    await event.send.sendHeaders([[':status', '200'], ['x-conn', String(connections.indexOf(controller))]])
    await event.send.end(answer(n))
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  const before = await fetch(`${base}/0`, { agent })
  t.is(sha256(new Uint8Array(await before.arrayBuffer())), sha256(answer(0)))
  const during = await fetch(`${base}/1`, { agent })
  t.is(during.headers.get('x-conn'), '0')
  t.is(sha256(new Uint8Array(await during.arrayBuffer())), sha256(answer(1)))
  const after = await fetch(`${base}/2`, { agent })
  t.is(after.headers.get('x-conn'), '1')
  t.is(sha256(new Uint8Array(await after.arrayBuffer())), sha256(answer(2)))
  t.is((await connections[0]!.closed).peerApplicationCode, 0x100)
  t.is(connections.length, 2)
})

test('a streamed POST refused by GOAWAY before it was read is replayed on the new connection, body intact', async (t) => {
  // One stream at a time: the POST waits for credit behind a held GET when GOAWAY comes.
  const seen: string[] = []
  const { server, agent, base, connections } = await startCounting(async (n, event, controller) => {
    if (n === 0) {
      controller.sendGoaway()
      await sleep(100)
    }
    const body = await event.recv.bytes()
    seen.push(`${n}@${connections.indexOf(controller)}:${sha256(body)}`)
    await event.send.sendHeaders([[':status', '200']])
    await event.send.end(body)
  }, { initialMaxStreamsBidi: 1 })
  t.teardown(async () => { await agent.close(); await server.close() })
  const upload = patternBytes(100_000, 7)
  const held = fetch(`${base}/0`, { agent })
  await sleep(20)
  const post = fetch(`${base}/1`, { method: 'POST', body: new Blob([new Uint8Array(upload)]).stream(), agent })
  t.is((await (await held).arrayBuffer()).byteLength, 0)
  t.is(sha256(new Uint8Array(await (await post).arrayBuffer())), sha256(upload))
  // The replayed POST is answered on the new connection before the held GET on the old one.
  t.deepEqual(seen.sort(), [`0@0:${sha256(new Uint8Array())}`, `1@1:${sha256(upload)}`])
})

test('redirects: 301/302 turn POST into GET without the body; 307/308 keep the method and the same bytes', async (t) => {
  const { server, agent, base } = await start(async (request) => {
    const path = new URL(request.url).pathname
    const status = Number(path.slice(1))
    if ([301, 302, 307, 308].includes(status)) return new Response(null, { status, headers: { location: `/final-${status}` } })
    const bytes = new Uint8Array(await request.arrayBuffer())
    return new Response(`${request.method} ${path} ${bytes.length} ${sha256(bytes)} ${request.headers.get('content-type') ?? '-'}`)
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  const body = new Uint8Array(patternBytes(50_000, 9))
  for (const status of [301, 302]) {
    const res = await fetch(`${base}/${status}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' }, agent })
    t.true(res.redirected)
    t.is(await res.text(), `GET /final-${status} 0 ${sha256(new Uint8Array())} -`, `${status}`)
  }
  for (const status of [307, 308]) {
    const res = await fetch(`${base}/${status}`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' }, agent })
    t.is(await res.text(), `POST /final-${status} ${body.length} ${sha256(body)} application/octet-stream`, `${status}`)
    const put = await fetch(`${base}/${status}`, { method: 'PUT', body: 'put body', agent })
    t.is(await put.text(), `PUT /final-${status} 8 ${sha256(Buffer.from('put body'))} text/plain;charset=UTF-8`, `${status} PUT`)
  }
  // 301/302 keep a method other than POST, with its body.
  const put301 = await fetch(`${base}/301`, { method: 'PUT', body: 'x', agent })
  t.is(await put301.text(), `PUT /final-301 1 ${sha256(Buffer.from('x'))} text/plain;charset=UTF-8`)
})

test('redirects: 20 are followed; the 21st fails with ERR_REDIRECT "redirect count exceeded", as undici', async (t) => {
  const { server, agent, base } = await start(async (request) => {
    const left = Number(new URL(request.url).pathname.slice(1))
    if (left > 0) return new Response(null, { status: 302, headers: { location: `/${left - 1}` } })
    return new Response('arrived')
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  const twenty = await fetch(`${base}/20`, { agent })
  t.is(await twenty.text(), 'arrived')
  t.is(twenty.url, `${base}/0`)
  const err = await t.throwsAsync<TokioQuicheError>(fetch(`${base}/21`, { agent }))
  t.is(err?.code, 'ERR_REDIRECT')
  t.regex(err!.message, /^redirect count exceeded: more than 20 redirects, the last to \/0$/)
})

// RFC 9114 §4.1.1: a request reset with H3_REQUEST_REJECTED was not processed and may be retried.
// tokio-quiche's ResetStream event carries no code, so without a GOAWAY covering the stream the
// client cannot tell 0x10b from any other reset, and the fetch fails with ERR_STREAM_RESET.
test.failing('a request reset with H3_REQUEST_REJECTED (0x10b) and no GOAWAY is sent again (the reset code does not reach JS)', async (t) => {
  let rejected = 0
  const { server, agent, base } = await startCounting(async (n, event, controller) => {
    if (rejected++ === 0) return controller.shutdownStream(event.streamId, { read: 0x10b, write: 0x10b })
    await event.send.sendHeaders([[':status', '200']])
    await event.send.end(answer(n))
  })
  t.teardown(async () => { await agent.close(); await server.close() })
  const res = await fetch(`${base}/3`, { method: 'POST', body: 'once', agent })
  t.is(sha256(new Uint8Array(await res.arrayBuffer())), sha256(answer(3)))
})

// The short version of `npm run goaway-load`: before the client driver's
// GOAWAY fix it lost about 100 requests a second this way.
test('steady load across GOAWAYs (scripts/goaway-load.ts, 3 s): no request lost, every body intact', async (t) => {
  const child = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/goaway-load.ts', '--loops', '20', '--every', '100', '--seconds', '3'], {
    encoding: 'utf8',
    timeout: 60_000,
  }).catch((err: { stdout: string; stderr: string }) => err)
  const result = JSON.parse(child.stdout.trim().split('\n').pop() ?? '{}') as { requests: number; ok: number; lost: number; corrupted: number; goaways: number; errors: object }
  t.log(child.stdout.trim())
  t.is(result.lost, 0, JSON.stringify(result.errors))
  t.is(result.corrupted, 0)
  t.is(result.ok, result.requests)
  t.true(result.goaways >= 5, `${result.goaways} GOAWAYs`)
})
