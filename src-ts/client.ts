import { createPublicKey } from 'node:crypto'
import native, { type NativeConnectOptions, type NativeH3Controller } from './native.js'
import type { RawH3Event } from './batch.js'
import type { TlsCertificatePaths } from './params.js'
import { RequestRefusedError, TokioQuicheError, awaitNative, callNative, certificateRejection, checkSignal, invalidArg, shown } from './errors.js'
import { H3Controller } from './controller.js'
import { type ClientH3Event, type CloseInfo, type EventContext, type IncomingHeadersEvent, toEvent } from './events.js'
import { type Header, type HeadersInit, type InboundFrameStream, type OutboundFrameSender, flattenHeaders } from './frames.js'
import { type Http3Settings, type Http3SettingsInit, type QuicSettings, http3SettingsToNative, quicSettingsToNative } from './settings.js'

export interface ConnectOptions {
  /** SNI and the name the server's certificate must carry. Defaults to the address's host name; for an IP address without one, the certificate must carry that IP. */
  serverName?: string
  /** Trusted CA certificates (PEM text or a PEM file path). Replaces the system trust store. */
  ca?: string
  /**
   * Accept any server certificate. Only for tests against a server you run:
   * anyone on the path can impersonate the server.
   */
  insecureSkipVerify?: boolean
  /** A client certificate (PEM file paths) for servers that ask for one (mutual TLS). */
  clientCertificate?: TlsCertificatePaths
  /**
   * Expect this raw public key (RFC 7250) instead of a certificate: PEM
   * `PUBLIC KEY` text or DER SubjectPublicKeyInfo bytes. Needs a build with
   * the `rpk` feature; replaces `ca` and name checks.
   */
  serverPublicKey?: string | Uint8Array
  /**
   * Resume this TLS session, from `getSession()` of an earlier connection
   * to the same server: the handshake skips the certificate exchange. Not
   * 0-RTT: tokio-quiche's `connect` runs the application only after the
   * handshake, so requests never ride in early data.
   */
  session?: Uint8Array
  settings?: QuicSettings
  http3?: Http3Settings | Http3SettingsInit
  /** Aborts the handshake: `connect()` rejects and the connection is closed. */
  signal?: AbortSignal
}

/** The options `connect()` knows. */
export const CONNECT_KEYS: ReadonlySet<string> = new Set(['serverName', 'ca', 'insecureSkipVerify', 'clientCertificate', 'serverPublicKey', 'session', 'settings', 'http3', 'signal'])

function publicKeyPem(key: string | Uint8Array): string {
  try {
    const parsed = typeof key === 'string' ? createPublicKey(key) : createPublicKey({ key: Buffer.from(key), format: 'der', type: 'spki' })
    return parsed.export({ type: 'spki', format: 'pem' }).toString()
  } catch (err) {
    throw invalidArg('options.serverPublicKey', `expected a PEM public key or DER SubjectPublicKeyInfo: ${(err as Error).message}`)
  }
}

