// createServer(): node:http2's compatibility API ((req, res) handlers) over
// HTTP/3, for Express/Fastify-style code. Built like serve(): listen() and
// startH3(), one Http3ServerRequest/Http3ServerResponse pair per request.
import { EventEmitter } from 'node:events'
import { Readable, Stream } from 'node:stream'
import { type AddressInfo, addressInfo } from './address.js'
import { bodyDeadline, requestTimeoutOption } from './deadline.js'
import { drain, sendGoaway } from './drain.js'
import { TokioQuicheError, invalidArg, shown } from './errors.js'
import type { ServerH3Event } from './events.js'
import { HOP_BY_HOP, type Header, type InboundFrameStream, type OutboundFrameSender, RESOLVED } from './frames.js'
import { type ConnectionLimits, ConnectionParams, type ServerTlsOptions } from './params.js'
import { type QuicListener, type ServerH3Controller, listen } from './server.js'
import type { Http3SettingsInit, QuicSettings } from './settings.js'

type RequestEvent = Extract<ServerH3Event, { type: 'headers' }>

/** Options of {@link createServer}. */
export interface CreateServerOptions {
  /** Certificate and key, as for `serve()`. */
  tls: ServerTlsOptions
  /** QUIC transport settings (idle timeout, flow-control windows, ...). */
  settings?: QuicSettings
  /** Caps on connections at once, in all and per source; see {@link ConnectionLimits}. */
  limits?: ConnectionLimits
  /** HTTP/3 SETTINGS the server sends. */
  http3?: Http3SettingsInit
  /**
   * Time from a request's headers to the end of its body, ms, like Node's
   * `server.requestTimeout`. Past it, the client gets 408 if no response
   * has started, is told to stop sending (STOP_SENDING), and `req` is
   * destroyed with an `ERR_STREAM_CLOSED` error. Default 300000, as in Node;
   * `0` turns it off. CONNECT tunnels have no deadline.
   */
  requestTimeoutMs?: number
}

/** A `(req, res)` handler as `node:http2`'s compatibility API calls it. */
export type RequestListener = (req: Http3ServerRequest, res: Http3ServerResponse) => unknown

/** `socket`-like peer information of a request (there is no TCP socket). */
export interface PeerInfo {
  /** The client's IP address. */
  remoteAddress: string
  /** The client's UDP port. */
  remotePort: number
  remoteFamily: 'IPv4' | 'IPv6'
  /** The server's address the connection arrived on. */
  localAddress: string
  localPort: number
  /** Always true: QUIC is always TLS (`tls.TLSSocket` has it; frameworks read it for the protocol). */
  encrypted: true
}

/** The peer info of one connection, shared by its requests. */
function peerInfo(controller: ServerH3Controller): PeerInfo {
  const remote = addressInfo(controller.peerAddress ?? ':0')
  const local = addressInfo(controller.localAddress ?? ':0')
  return { remoteAddress: remote.address, remotePort: remote.port, remoteFamily: remote.family, localAddress: local.address, localPort: local.port, encrypted: true }
}

/**
 * `http2.Http2ServerRequest` for HTTP/3: a `Readable` of the request body
 * that pulls from the stream only while someone reads.
 */
export class Http3ServerRequest extends Readable {
  readonly #event: RequestEvent
  #headers: Record<string, string> | undefined
  /** Trailers: HTTP/3 request trailers are not surfaced by the binding, so always empty. */
  readonly trailers: Record<string, string> = {}
  /** `'3.0'`, as `node:http2` says `'2.0'`. */
  readonly httpVersion = '3.0'
  readonly httpVersionMajor = 3
  readonly httpVersionMinor = 0
  /** The connection's peer, in a `net.Socket`'s property names. */
  readonly socket: PeerInfo
  /** True once the client reset the stream or the connection went before the body ended. */
  aborted = false
  /** The `:method` pseudo-header. */
  method: string
  /** The `:path` pseudo-header (path and query); frameworks may rewrite it. */
  url: string

  /** Runs once the body's end (or failure) has been read: the deadline's clearing. */
  #onBodyEnd: (() => void) | undefined

  constructor(event: RequestEvent, socket: PeerInfo) {
    super()
    this.#event = event
    this.socket = socket
    let method = 'GET'
    let path = '/'
    for (const [name, value] of event.headers) {
      if (name === ':method') method = value
      else if (name === ':path') path = value
    }
    this.method = method
    this.url = path
    if (event.readFin && method !== 'CONNECT') this.push(null)
  }

