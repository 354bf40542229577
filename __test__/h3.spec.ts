// HTTP/3 end to end over real UDP on 127.0.0.1: tokio-quiche server and
// client in this process, certificates verified.
import test from 'ava'
import { createHash } from 'node:crypto'
import { type InboundFrameStream, OutboundFrame, RequestRefusedError, type ServerH3Event, StreamResetError, bridgeCounters, connect } from 'tokio-quiche'
import { header, patternBytes, sha256, sleep, startServer } from './helpers.js'

test('100 concurrent GETs on one connection each get their own body', async (t) => {
  const server = await startServer(async (req) => {
    const path = header(req.headers, ':path')!
    await req.send.send(OutboundFrame.headers([[':status', '200'], ['x-path', path]]))
    await req.send.send(OutboundFrame.body(Buffer.from(`body for ${path} on stream ${req.streamId}`), true))
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.certPath })
  const responses = await Promise.all(
    Array.from({ length: 100 }, async (_, i) => {
      const res = await client.request({ path: `/item/${i}` })
      return { i, res, text: await res.body.text() }
    }),
  )
  const streamIds = new Set<number>()
  for (const { i, res, text } of responses) {
    t.is(res.status, 200)
    t.is(header(res.headers, 'x-path'), `/item/${i}`)
    t.is(text, `body for /item/${i} on stream ${res.streamId}`)
    streamIds.add(res.streamId)
  }
  t.is(streamIds.size, 100, 'every request had its own stream')
  await client.close()
  const leftover: string[] = []
  for await (const event of client.events()) leftover.push(event.type)
  t.deepEqual(
    leftover.filter((type) => type !== 'settings'),
    [],
    "request() keeps its streams' events out of events()",
  )
  await server.close()
})

test('recv() calls made before their frames arrive, mixed with ones answered at once, resolve in order', async (t) => {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200']])
    for (const part of ['one', 'two', 'three']) {
      await req.send.write(part)
      await sleep(20)
    }
    await req.send.end('four')
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const res = await client.request()
  // Six reads at once: the first may find bytes queued, the rest wait their turn behind it.
  const early = Array.from({ length: 6 }, () => res.body.recv())
  const frames = await Promise.all(early)
  await sleep(30)
  const later = await res.body.recv()
  const text = frames.map((f) => f?.data.toString() ?? '').join('')
  t.is(text + (later?.data.toString() ?? ''), 'onetwothreefour')
  const ends = [...frames, later].filter((f) => f === null || f.fin)
  t.true(ends.length >= 1 && ends[0] !== null && ends[0].fin, 'the frame with FIN comes before any null')
  t.is(await res.body.recv(), null, 'reads after the end resolve null')
})

