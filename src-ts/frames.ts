import native, { type ExternalObject, type NativeBodyReader, type NativeBodyWriter, type NativeH3AuditStats, type NativeH3Controller, type NativeInboundChunk } from './native.js'
import { StreamResetError, StreamStoppedError, TokioQuicheError, callNative, invalidArg, shown } from './errors.js'

/**
 * A header as received: name and value as latin1 strings (one character per
 * byte, lossless). Names are lowercase, pseudo-headers first.
 */
export type Header = [name: string, value: string]

type HeaderPart = string | Uint8Array
/**
 * Headers to send: `[name, value]` pairs or a record. String names are
 * lowercased; values may be strings (latin1), numbers or bytes.
 */
export type HeadersInit =
  | Iterable<readonly [HeaderPart, HeaderPart | number]>
  | Record<string, string | number | readonly (string | number)[]>

function latin1(part: HeaderPart | number, field: string): string {
  if (typeof part === 'string') return part
  if (typeof part === 'number') return String(part)
  if (part instanceof Uint8Array) return Buffer.from(part.buffer, part.byteOffset, part.byteLength).toString('latin1')
  throw invalidArg(field, `expected a string or Uint8Array, got ${typeof part}`)
}

/** Flattens headers into the `[name, value, ...]` latin1 list the binding takes. */
export function flattenHeaders(init: HeadersInit, field = 'headers'): string[] {
  if (init === null || typeof init !== 'object') throw invalidArg(field, 'expected [name, value] pairs or a record')
  const flat: string[] = []
  if (Symbol.iterator in init) {
    let i = 0
    for (const pair of init as Iterable<readonly [HeaderPart, HeaderPart | number]>) {
      if (!Array.isArray(pair) || pair.length !== 2) throw invalidArg(`${field}[${i}]`, 'expected a [name, value] pair')
      const name = pair[0]
      flat.push(typeof name === 'string' ? name.toLowerCase() : latin1(name, `${field}[${i}][0]`), latin1(pair[1], `${field}[${i}][1]`))
      i++
    }
    return flat
  }
  for (const [name, value] of Object.entries(init)) {
    for (const v of Array.isArray(value) ? value : [value]) flat.push(name.toLowerCase(), latin1(v, `${field}.${name}`))
  }
  return flat
}

/**
 * Pairs up received headers: the binding's `name\0value\0...` latin1
 * string (one string per block crosses, not two per header), or its flat
 * list when a value holds a NUL.
 */
export function pairHeaders(block: string | readonly string[]): Header[] {
  const flat = typeof block === 'string' ? (block === '' ? [] : block.split('\0')) : block
  const headers: Header[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) headers.push([flat[i]!, flat[i + 1]!])
  return headers
}

/**
 * HTTP/1.1 hop-by-hop fields HTTP/3 forbids (RFC 9114 §4.2). Responses from
 * HTTP/1.1-minded code (a `Response`, a framework's `res`) may carry them;
 * the servers drop them.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])

/** RFC 9218 priority for a response. */
export interface Priority {
  /** 0 (most urgent) to 7. Default 3. */
  urgency: number
  incremental: boolean
}

/** tokio-quiche's `OutboundFrame`: what a local task sends on a stream. */
export type OutboundFrame =
  | { type: 'headers'; headers: HeadersInit; priority?: Priority }
  | { type: 'body'; data: Uint8Array; fin: boolean }
  | { type: 'trailers'; headers: HeadersInit }
  | { type: 'peerStreamError' }

/** Constructors mirroring tokio-quiche's `OutboundFrame` variants. */
export const OutboundFrame = {
  /** Response HEADERS (1xx first, or the final ones). Never ends the stream. */
  headers: (headers: HeadersInit, priority?: Priority): OutboundFrame =>
    priority ? { type: 'headers', headers, priority } : { type: 'headers', headers },
  /** Body bytes; `fin` ends the stream. `body(empty, true)` is a bare FIN. */
  body: (data: Uint8Array | string, fin = false): OutboundFrame => ({
    type: 'body',
    data: typeof data === 'string' ? Buffer.from(data) : data,
    fin,
  }),
  /** Trailers, which end the stream. */
  trailers: (headers: HeadersInit): OutboundFrame => ({ type: 'trailers', headers }),
  /** Resets the stream both ways with H3_MESSAGE_ERROR (0x10e). */
  peerStreamError: (): OutboundFrame => ({ type: 'peerStreamError' }),
}

