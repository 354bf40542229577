// tokio-quiche's DefaultMetrics, read as Prometheus text.
import test from 'ava'
import { connect, prometheusMetrics } from 'tokio-quiche'
import { startServer } from './helpers.js'

/** The value of one sample line, e.g. `name{label="x"} 3`; 0 when absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line ? Number(line.slice(series.length + 1)) : 0
}

test('prometheusMetrics() counts accepted Initials and close codes by side', async (t) => {
  const accepted = 'tokio_quiche_quic_accepted_initial_packet_count'
  const peerClosed = 'tokio_quiche_quic_peer_h3_conn_close_error_count{reason="H3_NO_ERROR"}'
  const before = prometheusMetrics()

  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '204']])
    await req.send.end()
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  await (await client.request()).body.bytes()
  await client.close() // H3_NO_ERROR: the server counts a peer close
  await server.close()

  const after = prometheusMetrics()
  t.regex(after, /^# TYPE tokio_quiche_quic_connections_in_memory gauge$/m)
  t.true(sample(after, accepted) - sample(before, accepted) >= 1, 'the server accepted the Initial')
  t.is(sample(after, peerClosed) - sample(before, peerClosed), 1, 'one peer close with H3_NO_ERROR')
})
