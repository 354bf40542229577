// HTTP/3 DATAGRAM flows (RFC 9297) between our client and server: tokio-quiche's
// NewFlow, OutboundFrame::Datagram and OutboundFrame::FlowShutdown.
import test from 'ava'
import { TokioQuicheError, connect } from 'tokio-quiche'
import { datagramEchoServer, echoRoundTrip, header, openConnectUdp } from './helpers.js'

test('datagrams round-trip on an extended CONNECT flow; FlowShutdown ends it on both sides', async (t) => {
  const { server, serverFlowEnded } = await datagramEchoServer()
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { enableDgram: true } })
  const { newFlow, response } = await openConnectUdp(client)
  t.is(header(response.headers, ':status'), '200')
  t.is(newFlow.flowId, response.streamId / 4, 'RFC 9297: the flow id is the quarter stream id')
  const flow = newFlow.flow

  const sent = Array.from({ length: 20 }, (_, i) => `datagram ${i} ${'x'.repeat(i * 40)}`)
  const echoes = await echoRoundTrip(flow, sent)
  t.deepEqual(echoes, sent.map((s) => `echo:${s}`).sort())

  await flow.shutdown()
  const echoed = await serverFlowEnded
  t.true(echoed >= sent.length, 'the server saw every datagram before the flow ended')
  await t.throwsAsync(flow.send('late'), { instanceOf: TokioQuicheError, code: 'ERR_CLOSED', message: /flow \d+: the flow was shut down/ })
  // FlowShutdown closed the CONNECT stream both ways with H3_NO_ERROR (0x100).
  await t.throwsAsync(response.recv.recv(), { code: 'ERR_STREAM_CLOSED', message: /reading was stopped locally with STOP_SENDING 0x100/ })
  await client.close()
  await server.close()
})

test('an oversized datagram is refused with ERR_INVALID_ARG; closing a flow ends recv()', async (t) => {
  const { server } = await datagramEchoServer()
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { enableDgram: true } })
  const { newFlow } = await openConnectUdp(client)
  await t.throwsAsync(newFlow.flow.send(new Uint8Array(70_000)), { code: 'ERR_INVALID_ARG', message: /^data: a datagram carries at most 65528 bytes/ })
  const pending = newFlow.flow.recv()
  newFlow.flow.close()
  t.is(await pending, null)
  await client.close()
  t.is(await newFlow.flow.recv(), null)
  await server.close()
})
