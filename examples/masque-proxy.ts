// A MASQUE CONNECT-UDP proxy (RFC 9298) and a client that tunnels UDP
// through it, on the HTTP/3 API with datagram flows (RFC 9297).
//
//   npx tsx examples/masque-proxy.ts proxy --allow 127.0.0.1:53 [--port 4433] [--cert c.pem --key k.pem]
//   npx tsx examples/masque-proxy.ts send https://127.0.0.1:4433 127.0.0.1 53 "payload" [--ca c.pem]
//
// A client sends an extended CONNECT (`:protocol connect-udp`) for
// `/.well-known/masque/udp/{host}/{port}/`; the proxy opens a UDP socket to
// that target when `allow` lets it, answers 200, and forwards: HTTP
// datagrams (context id 0) and DATAGRAM capsules on the request stream go
// to the target, the target's replies come back as HTTP datagrams. The
// tunnel ends with the request stream.
import dgram from 'node:dgram'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { parseArgs } from 'node:util'
import {
  type ClientH3Controller,
  ConnectionParams,
  type DatagramFlow,
  type IncomingHeadersEvent,
  type QuicListener,
  type ServerH3Controller,
  connect,
  listen,
  writeSelfSignedCertificate,
} from 'tokio-quiche'

/** RFC 9298 §3: the default URI template's path. */
const TEMPLATE = /^\/\.well-known\/masque\/udp\/([^/]+)\/(\d{1,5})\/$/
/** HTTP Datagram context id 0: the payload is a whole UDP payload (RFC 9298 §4). */
const UDP_CONTEXT = Buffer.from([0])
/** The capsule type of a DATAGRAM capsule (RFC 9297 §3.5). */
const DATAGRAM_CAPSULE = 0x00
/** Replies from a target waiting for the flow; beyond this they are dropped, as UDP may. */
const MAX_IN_FLIGHT = 256
/** The longest capsule value taken (a DATAGRAM capsule holds one UDP payload); a longer one cancels the tunnel. */
const MAX_CAPSULE = 65_536

/** A target the proxy may reach: an IP address and a port (`'*'`: any). */
export interface AllowedTarget {
  address: string
  port: number | '*'
}

export interface MasqueProxyOptions {
  port?: number
  cert: string
  key: string
  /** The only targets forwarded to (after name resolution); everything else gets 403. Empty: none. */
  allow: readonly AllowedTarget[]
}

/** Counters, for tests and logs. */
export interface ProxyStats {
  tunnels: number
  refused: number
  toTarget: number
  fromTarget: number
  dropped: number
  /** Tunnels cancelled on an error (e.g. a capsule over the limit). */
  failed: number
}

/** A QUIC varint at `at` (RFC 9000 §16): [value, next offset], or null if `buf` ends first. */
export function readVarint(buf: Buffer, at: number): [number, number] | null {
  if (at >= buf.length) return null
  const length = 1 << (buf[at]! >> 6)
  if (at + length > buf.length) return null
  let value = buf[at]! & 0x3f
  for (let i = 1; i < length; i++) value = value * 256 + buf[at + i]!
  return [value, at + length]
}

/**
 * The capsules of a request stream (RFC 9297 §3.2) as [type, value]. Chunks
 * are joined only once a whole capsule is there, so one dripped in byte by
 * byte costs one copy, not one per byte.
 */
async function* capsulesOf(chunks: AsyncIterable<Buffer>): AsyncGenerator<[type: number, value: Buffer]> {
  let parts: Buffer[] = []
  let queued = 0
  // Bytes the next capsule needs before it is worth parsing.
  let needed = 1
  for await (const chunk of chunks) {
    parts.push(chunk)
    queued += chunk.length
    while (queued >= needed) {
      let pending = parts.length === 1 ? parts[0]! : Buffer.concat(parts)
      parts = [pending]
      const type = readVarint(pending, 0)
      const length = type && readVarint(pending, type[1])
      if (!length) {
        needed = queued + 1
        break
      }
      if (length[0] > MAX_CAPSULE) throw new Error(`a capsule of ${length[0]} bytes is over the ${MAX_CAPSULE}-byte limit`)
      const end = length[1] + length[0]
      if (end > queued) {
        needed = end
        break
      }
      yield [type[0], pending.subarray(length[1], end)]
      pending = pending.subarray(end)
      parts = pending.length ? [pending] : []
      queued = pending.length
      needed = 1
    }
  }
}

/** Starts the proxy; it answers CONNECT-UDP requests until the listener closes. */
export async function startMasqueProxy(options: MasqueProxyOptions): Promise<{ listener: QuicListener; stats: ProxyStats }> {
  const params = ConnectionParams.newServer({ tls: { cert: options.cert, privateKey: options.key }, settings: { enableDgram: true } })
  const [listener] = await listen([`127.0.0.1:${options.port ?? 0}`], params)
  const stats: ProxyStats = { tunnels: 0, refused: 0, toTarget: 0, fromTarget: 0, dropped: 0, failed: 0 }
  void (async () => {
    for await (const controller of listener!.startH3({ enableExtendedConnect: true })) void serveConnection(controller, options.allow, stats)
  })()
  return { listener: listener!, stats }
}

