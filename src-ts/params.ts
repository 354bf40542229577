import type { NativeQuicSettings } from './native.js'
import { invalidArg } from './errors.js'
import { type QuicSettings, quicSettingsToNative } from './settings.js'

/** A server's certificate chain and private key, as PEM file paths. */
export interface TlsCertificatePaths {
  /** Path to the PEM certificate chain (leaf first). */
  cert: string
  /** Path to the PEM private key. */
  privateKey: string
}

export interface ServerParamsInit {
  tls: TlsCertificatePaths
  settings?: QuicSettings
}

/** tokio-quiche's `ConnectionParams`: the QUIC settings and TLS identity of an endpoint. */
export class ConnectionParams {
  /** @internal */
  readonly settings: NativeQuicSettings
  /** @internal */
  readonly tls: TlsCertificatePaths

  private constructor(tls: TlsCertificatePaths, settings: NativeQuicSettings) {
    this.tls = tls
    this.settings = settings
  }

  /** `ConnectionParams::new_server`: validated now; the files are read by `listen()`. */
  static newServer(init: ServerParamsInit): ConnectionParams {
    if (init === null || typeof init !== 'object') throw invalidArg('params', 'expected { tls, settings? }')
    const tls = init.tls
    if (tls === null || typeof tls !== 'object') throw invalidArg('tls', 'expected { cert, privateKey } file paths')
    for (const field of ['cert', 'privateKey'] as const) {
      if (typeof tls[field] !== 'string' || tls[field].length === 0) {
        throw invalidArg(`tls.${field}`, 'expected a PEM file path')
      }
    }
    return new ConnectionParams({ cert: tls.cert, privateKey: tls.privateKey }, quicSettingsToNative(init.settings))
  }
}
