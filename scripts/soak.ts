// Load and soak: CONNECTIONS clients at once on loopback, each opening a
// connection, making REQUESTS_PER_CONNECTION requests on it and closing it,
// again and again until REQUESTS requests are done. Every response body is
// checked by SHA-256 (GETs of seeded pseudo-random bytes; POSTs whose body
// the server hashes back). RSS, JS heap (after a forced GC) and open fds are
// sampled as it runs; the slope of each over the steady part (after the
// first 20 % of requests) is reported per 1,000 requests.
//
//   node --expose-gc --import tsx scripts/soak.ts [--connections 1000] [--requests 100000]
//        [--per-connection 20] [--separate-clients] [--json]
//
// With --separate-clients the clients run in a child process (this script
// with --role clients), so the samples are the server's alone.
//
// Exits 1 when a request is lost or a body corrupted, when a slope is over its
// bound (judged in runs of 25,000 requests or more), or when fds are left
// open after every client closed.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { connect, serve } from 'tokio-quiche'
import { patternBytes, sha256, sleep, testIdentity } from '../__test__/helpers.js'

/** Bounds per 1,000 requests over the steady part; see docs/reliability.md for the measured figures. */
const BOUNDS = { rssKiB: 256, heapKiB: 32 }
/**
 * Slopes are judged only over a steady part this long: in a short run the
 * allocators' warm-up (RSS climbing to its working set) is all there is.
 */
const MIN_STEADY_REQUESTS = 20_000
/** fds still open after every client closed, beyond the count before the first connected. */
const FD_SLACK = 5
/** Distinct bodies: sizes from empty to past one 64 KiB chunk, each with its hash computed once. */
const BODIES = [0, 1, 100, 1024, 4000, 16_384, 65_536, 100_000].map((size, seed) => {
  const bytes = patternBytes(size, seed + 1)
  return { size, seed: seed + 1, bytes, sha: sha256(bytes) }
})

const { values } = parseArgs({
  options: {
    connections: { type: 'string', default: '1000' },
    requests: { type: 'string', default: '100000' },
    'per-connection': { type: 'string', default: '20' },
    'separate-clients': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    // Internal: the child process of --separate-clients.
    role: { type: 'string', default: 'all' },
    address: { type: 'string' },
  },
})
const CONNECTIONS = Number(values.connections)
const REQUESTS = Number(values.requests)
const PER_CONNECTION = Number(values['per-connection'])
for (const [name, n] of Object.entries({ CONNECTIONS, REQUESTS, PER_CONNECTION })) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name}: expected a positive integer`)
}
if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc')

interface Sample {
  done: number
  rss: number
  heap: number
  fds: number
}
const fds = () => readdirSync('/proc/self/fd').length
function sample(done: number): Sample {
  global.gc!()
  const { rss, heapUsed } = process.memoryUsage()
  return { done, rss, heap: heapUsed, fds: fds() }
}

/** Least-squares slope of `y` against requests done, per 1,000 requests. */
function slope(samples: readonly Sample[], y: (s: Sample) => number): number {
  const n = samples.length
  if (n < 2) return 0
  const mx = samples.reduce((a, s) => a + s.done, 0) / n
  const my = samples.reduce((a, s) => a + y(s), 0) / n
  let num = 0
  let den = 0
  for (const s of samples) {
    num += (s.done - mx) * (y(s) - my)
    den += (s.done - mx) ** 2
  }
  return den === 0 ? 0 : (num / den) * 1000
}

/** What the client side of the load reports. */
interface Load {
  done: number
  corrupted: number
  connections: number
  errors: Record<string, number>
}

/** CONNECTIONS clients making REQUESTS requests in all against `address`; `progress.done` counts as they finish. */
async function runClients(address: string, ca: string, progress: { done: number }): Promise<Load> {
  const options = { serverName: 'localhost', ca }
  let started = 0
  let corrupted = 0
  let connections = 0
  const errors = new Map<string, number>()
  async function oneRequest(client: Awaited<ReturnType<typeof connect>>, n: number): Promise<void> {
    const body = BODIES[n % BODIES.length]!
    // Every 4th request uploads its body and checks the hash the server computed.
    if (n % 4 === 3) {
      const res = await client.request({ method: 'POST', path: '/', body: body.bytes })
      if (res.status !== 200 || (await res.body.text()) !== body.sha) corrupted++
    } else {
      const res = await client.request({ path: `/${n % BODIES.length}` })
      if (res.status !== 200 || sha256(await res.body.bytes()) !== body.sha) corrupted++
    }
  }

  async function worker(): Promise<void> {
    while (started < REQUESTS) {
      const client = await connect(address, options)
      connections++
      try {
        for (let i = 0; i < PER_CONNECTION && started < REQUESTS; i++) {
          const n = started++
          try {
            await oneRequest(client, n)
            progress.done++
          } catch (err) {
            const info = client.isClosed ? await client.closed : undefined
            const how = info ? ` [closed: ${JSON.stringify({ lt: info.localTransportCode, la: info.localApplicationCode, pt: info.peerTransportCode, pa: info.peerApplicationCode, timedOut: info.timedOut, reason: info.reason })}, request ${i}]` : ''
            const key = (err as Error).message.slice(0, 120) + how
            errors.set(key, (errors.get(key) ?? 0) + 1)
          }
        }
      } finally {
        await client.close()
      }
    }
  }

  await Promise.all(Array.from({ length: CONNECTIONS }, worker))
  return { done: progress.done, corrupted, connections, errors: Object.fromEntries(errors) }
}

/** Runs the clients in a child process (this script, --role clients) and returns what it reports. */
async function clientsProcess(address: string): Promise<Load> {
  const id = await testIdentity()
  const args = ['--role', 'clients', '--address', address, '--connections', String(CONNECTIONS), '--requests', String(REQUESTS), '--per-connection', String(PER_CONNECTION)]
  const child = spawn(process.execPath, ['--expose-gc', '--import=tsx', __filename, ...args], { stdio: ['pipe', 'pipe', 'inherit'] })
  child.stdin.end(id.cert)
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk))
  const [code] = (await once(child, 'exit')) as [number | null]
  if (code !== 0) throw new Error(`the clients' process exited with ${code}`)
  return JSON.parse(out) as Load
}

