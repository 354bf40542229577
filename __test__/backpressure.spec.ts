// Back-pressure end to end: a client that reads slowly holds back a server
// writing 64 MiB. The server's JS writer waits (its sends resolve no faster
// than the client reads, give or take the flow-control windows), and its
// memory stays bounded.
import test from 'ava'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { connect } from 'tokio-quiche'
import { sleep, testIdentity } from './helpers.js'

const SIZE = 64 * 1024 * 1024
const MiB = 1024 * 1024
/** QUIC stream window (16 MiB cap) + quiche send buffer + 16 queued 64 KiB frames, with slack. */
const MAX_AHEAD = 16 * MiB
/** Peak RSS growth allowed in the server: well under the 64 MiB it sends. */
const MAX_RSS_GROWTH = 32 * MiB

test('a slow reader throttles a 64 MiB writer; server RSS stays bounded', async (t) => {
  const id = await testIdentity()
  const child = spawn(process.execPath, ['--import=tsx', '--expose-gc', `${__dirname}/fixtures/bulk-server.ts`, id.certPath, id.keyPath, String(SIZE)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => child.kill())
  const lines = createInterface({ input: child.stdout! })
  let received = 0
  let maxAhead = 0
  let report: { growth: number } | undefined
  let listening!: (address: string) => void
  const address = new Promise<string>((r) => (listening = r))
  const exited = new Promise<number | null>((r) => child.on('exit', r))
  lines.on('line', (line) => {
    const [word, rest] = [line.slice(0, line.indexOf(' ')), line.slice(line.indexOf(' ') + 1)]
    if (word === 'listening') listening(rest)
    if (word === 'accepted') maxAhead = Math.max(maxAhead, Number(rest) - received)
    if (word === 'done') report = JSON.parse(rest)
  })

  const client = await connect(await address, { serverName: 'localhost', ca: id.cert })
  const res = await client.request({ path: '/bulk' })
  const started = Date.now()
  for await (const chunk of res.body.chunks()) {
    received += chunk.length
    await sleep(8) // ~30 MB/s at 256 KiB per read: far slower than the server can write
  }
  const seconds = (Date.now() - started) / 1000
  await client.close()
  t.is(await exited, 0)
  t.is(received, SIZE)
  t.truthy(report, 'the server reported its memory')
  t.log(`read 64 MiB in ${seconds.toFixed(1)} s; server ran at most ${(maxAhead / MiB).toFixed(1)} MiB ahead of the reader; server RSS grew ${(report!.growth / MiB).toFixed(1)} MiB`)
  t.true(maxAhead <= MAX_AHEAD, `the writer ran ${(maxAhead / MiB).toFixed(1)} MiB ahead of the reader`)
  t.true(report!.growth <= MAX_RSS_GROWTH, `server RSS grew ${(report!.growth / MiB).toFixed(1)} MiB`)
})
