//! Server side: `listen()`, the accept stream, `InitialQuicConnection` and
//! `ServerH3Driver`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use boring::ssl::{SslRef, SslVerifyMode};
use futures_util::StreamExt;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_quiche::http3::driver::{ServerH3Driver, ServerH3Event};
use tokio_quiche::metrics::DefaultMetrics;
use tokio_quiche::settings::TlsCertificatePaths;
use tokio_quiche::{ApplicationOverQuic, ConnectionParams, InitialQuicConnection, QuicConnectionStream};
use tokio_util::sync::CancellationToken;

use crate::address::{any_port_for, resolve};
use crate::controller::{NativeH3Controller, PeerCertSlot};
use crate::errors::{for_promise, js_error, ErrorCode, Result};
use crate::events::{server_event, spawn_event_pump, ConnectionSlot, Deliver, StreamHandles};
use crate::goaway::{reject, Goaway};
use crate::headers_deadline::HeadersDeadline;
use crate::limits::{Admitted, ConnectionLimits, NativeConnectionLimits, Permit, Refused};
use crate::outbox::{self, ConnectionEvents, DeliveriesCallback};
use crate::raw::raw_pair;
use crate::settings::{headers_timeout, http3_settings, quic_settings, NativeHttp3Settings, NativeQuicSettings};
use crate::server_tls::{load_identities, server_tls, IdentityStore, NativeServerTls};

/// What `ConnectionParams::new_server` takes, from JS.
#[napi(object)]
pub struct NativeServerParams {
  pub tls: NativeServerTls,
  pub settings: Option<NativeQuicSettings>,
  pub limits: Option<NativeConnectionLimits>,
}

type Connection = InitialQuicConnection<UdpSocket, DefaultMetrics>;

/// A connection that passed address validation and the caps: its place
/// under them, and its listener's token, which aborts the handshake if the
/// listener closes before it is done.
struct Accepted {
  conn: Connection,
  permit: Permit,
  abort: CancellationToken,
  /// The listener's `initial_max_streams_bidi`, which the HEADERS deadline's walk needs.
  stream_limit: u64,
}

/// One listening socket and its stream of incoming connections.
#[napi]
pub struct NativeQuicListener {
  accept: Arc<tokio::sync::Mutex<Option<QuicConnectionStream<DefaultMetrics>>>>,
  cancel: CancellationToken,
  local_addr: SocketAddr,
  reuse_port: bool,
  /// Shared by the listeners of one `listen()` call.
  identities: Option<IdentityStore>,
  /// Connections JS asked for and has not been handed yet.
  wanted: Arc<Semaphore>,
  delivering: AtomicBool,
  /// Shared by the listeners of one `listen()` call.
  limits: Arc<ConnectionLimits>,
  /// Its connections' `initial_max_streams_bidi`.
  stream_limit: u64,
}

/// One socket `listen()` binds.
#[napi(object)]
pub struct NativeListenSocket {
  pub address: String,
  /// SO_REUSEPORT: other sockets (in this or other processes of the same
  /// user, e.g. `cluster` workers) may bind the same port, and the kernel
  /// spreads incoming flows over them by address hash.
  pub reuse_port: bool,
}

/// The listening socket's receive buffer. Every client's packets queue in
/// this one buffer while the listener task is busy; Linux's default, 208 KiB
/// (~170 full-size datagrams), overflows when a few hundred clients connect at
/// once, and handshakes whose packets it drops can run into their deadline.
const LISTENER_RECV_BUFFER: usize = 8 << 20;