/** tokio-quiche's per-stream `H3AuditStats`; see `InboundFrameStream.auditStats()`. */
export type H3AuditStats = NativeH3AuditStats

/** tokio-quiche's `InboundFrame` for a message body. */
export interface InboundFrame {
  type: 'body'
  data: Buffer
  /** True on the last frame of the body. */
  fin: boolean
}

/**
 * A stream's abort state. The AbortController is made on first use of
 * `signal`: most streams never need one, and one per request is measurable.
 */
class LazyAbort {
  #controller: AbortController | undefined
  #reason: Error | undefined
  #listeners: ((reason: Error) => void)[] | undefined

  get signal(): AbortSignal {
    this.#controller ??= new AbortController()
    if (this.#reason) this.#controller.abort(this.#reason)
    return this.#controller.signal
  }

  get reason(): Error | undefined {
    return this.#reason
  }

  onAbort(listener: (reason: Error) => void): void {
    if (this.#reason) listener(this.#reason)
    else (this.#listeners ??= []).push(listener)
  }

  /** The first reason wins. */
  abort(reason: Error): void {
    if (this.#reason) return
    this.#reason = reason
    this.#controller?.abort(reason)
    for (const listener of this.#listeners ?? []) listener(reason)
  }
}

/** What both stream classes share: their abort state, made on first use (most streams never abort or need a signal). */
abstract class Abortable {
  #abort: LazyAbort | undefined

  /** @internal */
  protected get aborter(): LazyAbort {
    return (this.#abort ??= new LazyAbort())
  }

  /** @internal Calls `listener` once on abort, without making a signal (cheaper per request). */
  onAbort(listener: (reason: Error) => void): void {
    this.aborter.onAbort(listener)
  }

  /** @internal */
  abort(reason: Error): void {
    this.aborter.abort(reason)
  }

  /** @internal Why the stream aborted, if it has. */
  protected get abortReason(): Error | undefined {
    return this.#abort?.reason
  }
}

const closedError = (streamId: number) =>
  new TokioQuicheError(
    'ERR_STREAM_CLOSED',
    `stream ${streamId}: the stream is closed for writing (the peer stopped it, it was reset, or the connection closed)`,
  )

/**
 * tokio-quiche's `OutboundFrameSender`: writes one stream. `send()` resolves
 * once the driver accepted the frame, so awaiting it is the back-pressure.
 * Sends are applied in call order. End the stream with a `fin` body or
 * trailers; closing it earlier resets it (H3_REQUEST_CANCELLED, 0x10c).
 */
export class OutboundFrameSender extends Abortable implements AsyncDisposable {
  readonly #streamId: number
  /** The binding's writer once claimed; null before that, or once the stream is gone. */
  #native: NativeBodyWriter | null
  /** Until the writer is claimed: the controller holding it, which can also respond on it directly. */
  #owner: NativeH3Controller | null
  /** The last send still in flight (settled either way), or null when idle. */
  #busy: Promise<void> | null = null
  #finished = false

  private constructor(streamId: number, native: NativeBodyWriter | null, owner: NativeH3Controller | null) {
    super()
    this.#streamId = streamId
    this.#native = native
    this.#owner = owner
  }

  /** @internal A writer the binding handed over. */
  static of(native: NativeBodyWriter): OutboundFrameSender {
    return new OutboundFrameSender(native.streamId, native, null)
  }

  /**
   * @internal A writer still held by `owner`: `respond()` goes through the
   * controller without creating a writer object; anything else claims it.
   */
  static held(owner: NativeH3Controller, streamId: number): OutboundFrameSender {
    return new OutboundFrameSender(streamId, null, owner)
  }

  /** The binding's writer, claimed on first use; null once the stream can no longer be written. */
  #writer(): NativeBodyWriter | null {
    if (this.#owner) {
      this.#native = this.#owner.claimWriter(this.#streamId)
      this.#owner = null
    }
    return this.#native
  }

  /** Like the binding's own refusals, for a writer that is already gone. */
  #gone(): TokioQuicheError {
    return this.#finished
      ? new TokioQuicheError('ERR_STREAM_FINISHED', `stream ${this.#streamId}: a frame was sent after the stream's FIN`)
      : this.#closedError(closedError(this.#streamId))
  }

  /** A closed stream's error: the peer's STOP_SENDING (raw QUIC), when that is why, else `fallback`. */
  #closedError<E extends Error>(fallback: E): E | StreamStoppedError {
    const reason = this.abortReason
    if (reason instanceof StreamStoppedError) return reason
    // The write can see the closed channel before the stopSending event arrives.
    const code = this.#writer()?.stoppedWith
    return code == null ? fallback : new StreamStoppedError(this.#streamId, code)
  }

  get streamId(): number {
    return this.#streamId
  }

  /** True once the stream ended, was closed, or the driver stopped taking frames. */
  get isClosed(): boolean {
    return this.#writer()?.isClosed ?? true
  }

  /** True once this side ended the stream (a body with `fin`, trailers, or `respond()`). */
  get finished(): boolean {
    return this.#finished
  }

  /**
   * Aborts when this side can no longer write: the peer reset or stopped the
   * stream, `shutdownStream(id, { write })` ran, or the connection closed.
   * `signal.reason` says which. A normal end (FIN) does not abort it.
   */
  get signal(): AbortSignal {
    return this.aborter.signal
  }

  /** Sends one frame; resolves when the driver has room for it. */
  send(frame: OutboundFrame): Promise<void> {
    return this.#submit(() => this.#start(frame))
  }

  /**
   * A whole response in one call into the binding: final HEADERS, then
   * `body` with FIN (tokio-quiche's `Headers` + `Body(body, true)`). The
   * cheapest way to answer a small request.
   */
  respond(headers: HeadersInit, body: Uint8Array | string = EMPTY, priority?: Priority): Promise<void> {
    return this.#submit(() => {
      const data = typeof body === 'string' ? Buffer.from(body) : body
      if (!(data instanceof Uint8Array)) throw invalidArg('body', 'expected a Uint8Array or string')
      checkPriority(priority)
      const flat = flattenHeaders(headers)
      const owner = this.#owner
      const pending = callNative(() => {
        if (owner) return owner.respond(this.#streamId, flat, data, priority?.urgency, priority?.incremental)
        const native = this.#native
        if (!native) throw this.#gone()
        return native.sendResponse(flat, data, priority?.urgency, priority?.incremental)
      })
      // The controller handed the writer to the driver with the response.
      this.#owner = null
      this.#finished = true
      return pending
    })
  }

  /** Runs `start` after the sends before it; it returns a promise only when the driver's channel is full. */
  #submit(start: () => Promise<boolean> | null): Promise<void> {
    if (this.#busy) return this.#track(this.#busy.then(() => this.#dispatch(start)))
    // Idle: hand the frame over now; most frames fit the channel at once.
    let pending: Promise<boolean> | null
    try {
      pending = this.#started(start)
    } catch (err) {
      return Promise.reject(err)
    }
    return pending ? this.#track(this.#accepted(pending)) : RESOLVED
  }

  /** Runs `start`; a closed stream also aborts `signal`. */
  #started(start: () => Promise<boolean> | null): Promise<boolean> | null {
    try {
      return start()
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_STREAM_CLOSED') throw err
      const closed = this.#closedError(err as Error)
      this.abort(closed)
      throw closed
    }
  }

  #track(sent: Promise<void>): Promise<void> {
    const settled = sent.then(noop, noop)
    this.#busy = settled
    void settled.then(() => {
      if (this.#busy === settled) this.#busy = null
    })
    return sent
  }

  async #accepted(pending: Promise<boolean>): Promise<void> {
    if (await pending) return
    const err = this.#closedError(closedError(this.streamId))
    this.abort(err)
    throw err
  }

  async #dispatch(start: () => Promise<boolean> | null): Promise<void> {
    const pending = this.#started(start)
    if (pending) await this.#accepted(pending)
  }

