// Raw QUIC (ApplicationOverQuic): streams and datagrams of a protocol of
// our own, over real UDP on loopback with real TLS.
import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ConnectionParams,
  type QuicConnectOptions,
  type QuicSettings,
  type QuicStream,
  type RawQuicConnection,
  StreamResetError,
  StreamStoppedError,
  TokioQuicheError,
  connectQuic,
  listen,
} from 'tokio-quiche'
import { sendAll } from '../examples/hq-interop.js'
import { testIdentity } from './helpers.js'
import { rawPeer, realInitial, sendTo } from './quic-packets.js'

interface RawServer {
  address: string
  connections: RawQuicConnection[]
  close(): Promise<void>
}

/** A raw QUIC server on 127.0.0.1 speaking `alpn`, running `app` per connection. */
async function rawServer(app: (conn: RawQuicConnection) => unknown, options: { alpn?: string[]; settings?: QuicSettings } = {}): Promise<RawServer> {
  const id = await testIdentity()
  const params = ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath }, alpn: options.alpn ?? ['test-proto'], ...(options.settings ? { settings: options.settings } : {}) })
  const [listener] = await listen(['127.0.0.1:0'], params)
  const connections: RawQuicConnection[] = []
  void (async () => {
    for await (const conn of listener!.startRaw()) {
      connections.push(conn)
      void Promise.resolve(app(conn)).catch((err) => console.error('raw app failed', err))
    }
  })()
  return { address: listener!.localAddress, connections, close: () => listener!.close() }
}

async function client(server: RawServer, options: Partial<QuicConnectOptions> = {}): Promise<RawQuicConnection> {
  const id = await testIdentity()
  return connectQuic(server.address, { alpn: 'test-proto', ca: id.certPath, serverName: 'localhost', ...options })
}

/**
 * Echoes every bidirectional stream: what arrives goes back, FIN included
 * (`sendAll` keeps the FIN on the last chunk: quiche 0.30 can lose a bare
 * FIN written after the stream's data was acknowledged, cloudflare/quiche#2525).
 */
async function echo(conn: RawQuicConnection): Promise<void> {
  for await (const stream of conn) void sendAll(stream, stream).catch(() => {})
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

/** Settles within `ms`, or fails the test with `what`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms)))
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

test('echo: bytes come back in order with FIN; ALPN, addresses and stats are the connection\'s', async (t) => {
  const server = await rawServer(echo)
  const conn = await client(server)
  t.is(conn.applicationProtocol, 'test-proto')
  t.is(conn.peerAddress, server.address)
  const stream = await conn.openBidi()
  t.true(stream.bidirectional)
  t.false(stream.remote)
  t.is(stream.id, 0)
  const parts = Array.from({ length: 20 }, (_, i) => Buffer.from(`part ${i};`))
  for (const part of parts.slice(0, -1)) await stream.write(part)
  await stream.end(parts.at(-1))
  t.is(await stream.text(), Buffer.concat(parts).toString())
  t.false(stream.readable)
  await server.connections[0]!.established
  t.is(server.connections[0]!.applicationProtocol, 'test-proto')
  const stats = await conn.stats()
  t.true(stats.bytesSent > 400 && stats.bytesReceived > 400)
  const info = await conn.close({ errorCode: 7, reason: 'done' })
  t.is(info.localApplicationCode, 7)
  const serverInfo = await server.connections[0]!.closed
  t.is(serverInfo.peerApplicationCode, 7)
  await server.close()
})

/** Length-prefixed messages: a 4-byte big-endian length, then the message. */
async function* messages(stream: QuicStream): AsyncGenerator<Buffer> {
  let buffered = Buffer.alloc(0)
  for await (const chunk of stream) {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32BE(0)) {
      const length = buffered.readUInt32BE(0)
      yield buffered.subarray(4, 4 + length)
      buffered = buffered.subarray(4 + length)
    }
  }
  if (buffered.length > 0) throw new Error(`${buffered.length} bytes of a truncated message`)
}

