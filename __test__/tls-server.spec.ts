// The server side of TLS: certificates chosen by SNI, replaced while the
// server runs, and client certificates (mutual TLS) both ways.
import test from 'ava'
import { connect, writeSelfSignedCertificate } from 'tokio-quiche'
import { fetchText, startServer, testIdentity } from './helpers.js'

/**
 * The CRYPTO_ERROR (0x100 + TLS alert) a server sent to refuse our client.
 * In TLS 1.3 the client finishes its handshake before the server has checked
 * the client's certificate, so the refusal may arrive after connect().
 */
async function refusal(address: string, options: Parameters<typeof connect>[1]): Promise<number | undefined> {
  let client
  try {
    client = await connect(address, options)
  } catch (err) {
    return (err as { code?: string }).code === 'ERR_CONNECT' ? -1 : undefined
  }
  await client.request().then((res) => res.body.text()).catch(() => {})
  return (await client.closed).peerTransportCode ?? undefined
}

const answer = async (req: { send: { sendHeaders(h: [string, string][]): Promise<void>; end(b: string): Promise<void> } }) => {
  await req.send.sendHeaders([[':status', '200']])
  await req.send.end('hello')
}

test('SNI: each host name gets its certificate, exact before wildcard, the default otherwise', async (t) => {
  const [a, b] = await Promise.all([writeSelfSignedCertificate(['a.test']), writeSelfSignedCertificate(['*.b.test'])])
  const server = await startServer(answer, {
    tls: { sni: { 'a.test': { cert: a.certPath, privateKey: a.keyPath }, '*.b.test': { cert: b.certPath, privateKey: b.keyPath } } },
  })
  t.teardown(() => server.close())
  t.is(await fetchText(server.address, { serverName: 'a.test', ca: a.cert }), 'hello')
  t.is(await fetchText(server.address, { serverName: 'x.b.test', ca: b.cert }), 'hello')
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: server.identity.cert }), 'hello')
  // a.test's certificate really came from the SNI entry: the default one is refused for it.
  await t.throwsAsync(fetchText(server.address, { serverName: 'a.test', ca: server.identity.cert }), { code: 'ERR_TLS_CERT_REJECTED', message: /certificate was rejected/ })
  await t.throwsAsync(fetchText(server.address, { serverName: 'y.x.b.test', ca: b.cert }), { code: 'ERR_TLS_CERT_REJECTED', message: /certificate was rejected/ })
})

test('setSecureContext() swaps the certificate for new handshakes; open connections keep working', async (t) => {
  const server = await startServer(answer)
  t.teardown(() => server.close())
  const before = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
  const next = await writeSelfSignedCertificate(['localhost'])
  server.listener.setSecureContext({ cert: next.certPath, privateKey: next.keyPath })
  await t.throwsAsync(fetchText(server.address, { serverName: 'localhost', ca: server.identity.cert }), { code: 'ERR_TLS_CERT_REJECTED', message: /certificate was rejected/ })
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: next.cert }), 'hello')
  t.is(await (await before.request()).body.text(), 'hello', 'the connection made before the swap still serves')
  await before.close()

  // A bad replacement is refused up front and changes nothing.
  const other = await testIdentity()
  t.throws(() => server.listener.setSecureContext({ cert: next.certPath, privateKey: other.keyPath }), {
    code: 'ERR_TLS_CERT',
    message: /^tls\.privateKey: .* does not match/,
  })
  t.throws(() => server.listener.setSecureContext({ cert: next.certPath, privateKey: next.keyPath, sni: { 'a.test': { cert: '/nonexistent.pem', privateKey: next.keyPath } } }), {
    code: 'ERR_TLS_CERT',
    message: /^tls\.sni\["a\.test"\]\.cert: cannot read '\/nonexistent\.pem'/,
  })
  t.is(await fetchText(server.address, { serverName: 'localhost', ca: next.cert }), 'hello')
})

test('mutual TLS: a required client certificate is verified and visible to the server', async (t) => {
  const [clientId, stranger] = await Promise.all([writeSelfSignedCertificate(['client.test']), writeSelfSignedCertificate(['stranger.test'])])
  const seen: (string | undefined)[] = []
  const server = await startServer(
    async (req, controller) => {
      seen.push(controller.peerCertificate?.subjectAltName)
      await answer(req)
    },
    { tls: { clientCa: clientId.cert } },
  )
  t.teardown(() => server.close())
  const base = { serverName: 'localhost', ca: server.identity.cert }
  t.is(await fetchText(server.address, { ...base, clientCertificate: { cert: clientId.certPath, privateKey: clientId.keyPath } }), 'hello')
  t.deepEqual(seen, ['DNS:client.test'])
  // certificate_required (116) and unknown_ca (48) alerts, as QUIC CRYPTO_ERRORs.
  t.is(await refusal(server.address, base), 0x100 + 116)
  t.is(await refusal(server.address, { ...base, clientCertificate: { cert: stranger.certPath, privateKey: stranger.keyPath } }), 0x100 + 48)
  t.is(seen.length, 1, 'no request got through without a trusted certificate')
})

test('mutual TLS optional: clients without a certificate connect, peerCertificate is null', async (t) => {
  const clientId = await writeSelfSignedCertificate(['client.test'])
  const seen: (string | null)[] = []
  const server = await startServer(
    async (req, controller) => {
      seen.push(controller.peerCertificate?.subjectAltName ?? null)
      await answer(req)
    },
    { tls: { clientCa: clientId.cert, requireClientCert: false } },
  )
  t.teardown(() => server.close())
  const base = { serverName: 'localhost', ca: server.identity.cert }
  t.is(await fetchText(server.address, base), 'hello')
  t.is(await fetchText(server.address, { ...base, clientCertificate: { cert: clientId.certPath, privateKey: clientId.keyPath } }), 'hello')
  t.deepEqual(seen, [null, 'DNS:client.test'])
})

test('server TLS options are validated by name', async (t) => {
  const { ConnectionParams } = await import('tokio-quiche')
  const id = await testIdentity()
  const base = { cert: id.certPath, privateKey: id.keyPath }
  t.throws(() => ConnectionParams.newServer({ tls: { ...base, sni: { 'bad name!': base } } }), { code: 'ERR_INVALID_ARG', message: /^tls\.sni: 'bad name!' is not a host name/ })
  t.throws(() => ConnectionParams.newServer({ tls: { ...base, sni: { 'a.test': { cert: '', privateKey: 'k' } } } }), { code: 'ERR_INVALID_ARG', message: /^tls\.sni\["a\.test"\]\.cert: expected a PEM file path/ })
  t.throws(() => ConnectionParams.newServer({ tls: { ...base, requireClientCert: true } }), { code: 'ERR_INVALID_ARG', message: /^tls\.requireClientCert: needs clientCa/ })
  t.throws(() => ConnectionParams.newServer({ tls: { ...base, kind: 'pem' as never } }), { code: 'ERR_INVALID_ARG', message: /^tls\.kind: expected 'x509' or 'rawPublicKey'/ })
})
