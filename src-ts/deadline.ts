// requestTimeoutMs: the deadline for a request's body that serve() and
// createServer() share (Node's server.requestTimeout; tokio-quiche has none).
import { TokioQuicheError, invalidArg, shown } from './errors.js'

/** Node's `server.requestTimeout` default. */
const DEFAULT_REQUEST_TIMEOUT_MS = 300_000
/** The longest delay `setTimeout` takes. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1

/** `options.requestTimeoutMs`, checked; the default when undefined. */
export function requestTimeoutOption(value: unknown): number {
  const ms = value ?? DEFAULT_REQUEST_TIMEOUT_MS
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > MAX_TIMEOUT_MS) {
    throw invalidArg('options.requestTimeoutMs', `expected a whole number of ms from 0 (off) to ${MAX_TIMEOUT_MS}, got ${shown(ms)}`)
  }
  return ms
}

/**
 * Calls `onExpiry` with an `ERR_STREAM_CLOSED` error once `ms` pass, unless
 * the returned function is called first; `ms` 0: never. The timer does not
 * keep the process alive.
 */
export function bodyDeadline(streamId: number, ms: number, onExpiry: (err: TokioQuicheError) => void): () => void {
  if (ms === 0) return () => {}
  const timer = setTimeout(() => {
    onExpiry(new TokioQuicheError('ERR_STREAM_CLOSED', `stream ${streamId}: the request body did not end within ${ms} ms (requestTimeoutMs)`))
  }, ms)
  timer.unref()
  return () => clearTimeout(timer)
}
