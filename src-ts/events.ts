import type { ExternalObject, NativeH3Controller } from './native.js'
import type { RawH3Event } from './batch.js'
import { type Header, InboundFrameStream, OutboundFrameSender, pairHeaders } from './frames.js'
import { DatagramFlow } from './flows.js'

/** `IncomingH3Headers`: a request (server) or response (client) arrived. */
export interface IncomingHeadersEvent {
  type: 'headers'
  streamId: number
  headers: Header[]
  /** Writes the response (server) or more request body (client). */
  send: OutboundFrameSender
  /** Reads the peer's body. */
  recv: InboundFrameStream
  /** True when the HEADERS frame carried FIN: there is no body. */
  readFin: boolean
}

/** The events both drivers emit (tokio-quiche's `H3Event`). */
export type H3Event =
  | { type: 'settings'; settings: [id: bigint, value: bigint][] }
  | {
      /** An HTTP/3 DATAGRAM flow began: a CONNECT request for one, or a datagram for a new flow id. Arrives before that request's `headers`. */
      type: 'newFlow'
      flowId: number
      flow: DatagramFlow
    }
  | { type: 'resetStream'; streamId: number }
  | { type: 'connectionError'; error: string }
  | { type: 'connectionShutdown'; error?: string }
  | { type: 'bodyBytesReceived'; streamId: number; numBytes: number; fin: boolean }
  | { type: 'streamClosed'; streamId: number }
  | { type: 'goAway'; id: number }

/** tokio-quiche's `ServerH3Event`: the core events plus requests. */
export type ServerH3Event =
  | H3Event
  | {
      /**
       * Not a tokio-quiche event: a request whose headers break RFC 9114
       * (uppercase or invalid names, misplaced or missing pseudo-headers,
       * connection-specific fields) was reset with H3_MESSAGE_ERROR (0x10e)
       * instead of being delivered. `error` says what was wrong.
       */
      type: 'malformedRequest'
      streamId: number
      error: string
    }
  | (IncomingHeadersEvent & {
      /** Raw RFC 9218 Priority value from a PRIORITY_UPDATE, e.g. `u=1, i`. */
      priority?: string
      /** The request arrived in 0-RTT data (replayable). */
      isInEarlyData: boolean
    })

/** tokio-quiche's `ClientH3Event`: the core events, responses and request announcements. */
export type ClientH3Event =
  | H3Event
  | IncomingHeadersEvent
  | {
      type: 'newOutboundRequest'
      streamId: number
      requestId: number
      /** The request body writer, when the request asked for one. */
      bodyWriter?: OutboundFrameSender
    }

/** How a connection ended, from tokio-quiche's audit stats. */
export interface CloseInfo {
  /** CONNECTION_CLOSE (transport) code this side sent. */
  localTransportCode?: number
  /** CONNECTION_CLOSE (application) code this side sent. */
  localApplicationCode?: number
  /** CONNECTION_CLOSE (transport) code the peer sent. */
  peerTransportCode?: number
  /** CONNECTION_CLOSE (application) code the peer sent. */
  peerApplicationCode?: number
  /** tokio-quiche's description of a local failure, if any. */
  reason?: string
  sentBytes: number
  recvBytes: number
  lostPackets: number
  /** Neither side sent CONNECTION_CLOSE: the idle timeout ended it. */
  timedOut: boolean
}

function pairs(flat: readonly bigint[]): [bigint, bigint][] {
  const out: [bigint, bigint][] = []
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!])
  return out
}

/** Told about the stream objects `toEvent` creates, so their signals can be aborted. */
export type StreamRegistry = (streamId: number, send: OutboundFrameSender, recv?: InboundFrameStream) => void

/** What `toEvent` needs besides the event. */
export interface EventContext {
  /** Holds the writers of `headers` events until they are claimed. */
  owner: NativeH3Controller
  register: StreamRegistry
  /** The audit stats of the batch's bodiless requests. */
  audit: ExternalObject<'AuditBatch'> | undefined
}

