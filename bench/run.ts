// `npm run bench [-- --scenario NAME[,NAME] --runs N --duration S --warmup S --concurrency N
//                    --conns N --subjects N,P,... --cluster --skip-build]`
//
// Builds in release mode, then runs each scenario against each subject
// (bench/subjects.ts) in the same session, alternating subjects run by run,
// a fresh server per run; writes bench/results/<time>.json and
// docs/benchmarks.md (bench/report.ts). Scenarios: bench/scenarios.ts; load
// clients: bench/clients.ts.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { cpus, release } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { writeSelfSignedCertificate } from 'tokio-quiche'
import { HOST_TRIPLE, type LoadResult, type LoadSpec, ROOT, TQ_BENCH, openIdle, type PackageClientApi, packageClientLoad, tqBenchLoad } from './clients'
import { H2LOAD_MISSING, h2load, h2loadAvailable, uploadFile } from './h2load'
import { cpuSeconds, rssBytes } from './proc'
import { type Entry, type Run, type ScenarioResults, writeReport } from './report'
import { SCENARIOS, type Scenario } from './scenarios'
import { type RunningServer, SUBJECTS, type Subject, type SubjectId, startServer } from './subjects'
import { udpCounters, udpDelta } from './udp'

const { values } = parseArgs({
  options: {
    scenario: { type: 'string', default: SCENARIOS.filter((s) => !s.optIn).map((s) => s.name).join(',') },
    runs: { type: 'string', default: '5' },
    duration: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string' },
    conns: { type: 'string' },
    subjects: { type: 'string', default: 'N,P,S,R,H2,H1,F,FW' },
    cluster: { type: 'boolean', default: false },
    'skip-build': { type: 'boolean', default: false },
  },
})
const runs = Number(values.runs)
const duration = Number(values.duration)
const warmup = Number(values.warmup)
const wanted = new Set(values.subjects!.split(','))
const chosen: Scenario[] = values.scenario!.split(',').map((name) => {
  const s = SCENARIOS.find((x) => x.name === name)
  if (!s) throw new Error(`unknown scenario '${name}'; known: ${SCENARIOS.map((x) => x.name).join(', ')}`)
  // --concurrency and --conns override the scenario's streams and connections.
  const load = { ...s.load, ...(values.concurrency ? { streams: Number(values.concurrency) } : {}), ...(values.conns ? { conns: Number(values.conns) } : {}) }
  return { ...s, load }
})

const CLIENT_SIDE: Entry[] = [
  // Like for like: tq-bench without GSO/GRO, as this package's connect() has none.
  { id: 'N', label: 'N (tq-bench load, native client)', client: 'itself → server N' },
  { id: 'P', label: "P (this package's client, request())", client: 'itself → server N' },
  { id: 'F', label: "F (this package's fetch(), one Agent, body by for await)", client: 'itself → server N' },
  { id: 'FW', label: "FW (this package's fetch(), one Agent, body by arrayBuffer())", client: 'itself → server N' },
]
const CLIENT_API: Record<string, PackageClientApi> = { P: 'request', F: 'fetch', FW: 'fetch-whole' }

function clientLabel(s: Scenario, subject: Subject): string {
  if (subject.protocol === 'h3') return s.idle ? 'tq-bench idle' : 'tq-bench load'
  if (s.idle) return 'idle-tcp.ts (Node)'
  return s.tcpLoad === 'tq-bench' ? `tq-bench load --proto ${subject.protocol}` : 'h2load'
}

/** Soft limit on open files, which 10,000 TCP connections need on each side. */
function openFileLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
  return m?.[1] === 'unlimited' ? Infinity : Number(m?.[1] ?? 1024)
}