function frame(message: Uint8Array): Buffer {
  const header = Buffer.alloc(4)
  header.writeUInt32BE(message.length)
  return Buffer.concat([header, message])
}

test('length-prefixed messages: the server answers each message with its SHA-256, across chunk boundaries', async (t) => {
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      void sendAll(stream, (async function* () {
        for await (const message of messages(stream)) yield frame(Buffer.from(sha256(message)))
      })())
    }
  })
  const conn = await client(server)
  const stream = await conn.openBidi()
  const sent = [0, 1, 3, 1000, 70_000, 300_000, 5].map((n) => randomBytes(n))
  // Written in odd slices so messages straddle writes.
  const wire = Buffer.concat(sent.map(frame))
  const writing = (async () => {
    for (let at = 0; at < wire.length; at += 7919) await stream.write(wire.subarray(at, at + 7919))
    await stream.end()
  })()
  const answers: string[] = []
  for await (const answer of messages(stream)) answers.push(answer.toString())
  await writing
  t.deepEqual(answers, sent.map(sha256))
  await conn.close()
  await server.close()
})

test('1,000 streams on one connection, 100 concurrent at most by the server\'s limit, each echoed', async (t) => {
  // Streams the server has and has not finished echoing: its quiche holds each one's credit longer.
  let serving = 0
  let servingPeak = 0
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      servingPeak = Math.max(servingPeak, ++serving)
      void sendAll(stream, stream).finally(() => serving--)
    }
  })
  const conn = await client(server)
  let open = 0
  let openPeak = 0
  const results = await Promise.all(
    Array.from({ length: 1000 }, async (_, i) => {
      const stream = await conn.openBidi()
      openPeak = Math.max(openPeak, ++open)
      const body = Buffer.from(`stream ${i} `.repeat(1 + (i % 50)))
      await stream.end(body)
      const back = await stream.bytes()
      open--
      return back.equals(body) ? stream.id : -1
    }),
  )
  // The opens run as wide as the limit lets them (more here, as the client reads an echo after its
  // quiche acknowledged it, which returns the credit), and the server never has more than its 100.
  t.true(openPeak >= 100, `the client had at most ${openPeak} streams open at once`)
  t.true(servingPeak <= 100, `the server echoed ${servingPeak} streams at once`)
  t.false(results.includes(-1))
  t.is(new Set(results).size, 1000)
  t.deepEqual([...results].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i * 4))
  await conn.close()
  await server.close()
})

test('100 MiB each way: SHA-256 of what the server received and of what came back', async (t) => {
  const size = 100 * 1024 * 1024
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      // Receives, answers with the hash, then sends `size` bytes of its own.
      const hash = createHash('sha256')
      for await (const chunk of stream) hash.update(chunk)
      await stream.write(hash.digest('hex'))
      const block = Buffer.alloc(1024 * 1024, 0xab)
      for (let sent = block.length; sent < size; sent += block.length) await stream.write(block)
      await stream.end(block)
    }
  })
  const conn = await client(server)
  const stream = await conn.openBidi()
  const block = randomBytes(1024 * 1024)
  const local = createHash('sha256')
  for (let sent = block.length; sent < size; sent += block.length) {
    local.update(block)
    await stream.write(block)
  }
  local.update(block)
  await stream.end(block)
  const remote = createHash('sha256')
  // The first 64 bytes are the server's hex digest of the upload.
  let head = Buffer.alloc(0)
  let bytes = 0
  for await (const chunk of stream) {
    const take = Math.min(64 - head.length, chunk.length)
    if (take > 0) head = Buffer.concat([head, chunk.subarray(0, take)])
    remote.update(chunk.subarray(take))
    bytes += chunk.length - take
  }
  t.is(head.toString(), local.digest('hex'))
  t.is(bytes, size)
  t.is(remote.digest('hex'), sha256(Buffer.alloc(size, 0xab)))
  await conn.close()
  await server.close()
})

