// Real frameworks over HTTP/3: Fastify through createServer() as its serverFactory, Hono through
// serve({ fetch: app.fetch }). Each app gets the same checks from our own client.
import test, { type ExecutionContext } from 'ava'
import Fastify from 'fastify'
import { Hono } from 'hono'
import { Readable } from 'node:stream'
import { type ClientH3Controller, type RequestInfo, type RequestListener, connect, createServer, serve } from 'tokio-quiche'
import { header, patternBytes, sha256, testIdentity } from './helpers.js'

const BIG = patternBytes(10 * 1024 * 1024, 7)
const CHUNK = 64 * 1024

function* bigChunks(): Generator<Buffer> {
  for (let at = 0; at < BIG.length; at += CHUNK) yield BIG.subarray(at, at + CHUNK)
}

interface App {
  port: number
  /** Errors the app's routes threw, as the framework reported them. */
  errors: unknown[]
  close(): Promise<void>
}

/** Routes both apps have: GET /hello/:name, POST /echo (JSON), GET /boom (throws), GET /big (10 MiB streamed), POST /sha (raw body). */
async function fastifyApp(): Promise<App> {
  const id = await testIdentity()
  const errors: unknown[] = []
  const app = Fastify({
    // Fastify's types list node's own servers only; the (req, res) contract is what it uses.
    serverFactory: ((handler: RequestListener) => createServer({ tls: { cert: id.certPath, privateKey: id.keyPath } }, handler)) as never,
    bodyLimit: 16 * 1024 * 1024,
  })
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  app.setErrorHandler((err, _req, reply) => {
    errors.push(err)
    void reply.code(500).send({ error: err.message })
  })
  // req.ip reads req.socket.remoteAddress.
  app.get<{ Params: { name: string } }>('/hello/:name', async (req) => ({ hello: req.params.name, from: req.ip }))
  app.post<{ Body: unknown }>('/echo', async (req) => ({ got: req.body }))
  app.get('/boom', async () => {
    throw new Error('boom')
  })
  app.get('/big', (_req, reply) => reply.type('application/octet-stream').send(Readable.from(bigChunks())))
  app.post<{ Body: Buffer }>('/sha', async (req) => sha256(req.body))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  return { port: typeof address === 'object' && address ? address.port : 0, errors, close: () => app.close() }
}

async function honoApp(): Promise<App> {
  const id = await testIdentity()
  const errors: unknown[] = []
  const app = new Hono<{ Bindings: RequestInfo }>()
  app.onError((err, c) => {
    errors.push(err)
    return c.json({ error: err.message }, 500)
  })
  app.get('/hello/:name', (c) => c.json({ hello: c.req.param('name'), from: c.env.remoteAddress.slice(0, c.env.remoteAddress.lastIndexOf(':')) }))
  app.post('/echo', async (c) => c.json({ got: await c.req.json() }))
  app.get('/boom', () => {
    throw new Error('boom')
  })
  app.get('/big', () => {
    const chunks = bigChunks()
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.next()
        if (next.done) controller.close()
        else controller.enqueue(next.value)
      },
    })
    return new Response(body, { headers: { 'content-type': 'application/octet-stream' } })
  })
  app.post('/sha', async (c) => c.text(sha256(new Uint8Array(await c.req.arrayBuffer()))))
  const server = await serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1', tls: { cert: id.certPath, privateKey: id.keyPath } })
  return { port: server.port, errors, close: () => server.close() }
}

async function withClient(t: ExecutionContext, app: App): Promise<ClientH3Controller> {
  const id = await testIdentity()
  const client = await connect(`127.0.0.1:${app.port}`, { serverName: 'localhost', ca: id.cert })
  t.teardown(async () => {
    await client.close()
    await app.close()
  })
  return client
}

async function json(client: ClientH3Controller, init: Parameters<ClientH3Controller['request']>[0]) {
  const res = await client.request(init)
  return { status: res.status, type: header(res.headers, 'content-type'), body: JSON.parse(await res.body.text()) as unknown }
}

for (const [name, start] of [['Fastify', fastifyApp], ['Hono', honoApp]] as const) {
  test(`${name}: routes and params, JSON in and out, and a 404`, async (t) => {
    const client = await withClient(t, await start())
    const hello = await json(client, { path: '/hello/quic' })
    t.is(hello.status, 200)
    t.regex(hello.type ?? '', /^application\/json/)
    t.deepEqual(hello.body, { hello: 'quic', from: '127.0.0.1' })
    const sent = { list: [1, 2, 3], nested: { ok: true }, text: 'héllo' }
    const echo = await json(client, { method: 'POST', path: '/echo', headers: { 'content-type': 'application/json' }, body: JSON.stringify(sent) })
    t.is(echo.status, 200)
    t.deepEqual(echo.body, { got: sent })
    const missing = await client.request({ path: '/nowhere' })
    t.is(missing.status, 404)
    await missing.body.text()
  })

  test(`${name}: a thrown route error answers 500 and the next request is fine`, async (t) => {
    const app = await start()
    const client = await withClient(t, app)
    const boom = await json(client, { path: '/boom' })
    t.is(boom.status, 500)
    t.deepEqual(boom.body, { error: 'boom' })
    t.is(app.errors.length, 1)
    const after = await json(client, { path: '/hello/again' })
    t.is(after.status, 200)
    t.deepEqual(after.body, { hello: 'again', from: '127.0.0.1' })
  })

  test(`${name}: a streamed 10 MiB body goes down and up intact (SHA-256)`, async (t) => {
    const client = await withClient(t, await start())
    const down = await client.request({ path: '/big' })
    t.is(down.status, 200)
    t.is(sha256(await down.body.bytes()), sha256(BIG))
    const up = await client.request({ method: 'POST', path: '/sha', headers: { 'content-type': 'application/octet-stream' }, body: bigChunks() })
    t.is(up.status, 200)
    t.is(await up.body.text(), sha256(BIG))
  })
}
