// serve(): a fetch-style handler (WHATWG Request in, Response out) over HTTP/3.
import test from 'ava'
import { createHash } from 'node:crypto'
import { inspect } from 'node:util'
import { connect, serve } from 'tokio-quiche'
import { header, patternBytes, sha256, testIdentity } from './helpers.js'

async function start(handler: Parameters<typeof serve>[1], onError?: (e: unknown) => void) {
  const id = await testIdentity()
  const server = await serve(
    { socket: '127.0.0.1:0', tls: { cert: id.certPath, privateKey: id.keyPath }, ...(onError ? { onError } : {}) },
    handler,
  )
  const client = await connect(server.address, { serverName: 'localhost', ca: id.cert })
  return { server, client }
}

test('GET: the handler sees method, URL, headers and the client address; its Response comes back', async (t) => {
  const seen: string[] = []
  const { server, client } = await start((request, info) => {
    seen.push(`${request.method} ${request.url} ${request.headers.get('x-hello')} ${info.remoteAddress === client.localAddress}`)
    return new Response(`hello ${new URL(request.url).pathname}`, { headers: { 'x-served-by': 'serve', connection: 'close' } })
  })
  t.teardown(() => server.close())
  const res = await client.request({ path: '/path?q=1', headers: { 'x-hello': 'world' } })
  t.is(res.status, 200)
  t.is(header(res.headers, 'x-served-by'), 'serve')
  t.is(header(res.headers, 'connection'), undefined, 'hop-by-hop fields are dropped')
  t.is(header(res.headers, 'content-type'), 'text/plain;charset=UTF-8')
  t.is(await res.body.text(), 'hello /path')
  t.deepEqual(seen, ['GET https://localhost/path?q=1 world true'])
  await client.close()
})

test('POST: a 4 MiB request body streams through new Response(request.body)', async (t) => {
  const { server, client } = await start((request) => new Response(request.body, { status: 201 }))
  t.teardown(() => server.close())
  const upload = patternBytes(4 * 1024 * 1024, 9)
  const res = await client.request({ method: 'POST', path: '/echo', body: upload })
  t.is(res.status, 201)
  t.is(sha256(await res.body.bytes()), sha256(upload))
  await client.close()
})

test('Response.json, HEAD without a body, and a throwing handler answered with 500', async (t) => {
  const errors: unknown[] = []
  const { server, client } = await start(async (request) => {
    const path = new URL(request.url).pathname
    if (path === '/boom') throw new Error('handler exploded')
    if (path === '/json') return Response.json({ ok: true, digest: createHash('sha256').update('x').digest('hex').slice(0, 8) })
    return new Response('this body is not sent for HEAD', { headers: { 'x-len': '30' } })
  }, (e) => errors.push(e))
  t.teardown(() => server.close())
  const json = await client.request({ path: '/json' })
  t.deepEqual(JSON.parse(await json.body.text()), { ok: true, digest: '2d711642' })
  t.is(header(json.headers, 'content-type'), 'application/json')
  const head = await client.request({ method: 'HEAD', path: '/' })
  t.is(head.status, 200)
  t.is((await head.body.bytes()).length, 0)
  const boom = await client.request({ path: '/boom' })
  t.is(boom.status, 500)
  t.is((errors[0] as Error).message, 'handler exploded')
  await client.close()
})

test('aborting the signal closes the server', async (t) => {
  const id = await testIdentity()
  const controller = new AbortController()
  const server = await serve({ socket: '127.0.0.1:0', tls: { cert: id.certPath, privateKey: id.keyPath }, signal: controller.signal }, () => new Response('x'))
  controller.abort()
  await server.finished
  const err = await t.throwsAsync(connect(server.address, { serverName: 'localhost', ca: id.cert, settings: { handshakeTimeoutMs: 500 } }))
  t.is((err as { code?: string }).code, 'ERR_CONNECT')
})

test('a body already in memory is sent whole; a streamed one does not wait for its second chunk', async (t) => {
  let release!: () => void
  const released = new Promise<void>((r) => (release = r))
  const { server, client } = await start(async (request) => {
    if (request.url.endsWith('/whole')) return new Response('in one piece')
    return new Response(
      new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(Buffer.from('first '))
          await released
          controller.enqueue(Buffer.from('second'))
          controller.close()
        },
      }),
    )
  })
  t.teardown(() => server.close())
  const whole = await client.request({ path: '/whole' })
  t.is(await whole.body.text(), 'in one piece')
  const streamed = await client.request({ path: '/streamed' })
  const first = await streamed.body.recv()
  t.is(first?.data.toString(), 'first ', 'the first chunk arrived while the stream was still open')
  release()
  t.is(await streamed.body.text(), 'second')
  await client.close()
})