test('unidirectional streams both ways: write-only here, read-only there', async (t) => {
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      t.false(stream.bidirectional)
      t.true(stream.remote)
      const text = await stream.text()
      const reply = await conn.openUni()
      await reply.end(`got ${text}`)
      // The peer's uni stream cannot be written.
      const err = await t.throwsAsync(stream.write('x'), { instanceOf: TokioQuicheError })
      t.is(err?.code, 'ERR_STREAM_CLOSED')
    }
  })
  const conn = await client(server)
  const out = await conn.openUni()
  t.is(out.id, 2)
  t.false(out.readable)
  t.throws(() => out.readableStream(), { message: /cannot be read/ })
  await out.end('hello')
  const [incoming] = await (async () => {
    for await (const stream of conn) return [stream]
    return []
  })()
  t.is(incoming!.id, 3)
  t.is(await incoming!.text(), 'got hello')
  await conn.close()
  await server.close()
})

test('WHATWG views: readableStream() and writableStream() carry the same bytes', async (t) => {
  const server = await rawServer(echo)
  const conn = await client(server)
  const stream = await conn.openBidi()
  const body = randomBytes(3 * 1024 * 1024)
  const writing = new Blob([body]).stream().pipeTo(stream.writableStream())
  const back = Buffer.from(await new Response(stream.readableStream()).arrayBuffer())
  await writing
  t.is(sha256(back), sha256(body))
  await conn.close()
  await server.close()
})

test('datagrams: round trip, then a reader that does not read loses what overflows its 2,048-datagram queue, counted', async (t) => {
  let serverConn: RawQuicConnection | undefined
  const server = await rawServer((conn) => {
    serverConn = conn
  })
  const conn = await client(server)
  await within(5000, 'server connection', (async () => {
    while (!serverConn) await sleep(10)
    await serverConn.established
  })())
  const remote = serverConn!.datagrams
  t.true(conn.datagrams.maxSize > 1000)
  await conn.datagrams.send('ping')
  t.is(String(await remote.recv()), 'ping')
  await remote.send(Buffer.from('pong'))
  t.is(String(await conn.datagrams.recv()), 'pong')

  // Nobody reads on the server while 5,000 go out, paced so the UDP socket keeps up.
  const sent = 5000
  for (let i = 0; i < sent; i++) {
    await conn.datagrams.send(Buffer.from(`d${i}`))
    if (i % 100 === 99) await sleep(5)
  }
  // A few may be lost on the way (UDP), counted by nobody; 100 is the slack.
  await within(5000, 'drops counted', (async () => {
    while (remote.droppedIncoming + 2048 + conn.datagrams.droppedOutgoing < sent - 100) await sleep(20)
  })())
  let received = 0
  while (received < 2048) {
    const dgram = await within(2000, 'queued datagram', remote.recv())
    t.regex(String(dgram), /^d\d+$/)
    received++
  }
  t.true(remote.droppedIncoming > 0, `dropped ${remote.droppedIncoming}`)
  t.true(received + remote.droppedIncoming + conn.datagrams.droppedOutgoing <= sent)
  t.true(remote.droppedIncoming >= sent - 2048 - conn.datagrams.droppedOutgoing - 100, `only ${remote.droppedIncoming} counted as dropped`)

  // Too large for the path: refused at send(), naming the limit.
  const tooBig = Buffer.alloc(conn.datagrams.maxSize + 1)
  const err = await t.throwsAsync(conn.datagrams.send(tooBig), { instanceOf: TokioQuicheError })
  t.is(err?.code, 'ERR_INVALID_ARG')
  t.regex(err!.message, new RegExp(`^data: a datagram carries at most ${conn.datagrams.maxSize} bytes`))
  await conn.close()
  const dgramAfter = await t.throwsAsync(conn.datagrams.send('late'), { instanceOf: TokioQuicheError })
  t.is(dgramAfter?.code, 'ERR_CLOSED')
  await server.close()
})

