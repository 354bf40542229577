//! `NativeH3Controller`: the JS handle on a `ServerH3Controller` or
//! `ClientH3Controller`. One class serves both roles; the TS layer presents
//! them as `ServerH3Controller` and `ClientH3Controller`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::{Buffer, PromiseRaw, Uint8ArraySlice};
use napi::Env;

use napi_derive::napi;
use tokio::sync::oneshot;
use tokio_quiche::http3::driver::{H3Command, NewClientRequest, StreamShutdown};
use tokio_quiche::quic::{ConnectionShutdownBehaviour, QuicCommand, QuicheConnection};
use tokio_util::sync::CancellationToken;

use crate::commands::Commands;
use crate::crossings;
use crate::errors::{for_promise, js_error, napi_failure, ErrorCode, Result};
use crate::events::{ConnectionSlot, Deliver, EventCallback, StreamHandles};
use crate::flow::NativeDatagramFlow;
use crate::raw_driver::{RawCommand, RawCommands, RawShared, DATAGRAM_SIZE_UNKNOWN};
use crate::goaway::Goaway;
use crate::headers::{headers_from_flat, HeaderBlock};
use crate::requests::ClientRequests;
use crate::stats::{connection_stats, NativeConnectionStats};
use crate::stream::{raw_stream, stream_closed, NativeBodyReader, NativeBodyWriter, UnclaimedWriters};

/// Starts the event pump once JS hands over its callback.
pub type EventStarter = Box<dyn FnOnce(Deliver) + Send>;

#[napi]
pub struct NativeH3Controller {
  commands: Commands,
  writers: Arc<UnclaimedWriters>,
  goaway: Arc<Goaway>,
  events: Mutex<Option<EventStarter>>,
  slot: ConnectionSlot,
  requests: Option<ClientRequests>,
  peer_cert: Option<PeerCertSlot>,
  raw: Option<RawParts>,
  /// Drops a server connection's handshake still in progress (`server.rs`):
  /// the driver takes no command, a close included, before it is done.
  handshake_abort: CancellationToken,
}

/// What only a raw QUIC connection's controller has (`raw_driver.rs`).
pub struct RawParts {
  pub commands: RawCommands,
  pub datagrams: Mutex<Option<NativeDatagramFlow>>,
  pub shared: Arc<RawShared>,
}

/// A stream this side opened on a raw QUIC connection.
#[napi(object, object_from_js = false)]
pub struct NativeRawStream {
  pub stream_id: i64,
  pub send: Option<NativeBodyWriter>,
  /// None on a unidirectional stream.
  pub recv: Option<NativeBodyReader>,
}

/// The DER client certificate a server verified (mutual TLS), set during the handshake.
pub type PeerCertSlot = Arc<OnceLock<Vec<u8>>>;

impl NativeH3Controller {
  pub fn new(
    handles: StreamHandles, goaway: Arc<Goaway>, events: EventStarter, slot: ConnectionSlot,
    requests: Option<ClientRequests>, peer_cert: Option<PeerCertSlot>,
  ) -> Self {
    let StreamHandles { commands, writers, .. } = handles;
    let handshake_abort = CancellationToken::new();
    Self { commands, writers, goaway, events: Mutex::new(Some(events)), slot, requests, peer_cert, raw: None, handshake_abort }
  }

  /// What `close()` cancels, for whoever runs this connection's handshake.
  pub fn handshake_abort(&self) -> CancellationToken {
    self.handshake_abort.clone()
  }

  /// Makes this the controller of a raw QUIC connection.
  pub fn with_raw(self, raw: RawParts) -> Self {
    Self { raw: Some(raw), ..self }
  }

  fn raw(&self) -> Result<&RawParts> {
    self.raw.as_ref().ok_or_else(|| js_error(ErrorCode::InvalidArg, "only a raw QUIC connection has this"))
  }

  /// What starts the event pump, until something has.
  pub fn take_event_starter(&self) -> Option<EventStarter> {
    self.events.lock().unwrap_or_else(|p| p.into_inner()).take()
  }

