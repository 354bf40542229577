//! HTTP/3 DATAGRAM flows (RFC 9297): [`NativeDatagramFlow`] pairs the
//! connection's datagram sender with one flow's receiver, both from
//! tokio-quiche's `H3Event::NewFlow`.
//!
//! Datagrams are unreliable by design: tokio-quiche drops an inbound datagram
//! when the flow's queue (2,048) is full and an outbound one that does not fit
//! the path. Sends still wait for room in the driver's channel, so a JS
//! sender cannot queue without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Buffer, PromiseRaw, Uint8ArraySlice};
use napi::Env;
use napi_derive::napi;
use tokio::sync::mpsc::Sender;
use tokio_quiche::datagram_socket::DgramBuffer;
use tokio_quiche::http3::driver::{InboundFrame, InboundFrameStream, OutboundFrame, OutboundFrameSender};
use tokio_util::sync::CancellationToken;

use crate::crossings::{self, Settles};
use crate::raw_driver::DATAGRAM_SIZE_UNKNOWN;
use crate::errors::{js_error, napi_failure, ErrorCode, Result};
use crate::offer::{offer, Offer};

/// tokio-quiche prepends the flow id (a QUIC varint, at most 8 bytes) in place.
const HEADROOM: usize = 8;
/// How many queued datagrams one `read()` hands to JS.
const MAX_READ_BATCH: usize = 64;
/// The largest DATAGRAM frame payload quiche accepts from a peer (its
/// `max_datagram_frame_size`), less the flow id. Larger sends can never fit.
pub const MAX_DATAGRAM_PAYLOAD: usize = 65_536 - HEADROOM;

#[napi]
pub struct NativeDatagramFlow {
  flow_id: u64,
  sender: Mutex<Option<Sender<OutboundFrame>>>,
  rx: Arc<tokio::sync::Mutex<Option<InboundFrameStream>>>,
  cancel: CancellationToken,
  /// A raw QUIC connection's datagrams: the payload the peer and path take
  /// now (0: none), which the driver keeps current; H3 flows have a fixed one.
  limit: Option<Arc<AtomicUsize>>,
}

impl NativeDatagramFlow {
  pub fn new(flow_id: u64, send: OutboundFrameSender, recv: InboundFrameStream) -> Self {
    Self {
      flow_id,
      sender: Mutex::new(send.get_ref().cloned()),
      rx: Arc::new(tokio::sync::Mutex::new(Some(recv))),
      cancel: CancellationToken::new(),
      limit: None,
    }
  }

  /// A raw QUIC connection's datagrams as one flow (id 0), sized by `limit`.
  pub fn with_limit(send: OutboundFrameSender, recv: InboundFrameStream, limit: Arc<AtomicUsize>) -> Self {
    Self { limit: Some(limit), ..Self::new(0, send, recv) }
  }

  fn queue<'env>(&self, env: &'env Env, frame: OutboundFrame) -> Result<Option<PromiseRaw<'env, bool>>> {
    let mut slot = self.sender.lock().unwrap_or_else(|p| p.into_inner());
    let Some(sender) = slot.as_ref() else {
      return Err(js_error(ErrorCode::Closed, format!("flow {}: the flow was shut down", self.flow_id)));
    };
    match offer(env, sender, [frame], None)? {
      Offer::Taken => Ok(None),
      Offer::Pending(promise) => Ok(Some(promise)),
      Offer::Closed => {
        *slot = None;
        Err(js_error(ErrorCode::Closed, format!("flow {}: the connection is closed", self.flow_id)))
      },
    }
  }
}

/// Moves a datagram's payload into a `Buffer` without copying the allocation.
fn to_buffer(dgram: DgramBuffer) -> Buffer {
  let (mut data, start) = dgram.into_parts();
  data.drain(..start);
  data.into()
}

#[napi]
impl NativeDatagramFlow {
  #[napi(getter)]
  pub fn flow_id(&self) -> i64 {
    self.flow_id as i64
  }

  /// Queues one datagram (copied now); a promise when the driver's datagram
  /// channel is full.
  #[napi(catch_unwind)]
  pub fn send<'env>(&self, env: &'env Env, data: Uint8ArraySlice<'env>) -> Result<Option<PromiseRaw<'env, bool>>> {
    crossings::into_rust();
    let max = self.limit.as_ref().map_or(MAX_DATAGRAM_PAYLOAD, |l| l.load(Ordering::Relaxed));
    if max == DATAGRAM_SIZE_UNKNOWN {
      return Err(js_error(ErrorCode::InvalidArg, "data: no datagram can go before the handshake is done (await connection.established)"));
    }
    if max == 0 {
      return Err(js_error(ErrorCode::InvalidArg, "data: the peer accepts no datagrams (QuicSettings.enableDgram on both sides)"));
    }
    if data.len() > max {
      return Err(js_error(ErrorCode::InvalidArg, format!("data: a datagram carries at most {max} bytes here, got {}", data.len())));
    }
    let mut buf = Vec::with_capacity(HEADROOM + data.len());
    buf.resize(HEADROOM, 0);
    buf.extend_from_slice(&data);
    self.queue(env, OutboundFrame::Datagram(DgramBuffer::from_vec_with_headroom(buf, HEADROOM), self.flow_id))
  }

  /// `OutboundFrame::FlowShutdown`: closes the request stream `stream_id`
  /// both ways with H3_NO_ERROR and forgets the flow.
  #[napi(catch_unwind)]
  pub fn shutdown<'env>(&self, env: &'env Env, stream_id: f64) -> Result<Option<PromiseRaw<'env, bool>>> {
    let frame = OutboundFrame::FlowShutdown { flow_id: self.flow_id, stream_id: stream_id as u64 };
    let pending = self.queue(env, frame)?;
    self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
    Ok(pending)
  }

  /// The next datagrams (up to 64 already queued), or `null` once the flow
  /// ended (its stream closed, the connection closed, or `close()`). Owns
  /// clones, not `self`, like `NativeBodyReader::read`.
  #[napi(catch_unwind, ts_return_type = "Promise<Array<Buffer> | null>")]
  pub fn read<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<Vec<Buffer>>>> {
    crossings::into_rust();
    env.spawn_future(read_datagrams(self.rx.clone(), self.cancel.clone())).map_err(napi_failure)
  }

  /// Stops receiving; later datagrams on this flow are dropped.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.cancel.cancel();
    if let Ok(mut guard) = self.rx.try_lock() {
      guard.take();
    }
  }
}

/// One `NativeDatagramFlow::read()`.
async fn read_datagrams(rx: Arc<tokio::sync::Mutex<Option<InboundFrameStream>>>, cancel: CancellationToken) -> napi::Result<Option<Vec<Buffer>>> {
  let _settles = Settles;
  let mut guard = rx.lock().await;
  let Some(rx) = guard.as_mut() else {
    return Ok(None);
  };
  let first = tokio::select! {
    frame = rx.recv() => frame,
    _ = cancel.cancelled() => None,
  };
  let Some(first) = first else {
    guard.take();
    return Ok(None);
  };
  let mut batch = Vec::new();
  let mut next = Some(first);
  while let Some(frame) = next {
    if let InboundFrame::Datagram(dgram) = frame {
      batch.push(to_buffer(dgram));
    }
    next = if batch.len() < MAX_READ_BATCH { rx.try_recv().ok() } else { None };
  }
  Ok(Some(batch))
}