test('datagrams to a peer that takes none are refused with a clear error', async (t) => {
  const server = await rawServer(echo, { settings: { enableDgram: false } })
  const conn = await client(server)
  t.is(conn.datagrams.maxSize, 0)
  const err = await t.throwsAsync(conn.datagrams.send('x'), { instanceOf: TokioQuicheError })
  t.is(err?.code, 'ERR_INVALID_ARG')
  t.regex(err!.message, /accepts no datagrams/)
  await conn.close()
  await server.close()
})

test('stream limit: the third open waits for the peer\'s credit and is released when a stream ends', async (t) => {
  const held: QuicStream[] = []
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) held.push(stream)
  }, { settings: { initialMaxStreamsBidi: 2 } })
  const conn = await client(server)
  const first = await conn.openBidi()
  const second = await conn.openBidi()
  await first.write('a')
  await second.write('b')
  let third: QuicStream | undefined
  const opening = conn.openBidi().then((s) => (third = s))
  await sleep(300)
  t.is(third, undefined, 'opened beyond the limit')
  // Both directions of the first stream end: the server's quiche returns its credit.
  await first.end()
  await within(5000, 'server sees the streams', (async () => {
    while (held.length < 2) await sleep(10)
  })())
  // Stream 4's bytes may arrive before stream 0's.
  const firstThere = held.find((s) => s.id === first.id)!
  t.is(await firstThere.text(), 'a')
  await firstThere.end('done')
  t.is(await first.text(), 'done')
  await within(5000, 'open after credit', opening)
  t.is(third!.id, 8)
  // An abandoned wait rejects with the signal's reason.
  const controller = new AbortController()
  const waiting = conn.openBidi({ signal: controller.signal })
  controller.abort(new Error('gave up'))
  await t.throwsAsync(waiting, { message: 'gave up' })
  await conn.close()
  await server.close()
})

test('reset and stopSending carry their codes to the peer', async (t) => {
  const seen: Promise<unknown>[] = []
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      if (stream.id === 0) seen.push(stream.bytes().catch((err) => err))
      if (stream.id === 4) {
        stream.stopSending(0x77)
        seen.push(Promise.resolve('stopped'))
      }
    }
  })
  const conn = await client(server)
  const resetOne = await conn.openBidi()
  await resetOne.write('partial')
  resetOne.reset(42)
  t.false(resetOne.writable)
  const stopped = await conn.openBidi()
  await stopped.write('x')
  // Writes fail once the STOP_SENDING has arrived, and the signal says so.
  const failure = await within(5000, 'write after STOP_SENDING', (async () => {
    for (;;) {
      await stopped.write(Buffer.alloc(1024))
      await sleep(5)
    }
  })().catch((err) => err))
  // The peer's code reaches the writer: in the write's error and the signal's reason.
  t.true(failure instanceof StreamStoppedError, String(failure))
  t.is((failure as StreamStoppedError).code, 'ERR_STREAM_CLOSED')
  t.is((failure as StreamStoppedError).errorCode, 0x77)
  t.true(stopped.signal.aborted)
  t.is((stopped.signal.reason as StreamStoppedError).errorCode, 0x77)
  await within(5000, 'server side', (async () => {
    while (seen.length < 2) await sleep(10)
  })())
  const resetSeen = await seen[0]
  t.true(resetSeen instanceof StreamResetError)
  t.is((resetSeen as StreamResetError).errorCode, 42)
  await conn.close()
  await server.close()
})

test('back-pressure: a peer that stops reading stops the writer; reading again lets it finish', async (t) => {
  let resume!: () => void
  const resumed = new Promise<void>((resolve) => (resume = resolve))
  const got = createHash('sha256')
  let gotBytes = 0
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      await resumed
      for await (const chunk of stream) {
        got.update(chunk)
        gotBytes += chunk.length
      }
      await stream.end('ok')
    }
  }, { settings: { initialMaxStreamDataBidiRemote: 256 * 1024, maxStreamWindow: 256 * 1024 } })
  const conn = await client(server)
  const stream = await conn.openBidi()
  const block = Buffer.alloc(64 * 1024, 1)
  let accepted = 0
  const writer = (async () => {
    for (let i = 0; i < 160; i++) {
      await stream.write(block)
      accepted += block.length
    }
    await stream.end()
  })()
  await sleep(1000)
  // The stream window (256 KiB), the bridge's channels (16 frames each way) and quiche's send buffer bound it.
  t.true(accepted < 4 * 1024 * 1024, `the writer got ${accepted} bytes ahead of a reader that reads nothing`)
  t.true(accepted < 160 * block.length)
  resume()
  await within(20_000, 'writer after the reader resumed', writer)
  t.is(await stream.text(), 'ok')
  t.is(gotBytes, 160 * block.length)
  t.is(got.digest('hex'), sha256(Buffer.alloc(160 * block.length, 1)))
  await conn.close()
  await server.close()
})

