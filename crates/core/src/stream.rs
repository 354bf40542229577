//! One HTTP/3 message body in each direction: [`NativeBodyWriter`] wraps
//! tokio-quiche's `OutboundFrameSender`, [`NativeBodyReader`] its
//! `InboundFrameStream`; [`UnclaimedWriters`] keeps a connection's writers
//! JS has not asked for.
//!
//! Back-pressure: a write first tries the bounded per-stream channel without
//! leaving the JS thread; only when it is full does it hand JS a promise that
//! settles once the driver has room. A read takes frames only when JS asks, so
//! a JS reader that stops reading stops the driver reading from quiche.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{Buffer, PromiseRaw, ToNapiValue, Uint8ArraySlice};
use napi::{check_status, sys};
use napi::Env;
use napi_derive::napi;
use tokio::sync::mpsc::{self, Sender};
use bytes::Bytes;
use tokio_quiche::http3::driver::{H3Command, InboundFrame, InboundFrameStream, OutboundFrame, OutboundFrameSender, StreamShutdown};
use tokio_quiche::http3::H3AuditStats;
use tokio_quiche::quiche::h3::{self, NameValue};
use tokio_util::sync::CancellationToken;

use crate::commands::Commands;
use crate::crossings::{self, Settles};
use crate::errors::{js_error, napi_failure, ErrorCode, Result};
use crate::headers::{headers_from_flat, HeaderBlock};
use crate::offer::{offer, Doorbell, Offer};
use crate::raw_driver::RawStreamEnds;
use crate::stats::{audit_stats, error_code, NativeH3AuditStats};

/// Which side of the exchange a writer belongs to; it decides which header
/// blocks may still be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
  /// Writes a response: headers (1xx, then final), body, trailers.
  Server,
  /// Writes a request body: the request headers are already sent.
  Client,
  /// Writes a raw QUIC stream (`raw_driver.rs`): bytes only.
  Raw,
}

/// The write half of a stream, handed to JS as `OutboundFrameSender`.
#[napi]
pub struct NativeBodyWriter {
  stream_id: u64,
  role: Role,
  sender: Mutex<Option<Sender<OutboundFrame>>>,
  finished: AtomicBool,
  /// A final (non-1xx) HEADERS went out, so body and trailers may follow.
  /// A client's request headers go out with the request.
  head_sent: AtomicBool,
  /// The connection's commands, for `close()`.
  commands: Commands,
  /// A raw QUIC stream's stats, where the driver notes the peer's STOP_SENDING.
  audit: Option<Arc<H3AuditStats>>,
  /// A raw QUIC stream's: rung after each frame and when this writer goes.
  doorbell: Option<Doorbell>,
}

impl Drop for NativeBodyWriter {
  fn drop(&mut self) {
    // The driver reads a raw stream's channel only when rung: it must hear
    // that the writer has gone (before FIN, the stream is then reset).
    if let Some(doorbell) = &self.doorbell {
      doorbell.ring();
    }
  }
}

impl NativeBodyWriter {
  pub fn new(stream_id: u64, role: Role, send: OutboundFrameSender, commands: Commands) -> Self {
    Self {
      stream_id,
      role,
      sender: Mutex::new(send.get_ref().cloned()),
      finished: AtomicBool::new(false),
      head_sent: AtomicBool::new(role != Role::Server),
      commands,
      audit: None,
      doorbell: None,
    }
  }

  /// A body or trailers before the final response HEADERS would make
  /// tokio-quiche fail the whole connection; refuse it here instead.
  fn check_head_sent(&self) -> Result<()> {
    if self.head_sent.load(Ordering::Acquire) {
      return Ok(());
    }
    Err(js_error(
      ErrorCode::InvalidArg,
      format!("frame: stream {}: send the response headers (a final :status) before body or trailers", self.stream_id),
    ))
  }

