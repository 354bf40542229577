// SSLKEYLOGFILE output (tokio-quiche's `capture_keylogs`, built into the
// published binary): both ends log the same TLS secrets for one handshake.
import test from 'ava'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, features } from 'tokio-quiche'
import { startServer } from './helpers.js'

/** `LABEL <client random, 32 bytes hex> <secret hex>` (draft-ietf-tls-keylogfile). */
const LINE = /^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64,})$/

async function parseKeylog(path: string) {
  const lines = (await readFile(path, 'latin1')).split('\n').filter(Boolean)
  return lines.map((line) => {
    const m = LINE.exec(line)
    if (!m) throw new Error(`not a keylog line: ${line}`)
    return { label: m[1]!, random: m[2]!, secret: m[3]! }
  })
}

test('keylogFile: client and server write the same TLS 1.3 secrets for one connection', async (t) => {
  t.true(features.includes('capture_keylogs'))
  const dir = await mkdtemp(join(tmpdir(), 'tq-keylog-'))
  const serverLog = join(dir, 'server.keys')
  const clientLog = join(dir, 'client.keys')
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end('ok')
  }, { settings: { keylogFile: serverLog } })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { keylogFile: clientLog } })
  t.is(await (await client.request()).body.text(), 'ok')
  await client.close()
  await server.close()

  const [serverKeys, clientKeys] = await Promise.all([parseKeylog(serverLog), parseKeylog(clientLog)])
  const labels = new Set(clientKeys.map((k) => k.label))
  for (const label of ['CLIENT_HANDSHAKE_TRAFFIC_SECRET', 'SERVER_HANDSHAKE_TRAFFIC_SECRET', 'CLIENT_TRAFFIC_SECRET_0', 'SERVER_TRAFFIC_SECRET_0']) {
    t.true(labels.has(label), `client logged ${label}`)
  }
  t.is(new Set(clientKeys.map((k) => k.random)).size, 1, 'one handshake, one client random')
  const serverLines = new Set(serverKeys.map((k) => `${k.label} ${k.random} ${k.secret}`))
  for (const k of clientKeys) t.true(serverLines.has(`${k.label} ${k.random} ${k.secret}`), `server logged the same ${k.label}`)
})

test('an unwritable keylogFile is ERR_INVALID_ARG naming the field', async (t) => {
  await t.throwsAsync(connect('127.0.0.1:9', { insecureSkipVerify: true, settings: { keylogFile: '/nonexistent/dir/keys.log' } }), {
    code: 'ERR_INVALID_ARG',
    message: /^settings\.keylogFile: cannot open '\/nonexistent\/dir\/keys\.log' for appending/,
  })
})
