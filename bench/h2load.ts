// The load client for subjects H2 and H1: nghttp2's h2load (native, one
// thread), driven for the same time with the same concurrency as tq-bench
// drives the QUIC subjects, its output parsed into a LoadResult.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LoadResult } from './clients'
import { percentile } from './stats'

export const H2LOAD_MISSING =
  'h2load not found, so subjects H2 and H1 are skipped. Install it with: apt-get install -y nghttp2-client (Debian/Ubuntu)'

export function h2loadAvailable(): boolean {
  return spawnSync('h2load', ['--version'], { stdio: 'ignore' }).status === 0
}

export interface H2loadOptions {
  h1: boolean
  conns: number
  /** Requests in flight per connection; HTTP/1.1 gets `conns × streams` connections with one each instead (no pipelining). */
  streams: number
  seconds: number
  /** A file POSTed as each request's body. */
  uploadFile?: string
}

/** h2load's durations: "2.00s", "223us", "10.10ms". */
function micros(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text)
  if (!m) throw new Error(`h2load: unexpected duration '${text}'`)
  return Number(m[1]) * { us: 1, ms: 1e3, s: 1e6 }[m[2] as 'us' | 'ms' | 's']
}

export function h2load(url: string, o: H2loadOptions): LoadResult {
  const dir = mkdtempSync(join(tmpdir(), 'h2load-'))
  const log = join(dir, 'requests.log')
  const [conns, streams] = o.h1 ? [o.conns * o.streams, 1] : [o.conns, o.streams]
  const args = ['-t', '1', '-c', String(conns), '-m', String(streams), '-D', String(Math.max(1, Math.round(o.seconds))), `--log-file=${log}`]
  if (o.h1) args.push('--h1')
  if (o.uploadFile) args.push('-d', o.uploadFile)
  try {
    // bash's `times` prints the CPU time of the children it waited for: h2load's own.
    const out = execFileSync('bash', ['-c', 'h2load "$@" && times', 'h2load', ...args, url], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 })
    const field = (re: RegExp) => {
      const m = re.exec(out)
      if (!m) throw new Error(`h2load: no match for ${re} in:\n${out}`)
      return m
    }
    const seconds = micros(field(/^finished in (\S+),/m)[1]!) / 1e6
    const requests = Number(field(/^requests: .* (\d+) succeeded/m)[1])
    // Response body bytes, partial responses included, as tq-bench counts them.
    const bytes = Number(field(/^traffic: .*\((\d+)\) data$/m)[1])
    const connectMean = micros(field(/^time for connect:\s+\S+\s+\S+\s+(\S+)/m)[1]!)
    const [user, sys] = [...out.trim().split('\n').pop()!.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]))
    const latencies = readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => line)
      .map((line) => Number(line.split('\t')[2]))
    return {
      requests,
      bytes,
      connections: conns,
      seconds,
      rps: requests / seconds,
      mbps: (bytes * 8) / seconds / 1e6,
      cps: conns / seconds,
      p50_us: percentile(latencies, 0.5),
      p99_us: percentile(latencies, 0.99),
      // h2load gives only the mean connect time (TCP + TLS handshake).
      handshake_us: Math.round(connectMean),
      client_cpu_s: user! + sys!,
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A file of `size` bytes for h2load to POST, made once per process and removed at exit. */
export function uploadFile(size: number): string {
  const path = join(tmpdir(), `tq-bench-upload-${process.pid}-${size}`)
  if (!existsSync(path)) {
    writeFileSync(path, Buffer.alloc(size, 0x57))
    process.once('exit', () => rmSync(path, { force: true }))
  }
  return path
}