  /// Queues `frames`; `Ok(None)` when the channel took them at once, a
  /// promise resolving to "accepted?" when the caller must wait for capacity.
  fn dispatch<'env>(
    &self, env: &'env Env, frames: impl IntoIterator<Item = OutboundFrame>, fin: bool,
  ) -> Result<Option<PromiseRaw<'env, bool>>> {
    crossings::into_rust();
    let mut slot = self.sender.lock().unwrap_or_else(|p| p.into_inner());
    if self.finished.load(Ordering::Acquire) {
      return Err(js_error(
        ErrorCode::StreamFinished,
        format!("stream {}: a frame was sent after the stream's FIN", self.stream_id),
      ));
    }
    let Some(sender) = slot.as_ref() else {
      return Err(js_error(ErrorCode::Closed, format!("stream {}: the sender was closed", self.stream_id)));
    };
    let pending = match offer(env, sender, frames, self.doorbell.as_ref())? {
      Offer::Taken => None,
      Offer::Pending(promise) => Some(promise),
      Offer::Closed => {
        *slot = None;
        return Err(stream_closed(self.stream_id));
      },
    };
    if fin {
      // The driver drops its end after FIN; drop ours so nothing lingers.
      self.finished.store(true, Ordering::Release);
      *slot = None;
    }
    Ok(pending)
  }

  /// A validated response HEADERS frame, and whether its status is 1xx.
  fn response_head(&self, headers: Vec<String>, urgency: Option<u32>, incremental: Option<bool>) -> Result<(OutboundFrame, bool)> {
    match self.role {
      Role::Server => {},
      Role::Client => {
        return Err(js_error(ErrorCode::InvalidArg, "frame: a request's headers are sent with the request; send body or trailers"))
      },
      Role::Raw => return Err(js_error(ErrorCode::InvalidArg, "frame: a raw QUIC stream carries bytes only")),
    }
    let priority = urgency.map(|u| h3::Priority::new(u as u8, incremental.unwrap_or(false)));
    let frame = self.header_frame(headers, HeaderBlock::Response, priority)?;
    let informational = matches!(&frame, OutboundFrame::Headers(h, _) if h.iter().any(|h| h.name() == b":status" && h.value().starts_with(b"1")));
    Ok((frame, informational))
  }

  fn header_frame(&self, headers: Vec<String>, block: HeaderBlock, priority: Option<h3::Priority>) -> Result<OutboundFrame> {
    let headers = headers_from_flat(&headers, block)?;
    Ok(match block {
      HeaderBlock::Trailers => OutboundFrame::Trailers(headers, priority),
      _ => OutboundFrame::Headers(headers, priority),
    })
  }
}

#[napi]
impl NativeBodyWriter {
  #[napi(getter)]
  pub fn stream_id(&self) -> i64 {
    self.stream_id as i64
  }

