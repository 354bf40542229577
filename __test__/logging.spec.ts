// tokio-quiche's (and quiche's) logs routed to a JS logger: off by default,
// on with setLogger() or TOKIO_QUICHE_LOG, off again with setLogger(null).
// Serial: the logger is process-wide.
import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { type LogRecord, connect, setLogger } from 'tokio-quiche'
import { sleep, startServer } from './helpers.js'

async function oneConnection(settings = {}): Promise<void> {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '204']])
    await req.send.end()
  }, { settings })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings })
  await (await client.request()).body.bytes()
  await client.close()
  await server.close()
}

// First: quiche's records are captured at the level the logger has when a
// connection first asks for them, once per process.
test.serial('captureQuicheLogs adds quiche\'s own trace records', async (t) => {
  const records: LogRecord[] = []
  setLogger((r) => records.push(r), { level: 'trace' })
  await oneConnection({ captureQuicheLogs: true })
  await sleep(200)
  setLogger(null)
  t.true(records.some((r) => r.level === 'trace' && /\b(rx|tx) pkt\b/.test(r.message)), 'quiche traced packets')
})

test.serial('setLogger() receives tokio-quiche records with level, message and fields; null stops them', async (t) => {
  const records: LogRecord[] = []
  setLogger((r) => records.push(r), { level: 'debug' })
  await oneConnection()
  await sleep(200) // records cross foundations' log thread first
  t.true(records.length > 0, 'tokio-quiche logged the connection')
  t.true(records.every((r) => ['error', 'warn', 'info', 'debug'].includes(r.level)), 'nothing below debug')
  const created = records.find((r) => r.message.includes('created unestablished quiche::Connection'))
  t.truthy(created, records.map((r) => r.message).join('\n'))
  t.regex(created!.fields.scid ?? '', /\w/, 'structured fields arrive as fields')

  setLogger(null)
  const seen = records.length
  await oneConnection()
  await sleep(200)
  t.is(records.length, seen, 'no records after setLogger(null)')
})

test.serial('bad logger arguments are ERR_INVALID_ARG', (t) => {
  t.throws(() => setLogger('console' as never), { code: 'ERR_INVALID_ARG', message: /^logger: / })
  t.throws(() => setLogger(() => {}, { level: 'loud' as never }), { code: 'ERR_INVALID_ARG', message: /^options\.level: expected one of error, warn/ })
})

test.serial('TOKIO_QUICHE_LOG=debug logs to stderr, and the process still exits by itself', async (t) => {
  const child = spawn(process.execPath, ['--import=tsx', `${__dirname}/fixtures/one-request.ts`], {
    env: { ...process.env, TOKIO_QUICHE_LOG: 'debug' },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr!.on('data', (d) => (stderr += d))
  const [code] = await once(child, 'exit')
  t.is(code, 0, stderr)
  t.regex(stderr, /^tokio-quiche (info|debug) /m)
})
