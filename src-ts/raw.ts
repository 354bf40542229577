// Raw QUIC: a protocol of the user's own on QUIC streams and datagrams
// (tokio-quiche's `ApplicationOverQuic`, run by the addon's `RawDriver`).
import native, { type NativeH3Controller } from './native.js'
import type { RawH3Event } from './batch.js'
import { TokioQuicheError, awaitNative, callNative, checkSignal, invalidArg } from './errors.js'
import { type ConnectOptions, CONNECT_KEYS, finishConnect, nativeConnectOptions } from './client.js'
import { ConnectionController, type StreamShutdownOptions, checkCode } from './controller.js'
import type { CloseInfo, EventContext } from './events.js'
import { QuicDatagrams } from './flows.js'
import { InboundFrameStream, OutboundFrameSender } from './frames.js'
import { checkAlpn } from './settings.js'
import { bodyStream } from './web.js'

const noop = () => {}

/**
 * One QUIC stream of a {@link RawQuicConnection}: bidirectional, or
 * unidirectional (then only readable or only writable, by who opened it).
 *
 * Reading pulls from Rust as you read: a stream nobody reads stops being
 * read from quiche, and QUIC flow control then stalls the peer. Writing
 * resolves once the driver has taken the bytes, so awaiting each write is
 * the back-pressure.
 */
export class QuicStream implements AsyncIterable<Buffer>, AsyncDisposable {
  /** The QUIC stream id (RFC 9000 §2.1): bit 0 is who opened it, bit 1 whether it is unidirectional. */
  readonly id: number
  readonly #connection: RawQuicConnection
  readonly #writer: OutboundFrameSender | null
  readonly #reader: InboundFrameStream | null
  #readEnded: boolean
  #writeEnded: boolean

  /** @internal */
  constructor(connection: RawQuicConnection, id: number, writer: OutboundFrameSender | null, reader: InboundFrameStream | null) {
    this.id = id
    this.#connection = connection
    this.#writer = writer
    this.#reader = reader
    this.#readEnded = this.#reader === null
    this.#writeEnded = this.#writer === null
  }

  /** @internal */
  get writer(): OutboundFrameSender | undefined {
    return this.#writer ?? undefined
  }

  /** @internal */
  get reader(): InboundFrameStream | undefined {
    return this.#reader ?? undefined
  }

  /** True for a bidirectional stream. */
  get bidirectional(): boolean {
    return (this.id & 2) === 0
  }

