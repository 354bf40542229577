import type { NativeConnectionStats, NativeH3Controller } from './native.js'
import { type EventBatch, type RawH3Event, decodeBatch } from './batch.js'
import { StreamStoppedError, TokioQuicheError, awaitNative, callNative, fromNative, invalidArg, shown } from './errors.js'
import { AsyncQueue, type CloseInfo, type EventContext, type StreamRegistry } from './events.js'
import { InboundFrameStream, type OutboundFrameSender } from './frames.js'

/** H3_NO_ERROR (RFC 9114 §8.1). */
export const H3_NO_ERROR = 0x100

/** A connection's counters; see `H3Controller.stats()`. */
export type ConnectionStats = NativeConnectionStats

export interface CloseOptions {
  /** Application error code for CONNECTION_CLOSE. Default H3_NO_ERROR (0x100); 0 on raw QUIC. */
  errorCode?: number
  /** Reason phrase sent to the peer. */
  reason?: string
}

export interface StreamShutdownOptions {
  /** Stop reading with STOP_SENDING and this code. */
  read?: number
  /** Stop writing with RESET_STREAM and this code. */
  write?: number
}

/** A QUIC/H3 error code: a non-negative integer a JS number holds exactly (below QUIC's 2^62 varint limit). */
export function checkCode(field: string, code: unknown, what = 'error code'): number {
  if (typeof code !== 'number' || !Number.isInteger(code) || code < 0 || code > Number.MAX_SAFE_INTEGER) {
    throw invalidArg(field, `expected a non-negative integer ${what}, got ${shown(code)}`)
  }
  return code
}

/**
 * What every connection object shares, H3 or raw QUIC: the event stream,
 * the commands, the streams' signals, and the connection's end.
 */
export abstract class ConnectionController<E> implements AsyncIterable<E>, AsyncDisposable {
  /** @internal */
  protected readonly native: NativeH3Controller
  readonly #events = new AsyncQueue<E>((event) => this.taken(event))
  /** Live streams' objects, whose signals abort when the stream or the connection goes. */
  readonly #streams = new Map<number, (OutboundFrameSender | InboundFrameStream)[]>()
  #closeInfo: CloseInfo | undefined
  #resolveClosed!: (info: CloseInfo) => void

  /**
   * Resolves when the connection has ended, however it ended. Never rejects.
   */
  readonly closed: Promise<CloseInfo>

