// QUIC v1 long-header packets for tests that talk raw UDP to the server
// (security.spec.ts, hostile.spec.ts, raw.spec.ts): hand-made ones, with
// enough header for the server to parse and a payload that is not a valid
// encrypted Initial, and real Initials caught from our clients.
import { randomBytes } from 'node:crypto'
import { type Socket, createSocket } from 'node:dgram'

/** A client Initial (RFC 9000 §17.2.2), `size` bytes in all, without a token; the payload is random. */
export function fakeInitial(size = 1200, dcid = randomBytes(8), scid = randomBytes(8)): Buffer {
  const head = Buffer.concat([Buffer.from([0xc3, 0, 0, 0, 1, dcid.length]), dcid, Buffer.from([scid.length]), scid, Buffer.from([0])])
  const rest = size - head.length - 2
  // Length as a 2-byte varint (0x4000 | n): packet number + payload.
  return Buffer.concat([head, Buffer.from([0x40 | (rest >> 8), rest & 0xff]), randomBytes(rest)])
}

/** A long-header packet's type: 0 Initial, 1 0-RTT, 2 Handshake, 3 Retry; null for a short header. */
export function longHeaderType(packet: Buffer): number | null {
  return packet[0]! & 0x80 ? (packet[0]! >> 4) & 0x03 : null
}

/** A UDP socket on loopback that records what comes back. */
export async function rawPeer(): Promise<{ socket: Socket; received: Buffer[]; close: () => Promise<void> }> {
  const socket = createSocket('udp4')
  const received: Buffer[] = []
  socket.on('message', (msg) => received.push(msg))
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  return { socket, received, close: () => new Promise<void>((resolve) => socket.close(() => resolve())) }
}

/** Sends `packet` to `address` (ip:port). */
export function sendTo(socket: Socket, address: string, packet: Buffer): Promise<void> {
  const i = address.lastIndexOf(':')
  return new Promise((resolve, reject) => socket.send(packet, Number(address.slice(i + 1)), address.slice(0, i), (err) => (err ? reject(err) : resolve())))
}

/**
 * A real client Initial: the first datagram of `connectTo(address)` (one of
 * our clients, with a short handshake timeout), caught by a socket that
 * never answers. Replayed to a server without Retry, it starts a handshake
 * that cannot finish.
 */
export async function realInitial(connectTo: (address: string) => Promise<unknown>): Promise<Buffer> {
  const sink = await rawPeer()
  await connectTo(`127.0.0.1:${sink.socket.address().port}`).catch(() => {})
  await sink.close()
  const initial = sink.received.find((d) => longHeaderType(d) === 0)
  if (!initial) throw new Error('the client sent no Initial')
  return initial
}
