// The tokio-quiche README's "Sending an HTTP/3 request", ported.
//
//   npx tsx examples/client.ts [address] --ca cert.pem [--server-name localhost]
import { parseArgs } from 'node:util'
import { connect } from 'tokio-quiche'

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { ca: { type: 'string' }, 'server-name': { type: 'string' } },
  })
  const controller = await connect(positionals[0] ?? '127.0.0.1:4043', {
    serverName: values['server-name'] ?? 'localhost',
    ...(values.ca ? { ca: values.ca } : {}),
  })

  controller.requestSender().send({
    requestId: 0,
    headers: [
      [':method', 'GET'],
      [':scheme', 'https'],
      [':authority', 'localhost'],
      [':path', '/'],
    ],
    bodyWriter: false,
  })

  events: for await (const event of controller) {
    switch (event.type) {
      case 'headers':
        console.log('incoming headers', { streamId: event.streamId, headers: event.headers })
        for await (const frame of event.recv) {
          console.log(`inbound body: ${frame.data.toString('utf8')}`, { fin: frame.fin, len: frame.data.length })
          if (frame.fin) {
            console.log('received full body, exiting')
            break events
          }
        }
        break
      case 'newOutboundRequest':
        console.log('sending outbound request', { streamId: event.streamId, requestId: event.requestId })
        break
      default:
        console.log('received event:', event.type)
    }
  }
  await controller.close()
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