  /// Sends a HEADERS frame (a response: 1xx first or the final one). HTTP/3
  /// HEADERS never carry FIN here; finish with a body or trailers.
  #[napi(catch_unwind)]
  pub fn send_headers<'env>(
    &self, env: &'env Env, headers: Vec<String>, urgency: Option<u32>, incremental: Option<bool>,
  ) -> Result<Option<PromiseRaw<'env, bool>>> {
    let (frame, informational) = self.response_head(headers, urgency, incremental)?;
    let pending = self.dispatch(env, [frame], false)?;
    if !informational {
      self.head_sent.store(true, Ordering::Release);
    }
    Ok(pending)
  }

  /// A whole response in one call: final HEADERS, then `body` (copied now)
  /// with FIN. One crossing instead of two or three for a small response.
  #[napi(catch_unwind)]
  pub fn send_response<'env>(
    &self, env: &'env Env, headers: Vec<String>, body: Option<Uint8ArraySlice<'env>>, urgency: Option<u32>, incremental: Option<bool>,
  ) -> Result<Option<PromiseRaw<'env, bool>>> {
    let (head, informational) = self.response_head(headers, urgency, incremental)?;
    if informational {
      return Err(js_error(ErrorCode::InvalidArg, "headers: respond() needs a final status (200-599); send 1xx with sendHeaders()"));
    }
    let body = OutboundFrame::Body(body.map_or_else(Bytes::new, |b| Bytes::copy_from_slice(&b)), true);
    let pending = self.dispatch(env, [head, body], true)?;
    self.head_sent.store(true, Ordering::Release);
    Ok(pending)
  }

  /// Sends body bytes (copied now, so JS may reuse its buffer), optionally with FIN.
  #[napi(catch_unwind)]
  pub fn send_body<'env>(&self, env: &'env Env, data: Uint8ArraySlice<'env>, fin: bool) -> Result<Option<PromiseRaw<'env, bool>>> {
    if data.is_empty() && !fin {
      return Ok(None);
    }
    self.check_head_sent()?;
    let frame = OutboundFrame::Body(Bytes::copy_from_slice(&data), fin);
    self.dispatch(env, [frame], fin)
  }

  /// Sends trailers, which end the stream.
  #[napi(catch_unwind)]
  pub fn send_trailers<'env>(&self, env: &'env Env, headers: Vec<String>) -> Result<Option<PromiseRaw<'env, bool>>> {
    if self.role == Role::Raw {
      return Err(js_error(ErrorCode::InvalidArg, "frame: a raw QUIC stream carries bytes only"));
    }
    self.check_head_sent()?;
    let frame = self.header_frame(headers, HeaderBlock::Trailers, None)?;
    self.dispatch(env, [frame], true)
  }

  /// Resets the stream both ways with H3_MESSAGE_ERROR (`OutboundFrame::PeerStreamError`).
  #[napi(catch_unwind)]
  pub fn send_peer_stream_error<'env>(&self, env: &'env Env) -> Result<Option<PromiseRaw<'env, bool>>> {
    self.dispatch(env, [OutboundFrame::PeerStreamError], true)
  }

  /// Drops the sender; before FIN, also cancels the stream both ways
  /// (RESET_STREAM, STOP_SENDING) with H3_REQUEST_CANCELLED (0x10c).
  #[napi(catch_unwind)]
  pub fn close(&self) {
    let sender = self.sender.lock().unwrap_or_else(|p| p.into_inner()).take();
    // Dropping alone is not enough: tokio-quiche resets a stream whose sender
    // is gone only when it next polls that stream, and a client driver keeps
    // its own copy of the request's sender. Both ways, because once the
    // driver has forgotten the stream, more DATA from the peer on it would be
    // a fatal NonexistentStream error.
    if sender.is_some_and(|s| !s.is_closed()) {
      let shutdown = StreamShutdown::Both { read_error_code: REQUEST_CANCELLED, write_error_code: REQUEST_CANCELLED };
      self.commands.send(H3Command::ShutdownStream { stream_id: self.stream_id, shutdown });
    }
  }

  /// True once FIN was queued, the sender was closed, or the driver stopped
  /// accepting frames.
  #[napi(getter)]
  pub fn is_closed(&self) -> bool {
    self.sender.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_none_or(|s| s.is_closed())
  }

  /// Raw QUIC: the code of the peer's STOP_SENDING, once one has closed this writer.
  #[napi(getter)]
  pub fn stopped_with(&self) -> Option<i64> {
    error_code(self.audit.as_ref()?.recvd_stop_sending_error_code())
  }
}

/// A raw QUIC stream's writer and reader (whichever its direction has).
pub fn raw_stream(ends: RawStreamEnds, commands: &Commands) -> (Option<NativeBodyWriter>, Option<NativeBodyReader>) {
  let RawStreamEnds { stream_id, send, recv, audit, doorbell, .. } = ends;
  let writer = send.map(|send| {
    let mut writer = NativeBodyWriter::new(stream_id, Role::Raw, send, commands.clone());
    (writer.audit, writer.doorbell) = (Some(audit.clone()), doorbell);
    writer
  });
  (writer, recv.map(|recv| NativeBodyReader::new(stream_id, recv, audit)))
}

pub fn stream_closed(stream_id: u64) -> napi::Error<ErrorCode> {
  js_error(
    ErrorCode::StreamClosed,
    format!("stream {stream_id}: the stream is closed for writing (the peer stopped it, it was reset, or the connection closed)"),
  )
}

/// The writers of one connection's streams that JS has not claimed, by
/// stream id. A small response goes out whole from here
/// (`NativeH3Controller.respond`), so most requests never create a JS writer
/// object, which costs more than the rest of the request's crossing; a
/// streamed response claims its writer first.
#[derive(Default)]
pub struct UnclaimedWriters(Mutex<HashMap<u64, NativeBodyWriter>>);

