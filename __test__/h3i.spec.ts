// h3i (Cloudflare's HTTP/3 interrogator, built on the same quiche as
// tokio-quiche, so a conformance driver rather than an independent peer)
// sends malformed and edge-case frame sequences to our server over real UDP
// and TLS; crates/h3i-probe runs one case and prints h3i's connection
// summary. `npm run build:h3i-probe` builds it (npm pretest does).
import test, { type ExecutionContext } from 'ava'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { TokioQuicheError } from 'tokio-quiche'
import { startServer, type TestServer } from './helpers.js'

const PROBE = join(process.env.CARGO_TARGET_DIR ?? join(__dirname, '..', 'target'), 'release', 'h3i-probe')
const H3_NO_ERROR = 0x100
const H3_FRAME_UNEXPECTED = 0x105
const H3_FRAME_ERROR = 0x106
const H3_EXCESSIVE_LOAD = 0x107
const H3_MESSAGE_ERROR = 0x10e

/** The parts of h3i's ConnectionSummary JSON the assertions read. */
interface Summary {
  stream_map: { stream_frame_map: Record<string, Frame[]> }
  error: {
    peer_error?: { is_app: boolean; error_code: number; reason: string }
    local_error?: { is_app: boolean; error_code: number }
    timed_out: boolean
  }
}
type Frame = {
  enriched_headers?: { headers: { name: string; value: string }[] }
  DATA?: { payload: string }
  reset_stream?: { stream_id: number; error_code: number }
}

async function probe(address: string, testCase: string): Promise<Summary> {
  const { stdout } = await promisify(execFile)(PROBE, [address, testCase], { timeout: 30_000 })
  return JSON.parse(stdout) as Summary
}

/** What stream `id` got back: its :status, body, and the RESET_STREAM code if any. */
function response(summary: Summary, id: number) {
  const frames = summary.stream_map.stream_frame_map[String(id)] ?? []
  const status = frames.flatMap((f) => f.enriched_headers?.headers ?? []).find((h) => h.name === ':status')?.value
  const body = Buffer.concat(frames.flatMap((f) => (f.DATA ? [Buffer.from(f.DATA.payload, 'hex')] : []))).toString()
  const reset = frames.find((f) => f.reset_stream)?.reset_stream?.error_code
  return { status, body, reset, frames: frames.length }
}

let server: TestServer
test.before(async () => {
  // A small header limit so the oversized case fits in what h3i sends at once.
  server = await startServer(
    async (req) => {
      await req.send.sendHeaders([[':status', '200']])
      await req.send.end('ok')
    },
    { http3: { maxHeaderListSize: 4096 } },
  )
})
test.after.always(() => server?.close())

/** Each case is followed by a fresh h3i connection that must still get its 200. */
async function thenServes(t: ExecutionContext) {
  const next = response(await probe(server.address, 'get'), 0)
  t.deepEqual([next.status, next.body], ['200', 'ok'], 'the server serves the next connection')
}

test('h3i client -> our server: a plain GET gets 200', async (t) => {
  const summary = await probe(server.address, 'get')
  t.deepEqual(response(summary, 0).status, '200')
  t.is(response(summary, 0).body, 'ok')
  t.is(summary.error.local_error?.error_code, H3_NO_ERROR, 'h3i closed, not the server')
  t.is(summary.error.peer_error, undefined)
})

for (const [testCase, code] of [
  ['duplicate-settings', H3_FRAME_UNEXPECTED],
  ['oversized-headers', H3_EXCESSIVE_LOAD],
] as const) {
  test(`h3i client -> our server: ${testCase} closes with 0x${code.toString(16)}, and the server keeps serving`, async (t) => {
    const summary = await probe(server.address, testCase)
    t.is(summary.error.peer_error?.error_code, code, JSON.stringify(summary.error))
    t.true(summary.error.peer_error?.is_app, 'an HTTP/3 (application) error code')
    await thenServes(t)
  })
}

for (const testCase of ['reserved-frame-request', 'reserved-frame-control'] as const) {
  test(`h3i client -> our server: ${testCase} is ignored (RFC 9114 §9), the request gets 200`, async (t) => {
    const summary = await probe(server.address, testCase)
    t.like(response(summary, 0), { status: '200', body: 'ok', reset: undefined })
    t.is(summary.error.peer_error, undefined)
  })
}

