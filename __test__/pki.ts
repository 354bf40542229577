// A throwaway PKI for security.spec.ts, made with the openssl CLI (node:crypto
// cannot sign certificates): a CA, and leaves signed by it that are valid,
// expired, or for another host; plus a second, unrelated CA.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Leaf {
  certPath: string
  keyPath: string
}

export interface Pki {
  caCert: string
  otherCaCert: string
  valid: Leaf
  expired: Leaf
  wrongHost: Leaf
}

const openssl = (dir: string, args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })

function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-days', '30', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign'])
}

/** A leaf for `names` signed by `ca`, valid from `start` to `end` (openssl's YYMMDDHHMMSSZ form). */
function makeLeaf(dir: string, ca: string, file: string, names: string[], start: string, end: string): Leaf {
  openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${file}.key`, '-out', `${file}.csr`, '-subj', `/CN=${names[0]}`])
  writeFileSync(join(dir, `${file}.ext`), `subjectAltName=${names.map((n) => (/^[\d.]+$/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',')}\nbasicConstraints=CA:FALSE\n`)
  // `openssl ca` is the CLI's only way to set both dates (x509 -req only takes -days).
  openssl(dir, ['ca', '-batch', '-config', 'ca.cnf', '-name', ca, '-in', `${file}.csr`, '-out', `${file}.pem`, '-notext', '-startdate', start, '-enddate', end, '-extfile', `${file}.ext`])
  return { certPath: join(dir, `${file}.pem`), keyPath: join(dir, `${file}.key`) }
}

export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'tq-pki-'))
  makeCa(dir, 'ca')
  makeCa(dir, 'other-ca')
  writeFileSync(join(dir, 'index.txt'), '')
  writeFileSync(join(dir, 'ca.cnf'), `[ca]
dir = .
database = index.txt
new_certs_dir = .
serial = serial
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = anything
unique_subject = no
[anything]
commonName = supplied
`)
  writeFileSync(join(dir, 'serial'), '1000\n')
  const now = Date.now()
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z'
  const day = 86_400_000
  return {
    caCert: join(dir, 'ca.pem'),
    otherCaCert: join(dir, 'other-ca.pem'),
    valid: makeLeaf(dir, 'ca', 'valid', ['localhost', '127.0.0.1'], stamp(now - day), stamp(now + 30 * day)),
    expired: makeLeaf(dir, 'ca', 'expired', ['localhost', '127.0.0.1'], stamp(now - 30 * day), stamp(now - day)),
    wrongHost: makeLeaf(dir, 'ca', 'wrong-host', ['other.test'], stamp(now - day), stamp(now + 30 * day)),
  }
}