impl UnclaimedWriters {
  fn map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, NativeBodyWriter>> {
    self.0.lock().unwrap_or_else(|p| p.into_inner())
  }

  pub fn put(&self, writer: NativeBodyWriter) {
    self.map().insert(writer.stream_id, writer);
  }

  pub fn take(&self, stream_id: u64) -> Option<NativeBodyWriter> {
    self.map().remove(&stream_id)
  }

  /// Drops a writer JS can no longer use (the stream is over).
  pub fn forget(&self, stream_id: u64) {
    self.take(stream_id);
  }

  /// The connection ended: its writers are dead.
  pub fn clear(&self) {
    std::mem::take(&mut *self.map());
  }
}

/// H3_REQUEST_CANCELLED (RFC 9114 §8.1).
const REQUEST_CANCELLED: u64 = 0x10c;

/// The largest chunk one `read()` hands to JS after joining queued frames.
const MAX_READ_BYTES: usize = 256 * 1024;

/// Chunks up to this size reach JS as a copy; larger ones as an external
/// buffer over the Rust bytes. An external buffer saves the copy but costs a
/// finalizer (run at garbage collection, on the JS thread), which for a
/// small chunk costs more than copying it.
const COPY_UP_TO: usize = 16 * 1024;

/// Body bytes on their way to JS as a `Buffer`.
pub struct BodyBytes(pub Vec<u8>);

impl ToNapiValue for BodyBytes {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    if val.0.is_empty() || val.0.len() > COPY_UP_TO {
      // SAFETY: ToNapiValue's contract is that `env` is live.
      return unsafe { Buffer::to_napi_value(env, val.0.into()) };
    }
    let mut out = std::ptr::null_mut();
    // SAFETY: `env` is live; napi copies the bytes before this returns.
    check_status!(unsafe {
      sys::napi_create_buffer_copy(env, val.0.len(), val.0.as_ptr().cast(), std::ptr::null_mut(), &mut out)
    })?;
    Ok(out)
  }
}

/// One `read()` result.
#[napi(object, object_from_js = false)]
pub struct NativeInboundChunk {
  #[napi(ts_type = "Buffer")]
  pub data: BodyBytes,
  /// The peer finished the body; no more reads.
  pub fin: bool,
  /// The peer reset the stream with this HTTP/3 error code; no more reads.
  pub reset_code: Option<i64>,
  /// This side stopped reading with STOP_SENDING and this code
  /// (`shutdownStream`, a flow shutdown); no more reads.
  pub stop_code: Option<i64>,
}

/// The read half of a stream, handed to JS as `InboundFrameStream`.
#[napi]
pub struct NativeBodyReader {
  stream_id: u64,
  rx: Arc<tokio::sync::Mutex<Option<InboundFrameStream>>>,
  cancel: CancellationToken,
  stats: Arc<H3AuditStats>,
}

impl NativeBodyReader {
  pub fn new(stream_id: u64, recv: InboundFrameStream, stats: Arc<H3AuditStats>) -> Self {
    Self {
      stream_id,
      rx: Arc::new(tokio::sync::Mutex::new(Some(recv))),
      cancel: CancellationToken::new(),
      stats,
    }
  }
}

/// One `NativeBodyReader::read()`.
async fn read_chunk(
  rx: Arc<tokio::sync::Mutex<Option<InboundFrameStream>>>, cancel: CancellationToken, stats: Arc<H3AuditStats>,
) -> napi::Result<Option<NativeInboundChunk>> {
  let _settles = Settles;
  let mut guard = rx.lock().await;
  let Some(rx) = guard.as_mut() else {
    return Ok(None);
  };
  if let Some((data, fin)) = read_batch(rx, &cancel, MAX_READ_BYTES).await {
    if fin {
      guard.take();
    }
    return Ok(Some(NativeInboundChunk { data: BodyBytes(data), fin, reset_code: None, stop_code: None }));
  }
  guard.take();
  if cancel.is_cancelled() {
    return Ok(None);
  }
  // The channel ended without a FIN frame: the audit stats say why.
  let code = |c: i64| (c >= 0).then_some(c);
  let reset_code = code(stats.recvd_reset_stream_error_code());
  let stop_code = code(stats.sent_stop_sending_error_code());
  // `Implicit` is what the driver records for streams open when it shuts down.
  let fin = matches!(stats.recvd_stream_fin(), tokio_quiche::datagram_socket::StreamClosureKind::Explicit);
  Ok((reset_code.is_some() || stop_code.is_some() || fin).then(|| NativeInboundChunk {
    data: BodyBytes(Vec::new()),
    fin: fin && reset_code.is_none() && stop_code.is_none(),
    reset_code,
    stop_code,
  }))
}

