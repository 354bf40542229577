// MASQUE CONNECT-UDP (RFC 9298): examples/masque-proxy.ts's proxy and
// client, over real QUIC, forwarding to real UDP sockets on 127.0.0.1.
import test from 'ava'
import dgram from 'node:dgram'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { type ClientH3Controller, connect } from 'tokio-quiche'
import { type AllowedTarget, flowsOf, openUdpTunnel, readVarint, startMasqueProxy, varint } from '../examples/masque-proxy.js'
import { testIdentity } from './helpers.js'

/** A UDP server on 127.0.0.1 answering each datagram with `answer(it)`; counts what it received. */
async function udpServer(answer: (msg: Buffer) => Buffer) {
  // A roomy receive buffer: the target shares the test's JS thread with the proxy and client, so bursts wait for it.
  const socket = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 })
  const received: Buffer[] = []
  socket.on('message', (msg, rinfo) => {
    received.push(msg)
    socket.send(answer(msg), rinfo.port, rinfo.address)
  })
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  return { port: socket.address().port, received, close: () => new Promise<void>((resolve) => socket.close(() => resolve())) }
}

/** A DNS-like answer: the query's id and question, QR set, one A record 127.0.0.1. */
function dnsAnswer(query: Buffer): Buffer {
  const header = Buffer.from(query.subarray(0, 12))
  header.writeUInt16BE(0x8180, 2) // QR, RD, RA: a standard response, no error
  header.writeUInt16BE(1, 6) // ANCOUNT
  const question = query.subarray(12)
  const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1])
  return Buffer.concat([header, question, answer])
}

function dnsQuery(id: number, name: string): Buffer {
  const header = Buffer.alloc(12)
  header.writeUInt16BE(id, 0)
  header.writeUInt16BE(0x0100, 2) // RD
  header.writeUInt16BE(1, 4) // QDCOUNT
  const labels = name.split('.').map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)]))
  return Buffer.concat([header, ...labels, Buffer.from([0, 0, 1, 0, 1])])
}

async function proxyAndClient(t: { teardown(fn: () => unknown): void }, allow: (echoPort: number) => AllowedTarget[], answer: (msg: Buffer) => Buffer) {
  const id = await testIdentity()
  const target = await udpServer(answer)
  const { listener, stats } = await startMasqueProxy({ cert: id.certPath, key: id.keyPath, allow: allow(target.port) })
  const client = await connect(listener.localAddress, { ca: id.certPath, serverName: 'localhost', settings: { enableDgram: true } })
  t.teardown(async () => {
    await client.close()
    await listener.close()
    await target.close()
  })
  return { target, stats, client, flows: flowsOf(client) }
}

async function nextReply(tunnel: AsyncIterable<Buffer>, ms = 3000): Promise<Buffer | null> {
  const iterator = tunnel[Symbol.asyncIterator]()
  return Promise.race([iterator.next().then((r) => (r.done ? null : r.value)), sleep(ms).then(() => null)])
}

test('a DNS-like query goes through the proxy to a UDP server and its answer comes back', async (t) => {
  const { client, flows, target, stats } = await proxyAndClient(t, (port) => [{ address: '127.0.0.1', port }], dnsAnswer)
  const tunnel = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  t.is(tunnel.status, 200)
  const query = dnsQuery(0x5a17, 'example.test')
  await tunnel.send(query)
  const reply = await nextReply(tunnel)
  t.truthy(reply, 'no answer came back')
  t.is(reply!.readUInt16BE(0), 0x5a17)
  t.is(reply!.readUInt16BE(2) & 0x8000, 0x8000)
  t.deepEqual([...reply!.subarray(-4)], [127, 0, 0, 1])
  t.deepEqual(target.received[0], query)
  t.is(stats.tunnels, 1)
  await tunnel.close()
})

test('1,000 datagrams through the proxy to a UDP echo server: what arrives is counted at every hop', async (t) => {
  const { client, flows, target, stats } = await proxyAndClient(t, (port) => [{ address: '127.0.0.1', port }], (msg) => msg)
  const tunnel = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  const echoes = new Set<string>()
  const collecting = (async () => {
    for await (const reply of tunnel) echoes.add(reply.toString())
  })()
  for (let i = 0; i < 1000; i++) {
    await tunnel.send(Buffer.from(`datagram ${i}`))
    if (i % 50 === 49) await sleep(2)
  }
  for (let i = 0; i < 100 && echoes.size < 1000; i++) await sleep(20)
  // Datagrams are unreliable even on loopback; each hop may only lose some.
  t.true(target.received.length >= 950, `the target got ${target.received.length}; the proxy forwarded ${stats.toTarget}`)
  t.true(target.received.length <= 1000)
  t.true(echoes.size >= 0.95 * target.received.length, `${echoes.size} echoes of ${target.received.length}`)
  for (const echo of echoes) t.regex(echo, /^datagram \d+$/)
  // The proxy forwarded at least what the target got, and never more than was sent.
  t.true(stats.toTarget >= target.received.length && stats.toTarget <= 1000, `proxy forwarded ${stats.toTarget}`)
  await tunnel.close()
  await collecting
})

