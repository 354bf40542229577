import { createHash } from 'node:crypto'
import {
  type ConnectOptions,
  ConnectionParams,
  connect,
  type Http3SettingsInit,
  type IncomingHeadersEvent,
  type QuicListener,
  type QuicSettings,
  type ServerH3Controller,
  type ServerH3Event,
  type ServerTlsOptions,
  ServerH3Driver,
  type WrittenCertificate,
  listen,
  writeSelfSignedCertificate,
} from 'tokio-quiche'

let identity: Promise<WrittenCertificate> | undefined
/** One certificate for localhost / 127.0.0.1 per test file. */
export function testIdentity(): Promise<WrittenCertificate> {
  identity ??= writeSelfSignedCertificate(['localhost', '127.0.0.1'])
  return identity
}

export type RequestHandler = (event: IncomingHeadersEvent, controller: ServerH3Controller) => Promise<void> | void

export interface TestServer {
  listener: QuicListener
  address: string
  identity: WrittenCertificate
  close(): Promise<void>
}

/** A real tokio-quiche server on 127.0.0.1 calling `handler` for each request. */
export async function startServer(
  handler: RequestHandler,
  options: {
    settings?: QuicSettings
    http3?: Http3SettingsInit
    identity?: WrittenCertificate
    /** Extra TLS options (SNI, client authentication) beside the identity. */
    tls?: Omit<ServerTlsOptions, 'cert' | 'privateKey'>
    /** Sees every server event, requests included. */
    onEvent?: (event: ServerH3Event) => void
  } = {},
): Promise<TestServer> {
  const id = options.identity ?? (await testIdentity())
  const [listener] = await listen(
    ['127.0.0.1:0'],
    ConnectionParams.newServer({ tls: { cert: id.certPath, privateKey: id.keyPath, ...options.tls }, ...(options.settings ? { settings: options.settings } : {}) }),
  )
  const accepting = (async () => {
    for await (const conn of listener!) {
      const { driver, controller } = ServerH3Driver.new(options.http3)
      conn.start(driver)
      void (async () => {
        for await (const event of controller) {
          options.onEvent?.(event)
          if (event.type === 'headers') {
            Promise.resolve(handler(event, controller)).catch((err) => {
              event.send.close()
              console.error('handler failed', err)
            })
          }
        }
      })()
    }
  })()
  return {
    listener: listener!,
    address: listener!.localAddress,
    identity: id,
    async close() {
      await listener!.close()
      await accepting
    },
  }
}

/** One GET on a new connection: the body text, or connect()'s or the request's error. */
export async function fetchText(address: string, options: ConnectOptions): Promise<string> {
  const client = await connect(address, options)
  try {
    return await (await client.request()).body.text()
  } finally {
    await client.close()
  }
}

export function header(headers: readonly [string, string][], name: string): string | undefined {
  return headers.find(([n]) => n === name)?.[1]
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Deterministic pseudo-random bytes, so hashes compare across processes. */
export function patternBytes(size: number, seed = 1): Buffer {
  const out = Buffer.allocUnsafe(size)
  let x = seed >>> 0 || 1
  for (let i = 0; i < size; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    out[i] = x & 0xff
  }
  return out
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
