// The load clients and what they report. HTTP/3 subjects are driven by
// `tq-bench load` (native tokio-quiche client); HTTP/2 and HTTP/1.1 subjects
// by h2load (bench/h2load.ts), or in the churn scenarios, which h2load cannot
// do, by `tq-bench load --proto h2|h1`; the client-side scenarios swap in this
// package's client (bench/package-client.ts). Idle connections come from
// `tq-bench idle` (HTTP/3) and bench/idle-tcp.ts (HTTP/2, HTTP/1.1).
import { execFileSync } from 'node:child_process'
import { isAbsolute, join } from 'node:path'
import { startProcess } from './proc'

export interface LoadResult {
  requests: number
  bytes: number
  connections: number
  seconds: number
  rps: number
  mbps: number
  /** Connections (so handshakes) per second. */
  cps: number
  p50_us: number
  p99_us: number
  handshake_us: number
  client_cpu_s: number
}

/** What a load client is asked to do (see `tq-bench load`). */
export interface LoadSpec {
  path: string
  streams: number
  conns: number
  seconds: number
  /** Requests per connection before a new one is opened (churn, handshakes). */
  perConn?: number
  /** POST this many bytes per request. */
  upload?: number
}

export const ROOT = join(__dirname, '..')
const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (\S+)$/m)![1]!
const targetDir = process.env.CARGO_TARGET_DIR ?? 'target'
export const TQ_BENCH = join(isAbsolute(targetDir) ? targetDir : join(ROOT, targetDir), host, 'release', 'tq-bench')
export const HOST_TRIPLE = host

/**
 * tokio-quiche's client builds a fresh BoringSSL context per connection,
 * and that loads the whole system CA bundle (measured: ~5 ms of client CPU
 * per handshake, capping the churn scenarios at ~280 connections/s on the
 * client side). The bench clients do not verify, so they are pointed at a
 * one-certificate bundle instead.
 */
export function quicClientEnv(cert: string): NodeJS.ProcessEnv {
  return { ...process.env, SSL_CERT_FILE: cert, SSL_CERT_DIR: '/nonexistent' }
}

export interface TqBenchOptions {
  /** HTTP/3 by default; h2 and h1 run over TLS and TCP (the churn scenarios, which h2load cannot drive). */
  proto?: 'h3' | 'h2' | 'h1'
}

export function tqBenchLoad(address: string, spec: LoadSpec, cert: string, opts: TqBenchOptions = {}): LoadResult {
  const args = ['load', address, spec.path, '--streams', String(spec.streams), '--conns', String(spec.conns), '--seconds', String(spec.seconds)]
  if (opts.proto) args.push('--proto', opts.proto)
  if (spec.perConn !== undefined) args.push('--per-conn', String(spec.perConn))
  if (spec.upload !== undefined) args.push('--upload', String(spec.upload))
  return lastJsonLine(execFileSync(TQ_BENCH, args, { encoding: 'utf8', env: quicClientEnv(cert) }))
}

/** This package's client as the load: `request()` on one connection, or `fetch()` through an Agent (body streamed, or read whole). */
export type PackageClientApi = 'request' | 'fetch' | 'fetch-whole'

export function packageClientLoad(address: string, spec: LoadSpec, cert: string, api: PackageClientApi): LoadResult {
  const script = join(__dirname, 'package-client.ts')
  const args = ['--import=tsx', script, address, spec.path, '--streams', String(spec.streams), '--seconds', String(spec.seconds), '--api', api]
  return lastJsonLine(execFileSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', env: quicClientEnv(cert) }))
}

function lastJsonLine<T = LoadResult>(out: string): T {
  return JSON.parse(out.trim().split('\n').pop()!) as T
}

export interface IdleConnections {
  connections: number
  /** How long opening them took. */
  seconds: number
  close(): void
}

/** Opens `count` connections, one GET each, and holds them until close(). */
export async function openIdle(protocol: 'h3' | 'h2' | 'h1', address: string, path: string, count: number, cert: string): Promise<IdleConnections> {
  const [cmd, args] =
    protocol === 'h3'
      ? [TQ_BENCH, ['idle', address, path, String(count)]]
      : [process.execPath, ['--import=tsx', join(__dirname, 'idle-tcp.ts'), protocol, address, path, String(count)]]
  const { child, line } = await startProcess(cmd, args, (l) => l.startsWith('{'), quicClientEnv(cert))
  const { connections, seconds } = JSON.parse(line) as { connections: number; seconds: number }
  return { connections, seconds, close: () => child.kill('SIGKILL') }
}
