// Secure defaults (issue 18): without any option the client refuses an
// expired, untrusted (self-signed), misnamed or foreign-CA certificate with a
// typed CertificateRejectedError, and the server answers a token-less Initial
// with a Retry (address validation) before doing any handshake work.
import test from 'ava'
import { readFileSync } from 'node:fs'
import { type CertificateVerifyError, CertificateRejectedError, type WrittenCertificate, connect, writeSelfSignedCertificate } from 'tokio-quiche'
import { makePki, type Leaf } from './pki.js'
import { fetchText, sleep, startServer } from './helpers.js'
import { fakeInitial, longHeaderType, rawPeer, sendTo } from './quic-packets.js'

const pki = makePki()
const identity = (leaf: Leaf): WrittenCertificate => ({ ...leaf, cert: readFileSync(leaf.certPath, 'utf8'), key: readFileSync(leaf.keyPath, 'utf8') })
const answer = async (req: { send: { respond(h: [string, string][], b: string): Promise<void> } }) => req.send.respond([[':status', '200']], 'ok')

test('a certificate from the given CA, valid and for the name, is accepted (the control)', async (t) => {
  const server = await startServer(answer, { identity: identity(pki.valid) })
  t.teardown(() => server.close())
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: pki.caCert }), 'ok')
})

const cases: [string, () => Promise<WrittenCertificate>, string | undefined, CertificateVerifyError, RegExp][] = [
  ['an expired certificate', async () => identity(pki.expired), pki.caCert, 'CERT_HAS_EXPIRED', /\(certificate has expired\)$/],
  ['a self-signed certificate (system trust store)', () => writeSelfSignedCertificate(['localhost']), undefined, 'DEPTH_ZERO_SELF_SIGNED_CERT', /self.signed.*pass its CA as `ca`$/],
  ['a certificate for another host', async () => identity(pki.wrongHost), pki.caCert, 'ERR_TLS_CERT_ALTNAME_INVALID', /\(Hostname mismatch\)$/],
  ['a certificate from another CA', async () => identity(pki.valid), pki.otherCaCert, 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', /issuer certificate.*pass its CA as `ca`$/],
]
for (const [what, makeIdentity, ca, verifyError, message] of cases) {
  test(`the client rejects ${what} by default: ERR_TLS_CERT_REJECTED, ${verifyError}`, async (t) => {
    const server = await startServer(answer, { identity: await makeIdentity() })
    t.teardown(() => server.close())
    const err = await t.throwsAsync(connect(server.address, { serverName: 'localhost', ...(ca ? { ca } : {}), settings: { handshakeTimeoutMs: 3000 } }))
    t.true(err instanceof CertificateRejectedError, String(err))
    t.is((err as CertificateRejectedError).code, 'ERR_TLS_CERT_REJECTED')
    t.is((err as CertificateRejectedError).verifyError, verifyError)
    t.regex(err!.message, message)
  })
}

/** What the server sends back to one token-less Initial of 1200 bytes, within `ms`. */
async function answerToInitial(address: string, ms = 500): Promise<Buffer[]> {
  const peer = await rawPeer()
  try {
    await sendTo(peer.socket, address, fakeInitial(1200))
    await sleep(ms)
    return peer.received
  } finally {
    await peer.close()
  }
}

test('Retry is on by default: a token-less Initial gets exactly one Retry, smaller than the Initial', async (t) => {
  const server = await startServer(answer)
  t.teardown(() => server.close())
  const replies = await answerToInitial(server.address)
  t.is(replies.length, 1)
  t.is(longHeaderType(replies[0]!), 3, 'a Retry packet (long header type 3)')
  t.true(replies[0]!.length < 1200, `${replies[0]!.length} bytes back for 1200 sent`)
  // And the client then completes the handshake through it.
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: server.identity.cert }), 'ok')
})

test('with disableClientIpValidation the same Initial gets no Retry (the default above is what turns it on)', async (t) => {
  const server = await startServer(answer, { settings: { disableClientIpValidation: true } })
  t.teardown(() => server.close())
  const replies = await answerToInitial(server.address)
  t.false(replies.some((r) => longHeaderType(r) === 3), `replies: ${replies.map((r) => longHeaderType(r)).join(',')}`)
})
