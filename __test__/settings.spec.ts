// Settings reach tokio-quiche and do what its own tests say they do. Each
// test names the tokio-quiche test it mirrors (tokio-quiche/tests/integration_tests/).
import test from 'ava'
import { mkdtemp, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type ServerH3Event, connect } from 'tokio-quiche'
import { sleep, startServer } from './helpers.js'

const H3_NO_ERROR = 0x100
const H3_EXCESSIVE_LOAD = 0x107

const respondOk = async (req: { send: { sendHeaders(h: [string, string][]): Promise<void>; end(d?: string): Promise<void> } }) => {
  await req.send.sendHeaders([[':status', '200']])
  await req.send.end('ok')
}

test('qlogDir + qlogCompression write one compressed qlog per connection (qlog_compression_threads_through_to_disk)', async (t) => {
  for (const [compression, suffix] of [['gzip', '.sqlog.gz'], ['zstd', '.sqlog.zst']] as const) {
    const dir = await mkdtemp(join(tmpdir(), 'tq-qlog-'))
    const server = await startServer(respondOk, { settings: { qlogDir: dir, qlogCompression: compression } })
    const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
    t.is(await (await client.request()).body.text(), 'ok')
    await client.close()
    await server.close()
    const files = await readdir(dir)
    t.is(files.length, 1, `${compression}: ${files.join(', ')}`)
    t.true(files[0]!.endsWith(suffix), `${compression}: ${files[0]}`)
  }
})

test('initialMaxStreamsBidi 2: a third concurrent request waits for credit, then all three succeed (test_bidi_stream_limit_reached)', async (t) => {
  const server = await startServer(respondOk, { settings: { initialMaxStreamsBidi: 2 } })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const bodies = await Promise.all([0, 1, 2].map(async () => (await client.request()).body.text()))
  t.deepEqual(bodies, ['ok', 'ok', 'ok'])
})

test('maxRequestsPerConnection 2: the third request closes the connection with H3_NO_ERROR (test_requests_per_connection_limit)', async (t) => {
  const server = await startServer(respondOk, { http3: { maxRequestsPerConnection: 2 } })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.is(await (await client.request()).body.text(), 'ok')
  t.is(await (await client.request()).body.text(), 'ok')
  const third = await t.throwsAsync(client.request())
  t.is((third as { code?: string }).code, 'ERR_CLOSED')
  const info = await client.closed
  t.is(info.peerApplicationCode, H3_NO_ERROR)
})

test('maxHeaderListSize 5000: 4000 bytes of headers pass, 6000 close with H3_EXCESSIVE_LOAD (test_max_header_list_size_limit)', async (t) => {
  const server = await startServer(respondOk, { http3: { maxHeaderListSize: 5000 } })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.is(await (await client.request({ headers: { 'x-big': 'a'.repeat(4000) } })).body.text(), 'ok')
  await t.throwsAsync(client.request({ headers: { 'x-big': 'a'.repeat(6000) } }))
  const info = await client.closed
  t.is(info.peerApplicationCode, H3_EXCESSIVE_LOAD)
})

test('maxIdleTimeoutMs: an idle connection ends without CONNECTION_CLOSE (test_no_connection_close_frame_on_idle_timeout)', async (t) => {
  const server = await startServer(respondOk, { settings: { maxIdleTimeoutMs: 300 } })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { maxIdleTimeoutMs: 300 } })
  const started = Date.now()
  const info = await client.closed
  const elapsed = Date.now() - started
  t.true(info.timedOut, JSON.stringify(info))
  t.is(info.peerApplicationCode, undefined)
  t.is(info.peerTransportCode, undefined)
  t.true(elapsed >= 250 && elapsed < 5000, `closed after ${elapsed} ms`)
})

test('postAcceptTimeoutMs: no request in time -> connectionShutdown event and H3_NO_ERROR (test_post_accept_timeout)', async (t) => {
  const serverEvents: ServerH3Event[] = []
  const server = await startServer(respondOk, { http3: { postAcceptTimeoutMs: 300 }, onEvent: (e) => serverEvents.push(e) })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const info = await client.closed
  t.is(info.peerApplicationCode, H3_NO_ERROR)
  const shutdown = serverEvents.find((e) => e.type === 'connectionShutdown')
  t.truthy(shutdown, `server events: ${serverEvents.map((e) => e.type).join(', ')}`)
  t.regex((shutdown as { error?: string }).error ?? '', /post accept timeout/)
  t.false(serverEvents.some((e) => e.type === 'headers'), 'no request was handled')
})

test('postAcceptTimeoutMs: a request in time cancels the timer; both requests succeed (test_post_accept_timeout_is_reset)', async (t) => {
  const serverEvents: ServerH3Event[] = []
  const server = await startServer(respondOk, { http3: { postAcceptTimeoutMs: 1000 }, onEvent: (e) => serverEvents.push(e) })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  await sleep(500)
  const first = await client.request()
  t.is(await first.body.text(), 'ok')
  await sleep(800) // past the original 1 s deadline
  const second = await client.request()
  t.deepEqual([first.streamId, second.streamId, await second.body.text()], [0, 4, 'ok'])
  t.false(client.isClosed, 'no post-accept shutdown')
  t.false(serverEvents.some((e) => e.type === 'connectionShutdown' || e.type === 'connectionError'))
  await client.close()
})

for (const [name, settings] of [
  ['e2e_client_ip_validation_disabled', { disableClientIpValidation: true }],
  ['e2e_pooled_send_buffer_disabled', { poolSendBuffer: false }],
] as const) {
  test(`${Object.keys(settings)[0]}: a GET gets its 200 and body (${name})`, async (t) => {
    const server = await startServer(respondOk, { settings })
    t.teardown(() => server.close())
    const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
    const res = await client.request()
    t.deepEqual([res.status, await res.body.text()], [200, 'ok'])
    await client.close()
  })
}