async fn bind(socket: &NativeListenSocket, index: usize) -> Result<UdpSocket> {
  let field = format!("sockets[{index}].address");
  let addr = resolve(&socket.address, &field).await?;
  let bound = (|| {
    let raw = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if socket.reuse_port {
      raw.set_reuse_port(true)?;
    }
    raw.set_nonblocking(true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = raw.set_recv_buffer_size(LISTENER_RECV_BUFFER);
    raw.bind(&addr.into())?;
    UdpSocket::from_std(raw.into())
  })();
  bound.map_err(|e| js_error(ErrorCode::Listen, format!("{field}: cannot bind {addr}: {e}")))
}

/// Binds one UDP socket per entry and starts tokio-quiche's listener on each.
#[napi]
pub async fn listen(sockets: Vec<NativeListenSocket>, params: NativeServerParams) -> napi::Result<Vec<NativeQuicListener>> {
  start_listeners(sockets, params).await.map_err(for_promise)
}

async fn start_listeners(requested: Vec<NativeListenSocket>, params: NativeServerParams) -> Result<Vec<NativeQuicListener>> {
  let tls = server_tls(&params.tls)?;
  let limits = ConnectionLimits::from_native(params.limits.as_ref())?;
  let mut sockets = Vec::with_capacity(requested.len());
  for (index, socket) in requested.iter().enumerate() {
    sockets.push(bind(socket, index).await?);
  }
  let local_addrs = sockets
    .iter()
    .map(|s| s.local_addr())
    .collect::<std::io::Result<Vec<_>>>()
    .map_err(|e| js_error(ErrorCode::Listen, e))?;
  let settings = quic_settings(&params.settings.unwrap_or_default())?;
  let stream_limit = settings.initial_max_streams_bidi;
  let params = ConnectionParams::new_server(
    settings,
    TlsCertificatePaths { cert: &params.tls.cert_path, private_key: &params.tls.key_path, kind: tls.kind },
    tls.hooks,
  );
  let streams = tokio_quiche::listen(sockets, params, DefaultMetrics).map_err(|e| js_error(ErrorCode::Listen, e))?;
  Ok(streams
    .into_iter()
    .zip(local_addrs)
    .zip(requested)
    .map(|((stream, local_addr), socket)| NativeQuicListener {
      accept: Arc::new(tokio::sync::Mutex::new(Some(stream))),
      cancel: CancellationToken::new(),
      local_addr,
      reuse_port: socket.reuse_port,
      identities: tls.identities.clone(),
      wanted: Arc::new(Semaphore::new(0)),
      delivering: AtomicBool::new(false),
      limits: limits.clone(),
      stream_limit,
    })
    .collect())
}

#[napi]
impl NativeQuicListener {
  /// Starts handing accepted connections to `callback`, one per `want()`,
  /// then `null` once the listener is closed. Callable once. One
  /// ThreadsafeFunction for the listener's life: a promise per `accept()`
  /// would cost one each (napi-rs makes one per promise), per connection.
  #[napi(catch_unwind, ts_args_type = "callback: (conn: NativeInitialConnection | null) => void")]
  pub fn on_connections(&self, callback: ConnectionCallback) -> Result<()> {
    if self.delivering.swap(true, Ordering::AcqRel) {
      return Err(js_error(ErrorCode::InvalidArg, "connections are already being delivered"));
    }
    let (accept, cancel, wanted, limits) = (self.accept.clone(), self.cancel.clone(), self.wanted.clone(), self.limits.clone());
    let stream_limit = self.stream_limit;
    napi::bindgen_prelude::spawn(async move {
      loop {
        // Pull from tokio-quiche only for a connection JS asked for.
        tokio::select! {
          permit = wanted.acquire() => permit.map_or((), |p| p.forget()),
          _ = cancel.cancelled() => break,
        };
        let Some(accepted) = next_connection(&accept, &cancel, &limits, stream_limit).await else { break };
        callback.call(Some(NativeInitialConnection::new(accepted)), ThreadsafeFunctionCallMode::NonBlocking);
      }
      callback.call(None, ThreadsafeFunctionCallMode::NonBlocking);
    });
    Ok(())
  }

  /// Starts every connection this listener accepts with a `ServerH3Driver`
  /// (`settings`) at once, without asking JS, and hands JS each one's
  /// controller together with its first events, then its later events, all
  /// through `callback`, several connections' batches per call (outbox.rs);
  /// `null` once the listener is closed. One
  /// ThreadsafeFunction for the listener and all its connections, and no
  /// wake-up of the JS thread just to accept one. Callable once, instead of
  /// `onConnections`.
  #[napi(
    catch_unwind,
    ts_args_type = "settings: NativeHttp3Settings | undefined | null, callback: (deliveries: Array<number | NativeH3Controller | undefined | [nums: Float64Array, refs: unknown[], audit: ExternalObject<'AuditBatch'> | undefined, start: number, end: number]> | null) => void"
  )]
  pub fn start_h3(&self, settings: Option<NativeHttp3Settings>, callback: DeliveriesCallback) -> Result<()> {
    let settings = settings.unwrap_or_default();
    self.start_all(callback, move |accepted| {
      let NativeServerDriverPair { driver, controller } = driver_pair(&settings);
      start_connection(accepted, &driver).ok()?;
      Some(controller)
    })
  }

  /// `startH3`'s twin for raw QUIC: every connection runs a `RawDriver`
  /// (`raw_driver.rs`), and `callback` gets its controller and events.
  #[napi(
    catch_unwind,
    ts_args_type = "callback: (deliveries: Array<number | NativeH3Controller | undefined | [nums: Float64Array, refs: unknown[], audit: ExternalObject<'AuditBatch'> | undefined, start: number, end: number]> | null) => void"
  )]
  pub fn start_raw(&self, callback: DeliveriesCallback) -> Result<()> {
    self.start_all(callback, |accepted| Some(start_raw_connection(accepted)))
  }

  /// Asks for one more connection (see `onConnections`).
  #[napi(catch_unwind)]
  pub fn want(&self) {
    self.wanted.add_permits(1);
  }

  /// Stops accepting; the connection callback gets `null`. The UDP port is
  /// released once the connections this listener accepted have ended.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.cancel.cancel();
    let accept = self.accept.clone();
    let local_addr = self.local_addr;
    let reuse_port = self.reuse_port;
    napi::bindgen_prelude::spawn(async move {
      drop(accept.lock().await.take());
      wake_listener(local_addr, reuse_port).await;
    });
  }

  #[napi(getter)]
  pub fn local_address(&self) -> String {
    self.local_addr.to_string()
  }

  /// Connections running now under this listener's `listen()` call's caps.
  #[napi(getter)]
  pub fn connection_count(&self) -> u32 {
    self.limits.connections() as u32
  }

  /// Connections refused by those caps so far.
  #[napi(getter)]
  pub fn refused_connections(&self) -> f64 {
    self.limits.refused() as f64
  }

  /// Replaces the certificates (default and SNI) for new handshakes on every
  /// socket of this listener's `listen()` call; connections already up keep theirs.
  #[napi(catch_unwind)]
  pub fn set_secure_context(&self, tls: NativeServerTls) -> Result<()> {
    let store = self.identities.as_ref().ok_or_else(|| {
      js_error(ErrorCode::InvalidArg, "tls: a raw public key listener has no certificates to replace")
    })?;
    let identities = load_identities(&tls)?;
    *store.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(identities);
    Ok(())
  }
}

