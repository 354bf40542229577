import { X509Certificate } from 'node:crypto'
import native, {
  type NativeH3Controller,
  type NativeInitialConnection,
  type NativeQuicListener,
  type NativeServerH3Driver,
} from './native.js'
import { awaitNative, callNative, invalidArg, shown } from './errors.js'
import type { EventBatch, RawH3Event } from './batch.js'
import { H3Controller } from './controller.js'
import { RawQuicConnection } from './raw.js'
import { AsyncQueue, type EventContext, type ServerH3Event, toEvent } from './events.js'
import { ConnectionParams, type ServerTlsOptions, serverTlsToNative } from './params.js'
import { type Http3Settings, type Http3SettingsInit, http3SettingsToNative } from './settings.js'

/**
 * A socket to listen on: `'127.0.0.1:4433'`, `{ address: '[::1]:4433' }` or
 * `{ host, port }`. `reusePort: true` sets SO_REUSEPORT, so several sockets
 * (e.g. one per `node:cluster` worker) share the port and the kernel spreads
 * clients over them by address; every one of them must set it.
 */
export type ListenSocket = string | ({ address: string } | { host?: string; port: number }) & { reusePort?: boolean }

function listenSocket(socket: ListenSocket, index: number): { address: string; reusePort: boolean } {
  const field = `sockets[${index}]`
  if (typeof socket === 'string') return { address: socket, reusePort: false }
  if (socket === null || typeof socket !== 'object') throw invalidArg(field, 'expected an address string or { host, port }')
  const { reusePort = false } = socket
  if (typeof reusePort !== 'boolean') throw invalidArg(`${field}.reusePort`, 'expected a boolean')
  if ('address' in socket) {
    if (typeof socket.address !== 'string') throw invalidArg(`${field}.address`, 'expected a host:port string')
    return { address: socket.address, reusePort }
  }
  const { host = '0.0.0.0', port } = socket
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalidArg(`${field}.port`, `expected an integer from 0 to 65535, got ${shown(port)}`)
  }
  if (typeof host !== 'string' || host.length === 0) throw invalidArg(`${field}.host`, 'expected a host name or IP address')
  return { address: host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`, reusePort }
}

/**
 * `tokio_quiche::listen`: binds one UDP socket per entry and returns one
 * listener per socket, in order.
 */
export async function listen(sockets: readonly ListenSocket[], params: ConnectionParams): Promise<QuicListener[]> {
  if (!Array.isArray(sockets) || sockets.length === 0) throw invalidArg('sockets', 'expected a non-empty array')
  if (!(params instanceof ConnectionParams)) throw invalidArg('params', 'expected ConnectionParams.newServer(...)')
  const listeners = await awaitNative(
    native.listen(sockets.map(listenSocket), { tls: params.tls, settings: params.settings, limits: params.limits }),
  )
  return listeners.map((l) => new QuicListener(l))
}

/** A connection a listener started, which its `close()` closes. */
type StartedConnection = ServerH3Controller | RawQuicConnection

/**
 * The connections arriving on one socket (tokio-quiche's `QuicConnectionStream`).
 * Iterate it with `for await`; leaving the loop closes the listener.
 */
export class QuicListener implements AsyncIterable<InitialQuicConnection>, AsyncDisposable {
  readonly #native: NativeQuicListener
  readonly #controllers = new Set<StartedConnection>()
  /** Pending `accept()` calls, oldest first; the binding hands over one connection per `want()`. */
  readonly #waiting: ((conn: InitialQuicConnection | null) => void)[] = []
  /** How connections are handed over, once chosen: `accept()`, `startH3()` or `startRaw()`. */
  #delivery: 'accept' | 'startH3' | 'startRaw' | undefined
  #closed = false

  /** @internal */
  constructor(native: NativeQuicListener) {
    this.#native = native
  }

  /** The bound `ip:port` (the real port when 0 was asked for). */
  get localAddress(): string {
    return this.#native.localAddress
  }

  get port(): number {
    return Number(this.localAddress.slice(this.localAddress.lastIndexOf(':') + 1))
  }

  /** Connections running now that count against the `listen()` call's {@link ConnectionLimits} (all its sockets). */
  get connectionCount(): number {
    return this.#native.connectionCount
  }

  /** Connections those limits have refused since `listen()` (all its sockets). */
  get refusedConnections(): number {
    return this.#native.refusedConnections
  }

  /**
   * Replaces the certificates (the default one and all SNI ones) for new
   * handshakes, without a restart; connections already up keep theirs. The
   * files are read and checked now; on error nothing changes. Applies to
   * every socket of the `listen()` call that made this listener.
   */
  setSecureContext(tls: Pick<ServerTlsOptions, 'cert' | 'privateKey' | 'sni'>): void {
    if (tls === null || typeof tls !== 'object') throw invalidArg('tls', 'expected { cert, privateKey, sni? }')
    const { cert, privateKey, sni } = tls
    const native = serverTlsToNative({ cert, privateKey, ...(sni === undefined ? {} : { sni }) })
    callNative(() => this.#native.setSecureContext(native))
  }

  /** The next connection that passed address validation, or `null` once closed. */
  accept(): Promise<InitialQuicConnection | null> {
    if (this.#closed) return Promise.resolve(null)
    try {
      if (this.#deliverBy('accept')) callNative(() => this.#native.onConnections((conn) => this.#arrived(conn)))
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve) => {
      this.#waiting.push(resolve)
      this.#native.want()
    })
  }

  /**
   * Starts every connection this listener accepts with a `ServerH3Driver`
   * (`settings`) and yields their controllers: the loop of `accept()` and
   * `start()` done inside the binding, so a connection's handshake starts
   * without waiting for JS, and JS hears of the connection together with
   * its first events (one wake-up of the JS thread less per connection).
   * Every connection is started as it arrives: JS does not pace them as it
   * does with `accept()` (tokio-quiche's limits still apply). Use it instead
   * of `accept()`, not with it. Ends when the listener closes.
   */
  startH3(settings?: Http3Settings | Http3SettingsInit): AsyncIterableIterator<ServerH3Controller> {
    const nativeSettings = http3SettingsToNative(settings)
    return this.#startAll('startH3', (deliver) => this.#native.startH3(nativeSettings, deliver), (n) => new ServerH3Controller(n, false))
  }

  /**
   * `startH3()`'s twin for raw QUIC: starts every connection with the
   * addon's `ApplicationOverQuic` and yields each as a
   * {@link RawQuicConnection} (at once; await its `established`). The
   * listener's `ConnectionParams` name the protocol (`alpn`).
   */
  startRaw(): AsyncIterableIterator<RawQuicConnection> {
    return this.#startAll('startRaw', (deliver) => this.#native.startRaw(deliver), (n) => new RawQuicConnection(n, { isServer: true, ownEvents: false }))
  }

  /** Starts every connection inside the binding and hands each, with its events, to a new `make(native)`. */
  #startAll<C extends StartedConnection>(
    how: 'startH3' | 'startRaw',
    start: (deliver: (deliveries: unknown[] | null) => void) => void,
    make: (native: NativeH3Controller) => C,
  ): AsyncIterableIterator<C> {
    const controllers = new AsyncQueue<C>()
    if (this.#closed) {
      controllers.end()
      return controllers
    }
    const live = new Map<number, C>()
    this.#deliverBy(how)
    callNative(() =>
      start((deliveries) => {
        if (!deliveries) return controllers.end()
        // Flat `[id, controller | undefined, batch, ...]`, in arrival order.
        for (let i = 0; i < deliveries.length; i += 3) {
          const id = deliveries[i] as number
          const native = deliveries[i + 1] as NativeH3Controller | undefined
          let controller = live.get(id)
          if (!controller && native) {
            live.set(id, (controller = make(native)))
            this.track(controller)
            controllers.push(controller)
          }
          controller?.deliver(deliveries[i + 2] as EventBatch)
          if (controller?.isClosed) live.delete(id)
        }
      }),
    )
    return controllers
  }

  /** Fixes how connections are handed over; true the first time (`accept()` may then be called again). */
  #deliverBy(how: 'accept' | 'startH3' | 'startRaw'): boolean {
    if (how === 'accept' && this.#delivery === how) return false
    if (this.#delivery) throw invalidArg(how, `this listener's connections already go to ${this.#delivery}()`)
    this.#delivery = how
    return true
  }

  /** A connection for the oldest `accept()`; `null` ends them all. */
  #arrived(conn: NativeInitialConnection | null): void {
    if (conn) return this.#waiting.shift()?.(new InitialQuicConnection(conn, this))
    // The binding stopped accepting (closed, or its socket failed): so does this.
    this.#closed = true
    for (const resolve of this.#waiting.splice(0)) resolve(null)
  }

  async *[Symbol.asyncIterator](): AsyncIterator<InitialQuicConnection> {
    try {
      for (let conn = await this.accept(); conn; conn = await this.accept()) yield conn
    } finally {
      await this.close()
    }
  }

  /** @internal */
  track(controller: StartedConnection): void {
    if (this.#closed) {
      void controller.close()
      return
    }
    this.#controllers.add(controller)
    void controller.closed.then(() => this.#controllers.delete(controller))
  }

  /**
   * Stops accepting and closes every connection this listener started
   * (H3_NO_ERROR); resolves once they have all ended.
   */
  async close(): Promise<void> {
    this.#closed = true
    this.#native.close()
    await Promise.all([...this.#controllers].map((c) => c.close()))
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** tokio-quiche's `QuicConnection`: metadata of a started connection. */
export interface QuicConnection {
  localAddress: string
  peerAddress: string
}

/** tokio-quiche's `InitialQuicConnection`: accepted, handshake not yet run. */
export class InitialQuicConnection implements AsyncDisposable {
  readonly #native: NativeInitialConnection
  readonly #listener: QuicListener
  #controller: StartedConnection | undefined

  /** @internal */
  constructor(native: NativeInitialConnection, listener: QuicListener) {
    this.#native = native
    this.#listener = listener
  }

  get localAddress(): string {
    return this.#native.localAddress
  }

  get peerAddress(): string {
    return this.#native.peerAddress
  }

  /** Runs the handshake, then `driver`, on this connection. Call once. */
  start(driver: ServerH3Driver): QuicConnection {
    if (!(driver instanceof ServerH3Driver)) throw invalidArg('driver', 'expected a ServerH3Driver')
    callNative(() => this.#native.start(driver.native))
    this.#controller = driver.controller
    this.#listener.track(driver.controller)
    return { localAddress: this.localAddress, peerAddress: this.peerAddress }
  }

  /**
   * Runs the handshake, then the addon's `ApplicationOverQuic`, on this
   * connection: raw QUIC with the protocol the listener's `alpn` names.
   * The connection is returned at once; await its `established`. Call once,
   * instead of `start()`.
   */
  startRaw(): RawQuicConnection {
    if (this.#controller) throw invalidArg('startRaw', 'this connection was already started')
    const connection = new RawQuicConnection(callNative(() => this.#native.startRaw()), { isServer: true })
    this.#controller = connection
    this.#listener.track(connection)
    return connection
  }

  /**
   * Refuses the connection if it was not started (the peer's handshake then
   * times out); closes it (H3_NO_ERROR) if it was.
   */
  async close(): Promise<void> {
    if (this.#controller) await this.#controller.close()
    else this.#native.close()
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}

/** tokio-quiche's `ServerH3Driver`: the HTTP/3 application run by a connection. */
export class ServerH3Driver {
  /** @internal */
  readonly native: NativeServerH3Driver
  /** @internal */
  readonly controller: ServerH3Controller

  private constructor(driver: NativeServerH3Driver, controller: ServerH3Controller) {
    this.native = driver
    this.controller = controller
  }

  /** `ServerH3Driver::new`: a driver for `InitialQuicConnection.start()` and its controller. */
  static new(settings?: Http3Settings | Http3SettingsInit): { driver: ServerH3Driver; controller: ServerH3Controller } {
    const pair = callNative(() => native.newServerH3Driver(http3SettingsToNative(settings)))
    const controller = new ServerH3Controller(pair.controller)
    return { driver: new ServerH3Driver(pair.driver, controller), controller }
  }
}

/**
 * tokio-quiche's `ServerH3Controller`: the requests and events of one
 * connection, as an async iterable of {@link ServerH3Event}.
 */
export class ServerH3Controller extends H3Controller<ServerH3Event> {
  /**
   * The client certificate verified in the handshake, when the server asks
   * for one (`tls.clientCa`); `null` otherwise or before the handshake.
   */
  get peerCertificate(): X509Certificate | null {
    const der = this.native.peerCertificate
    return der ? new X509Certificate(der) : null
  }

  protected route(raw: RawH3Event, context: EventContext): ServerH3Event | undefined {
    return toEvent(raw, context) as ServerH3Event | undefined
  }
}
