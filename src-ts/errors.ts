import { inspect } from 'node:util'

/** Stable error codes: `crates/core/src/errors.rs` produces all but `ERR_STREAM_RESET`, which `InboundFrameStream` raises from a reset code. */
export type ErrorCode =
  | 'ERR_INVALID_ARG'
  | 'ERR_INVALID_ADDRESS'
  | 'ERR_TLS_CERT'
  | 'ERR_INVALID_HEADER'
  | 'ERR_STREAM_FINISHED'
  | 'ERR_STREAM_CLOSED'
  | 'ERR_STREAM_RESET'
  | 'ERR_CLOSED'
  | 'ERR_CONNECT'
  | 'ERR_TLS_CERT_REJECTED'
  | 'ERR_REDIRECT'
  | 'ERR_REQUEST_REFUSED'
  | 'ERR_LISTEN'
  /** createServer(): a header change after they left; Node's own code, which frameworks test for. */
  | 'ERR_HTTP_HEADERS_SENT'
  | 'ERR_INTERNAL'

/**
 * Every error this package throws or rejects with. `code` is stable and the
 * message names the option, header or stream at fault.
 */
export class TokioQuicheError extends Error {
  override name = 'TokioQuicheError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

/** The peer reset a stream (RESET_STREAM) with an HTTP/3 error code. */
export class StreamResetError extends TokioQuicheError {
  override name = 'StreamResetError'
  constructor(
    readonly streamId: number,
    /** The application error code from RESET_STREAM, e.g. 0x10c (H3_REQUEST_CANCELLED). */
    readonly errorCode: number,
  ) {
    super('ERR_STREAM_RESET', `stream ${streamId} was reset by the peer with code 0x${errorCode.toString(16)}`)
  }
}

/**
 * The peer sent STOP_SENDING on a stream this side writes (raw QUIC): it
 * wants no more, so writes fail. A `QuicStream`'s `signal.reason`, and the
 * writes after it, carry this error; `code` stays `ERR_STREAM_CLOSED`.
 */
export class StreamStoppedError extends TokioQuicheError {
  override name = 'StreamStoppedError'
  constructor(
    readonly streamId: number,
    /** The application error code from STOP_SENDING. */
    readonly errorCode: number,
  ) {
    super('ERR_STREAM_CLOSED', `stream ${streamId} was stopped by the peer (STOP_SENDING with code 0x${errorCode.toString(16)})`)
  }
}

/**
 * The server did not process the request (RFC 9114 §4.1.1, §5.2): it was on
 * a stream at or above the id of the server's GOAWAY, was reset with
 * H3_REQUEST_REJECTED (0x10b) after such a GOAWAY, or was never sent
 * because the connection had gone away or closed first. Safe to send again,
 * whatever its method, on another connection; `fetch()` does so once.
 */
export class RequestRefusedError extends TokioQuicheError {
  override name = 'RequestRefusedError'
  constructor(
    message: string,
    /** The request's stream, if it got one. */
    readonly streamId?: number,
  ) {
    super('ERR_REQUEST_REFUSED', message)
  }
}

/**
 * Why the client refused a server's certificate, in Node's `tls` names (the
 * `code` Node's own TLS errors carry), so code that handles those handles these.
 */
export type CertificateVerifyError =
  | 'CERT_HAS_EXPIRED'
  | 'CERT_NOT_YET_VALID'
  | 'DEPTH_ZERO_SELF_SIGNED_CERT'
  | 'SELF_SIGNED_CERT_IN_CHAIN'
  | 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'
  | 'ERR_TLS_CERT_ALTNAME_INVALID'
  | 'OTHER'

/** BoringSSL's X509_verify_cert_error_string() texts (and the binding's host check) → Node's names. */
const VERIFY_ERRORS: [RegExp, CertificateVerifyError][] = [
  [/^certificate has expired$/, 'CERT_HAS_EXPIRED'],
  [/^certificate is not yet valid$/, 'CERT_NOT_YET_VALID'],
  [/^self.signed certificate$/, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
  [/^self.signed certificate in certificate chain$/, 'SELF_SIGNED_CERT_IN_CHAIN'],
  [/^unable to get (local )?issuer certificate/, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'],
  [/^hostname mismatch$|^ip address mismatch$/i, 'ERR_TLS_CERT_ALTNAME_INVALID'],
]

/**
 * `connect()` refused the server's certificate (`code` `ERR_TLS_CERT_REJECTED`):
 * expired, untrusted (self-signed or from a CA not in `ca`), or not for the
 * name asked for. `verifyError` says which.
 */
export class CertificateRejectedError extends TokioQuicheError {
  override name = 'CertificateRejectedError'
  constructor(
    message: string,
    /** Why, in Node's `tls` error names. */
    readonly verifyError: CertificateVerifyError,
    options?: ErrorOptions,
  ) {
    super('ERR_TLS_CERT_REJECTED', message, options)
  }
}

const REJECTED = /^(.*the server's certificate was rejected) \((.*)\); pass its CA as `ca`$/s

/** The binding reports a refused certificate as ERR_CONNECT with BoringSSL's reason in its message; this types it. */
export function certificateRejection(err: TokioQuicheError): TokioQuicheError {
  const rejected = err.code === 'ERR_CONNECT' ? REJECTED.exec(err.message) : null
  if (!rejected) return err
  const reason = rejected[2]!
  const verifyError = VERIFY_ERRORS.find(([pattern]) => pattern.test(reason))?.[1] ?? 'OTHER'
  // Only an untrusted issuer is fixed by passing `ca`; an expired or misnamed certificate is not.
  const untrusted = verifyError === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY' || verifyError === 'DEPTH_ZERO_SELF_SIGNED_CERT' || verifyError === 'SELF_SIGNED_CERT_IN_CHAIN'
  const message = `${rejected[1]} (${reason})${untrusted ? '; pass its CA as `ca`' : ''}`
  return new CertificateRejectedError(message, verifyError, { cause: err })
}

const PREFIXED = /^\[(ERR_[A-Z_]+)\] ([\s\S]*)$/

/**
 * Turns an error from the native binding into a {@link TokioQuicheError}.
 * Sync calls set `code` directly; rejected promises carry it as a
 * `[ERR_X] ` message prefix (napi-rs limits promise errors to its own codes).
 */
export function fromNative(err: unknown): Error {
  if (!(err instanceof Error) || err instanceof TokioQuicheError) return err as Error
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string' && code.startsWith('ERR_')) {
    return new TokioQuicheError(code as ErrorCode, err.message, { cause: err })
  }
  const prefixed = PREFIXED.exec(err.message)
  if (prefixed) return new TokioQuicheError(prefixed[1] as ErrorCode, prefixed[2]!, { cause: err })
  return new TokioQuicheError('ERR_INTERNAL', err.message, { cause: err })
}

/** Runs a native call, rethrowing its error as a {@link TokioQuicheError}. */
export function callNative<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

/** Awaits a native promise, rejecting with a {@link TokioQuicheError}. */
export async function awaitNative<T>(promise: Promise<T>): Promise<T> {
  try {
    return await promise
  } catch (err) {
    throw fromNative(err)
  }
}

/** Throws unless `signal` is absent or an `AbortSignal` (a look-alike would fail later, untyped). */
export function checkSignal(field: string, signal: unknown): void {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArg(field, 'expected an AbortSignal')
}

/**
 * A bad value for an error message. `String()` would throw on some objects
 * (`Object.create(null)`, a `toString` that is not a function) and turn a
 * typed error into a TypeError; `inspect` never does.
 */
export function shown(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value)
  return inspect(value, { depth: 0, breakLength: Infinity, maxArrayLength: 5, maxStringLength: 40 })
}

export function invalidArg(field: string, message: string): TokioQuicheError {
  return new TokioQuicheError('ERR_INVALID_ARG', `${field}: ${message}`)
}