impl NativeQuicListener {
  /// Starts every accepted connection with `start` and hands JS each
  /// controller with its first events, then its later ones, through one
  /// outbox (see `startH3`). Callable once per listener.
  fn start_all(
    &self, callback: DeliveriesCallback,
    start: impl Fn(Accepted) -> Option<NativeH3Controller> + Send + 'static,
  ) -> Result<()> {
    if self.delivering.swap(true, Ordering::AcqRel) {
      return Err(js_error(ErrorCode::InvalidArg, "connections are already being delivered"));
    }
    let (accept, cancel, limits, stream_limit) = (self.accept.clone(), self.cancel.clone(), self.limits.clone(), self.stream_limit);
    let outbox = outbox::for_callback(callback);
    napi::bindgen_prelude::spawn(async move {
      let mut id = 0u32;
      while let Some(accepted) = next_connection(&accept, &cancel, &limits, stream_limit).await {
        let Some(controller) = start(accepted) else { continue };
        let Some(start_events) = controller.take_event_starter() else { continue };
        let (outbox, mut announce) = (outbox.clone(), Some(controller));
        start_events(Deliver::Outbox(Box::new(move |batch| {
          let may_wait = batch.may_wait;
          outbox.post(ConnectionEvents { id, controller: announce.take(), batch }, may_wait);
        })));
        id = id.wrapping_add(1);
      }
      outbox.close();
    });
    Ok(())
  }
}

/// tokio-quiche's listener task notices a dropped accept stream only when a
/// packet wakes it (cloudflare/quiche#2760), and until then keeps the port
/// bound; a junk datagram from loopback wakes it so it can exit. With
/// SO_REUSEPORT the kernel picks the receiving socket by source address, so
/// several source ports make missing this one vanishingly unlikely
/// (under 1e-4 with 4 sockets on the port); the others drop the junk.
async fn wake_listener(addr: SocketAddr, reuse_port: bool) {
  let target = match addr.ip() {
    IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())),
    IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())),
    _ => addr,
  };
  for _ in 0..if reuse_port { 32 } else { 1 } {
    if let Ok(socket) = UdpSocket::bind(any_port_for(&target)).await {
      let _ = socket.send_to(&[0], target).await;
    }
  }
}

