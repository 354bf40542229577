// Certificate verification is on by default; trusting our self-signed
// server takes its CA, and switching verification off takes an option that
// says "insecure".
import test from 'ava'
import { type CertificateRejectedError, OutboundFrame, TokioQuicheError, connect, generateSelfSignedCertificate, writeSelfSignedCertificate } from 'tokio-quiche'
import { fetchText, startServer, type TestServer } from './helpers.js'

let server: TestServer
test.before(async () => {
  server = await startServer(async (req) => {
    await req.send.send(OutboundFrame.headers([[':status', '200']]))
    await req.send.send(OutboundFrame.body(Buffer.from('trusted'), true))
  })
})
test.after.always(() => server?.close())

test('a self-signed server is rejected without its CA', async (t) => {
  const err = await t.throwsAsync(connect(server.address, { serverName: 'localhost', settings: { handshakeTimeoutMs: 3000 } }), {
    instanceOf: TokioQuicheError,
  })
  t.is(err?.code, 'ERR_TLS_CERT_REJECTED')
  t.is((err as CertificateRejectedError).verifyError, 'DEPTH_ZERO_SELF_SIGNED_CERT')
  t.regex(err!.message, /127\.0\.0\.1:\d+: the server's certificate was rejected \(.*self.signed/)
})

test('a server whose certificate is for another CA is rejected', async (t) => {
  const other = generateSelfSignedCertificate(['localhost'])
  const err = await t.throwsAsync(connect(server.address, { serverName: 'localhost', ca: other.cert, settings: { handshakeTimeoutMs: 3000 } }))
  t.is((err as TokioQuicheError).code, 'ERR_TLS_CERT_REJECTED')
  t.regex(err!.message, /certificate was rejected/)
})

test('a name the certificate does not carry is rejected', async (t) => {
  const err = await t.throwsAsync(
    connect(server.address, { serverName: 'example.com', ca: server.identity.cert, settings: { handshakeTimeoutMs: 3000 } }),
  )
  t.is((err as TokioQuicheError).code, 'ERR_TLS_CERT_REJECTED')
  t.is((err as CertificateRejectedError).verifyError, 'ERR_TLS_CERT_ALTNAME_INVALID')
  t.regex(err!.message, /certificate was rejected \(.*host/i)
})

test('connects with ca given as a PEM file path', async (t) => {
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: server.identity.certPath }), 'trusted')
})

test('connects with ca given as PEM text', async (t) => {
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: server.identity.cert }), 'trusted')
})

test('an IP address without serverName is checked against the IP subjectAltName', async (t) => {
  t.is(await fetchText(server.address, { ca: server.identity.cert }), 'trusted')
  const identity = await writeSelfSignedCertificate(['localhost'])
  const localhostOnly = await startServer(() => {}, { identity })
  t.teardown(() => localhostOnly.close())
  const err = await t.throwsAsync(connect(localhostOnly.address, { ca: identity.cert }))
  t.is((err as TokioQuicheError).code, 'ERR_TLS_CERT_REJECTED')
  t.regex(err!.message, /certificate was rejected/)
})

test('insecureSkipVerify connects to an untrusted server', async (t) => {
  t.is(await fetchText(server.address, { insecureSkipVerify: true }), 'trusted')
})

test('a malformed ca is a typed error naming the field', async (t) => {
  const err = await t.throwsAsync(connect(server.address, { ca: '/nonexistent/ca.pem' }))
  t.is((err as TokioQuicheError).code, 'ERR_TLS_CERT')
  t.regex(err!.message, /^ca: cannot read '\/nonexistent\/ca\.pem'/)
})
