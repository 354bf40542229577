import { type AddressInfo, addressInfo } from './address.js'
import { requestTimeoutOption } from './deadline.js'
import { drain, sendGoaway } from './drain.js'
import { checkSignal, invalidArg, shown } from './errors.js'
import type { ServerH3Event } from './events.js'
import { HOP_BY_HOP, type Header, type OutboundFrameSender } from './frames.js'
import { type ConnectionLimits, ConnectionParams, type ServerTlsOptions } from './params.js'
import { type ListenSocket, type QuicListener, type ServerH3Controller, listen } from './server.js'
import type { Http3SettingsInit, QuicSettings } from './settings.js'
import { bodyInMemory, toRequest } from './web.js'

/** What a {@link serve} handler learns besides the request. */
export interface RequestInfo {
  /** `ip:port` of the client. */
  remoteAddress: string
  streamId: number
  /** The request arrived in 0-RTT data (it may be a replay). */
  isInEarlyData: boolean
}

/** A fetch-style handler: a WHATWG `Request` in, a `Response` out. */
export type FetchHandler = (request: Request, info: RequestInfo) => Response | Promise<Response>

export interface ServeOptions {
  /** Where to listen. Default `{ host: '0.0.0.0', port: 443 }`. */
  socket?: ListenSocket
  tls: ServerTlsOptions
  settings?: QuicSettings
  /** Caps on connections at once, in all and per source; see {@link ConnectionLimits}. */
  limits?: ConnectionLimits
  http3?: Http3SettingsInit
  /** Aborting it closes the server. */
  signal?: AbortSignal
  /** Called with errors a handler threw (the client got a 500 or a reset). Default: `console.error`. */
  onError?: (error: unknown, request: Request) => void
  /**
   * Time from a request's headers to the end of its body, ms, like Node's
   * `server.requestTimeout`. Past it, the body's stream errors with
   * `ERR_STREAM_CLOSED` and the client is told to stop sending (STOP_SENDING).
   * Default 300000, as in Node; `0` turns it off. tokio-quiche has no such
   * deadline.
   */
  requestTimeoutMs?: number
}

const SERVE_KEYS = new Set(['socket', 'tls', 'settings', 'limits', 'http3', 'signal', 'onError', 'requestTimeoutMs'])

/**
 * `@hono/node-server`'s `serve()` options: the handler in `fetch` (Hono's
 * `app.fetch`, which gets {@link RequestInfo} as its `env`), and `port` /
 * `hostname` instead of `socket`.
 */
export interface FetchServeOptions extends Omit<ServeOptions, 'socket'> {
  fetch: FetchHandler
  /** UDP port. Default 3000, as `@hono/node-server`. */
  port?: number
  /** Default `0.0.0.0`. */
  hostname?: string
}

/** A running {@link serve} server. */
export interface Server extends AsyncDisposable {
  /** The bound `ip:port`. */
  readonly address: string
  readonly port: number
  /** Resolves once the server has closed and its connections have ended. */
  readonly finished: Promise<void>
  /** Stops accepting and closes every connection (H3_NO_ERROR). */
  close(): Promise<void>
  /**
   * Graceful close: sends GOAWAY on every connection (and on any that
   * arrives meanwhile), waits for the clients to close their connections
   * once their requests are done, up to `timeoutMs` (default 30,000), then
   * {@link Server.close}s.
   */
  shutdown(options?: { timeoutMs?: number }): Promise<void>
}

/** Settles once the microtasks queued before it have run. */
const afterMicrotasks = () => new Promise<typeof PENDING>((resolve) => setImmediate(resolve, PENDING))
const PENDING = Symbol('pending')

async function writeResponse(send: OutboundFrameSender, response: Response, method: string): Promise<void> {
  const headers: Header[] = [[':status', String(response.status)]]
  response.headers.forEach((value, name) => {
    if (!HOP_BY_HOP.has(name)) headers.push([name, value])
  })
  const body = method === 'HEAD' ? null : response.body
  if (!body) return send.respond(headers)
  const whole = bodyInMemory(response)
  if (whole !== undefined) return send.respond(headers, whole)
  const reader = body.getReader()
  const first = await reader.read()
  if (first.done) return send.respond(headers)
  // Any other body already in memory (a Blob, or a string or buffer where
  // undici's state is out of reach) has ended by now: it goes out with the
  // headers in one call into the binding. A streamed one does not wait: its
  // headers and first chunk leave at once.
  const second = reader.read()
  const early = await Promise.race([second, afterMicrotasks()])
  if (early !== PENDING && early.done) return send.respond(headers, first.value)
  try {
    await send.sendHeaders(headers)
    await send.write(first.value)
    for (let next = early === PENDING ? await second : early; !next.done; next = await reader.read()) await send.write(next.value)
  } catch (err) {
    // The peer went away (or the write failed): the body's source stops too,
    // so a stream over a file or a database cursor gets its cancel().
    reader.cancel(err).catch(() => {})
    throw err
  }
  await send.end()
}

