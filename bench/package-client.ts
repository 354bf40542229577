// The client side: this package's client (connect() + request(), or with
// --api fetch, fetch() through an Agent, its body read as a stream; with
// --api fetch-whole, read by arrayBuffer()) as a load generator, doing what
// `tq-bench load` does for one connection: STREAMS requests always in flight
// until SECONDS have passed, then the last ones finish. Prints one LoadResult
// JSON line.
//   tsx bench/package-client.ts ADDR PATH [--streams S] [--seconds D] [--api request|fetch|fetch-whole]
import { parseArgs } from 'node:util'
import { Agent, connect, fetch } from 'tokio-quiche'
import type { LoadResult } from './clients'
import { percentile } from './stats'

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { streams: { type: 'string', default: '1' }, seconds: { type: 'string', default: '5' }, api: { type: 'string', default: 'request' } },
  })
  const [address, path] = positionals
  if (!address || !path || !['request', 'fetch', 'fetch-whole'].includes(values.api!)) {
    throw new Error('usage: package-client.ts ADDR PATH [--streams S] [--seconds D] [--api request|fetch|fetch-whole]')
  }
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  const deadline = start + Number(values.seconds) * 1000
  let bytes = 0
  // As tq-bench: no certificate check against our own test certificate.
  const controller = values.api === 'request' ? await connect(address, { serverName: 'localhost', insecureSkipVerify: true }) : undefined
  const agent = new Agent({ insecureSkipVerify: true })
  const url = `https://${address}${path}`
  const one = controller
    ? async () => {
        for await (const chunk of (await controller.request({ path })).body.chunks()) bytes += chunk.length
      }
    : values.api === 'fetch'
      ? async () => {
          for await (const chunk of (await fetch(url, { agent })).body!) bytes += chunk.length
        }
      : async () => {
          bytes += (await (await fetch(url, { agent })).arrayBuffer()).byteLength
        }
  // fetch() connects on its first request: that one's time stands for the handshake.
  if (!controller) await one()
  const handshake = performance.now() - start
  let requests = 0
  const latencies: number[] = []
  const stream = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now()
      await one()
      latencies.push(Math.round((performance.now() - t0) * 1000))
      requests++
    }
  }
  await Promise.all(Array.from({ length: Number(values.streams) }, stream))
  const seconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpu0)
  await controller?.close()
  await agent.close()
  const result: LoadResult = {
    requests,
    bytes,
    connections: 1,
    seconds,
    rps: requests / seconds,
    mbps: (bytes * 8) / seconds / 1e6,
    cps: 1 / seconds,
    p50_us: percentile(latencies, 0.5),
    p99_us: percentile(latencies, 0.99),
    handshake_us: Math.round(handshake * 1000),
    client_cpu_s: (cpu.user + cpu.system) / 1e6,
  }
  console.log(JSON.stringify(result))
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