/** Validates `connect()`'s options (all but `http3`) into the binding's shape; `keys` are the ones allowed. */
export function nativeConnectOptions(address: string, options: ConnectOptions, keys: ReadonlySet<string> = CONNECT_KEYS): NativeConnectOptions {
  if (typeof address !== 'string' || address.length === 0) throw invalidArg('address', 'expected a host:port string')
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected an object')
  for (const key of Object.keys(options)) if (!keys.has(key)) throw invalidArg(`options.${key}`, 'is not a known option')
  for (const key of ['serverName', 'ca'] as const) {
    if (options[key] !== undefined && (typeof options[key] !== 'string' || options[key].length === 0)) {
      throw invalidArg(`options.${key}`, 'expected a non-empty string')
    }
  }
  if (options.insecureSkipVerify !== undefined && typeof options.insecureSkipVerify !== 'boolean') {
    throw invalidArg('options.insecureSkipVerify', 'expected a boolean')
  }
  const { signal, clientCertificate, serverPublicKey, session } = options
  checkSignal('options.signal', signal)
  if (session !== undefined && !(session instanceof Uint8Array)) throw invalidArg('options.session', 'expected the Buffer from getSession()')
  if (clientCertificate !== undefined) {
    if (clientCertificate === null || typeof clientCertificate !== 'object') throw invalidArg('options.clientCertificate', 'expected { cert, privateKey } file paths')
    for (const key of ['cert', 'privateKey'] as const) {
      if (typeof clientCertificate[key] !== 'string' || clientCertificate[key].length === 0) {
        throw invalidArg(`options.clientCertificate.${key}`, 'expected a PEM file path')
      }
    }
  }
  return {
    address,
    ...(options.serverName === undefined ? {} : { serverName: options.serverName }),
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    insecureSkipVerify: options.insecureSkipVerify ?? false,
    ...(clientCertificate ? { certPath: clientCertificate.cert, keyPath: clientCertificate.privateKey } : {}),
    ...(serverPublicKey === undefined ? {} : { serverPublicKey: publicKeyPem(serverPublicKey) }),
    ...(session === undefined ? {} : { session: Buffer.from(session.buffer, session.byteOffset, session.byteLength) }),
    settings: quicSettingsToNative(options.settings, 'options.settings'),
  }
}

/**
 * Runs a handshake the binding started and wraps its controller with
 * `make`; `signal` aborting first rejects with its reason (a connection
 * that completes after that is closed).
 */
export async function finishConnect<C extends { close(): Promise<unknown> }>(
  handshake: Promise<NativeH3Controller>,
  signal: AbortSignal | undefined,
  make: (native: NativeH3Controller) => C,
): Promise<C> {
  const pending = awaitNative(handshake).catch((err: TokioQuicheError) => Promise.reject(certificateRejection(err)))
  if (!signal) return make(await pending)
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    pending.then(
      (nativeController) => {
        signal.removeEventListener('abort', onAbort)
        const controller = make(nativeController)
        if (signal.aborted) void controller.close()
        else resolve(controller)
      },
      (err) => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      },
    )
  })
}

/**
 * `tokio_quiche::quic::connect`: opens a QUIC connection from its own UDP
 * socket, verifies the server's certificate, and resolves once the
 * handshake is done.
 */
export async function connect(address: string, options: ConnectOptions = {}): Promise<ClientH3Controller> {
  const nativeOptions = nativeConnectOptions(address, options)
  const http3 = http3SettingsToNative(options.http3)
  options.signal?.throwIfAborted()
  // request()'s default :authority: the name the certificate was checked for.
  const authority = options.serverName ?? address
  return finishConnect(native.connect({ ...nativeOptions, http3 }), options.signal, (n) => new ClientH3Controller(n, authority))
}

/** tokio-quiche's `NewClientRequest`. */
export interface NewClientRequest {
  /** Your id for this request, echoed by the `newOutboundRequest` event. */
  requestId: number
  /** Pseudo-headers (`:method`, `:scheme`, `:authority`, `:path`) first. */
  headers: HeadersInit
  /** True: the request body follows, written through the event's `bodyWriter`. False: HEADERS end the request. */
  bodyWriter?: boolean
}

