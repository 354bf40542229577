import test from 'ava'
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'tokio-quiche'
import { startServer } from './helpers.js'

const CLI = join(__dirname, '..', 'dist', 'cli', 'index.js')
const hash = (data: Uint8Array) => createHash('sha256').update(data).digest('hex')

interface Run {
  code: number | null
  stdout: Buffer
  stderr: string
}

async function cli(args: string[]): Promise<Run> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const stdout: Buffer[] = []
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk))
  const [code] = (await once(child, 'close')) as [number | null]
  return { code, stdout: Buffer.concat(stdout), stderr }
}

interface Served {
  child: ChildProcess
  url: string
  certPath: string
  stderr: () => string
}

/** `tokio-quiche serve dir` on a free port, once it says where it listens. */
async function serveDir(dir: string, flags: string[] = []): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', dir, '--port', '0', ...flags], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk
      if (/serving .* on https:\/\/\S+/.test(stderr)) resolve()
    })
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}: ${stderr}`)))
  })
  return {
    child,
    url: stderr.match(/on (https:\/\/\S+?)\/? /)![1]!,
    certPath: stderr.match(/development certificate: (\S+)/)![1]!,
    stderr: () => stderr,
  }
}

let site: { dir: string; big: Buffer } | undefined
async function fixture() {
  if (site) return site
  const dir = await mkdtemp(join(tmpdir(), 'tq-cli-'))
  const big = randomBytes(50 * 1024 * 1024)
  await writeFile(join(dir, 'big.bin'), big)
  await writeFile(join(dir, 'index.html'), '<h1>home</h1>\n')
  await writeFile(join(dir, 'style.css'), 'body{}\n')
  await writeFile(join(dir, 'data.json'), '{"a":1}\n')
  // Links: one that stays inside, and a file and a directory outside the served root.
  const outside = await mkdtemp(join(tmpdir(), 'tq-cli-outside-'))
  await writeFile(join(outside, 'secret.txt'), 'do not serve\n')
  await symlink(join(dir, 'style.css'), join(dir, 'linked.css'))
  await symlink(join(outside, 'secret.txt'), join(dir, 'secret.txt'))
  await symlink(outside, join(dir, 'elsewhere'))
  site = { dir, big }
  return site
}

test('serve prints its certificate and SPKI pin; get -o fetches a 50 MiB file back intact; SIGINT exits 0', async (t) => {
  const { dir, big } = await fixture()
  const served = await serveDir(dir)
  t.regex(served.stderr(), /SPKI pin \(sha256, base64\): [A-Za-z0-9+/]{43}=/)
  const out = join(await mkdtemp(join(tmpdir(), 'tq-cli-out-')), 'big.bin')
  const run = await cli(['get', `${served.url}/big.bin`, '--ca', served.certPath, '-o', out, '--progress', '-v'])
  t.is(run.code, 0, run.stderr)
  t.regex(run.stderr, /\[#{30}\] 100% 50\.0 MiB/, 'the forced progress bar ends full')
  t.regex(run.stderr, /\* handshake done in [\d.]+ ms/)
  t.regex(run.stderr, /\* connection: \{"packetsSent":\d+/)
  t.is(hash(await readFile(out)), hash(big))
  served.child.kill('SIGINT')
  // 'close', not 'exit': the last stderr lines may still be in the pipe at exit.
  const [code] = await once(served.child, 'close')
  t.is(code, 0)
  t.regex(served.stderr(), /SIGINT: sending GOAWAY/)
  t.false(existsSync(served.certPath), 'the generated certificate and key are removed on exit')
})

test('get -i shows status and headers; content types, ranges, 404, 416 and no way out of the directory', async (t) => {
  const { dir, big } = await fixture()
  const served = await serveDir(dir)
  t.teardown(() => served.child.kill('SIGKILL'))
  const get = (path: string, ...extra: string[]) => cli(['get', `${served.url}${path}`, '--ca', served.certPath, '-i', ...extra])

  const home = await get('/')
  t.is(home.code, 0, home.stderr)
  const text = home.stdout.toString()
  t.regex(text, /^HTTP\/3 200\r\n/)
  t.regex(text, /content-type: text\/html; charset=utf-8\r\n/)
  t.true(text.endsWith('\r\n\r\n<h1>home</h1>\n'))
  t.regex((await get('/style.css')).stdout.toString(), /content-type: text\/css/)
  t.regex((await get('/data.json')).stdout.toString(), /content-type: application\/json/)

  const range = await get('/big.bin', '-H', 'Range: bytes=1000-1999')
  const [head, body] = [range.stdout.subarray(0, range.stdout.indexOf('\r\n\r\n')).toString(), range.stdout.subarray(range.stdout.indexOf('\r\n\r\n') + 4)]
  t.regex(head, /^HTTP\/3 206/)
  t.regex(head, new RegExp(`content-range: bytes 1000-1999/${big.length}`))
  t.deepEqual(body, big.subarray(1000, 2000))
  t.regex((await get('/big.bin', '-H', `Range: bytes=${big.length}-`)).stdout.toString(), /^HTTP\/3 416/)
  t.regex((await get('/missing.txt')).stdout.toString(), /^HTTP\/3 404/)
  const escape = await get('/%2e%2e/%2e%2e/%2e%2e/etc/passwd')
  t.regex(escape.stdout.toString(), /^HTTP\/3 (403|404)/)
  t.notRegex(escape.stdout.toString(), /root:/)
  // Symbolic links: followed while they stay inside the directory, refused (403) when they lead out.
  t.regex((await get('/linked.css')).stdout.toString(), /^HTTP\/3 200[^]*body\{\}\n$/)
  for (const path of ['/secret.txt', '/elsewhere/secret.txt']) {
    const out = (await get(path)).stdout.toString()
    t.regex(out, /^HTTP\/3 403/, path)
    t.notRegex(out, /do not serve/, path)
  }
  const failed = await get('/missing.txt', '--fail')
  t.is(failed.code, 22)
})

test('get -d @file streams the file as the request body', async (t) => {
  const server = await startServer(async (req) => {
    const received = await req.recv.bytes()
    await req.send.respond([[':status', '200']], hash(received) + ' ' + (req.headers.find(([n]) => n === 'x-test')?.[1] ?? ''))
  })
  t.teardown(() => server.close())
  const dir = await mkdtemp(join(tmpdir(), 'tq-cli-up-'))
  const upload = randomBytes(3 * 1024 * 1024 + 7)
  await writeFile(join(dir, 'up.bin'), upload)
  const run = await cli(['get', `https://${server.address}/up`, '--ca', server.identity.certPath, '--data-binary', `@${join(dir, 'up.bin')}`, '-H', 'x-test: yes'])
  t.is(run.code, 0, run.stderr)
  t.is(run.stdout.toString(), `${hash(upload)} yes`)
  const inline = await cli(['get', `https://${server.address}/up`, '--ca', server.identity.certPath, '-d', 'hello'])
  t.is(inline.stdout.toString(), `${hash(Buffer.from('hello'))} `)
})

