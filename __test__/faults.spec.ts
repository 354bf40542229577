// Faults (issue 18): close() with 100 requests in flight. Every promise
// settles, completed responses keep every byte (SHA-256), and the others fail
// with a typed error, whichever side closes.
import test from 'ava'
import { TokioQuicheError, connect } from 'tokio-quiche'
import { patternBytes, sha256, sleep, startServer } from './helpers.js'

const REQUESTS = 100
const BODY = 48 * 1024
const SETTLE_LIMIT_MS = 5000

const modes = [['client', 'as they arrive'], ['server', 'as they arrive'], ['client', 'only after the close']] as const
for (const [closer, reading] of modes) {
  test(`${closer} close() with ${REQUESTS} requests in flight, bodies read ${reading}: all settle, completed responses are whole`, async (t) => {
    let ended = 0
    const server = await startServer(async (req) => {
      const i = Number(req.headers.find(([n]) => n === ':path')![1].slice(1))
      await req.send.sendHeaders([[':status', '200']])
      if (i % 2 === 0) {
        await req.send.end(patternBytes(BODY, i + 1))
        ended++
      } else {
        await req.send.write('partial') // and never ends
      }
    })
    t.teardown(() => server.close())
    const client = await connect(server.address, { serverName: 'localhost', ca: server.identity.cert })
    let closed!: () => void
    const afterClose = new Promise<void>((r) => (closed = r))
    // Each body is read as it comes (as an application would), or held unread until after the close.
    const outcomes = Array.from({ length: REQUESTS }, (_, i) =>
      client
        .request({ path: `/${i}` })
        .then(async (res) => (reading === 'as they arrive' ? res : afterClose.then(() => res)))
        .then((res) => res.body.bytes())
        .then((body) => ({ i, hash: sha256(body), size: body.length }), (err: unknown) => ({ i, err })),
    )
    while (ended < REQUESTS / 2) await sleep(10)
    if (reading === 'as they arrive') {
      // The completed responses must have arrived before the close for "lost" to mean anything.
      const completed = await Promise.race([Promise.all(outcomes.filter((_, i) => i % 2 === 0)), sleep(SETTLE_LIMIT_MS).then(() => null)])
      t.truthy(completed, 'the completed responses arrived')
    } else {
      await sleep(300) // the server has ended them: let the bytes cross loopback
    }
    if (closer === 'client') await client.close()
    else await server.close()
    closed()
    const settled = await Promise.race([Promise.all(outcomes), sleep(SETTLE_LIMIT_MS).then(() => null)])
    if (!settled) return t.fail(`not every promise settled within ${SETTLE_LIMIT_MS} ms`)
    for (const outcome of settled) {
      if (outcome.i % 2 === 0) {
        t.deepEqual(outcome, { i: outcome.i, hash: sha256(patternBytes(BODY, outcome.i + 1)), size: BODY }, `response ${outcome.i}`)
      } else {
        const err = (outcome as { err?: unknown }).err
        t.true(err instanceof TokioQuicheError, `request ${outcome.i}: ${String(err)}`)
        t.true(['ERR_CLOSED', 'ERR_STREAM_CLOSED'].includes((err as TokioQuicheError).code), `request ${outcome.i}: ${(err as TokioQuicheError).code}`)
      }
    }
    await client.close()
  })
}
