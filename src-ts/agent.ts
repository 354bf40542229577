// A pool of HTTP/3 connections for fetch(): one per origin, shared by every
// request to it, replaced once it has closed.
import { type ClientH3Controller, type ConnectOptions, connect } from './client.js'
import { TokioQuicheError, invalidArg } from './errors.js'

/** TLS options of {@link Agent}: the same names and meaning as {@link ConnectOptions}. */
export type AgentOptions = Pick<ConnectOptions, 'ca' | 'insecureSkipVerify' | 'clientCertificate' | 'settings' | 'http3'> & {
  /**
   * Close a connection after this many ms with no request in flight.
   * The timer is unref'd, so it never keeps the process alive. Default: never.
   */
  idleTimeout?: number
}

interface PooledConnection {
  controller: Promise<ClientH3Controller>
  inFlight: number
  idle?: NodeJS.Timeout
}

/** A connection lent to one request; call `release()` once its response body is done. */
export interface Lease {
  controller: ClientH3Controller
  release(): void
}

/** A per-origin pool of HTTP/3 connections, for `fetch(url, { agent })`. */
export class Agent implements AsyncDisposable {
  readonly #options: AgentOptions
  readonly #pool = new Map<string, PooledConnection>()
  #closed = false

  constructor(options: AgentOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected an object')
    const { idleTimeout } = options
    if (idleTimeout !== undefined && !(Number.isFinite(idleTimeout) && idleTimeout >= 0)) {
      throw invalidArg('options.idleTimeout', `expected a non-negative number of ms, got ${String(idleTimeout)}`)
    }
    this.#options = options
  }

  /** The open connection to `url`'s origin, connecting first if there is none. @internal */
  async lease(url: URL): Promise<Lease> {
    if (this.#closed) throw new TokioQuicheError('ERR_CLOSED', 'the agent is closed')
    const pooled = this.#pool.get(url.origin) ?? this.#connect(url)
    pooled.inFlight++
    clearTimeout(pooled.idle)
    const controller = await pooled.controller.catch((err: unknown) => {
      pooled.inFlight--
      throw err
    })
    let released = false
    return {
      controller,
      release: () => {
        if (released) return
        released = true
        if (--pooled.inFlight === 0 && this.#options.idleTimeout !== undefined) {
          pooled.idle = setTimeout(() => this.#drop(url.origin, pooled), this.#options.idleTimeout).unref()
        }
      },
    }
  }

  #connect(url: URL): PooledConnection {
    const { idleTimeout: _, ...tls } = this.#options
    // An IP literal carries no server name; the certificate must then carry the IP.
    const host = url.hostname.replace(/^\[|\]$/g, '')
    const isIp = /^[\d.]+$/.test(host) || host.includes(':')
    const address = `${url.hostname}:${url.port || '443'}`
    const entry: PooledConnection = { controller: connect(address, { ...tls, ...(isIp ? {} : { serverName: host }) }), inFlight: 0 }
    this.#pool.set(url.origin, entry)
    // A failed or closed (GOAWAY, idle timeout, peer close) connection leaves the pool: the next request connects afresh.
    const forget = () => this.#pool.get(url.origin) === entry && this.#pool.delete(url.origin)
    entry.controller.then((c) => c.closed.then(forget), forget)
    return entry
  }

  #drop(origin: string, entry: PooledConnection): void {
    if (entry.inFlight > 0) return
    if (this.#pool.get(origin) === entry) this.#pool.delete(origin)
    void entry.controller.then((c) => c.close(), () => undefined)
  }

  /** Closes every pooled connection (H3_NO_ERROR); later requests reject with ERR_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true
    const entries = [...this.#pool.values()]
    this.#pool.clear()
    for (const entry of entries) clearTimeout(entry.idle)
    await Promise.all(entries.map((e) => e.controller.then((c) => c.close(), () => undefined)))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