  /** Header fields by lower-case name, pseudo-headers included; repeats joined by `, ` (`cookie` by `; `). */
  get headers(): Record<string, string> {
    if (!this.#headers) {
      const headers: Record<string, string> = Object.create(null)
      for (const [name, value] of this.#event.headers) {
        const prior = headers[name]
        headers[name] = prior === undefined ? value : `${prior}${name === 'cookie' ? '; ' : ', '}${value}`
      }
      this.#headers = headers
    }
    return this.#headers
  }

  /** Names and values alternately, as received. */
  get rawHeaders(): string[] {
    return this.#event.headers.flat()
  }

  /** The `:authority` pseudo-header (or `host`). */
  get authority(): string {
    return this.headers[':authority'] ?? this.headers.host ?? ''
  }

  /** The `:scheme` pseudo-header; `https` when absent. */
  get scheme(): string {
    return this.headers[':scheme'] ?? 'https'
  }

  /** The QUIC stream id of this request. */
  get streamId(): number {
    return this.#event.streamId
  }

  /** The same as {@link Http3ServerRequest.socket} (the old `http` name). */
  get connection(): PeerInfo {
    return this.socket
  }

  /** @internal `onBodyEnd` runs once the body has ended or failed. */
  set onBodyEnd(onBodyEnd: () => void) {
    this.#onBodyEnd = onBodyEnd
  }

  override _read(): void {
    this.#event.recv.recv().then(
      (frame) => {
        if (!frame || frame.fin) this.#onBodyEnd?.()
        if (!frame) return void this.push(null)
        if (frame.data.length > 0) this.push(frame.data)
        if (frame.fin) this.push(null)
        // An empty non-final frame pushed nothing: read on, or the stream stalls.
        else if (frame.data.length === 0) this._read()
      },
      (err: Error) => {
        this.#onBodyEnd?.()
        this.aborted = true
        this.emit('aborted')
        this.destroy(err)
      },
    )
  }

  /**
   * As `http.IncomingMessage` does: a body that fails (the client reset the
   * stream, the connection went) emits `'error'` only if someone listens;
   * `'aborted'` and `'close'` always follow. Otherwise a client's reset would
   * crash a handler that only listens for `'data'` (an unhandled `'error'`).
   */
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    cb(this.listenerCount('error') > 0 ? err : null)
  }

  /** The body stream underneath, for callers that want InboundFrameStream. */
  get inbound(): InboundFrameStream {
    return this.#event.recv
  }
}

/**
 * Body bytes written before the headers left wait with them for the rest of
 * the current tick, up to this many, so `writeHead(); write(); end()` (as
 * Fastify sends) still goes out in one `respond()`.
 */
const HOLD_LIMIT = 16 * 1024

type WriteCallback = (err?: Error | null) => void

/** The headers and body bytes committed but not yet handed to the driver. */
interface Held {
  headers: Header[]
  chunks: Uint8Array[]
  bytes: number
  callbacks: WriteCallback[]
}

/**
 * `http2.Http2ServerResponse` for HTTP/3 (a legacy `Stream`, as there).
 * Headers leave with the first body bytes, and a response ended within the
 * tick it started in goes out in one call with its body.
 */
export class Http3ServerResponse extends Stream {
  /** The request this answers. */
  readonly req: Http3ServerRequest
  readonly #send: OutboundFrameSender
  readonly #isHead: boolean
  #headers: Map<string, string | string[]> | undefined
  #trailers: Header[] | undefined
  #headersSent = false
  #held: Held | undefined
  #ended = false
  #finished = false
  #pending = 0
  #needDrain = false
  #closed = false
  /** The status sent with the headers; 200 unless set. */
  statusCode = 200
  /** Accepted for compatibility and ignored: HTTP/3 has no reason phrase. */
  statusMessage = 'OK'
  /** Accepted and ignored: no `date` header is added (Node's servers add one by default). */
  sendDate = false

  constructor(req: Http3ServerRequest, send: OutboundFrameSender) {
    super()
    this.req = req
    this.#send = send
    this.#isHead = req.method === 'HEAD'
  }

  /** True once the headers are committed (the first `write()`, `end()` or `flushHeaders()`). */
  get headersSent(): boolean {
    return this.#headersSent
  }

  /** True until `end()` (or a reset). */
  get writable(): boolean {
    return !this.#ended
  }

  /** True once `end()` was called. */
  get writableEnded(): boolean {
    return this.#ended
  }

  /** True once the driver took the last frame (`'finish'` has fired). */
  get writableFinished(): boolean {
    return this.#finished
  }

  /** The old name of {@link Http3ServerResponse.writableEnded}. */
  get finished(): boolean {
    return this.#ended
  }

  /** The request's {@link PeerInfo}. */
  get socket(): PeerInfo {
    return this.req.socket
  }