test('close() with streams in flight settles every promise', async (t) => {
  const server = await rawServer(async (conn) => {
    // Reads nothing and answers nothing.
    for await (const _ of conn);
  }, { settings: { initialMaxStreamsBidi: 3, initialMaxStreamDataBidiRemote: 64 * 1024, maxStreamWindow: 64 * 1024 } })
  const conn = await client(server)
  const streams = await Promise.all([conn.openBidi(), conn.openBidi(), conn.openBidi()])
  const pending: Promise<unknown>[] = [
    conn.openBidi(),
    streams[0]!.read(),
    streams[1]!.bytes(),
    (async () => {
      for (;;) await streams[2]!.write(Buffer.alloc(64 * 1024))
    })(),
    (async () => {
      for await (const _ of conn);
    })(),
  ]
  await sleep(300)
  const info = await within(5000, 'close', conn.close())
  t.is(info.localApplicationCode, 0)
  const results = await within(5000, 'pending promises', Promise.allSettled(pending))
  t.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'rejected', 'rejected', 'fulfilled'])
  for (const result of results.slice(0, 4)) {
    t.true((result as PromiseRejectedResult).reason instanceof TokioQuicheError, String((result as PromiseRejectedResult).reason))
  }
  await t.throwsAsync(conn.openBidi(), { instanceOf: TokioQuicheError, message: /closed/ })
  await server.close()
})

test('bad input: unknown ALPN, writes after end, reset codes out of range, missing or doubled alpn', async (t) => {
  const server = await rawServer(echo)
  const id = await testIdentity()
  // The server refuses with no_application_protocol (CRYPTO_ERROR 0x178).
  // The client hears the close but not its code (tokio-quiche's connector
  // drops it): it fails once quiche has drained it, about 3 s, well before
  // its handshake deadline, naming what it offered.
  const started = Date.now()
  const refused = await t.throwsAsync(
    connectQuic(server.address, { alpn: 'other-proto', ca: id.certPath, serverName: 'localhost', settings: { handshakeTimeoutMs: 20_000 } }),
    { instanceOf: TokioQuicheError },
  )
  t.is(refused?.code, 'ERR_CONNECT')
  t.regex(refused!.message, /closed during the handshake.*ALPN protocols offered, 'other-proto'/)
  t.true(Date.now() - started < 10_000, `refused after ${Date.now() - started} ms`)
  const serverSide = server.connections[0]!
  await t.throwsAsync(serverSide.established, { message: /before its handshake completed: TlsFail/ })
  t.is((await serverSide.closed).localTransportCode, 0x178)
  server.connections.length = 0

  const conn = await client(server)
  const stream = await conn.openBidi()
  await stream.end('bye')
  const late = await t.throwsAsync(stream.write('more'), { instanceOf: TokioQuicheError })
  t.is(late?.code, 'ERR_STREAM_FINISHED')
  for (const code of [-1, 1.5, 2 ** 62, Number.NaN, '3' as unknown as number]) {
    const err = t.throws(() => stream.reset(code), { instanceOf: TokioQuicheError })
    t.is(err?.code, 'ERR_INVALID_ARG')
    t.regex(err!.message, /^code: /)
  }
  t.throws(() => stream.stopSending(-5), { message: /^code: / })
  t.is(await stream.text(), 'bye')

  const missing = await t.throwsAsync(connectQuic(server.address, {} as QuicConnectOptions), { instanceOf: TokioQuicheError })
  t.regex(missing!.message, /^options\.alpn: /)
  await t.throwsAsync(connectQuic(server.address, { alpn: [] }), { message: /^options\.alpn: / })
  await t.throwsAsync(connectQuic(server.address, { alpn: 'x', settings: { alpn: ['y'] } }), { message: /^options\.settings\.alpn: / })
  await t.throwsAsync(connectQuic(server.address, { alpn: 'x', http3: {} } as QuicConnectOptions), { message: /^options\.http3: / })
  await t.throwsAsync(connectQuic('', { alpn: 'x' }), { message: /^address: / })
  t.throws(() => ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath }, alpn: ['a'], settings: { alpn: ['b'] } }), { message: /^alpn: / })
  t.throws(() => ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath }, alpn: ['x'.repeat(256)] }), { message: /^alpn: / })
  await t.throwsAsync(conn.openBidi({ signal: 'no' as unknown as AbortSignal }), { message: /^options\.signal: / })
  await conn.close()
  await server.close()
})