async function serveConnection(controller: ServerH3Controller, allow: readonly AllowedTarget[], stats: ProxyStats): Promise<void> {
  // A request's flow (flow id = its stream id / 4) arrives before its headers.
  const flows = new Map<number, DatagramFlow>()
  for await (const event of controller) {
    if (event.type === 'newFlow') flows.set(event.flowId, event.flow)
    else if (event.type === 'headers') {
      const flow = flows.get(event.streamId / 4)
      flows.delete(event.streamId / 4)
      void tunnel(event, flow, allow, stats).catch(() => {
        stats.failed++
        event.send.close()
      })
    }
  }
}

function header(event: IncomingHeadersEvent, name: string): string | undefined {
  return event.headers.find(([n]) => n === name)?.[1]
}

async function refuse(event: IncomingHeadersEvent, status: number, reason: string, stats: ProxyStats): Promise<void> {
  stats.refused++
  await event.send.respond([[':status', String(status)], ['proxy-status', `masque-example; error=destination_ip_prohibited; details="${reason}"`]])
}

/** One CONNECT-UDP request: validate, resolve, check the allow-list, then forward until the stream ends. */
async function tunnel(event: IncomingHeadersEvent, flow: DatagramFlow | undefined, allow: readonly AllowedTarget[], stats: ProxyStats): Promise<void> {
  if (header(event, ':method') !== 'CONNECT' || header(event, ':protocol') !== 'connect-udp') {
    return event.send.respond([[':status', '501']], 'only CONNECT-UDP (RFC 9298) is served here\n')
  }
  const match = TEMPLATE.exec(header(event, ':path') ?? '')
  const port = Number(match?.[2])
  if (!match || !flow || port < 1 || port > 65535) return refuse(event, 400, 'expected /.well-known/masque/udp/{host}/{port}/', stats)
  let host: string
  let address: string
  try {
    host = decodeURIComponent(match[1]!)
  } catch {
    return refuse(event, 400, 'the host is not valid percent-encoding', stats)
  }
  try {
    address = isIP(host) ? host : (await lookup(host)).address
  } catch {
    return refuse(event, 502, `cannot resolve ${host}`, stats)
  }
  if (!allow.some((a) => a.address === address && (a.port === '*' || a.port === port))) {
    return refuse(event, 403, `${address}:${port} is not allowed`, stats)
  }
  // Replies can come in bursts while the JS thread is busy; a small default buffer would drop them.
  const socket = dgram.createSocket({ type: isIP(address) === 6 ? 'udp6' : 'udp4', recvBufferSize: 1024 * 1024 })
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.connect(port, address, () => resolve())
  })
  stats.tunnels++
  let inFlight = 0
  socket.on('message', (payload) => {
    // UDP is lossy anyway: drop rather than queue without bound.
    if (inFlight >= MAX_IN_FLIGHT) return void stats.dropped++
    inFlight++
    flow.send(Buffer.concat([UDP_CONTEXT, payload])).then(
      () => {
        inFlight--
        stats.fromTarget++
      },
      () => inFlight--,
    )
  })
  socket.on('error', () => {})
  const toTarget = (datagram: Buffer) => {
    const context = readVarint(datagram, 0)
    // Only context 0 (UDP payloads) is defined; others are dropped (RFC 9298 §4).
    if (!context || context[0] !== 0) return void stats.dropped++
    stats.toTarget++
    socket.send(datagram.subarray(context[1]))
  }
  await event.send.sendHeaders([[':status', '200'], ['capsule-protocol', '?1']])
  const fromFlow = (async () => {
    for await (const datagram of flow) toTarget(datagram)
  })()
  try {
    // The request stream carries capsules; its end ends the tunnel. Other capsule types are skipped (RFC 9297 §3.2).
    for await (const [type, value] of capsulesOf(event.recv.chunks())) if (type === DATAGRAM_CAPSULE) toTarget(value)
    await event.send.end()
  } finally {
    socket.close()
    flow.close()
    await fromFlow.catch(() => {})
  }
}

/** A UDP "socket" through a proxy: payloads out, payloads in. */
export interface UdpTunnel extends AsyncIterable<Buffer> {
  readonly status: number
  send(payload: Uint8Array): Promise<void>
  /** Sends `payload` as a DATAGRAM capsule on the request stream (reliable, ordered) instead of a QUIC datagram. */
  sendCapsule(payload: Uint8Array): Promise<void>
  /** Ends the tunnel (the request stream's FIN). */
  close(): Promise<void>
}

/** A QUIC varint (RFC 9000 §16) for values below 2^30. */
export function varint(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value >= 2 ** 30) throw new RangeError(`varint: ${value} is not an integer from 0 to 2^30 - 1`)
  if (value < 0x40) return Buffer.from([value])
  if (value < 0x4000) return Buffer.from([0x40 | (value >> 8), value & 0xff])
  const out = Buffer.alloc(4)
  // 0b10 prefix: 0x80000000 + value stays a positive number (a `|` would make it a negative int32).
  out.writeUInt32BE(0x80000000 + value)
  return out
}