  /** @internal */
  /**
   * @internal With `ownEvents` false, the events come through `deliver()`
   * from whoever started the connection (`QuicListener.startH3()`).
   */
  constructor(native: NativeH3Controller, ownEvents = true) {
    this.native = native
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve))
    if (ownEvents) native.onEvents((batch) => this.deliver(batch))
  }

  /** Called as the app takes `event` from the event stream. */
  protected taken(_event: E): void {}

  /** Turns one binding event into the public event (see `toEvent`), or consumes it (undefined). */
  protected abstract route(raw: RawH3Event, context: EventContext): E | undefined

  /**
   * Whether `raw` ends a stream's life here beyond tokio-quiche's
   * `streamClosed` (which only servers get): the client forgets a stream once
   * its response has ended.
   */
  protected streamDone(_raw: RawH3Event): boolean {
    return false
  }

  /** Part of the context `route` passes to `toEvent`. */
  readonly #register: StreamRegistry = (streamId, send, recv) => {
    const entry = this.#streams.get(streamId)
    if (entry) entry.push(...(recv ? [send, recv] : [send]))
    else this.#streams.set(streamId, recv ? [send, recv] : [send])
  }

  /** Aborts the signals of one stream's readers and/or writers that have not ended normally. */
  #abortStream(streamId: number, which: { recvs?: boolean; sends?: boolean }, reason: Error): void {
    for (const object of this.#streams.get(streamId) ?? []) {
      const wanted = object instanceof InboundFrameStream ? which.recvs : which.sends
      if (wanted && !object.finished) object.abort(reason)
    }
  }

  /** Keeps stream signals in step with the events that end streams. */
  #trackStreams(raw: RawH3Event): void {
    const id = raw.streamId ?? -1
    if (raw.kind === 'resetStream') {
      // RESET_STREAM ends the peer's sending only; this side may still write.
      this.#abortStream(id, { recvs: true }, new TokioQuicheError('ERR_STREAM_RESET', `stream ${id} was reset by the peer`))
    } else if (raw.kind === 'stopSending') {
      // STOP_SENDING ends this side's sending only; reading goes on.
      this.#abortStream(id, { sends: true }, new StreamStoppedError(id, raw.id ?? 0))
    } else if (raw.kind === 'streamClosed' || raw.kind === 'malformedRequest' || this.streamDone(raw)) {
      this.#streams.delete(id)
    } else if (raw.kind === 'closed' && this.#streams.size > 0) {
      // Only made when a stream is left: an Error's stack trace costs a connection more than the rest of its end.
      const reason = new TokioQuicheError('ERR_CLOSED', 'the connection closed')
      for (const streamId of this.#streams.keys()) this.#abortStream(streamId, { recvs: true, sends: true }, reason)
      this.#streams.clear()
    }
  }

  /** @internal Ties a stream's reader and writer to the connection's end (raw QUIC's own streams). */
  protected trackStream(streamId: number, send?: OutboundFrameSender, recv?: InboundFrameStream): void {
    if (send) this.#register(streamId, send, recv)
    else if (recv) this.#streams.set(streamId, [recv])
  }

  /** @internal Forgets a stream whose reader and writer have both ended (raw QUIC has no `streamClosed`). */
  protected forgetStream(streamId: number): void {
    this.#streams.delete(streamId)
  }

  /** Called once when the connection has ended. */
  protected onClosed(_info: CloseInfo): void {}

  /** @internal Takes one batch of this connection's events. */
  deliver(batch: EventBatch): void {
    const context: EventContext = { owner: this.native, register: this.#register, audit: batch[2] }
    // Runs as a napi callback: nothing may throw out of it.
    for (const raw of decodeBatch(batch)) {
      try {
        if (raw.kind === 'closed') {
          this.#trackStreams(raw)
          this.#closeInfo = raw.close!
          this.onClosed(this.#closeInfo)
          this.#events.end()
          this.#resolveClosed(this.#closeInfo)
          continue
        }
        const event = this.route(raw, context)
        this.#trackStreams(raw)
        if (event !== undefined) this.#events.push(event)
      } catch (err) {
        process.emitWarning(fromNative(err))
      }
    }
  }

  /** True once the connection has ended. */
  get isClosed(): boolean {
    return this.#closeInfo !== undefined
  }

  /** How the connection ended; `undefined` while it is open. */
  protected get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo
  }

  /** `ip:port` of this end. */
  get localAddress(): string | null {
    return this.native.localAddress
  }

  /** `ip:port` of the peer. */
  get peerAddress(): string | null {
    return this.native.peerAddress
  }

  /**
   * The connection's events, in order, ending when the connection ends.
   * One consumer at a time; leaving a loop early keeps unread events queued.
   */
  events(): AsyncIterableIterator<E> {
    return this.#events
  }

  [Symbol.asyncIterator](): AsyncIterator<E> {
    return this.#events
  }

  /**
   * The connection's counters (packets, bytes, loss, RTT, congestion window):
   * live while it runs, the final ones after it has ended.
   */
  async stats(): Promise<ConnectionStats> {
    return awaitNative(this.native.stats())
  }

  /** Whether the TLS handshake resumed an earlier session (like Node's `tlsSocket.isSessionReused()`). */
  async isSessionReused(): Promise<boolean> {
    return awaitNative(this.native.isResumed())
  }

  /** @internal */
  protected assertOpen(): void {
    if (this.isClosed) throw new TokioQuicheError('ERR_CLOSED', 'the connection is closed')
  }

  /** @internal Stops one stream: STOP_SENDING (`read`) and/or RESET_STREAM (`write`); see `H3Controller.shutdownStream`. */
  protected shutdown(streamId: number, options: StreamShutdownOptions): void {
    const read = options.read === undefined ? undefined : checkCode('options.read', options.read)
    const write = options.write === undefined ? undefined : checkCode('options.write', options.write)
    if (read === undefined && write === undefined) throw invalidArg('options', 'give read, write, or both')
    this.assertOpen()
    callNative(() => this.native.shutdownStream(checkCode('streamId', streamId, 'stream id'), read, write))
    const codes = [read === undefined ? '' : `STOP_SENDING 0x${read.toString(16)}`, write === undefined ? '' : `RESET_STREAM 0x${write.toString(16)}`]
    const reason = new TokioQuicheError('ERR_STREAM_CLOSED', `stream ${streamId} was shut down locally (${codes.filter(Boolean).join(', ')})`)
    this.#abortStream(streamId, { recvs: read !== undefined, sends: write !== undefined }, reason)
  }

  /** The application error code `close()` sends by default. */
  protected abstract readonly defaultCloseCode: number

  /**
   * Closes the connection (application CONNECTION_CLOSE) and resolves when it
   * has ended; every pending read, write and event iteration then settles.
   */
  async close(options: CloseOptions = {}): Promise<CloseInfo> {
    const errorCode = checkCode('options.errorCode', options.errorCode ?? this.defaultCloseCode)
    const reason = options.reason ?? ''
    if (typeof reason !== 'string') throw invalidArg('options.reason', 'expected a string')
    if (!this.isClosed) {
      try {
        this.native.close(errorCode, reason)
      } catch {
        // The driver is already gone; the closed event is on its way.
      }
    }
    return this.closed
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** What `ServerH3Controller` and `ClientH3Controller` share beyond any QUIC connection. */
export abstract class H3Controller<E> extends ConnectionController<E> {
  protected readonly defaultCloseCode = H3_NO_ERROR

  /** Stops one stream: STOP_SENDING (`read`) and/or RESET_STREAM (`write`). */
  shutdownStream(streamId: number, options: StreamShutdownOptions): void {
    this.shutdown(streamId, options)
  }

  /** Sends GOAWAY: the peer should open no new requests; in-flight ones finish. */
  sendGoaway(): void {
    this.assertOpen()
    callNative(() => this.native.sendGoaway())
  }
}
