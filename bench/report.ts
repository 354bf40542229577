// bench/results/<time>.json and docs/benchmarks.md from a session's runs.
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { LoadResult } from './clients'
import { type Scenario, UNITS } from './scenarios'
import { median } from './stats'
import { DATAGRAMS_PER_MIB_WITHOUT, type UdpCounters } from './udp'

export interface Run extends LoadResult {
  server_cpu_s: number
  /** Idle scenarios: growth of the server's RSS and live JS heap over the held connections. */
  rss_delta?: number
  heap_delta?: number
  /** HTTP/3 subjects: the kernel's UDP counters over the run. */
  udp?: UdpCounters
  /** Subjects P and S: JS↔Rust crossings over the run (bridgeCounters()). */
  crossings?: { toRust: number; toJs: number }
}

export interface Entry {
  id: string
  label: string
  /** Which load client drove it. */
  client: string
}

export interface ScenarioResults {
  entries: Entry[]
  runs: Record<string, Run[]>
  /** Subjects left out, and why. */
  skipped: string[]
}

export interface Session {
  machine: string
  date: string
  runs: number
  duration: number
  /** Seconds of unmeasured load before each server-side run. */
  warmup: number
  sysctl: Record<string, string>
  notes: string[]
}

const MiB = 1024 * 1024

function value(s: Scenario, r: Run): number {
  switch (s.unit) {
    case 'rps':
      return r.rps
    case 'mbps':
      return r.mbps
    case 'cps':
      return r.cps
    case 'latency':
      return r.p50_us
    case 'idle':
      return r.rss_delta! / r.connections / 1024
  }
}

/** The subject's own CPU per unit of work: the server's, or the client's on the client side. */
function cpuPerUnit(s: Scenario, r: Run): number {
  const cpu = s.side === 'server' ? r.server_cpu_s : r.client_cpu_s
  switch (s.unit) {
    case 'mbps':
      return cpu / (r.bytes / 1e9)
    case 'cps':
      return (cpu / r.connections) * 1e6
    case 'idle':
      return r.heap_delta === undefined ? NaN : r.heap_delta / r.connections / 1024
    default:
      return (cpu / r.requests) * 1e6
  }
}

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '—')

interface Summary {
  median: number
  spread: string
  cpu: number
  p50: number
  p99: number
  /** The load client's share of a core (server side) or the other side's (client side). */
  otherPct: number
  subjectPct: number
  udp?: string
  /** JS↔Rust crossings per request, into Rust / into JS. */
  crossings?: string
}

function summarize(s: Scenario, runs: Run[]): Summary {
  const main = runs.map((r) => value(s, r))
  const digits = s.unit === 'idle' ? 1 : 0
  // Only bulk scenarios move enough bytes for datagrams per MiB to say anything.
  const udpRuns = s.unit === 'mbps' ? runs.filter((r) => r.udp && r.bytes > MiB) : []
  const perMiB = (pick: (u: UdpCounters) => number) => median(udpRuns.map((r) => pick(r.udp!) / (r.bytes / MiB)))
  return {
    median: median(main),
    spread: `${fmt(Math.min(...main), digits)}–${fmt(Math.max(...main), digits)}`,
    cpu: median(runs.map((r) => cpuPerUnit(s, r))),
    p50: median(runs.map((r) => r.p50_us)),
    p99: median(runs.map((r) => r.p99_us)),
    otherPct: median(runs.map((r) => (s.side === 'server' ? r.client_cpu_s : r.server_cpu_s) / r.seconds)) * 100,
    subjectPct: median(runs.map((r) => (s.side === 'server' ? r.server_cpu_s : r.client_cpu_s) / r.seconds)) * 100,
    ...(runs.every((r) => r.crossings) && s.unit !== 'idle'
      ? {
          crossings: `${fmt(median(runs.map((r) => r.crossings!.toRust / r.requests)), 2)} / ${fmt(median(runs.map((r) => r.crossings!.toJs / r.requests)), 2)}`,
        }
      : {}),
    ...(udpRuns.length
      ? { udp: `${fmt(perMiB((u) => u.out))} / ${fmt(perMiB((u) => u.in))} (${fmt(median(udpRuns.map((r) => r.udp!.rcvbufErrors)))} drops)` }
      : {}),
  }
}

/** Ratios printed under each scenario: numerator, denominator. */
const RATIOS: [string, string][] = [
  ['P', 'N'],
  ['F', 'P'],
  ['FW', 'P'],
  ['S', 'N'],
  ['R', 'P'],
  ['R', 'H2'],
  ['P', 'H2'],
  ['P', 'H1'],
  ['C2', 'C1'],
]

function rows(s: Scenario, res: ScenarioResults): string[] {
  const unit = UNITS[s.unit]
  const out: string[] = []
  const sums = new Map<string, Summary>()
  for (const e of res.entries) {
    const runs = res.runs[e.id] ?? []
    if (runs.length === 0) continue
    const m = summarize(s, runs)
    sums.set(e.id, m)
    const latency = s.unit === 'idle' ? '' : `${fmt(m.p50)} / ${fmt(m.p99)} µs`
    const serverCpu = s.side === 'server' ? `${fmt(m.cpu, s.unit === 'mbps' ? 2 : 1)} ${unit.cpuPer}` : `${fmt(m.otherPct)} %`
    const clientCpu =
      s.side === 'server' ? (s.unit === 'idle' ? '' : `${fmt(m.otherPct)} %`) : `${fmt(m.subjectPct)} % · ${fmt(m.cpu, s.unit === 'mbps' ? 2 : 1)} ${unit.cpuPer}`
    out.push(
      `| ${s.name} | ${e.label} | ${fmt(m.median, s.unit === 'idle' ? 1 : 0)} ${unit.label} | ${m.spread} | ${serverCpu} | ${latency} | ${clientCpu} | ${e.client} | ${m.udp ?? ''} | ${m.crossings ?? ''} |`,
    )
  }
  for (const [a, b] of RATIOS) {
    const x = sums.get(a)
    const y = sums.get(b)
    if (!x || !y) continue
    const cpu = Number.isFinite(x.cpu / y.cpu) ? `${(x.cpu / y.cpu).toFixed(2)}× ${s.unit === 'idle' ? 'heap' : 'CPU'}` : ''
    out.push(`| ${s.name} | **${a}/${b}** | **${(x.median / y.median).toFixed(2)}** | | ${cpu} | | | | | |`)
  }
  for (const why of res.skipped) out.push(`| ${s.name} | ${why} | | | | | | | | |`)
  return out
}