/**
 * Opens a CONNECT-UDP tunnel to `host:port` over `client` (connected with
 * `settings.enableDgram`); `newFlows` yields the connection's `newFlow`
 * events (see {@link flowsOf}). Resolves once the proxy answered; a
 * non-2xx answer rejects with its status.
 */
export async function openUdpTunnel(client: ClientH3Controller, newFlows: (flowId: number) => Promise<DatagramFlow>, host: string, port: number): Promise<UdpTunnel> {
  let finish!: () => void
  const finished = new Promise<void>((resolve) => (finish = resolve))
  const capsules: Buffer[] = []
  let wake: (() => void) | undefined
  // The request body: capsules, until close().
  const body = (async function* () {
    for (;;) {
      while (capsules.length) yield capsules.shift()!
      const more = new Promise<void>((resolve) => (wake = resolve))
      if ((await Promise.race([more.then(() => true), finished.then(() => false)])) === false) return
    }
  })()
  const response = await client.request({
    method: 'CONNECT',
    path: `/.well-known/masque/udp/${encodeURIComponent(host)}/${port}/`,
    headers: [[':protocol', 'connect-udp'], ['capsule-protocol', '?1']],
    body,
  })
  if (response.status < 200 || response.status > 299) {
    finish()
    const reason = response.headers.find(([n]) => n === 'proxy-status')?.[1]
    throw new Error(`the proxy answered ${response.status}${reason ? ` (${reason})` : ''}`)
  }
  const flow = await newFlows(response.streamId / 4)
  return {
    status: response.status,
    send: (payload) => flow.send(Buffer.concat([UDP_CONTEXT, payload])),
    async sendCapsule(payload) {
      const value = Buffer.concat([UDP_CONTEXT, payload])
      capsules.push(Buffer.concat([varint(DATAGRAM_CAPSULE), varint(value.length), value]))
      wake?.()
    },
    async close() {
      finish()
      flow.close()
      response.body.close()
    },
    async *[Symbol.asyncIterator]() {
      for await (const datagram of flow) {
        const context = readVarint(datagram, 0)
        if (context && context[0] === 0) yield datagram.subarray(context[1])
      }
    },
  }
}

/** Watches `client`'s events for `newFlow`: returns a lookup that waits for a flow id's flow. */
export function flowsOf(client: ClientH3Controller): (flowId: number) => Promise<DatagramFlow> {
  const flows = new Map<number, DatagramFlow>()
  const waiting = new Map<number, (flow: DatagramFlow) => void>()
  void (async () => {
    for await (const event of client) {
      if (event.type !== 'newFlow') continue
      const waiter = waiting.get(event.flowId)
      if (waiter) {
        waiting.delete(event.flowId)
        waiter(event.flow)
      } else flows.set(event.flowId, event.flow)
    }
  })()
  return (flowId) => {
    const flow = flows.get(flowId)
    if (flow) {
      flows.delete(flowId)
      return Promise.resolve(flow)
    }
    return new Promise((resolve) => waiting.set(flowId, resolve))
  }
}

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      allow: { type: 'string', multiple: true, default: [] },
      port: { type: 'string', default: '4433' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
    },
  })
  const [mode, ...rest] = positionals
  if (mode === 'proxy') {
    let { cert, key } = values
    if (!cert || !key) {
      ;({ certPath: cert, keyPath: key } = await writeSelfSignedCertificate(['localhost', '127.0.0.1']))
      console.error(`self-signed certificate: ${cert}`)
    }
    const allow = values.allow.map((entry): AllowedTarget => {
      const at = entry.lastIndexOf(':')
      const port = entry.slice(at + 1)
      return { address: entry.slice(0, at), port: port === '*' ? '*' : Number(port) }
    })
    const { listener } = await startMasqueProxy({ port: Number(values.port), cert, key, allow })
    console.log(`listening ${listener.port}`)
    process.once('SIGINT', () => void listener.close())
  } else if (mode === 'send' && rest.length === 4) {
    const [proxy, host, port, payload] = rest as [string, string, string, string]
    const url = new URL(proxy)
    const client = await connect(url.host, { serverName: url.hostname, ...(values.ca ? { ca: values.ca } : {}), settings: { enableDgram: true } })
    const tunnel = await openUdpTunnel(client, flowsOf(client), host, Number(port))
    await tunnel.send(Buffer.from(payload))
    for await (const reply of tunnel) {
      console.log(reply.toString())
      break
    }
    await tunnel.close()
    await client.close()
  } else {
    console.error('usage: masque-proxy.ts proxy --allow IP:PORT... | send https://PROXY HOST PORT PAYLOAD [--ca C]')
    process.exitCode = 2
  }
}

// Run as a script, not when a test imports the functions above.
if (require.main === module) {
  main().catch((err) => {
    console.error(err)
    process.exitCode = 1
  })
}