test('the certificate is verified: an untrusted server fails the raw handshake', async (t) => {
  const server = await rawServer(echo)
  const err = await t.throwsAsync(connectQuic(server.address, { alpn: 'test-proto', serverName: 'localhost' }), { instanceOf: TokioQuicheError })
  t.is(err?.code, 'ERR_TLS_CERT_REJECTED')
  await server.close()
})

test('STOP_SENDING reaches a writer that is not writing, and leaving a for-await loop early sends it (code 0)', async (t) => {
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      const first = await stream.read()
      if (first?.toString() === 'stop me') stream.stopSending(0x99)
      else {
        // Reads one chunk, then leaves the loop.
        for await (const _ of stream) break
      }
    }
  })
  const conn = await client(server)
  const idle = await conn.openBidi()
  await idle.write('stop me')
  // Nothing more is written: only the STOP_SENDING can abort the signal.
  await within(5000, 'signal of an idle writer', new Promise((resolve) => idle.signal.addEventListener('abort', resolve)))
  t.true(idle.signal.reason instanceof StreamStoppedError)
  t.is((idle.signal.reason as StreamStoppedError).errorCode, 0x99)
  t.false(idle.writable)
  const late = await t.throwsAsync(idle.write('more'), { instanceOf: StreamStoppedError })
  t.is(late?.errorCode, 0x99)

  const left = await conn.openBidi()
  const failure = await within(5000, 'writes after the reader left', (async () => {
    for (;;) await left.write(Buffer.alloc(16 * 1024))
  })().catch((err) => err))
  t.true(failure instanceof StreamStoppedError, String(failure))
  t.is((failure as StreamStoppedError).errorCode, 0)
  await conn.close()
  await server.close()
})

test('peer uni streams the app has not taken are bounded: past 100, new ones stay unread and hold the peer\'s credit', async (t) => {
  let take!: () => void
  const taking = new Promise<void>((resolve) => (take = resolve))
  const bodies = new Map<number, string>()
  const server = await rawServer(async (conn) => {
    await taking
    for await (const stream of conn) bodies.set(stream.id, await stream.text())
  })
  const conn = await client(server)
  let opened = 0
  const sends = Array.from({ length: 300 }, async (_, i) => {
    const stream = await conn.openUni()
    opened++
    await stream.end(`uni ${i}`)
  })
  await sleep(1500)
  // 100 of the server's uni limit were read (and credited back) and wait for the app; 100 more hold their credit unread.
  t.is(opened, 200)
  take()
  await within(10_000, 'all 300 opened and sent', Promise.all(sends))
  await within(10_000, 'the server took all 300', (async () => {
    while (bodies.size < 300) await sleep(20)
  })())
  const expected = new Map(Array.from({ length: 300 }, (_, i) => [2 + 4 * i, `uni ${i}`]))
  t.deepEqual([...bodies].sort(([a], [b]) => a - b), [...expected])
  await conn.close()
  await server.close()
})

