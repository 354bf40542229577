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

/** One sample line: `name{labels} value`. */
export interface MetricSample {
  /** The series name; for a histogram, `<family>_bucket`, `_sum` or `_count`. */
  name: string
  labels: Record<string, string>
  value: number
}

/** A metric family: its `# HELP`, `# TYPE` and samples. */
export interface MetricFamily {
  help: string
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'
  samples: MetricSample[]
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g
const UNESCAPE: Record<string, string> = { n: '\n', '\\': '\\', '"': '"' }

/** The families of Prometheus text, by name. */
export function parsePrometheusText(text: string): Record<string, MetricFamily> {
  const families: Record<string, MetricFamily> = {}
  const family = (name: string) => (families[name] ??= { help: '', type: 'untyped', samples: [] })
  for (const line of text.split('\n')) {
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line)
    if (meta) {
      const [, kind, name, rest] = meta
      if (kind === 'HELP') family(name!).help = rest!
      else family(name!).type = rest as MetricFamily['type']
      continue
    }
    const m = SAMPLE.exec(line)
    if (!m) continue
    const [, name, labelText = '', value] = m
    const labels: Record<string, string> = {}
    for (const [, key, raw] of labelText.matchAll(LABEL)) labels[key!] = raw!.replace(/\\(.)/g, (_, c: string) => UNESCAPE[c] ?? c)
    // Histogram and summary series belong to the family their TYPE line named.
    const base = name!.replace(/_(bucket|sum|count)$/, '')
    const owner = families[base] && base !== name ? base : name!
    family(owner).samples.push({ name: name!, labels, value: Number(value) })
  }
  return families
}

/**
 * The same metrics as {@link prometheusMetrics}, as plain objects: counters,
 * gauges and histograms by family name (e.g.
 * `metricsSnapshot().tokio_quiche_quic_accepted_initial_packet_count.samples[0].value`).
 */
export function metricsSnapshot(): Record<string, MetricFamily> {
  return parsePrometheusText(prometheusMetrics())
}

/** JS↔Rust crossings on the per-request paths since the process started; see {@link bridgeCounters}. */
export interface BridgeCounters {
  /** Calls from JS into per-request binding methods: frames sent, body reads, requests. */
  toRust: number
  /** Wake-ups of JS by the runtime: event batches, reads and sends that had to wait settling. */
  toJs: number
}

/**
 * Counts of JS↔Rust crossings, for diagnosing the bridge's cost per request
 * (benchmarks divide the change over a run by its requests). Packets never
 * cross; these grow per event batch, frame and read.
 */
export function bridgeCounters(): BridgeCounters {
  return callNative(() => native.bridgeCounters())
}
