// fetch() over HTTP/3: the WHATWG Request/Response types on top of
// ClientH3Controller.request().
import { Agent } from './agent.js'
import type { BodyInit as ClientBody } from './client.js'
import { RequestRefusedError, TokioQuicheError, invalidArg } from './errors.js'
import { discardBody, toResponse } from './response.js'

/** `RequestInit` plus the HTTP/3 connection pool to use. */
export interface FetchInit extends RequestInit {
  /** Default: a shared agent whose idle connections close after 1 s (unref'd timer). */
  agent?: Agent
}

/** The agent of plain `fetch()`: idle connections close soon so the process can exit. */
export const defaultAgent = new Agent({ idleTimeout: 1000 })

const MAX_REDIRECTS = 20
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304])
/** Fields HTTP/3 forbids or carries as pseudo-headers (RFC 9114 §4.2). */
const NOT_SENT = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'host'])

function isStream(body: unknown): body is ReadableStream<Uint8Array> | AsyncIterable<Uint8Array> {
  return body instanceof ReadableStream || (body !== null && typeof body === 'object' && Symbol.asyncIterator in body && !(body instanceof Uint8Array))
}

/**
 * A streamed request body, which can go out again on a second attempt
 * only if the first never read from it.
 */
class StreamedBody {
  #read = false
  constructor(readonly source: AsyncIterable<Uint8Array>) {}

  /** True once an attempt started reading. */
  get read(): boolean {
    return this.#read
  }

  /** The body for one attempt. */
  attempt(): AsyncIterable<Uint8Array> {
    return {
      [Symbol.asyncIterator]: () => {
        this.#read = true
        return this.source[Symbol.asyncIterator]()
      },
    }
  }
}

/** The request body: bytes (replayable), a stream, or none. */
type Body = Uint8Array | StreamedBody | undefined

/**
 * `fetch()` over HTTP/3 (`https:` URLs only). Errors are
 * {@link TokioQuicheError}s (`ERR_INVALID_ARG` for a bad or non-https URL,
 * `ERR_CONNECT`, `ERR_TLS_CERT`, `ERR_REDIRECT`); an aborted `signal` rejects
 * with its reason (a DOMException `AbortError` or `TimeoutError`) and resets
 * the stream with H3_REQUEST_CANCELLED (0x10c).
 */
export async function fetch(input: string | URL | Request, init: FetchInit = {}): Promise<Response> {
  const { agent = defaultAgent, ...requestInit } = init
  const request = simpleRequest(input, requestInit) ?? (await parsedRequest(input, requestInit))
  let { url, method, body } = request
  const signal = init.signal ?? undefined
  for (let redirects = 0; ; redirects++) {
    if (url.protocol !== 'https:') throw invalidArg('input', `only https: URLs are fetched over HTTP/3, got ${url.protocol}`)
    const response = await fetchRetrying(agent, url, method, request.headers, body, signal)
    const location = response.headers.get('location')
    if (request.redirect === 'manual' || location === null || ![301, 302, 303, 307, 308].includes(response.status)) {
      Object.defineProperty(response, 'redirected', { value: redirects > 0 })
      return response
    }
    await discardBody(response)
    if (request.redirect === 'error') throw new TokioQuicheError('ERR_REDIRECT', `redirected (${response.status}) to ${location} with redirect: 'error'`)
    // undici's limit and wording: the 21st redirect fails.
    if (redirects === MAX_REDIRECTS) throw new TokioQuicheError('ERR_REDIRECT', `redirect count exceeded: more than ${MAX_REDIRECTS} redirects, the last to ${location}`)
    url = new URL(location, url)
    if (response.status === 303 ? method !== 'HEAD' : (response.status === 301 || response.status === 302) && method === 'POST') {
      method = 'GET'
      body = undefined
    } else if (body instanceof StreamedBody) {
      throw new TokioQuicheError('ERR_REDIRECT', `a ${response.status} redirect needs the streamed body again`)
    }
  }
}

/** What fetch() needs of its input and init. */
interface ParsedRequest {
  url: URL
  method: string
  headers: Headers
  redirect: Request['redirect']
  body: Body
}

/** The `init` keys {@link simpleRequest} understands; any other goes through `Request`'s checks. */
const SIMPLE_INIT = new Set(['method', 'headers', 'body', 'signal', 'redirect'])
/** Methods `Request` upper-cases (fetch spec: normalize a method); others take the general path. */
const NORMALIZED_METHODS = new Set(['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'])
const REDIRECT_MODES = new Set<unknown>(['follow', 'manual', 'error'])
const UTF8 = new TextEncoder()

