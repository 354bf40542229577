// A pool of HTTP/3 connections for fetch(): one per origin, shared by every
// request to it, replaced once it has closed.
import { type ClientH3Controller, type ConnectOptions, connect } from './client.js'
import { TokioQuicheError, invalidArg, shown } from './errors.js'

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
  /** Set once connected. */
  connection?: ClientH3Controller
  inFlight: number
  idle?: NodeJS.Timeout
}

/** A connection lent to one request; call `release()` once its response body is done. */
export interface Lease {
  controller: ClientH3Controller
  release(): void
}

/** Whether new requests may still go on `entry` (still connecting counts as yes). */
function usable(entry: PooledConnection): boolean {
  return entry.connection?.acceptsRequests ?? true
}

/**
 * A per-origin pool of HTTP/3 connections, for `fetch(url, { agent })`. A
 * connection that received GOAWAY is no longer lent: requests in flight on
 * it finish, then it is closed, and new requests open a fresh connection.
 */
export class Agent implements AsyncDisposable {
  readonly #options: AgentOptions
  /** The connection each origin's new requests go on. */
  readonly #pool = new Map<string, PooledConnection>()
  /** Every connection not yet ended, pooled or retired, for close(). */
  readonly #open = new Set<PooledConnection>()
  #closed = false

  constructor(options: AgentOptions = {}) {
    if (options === null || typeof options !== 'object') throw invalidArg('options', 'expected an object')
    const { idleTimeout } = options
    if (idleTimeout !== undefined && !(Number.isFinite(idleTimeout) && idleTimeout >= 0)) {
      throw invalidArg('options.idleTimeout', `expected a non-negative number of ms, got ${shown(idleTimeout)}`)
    }
    this.#options = options
  }

  /** The open connection to `url`'s origin, connecting first if there is none. @internal */
  async lease(url: URL): Promise<Lease> {
    if (this.#closed) throw new TokioQuicheError('ERR_CLOSED', 'the agent is closed')
    let pooled = this.#pool.get(url.origin)
    // Checked here too, not only on the events: a GOAWAY or close may be in the batch being delivered.
    if (pooled && !usable(pooled)) {
      this.#retire(url.origin, pooled)
      pooled = undefined
    }
    pooled ??= this.#connect(url)
    const entry = pooled
    entry.inFlight++
    clearTimeout(entry.idle)
    const controller = await entry.controller.catch((err: unknown) => {
      entry.inFlight--
      throw err
    })
    let released = false
    return {
      controller,
      release: () => {
        if (released) return
        released = true
        if (--entry.inFlight > 0) return
        if (this.#pool.get(url.origin) !== entry) this.#retire(url.origin, entry)
        else if (this.#options.idleTimeout !== undefined) {
          entry.idle = setTimeout(() => this.#retire(url.origin, entry), this.#options.idleTimeout).unref()
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
    this.#open.add(entry)
    // A failed or closed (idle timeout, peer close) connection leaves the pool: the next request connects afresh.
    const forget = () => {
      if (this.#pool.get(url.origin) === entry) this.#pool.delete(url.origin)
      this.#open.delete(entry)
      clearTimeout(entry.idle)
    }
    entry.controller.then((c) => {
      entry.connection = c
      void c.goaway.then(() => this.#retire(url.origin, entry))
      return c.closed.then(forget)
    }, forget)
    return entry
  }

  /** Lends `entry` no more, and closes it once no request is in flight on it. */
  #retire(origin: string, entry: PooledConnection): void {
    if (this.#pool.get(origin) === entry) this.#pool.delete(origin)
    if (entry.inFlight > 0) return
    clearTimeout(entry.idle)
    void entry.controller.then((c) => c.close(), () => undefined)
  }

  /** Closes every connection (H3_NO_ERROR), retired ones included; later requests reject with ERR_CLOSED. */
  async close(): Promise<void> {
    this.#closed = true
    const entries = [...this.#open]
    this.#pool.clear()
    for (const entry of entries) clearTimeout(entry.idle)
    await Promise.all(entries.map((e) => e.controller.then((c) => c.close(), () => undefined)))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
