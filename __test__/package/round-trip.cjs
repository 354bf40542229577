// One HTTP/3 request over loopback with the package's public API, shared by
// esm.mjs and cjs.cjs (each imports the API its own way and passes it in).
// Exits non-zero unless the body comes back intact and everything closes.
const { mkdtempSync, writeFileSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')

/** @param {{ serve: Function, connect: Function, generateSelfSignedCertificate: Function }} api */
async function roundTrip(api, label) {
  const { cert, key } = api.generateSelfSignedCertificate(['localhost'])
  const dir = mkdtempSync(join(tmpdir(), 'tq-package-'))
  const certPath = join(dir, 'cert.pem')
  const keyPath = join(dir, 'key.pem')
  writeFileSync(certPath, cert)
  writeFileSync(keyPath, key, { mode: 0o600 })
  const body = `hello from ${label}`
  const server = await api.serve({ socket: '127.0.0.1:0', tls: { cert: certPath, privateKey: keyPath } }, () => new Response(body))
  const client = await api.connect(server.address, { serverName: 'localhost', ca: cert })
  const res = await client.request({ path: '/' })
  const text = await res.body.text()
  await client.close()
  await server.close()
  rmSync(dir, { recursive: true })
  if (res.status !== 200 || text !== body) throw new Error(`${label}: got ${res.status} ${JSON.stringify(text)}`)
  console.log(`${label}: ${res.status} ${text}`)
}

module.exports.roundTrip = roundTrip
