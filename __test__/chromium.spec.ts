// Interop with Chromium (Google's QUIC stack, Debian's package, headless):
// it loads a page and its sub-resources from our server over HTTP/3.
import test from 'ava'
import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium } from 'playwright-core'
import { header, startServer } from './helpers.js'

const CHROMIUM = '/usr/bin/chromium'

const FILES: Record<string, { type: string; body: string }> = {
  '/': {
    type: 'text/html; charset=utf-8',
    body: `<!doctype html><html><head><title>h3 test</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/style.css">
<script src="/app.js"></script></head><body><img src="/pixel.svg" alt="">
<p id="p">static</p></body></html>`,
  },
  '/style.css': { type: 'text/css', body: '#p { color: rgb(1, 2, 3); }' },
  '/app.js': {
    type: 'text/javascript',
    body: `window.fromScript = 'script ran';
window.fetched = fetch('/data.json').then((r) => r.json());`,
  },
  '/data.json': { type: 'application/json', body: JSON.stringify({ answer: 42, via: 'fetch' }) },
  '/pixel.svg': { type: 'image/svg+xml', body: '<svg xmlns="http://www.w3.org/2000/svg" width="3" height="2"/>' },
}

/** base64 SHA-256 of the certificate's SubjectPublicKeyInfo: what Chromium pins. */
function spkiHash(certPem: string): string {
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' })
  return createHash('sha256').update(der).digest('base64')
}

test('Chromium loads a page with sub-resources over h3 from our server', async (t) => {
  t.true(existsSync(CHROMIUM), `${CHROMIUM} is installed (.ci/run installs Debian's chromium)`)
  const served: string[] = []
  const server = await startServer(async (req) => {
    const path = header(req.headers, ':path') ?? '/'
    served.push(path)
    const file = FILES[path]
    if (!file) {
      await req.send.sendHeaders([[':status', '404']])
      await req.send.end()
      return
    }
    await req.send.sendHeaders([[':status', '200'], ['content-type', file.type], ['cache-control', 'no-store']])
    await req.send.end(file.body)
  })
  t.teardown(() => server.close())

  const origin = server.address // 127.0.0.1:<port>; the URL must use the same host
  const profile = mkdtempSync(join(tmpdir(), 'tq-chromium-'))
  t.teardown(() => rmSync(profile, { recursive: true, force: true }))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      `--origin-to-force-quic-on=${origin}`,
      `--ignore-certificate-errors-spki-list=${spkiHash(server.identity.cert)}`,
    ],
  })
  t.teardown(() => browser.close())
  const page = browser.pages()[0] ?? (await browser.newPage())
  const response = await page.goto(`https://${origin}/`, { timeout: 20_000 })
  t.is(response?.status(), 200)

  const result = await page.evaluate(async () => {
    const w = window as unknown as { fromScript: string; fetched: Promise<unknown> }
    const fetched = await w.fetched
    const img = document.querySelector('img')!
    await img.decode()
    return {
      fromScript: w.fromScript,
      fetched,
      color: getComputedStyle(document.getElementById('p')!).color,
      img: [img.naturalWidth, img.naturalHeight],
      protocols: [
        ...performance.getEntriesByType('navigation'),
        ...performance.getEntriesByType('resource'),
      ].map((e) => [new URL(e.name).pathname, (e as PerformanceResourceTiming).nextHopProtocol]),
    }
  })
  t.is(result.fromScript, 'script ran')
  t.deepEqual(result.fetched, { answer: 42, via: 'fetch' })
  t.is(result.color, 'rgb(1, 2, 3)')
  t.deepEqual(result.img, [3, 2])
  // Chromium may add its own requests (a favicon); ours must all be there.
  const paths = new Set(result.protocols.map(([path]) => path))
  for (const path of Object.keys(FILES)) t.true(paths.has(path), `${path} has a timing entry`)
  for (const [path, protocol] of result.protocols) t.is(protocol, 'h3', `${path} came over ${protocol}`)
  t.true(['/', '/app.js', '/data.json', '/pixel.svg', '/style.css'].every((p) => served.includes(p)), 'our server served every resource')
})