  /** True while a write waits for the driver (as `Writable.writableNeedDrain`). */
  get writableNeedDrain(): boolean {
    return this.#needDrain
  }

  #notSent(what: string): void {
    if (this.#headersSent) throw new TokioQuicheError('ERR_HTTP_HEADERS_SENT', `${what}: the headers were already sent`)
  }

  /** Sets a response header (names are case-insensitive); an array sends the field once per value. */
  setHeader(name: string, value: string | number | readonly (string | number)[]): this {
    if (typeof name !== 'string' || name === '') throw invalidArg('name', 'expected a header name')
    this.#notSent(`setHeader(${name})`)
    ;(this.#headers ??= new Map()).set(name.toLowerCase(), Array.isArray(value) ? value.map(String) : String(value))
    return this
  }

  /** A header set so far, by any case of its name. */
  getHeader(name: string): string | string[] | undefined {
    return this.#headers?.get(name.toLowerCase())
  }

  /** The headers set so far, by lower-case name. */
  getHeaders(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = Object.create(null)
    if (this.#headers) for (const [name, value] of this.#headers) out[name] = value
    return out
  }

  /** The lower-case names of the headers set so far. */
  getHeaderNames(): string[] {
    return this.#headers ? [...this.#headers.keys()] : []
  }

  /** Whether a header is set, by any case of its name. */
  hasHeader(name: string): boolean {
    return this.#headers?.has(name.toLowerCase()) ?? false
  }

  /** Unsets a header before the headers are sent. */
  removeHeader(name: string): void {
    this.#notSent(`removeHeader(${name})`)
    this.#headers?.delete(name.toLowerCase())
  }

  /** Sets the status and more headers; they leave with the first write or `end()`. */
  writeHead(statusCode: number, statusMessageOrHeaders?: string | Record<string, string | number | readonly (string | number)[]>, headers?: Record<string, string | number | readonly (string | number)[]>): this {
    this.#notSent('writeHead()')
    if (!Number.isInteger(statusCode) || statusCode < 100 || statusCode > 999) throw invalidArg('statusCode', `expected an integer 100-999, got ${shown(statusCode)}`)
    this.statusCode = statusCode
    const extra = typeof statusMessageOrHeaders === 'object' ? statusMessageOrHeaders : headers
    if (extra) for (const name of Object.keys(extra)) this.setHeader(name, extra[name]!)
    return this
  }

  /** Trailers sent after the body when the response ends. */
  addTrailers(headers: Record<string, string | number>): void {
    const list = (this.#trailers ??= [])
    for (const name of Object.keys(headers)) list.push([name.toLowerCase(), String(headers[name])])
  }

  #headerList(): Header[] {
    const list: Header[] = [[':status', String(this.statusCode)]]
    if (this.#headers) {
      for (const [name, value] of this.#headers) {
        if (HOP_BY_HOP.has(name)) continue
        if (typeof value === 'string') list.push([name, value])
        else for (const v of value) list.push([name, v])
      }
    }
    return list
  }

  /** Commits the headers: later body bytes of this tick wait to leave with them. */
  #commit(): void {
    if (this.#headersSent) return
    this.#headersSent = true
    this.#held = { headers: this.#headerList(), chunks: [], bytes: 0, callbacks: [] }
    queueMicrotask(() => this.#flush())
  }

  /** Hands the held headers and bytes to the driver; the promise of the bytes, if any. */
  #flush(): Promise<void> | undefined {
    const held = this.#held
    if (!held) return undefined
    this.#held = undefined
    this.#track(this.#send.sendHeaders(held.headers))
    if (held.bytes === 0) return undefined
    const sent = this.#send.write(concat(held.chunks, held.bytes))
    this.#track(sent, held.callbacks)
    return sent
  }

  /** Sends the headers now if they have not gone yet. */
  flushHeaders(): void {
    this.#commit()
    this.#flush()
  }

  /** Like `Writable.write`: false when the driver's queue is full; `'drain'` follows. */
  write(chunk: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): boolean {
    if (typeof encoding === 'function') cb = encoding
    if (this.#ended) {
      const err = new TokioQuicheError('ERR_STREAM_CLOSED', 'write after end')
      if (cb) queueMicrotask(() => cb(err))
      this.emit('error', err)
      return false
    }
    this.#commit()
    const data = toBytes(chunk, encoding)
    if (this.#isHead || data.length === 0) {
      if (cb) queueMicrotask(cb)
      return true
    }
    const held = this.#held
    let sent: Promise<void> | undefined
    if (held) {
      held.chunks.push(data)
      held.bytes += data.length
      if (cb) held.callbacks.push(cb)
      if (held.bytes < HOLD_LIMIT) return true
      sent = this.#flush()
    } else {
      sent = this.#send.write(data)
      this.#track(sent, cb ? [cb] : [])
    }
    if (sent === RESOLVED && this.#pending === 0) return true
    this.#needDrain = true
    return false
  }

  /** Ends the response, optionally with a last chunk. */
  end(chunk?: string | Uint8Array | null | (() => void), encoding?: BufferEncoding | null | (() => void), cb?: (() => void) | null): this {
    if (typeof chunk === 'function') [cb, chunk] = [chunk, undefined]
    else if (typeof encoding === 'function') cb = encoding
    if (this.#ended) {
      if (cb) queueMicrotask(cb)
      return this
    }
    this.#commit()
    this.#ended = true
    if (cb) this.once('finish', cb)
    const last = chunk == null || this.#isHead ? EMPTY : toBytes(chunk, encoding)
    const held = this.#held
    let done: Promise<void>
    if (held && !this.#trailers) {
      // The whole response is still here: one call carries it.
      this.#held = undefined
      if (last.length > 0) held.chunks.push(last)
      done = this.#send.respond(held.headers, concat(held.chunks, held.bytes + last.length))
      this.#track(done, held.callbacks)
    } else {
      this.#flush()
      if (this.#trailers) {
        if (last.length > 0) this.#track(this.#send.write(last))
        done = this.#send.send({ type: 'trailers', headers: this.#trailers })
      } else done = this.#send.end(last)
    }
    done.then(
      () => {
        this.#finished = true
        this.#closed = true
        this.emit('finish')
        this.emit('close')
      },
      (err: Error) => this.#fail(err),
    )
    return this
  }

  /** Resets the stream (H3_REQUEST_CANCELLED) unless it ended; held bytes are dropped. */
  destroy(err?: Error): this {
    this.#held = undefined
    this.#send.close()
    if (!this.#finished) this.#fail(err)
    return this
  }

  #track(sent: Promise<void>, callbacks: readonly WriteCallback[] = []): void {
    if (sent === RESOLVED) {
      for (const cb of callbacks) queueMicrotask(cb)
      return
    }
    this.#pending++
    sent.then(
      () => {
        for (const cb of callbacks) cb()
        if (--this.#pending === 0 && this.#needDrain) {
          this.#needDrain = false
          this.emit('drain')
        }
      },
      (err: Error) => {
        this.#pending--
        for (const cb of callbacks) cb(err)
        this.#fail(err)
      },
    )
  }

  #fail(err?: Error): void {
    if (this.#finished || this.#closed) return
    this.#closed = true
    this.#ended = true
    if (err && this.listenerCount('error') > 0) this.emit('error', err)
    this.emit('close')
  }
}

function toBytes(chunk: string | Uint8Array, encoding: unknown): Uint8Array {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
  if (chunk instanceof Uint8Array) return chunk
  throw invalidArg('chunk', 'expected a string, Buffer or Uint8Array')
}

function concat(chunks: Uint8Array[], bytes: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!
  return Buffer.concat(chunks, bytes)
}

const EMPTY = new Uint8Array(0)

const SERVER_KEYS = new Set(['tls', 'settings', 'limits', 'http3', 'requestTimeoutMs'])

/**
 * `http2.Http2SecureServer` for HTTP/3: emits `'request'` with
 * ({@link Http3ServerRequest}, {@link Http3ServerResponse}), plus `'listening'`,
 * `'error'` and `'close'`.
 */
export class Http3Server extends EventEmitter implements AsyncDisposable {
  readonly #options: CreateServerOptions
  readonly #params: ConnectionParams
  #listener: QuicListener | undefined
  #bound: Promise<void> | undefined
  #serving: Promise<void> | undefined
  #closing: Promise<void> | undefined
  readonly #controllers = new Set<ServerH3Controller>()
  readonly #requestTimeoutMs: number

  constructor(options: CreateServerOptions, handler?: RequestListener) {
    super()
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected { tls, settings?, limits?, http3?, requestTimeoutMs? }')
    for (const key of Object.keys(options)) if (!SERVER_KEYS.has(key)) throw invalidArg(`options.${key}`, 'is not a known option')
    this.#options = options
    this.#requestTimeoutMs = requestTimeoutOption(options.requestTimeoutMs)
    // Validates tls and settings now, so bad options throw here.
    this.#params = ConnectionParams.newServer({
      tls: options.tls,
      ...(options.settings ? { settings: options.settings } : {}),
      ...(options.limits !== undefined ? { limits: options.limits } : {}),
    })
    if (handler !== undefined) {
      if (typeof handler !== 'function') throw invalidArg('handler', 'expected a function (req, res) => void')
      this.on('request', handler)
    }
  }

  /** Binds UDP `port` on `host` (default `0.0.0.0`); `cb` runs on `'listening'`. */
  listen(port?: number | { port?: number; host?: string }, host?: string | (() => void), cb?: () => void): this {
    if (typeof host === 'function') [cb, host] = [host, undefined]
    const where = typeof port === 'object' && port !== null ? port : { port, host }
    if (where.port !== undefined && !(Number.isInteger(where.port) && where.port >= 0 && where.port <= 65535)) throw invalidArg('port', `expected an integer 0-65535, got ${shown(where.port)}`)
    if (where.host !== undefined && (typeof where.host !== 'string' || where.host === '')) throw invalidArg('host', 'expected a host name or IP address')
    if (cb !== undefined && typeof cb !== 'function') throw invalidArg('callback', 'expected a function')
    if (this.#bound) throw new TokioQuicheError('ERR_LISTEN', 'listen(): the server is already listening')
    if (cb) this.once('listening', cb)
    this.#bound = listen([{ host: where.host ?? '0.0.0.0', port: where.port ?? 0 }], this.#params).then(
      ([listener]) => {
        this.#listener = listener!
        this.#serving = this.#accept(listener!)
        this.emit('listening')
      },
      (err: Error) => void this.emit('error', err),
    )
    return this
  }

  async #accept(listener: QuicListener): Promise<void> {
    for await (const controller of listener.startH3(this.#options.http3)) {
      this.#controllers.add(controller)
      // One arriving while close() drains is told to go away at once, as serve() does.
      if (this.#closing) sendGoaway(controller)
      void this.#serveConnection(controller)
    }
  }

  async #serveConnection(controller: ServerH3Controller): Promise<void> {
    const socket = peerInfo(controller)
    try {
      for await (const event of controller) {
        if (event.type === 'headers') this.#request(event, socket)
      }
    } finally {
      this.#controllers.delete(controller)
    }
  }

  #request(event: RequestEvent, socket: PeerInfo): void {
    const req = new Http3ServerRequest(event, socket)
    const res = new Http3ServerResponse(req, event.send)
    res.once('close', () => req.emit('close'))
    if (!event.readFin && req.method !== 'CONNECT') {
      const clear = bodyDeadline(event.streamId, this.#requestTimeoutMs, (err) => {
        if (!res.headersSent) res.writeHead(408).end()
        event.recv.close()
        req.destroy(err)
      })
      req.onBodyEnd = clear
      res.once('close', clear)
    }
    for (const listener of this.listeners('request') as RequestListener[]) {
      try {
        const result = listener(req, res) as Promise<unknown> | undefined
        if (result && typeof result.then === 'function') result.then(undefined, (err: unknown) => this.#handlerFailed(err, res))
      } catch (err) {
        this.#handlerFailed(err, res)
      }
    }
  }


