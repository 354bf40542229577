// `npm run bench [-- --scenario NAME[,NAME] --runs N --duration S]`
//
// Builds in release mode, then runs each scenario against each subject in the
// same session with the same native load client (crates/bench, `tq-bench
// load`), alternating subjects run by run:
//   N  a native Rust tokio-quiche server (crates/bench, `tq-bench server`)
//   P  this package's Node server through the controller API (bench/server.ts)
//   S  the same through serve() (WHATWG Request/Response)
// Reports medians, spread, server CPU per unit of work and the ratios P/N and S/N, into
// bench/results/<time>.json and docs/benchmarks.md.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, release } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { writeSelfSignedCertificate } from 'tokio-quiche'

const ROOT = join(__dirname, '..')
const MiB = 1024 * 1024

interface Scenario {
  name: string
  what: string
  path: string
  streams: number
  /** Which figure decides: requests per second or megabits per second. */
  unit: 'rps' | 'mbps'
}

const SCENARIOS: Scenario[] = [
  { name: 'small-10', what: '1 KiB GETs, 10 concurrent streams, 1 connection', path: '/small', streams: 10, unit: 'rps' },
  { name: 'small-50', what: '1 KiB GETs, 50 concurrent streams, 1 connection', path: '/small', streams: 50, unit: 'rps' },
  { name: 'bulk-1', what: '100 MiB downloads, 1 stream', path: `/bytes/${100 * MiB}`, streams: 1, unit: 'mbps' },
  { name: 'bulk-16', what: '16 concurrent 6.25 MiB downloads (100 MiB in flight)', path: `/bytes/${(100 * MiB) / 16}`, streams: 16, unit: 'mbps' },
]

interface LoadResult {
  requests: number
  bytes: number
  seconds: number
  rps: number
  mbps: number
  p50_us: number
  p99_us: number
  handshake_us: number
  client_cpu_s: number
}

interface Run extends LoadResult {
  server_cpu_s: number
}

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: SCENARIOS.map((s) => s.name).join(',') },
    runs: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    'skip-build': { type: 'boolean', default: false },
  },
})
const runs = Number(values.runs)
const duration = Number(values.duration)
const chosen = values.scenario!.split(',').map((name) => {
  const s = SCENARIOS.find((x) => x.name === name)
  if (!s) throw new Error(`unknown scenario '${name}'; known: ${SCENARIOS.map((x) => x.name).join(', ')}`)
  return s
})

const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (\S+)$/m)![1]!
const TQ_BENCH = join(ROOT, 'target', host, 'release', 'tq-bench')

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { cwd: ROOT, stdio: 'inherit' })
}

