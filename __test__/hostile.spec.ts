// Hostile peers, the first ones (issue 18): raw UDP from the test at a real
// server on loopback. Each: the server stays up and a well-behaved client
// served at the same time gets its response (latency in t.log). And the
// amplification bound: before a client's address is validated, the server
// sends at most 3x what it received from it (RFC 9000 §8.1).
import test from 'ava'
import { randomBytes } from 'node:crypto'
import { ConnectionParams, type QuicListener, ServerH3Driver, connect, listen } from 'tokio-quiche'
import { fetchText, latencySummary as summary, servedDuring, sleep, startServer, testIdentity } from './helpers.js'
import { fakeInitial, rawPeer, realInitial, sendTo } from './quic-packets.js'

const answer = async (req: { send: { respond(h: [string, string][], b: string): Promise<void> } }) => req.send.respond([[':status', '200']], 'ok')

let baseline: number[] = []
test.serial('baseline: latency of a new connection + request with nobody attacking', async (t) => {
  const server = await startServer(answer)
  t.teardown(() => server.close())
  baseline = await servedDuring(server, async () => void (await sleep(500)))
  t.true(baseline.length > 0)
  t.log(summary(baseline))
})

const attacks: [string, (address: string) => Promise<void>][] = [
  ['garbage datagrams (2,000 of 1-1400 random bytes)', async (address) => {
    const peer = await rawPeer()
    for (let i = 0; i < 2000; i++) {
      await sendTo(peer.socket, address, randomBytes(1 + ((i * 7919) % 1400)))
      if (i % 100 === 0) await sleep(5)
    }
    await peer.close()
  }],
  ['truncated Initials (headers cut at every length, and a Length beyond the datagram)', async (address) => {
    const peer = await rawPeer()
    const whole = fakeInitial(1200)
    for (let round = 0; round < 20; round++) {
      for (let cut = 1; cut < 40; cut++) await sendTo(peer.socket, address, whole.subarray(0, cut))
      await sendTo(peer.socket, address, fakeInitial(1200).subarray(0, 600))
      await sleep(5)
    }
    await peer.close()
  }],
  ['oversized and undersized Initials (9,000 and 60,000 bytes; 200 bytes)', async (address) => {
    const peer = await rawPeer()
    for (let i = 0; i < 50; i++) {
      await sendTo(peer.socket, address, fakeInitial(9000))
      await sendTo(peer.socket, address, fakeInitial(60_000))
      await sendTo(peer.socket, address, fakeInitial(200))
      await sleep(5)
    }
    await peer.close()
  }],
  ['an Initial flood from 200 source ports (20 each, 4,000 in all)', async (address) => {
    const peers = await Promise.all(Array.from({ length: 200 }, () => rawPeer()))
    for (let round = 0; round < 20; round++) {
      await Promise.all(peers.map((p) => sendTo(p.socket, address, fakeInitial(1200))))
      await sleep(10)
    }
    await Promise.all(peers.map((p) => p.close()))
  }],
]

for (const [what, attack] of attacks) {
  test.serial(`${what}: the server stays up and serves a well-behaved client meanwhile`, async (t) => {
    const server = await startServer(answer)
    t.teardown(() => server.close())
    const latencies = await servedDuring(server, () => attack(server.address))
    t.log(`${summary(latencies)} (baseline median ${[...baseline].sort((a, b) => a - b)[baseline.length >> 1]?.toFixed(1)} ms)`)
    // Still up afterwards too.
    t.is(await fetchText(server.address, { serverName: 'localhost', ca: server.identity.cert }), 'ok')
  })
}

/** Our H3 client's first datagram. */
const h3Initial = () => realInitial((address) => connect(address, { serverName: 'localhost', insecureSkipVerify: true, settings: { handshakeTimeoutMs: 300 } }))

