// Idle HTTP/2 and HTTP/1.1 connections for the memory-per-connection
// scenario, as `tq-bench idle` does for HTTP/3: COUNT connections, one GET
// each, then held open and silent until the process is killed. Memory is
// measured on the server, so this client's own cost does not matter.
//   tsx bench/idle-tcp.ts h2|h1 ADDR PATH COUNT
import { Agent, get } from 'node:https'
import { connect } from 'node:http2'

/** Handshakes in flight at once (as tq-bench idle). */
const OPENING = 64
const held: unknown[] = []

function h2(url: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = connect(url, { rejectUnauthorized: false }).on('error', reject)
    held.push(session)
    session.request({ ':path': path }).on('error', reject).on('end', resolve).resume()
  })
}

function h1(url: string, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    // One keep-alive agent per connection, so each GET opens its own and keeps it.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    held.push(agent)
    get(`${url}${path}`, { agent, rejectUnauthorized: false }, (res) => res.on('end', resolve).resume()).on('error', reject)
  })
}

async function main(): Promise<void> {
  const [kind, addr, path, count] = process.argv.slice(2)
  const open = kind === 'h2' ? h2 : kind === 'h1' ? h1 : undefined
  if (!open || !addr || !path || !count) throw new Error('usage: idle-tcp.ts h2|h1 ADDR PATH COUNT')
  const start = performance.now()
  let next = 0
  const opener = async () => {
    while (next < Number(count)) {
      next++
      await open(`https://${addr}`, path)
    }
  }
  await Promise.all(Array.from({ length: OPENING }, opener))
  console.log(JSON.stringify({ connections: held.length, seconds: (performance.now() - start) / 1000 }))
  setInterval(() => {}, 1 << 30) // hold until killed
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
