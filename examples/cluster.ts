// One HTTP/3 port served by several processes: node:cluster workers each
// listen() with `reusePort: true`, and the kernel spreads clients over them.
//
//   npx tsx examples/cluster.ts [workers] [address] --cert cert.pem --key key.pem
//
// Each response names the worker's pid. QUIC packets of one connection keep
// their UDP 4-tuple, so they keep reaching the same worker.
import cluster from 'node:cluster'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { serve, writeSelfSignedCertificate } from 'tokio-quiche'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { cert: { type: 'string' }, key: { type: 'string' } },
})

async function primary(): Promise<void> {
  const workers = Number(positionals[0] ?? availableParallelism())
  let { cert, key } = values
  if (!cert || !key) {
    ;({ certPath: cert, keyPath: key } = await writeSelfSignedCertificate())
    console.log(`generated certificate: ${cert}`)
  }
  // The first worker binds the port (0 picks one); the others join it.
  let address = positionals[1] ?? '127.0.0.1:4043'
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork({ ADDRESS: address, CERT: cert, KEY: key })
    address = await new Promise<string>((resolve) => worker.once('message', resolve))
  }
  console.log(`listening on ${address} with ${workers} workers`)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM')
    })
  }
}

async function worker(): Promise<void> {
  const server = await serve(
    {
      socket: { address: process.env.ADDRESS!, reusePort: true },
      tls: { cert: process.env.CERT!, privateKey: process.env.KEY! },
    },
    () => new Response(`hello from worker ${process.pid}\n`),
  )
  process.send!(server.address)
  process.once('SIGTERM', async () => {
    await server.close()
    // The IPC channel to the primary would keep this worker alive.
    process.disconnect()
  })
}

;(cluster.isPrimary ? primary() : worker()).catch((err) => {
  console.error(err)
  process.exitCode = 1
})