/// Takes the body bytes already queued behind a message's HEADERS, up to
/// about [`COPY_UP_TO`]: the whole body when they end with FIN (then JS
/// needs no reader object and no read crossing), else a first chunk for JS
/// to hand out before the reader's. Usual for a small response or POST,
/// whose DATA came in the packet that brought its HEADERS.
pub fn queued_body(recv: &mut mpsc::Receiver<InboundFrame>) -> Option<(BodyBytes, bool)> {
  let first = recv.try_recv().ok()?;
  let (data, fin) = join_queued(recv, first, COPY_UP_TO);
  // Only datagrams were queued: no bytes to carry (a read drops those too).
  (fin || !data.is_empty()).then_some((BodyBytes(data), fin))
}

/// Reads the next frame, then joins whatever else is already queued (up to
/// `max`) so a fast stream costs one crossing per batch, not per frame.
async fn read_batch(rx: &mut mpsc::Receiver<InboundFrame>, cancel: &CancellationToken, max: usize) -> Option<(Vec<u8>, bool)> {
  let first = tokio::select! {
    frame = rx.recv() => frame?,
    _ = cancel.cancelled() => return None,
  };
  Some(join_queued(rx, first, max))
}

/// `first`'s body bytes and whatever body frames are queued behind it, up
/// to `max` bytes; and whether they end with FIN.
pub(crate) fn join_queued(rx: &mut mpsc::Receiver<InboundFrame>, first: InboundFrame, max: usize) -> (Vec<u8>, bool) {
  let (mut data, mut fin) = match first {
    InboundFrame::Body(bytes, fin) => (Vec::from(bytes), fin),
    InboundFrame::Datagram(_) => (Vec::new(), false),
  };
  while !fin && data.len() < max {
    match rx.try_recv() {
      Ok(InboundFrame::Body(bytes, f)) => {
        // Room for the whole batch at once: growing by doubling would copy
        // the bytes already joined again at each step.
        if data.capacity() < max {
          data.reserve_exact(max - data.len());
        }
        data.extend_from_slice(&bytes);
        fin = f;
      },
      Ok(InboundFrame::Datagram(_)) => {},
      Err(_) => break,
    }
  }
  (data, fin)
}

#[napi]
impl NativeBodyReader {
  #[napi(getter)]
  pub fn stream_id(&self) -> i64 {
    self.stream_id as i64
  }

  /// The next body bytes; `null` once the stream ended without FIN or reset
  /// (connection closed, or this reader was closed).
  ///
  /// The read owns clones of what it uses rather than borrowing `self`: when
  /// a worker thread is terminated, its env frees this object while a read
  /// may still be pending on the runtime.
  #[napi(catch_unwind, ts_return_type = "Promise<NativeInboundChunk | null>")]
  pub fn read<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Option<NativeInboundChunk>>> {
    crossings::into_rust();
    let (rx, cancel, stats) = (self.rx.clone(), self.cancel.clone(), self.stats.clone());
    env.spawn_future(read_chunk(rx, cancel, stats)).map_err(napi_failure)
  }

