// The tokio-quiche README's two examples, ported to examples/, run as child
// processes against each other.
import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { connect } from 'tokio-quiche'
import { testIdentity } from './helpers.js'

const EXAMPLES = `${__dirname}/../examples`

test('examples/client.ts prints the response of examples/server.ts', async (t) => {
  const id = await testIdentity()
  const server = spawn(process.execPath, ['--import=tsx', `${EXAMPLES}/server.ts`, '127.0.0.1:0', '--cert', id.certPath, '--key', id.keyPath], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => server.kill('SIGKILL'))
  let serverOut = ''
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: server.stdout! }).on('line', (line) => {
      serverOut += `${line}\n`
      const m = /^listening on (\S+)$/.exec(line)
      if (m) resolve(m[1]!)
    })
    server.on('exit', (code) => reject(new Error(`server exited early with ${code}`)))
  })

  const client = spawn(process.execPath, ['--import=tsx', `${EXAMPLES}/client.ts`, address, '--ca', id.certPath], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let clientOut = ''
  client.stdout!.on('data', (d) => (clientOut += d))
  const [clientCode] = await once(client, 'exit')
  t.is(clientCode, 0, clientOut)
  t.regex(clientOut, /^sending outbound request \{ streamId: 0, requestId: 0 \}$/m)
  t.regex(clientOut, /^inbound body: hello from TQ! \{ fin: true, len: 14 \}$/m)
  t.regex(clientOut, /^received full body, exiting$/m)

  server.kill('SIGTERM')
  const [serverCode] = await once(server, 'exit')
  t.is(serverCode, 0, 'SIGTERM closes the listener and the server exits cleanly')
  t.regex(serverOut, /incoming headers/)
  t.regex(serverOut, /':path', '\/'/)
})

test('examples/cluster.ts: two workers share one UDP port (reusePort) and both serve clients', async (t) => {
  const id = await testIdentity()
  const primary = spawn(process.execPath, ['--import=tsx', `${EXAMPLES}/cluster.ts`, '2', '127.0.0.1:0', '--cert', id.certPath, '--key', id.keyPath], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => primary.kill('SIGKILL'))
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: primary.stdout! }).on('line', (line) => {
      const m = /^listening on (\S+) with 2 workers$/.exec(line)
      if (m) resolve(m[1]!)
    })
    primary.on('exit', (code) => reject(new Error(`primary exited early with ${code}`)))
  })
  // Each connection has its own source port, so the kernel's hash spreads them.
  const pids = new Set<string>()
  for (let i = 0; i < 24; i++) {
    const client = await connect(address, { serverName: 'localhost', ca: id.certPath })
    const res = await client.request()
    t.is(res.status, 200)
    pids.add(/^hello from worker (\d+)$/m.exec(await res.body.text())![1]!)
    await client.close()
  }
  t.is(pids.size, 2, `24 connections reached both workers: ${[...pids].join(', ')}`)
  primary.kill('SIGTERM')
  const [code] = await once(primary, 'exit')
  t.is(code, 0, 'SIGTERM stops the workers and the primary exits cleanly')
})
