// TLS session resumption on our client and server: getSession() after a
// ticket, connect({ session }) on a new connection, isSessionReused() both ends.
import test from 'ava'
import { type ServerH3Controller, connect } from 'tokio-quiche'
import { startServer, waitForSession } from './helpers.js'

test('a session from getSession() resumes on a new connection; both ends see it reused', async (t) => {
  const reused: boolean[] = []
  const server = await startServer(async (req, controller: ServerH3Controller) => {
    reused.push(await controller.isSessionReused())
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end('ok')
  })
  t.teardown(() => server.close())
  const options = { serverName: 'localhost', ca: server.identity.cert }
  const first = await connect(server.address, options)
  t.is(await (await first.request()).body.text(), 'ok')
  const session = await waitForSession(first)
  t.false(await first.isSessionReused())
  await first.close()

  const second = await connect(server.address, { ...options, session })
  t.true(await second.isSessionReused())
  t.is(await (await second.request()).body.text(), 'ok')
  t.deepEqual(reused, [false, true])
  await second.close()
  await t.throwsAsync(second.getSession(), { code: 'ERR_CLOSED' })
})

test('a session that is not from getSession() is ERR_INVALID_ARG', async (t) => {
  await t.throwsAsync(connect('127.0.0.1:9', { insecureSkipVerify: true, session: Buffer.from('not a session') }), {
    code: 'ERR_INVALID_ARG',
    message: /^session: not a session from getSession\(\)/,
  })
  await t.throwsAsync(connect('127.0.0.1:9', { insecureSkipVerify: true, session: 'x' as never }), { code: 'ERR_INVALID_ARG', message: /^options\.session:/ })
})
