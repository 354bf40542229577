// fetch()'s Response. Most callers read a small body whole (`text()`,
// `json()`, `arrayBuffer()`), and on Node 20 the ReadableStream behind a real
// Response costs about 13 µs to make, more than the rest of a small GET: so
// those methods read the HTTP/3 body directly, and the real Response (and its
// stream) is made only when something else (`body`, `clone()`, `blob()`...) is used.
import type { InboundFrameStream } from './frames.js'
import { standIn } from './lazy.js'
import { bodyStream } from './web.js'

/** A response's body as fetch() received it: the stream, what to do at its end, and the request's signal. */
export interface ResponseBody {
  recv: InboundFrameStream
  onEnd: () => void
  signal: AbortSignal | undefined
}

/** The body as a stream, for a real Response. */
function streamOf({ recv, onEnd, signal }: ResponseBody): ReadableStream<Uint8Array> {
  return bodyStream(recv, { ...(signal ? { signal } : {}), onEnd })
}

/** A real Response with fetch()'s `url` (its constructor has no way to set one). */
function realResponse(status: number, headers: Headers, url: string, stream: ReadableStream<Uint8Array> | null): Response {
  const response = new Response(stream, { status, headers })
  Object.defineProperty(response, 'url', { value: url })
  return response
}

class LazyResponse {
  readonly #status: number
  readonly #headers: Headers
  readonly #url: string
  /** The body until it is read or handed to the real Response; null without one. */
  #body: ResponseBody | null
  /** A body there was has been read (or discarded). */
  #used = false
  #real: Response | undefined

  constructor(status: number, headers: Headers, url: string, body: ResponseBody | null) {
    this.#status = status
    this.#headers = headers
    this.#url = url
    this.#body = body
  }

  get status(): number {
    return this.#status
  }

  get ok(): boolean {
    return this.#status >= 200 && this.#status <= 299
  }

  get statusText(): string {
    // HTTP/3 carries no reason phrase.
    return ''
  }

  get url(): string {
    return this.#url
  }

  /** Once the real Response exists, its headers (it copied ours, changes included). */
  get headers(): Headers {
    return this.#real?.headers ?? this.#headers
  }

  get bodyUsed(): boolean {
    return this.#used || (this.#real?.bodyUsed ?? false)
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    if (this.#real) return this.#real.arrayBuffer()
    const bytes = await this.#consume()
    // The chunk is ours alone: its memory can be handed over when it fills its ArrayBuffer.
    const { buffer, byteOffset, byteLength } = bytes
    return byteOffset === 0 && byteLength === buffer.byteLength && buffer instanceof ArrayBuffer ? buffer : (buffer.slice(byteOffset, byteOffset + byteLength) as ArrayBuffer)
  }

  async bytes(): Promise<Uint8Array> {
    // @types/node 20 does not know Response.bytes() yet; Node 20.17's undici has it.
    if (this.#real) return (this.#real as Response & { bytes(): Promise<Uint8Array> }).bytes()
    const bytes = await this.#consume()
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }

  async text(): Promise<string> {
    if (this.#real) return this.#real.text()
    const bytes = await this.#consume()
    // UTF-8 decode (Encoding spec) drops a leading BOM.
    const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf
    return bytes.toString('utf8', bom ? 3 : 0)
  }

  async json(): Promise<unknown> {
    if (this.#real) return this.#real.json()
    return JSON.parse(await this.text())
  }

  /** The whole body, once (no body reads as empty, as often as asked), as undici's Response does. */
  async #consume(): Promise<Buffer> {
    if (this.#used) throw new TypeError('Body is unusable: Body has already been read')
    const body = this.#body
    if (!body) return Buffer.alloc(0)
    this.#body = null
    this.#used = true
    const { recv, onEnd, signal } = body
    if (!signal) {
      try {
        return await recv.bytes()
      } finally {
        onEnd()
      }
    }
    let onAbort!: () => void
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        reject(signal.reason)
        recv.close()
      }
    })
    if (signal.aborted) onAbort()
    else signal.addEventListener('abort', onAbort, { once: true })
    try {
      return await Promise.race([recv.bytes(), aborted])
    } finally {
      signal.removeEventListener('abort', onAbort)
      onEnd()
    }
  }

  /** The real Response, made on first use of what LazyResponse does not answer itself. */
  static real(response: LazyResponse): Response {
    if (response.#real) return response.#real
    const body = response.#body
    response.#body = null
    // A body already read stays unusable: the real one gets a locked stream.
    const real = realResponse(response.#status, response.#headers, response.#url, response.#used ? new ReadableStream() : body && streamOf(body))
    if (response.#used) real.body!.getReader()
    return (response.#real = real)
  }

  /** Discards the body unread, without making a stream for it; false once the real Response exists. */
  static discard(response: LazyResponse): boolean {
    if (response.#real) return false
    const body = response.#body
    if (body) {
      response.#body = null
      response.#used = true
      body.recv.close()
      body.onEnd()
    }
    return true
  }
}
standIn(LazyResponse, Response, new Response(null), LazyResponse.real)

/** Whether a LazyResponse passes for a Response here, undici's own uses included; checked once. */
function lazyResponsesWork(): boolean {
  try {
    const lazy = new LazyResponse(201, new Headers([['x-probe', '1']]), 'https://localhost/probe', null) as unknown as Response
    const copy = new Response(null, lazy)
    return lazy instanceof Response && copy.status === 201 && copy.headers.get('x-probe') === '1' && lazy.type === 'default' && lazy.body === null
  } catch {
    return false
  }
}
const LAZY_RESPONSES = lazyResponsesWork()

/** fetch()'s Response for a status, its fields and its body (null: none). */
export function toResponse(status: number, headers: Headers, url: string, body: ResponseBody | null): Response {
  if (LAZY_RESPONSES) return new LazyResponse(status, headers, url, body) as unknown as Response
  return realResponse(status, headers, url, body && streamOf(body))
}

/** Discards a Response's body unread (a redirect's). */
export async function discardBody(response: Response): Promise<void> {
  if (!(response instanceof LazyResponse && LazyResponse.discard(response))) await response.body?.cancel()
}