/** The content-length of a message, when it carries exactly one valid value. */
function contentLength(headers: readonly (readonly [string, string])[]): number | undefined {
  let found: number | undefined
  for (const [name, value] of headers) {
    if (name !== 'content-length') continue
    if (found !== undefined || !/^\d{1,15}$/.test(value)) return undefined
    found = Number(value)
  }
  return found
}

/** Converts the binding's flat event into the public union. */
export function toEvent(raw: RawH3Event, context: EventContext): ServerH3Event | ClientH3Event | undefined {
  const streamId = raw.streamId ?? 0
  switch (raw.kind) {
    case 'headers': {
      const headers = pairHeaders(raw.headers ?? [])
      const announced = contentLength(headers)
      const event: IncomingHeadersEvent & { priority?: string; isInEarlyData?: boolean } = {
        type: 'headers',
        streamId,
        headers,
        send: OutboundFrameSender.held(context.owner, streamId),
        recv: raw.recv
          ? InboundFrameStream.of(raw.recv, raw.body, announced)
          : InboundFrameStream.received(streamId, raw.body, context.audit, raw.auditIndex ?? -1, announced),
        readFin: raw.readFin ?? false,
      }
      if (raw.isInEarlyData !== undefined) event.isInEarlyData = raw.isInEarlyData
      if (raw.priority !== undefined) event.priority = raw.priority
      // Without a reader (FIN on the HEADERS, or the whole body here) there is no body whose end could fail.
      context.register(streamId, event.send, raw.recv ? event.recv : undefined)
      return event as ServerH3Event
    }
    case 'newOutboundRequest': {
      const bodyWriter = raw.send ? OutboundFrameSender.of(raw.send) : undefined
      if (bodyWriter) context.register(streamId, bodyWriter)
      return { type: 'newOutboundRequest', streamId, requestId: raw.requestId ?? 0, ...(bodyWriter ? { bodyWriter } : {}) }
    }
    case 'settings':
      return { type: 'settings', settings: pairs(raw.settings ?? []) }
    case 'newFlow':
      return { type: 'newFlow', flowId: raw.id ?? 0, flow: new DatagramFlow(raw.flow!) }
    case 'resetStream':
      return { type: 'resetStream', streamId }
    case 'malformedRequest':
      return { type: 'malformedRequest', streamId, error: raw.error ?? '' }
    case 'connectionError':
      return { type: 'connectionError', error: raw.error ?? '' }
    case 'connectionShutdown':
      return raw.error === undefined ? { type: 'connectionShutdown' } : { type: 'connectionShutdown', error: raw.error }
    case 'bodyBytesReceived':
      return { type: 'bodyBytesReceived', streamId, numBytes: raw.numBytes ?? 0, fin: raw.fin ?? false }
    case 'streamClosed':
      return { type: 'streamClosed', streamId }
    case 'goAway':
      return { type: 'goAway', id: raw.id ?? 0 }
    default:
      return undefined
  }
}

/**
 * A single-consumer async queue: the binding pushes, `for await` pulls.
 * tokio-quiche's event channel is unbounded too; events are small (bodies
 * travel on the bounded per-stream channels).
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  #items: T[] = []
  #waiters: ((r: IteratorResult<T>) => void)[] = []
  #ended = false
  /** Called as each item is handed to a reader. */
  readonly #onTake: ((item: T) => void) | undefined

  constructor(onTake?: (item: T) => void) {
    this.#onTake = onTake
  }

  push(item: T): void {
    if (this.#ended) return
    const waiter = this.#waiters.shift()
    if (waiter) {
      this.#onTake?.(item)
      waiter({ value: item, done: false })
    } else this.#items.push(item)
  }

  end(): void {
    this.#ended = true
    for (const waiter of this.#waiters.splice(0)) waiter({ value: undefined, done: true })
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#items.length > 0) {
      const item = this.#items.shift()!
      this.#onTake?.(item)
      return Promise.resolve({ value: item, done: false })
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve) => this.#waiters.push(resolve))
  }

  /** Leaving a `for await` loop early keeps the queue: events can be read again later. */
  async return(): Promise<IteratorResult<T>> {
    return { value: undefined, done: true }
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this
  }
}
