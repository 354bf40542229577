// The client side: this package's client (connect() + request()) as a load
// generator, doing what `tq-bench load` does for one connection: STREAMS
// requests always in flight until SECONDS have passed, then the last ones
// finish. Prints one LoadResult JSON line.
//   tsx bench/package-client.ts ADDR PATH [--streams S] [--seconds D]
import { parseArgs } from 'node:util'
import { connect } from 'tokio-quiche'
import type { LoadResult } from './clients'
import { percentile } from './stats'

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { streams: { type: 'string', default: '1' }, seconds: { type: 'string', default: '5' } },
  })
  const [address, path] = positionals
  if (!address || !path) throw new Error('usage: package-client.ts ADDR PATH [--streams S] [--seconds D]')
  const cpu0 = process.cpuUsage()
  const start = performance.now()
  const deadline = start + Number(values.seconds) * 1000
  // As tq-bench: no certificate check against our own test certificate.
  const controller = await connect(address, { serverName: 'localhost', insecureSkipVerify: true })
  const handshake = performance.now() - start
  let requests = 0
  let bytes = 0
  const latencies: number[] = []
  const stream = async () => {
    while (performance.now() < deadline) {
      const t0 = performance.now()
      const res = await controller.request({ path })
      for await (const chunk of res.body.chunks()) bytes += chunk.length
      latencies.push(Math.round((performance.now() - t0) * 1000))
      requests++
    }
  }
  await Promise.all(Array.from({ length: Number(values.streams) }, stream))
  const seconds = (performance.now() - start) / 1000
  const cpu = process.cpuUsage(cpu0)
  await controller.close()
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
