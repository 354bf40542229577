import native from './native.js'
import { callNative } from './errors.js'

/**
 * tokio-quiche's `DefaultMetrics` for this process (accepted and rejected
 * Initials, handshake times, write errors, close codes by peer and local,
 * bandwidth and loss estimates), plus foundations' process metrics, in the
 * Prometheus text exposition format. Metric names start with `tokio_quiche_`.
 * Serve it from a `/metrics` endpoint, or append it to `prom-client`'s output.
 */
export function prometheusMetrics(): string {
  return callNative(() => native.prometheusMetrics())
}
