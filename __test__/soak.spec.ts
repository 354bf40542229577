// The short version of scripts/soak.ts (the full one: 1,000 connections at
// once, 100,000 requests; `npm run soak`). Its own process, so its RSS, heap
// and fd samples are its own, and it must exit by itself.
import test from 'ava'
import { spawn } from 'node:child_process'
import { join } from 'node:path'

test('soak, short: 100 connections at once, 5,000 requests with churn: none lost, every SHA-256 right, no fd left, exits by itself', async (t) => {
  const child = spawn(
    process.execPath,
    ['--expose-gc', '--import=tsx', join(__dirname, '..', 'scripts', 'soak.ts'), '--connections', '100', '--requests', '5000', '--per-connection', '10', '--json'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000)
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
  clearTimeout(killer)
  const result = JSON.parse(out.trim().split('\n').pop()!) as {
    done: number
    lost: number
    corrupted: number
    connectionsOpened: number
    fds: { before: number; after: number }
    failures: string[]
    requestsPerSecond: number
    slopePer1000Requests: Record<string, number>
  }
  t.log(`${result.done} requests on ${result.connectionsOpened} connections, ${result.requestsPerSecond} req/s; slopes per 1,000 requests ${JSON.stringify(result.slopePer1000Requests)}; fds ${result.fds.before} -> ${result.fds.after}`)
  t.deepEqual(result.failures, [])
  t.is(code, 0, 'exit code (SIGKILLed after 120 s if it hung)')
  t.is(result.done, 5000)
  t.is(result.lost, 0)
  t.is(result.corrupted, 0)
  t.true(result.connectionsOpened >= 500, 'a connection per 10 requests at least')
})
