// worker_threads are supported: every thread's clients and servers share the
// addon's one tokio runtime, and a worker exits by itself after close().
import test from 'ava'
import { once } from 'node:events'
import { Worker } from 'node:worker_threads'
import { header, startServer } from './helpers.js'

test('clients in two worker threads and a server on the main thread', async (t) => {
  const server = await startServer(async (req) => {
    await req.send.sendHeaders([[':status', '200']])
    await req.send.end(`echo ${header(req.headers, ':path')}`)
  })
  t.teardown(() => server.close())
  const runs = [1, 2].map(async (id) => {
    const worker = new Worker(`${__dirname}/fixtures/worker-client.mjs`, {
      workerData: { address: server.address, ca: server.identity.cert, id },
    })
    const [bodies] = (await once(worker, 'message')) as [string[]]
    const [code] = await once(worker, 'exit')
    return { id, bodies, code }
  })
  for (const { id, bodies, code } of await Promise.all(runs)) {
    t.is(code, 0, `worker ${id} exited by itself`)
    t.deepEqual(bodies, Array.from({ length: 20 }, (_, i) => `echo /worker/${id}/${i}`))
  }
})