test.serial('2,000 idle streams do not slow the others: the driver reads a writer\'s channel when it writes, not at every wake-up', async (t) => {
  const idle = 2000
  const settings = { initialMaxStreamsBidi: idle + 100 }
  const server = await rawServer(async (conn) => {
    for await (const stream of conn) {
      void (async () => {
        const first = await stream.read()
        if (first?.toString() === 'echo') await stream.end(first)
      })()
    }
  }, { settings })
  const conn = await client(server, { settings })
  t.teardown(async () => {
    await conn.close()
    await server.close()
  })
  const echoes = async (n: number) => {
    const start = performance.now()
    for (let i = 0; i < n; i++) {
      const stream = await conn.openBidi()
      await stream.end('echo')
      t.is(await stream.text(), 'echo')
    }
    return (performance.now() - start) / n
  }
  const alone = await echoes(300)
  // Both ends now hold 2,000 streams whose writers wait.
  const held = []
  for (let i = 0; i < idle; i++) {
    const stream = await conn.openBidi()
    await stream.write('x')
    held.push(stream)
  }
  await sleep(300)
  const crowded = await echoes(300)
  t.log(`${alone.toFixed(2)} ms per echo alone, ${crowded.toFixed(2)} ms beside ${idle} idle streams`)
  // Polling every idle writer at each wake-up made this about 25 times slower.
  t.true(crowded < 4 * alone + 0.5, `${crowded.toFixed(2)} ms vs ${alone.toFixed(2)} ms`)
})

test('bad input: a datagram before the handshake is done, and an ALPN name over 255 bytes in UTF-8', async (t) => {
  const id = await testIdentity()
  const tls = { cert: id.certPath, privateKey: id.keyPath }
  // Without Retry, so that a replayed Initial starts a handshake, which cannot finish: its peer never answers.
  const [listener] = await listen(['127.0.0.1:0'], ConnectionParams.newServer({ tls, alpn: ['test-proto'], settings: { disableClientIpValidation: true } }))
  t.teardown(() => listener!.close())
  const stuck = await realInitial((address) => connectQuic(address, { alpn: 'test-proto', insecureSkipVerify: true, settings: { handshakeTimeoutMs: 300 } }))
  const peer = await rawPeer()
  t.teardown(() => peer.close())
  await sendTo(peer.socket, listener!.localAddress, stuck)
  const halfOpen = (await listener!.accept())!.startRaw()
  t.is(halfOpen.datagrams.maxSize, 0)
  const early = await t.throwsAsync(halfOpen.datagrams.send('early'), { instanceOf: TokioQuicheError })
  t.is(early?.code, 'ERR_INVALID_ARG')
  t.regex(early!.message, /^data: no datagram can go before the handshake is done \(await connection\.established\)/)
  // close() ends a handshake in progress at once (it took 3 s before).
  const closing = performance.now()
  await halfOpen.close()
  t.true(performance.now() - closing < 500, `close() mid-handshake took ${(performance.now() - closing).toFixed(0)} ms`)
  // A real client: the same connection object, once established, sends.
  const connecting = connectQuic(listener!.localAddress, { alpn: 'test-proto', ca: id.certPath, serverName: 'localhost' })
  const conn = (await listener!.accept())!.startRaw()
  await conn.established
  t.true(conn.datagrams.maxSize > 1000)
  const client = await connecting
  await conn.datagrams.send('after')
  t.is(String(await within(2000, 'datagram after the handshake', client.datagrams.recv())), 'after')
  await client.close()
  // 128 characters, 256 bytes: TLS carries ALPN names as bytes.
  const wide = 'é'.repeat(128)
  t.throws(() => ConnectionParams.newServer({ tls, alpn: [wide] }), { message: /^alpn: .*at most 255 bytes/ })
  await t.throwsAsync(connectQuic(listener!.localAddress, { alpn: wide }), { message: /^options\.alpn: .*at most 255 bytes/ })
})