  /// The body bytes already queued, without waiting; `null` when there are
  /// none (or a `read()` is pending, or the body has ended): then `read()`.
  /// A small body is usually here by the time JS asks, and this spares its
  /// read a promise, which costs a wake-up of the JS thread.
  #[napi(catch_unwind)]
  pub fn try_read(&self) -> Option<NativeInboundChunk> {
    crossings::into_rust();
    if self.cancel.is_cancelled() {
      return None;
    }
    let mut guard = self.rx.try_lock().ok()?;
    let rx = guard.as_mut()?;
    let first = rx.try_recv().ok()?;
    let (data, fin) = join_queued(rx, first, MAX_READ_BYTES);
    if fin {
      guard.take();
    }
    Some(NativeInboundChunk { data: BodyBytes(data), fin, reset_code: None, stop_code: None })
  }

  /// This stream's `H3AuditStats`, now.
  #[napi(catch_unwind)]
  pub fn audit_stats(&self) -> NativeH3AuditStats {
    audit_stats(&self.stats)
  }

  /// Stops reading: before the peer's FIN, tokio-quiche sends STOP_SENDING
  /// with H3_REQUEST_CANCELLED (0x10c). A pending `read()` resolves `null`.
  #[napi(catch_unwind)]
  pub fn close(&self) {
    self.cancel.cancel();
    // If a read holds the lock, it sees the cancellation and drops the receiver.
    if let Ok(mut guard) = self.rx.try_lock() {
      drop(guard.take());
    }
  }
}

#[cfg(test)]
mod tests {
  use bytes::BytesMut;
  use tokio::sync::mpsc;
  use tokio_quiche::http3::driver::InboundFrame;

  use super::{queued_body, COPY_UP_TO};

  fn body(data: &[u8], fin: bool) -> InboundFrame {
    InboundFrame::Body(BytesMut::from(data), fin)
  }

  #[test]
  fn a_queued_body_comes_whole_with_fin_or_as_a_first_chunk() {
    let (tx, mut rx) = mpsc::channel(16);
    assert!(queued_body(&mut rx).is_none(), "nothing queued yet");
    for frame in [body(b"ab", false), body(b"cd", false), body(b"", true)] {
      tx.try_send(frame).unwrap();
    }
    let (data, fin) = queued_body(&mut rx).unwrap();
    assert_eq!((data.0.as_slice(), fin), (&b"abcd"[..], true));

    // More than fits: a first chunk, and the rest stays queued for the reader.
    let big = vec![7u8; COPY_UP_TO];
    for frame in [body(&big, false), body(b"x", false), body(b"", true)] {
      tx.try_send(frame).unwrap();
    }
    let (data, fin) = queued_body(&mut rx).unwrap();
    assert_eq!((data.0.len(), fin), (COPY_UP_TO, false));
    assert!(matches!(rx.try_recv(), Ok(InboundFrame::Body(b, false)) if &b[..] == b"x"));
  }

  mod props {
    use proptest::prelude::*;
    use tokio::sync::mpsc;
    use tokio_quiche::datagram_socket::DgramBuffer;
    use tokio_quiche::http3::driver::InboundFrame;

    use super::super::join_queued;
    use super::body;

    proptest! {
      /// Joining queued frames: bytes in order up to the limit, FIN only
      /// when the last frame taken had it, datagrams skipped, nothing lost
      /// (what is not joined stays queued).
      #[test]
      fn prop_joined_frames(frames in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..40), any::<bool>(), any::<bool>()), 1..20), max in 1usize..200) {
        let (tx, mut rx) = mpsc::channel(64);
        let mut all = Vec::new();
        for (data, fin, dgram) in &frames {
          if *dgram {
            tx.try_send(InboundFrame::Datagram(DgramBuffer::from_slice(data))).unwrap();
          } else {
            all.extend_from_slice(data);
            tx.try_send(body(data, *fin)).unwrap();
          }
        }
        let first = rx.try_recv().unwrap();
        let (joined, fin) = join_queued(&mut rx, first, max);
        let mut rest = Vec::new();
        while let Ok(frame) = rx.try_recv() {
          if let InboundFrame::Body(b, _) = frame { rest.extend_from_slice(&b) }
        }
        prop_assert!(all.starts_with(&joined));
        prop_assert_eq!([joined.as_slice(), rest.as_slice()].concat(), all);
        if !fin && !rest.is_empty() {
          prop_assert!(joined.len() >= max, "stopped at {} of {} bytes below the limit", joined.len(), max);
        }
      }
    }
  }
}