test('h3i client -> our server: empty-fin (FIN, no HEADERS) gets no response and no reset; the next request on that connection gets 200', async (t) => {
  // RFC 9114 §4.1.2 says a server SHOULD reset an incomplete request with
  // H3_REQUEST_INCOMPLETE (0x10d); quiche neither answers nor resets it.
  const summary = await probe(server.address, 'empty-fin')
  t.is(response(summary, 0).frames, 0)
  t.like(response(summary, 4), { status: '200', body: 'ok' })
  t.is(summary.error.peer_error, undefined)
})

// RFC 9114 MUSTs that quiche 0.30 (and so tokio-quiche 0.20.1) does not
// enforce; the binding checks received requests itself, resets a malformed one
// with H3_MESSAGE_ERROR and reports it as a `malformedRequest` event.
for (const [testCase, rfc] of [
  ['uppercase-header', 'an uppercase field name is malformed (§4.2)'],
  ['pseudo-after-regular', 'a pseudo-header after a regular field is malformed (§4.3)'],
] as const) {
  test(`h3i client -> our server: ${testCase} is reset with H3_MESSAGE_ERROR (${rfc}), and the server keeps serving`, async (t) => {
    const summary = await probe(server.address, testCase)
    // No :status: the handler (which always answers 200) never saw it.
    t.like(response(summary, 0), { status: undefined, reset: H3_MESSAGE_ERROR })
    t.is(summary.error.peer_error, undefined, 'a stream error, not a connection error')
    await thenServes(t)
  })
}

test.failing('h3i client -> our server: http2-frame (type 0x6 on a request stream) closes with H3_FRAME_UNEXPECTED (RFC 9114 §7.2.8)', async (t) => {
  // quiche treats HTTP/2's reserved frame types as unknown and ignores them.
  const summary = await probe(server.address, 'http2-frame')
  t.is(summary.error.peer_error?.error_code, H3_FRAME_UNEXPECTED, JSON.stringify(summary.error))
})

test.failing('h3i client -> our server: truncated-headers-fin (FIN inside HEADERS) closes with H3_FRAME_ERROR (RFC 9114 §7.1)', async (t) => {
  // quiche drops the partial frame at FIN; the connection carries on serving.
  const summary = await probe(server.address, 'truncated-headers-fin')
  t.is(summary.error.peer_error?.error_code, H3_FRAME_ERROR, JSON.stringify(summary.error))
})

/** Random sequences in `npm test`; `scripts/fuzz.sh` runs more (FUZZ_H3I_SEQUENCES). */
const SEQUENCES = Number(process.env.FUZZ_H3I_SEQUENCES ?? 60)

// A fuzz target for what peers send: seeded random frame sequences
// (h3i-probe's `random:<seed>`, replayable by seed) against a server whose
// handler reads each body and answers it. Whatever a sequence provokes, the
// server must keep serving, and the app must see only typed errors.
test(`h3i client -> our server: ${SEQUENCES} seeded random frame sequences; the server keeps serving and the app sees only typed errors`, async (t) => {
  const untyped: unknown[] = []
  let requests = 0
  const typed = new Map<string, number>()
  const target = await startServer(async (req) => {
    requests++
    try {
      const body = await req.recv.bytes()
      await req.send.respond([[':status', '200']], `read ${body.length}`)
    } catch (err) {
      if (!(err instanceof TokioQuicheError)) return void untyped.push(err)
      typed.set(err.code, (typed.get(err.code) ?? 0) + 1)
    }
  })
  t.teardown(() => target.close())
  const closes = new Map<string, number>()
  const probeFailures: string[] = []
  const seeds = Array.from({ length: SEQUENCES }, (_, i) => i + 1)
  // Four at a time: each is a process and a connection.
  for (let i = 0; i < seeds.length; i += 4) {
    await Promise.all(
      seeds.slice(i, i + 4).map(async (seed) => {
        try {
          const peer = (await probe(target.address, `random:${seed}`)).error.peer_error
          const key = peer ? `0x${peer.error_code.toString(16)}` : 'none'
          closes.set(key, (closes.get(key) ?? 0) + 1)
        } catch (err) {
          probeFailures.push(`seed ${seed}: ${(err as Error).message.split('\n').slice(-3).join(' ')}`)
        }
      }),
    )
  }
  t.log('server closes by code:', JSON.stringify(Object.fromEntries(closes)), '; requests the app saw:', requests, '; their typed errors:', JSON.stringify(Object.fromEntries(typed)))
  t.deepEqual(probeFailures, [], 'every sequence ran (h3i itself did not fail)')
  t.deepEqual(untyped, [])
  t.true(requests > SEQUENCES / 4, `the sequences reached the app (${requests} requests)`)
  const next = response(await probe(target.address, 'get'), 0)
  t.deepEqual([next.status, next.body], ['200', 'read 0'], 'the server serves a plain GET after them')
})
