// createServer(): node:http2's (req, res) compatibility API over HTTP/3, driven by our own client.
import test from 'ava'
import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { connect, createServer, TokioQuicheError, type Http3Server, type RequestListener } from 'tokio-quiche'
import { header, patternBytes, sha256, sleep, testIdentity } from './helpers.js'

async function start(handler: RequestListener) {
  const id = await testIdentity()
  const server = createServer({ tls: { cert: id.certPath, privateKey: id.keyPath } }, handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = await connect(`127.0.0.1:${server.address()!.port}`, { serverName: 'localhost', ca: id.cert })
  return { server, client }
}

const closed = (server: Http3Server) => new Promise<void>((resolve) => server.close(() => resolve()))

test('req carries method, url, headers, authority and peer info; res headers and body come back', async (t) => {
  const seen: unknown[] = []
  const { server, client } = await start((req, res) => {
    seen.push([req.method, req.url, req.headers['x-hello'], req.headers[':method'], req.authority, req.scheme, req.httpVersion, req.socket.remoteAddress, req.socket.remotePort > 0])
    res.setHeader('X-Served-By', 'compat')
    t.is(res.getHeader('x-served-by'), 'compat')
    t.true(res.hasHeader('X-SERVED-BY'))
    res.setHeader('connection', 'keep-alive')
    res.statusCode = 201
    res.end('hello')
  })
  const res = await client.request({ path: '/p?q=1', headers: { 'x-hello': 'world' } })
  t.is(res.status, 201)
  t.is(header(res.headers, 'x-served-by'), 'compat')
  t.is(header(res.headers, 'connection'), undefined, 'hop-by-hop fields are dropped')
  t.is(await res.body.text(), 'hello')
  t.deepEqual(seen, [['GET', '/p?q=1', 'world', 'GET', 'localhost', 'https', '3.0', '127.0.0.1', true]])
  t.deepEqual(server.address(), { address: '127.0.0.1', family: 'IPv4', port: server.address()!.port })
  await client.close()
  await closed(server)
})

test('write() returns false while the client does not read, and drain follows once it does', async (t) => {
  const chunk = patternBytes(64 * 1024, 3)
  const total = 256
  let falses = 0
  let drains = 0
  let written = 0
  const { server, client } = await start(async (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    while (written < total) {
      written++
      if (!res.write(chunk)) {
        falses++
        await once(res, 'drain')
        drains++
      }
    }
    res.end()
  })
  const res = await client.request({ path: '/big' })
  await sleep(500)
  const stalledAt = written
  await sleep(300)
  t.true(falses > 0, 'write() reported a full writer before the client read')
  t.is(written, stalledAt, 'the handler waits for drain while nobody reads')
  t.true(stalledAt < total)
  const drainsBefore = drains
  const body = await res.body.bytes()
  t.true(drains > drainsBefore, "'drain' fired once the client read")
  t.is(body.length, total * chunk.length)
  await client.close()
  await closed(server)
})

test('a request body reads as a Readable; a response with trailers ends cleanly', async (t) => {
  const upload = patternBytes(3 * 1024 * 1024, 5)
  const { server, client } = await start(async (req, res) => {
    const parts: Buffer[] = []
    for await (const part of req) parts.push(part as Buffer)
    res.addTrailers({ 'x-sha256': sha256(Buffer.concat(parts)) })
    res.end(String(Buffer.concat(parts).length))
  })
  const res = await client.request({ method: 'POST', path: '/up', body: upload })
  // Our client does not surface trailers yet; the body after them must still end cleanly.
  t.is(await res.body.text(), String(upload.length))
  await client.close()
  await closed(server)
})

test('req pulls the body only while read: an unread upload stalls the client, reading lets it finish', async (t) => {
  const chunk = patternBytes(64 * 1024, 9)
  const total = 128
  let pulled = 0
  async function* upload() {
    for (; pulled < total; pulled++) yield chunk
  }
  let startReading!: () => void
  const reading = new Promise<void>((r) => (startReading = r))
  const { server, client } = await start(async (req, res) => {
    await reading
    let bytes = 0
    for await (const part of req) bytes += (part as Buffer).length
    res.end(String(bytes))
  })
  const pending = client.request({ method: 'POST', path: '/up', body: upload() })
  await sleep(500)
  const stalledAt = pulled
  t.true(stalledAt < total / 2, `the client could write only about a flow-control window (${stalledAt} of ${total} chunks)`)
  startReading()
  const res = await pending
  t.is(await res.body.text(), String(total * chunk.length))
  t.is(pulled, total)
  await client.close()
  await closed(server)
})

// As http.IncomingMessage: a failed body emits 'error' only to listeners, so a
// handler that listens for 'data' alone is not crashed by the client's reset.
test("a client's reset mid-upload: 'aborted' and 'close' on req, 'error' only where listened, and the server keeps serving", async (t) => {
  const seen: { listened: boolean; received: number; aborted: boolean; closed: boolean; error?: string }[] = []
  const { server, client } = await start((req, res) => {
    if (req.url === '/ping') return void res.end('pong')
    const record = { listened: req.url === '/listened', received: 0, aborted: false, closed: false } as (typeof seen)[number]
    seen.push(record)
    req.on('data', (chunk: Buffer) => (record.received += chunk.length))
    if (record.listened) req.on('error', (err: TokioQuicheError) => (record.error = err.code))
    req.on('aborted', () => (record.aborted = req.aborted))
    req.on('close', () => (record.closed = true))
  })
  for (const path of ['/unlistened', '/listened']) {
    const aborter = new AbortController()
    const body = (async function* () {
      yield patternBytes(1000)
      await sleep(5_000)
    })()
    const pending = client.request({ method: 'POST', path, body, signal: aborter.signal })
    await sleep(200)
    aborter.abort()
    t.is(((await t.throwsAsync(pending, { any: true })) as Error).name, 'AbortError')
  }
  await sleep(300)
  t.deepEqual(seen, [
    { listened: false, received: 1000, aborted: true, closed: true },
    { listened: true, received: 1000, aborted: true, closed: true, error: 'ERR_STREAM_RESET' },
  ])
  t.is(await (await client.request({ path: '/ping' })).body.text(), 'pong')
  await client.close()
  await closed(server)
})

test('a thrown or rejected handler error answers 500 and the server keeps serving', async (t) => {
  const errors: unknown[] = []
  const { server, client } = await start(async (req, res) => {
    if (req.url === '/throw') throw new Error('boom')
    res.end('ok')
  })
  server.on('error', (e) => errors.push(e))
  t.is((await client.request({ path: '/throw' })).status, 500)
  const ok = await client.request({ path: '/fine' })
  t.is(ok.status, 200)
  t.is(await ok.body.text(), 'ok')
  t.is(errors.length, 1)
  await client.close()
  await closed(server)
})

test('close(cb) waits for a request in flight, then settles', async (t) => {
  let release!: () => void
  const { server, client } = await start(async (_req, res) => {
    await new Promise<void>((r) => (release = r))
    res.end('late')
  })
  const pending = client.request({ path: '/slow' })
  await sleep(100)
  let closedYet = false
  const done = closed(server).then(() => (closedYet = true))
  await sleep(100)
  t.false(closedYet)
  release()
  const res = await pending
  t.is(await res.body.text(), 'late')
  await sleep(100)
  t.false(closedYet, 'close waits for the client to close its connection after GOAWAY')
  await client.close()
  await done
  t.true(closedYet)
})

test('writeHead, write and end in one tick arrive whole; headers are frozen once sent', async (t) => {
  const late: unknown[] = []
  const { server, client } = await start((_req, res) => {
    res.writeHead(202, { 'content-type': 'text/plain', 'x-n': 2 })
    res.write('part one, ')
    t.true(res.headersSent)
    res.end(Buffer.from('part two'))
    try {
      res.setHeader('x-late', '1')
    } catch (err) {
      late.push((err as TokioQuicheError).code)
    }
  })
  const res = await client.request({ path: '/' })
  t.is(res.status, 202)
  t.is(header(res.headers, 'x-n'), '2')
  t.is(await res.body.text(), 'part one, part two')
  t.deepEqual(late, ['ERR_HTTP_HEADERS_SENT'])
  await client.close()
  await closed(server)
})

test('bad options throw TokioQuicheError naming the field', async (t) => {
  const { certPath: cert, keyPath: privateKey } = await testIdentity()
  const err = t.throws(() => createServer(null as never), { instanceOf: TokioQuicheError })
  t.regex(err!.message, /options/)
  const bad = t.throws(() => createServer({ tls: { cert: 5 as never, privateKey: 'x' } }), { instanceOf: TokioQuicheError })
  t.regex(bad!.message, /cert/)
  const unknown = t.throws(() => createServer({ tls: { cert, privateKey }, prot: 1 } as never), { instanceOf: TokioQuicheError })
  t.regex(unknown!.message, /options\.prot/)
  t.throws(() => createServer({ tls: { cert, privateKey } }, 'handler' as never), { message: /handler/ })
})

test('listen() refuses a bad port or host by name', async (t) => {
  const id = await testIdentity()
  const server = createServer({ tls: { cert: id.certPath, privateKey: id.keyPath } })
  t.throws(() => server.listen(70000), { instanceOf: TokioQuicheError, message: /port/ })
  t.throws(() => server.listen({ port: 0, host: '' }), { instanceOf: TokioQuicheError, message: /host/ })
  t.is(server.address(), null)
})

test("a child process exits by itself after createServer's close; await using closes too", async (t) => {
  const id = await testIdentity()
  // The server answers one request, the client closes, close() settles, and nothing is left to keep the process alive.
  const script = `import { once } from 'node:events'
import { connect, createServer } from 'tokio-quiche'
const server = createServer({ tls: { cert: ${JSON.stringify(id.certPath)}, privateKey: ${JSON.stringify(id.keyPath)} } }, (req, res) => res.end('served ' + req.url))
server.listen({ port: 0, host: '127.0.0.1' })
await once(server, 'listening')
const client = await connect('127.0.0.1:' + server.address().port, { serverName: 'localhost', ca: ${JSON.stringify(id.cert)} })
const res = await client.request({ path: '/once' })
console.log(await res.body.text())
await client.close()
server.close(() => console.log('closed', server.listening))`
  const child = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 15_000 }).catch(
    (err: { stdout: string; stderr: string }) => err,
  )
  t.is(child.stdout.trim(), 'served /once\nclosed false', child.stderr)

  let closeEvents = 0
  {
    await using server = createServer({ tls: { cert: id.certPath, privateKey: id.keyPath } })
    server.on('close', () => closeEvents++)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.true(server.listening)
  }
  t.is(closeEvents, 1)
})