/** User + system CPU seconds of a process, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop()!.trim().split(/\s+/)
  return (Number(fields[11]) + Number(fields[12])) / 100
}

type Subject = 'N' | 'P' | 'S'
const SUBJECTS: Subject[] = ['N', 'P', 'S']

async function startSubject(subject: Subject, cert: string, key: string): Promise<{ child: ChildProcess; address: string }> {
  const child =
    subject === 'N'
      ? spawn(TQ_BENCH, ['server', '127.0.0.1:0', cert, key], { stdio: ['ignore', 'pipe', 'inherit'] })
      : spawn(process.execPath, ['--import=tsx', join(__dirname, 'server.ts'), '127.0.0.1:0', cert, key, subject === 'P' ? 'controller' : 'serve'], {
          cwd: ROOT,
          stdio: ['ignore', 'pipe', 'inherit'],
        })
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => line.startsWith('listening ') && resolve(line.slice(10)))
    child.on('exit', (code) => reject(new Error(`subject ${subject} exited with ${code}`)))
  })
  return { child, address }
}

function load(address: string, s: Scenario): LoadResult {
  const out = execFileSync(TQ_BENCH, ['load', address, s.path, String(s.streams), String(duration)], { encoding: 'utf8' })
  return JSON.parse(out.trim().split('\n').pop()!) as LoadResult
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

async function main(): Promise<void> {
  if (!values['skip-build']) {
    sh('npm', ['run', 'build'])
    sh('cargo', ['build', '--release', '-p', 'tq-bench', '--target', host])
  }
  const id = await writeSelfSignedCertificate(['localhost', '127.0.0.1'])
  const results: Record<string, Record<Subject, Run[]>> = {}
  for (const s of chosen) {
    results[s.name] = { N: [], P: [], S: [] }
    for (let i = 0; i < runs; i++) {
      for (const subject of SUBJECTS) {
        // A fresh server per run: no state carried between runs.
        const { child, address } = await startSubject(subject, id.certPath, id.keyPath)
        const cpu0 = cpuSeconds(child.pid!)
        const r = load(address, s)
        const server_cpu_s = cpuSeconds(child.pid!) - cpu0
        child.kill('SIGKILL')
        results[s.name]![subject].push({ ...r, server_cpu_s })
        console.log(`${s.name} run ${i + 1}/${runs} ${subject}: ${s.unit === 'rps' ? `${r.rps.toFixed(0)} req/s` : `${r.mbps.toFixed(0)} Mbit/s`}, server CPU ${server_cpu_s.toFixed(2)} s, client CPU ${r.client_cpu_s.toFixed(2)} s`)
      }
    }
  }
  report(results)
}

function report(results: Record<string, Record<Subject, Run[]>>): void {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Linux ${release()}, Node ${process.version}`
  mkdirSync(join(__dirname, 'results'), { recursive: true })
  writeFileSync(join(__dirname, 'results', `${stamp}.json`), JSON.stringify({ machine, runs, duration, results }, null, 2))

  const rows: string[] = []
  for (const s of chosen) {
    const bySubject = results[s.name]!
    const line = (subject: Subject) => {
      const rs = bySubject[subject]
      const main = rs.map((r) => r[s.unit])
      const perUnit = rs.map((r) => (s.unit === 'rps' ? (r.server_cpu_s / r.requests) * 1e6 : r.server_cpu_s / (r.bytes / 1e9)))
      return {
        median: median(main),
        spread: `${Math.min(...main).toFixed(0)}–${Math.max(...main).toFixed(0)}`,
        cpu: median(perUnit),
        p50: median(rs.map((r) => r.p50_us)),
        p99: median(rs.map((r) => r.p99_us)),
        clientCpu: median(rs.map((r) => r.client_cpu_s / r.seconds)),
      }
    }
    const n = line('N')
    const p = line('P')
    const sv = line('S')
    const unit = s.unit === 'rps' ? 'req/s' : 'Mbit/s'
    const cpuUnit = s.unit === 'rps' ? 'µs/req' : 's/GB'
    for (const [name, l] of [['N (native tokio-quiche)', n], ['P (this package, controller API)', p], ['S (this package, serve())', sv]] as const) {
      rows.push(
        `| ${s.name} | ${name} | ${l.median.toFixed(0)} ${unit} | ${l.spread} | ${l.cpu.toFixed(s.unit === 'rps' ? 1 : 2)} ${cpuUnit} | ${l.p50} / ${l.p99} µs | ${(l.clientCpu * 100).toFixed(0)} % |`,
      )
    }
    rows.push(`| ${s.name} | **P/N** | **${(p.median / n.median).toFixed(2)}** | | ${(p.cpu / n.cpu).toFixed(2)}× CPU | | |`)
    rows.push(`| ${s.name} | **S/N** | **${(sv.median / n.median).toFixed(2)}** | | ${(sv.cpu / n.cpu).toFixed(2)}× CPU | | |`)
  }
  const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString().slice(0, 10)}: ${machine}.
${runs} runs of ${duration} s per scenario and subject, subjects alternating run by run, a fresh server
process per run, one connection per run. Release builds. The load client is the native \`tq-bench load\`
(tokio-quiche's client, one connection, the given number of requests always in flight); its CPU use is
shown so it can be checked for being the bottleneck. Client and server share the machine's cores:
where the client's CPU is near 100 %, the client rather than the server bounds the result, so
P/N there overstates how close P comes to N.

Server sockets: tokio-quiche's \`listen()\` applies GSO, GRO and the other socket capabilities the
kernel offers (loopback on Linux offers GSO and GRO) for both subjects; the client's \`connect()\`
applies none.

| scenario | subject | median | spread (min–max) | server CPU | latency p50 / p99 | client CPU |
|---|---|---|---|---|---|---|
${rows.join('\n')}

Scenarios: ${chosen.map((s) => `\`${s.name}\`: ${s.what}`).join('; ')}.
Raw results: \`bench/results/${stamp}.json\`.
`
  writeFileSync(join(ROOT, 'docs', 'benchmarks.md'), md)
  console.log(`\n${md}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
