// Bad input from JS, table-driven (issue 18): every row of
// fixtures/bad-input-table.ts must fail with a TokioQuicheError of its code and
// a message naming the field. The table runs in a child process that must then
// exit by itself: a crash kills it, a hang or a leaked handle keeps it alive.
import test from 'ava'
import { spawn } from 'node:child_process'
import { rows } from './fixtures/bad-input-table.js'

interface Outcome {
  index: number
  typed: boolean
  code?: string
  message?: string
  accepted?: boolean
}

const EXIT_LIMIT_MS = 15_000

const child = new Promise<{ exit: number | null; signal: string | null; ms: number; outcomes: Map<number, Outcome>; lines: string[] }>((resolve) => {
  const started = Date.now()
  const proc = spawn(process.execPath, ['--import=tsx', `${__dirname}/fixtures/bad-input-table.ts`], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  proc.stdout!.on('data', (d) => (stdout += d))
  const killer = setTimeout(() => proc.kill('SIGKILL'), EXIT_LIMIT_MS)
  proc.on('exit', (exit, signal) => {
    clearTimeout(killer)
    const lines = stdout.trim().split('\n').filter(Boolean)
    const outcomes = new Map<number, Outcome>()
    for (const line of lines) {
      const parsed = JSON.parse(line) as Partial<Outcome>
      if (typeof parsed.index === 'number') outcomes.set(parsed.index, parsed as Outcome)
    }
    resolve({ exit, signal, ms: Date.now() - started, outcomes, lines })
  })
})

test('the table has at least 60 rows', (t) => {
  t.true(rows.length >= 60, `${rows.length} rows`)
})

test(`the table's process exits by itself after closing everything (killed after ${EXIT_LIMIT_MS / 1000} s)`, async (t) => {
  const { exit, signal, ms, lines } = await child
  t.is(signal, null, 'not killed: no hang, no leaked handle')
  t.is(exit, 0)
  t.true(lines.includes(JSON.stringify({ doubleClose: true })), 'close() twice resolves with the same close info')
  t.true(lines.includes(JSON.stringify({ done: true })), 'a listener closed twice resolves too')
  t.log(`${rows.length} rows, exited in ${ms} ms`)
})

for (const [index, row] of rows.entries()) {
  test(`${row.call} → ${row.code}`, async (t) => {
    const outcome = (await child).outcomes.get(index)
    if (!outcome) return t.fail('the row never reported (crash or hang)')
    t.false(outcome.accepted ?? false, 'the bad input was accepted')
    t.true(outcome.typed, `not a TokioQuicheError: ${outcome.message}`)
    t.is(outcome.code, row.code, outcome.message)
    t.regex(outcome.message ?? '', row.field)
  })
}