/** Which subjects run a scenario, and which are left out with why. */
function plan(s: Scenario, haveH2load: boolean, clusterOk: string | true): { entries: Entry[]; skipped: string[] } {
  if (s.side === 'client') return { entries: CLIENT_SIDE.filter((e) => wanted.has(e.id)), skipped: [] }
  const ids: SubjectId[] = ['N', 'P', 'S', 'R', 'H2', 'H1', ...(values.cluster && s.cluster ? (['C1', 'C2'] as const) : [])]
  const entries: Entry[] = []
  const skipped: string[] = []
  for (const id of ids) {
    const subject = SUBJECTS[id]
    if (!wanted.has(id) && !id.startsWith('C')) continue
    const why =
      subject.protocol !== 'h3' && !s.idle && s.tcpLoad !== 'tq-bench' && !haveH2load
          ? 'h2load not installed'
          : id.startsWith('C') && clusterOk !== true
            ? clusterOk
            : s.idle && openFileLimit() < s.idle + 1000
              ? `open-file limit ${openFileLimit()} < ${s.idle + 1000}; raise it with ulimit -n`
              : undefined
    if (why) skipped.push(`${id}: not run (${why})`)
    else entries.push({ id, label: subject.label, client: clientLabel(s, subject) })
  }
  return { entries, skipped }
}

/** A load client: the subject's own (server side) or this package's client with one of its APIs (client side). */
type Client = Subject | { api: PackageClientApi }

function load(s: Scenario, subject: Client, address: string, cert: string, seconds = duration): LoadResult {
  const spec: LoadSpec = { ...s.load, seconds }
  if ('api' in subject) return packageClientLoad(address, spec, cert, subject.api)
  if (subject.protocol === 'h3') return tqBenchLoad(address, spec, cert)
  if (s.tcpLoad === 'tq-bench') return tqBenchLoad(address, spec, cert, { proto: subject.protocol })
  return h2load(`https://${address}${spec.path}`, {
    h1: subject.protocol === 'h1',
    conns: spec.conns,
    streams: spec.streams,
    seconds: spec.seconds,
    ...(spec.upload ? { uploadFile: uploadFile(spec.upload) } : {}),
  })
}

async function timedRun(s: Scenario, server: RunningServer, client: Client, cert: string): Promise<Run> {
  // The same load first, unmeasured, so that a fresh server's start-up (JIT
  // compilation in the Node subjects) is not part of the run. Client-side
  // scenarios start a fresh client per load, which no warm-up can reach.
  if (warmup > 0 && s.side === 'server') load(s, client, server.address, cert, warmup)
  // Stats first: answering them (a GC in Node subjects) is not part of the run.
  const stats0 = await server.stats()
  const cpu0 = cpuSeconds(server.pid)
  const udp0 = udpCounters()
  const r: Run = { ...load(s, client, server.address, cert), server_cpu_s: 0 }
  r.server_cpu_s = cpuSeconds(server.pid) - cpu0
  const stats1 = await server.stats()
  if (stats0.bridge && stats1.bridge) {
    r.crossings = { toRust: stats1.bridge.toRust - stats0.bridge.toRust, toJs: stats1.bridge.toJs - stats0.bridge.toJs }
  }
  if ('api' in client || client.protocol === 'h3') r.udp = udpDelta(udp0)
  if (s.load.upload) {
    // Uploads are counted where they arrive, the same way for every client.
    r.bytes = stats1.uploaded - stats0.uploaded
    r.mbps = (r.bytes * 8) / r.seconds / 1e6
  }
  return r
}

async function idleRun(s: Scenario, server: RunningServer, subject: Subject, cert: string): Promise<Run> {
  await sleep(300) // past start-up allocations
  const before = await server.stats()
  const rss0 = rssBytes(server.pid)
  const cpu0 = cpuSeconds(server.pid)
  const idle = await openIdle(subject.protocol, server.address, s.load.path, s.idle!, cert)
  await sleep(1000) // let both sides settle
  const after = await server.stats()
  const rss_delta = rssBytes(server.pid) - rss0
  const server_cpu_s = cpuSeconds(server.pid) - cpu0
  idle.close()
  return {
    requests: idle.connections,
    bytes: 0,
    connections: idle.connections,
    seconds: idle.seconds,
    rps: 0,
    mbps: 0,
    cps: idle.connections / idle.seconds,
    p50_us: 0,
    p99_us: 0,
    handshake_us: 0,
    client_cpu_s: NaN,
    server_cpu_s,
    rss_delta,
    ...(before.heapUsed !== undefined && after.heapUsed !== undefined ? { heap_delta: after.heapUsed - before.heapUsed } : {}),
  }
}