  /** Sends HEADERS. */
  sendHeaders(headers: HeadersInit, priority?: Priority): Promise<void> {
    return this.send(OutboundFrame.headers(headers, priority))
  }

  /** Sends body bytes without ending the stream. */
  write(data: Uint8Array | string): Promise<void> {
    return this.send(OutboundFrame.body(data, false))
  }

  /** Ends the stream, optionally with a last chunk. */
  end(data: Uint8Array | string = EMPTY): Promise<void> {
    return this.send(OutboundFrame.body(data, true))
  }

  /**
   * Cancels the stream if it has not ended: RESET_STREAM and STOP_SENDING with
   * H3_REQUEST_CANCELLED (0x10c), sent at once; frames the driver has not
   * taken yet are discarded.
   */
  close(): void {
    this.#writer()?.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }

  /** Validates and hands `frame` to the binding; a promise when the channel is full. */
  #start(frame: OutboundFrame): Promise<boolean> | null {
    const owner = this.#owner
    if (owner && frame?.type === 'body' && frame.fin === true && frame.data instanceof Uint8Array) {
      // The last bytes of a stream whose writer was never claimed (raw QUIC) go through its owner.
      const pending = callNative(() => owner.endStream(this.#streamId, frame.data))
      this.#owner = null
      this.#finished = true
      return pending
    }
    const native = this.#writer()
    if (!native) throw this.#gone()
    return callNative(() => {
      switch (frame?.type) {
        case 'headers': {
          const { priority } = frame
          checkPriority(priority, 'frame.priority')
          return native.sendHeaders(flattenHeaders(frame.headers, 'frame.headers'), priority?.urgency, priority?.incremental)
        }
        case 'body': {
          if (!(frame.data instanceof Uint8Array)) throw invalidArg('frame.data', 'expected a Uint8Array')
          const pending = native.sendBody(frame.data, frame.fin === true)
          this.#finished ||= frame.fin === true
          return pending
        }
        case 'trailers': {
          const pending = native.sendTrailers(flattenHeaders(frame.headers, 'frame.headers'))
          this.#finished = true
          return pending
        }
        case 'peerStreamError':
          return native.sendPeerStreamError()
        default:
          throw invalidArg('frame.type', `expected headers, body, trailers or peerStreamError, got ${shown((frame as { type?: unknown })?.type)}`)
      }
    })
  }
}

function checkPriority(priority: Priority | undefined, field = 'priority'): void {
  if (priority && (!Number.isInteger(priority.urgency) || priority.urgency < 0 || priority.urgency > 7)) {
    throw invalidArg(`${field}.urgency`, `expected an integer from 0 to 7, got ${shown(priority.urgency)}`)
  }
}

const EMPTY = new Uint8Array(0)
/** The largest content-length `bytes()` allocates for up front; longer bodies are joined at the end. */
const PREALLOCATE_MAX = 256 * 2 ** 20
/** The promise a send returns when the driver took the frame at once (no back-pressure). */
export const RESOLVED: Promise<void> = Promise.resolve()
const noop = () => {}

/**
 * tokio-quiche's `InboundFrameStream`: reads one stream's body. Frames are
 * pulled from Rust only as they are read, so a reader that stops reading
 * stops the peer through QUIC flow control. Breaking out of iteration (or
 * `close()`) before the end sends STOP_SENDING (0x10c).
 */
export class InboundFrameStream extends Abortable implements AsyncIterable<InboundFrame>, AsyncDisposable {
  readonly #streamId: number
  /** The binding's reader; null when the HEADERS ended the stream or the whole body came with them. */
  readonly #native: NativeBodyReader | null
  /** Bytes that came with the HEADERS, handed out first: the whole body (with FIN) when there is no reader. */
  #first: Buffer | null
  /** Without a reader, the stream's `H3AuditStats` are in its crossing's batch, at `#auditIndex`. */
  readonly #auditBatch: ExternalObject<'AuditBatch'> | undefined
  readonly #auditIndex: number
  #ended: boolean
  #closedLocally = false
  /** The content-length the message's HEADERS announced, checked at FIN. */
  readonly #announced: number | undefined
  #received = 0
  /** Settles after the last read that had to wait; later reads queue behind it. */
  #tail: Promise<unknown> = RESOLVED
  /** Reads queued behind `#tail`. */
  #waiting = 0

  private constructor(
    streamId: number,
    reader: NativeBodyReader | null,
    first: Buffer | undefined,
    auditBatch?: ExternalObject<'AuditBatch'>,
    auditIndex = -1,
    announced?: number,
  ) {
    super()
    this.#announced = announced
    this.#streamId = streamId
    this.#native = reader
    this.#first = first ?? null
    this.#ended = reader === null && first === undefined
    this.#auditBatch = auditBatch
    this.#auditIndex = auditIndex
  }

  /**
   * @internal A body to read through the binding's reader, after `first` if
   * its start came with the HEADERS; `announced`: its content-length.
   */
  static of(reader: NativeBodyReader, first?: Buffer, announced?: number): InboundFrameStream {
    return new InboundFrameStream(reader.streamId, reader, first, undefined, -1, announced)
  }

  /**
   * @internal No reader: the body came whole with the HEADERS (`body`, FIN
   * included), or there is none (the HEADERS carried FIN) and it has ended.
   */
  static received(
    streamId: number,
    body: Buffer | undefined,
    auditBatch: ExternalObject<'AuditBatch'> | undefined,
    auditIndex: number,
    announced?: number,
  ): InboundFrameStream {
    return new InboundFrameStream(streamId, null, body, auditBatch, auditIndex, announced)
  }

  get streamId(): number {
    return this.#streamId
  }

  /** True once the peer's FIN was read. */
  get finished(): boolean {
    return this.#ended && !this.#closedLocally
  }

  /**
   * Aborts when the body cannot complete: the peer reset the stream,
   * `shutdownStream(id, { read })` ran, or the connection closed first.
   * `signal.reason` says which. The peer's FIN or a local `close()` does not.
   */
  get signal(): AbortSignal {
    return this.aborter.signal
  }

  /**
   * The next frame, or `null` after the last one (or after `close()`).
   * Rejects with {@link StreamResetError} if the peer reset the stream, and
   * with `ERR_STREAM_CLOSED` if the connection closed before the body ended.
   */
  recv(): Promise<InboundFrame | null> {
    // With no read waiting, a frame already here (or the end) is answered at
    // once: the chain below costs a small response about a kilobyte of
    // promises and closures, a good part of the client's garbage per request.
    if (this.#waiting === 0) {
      let frame: InboundFrame | null | undefined
      try {
        frame = this.#readQueued()
      } catch (err) {
        return Promise.reject(err)
      }
      // Nothing was queued just now: only the binding's next read can answer.
      return frame === undefined ? this.#queue(false) : Promise.resolve(frame)
    }
    return this.#queue(true)
  }

  /** A read after those queued before it; `queuedFirst`: it may find bytes already queued. */
  #queue(queuedFirst: boolean): Promise<InboundFrame | null> {
    this.#waiting++
    const next = this.#tail.then(() => (queuedFirst ? this.#read() : this.#readNative()))
    const settled = () => {
      this.#waiting--
    }
    this.#tail = next.then(settled, settled)
    return next
  }

  async #read(): Promise<InboundFrame | null> {
    const queued = this.#readQueued()
    return queued === undefined ? this.#readNative() : queued
  }

