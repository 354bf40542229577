// tokio-quiche's feature flags. `npm test` runs this file twice: against the
// default binary (capture_keylogs only) and, through `test:features`, against
// one built with every other flag (NAPI_RS_NATIVE_LIBRARY_PATH points at it and
// TQ_EXPECT_FEATURES lists the flags). Each test asserts the behaviour of
// whichever binary is loaded, so both runs can fail.
import test from 'ava'
import { createHash, generateKeyPairSync } from 'node:crypto'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Feature, type WrittenCertificate, ConnectionParams, connect, features, listen, prometheusMetrics } from 'tokio-quiche'
import { oneRequest, patternBytes, startServer } from './helpers.js'

const has = (feature: Feature) => features.includes(feature)
const mode = (feature: Feature) => (has(feature) ? 'with' : 'without')

test('the loaded binary carries exactly the expected features', (t) => {
  const expected = (process.env.TQ_EXPECT_FEATURES ?? 'capture_keylogs').split(',').sort()
  t.deepEqual([...features].sort(), expected)
})

/** A P-256 key pair as a raw public key file (DER SPKI) and a PEM private key file. */
async function rawKeyPair(dir: string, name: string) {
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  const spkiPath = join(dir, `${name}.spki.der`)
  const keyPath = join(dir, `${name}.key.pem`)
  await writeFile(spkiPath, spki)
  await writeFile(keyPath, privateKey.export({ type: 'pkcs8', format: 'pem' }))
  return { spki, spkiPath, keyPath }
}

test(`rpk: raw public key handshake (${mode('rpk')} the feature)`, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'tq-rpk-'))
  const [server, stranger] = await Promise.all([rawKeyPair(dir, 'server'), rawKeyPair(dir, 'stranger')])
  const params = ConnectionParams.newServer({ tls: { cert: server.spkiPath, privateKey: server.keyPath, kind: 'rawPublicKey' } })
  if (!has('rpk')) {
    await t.throwsAsync(listen(['127.0.0.1:0'], params), { code: 'ERR_INVALID_ARG', message: /^tls\.kind: raw public keys need a build with the rpk feature/ })
    await t.throwsAsync(connect('127.0.0.1:9', { serverPublicKey: server.spki }), { code: 'ERR_INVALID_ARG', message: /^serverPublicKey: .*rpk feature/ })
    return
  }
  const rpkServer = await startServer(
    async (req) => {
      await req.send.sendHeaders([[':status', '200']])
      await req.send.end('raw public key')
    },
    { identity: { certPath: server.spkiPath, keyPath: server.keyPath } as WrittenCertificate, tls: { kind: 'rawPublicKey' } },
  )
  t.teardown(() => rpkServer.close())
  const address = rpkServer.address
  const client = await connect(address, { serverPublicKey: server.spki })
  t.is(await (await client.request()).body.text(), 'raw public key')
  await client.close()
  await t.throwsAsync(connect(address, { serverPublicKey: stranger.spki, settings: { handshakeTimeoutMs: 3000 } }), {
    code: 'ERR_TLS_CERT_REJECTED',
    message: /raw public key does not match serverPublicKey/,
  })
})

/** Runs one request through a fresh server, then returns the Prometheus text. */
async function metricsAfterOneRequest(): Promise<string> {
  await oneRequest()
  return prometheusMetrics()
}

test(`tokio-task-metrics: per-task poll histograms (${mode('tokio-task-metrics')} the feature)`, async (t) => {
  const text = await metricsAfterOneRequest()
  const polls = /^tokio_quiche_tokio_runtime_task_poll_duration_histogram_count\{task="quic_io_worker"\} (\d+)$/m.exec(text)
  if (has('tokio-task-metrics')) t.true(Number(polls?.[1]) > 0, 'the I/O worker task was polled and timed')
  else t.is(polls, null)
})

test(`perf-quic-listener-metrics: handshake protocol timing (${mode('perf-quic-listener-metrics')} the feature)`, async (t) => {
  const text = await metricsAfterOneRequest()
  const timed = /^tokio_quiche_quic_handshake_time_seconds_count\{stage="handshakeprotocol"\} (\d+)$/m.exec(text)
  if (has('perf-quic-listener-metrics')) t.true(Number(timed?.[1]) > 0, 'the listener timed handshake packets')
  else t.is(timed, null)
})

test(`gcongestion / zero-copy: a paced bbr2_gcongestion transfer arrives intact (${mode('gcongestion')} the feature)`, async (t) => {
  const body = patternBytes(4 * 1024 * 1024, 3)
  const settings = { ccAlgorithm: 'bbr2_gcongestion', enablePacing: true }
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end(body)
  }, { settings })
  t.teardown(() => server.close())
  const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert, settings })
  const received = await (await client.request()).body.bytes()
  t.is(createHash('sha256').update(received).digest('hex'), createHash('sha256').update(body).digest('hex'))
  t.is(has('zero-copy'), has('gcongestion'), 'tokio-quiche: zero-copy only enables gcongestion')
  await client.close()
})