async function runOnce(s: Scenario, e: Entry, cert: string, key: string): Promise<Run> {
  const subject = SUBJECTS[s.side === 'client' ? 'N' : (e.id as SubjectId)]
  const server = await startServer(subject, cert, key)
  try {
    if (s.idle) return await idleRun(s, server, subject, cert)
    const client: Client = s.side === 'server' || e.id === 'N' ? subject : { api: CLIENT_API[e.id]! }
    return await timedRun(s, server, client, cert)
  } finally {
    server.stop()
  }
}

function describe(s: Scenario, r: Run): string {
  if (s.unit === 'idle') return `${((r.rss_delta! / r.connections) / 1024).toFixed(1)} KiB RSS/conn, ${r.connections} connections opened in ${r.seconds.toFixed(1)} s`
  const main = { rps: `${r.rps.toFixed(0)} req/s`, mbps: `${r.mbps.toFixed(0)} Mbit/s`, cps: `${r.cps.toFixed(0)} handshakes/s`, latency: `p50 ${r.p50_us} µs, p99 ${r.p99_us} µs` }[s.unit]
  return `${main}, server CPU ${r.server_cpu_s.toFixed(2)} s, client CPU ${r.client_cpu_s.toFixed(2)} s`
}

/** Whether listen() takes `{ address, reusePort: true }` yet: true, or why not. */
function clusterSupport(cert: string, key: string): string | true {
  if (!values.cluster) return 'run with --cluster'
  const out = execFileSync(process.execPath, ['--import=tsx', 'bench/cluster-server.ts', 'probe', cert, key], { cwd: ROOT, encoding: 'utf8' }).trim()
  if (out === 'reusePort yes') return true
  console.warn(`--cluster probe: ${out}`)
  return 'listen() does not accept { address, reusePort: true } yet'
}

async function main(): Promise<void> {
  if (!values['skip-build']) {
    execFileSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' })
    execFileSync('cargo', ['build', '--release', '-p', 'tq-bench', '--target', HOST_TRIPLE], { cwd: ROOT, stdio: 'inherit' })
  }
  if (!existsSync(TQ_BENCH)) throw new Error(`${TQ_BENCH} is missing: run without --skip-build, or set CARGO_TARGET_DIR as when it was built`)
  const haveH2load = h2loadAvailable()
  if (!haveH2load) console.warn(H2LOAD_MISSING)
  const id = await writeSelfSignedCertificate(['localhost', '127.0.0.1'])
  const clusterOk = clusterSupport(id.certPath, id.keyPath)
  if (values.cluster && clusterOk !== true) console.warn(`--cluster: subjects C1 and C2 skipped: ${clusterOk}`)
  const results: Record<string, ScenarioResults> = {}
  for (const s of chosen) {
    const { entries, skipped } = plan(s, haveH2load, clusterOk)
    const res: ScenarioResults = { entries, skipped, runs: {} }
    results[s.name] = res
    for (const why of skipped) console.log(`${s.name} ${why}`)
    for (let i = 0; i < runs; i++) {
      for (const e of entries) {
        const r = await runOnce(s, e, id.certPath, id.keyPath)
        ;(res.runs[e.id] ??= []).push(r)
        console.log(`${s.name} run ${i + 1}/${runs} ${e.id}: ${describe(s, r)}`)
      }
    }
  }
  const sysctl = Object.fromEntries(['rmem_max', 'wmem_max', 'rmem_default', 'wmem_default'].map((k) => [`net.core.${k}`, readFileSync(`/proc/sys/net/core/${k}`, 'utf8').trim()]))
  const notes = [
    // Smoke runs check that the bench works; their numbers decide nothing.
    ...(runs < 3 || duration < 3 ? [`**Smoke run** (${runs} run(s) of ${duration} s): not a measurement. Measure with at least \`--runs 5 --duration 5\` on a quiet machine.`] : []),
    ...(haveH2load ? [] : [`H2 and H1 were not run: ${H2LOAD_MISSING}.`]),
    ...(values.cluster && clusterOk !== true ? [`Cluster rows were not run: ${clusterOk}.`] : []),
  ]
  const md = writeReport(
    ROOT,
    { machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Linux ${release()}, Node ${process.version}`, date: new Date().toISOString(), runs, duration, warmup, sysctl, notes },
    chosen,
    results,
  )
  console.log(`\n${md}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