test("the handler's Request is a full WHATWG Request: clone(), new Request(request) taking its body, inspect and header changes", async (t) => {
  const seen: string[] = []
  const { server, client } = await start(async (request) => {
    request.headers.set('x-added', 'by handler')
    const clone = request.clone()
    const copy = new Request(request)
    seen.push(
      `${request instanceof Request} ${request.method} ${request.cache} ${request.signal.aborted} ${inspect(request).startsWith('Request {')}`,
      `${copy.url} ${copy.headers.get('x-added')} ${clone.headers.get('x-hello')} ${request.bodyUsed}`,
    )
    const [text, again] = [await copy.text(), await clone.text()]
    seen.push(`${text === again} ${sha256(Buffer.from(text)).slice(0, 8)}`)
    return new Response(text.toUpperCase())
  })
  t.teardown(() => server.close())
  const res = await client.request({ method: 'POST', path: '/p', headers: { 'x-hello': 'world' }, body: 'posted text' })
  t.is(res.status, 200)
  t.is(await res.body.text(), 'POSTED TEXT')
  t.deepEqual(seen, [
    'true POST default false true',
    'https://localhost/p by handler world true',
    `true ${sha256(Buffer.from('posted text')).slice(0, 8)}`,
  ])
  await client.close()
})

test('a Response whose body the handler already read from is not sent again', async (t) => {
  const { server, client } = await start(async (request) => {
    const response = new Response(request.url.endsWith('/partly') ? 'read by the handler' : 'untouched')
    if (request.url.endsWith('/partly')) {
      const reader = response.body!.getReader()
      await reader.read()
      reader.releaseLock()
    }
    return response
  })
  t.teardown(() => server.close())
  t.is(await (await client.request({ path: '/untouched' })).body.text(), 'untouched')
  const partly = await client.request({ path: '/partly' })
  t.is(partly.status, 200)
  t.is(await partly.body.text(), '', 'the chunk the handler took is gone')
  await client.close()
})

test('a request a WHATWG Request refuses gets 400; one it rewrites reaches the handler rewritten', async (t) => {
  const seen: string[] = []
  const { server, client } = await start((request) => {
    seen.push(`${request.method} ${request.url}`)
    return new Response('ok')
  })
  t.teardown(() => server.close())
  t.is((await client.request({ authority: 'bad host' })).status, 400, 'no URL has a space in its host')
  t.is((await client.request({ authority: 'user:secret@localhost' })).status, 400, 'undici refuses credentials in a URL')
  t.is((await client.request({ method: 'delete', path: '/a/../b' })).status, 200)
  t.is((await client.request({ path: '/a/./c/../d' })).status, 200)
  t.deepEqual(seen, ['DELETE https://localhost/b', 'GET https://localhost/a/d'])
  await client.close()
})

test("serve({ fetch, port, hostname }): @hono/node-server's shape, its listener gets the address; bad fields are named", async (t) => {
  const id = await testIdentity()
  const tls = { cert: id.certPath, privateKey: id.keyPath }
  const heard: unknown[] = []
  const server = await serve({ fetch: (request, info) => new Response(`${new URL(request.url).pathname} from ${info.remoteAddress.split(':')[0]}`), port: 0, hostname: '127.0.0.1', tls }, (info) => heard.push(info))
  t.teardown(() => server.close())
  t.deepEqual(heard, [{ address: '127.0.0.1', family: 'IPv4', port: server.port }])
  const client = await connect(server.address, { serverName: 'localhost', ca: id.cert })
  t.teardown(() => client.close())
  t.is(await (await client.request({ path: '/x' })).body.text(), '/x from 127.0.0.1')
  const fetch = () => new Response()
  await t.throwsAsync(serve({ fetch, port: -1, tls }), { code: 'ERR_INVALID_ARG', message: /options\.port/ })
  await t.throwsAsync(serve({ fetch, hostname: '', tls }), { code: 'ERR_INVALID_ARG', message: /options\.hostname/ })
  await t.throwsAsync(serve({ fetch, tls, socket: '127.0.0.1:0' } as never), { code: 'ERR_INVALID_ARG', message: /options\.socket/ })
  await t.throwsAsync(serve({ fetch: 'app' as never, tls }), { code: 'ERR_INVALID_ARG', message: /options\.fetch/ })
  await t.throwsAsync(serve({ fetch, tls, port: 0, createServer: {} } as never), { code: 'ERR_INVALID_ARG', message: /options\.createServer/ })
})
