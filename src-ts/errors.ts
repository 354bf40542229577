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
  | 'ERR_REDIRECT'
  | 'ERR_LISTEN'
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

export function invalidArg(field: string, message: string): TokioQuicheError {
  return new TokioQuicheError('ERR_INVALID_ARG', `${field}: ${message}`)
}
