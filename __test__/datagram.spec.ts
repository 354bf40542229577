// HTTP/3 DATAGRAM flows (RFC 9297) between our client and server: tokio-quiche's
// NewFlow, OutboundFrame::Datagram and OutboundFrame::FlowShutdown.
import test from 'ava'
import { type ClientH3Controller, type ClientH3Event, type DatagramFlow, TokioQuicheError, connect } from 'tokio-quiche'
import { header, startServer } from './helpers.js'

const CONNECT_UDP: [string, string][] = [
  [':method', 'CONNECT'],
  [':protocol', 'connect-udp'],
  [':scheme', 'https'],
  [':authority', 'localhost'],
  [':path', '/.well-known/masque/udp/192.0.2.1/443/'],
  ['capsule-protocol', '?1'],
]

/** The next event of `type` on the client, skipping others. */
async function nextEvent<T extends ClientH3Event['type']>(events: AsyncIterator<ClientH3Event>, type: T) {
  for (;;) {
    const { value, done } = await events.next()
    if (done) throw new Error(`events ended before ${type}`)
    if (value.type === type) return value as Extract<ClientH3Event, { type: T }>
  }
}

/** A server that answers CONNECT with 200 and echoes each datagram with an "echo:" prefix. */
async function echoServer() {
  const flows = new Map<number, DatagramFlow>()
  let flowEnded!: (echoed: number) => void
  const serverFlowEnded = new Promise<number>((resolve) => (flowEnded = resolve))
  const server = await startServer(
    async (req) => {
      assertExtendedConnect(req.headers)
      // NewFlow comes before the request's HEADERS, keyed by quarter stream id.
      const flow = flows.get(req.streamId / 4)!
      await req.send.sendHeaders([[':status', '200'], ['capsule-protocol', '?1']])
      let echoed = 0
      for await (const dgram of flow) {
        await flow.send(Buffer.concat([Buffer.from('echo:'), dgram]))
        echoed++
      }
      flowEnded(echoed)
    },
    {
      settings: { enableDgram: true },
      http3: { enableExtendedConnect: true },
      onEvent: (event) => {
        if (event.type === 'newFlow') flows.set(event.flowId, event.flow)
      },
    },
  )
  return { server, serverFlowEnded }
}

function assertExtendedConnect(headers: [string, string][]) {
  if (header(headers, ':protocol') !== 'connect-udp') throw new Error('expected an extended CONNECT')
}

async function openFlow(client: ClientH3Controller) {
  const events = client.events()[Symbol.asyncIterator]()
  client.requestSender().send({ requestId: 7, headers: CONNECT_UDP, bodyWriter: true })
  const newFlow = await nextEvent(events, 'newFlow')
  const response = await nextEvent(events, 'headers')
  return { events, newFlow, response }
}

test('datagrams round-trip on an extended CONNECT flow; FlowShutdown ends it on both sides', async (t) => {
  const { server, serverFlowEnded } = await echoServer()
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { enableDgram: true } })
  const { newFlow, response } = await openFlow(client)
  t.is(header(response.headers, ':status'), '200')
  t.is(newFlow.flowId, response.streamId / 4, 'RFC 9297: the flow id is the quarter stream id')
  const flow = newFlow.flow

  const sent = Array.from({ length: 20 }, (_, i) => `datagram ${i} ${'x'.repeat(i * 40)}`)
  const echoes = new Set<string>()
  // Datagrams may be lost even on loopback: resend what has not come back, a few rounds.
  for (let round = 0; round < 5 && echoes.size < sent.length; round++) {
    for (const text of sent) if (!echoes.has(`echo:${text}`)) await flow.send(text)
    const deadline = Date.now() + 500
    while (echoes.size < sent.length && Date.now() < deadline) {
      const dgram = await Promise.race([flow.recv(), new Promise<null>((r) => setTimeout(r, 100, null))])
      if (dgram) echoes.add(dgram.toString())
    }
  }
  t.deepEqual([...echoes].sort(), sent.map((s) => `echo:${s}`).sort())

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
  const { server } = await echoServer()
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { enableDgram: true } })
  const { newFlow } = await openFlow(client)
  await t.throwsAsync(newFlow.flow.send(new Uint8Array(70_000)), { code: 'ERR_INVALID_ARG', message: /^data: a datagram carries at most 65528 bytes/ })
  const pending = newFlow.flow.recv()
  newFlow.flow.close()
  t.is(await pending, null)
  await client.close()
  t.is(await newFlow.flow.recv(), null)
  await server.close()
})