  /** What a throwing listener leaves behind: a 500 if nothing was sent, else a reset. */
  #handlerFailed(err: unknown, res: Http3ServerResponse): void {
    if (!res.headersSent) res.writeHead(500).end()
    else res.destroy()
    if (this.listenerCount('error') > 0) this.emit('error', err)
    else console.error('tokio-quiche createServer(): request handler failed:', err)
  }

  /** `{ address, family, port }` once listening, else null. */
  address(): AddressInfo | null {
    if (!this.#listener) return null
    return addressInfo(this.#listener.localAddress)
  }

  /** True between `'listening'` and `close()`. */
  get listening(): boolean {
    return this.#listener !== undefined && !this.#closing
  }

  /**
   * Sends GOAWAY on every connection and waits for the clients to close
   * them once their requests are done (as `node:http2` waits for its
   * sessions); then stops listening and emits `'close'`.
   */
  close(cb?: (err?: Error) => void): this {
    if (cb) this.once('close', cb)
    this.#closing ??= (async () => {
      await this.#bound
      const listener = this.#listener
      if (!listener) return
      await drain(this.#controllers, Infinity)
      await listener.close()
      await this.#serving
    })().then(() => void this.emit('close'))
    return this
  }

  /** `await using` support: {@link Http3Server.close}, awaited. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
    await this.#closing
  }
}

/**
 * An HTTP/3 server with `node:http2`'s compatibility API: `handler(req, res)`
 * per request. Call `listen(port)` to start it.
 */
export function createServer(options: CreateServerOptions, handler?: RequestListener): Http3Server {
  return new Http3Server(options, handler)
}