/**
 * `input` and `init` parsed as `new Request()` would, for the common case of
 * a URL with a standard method and an in-memory body: on Node 20 a `Request`
 * (and its `AbortSignal`) costs about as much as the rest of a small GET.
 * Returns undefined for anything else, or anything it would reject, so that
 * `Request` decides it with its own error.
 */
function simpleRequest(input: string | URL | Request, init: RequestInit): ParsedRequest | undefined {
  if (typeof input !== 'string' && !(input instanceof URL)) return undefined
  for (const key in init) if (!SIMPLE_INIT.has(key)) return undefined
  if (init.method !== undefined && typeof init.method !== 'string') return undefined
  const method = (init.method ?? 'GET').toUpperCase()
  const redirect = init.redirect ?? 'follow'
  if (!NORMALIZED_METHODS.has(method) || !REDIRECT_MODES.has(redirect)) return undefined
  const source = init.body ?? undefined
  if (source !== undefined && (method === 'GET' || method === 'HEAD')) return undefined
  let body: Uint8Array | undefined
  // Copied, as `Request` does: the caller may reuse its buffer once fetch() returns.
  if (typeof source === 'string') body = UTF8.encode(source)
  else if (source instanceof ArrayBuffer) body = new Uint8Array(source.slice(0))
  else if (ArrayBuffer.isView(source)) body = new Uint8Array(source.buffer.slice(source.byteOffset, source.byteOffset + source.byteLength))
  else if (source !== undefined) return undefined
  let url: URL
  let headers: Headers
  try {
    url = new URL(input)
    headers = new Headers(init.headers)
  } catch {
    return undefined
  }
  if (url.username || url.password) return undefined
  if (typeof source === 'string' && !headers.has('content-type')) headers.set('content-type', 'text/plain;charset=UTF-8')
  return { url, method, headers, redirect, body }
}

/** `input` and `init` through `new Request()`, which checks them all and reads any body but a stream. */
async function parsedRequest(input: string | URL | Request, init: RequestInit): Promise<ParsedRequest> {
  const streamBody = isStream(init.body) ? init.body : undefined
  let request: Request
  try {
    request = new Request(input, streamBody ? { ...init, body: null } : init)
  } catch (err) {
    throw new TokioQuicheError('ERR_INVALID_ARG', `input: ${(err as Error).message}`, { cause: err })
  }
  // In-memory bodies become bytes so a 307/308 redirect or a refused request can send them again.
  const body: Body = streamBody
    ? new StreamedBody(streamBody as AsyncIterable<Uint8Array>)
    : request.body ? new Uint8Array(await request.arrayBuffer()) : undefined
  return { url: new URL(request.url), method: request.method, headers: request.headers, redirect: request.redirect, body }
}

/**
 * One request, sent once more on a fresh connection if the server refused it
 * unprocessed (GOAWAY, H3_REQUEST_REJECTED): RFC 9114 §4.1.1 makes that safe
 * for any method. A streamed body already read cannot go again.
 */
async function fetchRetrying(agent: Agent, url: URL, method: string, fields: Headers, body: Body, signal: AbortSignal | undefined): Promise<Response> {
  const attempt = () => fetchOnce(agent, url, method, fields, body instanceof StreamedBody ? body.attempt() : body, signal)
  try {
    return await attempt()
  } catch (err) {
    if (!(err instanceof RequestRefusedError)) throw err
    if (body instanceof StreamedBody && body.read) {
      throw new RequestRefusedError(`${err.message}; its streamed body was already read, so it cannot be sent again`, err.streamId)
    }
    return attempt()
  }
}

async function fetchOnce(agent: Agent, url: URL, method: string, fields: Headers, body: ClientBody | undefined, signal: AbortSignal | undefined): Promise<Response> {
  signal?.throwIfAborted()
  const lease = await agent.lease(url)
  const headers: [string, string][] = []
  fields.forEach((value, name) => {
    if (!NOT_SENT.has(name) && !(body === undefined && name === 'content-type')) headers.push([name, value])
  })
  let answer
  try {
    answer = await lease.controller.request({
      method,
      path: url.pathname + url.search,
      authority: url.host,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(signal ? { signal } : {}),
    })
  } catch (err) {
    lease.release()
    throw err
  }
  const responseHeaders = new Headers()
  for (const [name, value] of answer.headers) if (!name.startsWith(':')) responseHeaders.append(name, value)
  const hasBody = !NULL_BODY_STATUS.has(answer.status) && method !== 'HEAD'
  if (!hasBody) {
    answer.body.close()
    lease.release()
  }
  return toResponse(answer.status, responseHeaders, url.href, hasBody ? { recv: answer.body, onEnd: lease.release, signal } : null)
}
