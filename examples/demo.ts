// The main job: an HTTP/3 server and client on loopback, with a freshly
// generated certificate that the client verifies. `npm run demo`.
import {
  ConnectionParams,
  OutboundFrame,
  ServerH3Driver,
  connect,
  listen,
  writeSelfSignedCertificate,
} from 'tokio-quiche'

async function main(): Promise<void> {
  const identity = await writeSelfSignedCertificate(['localhost', '127.0.0.1'])
  const [listener] = await listen(
    ['127.0.0.1:0'],
    ConnectionParams.newServer({ tls: { cert: identity.certPath, privateKey: identity.keyPath } }),
  )
  console.log(`server: listening on ${listener!.localAddress} (HTTP/3, certificate ${identity.certPath})`)

  const serving = (async () => {
    for await (const conn of listener!) {
      const { driver, controller } = ServerH3Driver.new()
      conn.start(driver)
      void (async () => {
        for await (const event of controller) {
          if (event.type !== 'headers') continue
          const path = event.headers.find(([name]) => name === ':path')?.[1]
          console.log(`server: ${event.headers.find(([n]) => n === ':method')?.[1]} ${path} on stream ${event.streamId}`)
          await event.send.send(OutboundFrame.headers([[':status', '200'], ['content-type', 'text/plain']]))
          await event.send.send(OutboundFrame.body(Buffer.from(`hello from TQ! you asked for ${path}\n`), true))
        }
      })()
    }
  })()

  const client = await connect(listener!.localAddress, { serverName: 'localhost', ca: identity.cert })
  console.log(`client: connected to ${client.peerAddress}, certificate verified`)
  const response = await client.request({ path: '/demo' })
  console.log(`client: status ${response.status}, headers ${JSON.stringify(response.headers)}`)
  console.log(`client: body ${JSON.stringify(await response.body.text())}`)

  const info = await client.close()
  await listener!.close()
  await serving
  console.log(`done: client sent ${info.sentBytes} bytes, received ${info.recvBytes} bytes over QUIC`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