test('exit codes: bad URL 3, http: 3, usage 2, certificate 60, timeout 28, unreadable file 26, write 23, refused 7', async (t) => {
  const server = await startServer(() => {
    // Never answers: the request times out.
  })
  t.teardown(() => server.close())
  const url = `https://${server.address}/`
  const cases: [string[], number, RegExp][] = [
    [['get', 'not a url'], 3, /is not a URL/],
    [['get', 'http://127.0.0.1/'], 3, /use https:\/\//],
    [['frobnicate'], 2, /unknown command/],
    [['get', url, '--timeout', 'soon'], 2, /--timeout: expected a number/],
    [['get', url], 60, /certificate problem/],
    [['get', url, '--ca', server.identity.certPath, '--timeout', '0.5'], 28, /timed out/],
    [['get', url, '--insecure', '--timeout', '0.5'], 28, /timed out/],
    [['get', url, '--ca', '/nonexistent/ca.pem'], 26, /--ca: ENOENT/],
    [['get', url, '--insecure', '-d', '@/nonexistent/body'], 26, /ENOENT/],
  ]
  for (const [args, code, message] of cases) {
    const run = await cli(args)
    t.is(run.code, code, `${args.join(' ')}: ${run.stderr}`)
    t.regex(run.stderr, message)
    t.is(run.stderr.trim().split('\n')[0]!.startsWith('tokio-quiche: '), true)
  }
  const served = await startServer(async (req) => req.send.respond([[':status', '200']], 'x'))
  const unwritable = await cli(['get', `https://${served.address}/`, '--ca', served.identity.certPath, '-o', '/nonexistent/dir/out'])
  await served.close()
  t.is(unwritable.code, 23, unwritable.stderr)
  t.regex(unwritable.stderr, /-o \/nonexistent\/dir\/out: ENOENT/)
  // Nothing listens there: no handshake within the default 10 s.
  const { port } = new URL(url)
  await server.close()
  const refused = await cli(['get', `https://127.0.0.1:${port}/`, '--insecure'])
  t.is(refused.code, 7, refused.stderr)
  t.regex(refused.stderr, /could not connect/)
})

test('SIGINT lets a download in progress finish before serve exits', async (t) => {
  const { dir, big } = await fixture()
  const served = await serveDir(dir)
  // stdout is a pipe nobody reads yet: back-pressure holds the download open.
  const child = spawn(process.execPath, [CLI, 'get', `${served.url}/big.bin`, '--ca', served.certPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  const first: Buffer = await new Promise((resolve) => child.stdout.once('data', resolve))
  child.stdout.pause()
  served.child.kill('SIGINT')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.is(served.child.exitCode, null, 'serve waits for the response in progress')
  let getErr = ''
  child.stderr.on('data', (chunk: Buffer) => (getErr += chunk))
  const chunks = [first]
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
  child.stdout.resume()
  const [getCode] = await once(child, 'close')
  t.is(getCode, 0, getErr)
  t.is(hash(Buffer.concat(chunks)), hash(big))
  const [serveCode] = served.child.exitCode === null ? await once(served.child, 'exit') : [served.child.exitCode]
  t.is(serveCode, 0)
})

test('serve --max-connections-per-source 1 refuses a second connection with CONNECTION_REFUSED; bad counts exit 2', async (t) => {
  const { dir } = await fixture()
  const served = await serveDir(dir, ['--max-connections-per-source', '1', '--max-connections', 'unlimited'])
  t.teardown(() => served.child.kill('SIGKILL'))
  const options = { serverName: 'localhost', ca: await readFile(served.certPath, 'utf8') }
  const address = new URL(served.url).host
  const first = await connect(address, options)
  t.teardown(() => first.close())
  t.is(await (await first.request({ path: '/index.html' })).body.text(), '<h1>home</h1>\n')
  const second = await connect(address, options)
  t.teardown(() => second.close())
  await t.throwsAsync(second.request({ path: '/index.html' }).then((r) => r.body.text()), { message: /CONNECTION_REFUSED/ })
  for (const [flag, value] of [['--max-connections', '0'], ['--max-connections-per-source', '1.5'], ['--max-connections', 'lots']]) {
    const run = await cli(['serve', dir, '--port', '0', flag!, value!])
    t.is(run.code, 2, `${flag} ${value}: ${run.stderr}`)
    t.regex(run.stderr, new RegExp(`${flag}: expected`))
  }
})
