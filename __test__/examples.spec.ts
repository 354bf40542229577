// The tokio-quiche README's two examples, ported to examples/, run as child
// processes against each other.
import test from 'ava'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
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
