// Raw QUIC rows (issue 16): this package's RawQuicConnection echo
// (bench/raw-server.ts, subject Q) against a native tokio-quiche
// ApplicationOverQuic echo (`tq-bench raw-server`, subject NQ), both driven
// by the same native client (`tq-bench raw-load`), alternating in one run.
//   npx tsx bench/raw.ts [--runs 5] [--bytes 104857600] [--streams 50] [--duration 5] [--warmups 1] [--skip-build]
// Prints a markdown table: medians per subject and the ratio Q/NQ.
import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { writeSelfSignedCertificate } from 'tokio-quiche'
import { ROOT, TQ_BENCH, quicClientEnv } from './clients'
import { cpuSeconds, startProcess } from './proc'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '5' },
    bytes: { type: 'string', default: String(100 * 1024 * 1024) },
    streams: { type: 'string', default: '50' },
    duration: { type: 'string', default: '5' },
    warmups: { type: 'string', default: '1' },
    'skip-build': { type: 'boolean', default: false },
  },
})

interface RawLoad {
  seconds: number
  bytes: number
  completed: number
  mbps: number
  rps: number
  clientCpu: number
}

const SUBJECTS = {
  NQ: (a: string, c: string, k: string): [string, string[]] => [TQ_BENCH, ['raw-server', a, c, k]],
  Q: (a: string, c: string, k: string): [string, string[]] => [process.execPath, ['--import=tsx', join(__dirname, 'raw-server.ts'), a, c, k]],
}
type SubjectId = keyof typeof SUBJECTS

const ROWS = {
  'raw-bulk': { args: () => ['bulk', values.bytes], metric: (r: RawLoad) => r.mbps, unit: 'Mbit/s (echoed)' },
  'raw-rr-1k': { args: () => ['rr', values.streams, values.duration], metric: (r: RawLoad) => r.rps, unit: 'req/s (fresh bidi stream each)' },
}
type RowId = keyof typeof ROWS

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function once(subject: SubjectId, row: RowId, cert: string, key: string): Promise<{ value: number; serverCpu: number }> {
  const [cmd, args] = SUBJECTS[subject]('127.0.0.1:0', cert, key)
  const { child, line } = await startProcess(cmd, args, (l) => l.startsWith('listening '))
  try {
    const address = line.slice('listening '.length)
    const load = () => execFileSync(TQ_BENCH, ['raw-load', address, ...ROWS[row].args()], { encoding: 'utf8', env: quicClientEnv(cert) })
    // One unmeasured load first, as bench/run.ts does: start-up and JIT
    // warm-up are not what a long-running server pays.
    for (let i = 0; i < Number(values.warmups); i++) load()
    const cpu = cpuSeconds(child.pid!)
    const out = load()
    const result = JSON.parse(out.trim().split('\n').pop()!) as RawLoad
    return { value: ROWS[row].metric(result), serverCpu: (cpuSeconds(child.pid!) - cpu) / result.seconds }
  } finally {
    child.kill('SIGKILL')
  }
}

async function main(): Promise<void> {
  if (!values['skip-build']) execFileSync('cargo', ['build', '--release', '-p', 'tq-bench'], { cwd: ROOT, stdio: 'inherit' })
  const { certPath, keyPath } = await writeSelfSignedCertificate(['localhost', '127.0.0.1'])
  const runs = Number(values.runs)
  console.log(`| row | NQ (native ApplicationOverQuic) | Q (this package, RawQuicConnection) | Q/NQ | server CPU NQ, Q (cores) |`)
  console.log('|---|---|---|---|---|')
  for (const row of Object.keys(ROWS) as RowId[]) {
    const results: Record<SubjectId, { value: number; serverCpu: number }[]> = { NQ: [], Q: [] }
    // Alternating, so drift on the machine hits both subjects alike.
    for (let i = 0; i < runs; i++) for (const subject of ['NQ', 'Q'] as const) results[subject].push(await once(subject, row, certPath, keyPath))
    const n = median(results.NQ.map((r) => r.value))
    const q = median(results.Q.map((r) => r.value))
    const cpu = (s: SubjectId) => median(results[s].map((r) => r.serverCpu)).toFixed(2)
    console.log(`| ${row} | ${n.toFixed(0)} ${ROWS[row].unit} | ${q.toFixed(0)} | ${(q / n).toFixed(2)} | ${cpu('NQ')}, ${cpu('Q')} |`)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
