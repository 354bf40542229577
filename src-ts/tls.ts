import { mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import native from './native.js'
import { callNative, invalidArg } from './errors.js'

/** A self-signed certificate: PEM text and, when written, the file paths. */
export interface SelfSignedCertificate {
  /** PEM certificate; also usable as the client's `ca`. */
  cert: string
  /** PEM private key (PKCS#8). */
  key: string
}

export interface WrittenCertificate extends SelfSignedCertificate {
  certPath: string
  keyPath: string
}

/**
 * Generates a self-signed ECDSA P-256 certificate for development and tests.
 * Each name (DNS name or IP address) becomes a subjectAltName.
 */
export function generateSelfSignedCertificate(names: readonly string[] = ['localhost', '127.0.0.1', '::1']): SelfSignedCertificate {
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string' || n.length === 0)) {
    throw invalidArg('names', 'expected an array of DNS names or IP addresses')
  }
  return callNative(() => native.generateSelfSigned([...names]))
}

/**
 * Generates a self-signed certificate and writes it to `dir` (default: a new
 * private temporary directory) as `cert.pem` and `key.pem` (mode 0600), the
 * form `ConnectionParams.newServer` takes.
 */
export async function writeSelfSignedCertificate(names?: readonly string[], dir?: string): Promise<WrittenCertificate> {
  const generated = generateSelfSignedCertificate(names)
  const target = dir ?? (await mkdtemp(join(tmpdir(), 'tokio-quiche-')))
  const certPath = join(target, 'cert.pem')
  const keyPath = join(target, 'key.pem')
  await writeFile(certPath, generated.cert)
  await writeFile(keyPath, generated.key, { mode: 0o600 })
  return { ...generated, certPath, keyPath }
}
