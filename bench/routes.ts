// What every Node subject serves, the same as crates/bench (subject N):
//   GET /bytes/<n>  n bytes, sent in 64 KiB chunks
//   GET anything    1 KiB
//   POST anything   the body is read, counted and discarded; the answer is its length in decimal
// and the stats channel: each line on stdin is answered on stdout with
// `stats {"uploaded":N,"heapUsed":N}` (bench/subjects.ts reads it).
import { createInterface } from 'node:readline'

/**
 * Every bench client connects from 127.0.0.1, and idle-10k holds 10,000
 * connections: past the default ConnectionLimits, which native tokio-quiche
 * (subject N) does not have either.
 */
export const LIMITS = { maxConnections: Infinity, maxConnectionsPerSource: Infinity }

export const CHUNK = 64 * 1024
export const SMALL = 1024
/** One shared buffer: no subject pays for producing response bytes. */
export const DATA = Buffer.alloc(CHUNK, 0x57)

export function responseSize(path: string | undefined): number {
  const n = path?.startsWith('/bytes/') ? Number(path.slice(7)) : NaN
  return Number.isInteger(n) ? n : SMALL
}

/** The chunks of an n-byte body, each a view of DATA. */
export function* bodyChunks(size: number): Generator<Buffer> {
  for (let left = size; left > 0; left -= CHUNK) yield left >= CHUNK ? DATA : DATA.subarray(0, left)
}

/** Request-body bytes received so far, partial uploads included. */
let uploaded = 0

/** Counts an upload's chunks into the stats as they arrive; resolves with its length. */
export async function countUpload(body: AsyncIterable<Uint8Array>): Promise<number> {
  let n = 0
  for await (const chunk of body) {
    n += chunk.length
    uploaded += chunk.length
  }
  return n
}

/** What writeBody() needs of a response: a Writable's write/drain/end contract. */
export interface BodySink {
  write(chunk: Buffer): boolean
  once(event: 'drain' | 'close', listener: () => void): unknown
  off(event: 'close', listener: () => void): unknown
  end(): unknown
}

/** Writes an n-byte body to a Node stream (an http1, http2 or createServer() response), honouring back-pressure. */
export async function writeBody(out: BodySink, size: number): Promise<void> {
  for (const chunk of bodyChunks(size)) {
    if (!out.write(chunk)) {
      await new Promise<void>((resolve, reject) => {
        // One listener pair per wait, both gone afterwards (no leak over a long body).
        const onClose = () => reject(new Error('closed'))
        out.once('close', onClose)
        out.once('drain', () => {
          out.off('close', onClose)
          resolve()
        })
      })
    }
  }
  out.end()
}

/**
 * Answers the stats channel; the end of stdin ends the process, so it never
 * outlives the harness. `extra` adds subject-specific figures.
 */
export function answerStats(extra: () => object = () => ({})): void {
  createInterface({ input: process.stdin }).on('close', () => process.exit(0)).on('line', () => {
    // With --expose-gc the heap figure is live objects only (idle memory scenario).
    ;(globalThis as { gc?: () => void }).gc?.()
    console.log(`stats ${JSON.stringify({ uploaded, heapUsed: process.memoryUsage().heapUsed, ...extra() })}`)
  })
}
