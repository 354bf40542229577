import type { NativeDatagramFlow } from './native.js'
import { TokioQuicheError, callNative, invalidArg, shown } from './errors.js'

/** What an HTTP/3 flow and a raw QUIC connection's datagrams share: a bounded send, a batched receive. */
abstract class Datagrams implements AsyncIterable<Buffer>, AsyncDisposable {
  /** @internal */
  protected readonly native: NativeDatagramFlow
  #queued: Buffer[] = []
  #ended = false

  /** @internal */
  constructor(native: NativeDatagramFlow) {
    this.native = native
  }

  /** Sends one datagram; resolves once the driver has taken it (the back-pressure). */
  async send(data: Uint8Array | string): Promise<void> {
    const bytes = typeof data === 'string' ? Buffer.from(data) : data
    if (!(bytes instanceof Uint8Array)) throw invalidArg('data', 'expected a Uint8Array or string')
    const pending = callNative(() => this.native.send(bytes))
    if (pending && !(await pending)) throw this.closedError()
  }

  /** The next datagram, or `null` once no more can arrive. */
  async recv(): Promise<Buffer | null> {
    while (this.#queued.length === 0) {
      if (this.#ended) return null
      const batch = await this.native.read()
      if (batch === null) this.#ended = true
      else this.#queued = batch
    }
    return this.#queued.shift()!
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (let dgram = await this.recv(); dgram; dgram = await this.recv()) yield dgram
  }

  /** Stops receiving: a pending `recv()` resolves `null`; later datagrams are dropped. */
  close(): void {
    this.native.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close()
  }

  /** @internal */
  protected abstract closedError(): TokioQuicheError
}

/**
 * An HTTP/3 DATAGRAM flow (RFC 9297), from a `newFlow` event: tokio-quiche's
 * `NewFlow { flow_id, send, recv }` as one object.
 *
 * A flow belongs to an extended CONNECT request (`:protocol`, e.g.
 * `connect-udp`) or a draft CONNECT-UDP request with `datagram-flow-id`; on
 * the server it needs `Http3Settings.enableExtendedConnect` and, on both
 * sides, `QuicSettings.enableDgram`.
 *
 * Datagrams are unreliable: one that does not fit a QUIC packet on the
 * current path (see `stats().pmtu`) or arrives while 2,048 are already
 * queued unread is dropped, as RFC 9221 allows.
 */
export class DatagramFlow extends Datagrams {
  /** The flow id: the request's quarter stream id (RFC 9297) or its `datagram-flow-id`. */
  get flowId(): number {
    return this.native.flowId
  }

  /**
   * `OutboundFrame::FlowShutdown`: ends the flow and closes its request
   * stream both ways with H3_NO_ERROR. `streamId` defaults to the RFC 9297
   * mapping, `flowId * 4`.
   */
  async shutdown(streamId = this.flowId * 4): Promise<void> {
    if (!Number.isSafeInteger(streamId) || streamId < 0) {
      throw invalidArg('streamId', `expected a non-negative integer, got ${shown(streamId)}`)
    }
    const pending = callNative(() => this.native.shutdown(streamId))
    if (pending && !(await pending)) throw this.closedError()
  }

  /** @internal */
  protected closedError(): TokioQuicheError {
    return new TokioQuicheError('ERR_CLOSED', `flow ${this.flowId}: the connection is closed`)
  }
}

/**
 * A raw QUIC connection's DATAGRAM frames (RFC 9221), from
 * `RawQuicConnection.datagrams`; both ends need `QuicSettings.enableDgram`.
 *
 * Unreliable by design: a datagram is dropped when 2,048 arrived ones are
 * queued unread (`droppedIncoming`) or quiche's send queue is full
 * (`droppedOutgoing`). One larger than `maxSize` is refused at `send()`
 * with `ERR_INVALID_ARG`.
 */
export class QuicDatagrams extends Datagrams {
  readonly #counters: () => number[]

  /** @internal `counters`: the connection's `[droppedIn, droppedOut, maxSize]`. */
  constructor(native: NativeDatagramFlow, counters: () => number[]) {
    super(native)
    this.#counters = counters
  }

  /** Datagrams that arrived while the receive queue was full, and were dropped. */
  get droppedIncoming(): number {
    return this.#counters()[0] ?? 0
  }

  /** Datagrams `send()` took that quiche could not queue, and dropped. */
  get droppedOutgoing(): number {
    return this.#counters()[1] ?? 0
  }

  /** The largest payload the peer and path take now; 0 when the peer takes no datagrams. */
  get maxSize(): number {
    return this.#counters()[2] ?? 0
  }

  /** @internal */
  protected closedError(): TokioQuicheError {
    return new TokioQuicheError('ERR_CLOSED', 'datagrams: the connection is closed')
  }
}
