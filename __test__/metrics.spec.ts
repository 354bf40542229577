// tokio-quiche's DefaultMetrics, read as Prometheus text and as objects.
// Serial: the counters are process-wide, and the tests compare deltas.
import test from 'ava'
import { metricsSnapshot, parsePrometheusText, prometheusMetrics } from 'tokio-quiche'
import { oneRequest } from './helpers.js'

/** The value of one sample line, e.g. `name{label="x"} 3`; 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

test.serial('prometheusMetrics() counts accepted Initials and close codes by side', async (t) => {
  const accepted = 'tokio_quiche_quic_accepted_initial_packet_count'
  const peerClosed = 'tokio_quiche_quic_peer_h3_conn_close_error_count{reason="H3_NO_ERROR"}'
  const before = prometheusMetrics()

  await oneRequest()

  const after = prometheusMetrics()
  t.regex(after, /^# TYPE tokio_quiche_quic_connections_in_memory gauge$/m)
  t.true(sample(after, accepted) - sample(before, accepted) >= 1, 'the server accepted the Initial')
  t.is(sample(after, peerClosed) - sample(before, peerClosed), 1, 'one peer close with H3_NO_ERROR')
})

test.serial('metricsSnapshot() gives the same figures as plain objects; the parser handles escapes and histograms', async (t) => {
  await oneRequest()
  const snapshot = metricsSnapshot()
  const accepted = snapshot.tokio_quiche_quic_accepted_initial_packet_count
  t.is(accepted?.type, 'counter')
  t.is(accepted?.samples[0]?.value, sample(prometheusMetrics(), 'tokio_quiche_quic_accepted_initial_packet_count'))
  const parsed = parsePrometheusText(
    [
      '# HELP h Handshake time.',
      '# TYPE h histogram',
      'h_bucket{stage="a b",le="0.1"} 2',
      'h_bucket{stage="a b",le="+Inf"} 3',
      'h_sum{stage="a b"} 0.25',
      'h_count{stage="a b"} 3',
      '# TYPE c counter',
      'c{reason="say \\"hi\\"\\\\n"} 7',
    ].join('\n'),
  )
  t.deepEqual(Object.keys(parsed), ['h', 'c'])
  t.like(parsed.h, { help: 'Handshake time.', type: 'histogram' })
  t.deepEqual(parsed.h!.samples.map((s) => [s.name, s.labels.le ?? '', s.value]), [
    ['h_bucket', '0.1', 2],
    ['h_bucket', '+Inf', 3],
    ['h_sum', '', 0.25],
    ['h_count', '', 3],
  ])
  t.deepEqual(parsed.c!.samples[0], { name: 'c', labels: { reason: 'say "hi"\\n' }, value: 7 })
})
