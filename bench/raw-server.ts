// The raw QUIC subject: this package's RawQuicConnection echoing every
// bidirectional stream, as `tq-bench raw-server` (crates/bench/src/raw.rs)
// does natively. Run by bench/raw.ts.
//   tsx bench/raw-server.ts ADDR CERT KEY
import { ConnectionParams, type QuicStream, type RawQuicConnection, bridgeCounters, listen } from 'tokio-quiche'
import { LIMITS, answerStats } from './routes'

/** The ALPN of `tq-bench raw-load`. */
const ALPN = 'tq-bench-raw'

/** Writes back what arrives; the last chunk goes with FIN (see examples/hq-interop.ts for why). */
async function echo(stream: QuicStream): Promise<void> {
  let held: Buffer | undefined
  for await (const chunk of stream) {
    if (held) await stream.write(held)
    held = chunk
  }
  await stream.end(held)
}

async function serveConnection(connection: RawQuicConnection): Promise<void> {
  for await (const stream of connection) echo(stream).catch(() => {})
}

async function main(): Promise<void> {
  const [addr = '127.0.0.1:0', cert, key] = process.argv.slice(2)
  answerStats(() => ({ bridge: bridgeCounters() }))
  const [listener] = await listen([addr], ConnectionParams.newServer({ tls: { cert: cert!, privateKey: key! }, alpn: [ALPN], limits: LIMITS }))
  console.log(`listening ${listener!.localAddress}`)
  process.once('SIGTERM', () => void listener!.close())
  for await (const connection of listener!.startRaw()) void serveConnection(connection)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
