import type { NativeHttp3Settings, NativeQuicSettings } from './native.js'
import { invalidArg, shown } from './errors.js'

/** 2^62 - 1: the largest QUIC variable-length integer. */
const MAX_VARINT = 2 ** 62 - 1

type Rule =
  | { kind: 'uint'; max: number }
  | { kind: 'factor'; min: number; max: number }
  | { kind: 'bool' }
  | { kind: 'string'; oneOf?: readonly string[] }
  | { kind: 'strings' }

const uint = (max = Number.MAX_SAFE_INTEGER): Rule => ({ kind: 'uint', max: Math.min(max, Number.MAX_SAFE_INTEGER) })
const bool: Rule = { kind: 'bool' }
const str: Rule = { kind: 'string' }

function check(field: string, value: unknown, rule: Rule): void {
  switch (rule.kind) {
    case 'uint':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > rule.max) {
        throw invalidArg(field, `expected an integer from 0 to ${rule.max}, got ${shown(value)}`)
      }
      return
    case 'factor':
      if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || value > rule.max) {
        throw invalidArg(field, `expected a number from ${rule.min} to ${rule.max}, got ${shown(value)}`)
      }
      return
    case 'bool':
      if (typeof value !== 'boolean') throw invalidArg(field, `expected a boolean, got ${typeof value}`)
      return
    case 'string':
      if (typeof value !== 'string') throw invalidArg(field, `expected a string, got ${typeof value}`)
      if (rule.oneOf && !rule.oneOf.includes(value)) {
        throw invalidArg(field, `expected one of ${rule.oneOf.join(', ')}, got '${value}'`)
      }
      return
    case 'strings':
      checkAlpn(value, field)
  }
}

/** ALPN protocol names: a non-empty list of strings of 1 to 255 bytes (UTF-8), as TLS carries them. */
export function checkAlpn(value: unknown, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((v) => typeof v !== 'string' || v.length === 0 || Buffer.byteLength(v) > 255)) {
    throw invalidArg(field, 'expected a non-empty array of non-empty strings (at most 255 bytes each in UTF-8)')
  }
  return value as string[]
}

/** Checks `init` against `rules`, rejecting unknown keys (typos) by name. */
function validate<T extends object>(prefix: string, init: unknown, rules: Record<keyof T, Rule>): T {
  if (init === undefined || init === null) return {} as T
  if (typeof init !== 'object') throw invalidArg(prefix, `expected an object, got ${typeof init}`)
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(init)) {
    if (value === undefined) continue
    const rule = (rules as Record<string, Rule>)[key]
    if (!rule) throw invalidArg(`${prefix}.${key}`, 'is not a known option')
    check(`${prefix}.${key}`, value, rule)
    out[key] = value
  }
  return out as T
}

/**
 * tokio-quiche's `QuicSettings`. Every field is optional; unset fields keep
 * tokio-quiche's defaults except where noted.
 */