/** Replays `initial` once from a fresh port and counts what comes back in `ms` (retransmissions included). */
async function bytesBack(address: string, initial: Buffer, ms: number): Promise<{ packets: number; bytes: number }> {
  const peer = await rawPeer()
  await sendTo(peer.socket, address, initial)
  await sleep(ms)
  await peer.close()
  return { packets: peer.received.length, bytes: peer.received.reduce((n, d) => n + d.length, 0) }
}

test.serial('amplification: to an unvalidated address the server sends at most 3x what it received', async (t) => {
  const initial = await h3Initial()
  // With Retry (the default): one Retry, smaller than the Initial.
  const validating = await startServer(answer)
  t.teardown(() => validating.close())
  const retry = await bytesBack(validating.address, initial, 1500)
  t.is(retry.packets, 1)
  t.true(retry.bytes <= 3 * initial.length)
  // Without Retry the server starts the handshake (its certificate flight is
  // bigger than 3x the Initial) and must stop at the limit, PTO resends included.
  const open = await startServer(answer, { settings: { disableClientIpValidation: true, handshakeTimeoutMs: 2000 } })
  const handshake = await bytesBack(open.address, initial, 3000)
  t.true(handshake.packets > 0, 'the replayed Initial was accepted: the server answered')
  t.true(handshake.bytes <= 3 * initial.length, `${handshake.bytes} bytes back for ${initial.length}`)
  t.log(`Initial ${initial.length} B; Retry on: ${retry.bytes} B back (${(retry.bytes / initial.length).toFixed(2)}x); ` +
    `Retry off: ${handshake.bytes} B in ${handshake.packets} datagrams over 3 s (${(handshake.bytes / initial.length).toFixed(2)}x)`)
  await open.close()
})

for (const startH3 of [false, true]) {
  test.serial(`a handshake that never finishes does not hold listener.close() (${startH3 ? 'startH3()' : 'accept() + start()'})`, async (t) => {
    const initial = await h3Initial()
    // handshakeTimeoutMs at its 10 s default: close() used to wait that long (measured 9.5 s).
    const server = await startServer(answer, { settings: { disableClientIpValidation: true }, startH3 })
    const peer = await rawPeer()
    t.teardown(() => peer.close())
    await sendTo(peer.socket, server.address, initial)
    for (let i = 0; i < 100 && peer.received.length === 0; i++) await sleep(10)
    t.true(peer.received.length > 0, 'the server started the handshake')
    const closing = performance.now()
    await server.close()
    const ms = performance.now() - closing
    t.log(`close() with a half-open handshake took ${ms.toFixed(0)} ms`)
    t.true(ms < 1000, `close() took ${ms.toFixed(0)} ms`)
    // The port is released too: a new listener binds it.
    const id = await testIdentity()
    const params = ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath } })
    let rebound: QuicListener | undefined
    for (let i = 0; i < 50 && !rebound; i++) rebound = (await listen([server.address], params).catch(() => sleep(20).then(() => [])))[0]
    t.truthy(rebound, `${server.address} was not released`)
    await rebound?.close()
  })
}

test.serial('close() on a server connection mid-handshake ends it at once', async (t) => {
  const id = await testIdentity()
  const params = ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath }, settings: { disableClientIpValidation: true } })
  const [listener] = await listen(['127.0.0.1:0'], params)
  t.teardown(() => listener!.close())
  const peer = await rawPeer()
  t.teardown(() => peer.close())
  await sendTo(peer.socket, listener!.localAddress, await h3Initial())
  const { driver, controller } = ServerH3Driver.new()
  ;(await listener!.accept())!.start(driver)
  const closing = performance.now()
  const info = await controller.close()
  const ms = performance.now() - closing
  t.true(ms < 500, `close() took ${ms.toFixed(0)} ms (handshakeTimeoutMs is 10 s)`)
  t.is(info.localApplicationCode, undefined, 'nothing was sent: the handshake was dropped')
  t.true(controller.isClosed)
})
