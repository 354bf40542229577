// Subjects C1 and C2: subject P in 1 or 2 node:cluster workers sharing one
// UDP port through SO_REUSEPORT (the kernel spreads connections over the
// workers by address hash). `probe` says whether this platform lets two
// sockets share the port (listen()'s `reusePort`).
//   tsx bench/cluster-server.ts ADDR CERT KEY WORKERS
//   tsx bench/cluster-server.ts probe CERT KEY      prints "reusePort yes" or "reusePort no: <why>"
import cluster from 'node:cluster'
import { ConnectionParams, type ListenSocket, listen } from 'tokio-quiche'
import { LIMITS, answerStats } from './routes'
import { serveConnection } from './server'

const reusable = (address: string): ListenSocket => ({ address, reusePort: true })

/** Two listeners on one port succeed only if reusePort reached the socket. */
async function probe(params: ConnectionParams): Promise<string> {
  const [first] = await listen([reusable('127.0.0.1:0')], params)
  try {
    const [second] = await listen([reusable(first!.localAddress)], params)
    await second!.close()
    return 'reusePort yes'
  } catch (err) {
    return `reusePort no: ${(err as Error).message}`
  } finally {
    await first!.close()
  }
}

function forkWorker(address: string): Promise<string> {
  const worker = cluster.fork({ BENCH_ADDRESS: address })
  return new Promise((resolve, reject) => {
    worker.once('message', (m: { listening: string }) => resolve(m.listening))
    worker.once('exit', (code) => reject(new Error(`worker exited with ${code}`)))
  })
}

async function primary(): Promise<void> {
  const [addr, cert, key, workers = '1'] = process.argv.slice(2)
  const params = ConnectionParams.newServer({ tls: { cert: cert!, privateKey: key! }, limits: LIMITS })
  if (addr === 'probe') return console.log(await probe(params))
  answerStats()
  // The first worker picks the port; the others join it.
  const address = await forkWorker(addr!)
  for (let i = 1; i < Number(workers); i++) await forkWorker(address)
  console.log(`listening ${address}`)
}

async function worker(): Promise<void> {
  const [, cert, key] = process.argv.slice(2)
  const params = ConnectionParams.newServer({ tls: { cert: cert!, privateKey: key! }, limits: LIMITS })
  const [listener] = await listen([reusable(process.env.BENCH_ADDRESS!)], params)
  process.send!({ listening: listener!.localAddress })
  // Workers end with the primary.
  process.on('disconnect', () => process.exit(0))
  for await (const controller of listener!.startH3()) void serveConnection(controller)
}

;(cluster.isPrimary ? primary() : worker()).catch((err) => {
  console.error(err)
  process.exitCode = 1
})