async function main(): Promise<void> {
  const id = await testIdentity()
  // Requests the server answered: the progress measure when the clients are elsewhere.
  let handled = 0
  const server = await serve(
    {
      socket: { host: '127.0.0.1', port: 0 },
      tls: { cert: id.certPath, privateKey: id.keyPath },
      // Every client here is 127.0.0.1: more than the default 1,000 per source at once during churn.
      limits: { maxConnectionsPerSource: Infinity },
    },
    async (request) => {
      handled++
      if (request.method === 'POST') return new Response(sha256(new Uint8Array(await request.arrayBuffer())))
      const body = BODIES[Number(new URL(request.url).pathname.slice(1))]!
      return new Response(body.bytes as Uint8Array<ArrayBuffer>)
    },
  )
  const before = sample(0)
  const samples: Sample[] = []
  const progress = { done: 0 }
  const count = () => (values['separate-clients'] ? handled : progress.done)
  const sampler = setInterval(() => samples.push(sample(count())), 500)
  const t0 = performance.now()
  const load = values['separate-clients'] ? await clientsProcess(server.address) : await runClients(server.address, id.cert, progress)
  const { done, corrupted, errors, connections } = load
  const seconds = (performance.now() - t0) / 1000
  clearInterval(sampler)
  // Closed connections drain for a few PTOs before their sockets go.
  await sleep(1000)
  const after = sample(count())
  await server.close()

  const steady = samples.filter((s) => s.done >= REQUESTS * 0.2)
  const judged = REQUESTS * 0.8 >= MIN_STEADY_REQUESTS
  const result = {
    connections: CONNECTIONS,
    requests: REQUESTS,
    perConnection: PER_CONNECTION,
    connectionsOpened: connections,
    done,
    lost: REQUESTS - done,
    corrupted,
    clientsInOwnProcess: values['separate-clients'],
    errors,
    seconds: Number(seconds.toFixed(1)),
    requestsPerSecond: Math.round(done / seconds),
    samples: samples.length,
    rssMiB: { before: mib(before.rss), peak: mib(Math.max(...samples.map((s) => s.rss), after.rss)), after: mib(after.rss) },
    heapMiB: { before: mib(before.heap), after: mib(after.heap) },
    fds: { before: before.fds, peak: Math.max(...samples.map((s) => s.fds)), after: after.fds },
    slopePer1000Requests: {
      rssKiB: Number((slope(steady, (s) => s.rss) / 1024).toFixed(1)),
      heapKiB: Number((slope(steady, (s) => s.heap) / 1024).toFixed(1)),
      fds: Number(slope(steady, (s) => s.fds).toFixed(2)),
    },
    bounds: { ...BOUNDS, fdSlack: FD_SLACK },
    slopesJudged: judged,
  }
  const failures = [
    result.lost > 0 && `${result.lost} requests lost`,
    corrupted > 0 && `${corrupted} bodies corrupted`,
    judged && result.slopePer1000Requests.rssKiB > BOUNDS.rssKiB && `RSS grows ${result.slopePer1000Requests.rssKiB} KiB per 1,000 requests (bound ${BOUNDS.rssKiB})`,
    judged && result.slopePer1000Requests.heapKiB > BOUNDS.heapKiB && `JS heap grows ${result.slopePer1000Requests.heapKiB} KiB per 1,000 requests (bound ${BOUNDS.heapKiB})`,
    after.fds > before.fds + FD_SLACK && `${after.fds - before.fds} fds left open after every client closed`,
  ].filter((f): f is string => typeof f === 'string')
  if (values.json) console.log(JSON.stringify({ ...result, failures }))
  else {
    console.log(result)
    console.log(failures.length === 0 ? 'soak: ok' : `soak: FAILED: ${failures.join('; ')}`)
  }
  process.exitCode = failures.length === 0 ? 0 : 1
}

const mib = (bytes: number) => Number((bytes / 2 ** 20).toFixed(1))

/** The child of --separate-clients: the CA comes on stdin, the report goes to stdout. */
async function clientsMain(): Promise<void> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  console.log(JSON.stringify(await runClients(values.address!, Buffer.concat(chunks).toString(), { done: 0 })))
}

;(values.role === 'clients' ? clientsMain() : main()).catch((err) => {
  console.error(err)
  process.exitCode = 1
})