  /// Runs `f` on the quiche connection inside the driver
  /// (`QuicCommand::Custom`); `None` once the driver is gone. The command is
  /// sent now; the future owns what it awaits (see `stats`).
  fn with_connection<T: Send + 'static>(
    &self, f: impl FnOnce(&mut QuicheConnection) -> T + Send + 'static,
  ) -> impl std::future::Future<Output = Option<T>> + Send + 'static {
    let (tx, rx) = oneshot::channel();
    let cmd = QuicCommand::Custom(Box::new(move |qconn| {
      let _ = tx.send(f(qconn));
    }));
    let sent = self.commands.send(H3Command::QuicCmd(cmd));
    async move { if sent { rx.await.ok() } else { None } }
  }

  fn command(&self, cmd: H3Command) -> Result<()> {
    if self.commands.send(cmd) {
      Ok(())
    } else {
      Err(js_error(ErrorCode::Closed, "the connection is closed"))
    }
  }
}

#[napi]
impl NativeH3Controller {
  /// Starts delivering events, in batches (flat, see `batch.rs`), to
  /// `callback`; the last batch holds a `closed` event. Callable once.
  #[napi(catch_unwind, ts_args_type = "callback: (batch: [nums: Float64Array, refs: unknown[], audit: ExternalObject<'AuditBatch'> | undefined, start: number, end: number]) => void")]
  pub fn on_events(&self, callback: EventCallback) -> Result<()> {
    let start = self.take_event_starter();
    let start = start.ok_or_else(|| js_error(ErrorCode::InvalidArg, "events are already being delivered"))?;
    start(Deliver::Callback(callback));
    Ok(())
  }

  /// Closes the connection with an application CONNECTION_CLOSE.
  #[napi(catch_unwind)]
  pub fn close(&self, error_code: f64, reason: String) -> Result<()> {
    // Mid-handshake this ends the connection now (sending nothing); after, it does nothing.
    self.handshake_abort.cancel();
    self.command(H3Command::QuicCmd(QuicCommand::ConnectionClose(ConnectionShutdownBehaviour {
      send_application_close: true,
      error_code: error_code as u64,
      reason: reason.into_bytes(),
    })))
  }

  /// Sends GOAWAY (see `goaway.rs`) as soon as the connection can take it.
  #[napi(catch_unwind)]
  pub fn send_goaway(&self) -> Result<()> {
    if self.goaway.send(&self.commands) {
      Ok(())
    } else {
      Err(js_error(ErrorCode::Closed, "the connection is closed"))
    }
  }

  /// STOP_SENDING (`read_code`) and/or RESET_STREAM (`write_code`) on a stream.
  #[napi(catch_unwind)]
  pub fn shutdown_stream(&self, stream_id: f64, read_code: Option<f64>, write_code: Option<f64>) -> Result<()> {
    let shutdown = match (read_code, write_code) {
      (Some(r), Some(w)) => StreamShutdown::Both { read_error_code: r as u64, write_error_code: w as u64 },
      (Some(r), None) => StreamShutdown::Read { error_code: r as u64 },
      (None, Some(w)) => StreamShutdown::Write { error_code: w as u64 },
      (None, None) => return Err(js_error(ErrorCode::InvalidArg, "shutdown: give a read code, a write code, or both")),
    };
    self.command(H3Command::ShutdownStream { stream_id: stream_id as u64, shutdown })?;
    if write_code.is_some() && self.raw.is_some() {
      // Nothing may be written after a reset: an unclaimed raw writer is done
      // (after the command, so its code, not the drop's reset, goes out).
      self.writers.forget(stream_id as u64);
    }
    Ok(())
  }

  /// Client only: queues a request. With `with_body`, its body writer arrives
  /// on the `newOutboundRequest` event; without, the HEADERS carry FIN.
  #[napi(catch_unwind)]
  pub fn send_request(&self, request_id: f64, headers: Vec<String>, with_body: bool) -> Result<()> {
    crossings::into_rust();
    let requests = self
      .requests
      .as_ref()
      .ok_or_else(|| js_error(ErrorCode::InvalidArg, "only a client controller sends requests"))?;
    let headers = headers_from_flat(&headers, HeaderBlock::Request)?;
    let request_id = request_id as u64;
    let body_writer = with_body.then(|| {
      let (tx, rx) = oneshot::channel();
      requests.writers.lock().unwrap_or_else(|p| p.into_inner()).insert(request_id, rx);
      tx
    });
    requests
      .sender
      .send(NewClientRequest { request_id, headers, body_writer })
      .map_err(|_| js_error(ErrorCode::Closed, "the connection is closed"))
  }

