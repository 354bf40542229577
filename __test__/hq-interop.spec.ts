// hq-interop (HTTP/0.9 over QUIC) on the raw QUIC API, against aioquic's
// own hq-interop (aioquic.h0) both ways, over real UDP on 127.0.0.1.
// `interop/setup.sh` makes the venv (npm pretest).
import test from 'ava'
import { type ChildProcess, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { connectQuic } from 'tokio-quiche'
import { HQ_ALPN, HQ_NOT_FOUND, getHq } from '../examples/hq-interop.js'
import { sha256, testIdentity } from './helpers.js'

const ROOT = `${__dirname}/..`
const PYTHON = `${ROOT}/.venv-interop/bin/python`
const HQ_PEER = `${ROOT}/interop/aioquic_hq.py`
const TSX = `${ROOT}/node_modules/.bin/tsx`

let root: string
/** Path -> SHA-256 of every file served. */
const files = new Map<string, string>()
test.before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'hq-'))
  for (let i = 0; i < 1000; i++) {
    const body = randomBytes(1 + ((i * 7919) % 4000))
    await writeFile(path.join(root, `f${i}.bin`), body)
    files.set(`/f${i}.bin`, sha256(body))
  }
  const big = randomBytes(10 * 1024 * 1024)
  await writeFile(path.join(root, 'big.bin'), big)
  files.set('/big.bin', sha256(big))
  // Outside the root: must not be served.
  await writeFile(path.join(root, '..', `${path.basename(root)}-secret`), 'secret')
})
test.after.always(async () => {
  await rm(root, { recursive: true, force: true })
  await rm(path.join(root, '..', `${path.basename(root)}-secret`), { force: true })
})

/** Spawns `args`, resolving the port it prints as "listening <port>". */
async function listening(command: string, args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.startsWith('listening ')) resolve(Number(line.slice(10)))
    })
    child.on('exit', (code) => reject(new Error(`${args[0]} exited with ${code} before listening`)))
  })
  return { child, port }
}

interface PeerLine {
  path?: string
  size?: number
  sha256?: string
  reset_code?: number
  done?: number
}

test('aioquic hq-interop client -> examples/hq-interop.ts server: 1,000 small files and 10 MiB by SHA-256; missing and outside paths reset', async (t) => {
  const id = await testIdentity()
  const { child: server, port } = await listening(TSX, [`${ROOT}/examples/hq-interop.ts`, 'server', '--root', root, '--port', '0', '--cert', id.certPath, '--key', id.keyPath])
  t.teardown(() => server.kill())
  const paths = [...files.keys(), '/missing.bin', `/../${path.basename(root)}-secret`]
  const pathsFile = path.join(root, '..', `${path.basename(root)}-paths.txt`)
  await writeFile(pathsFile, paths.join('\n'))
  t.teardown(() => rm(pathsFile, { force: true }))
  const client = spawn(PYTHON, [HQ_PEER, 'client', '--port', String(port), '--ca', id.certPath, '--paths-file', pathsFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  client.stdout!.on('data', (d) => (out += d))
  client.stderr!.on('data', (d) => (err += d))
  const [code] = await once(client, 'exit')
  t.is(code, 0, err)
  const lines = out.trim().split('\n').map((line) => JSON.parse(line) as PeerLine)
  t.deepEqual(lines.at(-1), { done: paths.length })
  const byPath = new Map(lines.filter((l) => l.path).map((l) => [l.path!, l]))
  t.is(byPath.size, paths.length)
  let matched = 0
  for (const [file, hash] of files) if (byPath.get(file)?.sha256 === hash) matched++
  t.is(matched, files.size)
  t.is(byPath.get('/big.bin')?.size, 10 * 1024 * 1024)
  t.is(byPath.get('/missing.bin')?.reset_code, HQ_NOT_FOUND)
  t.is(byPath.get(`/../${path.basename(root)}-secret`)?.reset_code, HQ_NOT_FOUND)
})

test('our hq-interop client (examples/hq-interop.ts getHq) -> aioquic hq-interop server: 1,000 small files and 10 MiB by SHA-256', async (t) => {
  const id = await testIdentity()
  const { child: server, port } = await listening(PYTHON, [HQ_PEER, 'server', '--cert', id.certPath, '--key', id.keyPath, '--root', root])
  t.teardown(() => server.kill())
  const connection = await connectQuic(`127.0.0.1:${port}`, { alpn: HQ_ALPN, ca: id.certPath, serverName: 'localhost' })
  t.is(connection.applicationProtocol, HQ_ALPN)
  const results = await getHq(connection, [...files.keys(), '/missing.bin'])
  const byPath = new Map(results.map((r) => [r.path, r]))
  let matched = 0
  for (const [file, hash] of files) if (byPath.get(file)?.sha256 === hash) matched++
  t.is(matched, files.size, JSON.stringify(results.filter((r) => r.error).slice(0, 3)))
  t.is(byPath.get('/big.bin')?.size, 10 * 1024 * 1024)
  t.regex(byPath.get('/missing.bin')?.error ?? '', /reset by the peer with code 0x4/)
  // Every request was its own client bidi stream on this one connection.
  const stats = await connection.stats()
  t.true(stats.bytesReceived > 10 * 1024 * 1024)
  await connection.close()
})