export function writeReport(root: string, session: Session, scenarios: Scenario[], results: Record<string, ScenarioResults>): string {
  const stamp = session.date.replace(/[:.]/g, '-')
  const dir = join(root, 'bench', 'results')
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, `${stamp}.json`), JSON.stringify({ ...session, scenarios, results }, null, 2))
  const table = scenarios.flatMap((s) => (results[s.name] ? rows(s, results[s.name]!) : []))
  const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.ts) on ${session.date.slice(0, 10)}: ${session.machine}.
${session.runs} runs of ${session.duration} s per scenario and subject, subjects alternating run by run, a fresh server
process per run, each server-side run after ${session.warmup} s of the same load unmeasured (start-up and JIT
warm-up). Release builds. Medians over the runs, spread = min–max.

Subjects: N = a native Rust tokio-quiche server (\`tq-bench server\`); P = this package through the
controller API (bench/server.ts, connections started with \`listener.startH3()\`); S = this package through \`serve()\`; R = this package through \`createServer()\`
with the same \`(req, res)\` handler as H2 and H1; H2 = Node's \`http2.createSecureServer\` (its compatibility API)
and H1 = Node's \`https.createServer\` (bench/node-servers.ts, TLS 1.3, same certificate); C1/C2 = P in 1 or
2 \`node:cluster\` workers on one SO_REUSEPORT port (\`--cluster\`). All serve the same routes (bench/routes.ts).
N and \`tq-bench load\` use the system allocator, as a tokio-quiche program does by default; this
package's addon (P, S, C1/C2, and the client-side P) allocates blocks up to 2 KiB with mimalloc and larger ones with the
system allocator (crates/core/src/alloc.rs).

Load clients (column "load client"), all native except where noted: HTTP/3 subjects are driven by
\`tq-bench load\` (tokio-quiche's client: the given connections, each with the given requests always in
flight); H2 and H1 by h2load (nghttp2, one thread; for H1, one connection per concurrent request, since
HTTP/1.1 has no multiplexing), except in the churn and handshake rows, where connections come and go and
h2load cannot: there \`tq-bench load --proto h2|h1\` (BoringSSL over TCP, the h2 crate; the same loop,
and the same one-connection-per-request rule for H1). Idle connections come from \`tq-bench idle\` and, for H2/H1, from
bench/idle-tcp.ts (Node; memory is measured on the server, so this client's cost does not count).
Client-side rows swap roles: the subjects are clients (N = \`tq-bench load\`, P = this package's
\`connect()\` + \`request()\`, F = this package's \`fetch()\` through one \`Agent\`, so one connection,
reading \`response.body\` with \`for await\`, FW = the same reading \`arrayBuffer()\`; all three bench/package-client.ts), all against server N.

Columns: "server CPU" is the server's user+system CPU per unit of work (for idle rows: live JS heap growth
per connection, Node subjects only; for client-side rows: server N's share of one core). "client CPU" is
the load client's share of one core — where it is near 100 %, the client rather than the server bounds the
result, so ratios there understate the gap — and for client-side rows also the subject client's CPU per unit.
Client and server share the machine's cores. "napi crossings" (subjects P, S and R) counts, per request, calls
from JS into the binding's per-request methods and the runtime's wake-ups of JS (\`bridgeCounters()\`). Ratios are medians divided; for latency and idle memory lower
is better, so there a ratio below 1 favours the numerator.

GSO/GRO: tokio-quiche's \`listen()\` applies GSO, GRO and the other socket capabilities the kernel offers
(loopback on Linux offers GSO and GRO) for the QUIC servers. Its \`connect()\` applies none; this package's
\`connect()\` and \`tq-bench load\` apply them to their sockets (without GRO one client receiving bulk data
bounds the result), so client-side rows compare like for like. The last
column measures it: UDP datagrams sent / received per MiB of body moved, from the kernel's counters
(/proc/net/snmp, machine-wide, so only meaningful on a quiet machine), and receive-buffer drops. 1350-byte
packets without GSO/GRO need ≥ ${DATAGRAMS_PER_MIB_WITHOUT} datagrams per MiB in the data direction; far fewer means
the sender's GSO (or the receiver's GRO) batched them.
Socket buffers: ${Object.entries(session.sysctl)
    .map(([k, v]) => `${k} = ${v}`)
    .join(', ')}.
${session.notes.map((n) => `\n${n}`).join('')}

| scenario | subject | median | spread (min–max) | server CPU | latency p50 / p99 | client CPU | load client | UDP datagrams per MiB out / in (drops) | napi crossings per request (→Rust / →JS) |
|---|---|---|---|---|---|---|---|---|---|
${table.join('\n')}

Scenarios (performance-method.md IDs in brackets): ${scenarios.map((s) => `\`${s.name}\`: ${s.what}`).join('; ')}.
Raw results: \`bench/results/${stamp}.json\`.
`
  writeFileSync(join(root, 'docs', 'benchmarks.md'), md)
  return md
}