/** tokio-quiche's `ClientRequestSender`. */
export class ClientRequestSender {
  readonly #native: NativeH3Controller
  /** @internal */
  constructor(native: NativeH3Controller) {
    this.#native = native
  }
  /** Queues a request; the driver opens its stream as soon as stream credit allows. */
  send(request: NewClientRequest): void {
    if (request === null || typeof request !== 'object') throw invalidArg('request', 'expected { requestId, headers }')
    const { requestId } = request
    if (!Number.isInteger(requestId) || requestId < 0 || requestId > Number.MAX_SAFE_INTEGER) {
      throw invalidArg('request.requestId', `expected a non-negative integer, got ${shown(requestId)}`)
    }
    const headers = flattenHeaders(request.headers, 'request.headers')
    callNative(() => this.#native.sendRequest(requestId, headers, request.bodyWriter === true))
  }
}

/** A request body for {@link ClientH3Controller.request}. */
export type BodyInit = string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>

export interface RequestInit {
  /** Default `GET`. */
  method?: string
  /** Default `/`. */
  path?: string
  /** Default: `serverName` from `connect()`, else the address connected to. */
  authority?: string
  /** Default `https`. */
  scheme?: string
  headers?: HeadersInit
  body?: BodyInit
  /**
   * Aborting cancels the request: before the response, `request()` rejects
   * with the signal's reason and the stream is shut down both ways with
   * H3_REQUEST_CANCELLED (0x10c); after it, the body reader is closed
   * (STOP_SENDING 0x10c) and further reads end.
   */
  signal?: AbortSignal
}

/** H3_REQUEST_CANCELLED (RFC 9114 §8.1). */
const H3_REQUEST_CANCELLED = 0x10c

/** The response to {@link ClientH3Controller.request}. */
export interface ClientResponse {
  streamId: number
  status: number
  headers: Header[]
  /** The response body; read it or close it. */
  body: InboundFrameStream
}

interface PendingRequest {
  body?: BodyInit
  resolve(response: ClientResponse): void
  reject(err: Error): void
  /** Set once the driver opened the stream. */
  streamId?: number
  response?: ClientResponse
  /** Its signal aborted, or the server's GOAWAY refused it: its stream, once opened, is cancelled. */
  cancelled?: boolean
}

/** Throws unless `body` is one of {@link BodyInit}'s shapes, before anything is sent. */
function checkBody(body: unknown): void {
  if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) return
  if (body !== null && typeof body === 'object' && (Symbol.asyncIterator in body || Symbol.iterator in body)) return
  throw invalidArg('init.body', `expected a string, Uint8Array or (async) iterable of Uint8Array, got ${body === null ? 'null' : typeof body}`)
}

async function writeBody(writer: OutboundFrameSender, body: BodyInit): Promise<void> {
  if (typeof body === 'string' || body instanceof Uint8Array) return writer.end(body)
  for await (const chunk of body as AsyncIterable<Uint8Array>) await writer.write(chunk)
  await writer.end()
}

/** `request()` ids count down from here so they do not meet ids users pick from 0. */
const HELPER_IDS_FROM = Number.MAX_SAFE_INTEGER

/**
 * tokio-quiche's `ClientH3Controller`: sends requests on one connection and
 * yields its {@link ClientH3Event}s. `request()` is a fetch-like shortcut;
 * its streams' events are consumed by it and do not appear in `events()`.
 */
export class ClientH3Controller extends H3Controller<ClientH3Event> {
  readonly #authority: string
  readonly #byRequest = new Map<number, PendingRequest>()
  readonly #byStream = new Map<number, PendingRequest>()
  /** Streams opened by request() whose events it still swallows (until the body's FIN or a reset). */
  readonly #helperStreams = new Set<number>()
  #nextHelperId = HELPER_IDS_FROM
  #goawayId: number | undefined
  #driverGone = false
  #resolveGoaway!: (id: number) => void