/// Hands accepted connections to JS; strong, like a listening socket.
pub type ConnectionCallback =
  ThreadsafeFunction<Option<NativeInitialConnection>, (), Option<NativeInitialConnection>, Status, false>;

/// The next connection that passed address validation and the caps, with
/// its place under them; `None` once the listener is closed. Connections
/// over a cap are refused here (see `limits.rs`).
async fn next_connection(
  accept: &tokio::sync::Mutex<Option<QuicConnectionStream<DefaultMetrics>>>, cancel: &CancellationToken,
  limits: &Arc<ConnectionLimits>, stream_limit: u64,
) -> Option<Accepted> {
  let mut guard = accept.lock().await;
  loop {
    let next = tokio::select! {
      next = guard.as_mut()?.next() => next,
      _ = cancel.cancelled() => None,
    };
    match next {
      Some(Ok(conn)) => match limits.admit(conn.peer_addr().ip()) {
        Ok(permit) => return Some(Accepted { conn, permit, abort: cancel.clone(), stream_limit }),
        Err(refusal) => {
          napi::bindgen_prelude::within_runtime_if_available(|| conn.start(Refused(refusal)));
        },
      },
      // An Initial that failed to process; the listener itself is fine.
      Some(Err(_)) => continue,
      None => {
        guard.take();
        return None;
      },
    }
  }
}

/// A connection that passed the listener but has not started its handshake.
#[napi]
pub struct NativeInitialConnection {
  conn: Mutex<Option<Accepted>>,
  local_addr: SocketAddr,
  peer_addr: SocketAddr,
}

impl NativeInitialConnection {
  fn new(accepted: Accepted) -> Self {
    Self { local_addr: accepted.conn.local_addr(), peer_addr: accepted.conn.peer_addr(), conn: Mutex::new(Some(accepted)) }
  }

  fn take(&self) -> Result<Accepted> {
    let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
    conn.ok_or_else(|| js_error(ErrorCode::Closed, "connection: it was already started or closed"))
  }
}

#[napi]
impl NativeInitialConnection {
  #[napi(getter)]
  pub fn local_address(&self) -> String {
    self.local_addr.to_string()
  }

  #[napi(getter)]
  pub fn peer_address(&self) -> String {
    self.peer_addr.to_string()
  }

  /// Refuses a connection that was not started: dropping tokio-quiche's
  /// `InitialQuicConnection` discards it, and the peer's handshake times out.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.conn.lock().unwrap_or_else(|p| p.into_inner()).take();
  }

  /// Runs the handshake and then `driver` on this connection.
  #[napi(catch_unwind)]
  pub fn start(&self, driver: &NativeServerH3Driver) -> Result<()> {
    start_connection(self.take()?, driver)
  }

  /// Runs the handshake and then a `RawDriver` (raw QUIC) on this connection.
  #[napi(catch_unwind)]
  pub fn start_raw(&self) -> Result<NativeH3Controller> {
    Ok(start_raw_connection(self.take()?))
  }
}

fn start_connection(accepted: Accepted, driver: &NativeServerH3Driver) -> Result<()> {
  let h3 = driver.driver.lock().unwrap_or_else(|p| p.into_inner()).take();
  let h3 = h3.ok_or_else(|| js_error(ErrorCode::InvalidArg, "driver: this driver already runs a connection"))?;
  driver.headers_deadline.started(accepted.stream_limit);
  start_app(accepted, h3, &driver.slot, driver.peer_cert.clone(), driver.abort.clone());
  Ok(())
}

fn start_raw_connection(accepted: Accepted) -> NativeH3Controller {
  let (slot, peer_cert): (ConnectionSlot, PeerCertSlot) = Default::default();
  let (driver, controller) = raw_pair(true, slot.clone(), Some(peer_cert.clone()));
  start_app(accepted, driver, &slot, peer_cert, controller.handshake_abort());
  controller
}

