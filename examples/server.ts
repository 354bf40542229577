// The tokio-quiche README's "Starting an HTTP/3 Server", ported.
//
//   npx tsx examples/server.ts [address] --cert cert.pem --key key.pem
//
// Without --cert/--key it generates a self-signed certificate and prints
// where it wrote it (pass that file to the client as its CA).
import { parseArgs } from 'node:util'
import {
  ConnectionParams,
  Http3Settings,
  OutboundFrame,
  type ServerH3Controller,
  ServerH3Driver,
  listen,
  writeSelfSignedCertificate,
} from 'tokio-quiche'

async function handleConnection(controller: ServerH3Controller): Promise<void> {
  for await (const event of controller) {
    switch (event.type) {
      case 'headers':
        console.log('incoming headers', event.headers)
        await event.send.send(OutboundFrame.headers([[':status', '200']]))
        await event.send.send(OutboundFrame.body(Buffer.from('hello from TQ!'), true))
        break
      default:
        console.log('event:', event.type)
    }
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { cert: { type: 'string' }, key: { type: 'string' } },
  })
  let { cert, key } = values
  if (!cert || !key) {
    const generated = await writeSelfSignedCertificate()
    ;({ certPath: cert, keyPath: key } = generated)
    console.log(`generated certificate: ${cert}`)
  }
  const [listener] = await listen(
    [{ address: positionals[0] ?? '127.0.0.1:4043' }],
    ConnectionParams.newServer({ tls: { cert, privateKey: key } }),
  )
  console.log(`listening on ${listener!.localAddress}`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void listener!.close())

  for await (const conn of listener!) {
    const { driver, controller } = ServerH3Driver.new(new Http3Settings())
    conn.start(driver)
    void handleConnection(controller)
  }
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