test('a DATAGRAM capsule on the request stream reaches the target too', async (t) => {
  const { client, flows, target } = await proxyAndClient(t, (port) => [{ address: '127.0.0.1', port }], (msg) => Buffer.concat([Buffer.from('re:'), msg]))
  const tunnel = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  await tunnel.sendCapsule(Buffer.from('by capsule'))
  const reply = await nextReply(tunnel)
  t.is(reply?.toString(), 're:by capsule')
  t.is(target.received[0]?.toString(), 'by capsule')
  await tunnel.close()
})

test('capsule sizes: a 20,000-byte capsule (4-byte length) reaches the target; one over 64 KiB cancels only its tunnel', async (t) => {
  const { client, flows, target, stats } = await proxyAndClient(t, (port) => [{ address: '127.0.0.1', port }], () => Buffer.from('ok'))
  const big = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  const payload = Buffer.alloc(20_000, 7)
  await big.sendCapsule(payload)
  t.is((await nextReply(big))?.toString(), 'ok')
  t.deepEqual(target.received[0], payload)
  await big.close()
  const huge = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  await huge.sendCapsule(Buffer.alloc(70_000))
  for (let waited = 0; stats.failed === 0 && waited < 3000; waited += 20) await sleep(20)
  t.is(stats.failed, 1)
  t.is(target.received.length, 1, 'nothing of the oversized capsule went out')
  const after = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  await after.send(Buffer.from('again'))
  t.is((await nextReply(after))?.toString(), 'ok')
  await after.close()
})

test('QUIC varints round-trip at every length boundary (RFC 9000 §16)', (t) => {
  for (const [value, length] of [[0, 1], [63, 1], [64, 2], [16_383, 2], [16_384, 4], [2 ** 30 - 1, 4]] as const) {
    const bytes = varint(value)
    t.is(bytes.length, length, `varint(${value})`)
    t.deepEqual(readVarint(bytes, 0), [value, length])
  }
  t.throws(() => varint(2 ** 30), { instanceOf: RangeError })
  t.throws(() => varint(-1), { instanceOf: RangeError })
})

test('the proxy refuses targets off its allow-list (403), malformed templates (400) and other methods (501)', async (t) => {
  const { client, flows, target, stats } = await proxyAndClient(t, (port) => [{ address: '127.0.0.1', port }], (msg) => msg)
  const other = await udpServer((msg) => msg)
  t.teardown(() => other.close())
  await t.throwsAsync(openUdpTunnel(client, flows, '127.0.0.1', other.port), { message: /answered 403/ })
  await t.throwsAsync(openUdpTunnel(client, flows, '192.0.2.1', 53), { message: /answered 403/ })
  await t.throwsAsync(openUdpTunnel(client, flows, '127.0.0.1', 0), { message: /answered 400/ })
  const get = await (client as ClientH3Controller).request({ path: '/' })
  t.is(get.status, 501)
  await get.body.bytes()
  // A host that is not valid percent-encoding is a 400 that says so, not a failed tunnel.
  const badHost = await (client as ClientH3Controller).request({
    method: 'CONNECT',
    path: '/.well-known/masque/udp/%E0%A4%A/53/',
    headers: [[':protocol', 'connect-udp'], ['capsule-protocol', '?1']],
  })
  t.is(badHost.status, 400)
  t.regex(badHost.headers.find(([n]) => n === 'proxy-status')?.[1] ?? '', /not valid percent-encoding/)
  await badHost.body.bytes().catch(() => {})
  t.is(stats.failed, 0)
  t.is(other.received.length, 0)
  t.is(stats.refused, 4)
  t.is(stats.tunnels, 0)
  // The allowed one still works on the same connection.
  const tunnel = await openUdpTunnel(client, flows, '127.0.0.1', target.port)
  await tunnel.send(Buffer.from('still here'))
  t.is((await nextReply(tunnel))?.toString(), 'still here')
  await tunnel.close()
})

test('an empty allow-list refuses everything', async (t) => {
  const { client, flows, target, stats } = await proxyAndClient(t, () => [], (msg) => msg)
  await t.throwsAsync(openUdpTunnel(client, flows, '127.0.0.1', target.port), { message: /answered 403/ })
  t.is(target.received.length, 0)
  t.is(stats.refused, 1)
})
