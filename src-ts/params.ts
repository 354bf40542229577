import type { NativeConnectionLimits, NativeQuicSettings, NativeServerTls } from './native.js'
import { invalidArg, shown } from './errors.js'
import { type QuicSettings, checkAlpn, quicSettingsToNative } from './settings.js'

/** A certificate chain and private key, as PEM file paths (tokio-quiche's `TlsCertificatePaths`). */
export interface TlsCertificatePaths {
  /** Path to the PEM certificate chain (leaf first); with `kind: 'rawPublicKey'`, a DER SubjectPublicKeyInfo. */
  cert: string
  /** Path to the PEM private key. */
  privateKey: string
  /**
   * tokio-quiche's `CertificateKind`: `x509` (default) or `rawPublicKey`
   * (RFC 7250, needs a build with the `rpk` feature; no `sni` or `clientCa`).
   */
  kind?: 'x509' | 'rawPublicKey'
}

/** The server's TLS identity, plus SNI certificates and client authentication. */
export interface ServerTlsOptions extends TlsCertificatePaths {
  /**
   * More certificates by host name (`a.example` or `*.example` covering one
   * label), chosen per connection from the client's SNI; the default
   * `cert` serves everything else. Replace them all at run time with
   * `QuicListener.setSecureContext()`.
   */
  sni?: Record<string, TlsCertificatePaths>
  /**
   * Mutual TLS: CA certificates (PEM text or file path) client certificates
   * must chain to. See `ServerH3Controller.peerCertificate`.
   */
  clientCa?: string
  /** With `clientCa`: refuse clients without a certificate. Default true. */
  requireClientCert?: boolean
}

export interface ServerParamsInit {
  tls: ServerTlsOptions
  /**
   * ALPN protocols the server accepts, in preference order: the shorthand
   * for `settings.alpn` (default `['h3']`). A raw QUIC server names its own,
   * e.g. `['my-proto']`; a client offering none of them fails its handshake.
   */
  alpn?: string[]
  settings?: QuicSettings
  /** Caps on the connections the server holds; see {@link ConnectionLimits}. */
  limits?: ConnectionLimits
}

/**
 * Caps on the connections a server holds at once (tokio-quiche has none).
 * A connection over a cap is refused right after its handshake with
 * CONNECTION_REFUSED (0x2) and a reason, so the client learns at once; it is
 * counted after address validation (Retry), so a spoofed source address
 * cannot use up another's share. The caps cover every socket of one
 * `listen()` call; `Infinity` lifts one.
 */
export interface ConnectionLimits {
  /** At most this many connections. Default 10,000 (about 0.8 GB of idle connections). */
  maxConnections?: number
  /**
   * At most this many from one source: one IPv4 address, or one IPv6 /64
   * (the block a single host usually holds). Default 1,000: room for a large
   * NAT, far short of one peer taking the whole server.
   */
  maxConnectionsPerSource?: number
}

const LIMIT_KEYS = ['maxConnections', 'maxConnectionsPerSource'] as const

/** Validates `limits` into the binding's shape. */
export function connectionLimitsToNative(limits: ConnectionLimits | undefined, field = 'limits'): NativeConnectionLimits {
  if (limits === undefined) return {}
  if (limits === null || typeof limits !== 'object') throw invalidArg(field, 'expected { maxConnections?, maxConnectionsPerSource? }')
  const out: NativeConnectionLimits = {}
  for (const key of Object.keys(limits)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(key)) throw invalidArg(`${field}.${key}`, 'is not a known limit')
  }
  for (const key of LIMIT_KEYS) {
    const value = limits[key]
    if (value === undefined) continue
    if (typeof value !== 'number' || !(value === Infinity || (Number.isInteger(value) && value >= 1))) {
      throw invalidArg(`${field}.${key}`, `expected a positive integer or Infinity, got ${shown(value)}`)
    }
    out[key] = value
  }
  return out
}

function identity(paths: TlsCertificatePaths, field: string): { certPath: string; keyPath: string } {
  if (paths === null || typeof paths !== 'object') throw invalidArg(field, 'expected { cert, privateKey } file paths')
  for (const key of ['cert', 'privateKey'] as const) {
    if (typeof paths[key] !== 'string' || paths[key].length === 0) throw invalidArg(`${field}.${key}`, 'expected a PEM file path')
  }
  return { certPath: paths.cert, keyPath: paths.privateKey }
}

/** Validates server TLS options into the binding's shape. */
export function serverTlsToNative(tls: ServerTlsOptions, field = 'tls'): NativeServerTls {
  const out: NativeServerTls = identity(tls, field)
  if (tls.kind !== undefined) {
    if (tls.kind !== 'x509' && tls.kind !== 'rawPublicKey') throw invalidArg(`${field}.kind`, `expected 'x509' or 'rawPublicKey', got ${shown(tls.kind)}`)
    out.kind = tls.kind
  }
  if (tls.sni !== undefined) {
    if (tls.sni === null || typeof tls.sni !== 'object') throw invalidArg(`${field}.sni`, 'expected { [hostName]: { cert, privateKey } }')
    out.sni = Object.entries(tls.sni).map(([name, paths]) => {
      if (!/^(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)*$/i.test(name)) throw invalidArg(`${field}.sni`, `'${name}' is not a host name or *.wildcard`)
      return { name, ...identity(paths, `${field}.sni["${name}"]`) }
    })
  }
  if (tls.clientCa !== undefined) {
    if (typeof tls.clientCa !== 'string' || tls.clientCa.length === 0) throw invalidArg(`${field}.clientCa`, 'expected PEM text or a file path')
    out.clientCa = tls.clientCa
  }
  if (tls.requireClientCert !== undefined) {
    if (typeof tls.requireClientCert !== 'boolean') throw invalidArg(`${field}.requireClientCert`, 'expected a boolean')
    if (tls.clientCa === undefined) throw invalidArg(`${field}.requireClientCert`, 'needs clientCa')
    out.requireClientCert = tls.requireClientCert
  }
  return out
}

/** tokio-quiche's `ConnectionParams`: the QUIC settings and TLS identity of an endpoint. */
export class ConnectionParams {
  /** @internal */
  readonly settings: NativeQuicSettings
  /** @internal */
  readonly tls: NativeServerTls
  /** @internal */
  readonly limits: NativeConnectionLimits

  private constructor(tls: NativeServerTls, settings: NativeQuicSettings, limits: NativeConnectionLimits) {
    this.tls = tls
    this.settings = settings
    this.limits = limits
  }

  /** `ConnectionParams::new_server`: validated now; the files are read by `listen()`. */
  static newServer(init: ServerParamsInit): ConnectionParams {
    if (init === null || typeof init !== 'object') throw invalidArg('params', 'expected { tls, alpn?, settings?, limits? }')
    const { alpn } = init
    if (alpn !== undefined && init.settings?.alpn !== undefined) throw invalidArg('alpn', 'give alpn or settings.alpn, not both')
    const settings = alpn === undefined ? init.settings : { ...init.settings, alpn: checkAlpn(alpn, 'alpn') }
    return new ConnectionParams(serverTlsToNative(init.tls), quicSettingsToNative(settings), connectionLimitsToNative(init.limits))
  }
}