async function handle(
  event: Extract<ServerH3Event, { type: 'headers' }>,
  info: RequestInfo,
  handler: FetchHandler,
  onError: (e: unknown, r: Request) => void,
  requestTimeoutMs: number,
): Promise<void> {
  let request: Request
  try {
    request = toRequest(event, requestTimeoutMs)
  } catch {
    // Headers a WHATWG Request refuses (e.g. an invalid URL): answer 400.
    await writeResponse(event.send, new Response(null, { status: 400 }), 'GET').catch(() => event.send.close())
    return
  }
  let response: Response
  try {
    response = await handler(request, info)
    if (!(response instanceof Response)) throw new TypeError('the handler did not return a Response')
  } catch (err) {
    onError(err, request)
    response = new Response(null, { status: 500 })
  }
  try {
    await writeResponse(event.send, response, request.method)
  } catch (err) {
    // The body failed midway (or the peer went away): reset rather than end it cleanly.
    onError(err, request)
    event.send.close()
  }
}

/**
 * The `@hono/node-server` shape, `serve({ fetch: app.fetch, port, tls })`;
 * `listeningListener` gets the bound address once listening.
 */
export function serve(options: FetchServeOptions, listeningListener?: (info: AddressInfo) => void): Promise<Server>
/**
 * An HTTP/3 server with a fetch-style handler, on top of `listen()` and
 * `QuicListener.startH3()`: each request becomes a WHATWG `Request` (its body a
 * pull-based `ReadableStream`), and the returned `Response` is streamed back.
 */
// Last, so `Parameters<typeof serve>` still reads this form.
export function serve(options: ServeOptions, handler: FetchHandler): Promise<Server>
export async function serve(options: ServeOptions | FetchServeOptions, second?: FetchHandler | ((info: AddressInfo) => void)): Promise<Server> {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected { tls, socket?, ... }')
  if (!('fetch' in options)) return serveHandler(options, second as FetchHandler)
  const { fetch, port = 3000, hostname = '0.0.0.0', ...rest } = options
  if (typeof fetch !== 'function') throw invalidArg('options.fetch', 'expected a function (request) => Response, such as app.fetch')
  if ('socket' in rest) throw invalidArg('options.socket', 'give port and hostname with options.fetch')
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw invalidArg('options.port', `expected an integer 0-65535, got ${shown(port)}`)
  if (typeof hostname !== 'string' || hostname === '') throw invalidArg('options.hostname', 'expected a host name or IP address')
  if (second !== undefined && typeof second !== 'function') throw invalidArg('listeningListener', 'expected a function')
  const server = await serveHandler({ ...rest, socket: { host: hostname, port } }, fetch)
  ;(second as ((info: AddressInfo) => void) | undefined)?.(addressInfo(server.address))
  return server
}

async function serveHandler(options: ServeOptions, handler: FetchHandler): Promise<Server> {
  if (typeof handler !== 'function') throw invalidArg('handler', 'expected a function (request) => Response')
  for (const key of Object.keys(options)) if (!SERVE_KEYS.has(key)) throw invalidArg(`options.${key}`, 'is not a known option')
  if (options.onError !== undefined && typeof options.onError !== 'function') throw invalidArg('options.onError', 'expected a function')
  checkSignal('options.signal', options.signal)
  const requestTimeoutMs = requestTimeoutOption(options.requestTimeoutMs)
  const params = ConnectionParams.newServer({
    tls: options.tls,
    ...(options.settings ? { settings: options.settings } : {}),
    ...(options.limits !== undefined ? { limits: options.limits } : {}),
  })
  const [listener] = (await listen([options.socket ?? { host: '0.0.0.0', port: 443 }], params)) as [QuicListener]
  const onError = options.onError ?? ((err: unknown) => console.error('tokio-quiche serve(): handler failed:', err))

  const controllers = new Set<ServerH3Controller>()
  let draining = false

  const finished = (async () => {
    for await (const controller of listener.startH3(options.http3)) {
      const remoteAddress = controller.peerAddress ?? ''
      controllers.add(controller)
      if (draining) sendGoaway(controller)
      void (async () => {
        for await (const event of controller) {
          if (event.type !== 'headers') continue
          void handle(event, { remoteAddress, streamId: event.streamId, isInEarlyData: event.isInEarlyData }, handler, onError, requestTimeoutMs)
        }
        controllers.delete(controller)
      })()
    }
  })()

  const close = async () => {
    await listener.close()
    await finished
  }
  const shutdown = async ({ timeoutMs = 30_000 }: { timeoutMs?: number } = {}) => {
    if (typeof timeoutMs !== 'number' || !(timeoutMs >= 0)) throw invalidArg('options.timeoutMs', 'expected a number of milliseconds >= 0')
    draining = true
    await drain(controllers, timeoutMs)
    await close()
  }
  if (options.signal?.aborted) void close()
  else options.signal?.addEventListener('abort', () => void close(), { once: true })
  return { address: listener.localAddress, port: listener.port, finished, close, shutdown, [Symbol.asyncDispose]: close }
}
