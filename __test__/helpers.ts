import { createHash } from 'node:crypto'
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import {
  type ConnectOptions,
  type ConnectionLimits,
  ConnectionParams,
  connect,
  type Http3SettingsInit,
  type IncomingHeadersEvent,
  type QuicListener,
  type QuicSettings,
  type ServerH3Controller,
  type ServerH3Event,
  type ClientH3Controller,
  type ClientH3Event,
  type DatagramFlow,
  type ServerTlsOptions,
  ServerH3Driver,
  type WrittenCertificate,
  listen,
  writeSelfSignedCertificate,
} from 'tokio-quiche'

let identity: Promise<WrittenCertificate> | undefined
/** One certificate for localhost / 127.0.0.1 per test file. */
export function testIdentity(): Promise<WrittenCertificate> {
  identity ??= writeSelfSignedCertificate(['localhost', '127.0.0.1'])
  return identity
}

export type RequestHandler = (event: IncomingHeadersEvent, controller: ServerH3Controller) => Promise<void> | void

export interface TestServer {
  listener: QuicListener
  address: string
  identity: WrittenCertificate
  close(): Promise<void>
}

/** A real tokio-quiche server on 127.0.0.1 calling `handler` for each request. */
export async function startServer(
  handler: RequestHandler,
  options: {
    settings?: QuicSettings
    limits?: ConnectionLimits
    http3?: Http3SettingsInit
    identity?: WrittenCertificate
    /** Extra TLS options (SNI, client authentication) beside the identity. */
    tls?: Omit<ServerTlsOptions, 'cert' | 'privateKey'>
    /** Sees every server event, requests included. */
    onEvent?: (event: ServerH3Event) => void
    /** Start connections with `listener.startH3()` instead of `accept()` + `start()`. */
    startH3?: boolean
  } = {},
): Promise<TestServer> {
  const id = options.identity ?? (await testIdentity())
  const [listener] = await listen(
    ['127.0.0.1:0'],
    ConnectionParams.newServer({
      tls: { cert: id.certPath, privateKey: id.keyPath, ...options.tls },
      ...(options.settings ? { settings: options.settings } : {}),
      ...(options.limits ? { limits: options.limits } : {}),
    }),
  )
  const serveConnection = async (controller: ServerH3Controller) => {
    for await (const event of controller) {
      options.onEvent?.(event)
      if (event.type === 'headers') {
        Promise.resolve(handler(event, controller)).catch((err) => {
          event.send.close()
          console.error('handler failed', err)
        })
      }
    }
  }
  const accepting = (async () => {
    if (options.startH3) {
      for await (const controller of listener!.startH3(options.http3)) void serveConnection(controller)
      return
    }
    for await (const conn of listener!) {
      const { driver, controller } = ServerH3Driver.new(options.http3)
      conn.start(driver)
      void serveConnection(controller)
    }
  })()
  return {
    listener: listener!,
    address: listener!.localAddress,
    identity: id,
    async close() {
      await listener!.close()
      await accepting
    },
  }
}

/** One request on a fresh server; the client then closes with H3_NO_ERROR (which the server counts as a peer close). */
export async function oneRequest(): Promise<void> {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '204']])
    await req.send.end()
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  await (await client.request()).body.bytes()
  await client.close()
  await server.close()
}

/** One GET on a new connection: the body text, or connect()'s or the request's error. */
export async function fetchText(address: string, options: ConnectOptions): Promise<string> {
  const client = await connect(address, options)
  try {
    return await (await client.request()).body.text()
  } finally {
    await client.close()
  }
}

