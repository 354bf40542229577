// The scenarios (performance-method.md §6 IDs in brackets) and the figure
// each is judged by.
import type { LoadSpec } from './clients'

const MiB = 1024 * 1024

export type Unit = 'rps' | 'mbps' | 'cps' | 'latency' | 'idle'

export const UNITS: Record<Unit, { label: string; higherIsBetter: boolean; cpuPer: string }> = {
  rps: { label: 'req/s', higherIsBetter: true, cpuPer: 'µs/req' },
  mbps: { label: 'Mbit/s', higherIsBetter: true, cpuPer: 's/GB' },
  cps: { label: 'handshakes/s', higherIsBetter: true, cpuPer: 'µs/handshake' },
  latency: { label: 'µs p50', higherIsBetter: false, cpuPer: 'µs/req' },
  idle: { label: 'KiB/conn', higherIsBetter: false, cpuPer: 'KiB heap/conn' },
}

export interface Scenario {
  name: string
  what: string
  unit: Unit
  /** `server`: subjects are servers; `client`: subjects are clients, all against server N. */
  side: 'server' | 'client'
  /** The load; `seconds` comes from --duration. */
  load: Omit<LoadSpec, 'seconds'>
  /** Idle connections to hold instead of a timed load. */
  idle?: number
  /**
   * Which client drives H2 and H1: h2load, or `tq-bench load --proto h2|h1`
   * where connections come and go (h2load keeps each for the whole run).
   */
  tcpLoad?: 'h2load' | 'tq-bench'

  /** Whether the node:cluster subjects (--cluster) join this one. */
  cluster?: boolean
  /** Left out unless named with --scenario. */
  optIn?: boolean
}

export const SCENARIOS: Scenario[] = [
  { name: 'small-10', what: '[B4] 1 KiB GETs, 10 concurrent streams, 1 connection', unit: 'rps', side: 'server', load: { path: '/small', streams: 10, conns: 1 } },
  { name: 'small-50', what: '[B4] 1 KiB GETs, 50 concurrent streams, 1 connection', unit: 'rps', side: 'server', load: { path: '/small', streams: 50, conns: 1 } },
  {
    name: 'small-10x10',
    what: '[B4] 1 KiB GETs, 10 connections × 10 streams',
    unit: 'rps',
    side: 'server',
    load: { path: '/small', streams: 10, conns: 10 },
    cluster: true,
  },
  { name: 'bulk-1', what: '[B1] 100 MiB downloads, 1 stream', unit: 'mbps', side: 'server', load: { path: `/bytes/${100 * MiB}`, streams: 1, conns: 1 } },
  {
    name: 'bulk-16',
    what: '[B3] 16 concurrent 6.25 MiB downloads (100 MiB in flight)',
    unit: 'mbps',
    side: 'server',
    load: { path: `/bytes/${(100 * MiB) / 16}`, streams: 16, conns: 1 },
  },
  {
    name: 'bulk-1g',
    what: '[B1] 1 GiB downloads, 1 stream (a run lasts at least one download)',
    unit: 'mbps',
    side: 'server',
    load: { path: `/bytes/${1024 * MiB}`, streams: 1, conns: 1 },
    optIn: true,
  },
  {
    name: 'upload-1',
    what: '[B2] 100 MiB POSTs, 1 stream; the server reads, counts and discards; goodput from the bytes the server counted',
    unit: 'mbps',
    side: 'server',
    load: { path: '/upload', streams: 1, conns: 1, upload: 100 * MiB },
  },
  {
    name: 'latency',
    what: '[B6] unloaded latency: 1 KiB GETs one after another on 1 connection, 1 stream',
    unit: 'latency',
    side: 'server',
    load: { path: '/small', streams: 1, conns: 1 },
  },
  {
    name: 'churn-10',
    what: '[B5] zero-body churn: 4 parallel loops of connect, 10 concurrent 0-byte GETs, close',
    unit: 'rps',
    side: 'server',
    load: { path: '/bytes/0', streams: 10, conns: 4, perConn: 10 },
    tcpLoad: 'tq-bench',
  },
  {
    name: 'handshakes',
    what: '[B8] full 1-RTT handshakes: 4 parallel loops of connect, one 0-byte GET, close',
    unit: 'cps',
    side: 'server',
    load: { path: '/bytes/0', streams: 1, conns: 4, perConn: 1 },
    tcpLoad: 'tq-bench',
    cluster: true,
  },
  {
    name: 'idle-1k',
    what: '[B10] 1,000 idle connections (one 1 KiB GET each): server RSS growth per connection',
    unit: 'idle',
    side: 'server',
    load: { path: '/small', streams: 1, conns: 1 },
    idle: 1000,
  },
  {
    name: 'idle-10k',
    what: '[B10] 10,000 idle connections (one 1 KiB GET each): server RSS growth per connection',
    unit: 'idle',
    side: 'server',
    load: { path: '/small', streams: 1, conns: 1 },
    idle: 10000,
  },
  {
    name: 'client-small-50',
    what: 'client side: 1 KiB GETs, 50 concurrent streams, 1 connection, against server N',
    unit: 'rps',
    side: 'client',
    load: { path: '/small', streams: 50, conns: 1 },
  },
  {
    name: 'client-bulk-1',
    what: 'client side: 100 MiB downloads, 1 stream, against server N',
    unit: 'mbps',
    side: 'client',
    load: { path: `/bytes/${100 * MiB}`, streams: 1, conns: 1 },
  },
]