  /** True when the peer opened this stream. */
  get remote(): boolean {
    return (this.id & 1) === (this.#connection.isServer ? 0 : 1)
  }

  /** True while this side may still write (it has a writer that has not ended, been reset or stopped). */
  get writable(): boolean {
    return !this.#writeEnded && !this.#writer!.isClosed
  }

  /** True while there may be more to read. */
  get readable(): boolean {
    return !this.#readEnded
  }

  /**
   * Aborts when this side can no longer write: the peer sent STOP_SENDING
   * (`reason` is then a `StreamStoppedError` with its `errorCode`, and
   * writes reject with it), `reset()` ran, or the connection closed. A
   * normal `end()` does not abort it.
   */
  get signal(): AbortSignal {
    return this.#send('signal').signal
  }

  #send(what: string): OutboundFrameSender {
    if (this.#writer) return this.#writer
    throw new TokioQuicheError('ERR_STREAM_CLOSED', `stream ${this.id}: ${what}: the peer's unidirectional stream cannot be written`)
  }

  #recv(what: string): InboundFrameStream {
    if (this.#reader) return this.#reader
    throw new TokioQuicheError('ERR_STREAM_CLOSED', `stream ${this.id}: ${what}: this side's unidirectional stream cannot be read`)
  }

  /** Sends bytes; resolves once the driver has taken them. After `end()` it rejects with `ERR_STREAM_FINISHED`. */
  write(data: Uint8Array | string): Promise<void> {
    try {
      return this.#sent(this.#send('write').write(data))
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Sends FIN, after `data` if given; resolves once the driver has taken it. */
  end(data?: Uint8Array | string): Promise<void> {
    try {
      const pending = this.#send('end').end(data)
      this.#writeEnded = true
      this.#settle()
      return pending
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** A failed write means the stream can no longer be written. */
  #sent(pending: Promise<void>): Promise<void> {
    pending.catch(() => {
      this.#writeEnded = true
      this.#settle()
    })
    return pending
  }

  /**
   * Abandons sending: RESET_STREAM with `code` (the application's error
   * code, 0 to 2^53-1). Bytes the driver has not sent are discarded.
   */
  reset(code: number): void {
    const errorCode = checkCode('code', code)
    this.#send('reset')
    this.#connection.shutdownOwn(this.id, { write: errorCode })
    this.#writeEnded = true
    this.#settle()
  }

  /** Stops reading: STOP_SENDING with `code` asks the peer to reset its side. A pending read rejects (`ERR_STREAM_CLOSED`). */
  stopSending(code: number): void {
    const errorCode = checkCode('code', code)
    this.#recv('stopSending')
    if (this.#readEnded) return
    this.#connection.shutdownOwn(this.id, { read: errorCode })
    this.#readEnded = true
    this.#settle()
  }

  /**
   * The next chunk, or `null` after the peer's FIN. Rejects with
   * `StreamResetError` (its `code`) when the peer reset the stream, and with
   * `ERR_STREAM_CLOSED` when the connection closed first.
   */
  async read(): Promise<Buffer | null> {
    const reader = this.#recv('read')
    try {
      for (;;) {
        const frame = await reader.recv()
        if (!frame || frame.fin) this.#readDone()
        if (!frame) return null
        if (frame.data.length > 0) return frame.data
        if (frame.fin) return null
      }
    } catch (err) {
      this.#readDone()
      throw err
    }
  }

  #readDone(): void {
    this.#readEnded = true
    this.#settle()
  }

  /** The stream's bytes, chunk by chunk. Leaving the loop early sends STOP_SENDING (code 0). */
  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    this.#recv('read')
    // A plain iterator rather than an async generator: fewer promises per chunk.
    return {
      next: async (): Promise<IteratorResult<Buffer>> => {
        const value = await this.read()
        return value === null ? { value: undefined, done: true } : { value, done: false }
      },
      return: async (): Promise<IteratorResult<Buffer>> => {
        // Left early (break, throw, return): the peer need send no more.
        this.#abandonRead()
        return { value: undefined, done: true }
      },
    }
  }

  /** Reads everything up to the peer's FIN. */
  async bytes(): Promise<Buffer> {
    const parts: Buffer[] = []
    for await (const chunk of this) parts.push(chunk)
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** Reads everything up to the peer's FIN, as UTF-8. */
  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8')
  }

  /** The readable side as a WHATWG `ReadableStream`, pulled as it is read; cancelling it sends STOP_SENDING (code 0). */
  readableStream(): ReadableStream<Uint8Array> {
    return bodyStream(this.#recv('readableStream'), { onEnd: () => this.#readDone(), onCancel: () => this.#abandonRead() })
  }

  /** The writable side as a WHATWG `WritableStream`: each write awaits the driver; `close()` sends FIN, `abort()` resets (code 0). */
  writableStream(): WritableStream<Uint8Array> {
    this.#send('writableStream')
    return new WritableStream<Uint8Array>(
      {
        write: (chunk) => this.write(chunk),
        close: () => this.end(),
        abort: () => this.reset(0),
      },
      { highWaterMark: 1 },
    )
  }

  /** Forgets the stream once both directions are over, so a long-lived connection does not keep every stream it ever had. */
  #settle(): void {
    if (this.#readEnded && this.#writeEnded) this.#connection.forget(this.id)
  }

  /** STOP_SENDING (code 0) if reading has not ended; on a closed connection, nothing is left to stop. */
  #abandonRead(): void {
    if (this.#readEnded || !this.#reader) return
    if (this.#connection.isClosed) this.#readDone()
    else this.stopSending(0)
  }

  /** Resets the writable side (code 0) and stops reading (code 0) if either is still open. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (!this.#writeEnded && this.#writer && !this.#connection.isClosed) this.reset(0)
    this.#abandonRead()
  }
}

/** Options of `openBidi()` / `openUni()`. */
export interface OpenStreamOptions {
  /** Gives up waiting for stream credit: the promise rejects with the reason (a stream opened after that is disposed of: reset, and stopped if bidirectional). */
  signal?: AbortSignal
}

/**
 * One raw QUIC connection: tokio-quiche's `ApplicationOverQuic` seen from
 * TS. Iterate it with `for await` for the streams the peer opens; open
 * your own with `openBidi()` / `openUni()`; send and receive unreliable
 * datagrams through `datagrams`.
 */
export class RawQuicConnection extends ConnectionController<QuicStream> {
  protected readonly defaultCloseCode = 0
  /** @internal */
  readonly isServer: boolean
  /** Resolves once the handshake is done; rejects (`ERR_CLOSED`) if the connection ends first. */
  readonly established: Promise<void>
  #resolveEstablished!: () => void
  #rejectEstablished!: (err: Error) => void
  #datagrams: QuicDatagrams | undefined
  /** Peer unidirectional streams the app took that the driver has not been told of. */
  #accepted = 0

  /** @internal */
  constructor(native: NativeH3Controller, options: { isServer: boolean; ownEvents?: boolean }) {
    super(native, options.ownEvents ?? true)
    this.isServer = options.isServer
    this.established = new Promise((resolve, reject) => {
      this.#resolveEstablished = resolve
      this.#rejectEstablished = reject
    })
    // Nobody may be waiting for it: its rejection must not be unhandled.
    this.established.catch(noop)
  }

  protected route(raw: RawH3Event, context: EventContext): QuicStream | undefined {
    if (raw.kind === 'established') {
      this.#resolveEstablished()
      return undefined
    }
    if (raw.kind !== 'newStream') return undefined
    const id = raw.streamId ?? 0
    // Bytes that came with the event are read first; with FIN they are all of it (no reader).
    const reader = raw.recv
      ? InboundFrameStream.of(raw.recv, raw.body)
      : raw.body
        ? InboundFrameStream.received(id, raw.body, context.audit, raw.auditIndex ?? -1)
        : null
    // A peer's bidirectional stream: its writer waits in the binding until used (`end(data)` never claims it).
    const writer = (id & 2) === 0 ? OutboundFrameSender.held(this.native, id) : null
    return this.#stream(id, writer, reader, raw.recv !== undefined)
  }

  /** `liveReader`: the reader still reads from Rust (so the connection's end must abort it); not when it came whole. */
  #stream(id: number, writer: OutboundFrameSender | null, reader: InboundFrameStream | null, liveReader: boolean): QuicStream {
    const stream = new QuicStream(this, id, writer, reader)
    this.trackStream(id, stream.writer, liveReader ? stream.reader : undefined)
    return stream
  }

  protected override onClosed(info: CloseInfo): void {
    this.#rejectEstablished(new TokioQuicheError('ERR_CLOSED', `the connection closed before its handshake completed${info.reason ? `: ${info.reason}` : ''}`))
  }

  /**
   * The driver hands JS at most 100 of the peer's unidirectional streams the
   * app has not taken (more stay unread in quiche, holding the peer's stream
   * credit); taking one makes room, told once per microtask.
   */
  protected override taken(stream: QuicStream): void {
    if (stream.bidirectional || this.#accepted++ > 0) return
    queueMicrotask(() => {
      const count = this.#accepted
      this.#accepted = 0
      if (!this.isClosed) callNative(() => this.native.acceptStreams(count))
    })
  }

  /** @internal */
  forget(streamId: number): void {
    this.forgetStream(streamId)
  }

  /** @internal A `QuicStream`'s own reset / stopSending. */
  shutdownOwn(streamId: number, options: StreamShutdownOptions): void {
    this.shutdown(streamId, options)
  }

  /** The ALPN protocol both ends agreed on; `null` before the handshake is done. */
  get applicationProtocol(): string | null {
    return this.native.applicationProtocol
  }

  /**
   * Opens a bidirectional stream. When the peer's stream limit is reached
   * it waits for the peer's MAX_STREAMS; rejects with `ERR_CLOSED` if the
   * connection closes first.
   */
  openBidi(options?: OpenStreamOptions): Promise<QuicStream> {
    return this.#open(true, options)
  }

  /** Opens a unidirectional (write-only) stream; waits for credit like `openBidi()`. */
  openUni(options?: OpenStreamOptions): Promise<QuicStream> {
    return this.#open(false, options)
  }

  async #open(bidi: boolean, options: OpenStreamOptions = {}): Promise<QuicStream> {
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected an object')
    const { signal } = options
    checkSignal('options.signal', signal)
    signal?.throwIfAborted()
    this.assertOpen()
    const opened = awaitNative(callNative(() => this.native.openStream(bidi))).then((s) =>
      this.#stream(s.streamId, s.send ? OutboundFrameSender.of(s.send) : null, s.recv ? InboundFrameStream.of(s.recv) : null, true),
    )
    if (!signal) return opened
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        reject(signal.reason)
        opened.then((stream) => stream[Symbol.asyncDispose](), noop)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      opened.then(
        (stream) => {
          signal.removeEventListener('abort', onAbort)
          resolve(stream)
        },
        (err) => {
          signal.removeEventListener('abort', onAbort)
          reject(err)
        },
      )
    })
  }

  /** The connection's DATAGRAM frames (RFC 9221); needs `QuicSettings.enableDgram` on both ends. */
  get datagrams(): QuicDatagrams {
    if (!this.#datagrams) {
      const flow = this.native.takeDatagrams()
      if (!flow) throw new TokioQuicheError('ERR_INTERNAL', 'the datagram flow was already taken')
      this.#datagrams = new QuicDatagrams(flow, () => this.native.datagramCounters())
    }
    return this.#datagrams
  }
}

/** Options of {@link connectQuic}: `connect()`'s, with the application protocol instead of HTTP/3 settings. */
export interface QuicConnectOptions extends Omit<ConnectOptions, 'http3'> {
  /** The ALPN protocols to offer, in preference order, e.g. `'my-proto'` or `['my-proto/2', 'my-proto/1']`. Required. */
  alpn: string | string[]
}

const QUIC_CONNECT_KEYS: ReadonlySet<string> = new Set([...CONNECT_KEYS].filter((key) => key !== 'http3'))

/**
 * `tokio_quiche::quic::connect` with an `ApplicationOverQuic` of your own:
 * opens a raw QUIC connection (same TLS, settings and certificate checks
 * as `connect()`) and resolves once the handshake is done. Fails when the
 * server accepts none of `alpn`.
 */
export async function connectQuic(address: string, options: QuicConnectOptions): Promise<RawQuicConnection> {
  if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected { alpn, ... }')
  const { alpn, ...rest } = options
  if (alpn === undefined) throw invalidArg('options.alpn', "raw QUIC needs the application protocol(s) to offer, e.g. 'my-proto'")
  if (options.settings?.alpn !== undefined) throw invalidArg('options.settings.alpn', 'give the protocols as options.alpn')
  const protocols = checkAlpn(typeof alpn === 'string' ? [alpn] : alpn, 'options.alpn')
  const nativeOptions = nativeConnectOptions(address, rest, QUIC_CONNECT_KEYS)
  nativeOptions.settings = { ...nativeOptions.settings, alpn: protocols }
  options.signal?.throwIfAborted()
  const connection = await finishConnect(native.connectQuic(nativeOptions), options.signal, (n) => new RawQuicConnection(n, { isServer: false }))
  // The handshake is done; `established` also means the driver has started (ALPN and datagram size known).
  await connection.established
  return connection
}
