// serve()'s side of the WHATWG fetch types: a request event becomes a
// `Request`, and a `Response` body already in memory is found without reading
// its stream. Undici builds both types slowly (on Node 20, `new Request` costs
// about 5.6 µs and a body stream about 7 µs, as much as the rest of a small
// request), so what most handlers never touch is made only on first use.
import { bodyDeadline } from './deadline.js'
import type { IncomingHeadersEvent } from './events.js'
import type { InboundFrameStream } from './frames.js'
import { standIn } from './lazy.js'

/**
 * A Request whose `signal` aborts when the client resets or stops the
 * stream, or the connection goes. The signal is made on first use: most
 * handlers never read it, and an AbortController per request is measurable.
 */
class StreamRequest extends Request {
  readonly #event: IncomingHeadersEvent
  #signal: AbortSignal | undefined

  constructor(url: string, init: RequestInit, event: IncomingHeadersEvent) {
    super(url, init)
    this.#event = event
  }

  /** The lazy `signal` (TS sees Request's as a field, so it is installed below). */
  static signalOf(request: StreamRequest): AbortSignal {
    if (!request.#signal) {
      const aborter = new AbortController()
      const abort = (reason: Error) => aborter.abort(reason)
      request.#event.recv.onAbort(abort)
      request.#event.send.onAbort(abort)
      request.#signal = aborter.signal
    }
    return request.#signal
  }
}
Object.defineProperty(StreamRequest.prototype, 'signal', {
  get(this: StreamRequest) {
    return StreamRequest.signalOf(this)
  },
})

/**
 * A `Request` (its prototype chain holds `Request.prototype`) that answers
 * `method`, `url` and `headers` itself and builds the real one on first use
 * of anything else, to which it then defers.
 */
class LazyRequest {
  readonly #method: string
  readonly #url: string
  readonly #headers: Headers
  readonly #build: (headers: Headers) => Request
  #real: Request | undefined

  constructor(method: string, url: string, headers: Headers, build: (headers: Headers) => Request) {
    this.#method = method
    this.#url = url
    this.#headers = headers
    this.#build = build
  }

  get method(): string {
    return this.#method
  }

  get url(): string {
    return this.#url
  }

  /** Once the real Request exists, its headers (it copied ours, changes included). */
  get headers(): Headers {
    return this.#real?.headers ?? this.#headers
  }

  static real(request: LazyRequest): Request {
    return (request.#real ??= request.#build(request.#headers))
  }
}
standIn(LazyRequest, Request, new Request('http://localhost/'), LazyRequest.real)

/** Whether a LazyRequest passes for a Request here, undici's own uses included; checked once. */
function lazyRequestsWork(): boolean {
  try {
    const headers = new Headers([['x-probe', '1']])
    const lazy = new LazyRequest('POST', 'https://localhost/probe', headers, (h) => new Request('https://localhost/probe', { method: 'POST', headers: h }))
    const copy = new Request(lazy as unknown as Request)
    return lazy instanceof Request && copy.method === 'POST' && copy.url === lazy.url && copy.headers.get('x-probe') === '1' && (lazy as unknown as Request).cache === copy.cache
  } catch {
    return false
  }
}
const LAZY_REQUESTS = lazyRequestsWork()

/** Methods undici's Request keeps as they are (it upper-cases others' lower-case spellings and refuses some). */
const PLAIN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'])

/**
 * The handler's Request for a request event. Throws what `new Request`
 * throws (an invalid URL or header), which serve() answers with 400.
 */
export function toRequest(event: IncomingHeadersEvent, bodyTimeoutMs = 0): Request {
  const pseudo = new Map<string, string>()
  const headers = new Headers()
  for (const [name, value] of event.headers) {
    if (name.startsWith(':')) pseudo.set(name, value)
    else headers.append(name, value)
  }
  const method = pseudo.get(':method') ?? 'GET'
  const url = `${pseudo.get(':scheme') ?? 'https'}://${pseudo.get(':authority') ?? headers.get('host') ?? 'localhost'}${pseudo.get(':path') ?? '/'}`
  const hasBody = !event.readFin && method !== 'GET' && method !== 'HEAD'
  const build = (fields: Headers) =>
    new StreamRequest(
      url,
      { method, headers: fields, ...(hasBody ? { body: timedBodyStream(event.recv, bodyTimeoutMs), duplex: 'half' } : {}) } as RequestInit,
      event,
    )
  // What new Request would refuse or rewrite is left to it, eagerly.
  const parsed = LAZY_REQUESTS && PLAIN_METHODS.has(method) ? new URL(url) : undefined
  if (!parsed || parsed.username || parsed.password) return build(headers)
  return new LazyRequest(method, parsed.href, headers, build) as unknown as Request
}

/** A request body that errors once `ms` pass before it ends (`requestTimeoutMs`); 0: no deadline. */
function timedBodyStream(recv: InboundFrameStream, ms: number): ReadableStream<Uint8Array> {
  if (ms === 0) return bodyStream(recv)
  const deadline = new AbortController()
  const clear = bodyDeadline(recv.streamId, ms, (err) => deadline.abort(err))
  return bodyStream(recv, { signal: deadline.signal, onEnd: clear })
}

/**
 * A body as a pull-based stream: nothing is read until the reader reads.
 * `signal` aborting errors the stream with its reason; `onEnd` runs once the
 * body has ended, failed or been cancelled.
 */
export function bodyStream(
  recv: InboundFrameStream,
  options: { signal?: AbortSignal; onEnd?: () => void; onCancel?: () => void } = {},
): ReadableStream<Uint8Array> {
  const { signal, onEnd, onCancel = () => recv.close() } = options
  let onAbort: (() => void) | undefined
  const done = () => {
    if (onAbort) signal?.removeEventListener('abort', onAbort)
    onEnd?.()
  }
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        if (!signal) return
        onAbort = () => {
          controller.error(signal.reason)
          recv.close()
          done()
        }
        signal.addEventListener('abort', onAbort, { once: true })
      },
      async pull(controller) {
        try {
          const frame = await recv.recv()
          if (frame && frame.data.length > 0) controller.enqueue(frame.data)
          if (!frame || frame.fin) {
            controller.close()
            done()
          }
        } catch (err) {
          done()
          throw err
        }
      },
      cancel() {
        onCancel()
        done()
      },
    },
    { highWaterMark: 0 },
  )
}

/** Undici's slot for a Response's state, if it holds the body's source as expected here; checked once. */
const RESPONSE_STATE: symbol | undefined = (() => {
  const probe = new Response('probe')
  const key = Reflect.ownKeys(probe).find((k): k is symbol => typeof k === 'symbol' && k.description === 'state')
  return key && (probe as unknown as Record<symbol, { body?: { source?: unknown } }>)[key]?.body?.source === 'probe' ? key : undefined
})()

/**
 * The body of a Response made from a string or bytes, if nobody has read or
 * locked its stream: it can go out as it is, without reading the stream.
 */
export function bodyInMemory(response: Response): string | Uint8Array | undefined {
  if (!RESPONSE_STATE || response.bodyUsed || response.body?.locked !== false) return undefined
  const source = (response as unknown as Record<symbol, { body?: { source?: unknown } }>)[RESPONSE_STATE]?.body?.source
  return typeof source === 'string' || source instanceof Uint8Array ? source : undefined
}