export interface QuicSettings {
  /** ALPN protocols, in preference order. Default `['h3']`. */
  alpn?: string[]
  /** Idle timeout in ms (the lower of both ends applies). Default 30000 (tokio-quiche: 56000). */
  maxIdleTimeoutMs?: number
  /** Handshake deadline in ms. Default 10000 (tokio-quiche: none). */
  handshakeTimeoutMs?: number
  /** Connection flow-control window, bytes. Default 10_000_000. */
  initialMaxData?: number
  /** Per-stream window for locally opened bidi streams, bytes. Default 1_000_000. */
  initialMaxStreamDataBidiLocal?: number
  /** Per-stream window for peer-opened bidi streams, bytes. Default 1_000_000. */
  initialMaxStreamDataBidiRemote?: number
  /** Per-stream window for unidirectional streams, bytes. Default 1_000_000. */
  initialMaxStreamDataUni?: number
  /** Concurrent bidi streams the peer may open. Default 100. */
  initialMaxStreamsBidi?: number
  /** Concurrent uni streams the peer may open. Default 100. */
  initialMaxStreamsUni?: number
  /** Cap on connection-window autotuning, bytes. Default 24 MiB. */
  maxConnectionWindow?: number
  /** Cap on stream-window autotuning, bytes. Default 16 MiB. */
  maxStreamWindow?: number
  /**
   * Server: skip address validation (no Retry round trip). Default `false`:
   * the server validates addresses, which stops spoofed-source amplification.
   */
  disableClientIpValidation?: boolean
  /** Server: accept 0-RTT. Default `false`. */
  enableEarlyData?: boolean
  /** QUIC DATAGRAM support. Default `true`. */
  enableDgram?: boolean
  /** Congestion control: `cubic` (default), `reno`, `bbr2`, `bbr2_gcongestion`. */
  ccAlgorithm?: string
  /** Server: connections waiting in the accept queue before Initials are dropped. Default 1024. */
  listenBacklog?: number
  /**
   * Append TLS secrets here (SSLKEYLOGFILE format) for Wireshark. Without it,
   * tokio-quiche uses the `SSLKEYLOGFILE` environment variable, like browsers
   * and curl do. Anyone who can read the file can decrypt the traffic.
   */
  keylogFile?: string
  /** Write one qlog file per connection into this directory. */
  qlogDir?: string
  /** qlog file compression: `none` (`.sqlog`, default), `gzip` (`.sqlog.gz`), `zstd` (`.sqlog.zst`). */
  qlogCompression?: 'none' | 'gzip' | 'zstd'
  /** DATAGRAM receive queue length, frames. Default 65536. */
  dgramRecvMaxQueueLen?: number
  /** DATAGRAM send queue length, frames. Default 65536. */
  dgramSendMaxQueueLen?: number
  /** Forbid the peer's active migration (transport parameter). Default `true`. */
  disableActiveMigration?: boolean
  /** active_connection_id_limit transport parameter (values below 2 are ignored). Default 2. */
  activeConnectionIdLimit?: number
  /** Largest UDP payload accepted, bytes. Default 1350. */
  maxRecvUdpPayloadSize?: number
  /** Largest UDP payload sent, bytes. Default 1350. */
  maxSendUdpPayloadSize?: number
  /** Initial congestion window, packets. Default 10. */
  initialCongestionWindowPackets?: number
  /** Relax the loss threshold after spurious losses. Default `false`. */
  enableRelaxedLossThreshold?: boolean
  /** Path MTU discovery. Default `false`. */
  discoverPathMtu?: boolean
  /** PMTUD probes before giving up (0 = quiche's default). Default 3. */
  pmtudMaxProbes?: number
  /** HyStart++ slow-start exit (cubic and reno). Default `true`. */
  enableHystart?: boolean
  /** Pacing (needs SO_TXTIME to leave the kernel paced). Default `false`. */
  enablePacing?: boolean
  /** Pacing rate cap, bytes per second. Default none. */
  maxPacingRate?: number
  /** Label Initial-packet metrics by client /24 and /32 (costly). Default `false`. */
  enableExpensivePacketCountMetrics?: boolean
  /** Send STREAMS_BLOCKED frames. Default `false`. */
  enableSendStreamsBlocked?: boolean
  /** GREASE transport parameters and frames. Default `true`. */
  grease?: boolean
  /** Anti-amplification factor before address validation. Default 3. */
  maxAmplificationFactor?: number
  /** Multiplier on the data quiche may buffer beyond the congestion window. Default 1. */
  sendCapacityFactor?: number
  /** ack_delay_exponent transport parameter. Default 3. */
  ackDelayExponent?: number
  /** max_ack_delay transport parameter, ms. Default 25. */
  maxAckDelay?: number
  /** PATH_CHALLENGE frames queued per path. Default 3. */
  maxPathChallengeRecvQueueLen?: number
  /** Never reuse a DCID on a new path. Default `false`. */
  disableDcidReuse?: boolean
  /** Keep up to this many bytes of unknown transport parameters. Default none. */
  trackUnknownTransportParameters?: number
  /** Take egress buffers from a per-thread pool (false: 64 KiB per connection). Default `true`. */
  poolSendBuffer?: boolean
  /**
   * Route quiche's own (per-packet, very verbose) logs into `setLogger()`'s
   * logger too; takes effect for the process once, at the first listen() or
   * connect() that sets it, at the logger's level then.
   */
  captureQuicheLogs?: boolean
}