  /**
   * Resolves with the stream id of the server's first GOAWAY: requests on
   * streams below it are processed, the others were not (RFC 9114 §5.2).
   * Never rejects; stays pending if no GOAWAY comes.
   */
  readonly goaway: Promise<number> = new Promise((resolve) => (this.#resolveGoaway = resolve))

  /** @internal */
  constructor(native: NativeH3Controller, authority: string) {
    super(native)
    this.#authority = authority
  }

  /** The lowest GOAWAY id the server has sent, or undefined before any GOAWAY. */
  get goawayId(): number | undefined {
    return this.#goawayId
  }

  /**
   * False once new requests need another connection: it has closed (or its
   * driver has stopped, which `isClosed` learns a little later), or the
   * server sent GOAWAY.
   */
  get acceptsRequests(): boolean {
    return !this.isClosed && !this.#driverGone && this.#goawayId === undefined
  }

  /**
   * The TLS session to resume with `connect({ session })`, or `null` until
   * the server has sent a session ticket (shortly after the handshake).
   */
  async getSession(): Promise<Buffer | null> {
    return awaitNative(this.native.session())
  }

  /** `ClientH3Controller::request_sender`. */
  requestSender(): ClientRequestSender {
    return new ClientRequestSender(this.native)
  }

  /**
   * Sends a request and resolves with the response headers; stream the body
   * from `body`. Rejects with {@link RequestRefusedError} when the server
   * did not process it: sent after its GOAWAY, on a stream the GOAWAY
   * excluded, or still unsent when the connection closed.
   */
  request(init: RequestInit = {}): Promise<ClientResponse> {
    const closed = this.closeInfo
    if (closed) return Promise.reject(new TokioQuicheError('ERR_CLOSED', `the connection is closed${closeCause(closed)}`))
    if (this.#goawayId !== undefined) {
      return Promise.reject(new RequestRefusedError(`the server sent GOAWAY (id ${this.#goawayId}): new requests need another connection`))
    }
    if (init === null || typeof init !== 'object') return Promise.reject(invalidArg('init', 'expected a RequestInit object'))
    try {
      checkBody(init.body)
      checkSignal('init.signal', init.signal)
    } catch (err) {
      return Promise.reject(err)
    }
    const requestId = this.#nextHelperId--
    const { method = 'GET', path = '/', authority = this.#authority, scheme = 'https', body, signal } = init
    if (signal?.aborted) return Promise.reject(signal.reason)
    const flat = [':method', method, ':scheme', scheme, ':authority', authority, ':path', path]
    if (init.headers) flat.push(...flattenHeaders(init.headers, 'init.headers'))
    return new Promise<ClientResponse>((resolve, reject) => {
      const pending: PendingRequest = { resolve, reject, ...(body === undefined ? {} : { body }) }
      signal?.addEventListener('abort', () => this.#cancel(pending, signal.reason), { once: true })
      this.#byRequest.set(requestId, pending)
      try {
        callNative(() => this.native.sendRequest(requestId, flat, body !== undefined))
      } catch (err) {
        if ((err as TokioQuicheError).code !== 'ERR_CLOSED') {
          this.#byRequest.delete(requestId)
          return reject(err)
        }
        // The driver has stopped; its closed event is still on the way, and
        // onClosed() refuses this request with the close's code and reason.
        this.#driverGone = true
      }
    })
  }

  protected override streamDone(raw: RawH3Event): boolean {
    return (raw.kind === 'headers' && raw.readFin === true) || (raw.kind === 'bodyBytesReceived' && raw.fin === true)
  }

  protected route(raw: RawH3Event, context: EventContext): ClientH3Event | undefined {
    const streamId = raw.streamId ?? -1
    if (raw.kind === 'goAway') this.#goingAway(raw.id ?? 0)
    if (raw.kind === 'newOutboundRequest') {
      const pending = this.#byRequest.get(raw.requestId!)
      if (!pending) return toEvent(raw, context) as ClientH3Event
      this.#byRequest.delete(raw.requestId!)
      this.#byStream.set(streamId, pending)
      this.#helperStreams.add(streamId)
      pending.streamId = streamId
      const event = toEvent(raw, context) as Extract<ClientH3Event, { type: 'newOutboundRequest' }>
      if (pending.cancelled) {
        event.bodyWriter?.close()
        this.shutdownStream(streamId, { read: H3_REQUEST_CANCELLED, write: H3_REQUEST_CANCELLED })
      } else if (pending.body !== undefined && event.bodyWriter) {
        this.#upload(streamId, event.bodyWriter, pending.body)
      }
      return undefined
    }
    if (!this.#helperStreams.has(streamId)) return toEvent(raw, context) as ClientH3Event | undefined
    // Events of request() streams stay inside request().
    const pending = this.#byStream.get(streamId)
    if (raw.kind === 'headers') {
      const event = toEvent(raw, context) as IncomingHeadersEvent
      this.#byStream.delete(streamId)
      if (event.readFin) this.#helperStreams.delete(streamId)
      const response: ClientResponse = {
        streamId,
        status: Number(event.headers.find(([n]) => n === ':status')?.[1] ?? 0),
        headers: event.headers,
        body: event.recv,
      }
      if (pending) pending.response = response
      if (pending?.cancelled) event.recv.close()
      pending?.resolve(response)
    } else if (raw.kind === 'resetStream') {
      this.#helperStreams.delete(streamId)
      // After the batches already here: tokio-quiche's ResetStream carries no
      // code, so a refusal (0x10b) shows only through a GOAWAY covering the
      // stream, which may be in one of them; #goingAway then refuses it first.
      setImmediate(() => this.#fail(streamId, new TokioQuicheError('ERR_STREAM_RESET', `stream ${streamId} was reset by the peer before its response`)))
    } else if (raw.kind === 'bodyBytesReceived' && raw.fin) {
      this.#helperStreams.delete(streamId)
    }
    return undefined
  }

  /** Cancels a request() whose signal aborted, or that a GOAWAY refused. */
  #cancel(pending: PendingRequest, reason: Error): void {
    if (pending.cancelled) return
    pending.cancelled = true
    pending.reject(reason)
    if (pending.response) return pending.response.body.close()
    if (pending.streamId !== undefined && !this.isClosed) {
      this.shutdownStream(pending.streamId, { read: H3_REQUEST_CANCELLED, write: H3_REQUEST_CANCELLED })
    }
  }

  /**
   * A GOAWAY: requests not yet on a stream, or on one at or above `id`, will
   * not be processed (RFC 9114 §5.2). They are refused now and their streams,
   * once open, cancelled, so a caller can send them elsewhere at once.
   */
  #goingAway(id: number): void {
    if (this.#goawayId === undefined) this.#resolveGoaway(id)
    // A later GOAWAY may only lower the id.
    this.#goawayId = Math.min(this.#goawayId ?? id, id)
    for (const pending of this.#byRequest.values()) {
      this.#cancel(pending, new RequestRefusedError(`the server sent GOAWAY (id ${id}) before the request got a stream: not processed`))
    }
    for (const [streamId, pending] of this.#byStream) {
      if (streamId < this.#goawayId) continue
      this.#byStream.delete(streamId)
      this.#cancel(pending, new RequestRefusedError(`stream ${streamId} is at or above the server's GOAWAY id ${id}: not processed`, streamId))
    }
  }

  #upload(streamId: number, writer: OutboundFrameSender, body: BodyInit): void {
    writeBody(writer, body).catch((err: unknown) => {
      writer.close()
      this.#fail(streamId, err instanceof Error ? err : new Error(String(err)))
    })
  }

  #fail(streamId: number, err: Error): void {
    const pending = this.#byStream.get(streamId)
    this.#byStream.delete(streamId)
    pending?.reject(err)
  }

  protected override onClosed(info: CloseInfo): void {
    const why = closeCause(info)
    // Requests still waiting for a stream were never sent.
    const unsent = new RequestRefusedError(`the connection closed before the request was sent${why}`)
    for (const pending of this.#byRequest.values()) pending.reject(unsent)
    const err = new TokioQuicheError('ERR_CLOSED', `the connection closed before the response arrived${why}`)
    for (const pending of this.#byStream.values()) pending.reject(err)
    this.#byRequest.clear()
    this.#helperStreams.clear()
    this.#byStream.clear()
  }
}

/** Why a connection closed, for the errors of the requests it took down. */
function closeCause(info: CloseInfo): string {
  if (info.reason) return `: ${info.reason}`
  // A server at its ConnectionLimits refuses this way.
  if (info.peerTransportCode === 0x2) return ': the server refused the connection (CONNECTION_REFUSED, 0x2): it is at its connection limit'
  if (info.peerTransportCode !== undefined) return `: the server closed it with transport error 0x${info.peerTransportCode.toString(16)}`
  return ''
}