  /// Sends a whole response (see `NativeBodyWriter.sendResponse`) on a
  /// stream whose writer JS has not claimed. A refused response leaves the
  /// writer in place for a corrected one.
  #[napi(catch_unwind)]
  pub fn respond<'env>(
    &self, env: &'env Env, stream_id: f64, headers: Vec<String>, body: Option<Uint8ArraySlice<'env>>, urgency: Option<u32>,
    incremental: Option<bool>,
  ) -> Result<Option<PromiseRaw<'env, bool>>> {
    let stream_id = stream_id as u64;
    let writer = self.writers.take(stream_id).ok_or_else(|| stream_closed(stream_id))?;
    let sent = writer.send_response(env, headers, body, urgency, incremental);
    if sent.is_err() && !writer.is_closed() {
      self.writers.put(writer);
    }
    sent
  }

  /// Raw QUIC: ends a peer's stream whose writer JS has not claimed with
  /// `data` and FIN (`NativeBodyWriter.sendBody`). A refused end leaves the
  /// writer in place, so JS can claim it and learn why (`stoppedWith`).
  #[napi(catch_unwind)]
  pub fn end_stream<'env>(&self, env: &'env Env, stream_id: f64, data: Uint8ArraySlice<'env>) -> Result<Option<PromiseRaw<'env, bool>>> {
    let stream_id = stream_id as u64;
    let writer = self.writers.take(stream_id).ok_or_else(|| stream_closed(stream_id))?;
    let sent = writer.send_body(env, data, true);
    if sent.is_err() {
      self.writers.put(writer);
    }
    sent
  }

  /// Hands JS the writer of a stream, to stream a body or send frames one by
  /// one; `null` once the stream can no longer be written.
  #[napi(catch_unwind)]
  pub fn claim_writer(&self, stream_id: f64) -> Option<NativeBodyWriter> {
    self.writers.take(stream_id as u64)
  }

  /// Live counters from the connection (`QuicCommand::ConnectionStats`), or
  /// the final ones once it has ended.
  ///
  /// This and the other promise-returning methods ask on the JS thread and
  /// hand the runtime a future that owns what it awaits, never `&self`: when
  /// a worker thread is terminated, its env frees this object while the
  /// future may still be pending.
  #[napi(catch_unwind, ts_return_type = "Promise<NativeConnectionStats>")]
  pub fn stats<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeConnectionStats>> {
    let slot = self.slot.clone();
    let (tx, rx) = oneshot::channel();
    let asked = self.commands.send(H3Command::QuicCmd(QuicCommand::ConnectionStats(Box::new(move |s| {
      let _ = tx.send(s);
    }))));
    let stats = async move {
      let conn = slot.get().ok_or_else(|| for_promise(js_error(ErrorCode::Closed, "the connection has not started")))?;
      match if asked { rx.await.ok() } else { None } {
        Some(live) => Ok(connection_stats(&live)),
        // The driver is gone: tokio-quiche refreshed these at close.
        None => Ok(connection_stats(&conn.stats().lock().unwrap_or_else(|p| p.into_inner()))),
      }
    };
    env.spawn_future(stats).map_err(napi_failure)
  }

  /// The TLS session to resume later (quiche's encoding, with the peer's
  /// transport parameters); `null` until the server sent a ticket.
  #[napi(catch_unwind, ts_return_type = "Promise<Buffer | null>")]
  pub fn session<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<Buffer>>> {
    let session = self.with_connection(|qconn| qconn.session().map(<[u8]>::to_vec));
    let session = async move {
      let session = session.await.ok_or_else(|| for_promise(js_error(ErrorCode::Closed, "the connection is closed")))?;
      Ok(session.map(Buffer::from))
    };
    env.spawn_future(session).map_err(napi_failure)
  }

  /// Whether the handshake resumed an earlier session.
  #[napi(catch_unwind, ts_return_type = "Promise<boolean>")]
  pub fn is_resumed<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, bool>> {
    let resumed = self.with_connection(|qconn| qconn.is_resumed());
    let resumed = async move { resumed.await.ok_or_else(|| for_promise(js_error(ErrorCode::Closed, "the connection is closed"))) };
    env.spawn_future(resumed).map_err(napi_failure)
  }

  /// Raw QUIC: opens a stream, once the peer's stream limit allows (the
  /// promise waits for its MAX_STREAMS until then).
  /// The command goes to the driver before this returns, so streams get
  /// their ids in the order JS asked for them.
  #[napi(catch_unwind, ts_return_type = "Promise<NativeRawStream>")]
  pub fn open_stream<'env>(&self, env: &'env Env, bidi: bool) -> Result<PromiseRaw<'env, NativeRawStream>> {
    let closed = || for_promise(js_error(ErrorCode::Closed, "the connection is closed"));
    let (reply, opened) = oneshot::channel();
    let sent = self.raw()?.commands.send(RawCommand::Open { bidi, reply }).is_ok();
    let commands = self.commands.clone();
    env
      .spawn_future(async move {
        if !sent {
          return Err(closed());
        }
        let ends = opened.await.map_err(|_| closed())?;
        let ends = ends.map_err(|e| for_promise(js_error(ErrorCode::Internal, format!("quiche refused to open the stream: {e}"))))?;
        let stream_id = ends.stream_id as i64;
        let (send, recv) = raw_stream(ends, &commands);
        Ok(NativeRawStream { stream_id, send, recv })
      })
      .map_err(napi_failure)
  }

  /// Raw QUIC: the app took `count` of the peer's unidirectional streams,
  /// which makes room for the ones the driver left unread.
  #[napi(catch_unwind)]
  pub fn accept_streams(&self, count: u32) -> Result<()> {
    // A connection that has ended takes no more; nothing to release.
    let _ = self.raw()?.commands.send(RawCommand::Accepted(count));
    Ok(())
  }

  /// Raw QUIC: the connection's datagrams as one flow; once.
  #[napi(catch_unwind)]
  pub fn take_datagrams(&self) -> Result<Option<NativeDatagramFlow>> {
    Ok(self.raw()?.datagrams.lock().unwrap_or_else(|p| p.into_inner()).take())
  }

  /// Raw QUIC: the negotiated ALPN protocol, once the handshake is done.
  #[napi(getter)]
  pub fn application_protocol(&self) -> Option<String> {
    let alpn = self.raw.as_ref()?.shared.alpn.get()?;
    Some(String::from_utf8_lossy(alpn).into_owned())
  }

  /// Raw QUIC: `[droppedIn, droppedOut, maxDatagramSize]`: inbound datagrams
  /// dropped unread, outbound ones quiche refused, and the largest payload
  /// the peer and path take now (0: none, or not known before the handshake).
  #[napi(catch_unwind)]
  pub fn datagram_counters(&self) -> Result<Vec<f64>> {
    let shared = &self.raw()?.shared;
    Ok(vec![
      shared.datagrams_dropped_in.load(Ordering::Relaxed) as f64,
      shared.datagrams_dropped_out.load(Ordering::Relaxed) as f64,
      match shared.max_datagram_size.load(Ordering::Relaxed) {
        DATAGRAM_SIZE_UNKNOWN => 0.0,
        size => size as f64,
      },
    ])
  }

  /// `ip:port` of this end, once the connection has started.
  #[napi(getter)]
  pub fn local_address(&self) -> Option<String> {
    self.slot.get().map(|c| c.local_addr().to_string())
  }

  /// Server only: the client certificate verified in the handshake (DER),
  /// when the server asked for one.
  #[napi(getter)]
  pub fn peer_certificate(&self) -> Option<Buffer> {
    self.peer_cert.as_ref()?.get().map(|der| der.clone().into())
  }

  /// `ip:port` of the peer, once the connection has started.
  #[napi(getter)]
  pub fn peer_address(&self) -> Option<String> {
    self.slot.get().map(|c| c.peer_addr().to_string())
  }
}