  async #readNative(): Promise<InboundFrame | null> {
    return this.#frame(await this.#native!.read())
  }

  /** The next frame if it needs no wait: the end, bytes that came with the HEADERS, or queued bytes; else undefined. */
  #readQueued(): InboundFrame | null | undefined {
    if (this.#ended) return null
    const first = this.#first
    if (first) {
      this.#first = null
      // Without a reader these bytes were the whole body.
      this.#ended = this.#native === null
      this.#count(first, this.#ended)
      return { type: 'body', data: first, fin: this.#ended }
    }
    const chunk = this.#native!.tryRead()
    return chunk === null ? undefined : this.#frame(chunk)
  }

  /** One read's result as a frame; null (or an error) ends the body. */
  #frame(chunk: NativeInboundChunk | null): InboundFrame | null {
    if (chunk === null) {
      this.#ended = true
      if (this.#closedLocally) return null
      throw this.#fail(new TokioQuicheError('ERR_STREAM_CLOSED', `stream ${this.streamId}: the connection closed before the body ended`))
    }
    if (chunk.resetCode !== undefined && chunk.resetCode !== null) {
      this.#ended = true
      throw this.#fail(new StreamResetError(this.streamId, chunk.resetCode))
    }
    if (chunk.stopCode !== undefined && chunk.stopCode !== null) {
      this.#ended = true
      throw this.#fail(
        new TokioQuicheError(
          'ERR_STREAM_CLOSED',
          `stream ${this.streamId}: reading was stopped locally with STOP_SENDING 0x${chunk.stopCode.toString(16)} (shutdownStream or a flow shutdown)`,
        ),
      )
    }
    if (chunk.fin) this.#ended = true
    this.#count(chunk.data, chunk.fin)
    return { type: 'body', data: chunk.data, fin: chunk.fin }
  }

  /**
   * Counts body bytes and, at FIN, checks them against the content-length
   * (RFC 9114 §4.1.2). Besides malformed messages, this catches a reset that
   * quiche reports as FIN (quiche#2277): without it, a body cut short by the
   * peer's RESET_STREAM would read as complete. An empty body is not
   * checked: a HEAD or 304 response announces a length it does not carry.
   */
  #count(data: Buffer, fin: boolean): void {
    this.#received += data.length
    const announced = this.#announced
    if (!fin || announced === undefined || this.#received === 0 || this.#received === announced) return
    throw this.#fail(
      new TokioQuicheError('ERR_STREAM_CLOSED', `stream ${this.streamId}: the body ended after ${this.#received} of the ${announced} bytes its content-length announced`),
    )
  }

  #fail(err: Error): Error {
    this.abort(err)
    return err
  }

  async *[Symbol.asyncIterator](): AsyncIterator<InboundFrame> {
    try {
      for (let frame = await this.recv(); frame; frame = await this.recv()) yield frame
    } finally {
      if (!this.#ended) this.close()
    }
  }

  /** The body's bytes, chunk by chunk (empty chunks skipped). */
  async *chunks(): AsyncIterableIterator<Buffer> {
    // Not layered on the frame iterator: a generator per layer costs each chunk its promises.
    try {
      for (let frame = await this.recv(); frame; frame = await this.recv()) if (frame.data.length > 0) yield frame.data
    } finally {
      if (!this.#ended) this.close()
    }
  }

  /**
   * Reads the whole body. With a content-length, into one buffer of that
   * size as the chunks arrive: each is copied while fresh and let go, instead
   * of all of them being held for one copy at the end.
   */
  async bytes(): Promise<Buffer> {
    const announced = this.#announced
    if (announced !== undefined && announced > 0 && announced <= PREALLOCATE_MAX) {
      // A first chunk that is the whole body (most small ones) is kept as it is.
      let first: Buffer | undefined
      let whole: Buffer | undefined
      let filled = 0
      for (let frame = await this.recv(); frame; frame = await this.recv()) {
        const { data } = frame
        if (data.length === 0) continue
        if (filled + data.length > announced) return this.#overflowed([whole?.subarray(0, filled) ?? first!, data])
        if (!first) first = data
        else {
          if (!whole) (whole = Buffer.allocUnsafe(announced)).set(first)
          whole.set(data, filled)
        }
        filled += data.length
      }
      return (whole ?? first ?? Buffer.alloc(0)).subarray(0, filled)
    }
    const parts: Buffer[] = []
    for (let frame = await this.recv(); frame; frame = await this.recv()) if (frame.data.length > 0) parts.push(frame.data)
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts)
  }

  /** More bytes than the content-length: read on, so FIN's check (#count) reports it as for any read. */
  async #overflowed(parts: Buffer[]): Promise<Buffer> {
    for (let frame = await this.recv(); frame; frame = await this.recv()) parts.push(frame.data)
    return Buffer.concat(parts)
  }

  /** Reads the whole body as UTF-8. */
  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8')
  }

  /**
   * tokio-quiche's `H3AuditStats` for this stream (both directions): body
   * bytes each way, FIN kinds, and STOP_SENDING / RESET_STREAM codes sent and received.
   */
  auditStats(): H3AuditStats {
    if (this.#native) return this.#native.auditStats()
    const stats = this.#auditBatch && native.auditStatsAt(this.#auditBatch, this.#auditIndex)
    if (!stats) throw new TokioQuicheError('ERR_INTERNAL', `stream ${this.#streamId}: no audit stats were delivered with its headers`)
    return stats
  }

  /** Stops reading; STOP_SENDING if the body has not ended. */
  close(): void {
    if (this.#ended) return
    this.#closedLocally = true
    this.#first = null
    // A body that came whole has nothing left to stop.
    if (this.#native) this.#native.close()
    else this.#ended = true
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }
}