const QUIC_RULES: Record<keyof QuicSettings, Rule> = {
  alpn: { kind: 'strings' },
  maxIdleTimeoutMs: uint(),
  handshakeTimeoutMs: uint(),
  initialMaxData: uint(MAX_VARINT),
  initialMaxStreamDataBidiLocal: uint(MAX_VARINT),
  initialMaxStreamDataBidiRemote: uint(MAX_VARINT),
  initialMaxStreamDataUni: uint(MAX_VARINT),
  initialMaxStreamsBidi: uint(2 ** 60),
  initialMaxStreamsUni: uint(2 ** 60),
  maxConnectionWindow: uint(MAX_VARINT),
  maxStreamWindow: uint(MAX_VARINT),
  disableClientIpValidation: bool,
  enableEarlyData: bool,
  enableDgram: bool,
  ccAlgorithm: { kind: 'string', oneOf: ['cubic', 'reno', 'bbr2', 'bbr2_gcongestion'] },
  listenBacklog: uint(2 ** 31),
  keylogFile: str,
  qlogDir: str,
  qlogCompression: { kind: 'string', oneOf: ['none', 'gzip', 'zstd'] },
  dgramRecvMaxQueueLen: uint(2 ** 32),
  dgramSendMaxQueueLen: uint(2 ** 32),
  disableActiveMigration: bool,
  activeConnectionIdLimit: uint(MAX_VARINT),
  maxRecvUdpPayloadSize: uint(65527),
  maxSendUdpPayloadSize: uint(65527),
  initialCongestionWindowPackets: uint(2 ** 20),
  enableRelaxedLossThreshold: bool,
  discoverPathMtu: bool,
  pmtudMaxProbes: uint(255),
  enableHystart: bool,
  enablePacing: bool,
  maxPacingRate: uint(),
  enableExpensivePacketCountMetrics: bool,
  enableSendStreamsBlocked: bool,
  grease: bool,
  maxAmplificationFactor: uint(1000),
  sendCapacityFactor: { kind: 'factor', min: 1, max: 1000 },
  ackDelayExponent: uint(20),
  maxAckDelay: uint(2 ** 14 - 1),
  maxPathChallengeRecvQueueLen: uint(2 ** 16),
  disableDcidReuse: bool,
  trackUnknownTransportParameters: uint(2 ** 20),
  poolSendBuffer: bool,
  captureQuicheLogs: bool,
}

/** Validates QUIC settings; the error names the field, e.g. `settings.maxIdleTimeoutMs`. */
export function quicSettingsToNative(init: QuicSettings | undefined, prefix = 'settings'): NativeQuicSettings {
  return validate<QuicSettings>(prefix, init, QUIC_RULES)
}

/** tokio-quiche's `Http3Settings`. */
export interface Http3SettingsInit {
  /** Server: close the connection (H3_NO_ERROR) once this many requests were handled. Default unlimited. */
  maxRequestsPerConnection?: number
  /** SETTINGS_MAX_FIELD_SECTION_SIZE, bytes; larger header blocks close the connection (H3_EXCESSIVE_LOAD). Default 65536 (tokio-quiche: unlimited). */
  maxHeaderListSize?: number
  /** SETTINGS_QPACK_MAX_TABLE_CAPACITY. */
  qpackMaxTableCapacity?: number
  /** SETTINGS_QPACK_BLOCKED_STREAMS. */
  qpackBlockedStreams?: number
  /**
   * Server: close (H3_NO_ERROR) a connection whose first request has not
   * arrived this many ms after the handshake, such as one dribbling a request's
   * headers (slowloris). Default 60000, like Node's `server.headersTimeout`
   * (tokio-quiche: none); `0` turns it off. It covers only the first request;
   * `headersTimeoutMs` covers every one.
   */
  postAcceptTimeoutMs?: number
  /**
   * Server: a request stream whose HEADERS have not all arrived this many ms
   * after it opened (a peer dribbling them, slowloris) gets STOP_SENDING and
   * RESET_STREAM with H3_REQUEST_REJECTED, so the client may retry it; the
   * app never sees it. The check runs every quarter of this, so a stream goes
   * between 1 and 1.5 times this after it opened. Default 60000, like Node's
   * `server.headersTimeout` (tokio-quiche: none); `0` turns it off.
   */
  headersTimeoutMs?: number
  /** SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220); servers need it for DATAGRAM flows. Default `false`. */
  enableExtendedConnect?: boolean
}

const HTTP3_RULES: Record<keyof Http3SettingsInit, Rule> = {
  maxRequestsPerConnection: uint(),
  maxHeaderListSize: uint(MAX_VARINT),
  qpackMaxTableCapacity: uint(MAX_VARINT),
  qpackBlockedStreams: uint(MAX_VARINT),
  postAcceptTimeoutMs: uint(),
  headersTimeoutMs: uint(),
  enableExtendedConnect: bool,
}

/** tokio-quiche's `Http3Settings`, validated when constructed. */
export class Http3Settings {
  readonly #native: NativeHttp3Settings
  constructor(init?: Http3SettingsInit) {
    this.#native = validate<Http3SettingsInit>('http3Settings', init, HTTP3_RULES)
  }
  /** @internal */
  toNative(): NativeHttp3Settings {
    return this.#native
  }
}

export function http3SettingsToNative(settings: Http3Settings | Http3SettingsInit | undefined): NativeHttp3Settings {
  return settings instanceof Http3Settings ? settings.toNative() : new Http3Settings(settings).toNative()
}