test('a 10 MiB POST is echoed back intact (SHA-256 on both sides)', async (t) => {
  const upload = patternBytes(10 * 1024 * 1024, 7)
  let serverHash = ''
  let serverRecv: import('tokio-quiche').InboundFrameStream | undefined
  const server = await startServer(async (req) => {
    const hash = createHash('sha256')
    await req.send.sendHeaders([[':status', '200']])
    // Echo as we read: each chunk goes back before the next is read.
    for await (const chunk of req.recv.chunks()) {
      hash.update(chunk)
      await req.send.write(chunk)
    }
    serverHash = hash.digest('hex')
    serverRecv = req.recv
    await req.send.end()
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  // Stream the upload in 256 KiB pieces.
  async function* pieces() {
    for (let off = 0; off < upload.length; off += 256 * 1024) yield upload.subarray(off, off + 256 * 1024)
  }
  const res = await client.request({ method: 'POST', path: '/echo', body: pieces() })
  const echoed = await res.body.bytes()
  t.is(res.status, 200)
  t.is(echoed.length, upload.length)
  t.is(serverHash, sha256(upload), 'server saw the bytes the client sent')
  t.is(sha256(echoed), sha256(upload), 'client got the same bytes back')
  const audit = serverRecv!.auditStats()
  t.is(audit.bytesReceived, upload.length)
  t.is(audit.bytesSent, upload.length)
  t.is(audit.receivedFin, 'explicit')
  t.is(audit.sentFin, 'explicit')
  t.is(audit.receivedResetStreamCode, undefined)
  await client.close()
  await server.close()
})

test('a 10 MiB response streams in many chunks, in order', async (t) => {
  const payload = patternBytes(10 * 1024 * 1024, 3)
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200'], ['content-length', payload.length]])
    for (let off = 0; off < payload.length; off += 64 * 1024) await req.send.write(payload.subarray(off, off + 64 * 1024))
    await req.send.end()
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const res = await client.request({ path: '/big' })
  let chunks = 0
  const parts: Buffer[] = []
  for await (const frame of res.body) {
    if (frame.data.length > 0) {
      chunks++
      parts.push(frame.data)
    }
  }
  const body = Buffer.concat(parts)
  t.is(header(res.headers, 'content-length'), String(payload.length))
  t.true(chunks > 10, `body arrived in ${chunks} chunks`)
  t.is(sha256(body), sha256(payload))
  const live = await client.stats()
  t.true(live.bytesReceived >= payload.length, `${live.bytesReceived} bytes received`)
  t.true(live.packetsReceived > payload.length / 1500, `${live.packetsReceived} packets received`)
  t.true(live.rttMs !== undefined && live.rttMs > 0 && live.rttMs < 1000, `rtt ${live.rttMs} ms`)
  t.true((live.cwnd ?? 0) > 0)
  t.is(live.peerAddress, server.address)
  await client.close()
  const final = await client.stats()
  t.true(final.bytesReceived >= live.bytesReceived, 'after close, stats() gives the final counters')
  await server.close()
})

test('the raw controller API: requestSender, newOutboundRequest with bodyWriter, response events, trailers', async (t) => {
  const server = await startServer(async (req) => {
    const body = await req.recv.text()
    await req.send.sendHeaders([[':status', '201']])
    await req.send.write(`got ${body}`)
    await req.send.send(OutboundFrame.trailers([['x-checksum', sha256(Buffer.from(body))]]))
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  client.requestSender().send({
    requestId: 42,
    headers: [[':method', 'PUT'], [':scheme', 'https'], [':authority', 'localhost'], [':path', '/raw']],
    bodyWriter: true,
  })
  const seen: string[] = []
  for await (const event of client) {
    seen.push(event.type)
    if (event.type === 'newOutboundRequest') {
      t.is(event.requestId, 42)
      t.truthy(event.bodyWriter)
      await event.bodyWriter!.write('part one, ')
      await event.bodyWriter!.end('part two')
    } else if (event.type === 'headers') {
      t.is(header(event.headers, ':status'), '201')
      t.is(await event.recv.text(), 'got part one, part two')
      break
    }
  }
  t.deepEqual(seen.slice(0, 1), ['newOutboundRequest'])
  await client.close()
  await server.close()
})

test('a server reset reaches the reader as StreamResetError with the code', async (t) => {
  let headersSeen!: () => void
  const clientHasHeaders = new Promise<void>((r) => (headersSeen = r))
  const server = await startServer(async (req, controller) => {
    await req.send.sendHeaders([[':status', '200']])
    await req.send.write('partial')
    await clientHasHeaders
    controller.shutdownStream(req.streamId, { write: 0x10c })
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const res = await client.request({ path: '/reset' })
  headersSeen()
  const err = await t.throwsAsync(res.body.bytes(), { instanceOf: StreamResetError })
  t.is(err?.code, 'ERR_STREAM_RESET')
  t.is(err?.errorCode, 0x10c)
})

test("request() defaults :authority to the connect() serverName, else the address", async (t) => {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end(header(req.headers, ':authority') ?? '')
  })
  t.teardown(() => server.close())
  for (const [options, expected] of [
    [{ serverName: 'localhost', ca: server.identity.cert }, 'localhost'],
    [{ ca: server.identity.cert }, server.address],
  ] as const) {
    const client = await connect(server.address, options)
    t.is(await (await client.request()).body.text(), expected)
    t.is(await (await client.request({ authority: 'example.test' })).body.text(), 'example.test')
    await client.close()
  }
})

test('sendGoaway(): the in-flight request still completes and the client sees a goAway event', async (t) => {
  const server = await startServer(async (req, controller) => {
    controller.sendGoaway()
    await sleep(100) // the GOAWAY reaches the client while this response is in flight
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end('finished after GOAWAY')
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const goAway = (async () => {
    for await (const event of client.events()) if (event.type === 'goAway') return event.id
    return undefined
  })()
  const res = await client.request()
  t.is(await res.body.text(), 'finished after GOAWAY')
  // The first request stream not processed (RFC 9114 §5.2): stream 0 was, so 4.
  t.is(await goAway, 4)
  await client.close()
})

test('after the server GOAWAY, request() is refused at once (RequestRefusedError), and a request waiting for a stream is refused too', async (t) => {
  const server = await startServer(async (req, controller) => {
    await sleep(50) // the second request is queued for stream credit by now
    controller.sendGoaway()
    await sleep(200)
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end('processed')
  }, { settings: { initialMaxStreamsBidi: 1 } })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.true(client.acceptsRequests)
  const first = client.request()
  // One stream at a time: this one waits for credit, so it is on no stream when the GOAWAY comes.
  const waiting = client.request({ path: '/waiting' })
  t.is(await client.goaway, 4)
  t.is(client.goawayId, 4)
  t.false(client.acceptsRequests)
  const refused = await t.throwsAsync(waiting, { instanceOf: RequestRefusedError, code: 'ERR_REQUEST_REFUSED' })
  t.regex(refused!.message, /GOAWAY \(id 4\) before the request got a stream/)
  await t.throwsAsync(client.request(), { instanceOf: RequestRefusedError, message: /the server sent GOAWAY \(id 4\): new requests need another connection/ })
  t.is(await (await first).body.text(), 'processed')
  await client.close()
})

test('the core events arrive: settings, headers, bodyBytesReceived adding up to the body, streamClosed', async (t) => {
  const events: ServerH3Event[] = []
  let done!: () => void
  const streamClosed = new Promise<void>((r) => (done = r))
  const server = await startServer(
    async (req) => {
      await req.recv.bytes()
      await req.send.sendHeaders([[':status', '204']])
      await req.send.end()
    },
    {
      onEvent: (e) => {
        events.push(e)
        if (e.type === 'streamClosed') done()
      },
    },
  )
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const body = patternBytes(300 * 1024, 5)
  t.is((await client.request({ method: 'POST', body })).status, 204)
  await streamClosed
  const settings = events.find((e) => e.type === 'settings')
  t.truthy(settings, 'the client SETTINGS arrived')
  t.true((settings as { settings: [bigint, bigint][] }).settings.length > 0)
  const bodyEvents = events.filter((e) => e.type === 'bodyBytesReceived') as { numBytes: number; fin: boolean; streamId: number }[]
  t.is(bodyEvents.reduce((n, e) => n + e.numBytes, 0), body.length, 'bodyBytesReceived adds up to the body')
  t.true(bodyEvents.at(-1)!.fin)
  const order = events.map((e) => e.type).filter((type) => type !== 'bodyBytesReceived')
  t.deepEqual(order.slice(order.indexOf('headers')), ['headers', 'streamClosed'])
})

test('close() ends the peer: its controller reports the application code and reason', async (t) => {
  let serverClosed!: Promise<import('tokio-quiche').CloseInfo>
  const server = await startServer(async (req, controller) => {
    serverClosed = controller.closed
    await req.send.sendHeaders([[':status', '204']])
    await req.send.end()
  })
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  await (await client.request()).body.bytes()
  const local = await client.close({ errorCode: 0x101, reason: 'done here' })
  t.is(local.localApplicationCode, 0x101)
  const remote = await serverClosed
  t.is(remote.peerApplicationCode, 0x101)
  t.false(remote.timedOut)
  t.true(client.isClosed)
  await server.close()
})

// Serial: bridgeCounters() is process-wide, and other tests' reads count on the runtime's threads.
test.serial('respond() sends headers and the whole body in one call into the binding', async (t) => {
  const crossings: number[] = []
  const errors: unknown[] = []
  const server = await startServer(async (req) => {
    errors.push(await req.send.respond([[':status', '103']]).catch((e) => e))
    const before = bridgeCounters().toRust
    const sent = req.send.respond([[':status', '201'], ['x-kind', 'whole']], 'all at once')
    crossings.push(bridgeCounters().toRust - before)
    await sent
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const res = await client.request()
  t.deepEqual([res.status, header(res.headers, 'x-kind'), await res.body.text()], [201, 'whole', 'all at once'])
  t.deepEqual(crossings, [1])
  t.is((errors[0] as { code?: string }).code, 'ERR_INVALID_ARG')
  t.regex(String(errors[0]), /headers: respond\(\) needs a final status/)
  await client.close()
})

// Serial: bridgeCounters() is process-wide. The response's HEADERS and body leave in one packet, and on
// loopback the binding has both before the HEADERS cross to JS.
test.serial('a small body that came with its HEADERS is read without a call into the binding', async (t) => {
  const server = await startServer(async (req) => {
    await req.send.respond([[':status', '200']], req.headers.find(([n]) => n === ':path')![1])
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const res = await client.request({ path: '/whole-body' })
  t.false(res.body.finished)
  // Calls made before this point (an async one counts when the runtime first polls it) settle first.
  for (let last = -1; last !== bridgeCounters().toRust; await sleep(50)) last = bridgeCounters().toRust
  const before = bridgeCounters().toRust
  const frames = [await res.body.recv(), await res.body.recv()]
  t.is(bridgeCounters().toRust - before, 0)
  t.deepEqual(frames, [{ type: 'body', data: Buffer.from('/whole-body'), fin: true }, null])
  t.true(res.body.finished)
  t.is(res.body.auditStats().bytesReceived, '/whole-body'.length)
  // Closing such a body before reading it drops the bytes: nothing is left to stop.
  const unread = await client.request({ path: '/dropped' })
  unread.body.close()
  t.deepEqual([await unread.body.recv(), unread.body.finished, unread.body.signal.aborted], [null, false, false])
})

test('a request without a body: its reader has ended, auditStats() still reports the stream, and a second response is refused', async (t) => {
  const seen: unknown[] = []
  let serverRecv: InboundFrameStream | undefined
  const server = await startServer(async (req) => {
    serverRecv = req.recv
    seen.push(req.readFin, req.recv.finished, (await req.recv.bytes()).length)
    await req.send.respond([[':status', '200']], 'twelve bytes')
    seen.push(await req.send.respond([[':status', '200']]).catch((e) => e))
    seen.push(await req.send.write('more').catch((e) => e))
  })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  t.teardown(() => client.close())
  const res = await client.request({ path: '/a' })
  t.is(await res.body.text(), 'twelve bytes')
  t.deepEqual(seen.slice(0, 3), [true, true, 0])
  for (const refused of seen.slice(3)) {
    t.is((refused as { code?: string }).code, 'ERR_STREAM_FINISHED')
    t.regex(String(refused), /stream 0: a frame was sent after the stream's FIN/)
  }
  const audit = serverRecv!.auditStats()
  t.is(audit.bytesReceived, 0)
  t.is(audit.bytesSent, 12)
  t.is(audit.sentFin, 'explicit')
})