fn start_app<A: ApplicationOverQuic>(
  Accepted { mut conn, permit, abort, .. }: Accepted, app: A, slot: &ConnectionSlot, peer_cert: PeerCertSlot,
  close: CancellationToken,
) {
  record_client_certificate(conn.ssl_mut(), peer_cert);
  // `InitialQuicConnection::start()`, but with the handshake abortable, by
  // the listener closing or the connection's own `close()`: a peer that
  // never finishes it would otherwise hold either (and the port) until
  // `handshakeTimeoutMs`. Dropping the handshake drops the connection's
  // socket handle and place, and sends nothing.
  let (started, handshake) = conn.handshake_fut(Admitted::new(app, permit));
  napi::bindgen_prelude::spawn(async move {
    tokio::select! {
      biased;
      done = handshake => {
        if let Ok(running) = done {
          Connection::resume(running);
        }
      },
      () = abort.cancelled() => {},
      () = close.cancelled() => {},
    }
  });
  let _ = slot.set(started);
}

/// With mutual TLS on, keeps the client's leaf certificate once BoringSSL
/// has verified its chain (the callback sees the leaf last, at depth 0).
fn record_client_certificate(ssl: &mut SslRef, slot: PeerCertSlot) {
  let mode = ssl.verify_mode();
  if !mode.contains(SslVerifyMode::PEER) {
    return;
  }
  ssl.set_verify_callback(mode, move |ok, ctx| {
    if ok && ctx.error_depth() == 0 {
      if let Some(der) = ctx.current_cert().and_then(|c| c.to_der().ok()) {
        let _ = slot.set(der);
      }
    }
    ok
  });
}

/// A `ServerH3Driver` waiting to be given to `InitialQuicConnection.start()`.
#[napi]
pub struct NativeServerH3Driver {
  driver: Mutex<Option<ServerH3Driver>>,
  slot: ConnectionSlot,
  peer_cert: PeerCertSlot,
  /// Its controller's `handshake_abort()`.
  abort: CancellationToken,
  /// Told the connection's stream limit when it starts, and walked from then on.
  headers_deadline: Arc<HeadersDeadline>,
}

/// `ServerH3Driver::new`'s pair.
#[napi(object, object_from_js = false)]
pub struct NativeServerDriverPair {
  pub driver: NativeServerH3Driver,
  pub controller: NativeH3Controller,
}

/// `ServerH3Driver::new(settings)`.
#[napi(catch_unwind)]
pub fn new_server_h3_driver(settings: Option<NativeHttp3Settings>) -> NativeServerDriverPair {
  driver_pair(&settings.unwrap_or_default())
}

fn driver_pair(settings: &NativeHttp3Settings) -> NativeServerDriverPair {
  let (driver, mut controller) = ServerH3Driver::new(http3_settings(settings));
  let slot: ConnectionSlot = Arc::new(OnceLock::new());
  let events = controller.take_event_receiver();
  let pump_slot = slot.clone();
  let peer_cert = PeerCertSlot::default();
  let handles = StreamHandles::new(Arc::new(controller.h3_cmd_sender()));
  let goaway = Arc::new(Goaway::default());
  let headers_deadline = HeadersDeadline::new(headers_timeout(settings), handles.commands.clone());
  let (convert_handles, pump_goaway, pump_deadline) = (handles.clone(), goaway.clone(), headers_deadline.clone());
  let convert = move |ev: ServerH3Event| {
    if let ServerH3Event::Headers { incoming_headers, .. } = &ev {
      pump_deadline.headers_arrived(incoming_headers.stream_id);
      if !pump_goaway.admit(incoming_headers.stream_id) {
        reject(&convert_handles.commands, incoming_headers.stream_id, ev);
        return None;
      }
    }
    Some(server_event(ev, &convert_handles))
  };
  let pump_handles = handles.clone();
  let controller = NativeH3Controller::new(
    handles,
    goaway,
    Box::new(move |callback| spawn_event_pump(events, callback, pump_slot, pump_handles, convert)),
    slot.clone(),
    None,
    Some(peer_cert.clone()),
  );
  let abort = controller.handshake_abort();
  let driver = NativeServerH3Driver { driver: Mutex::new(Some(driver)), slot, peer_cert, abort, headers_deadline };
  NativeServerDriverPair { driver, controller }
}