export function header(headers: readonly [string, string][], name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1]
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Deterministic pseudo-random bytes, so hashes compare across processes. */
export function patternBytes(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The client's resumable session, once the server's ticket has arrived (up to 2 s). */
export async function waitForSession(client: ClientH3Controller): Promise<Buffer> {
  for (let i = 0; i < 40; i++) {
    const session = await client.getSession()
    if (session) return session
    await sleep(50)
  }
  throw new Error('no session ticket within 2 s')
}

// ---- HTTP/3 DATAGRAM (RFC 9297) over extended CONNECT ----------------------

const CONNECT_UDP: [string, string][] = [
  [':method', 'CONNECT'],
  [':protocol', 'connect-udp'],
  [':scheme', 'https'],
  [':authority', 'localhost'],
  [':path', '/.well-known/masque/udp/192.0.2.1/443/'],
  ['capsule-protocol', '?1'],
]

/** The next event of `type` on the client, skipping others. */
export async function nextEvent<T extends ClientH3Event['type']>(events: AsyncIterator<ClientH3Event>, type: T) {
  for (;;) {
    const { value, done } = await events.next()
    if (done) throw new Error(`events ended before ${type}`)
    if (value.type === type) return value as Extract<ClientH3Event, { type: T }>
  }
}

/** A server (QUIC DATAGRAM and extended CONNECT on) that answers CONNECT with 200 and echoes each datagram with an "echo:" prefix. */
export async function datagramEchoServer() {
  const flows = new Map<number, DatagramFlow>()
  let flowEnded!: (echoed: number) => void
  const serverFlowEnded = new Promise<number>((resolve) => (flowEnded = resolve))
  const server = await startServer(
    async (req) => {
      if (header(req.headers, ':protocol') !== 'connect-udp') throw new Error('expected an extended CONNECT')
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

/** Sends an extended CONNECT (connect-udp) and waits for its flow and response. */
export async function openConnectUdp(client: ClientH3Controller) {
  const events = client.events()[Symbol.asyncIterator]()
  client.requestSender().send({ requestId: 7, headers: CONNECT_UDP, bodyWriter: true })
  const newFlow = await nextEvent(events, 'newFlow')
  const response = await nextEvent(events, 'headers')
  return { events, newFlow, response }
}

/**
 * Sends each text on `flow` and collects the echoes, sorted. Datagrams may be
 * dropped even on loopback, so what has not come back is resent, a few rounds.
 */
export async function echoRoundTrip(flow: DatagramFlow, sent: string[]): Promise<string[]> {
  const echoes = new Set<string>()
  // Five rounds of 500 ms once missed one datagram in every round on a loaded CI machine.
  for (let round = 0; round < 10 && echoes.size < sent.length; round++) {
    for (const text of sent) if (!echoes.has(`echo:${text}`)) await flow.send(text)
    const deadline = Date.now() + 1000
    while (echoes.size < sent.length && Date.now() < deadline) {
      const dgram = await Promise.race([flow.recv(), sleep(100).then(() => null)])
      if (dgram) echoes.add(dgram.toString())
    }
  }
  return [...echoes].sort()
}

// ---- a well-behaved client beside a fault or an attack (issue 18) ----------

/**
 * Runs `attack` while a well-behaved client keeps making one request on a
 * fresh connection (the server must answer "ok"); returns their latencies, ms.
 * Throws if any of them fails or gets another body.
 */
export async function servedDuring(server: { address: string; identity: WrittenCertificate }, attack: () => Promise<unknown>): Promise<number[]> {
  let attacking = true
  const latencies: number[] = []
  const client = (async () => {
    while (attacking || latencies.length === 0) {
      const started = performance.now()
      const body = await fetchText(server.address, { serverName: 'localhost', ca: server.identity.cert, settings: { handshakeTimeoutMs: 5000 } })
      if (body !== 'ok') throw new Error(`the well-behaved client got ${JSON.stringify(body.slice(0, 40))}`)
      latencies.push(performance.now() - started)
    }
  })()
  try {
    await attack()
  } finally {
    attacking = false
    await client
  }
  return latencies
}

/** `n requests on new connections, median x ms, max y ms`. */
export function latencySummary(ms: readonly number[]): string {
  const sorted = [...ms].sort((a, b) => a - b)
  return `${ms.length} requests on new connections, median ${sorted[sorted.length >> 1]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`
}

/** A child process running `fixtures/<script>` under tsx, its stdout read as lines (kill it in a teardown). */
export function spawnFixture(script: string, args: string[], nodeArgs: string[] = []) {
  const child = spawn(process.execPath, ['--import=tsx', ...nodeArgs, `${__dirname}/fixtures/${script}`, ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  const waiters: { prefix: string; resolve: (rest: string) => void }[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    for (const w of waiters.filter((w) => line.startsWith(w.prefix))) {
      waiters.splice(waiters.indexOf(w), 1)
      w.resolve(line.slice(w.prefix.length).trim())
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  return {
    child,
    lines,
    exited,
    /** The rest of the first line (from now on, or already printed) starting with `prefix`. */
    line(prefix: string): Promise<string> {
      const seen = lines.find((l) => l.startsWith(prefix))
      if (seen !== undefined) return Promise.resolve(seen.slice(prefix.length).trim())
      return new Promise((resolve) => waiters.push({ prefix, resolve }))
    },
  }
}
