//! H3 events on their way to JS: conversion of tokio-quiche's event enums
//! into event records (`batch.rs`), the per-connection [`StreamHandles`]
//! that conversion hands out, and the pump that drains a connection's event
//! channel into a ThreadsafeFunction or a listener's outbox.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::FutureExt;

use napi::bindgen_prelude::BigInt;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_quiche::http3::driver::{ClientH3Event, H3Event, IncomingH3Headers, OutboundFrame, ServerH3Event};
use tokio_quiche::QuicConnection;

use crate::batch::{CloseInfo, EventBatch, Kind, NativeH3Event, PendingAudit};
use crate::commands::Commands;
use crate::crossings;
use crate::flow::NativeDatagramFlow;
use crate::headers::{check_received, headers_to_js, HeaderBlock};
use crate::stats::error_code as code;
use crate::raw_driver::RawEvent;
use crate::stream::{queued_body, raw_stream, BodyBytes, NativeBodyReader, NativeBodyWriter, Role, UnclaimedWriters};

/// What a connection's event conversion hands out: the command channel (for
/// body writers), the writers JS has not claimed yet, and the audit stats
/// waiting for the next crossing.
#[derive(Clone)]
pub struct StreamHandles {
  pub commands: Commands,
  pub writers: Arc<UnclaimedWriters>,
  pub audit: Arc<PendingAudit>,
}

impl StreamHandles {
  pub fn new(commands: Commands) -> Self {
    Self { commands, writers: Arc::default(), audit: Arc::default() }
  }
}

pub fn close_info(conn: Option<&QuicConnection>) -> CloseInfo {
  let Some(conn) = conn else {
    return CloseInfo {
      local_transport_code: None,
      local_application_code: None,
      peer_transport_code: None,
      peer_application_code: None,
      reason: Some("the connection was never started".into()),
      sent_bytes: 0,
      recv_bytes: 0,
      lost_packets: 0,
    };
  };
  let audit = conn.audit_log_stats();
  let stats = conn.stats().lock().map(|s| s.stats.clone()).ok();
  CloseInfo {
    local_transport_code: code(audit.sent_conn_close_transport_error_code()),
    local_application_code: code(audit.sent_conn_close_application_error_code()),
    peer_transport_code: code(audit.recvd_conn_close_transport_error_code()),
    peer_application_code: code(audit.recvd_conn_close_application_error_code()),
    reason: audit.connection_close_reason().as_ref().map(|e| e.to_string()),
    sent_bytes: stats.as_ref().map_or(0, |s| s.sent_bytes),
    recv_bytes: stats.as_ref().map_or(0, |s| s.recv_bytes),
    lost_packets: stats.as_ref().map_or(0, |s| s.lost as u64),
  }
}

fn event(kind: Kind) -> NativeH3Event {
  NativeH3Event { kind, ..Default::default() }
}

fn headers_event(h: IncomingH3Headers, role: Role, handles: &StreamHandles) -> NativeH3Event {
  let IncomingH3Headers { stream_id, headers, send, mut recv, read_fin, h3_audit_stats } = h;
  if role == Role::Server {
    if let Err(e) = check_received(&headers, HeaderBlock::Request) {
      // A malformed request is a stream error H3_MESSAGE_ERROR (RFC 9114
      // §4.1.2): PeerStreamError makes the driver reset the stream with it.
      if let Some(sender) = send.get_ref() {
        let _ = sender.try_send(OutboundFrame::PeerStreamError);
      }
      return NativeH3Event { stream_id: Some(stream_id as i64), error: Some(e.message), ..event(Kind::MalformedRequest) };
    }
  }
  // A client's writer is only useful until the response ends, here already.
  if role == Role::Server || !read_fin {
    handles.writers.put(NativeBodyWriter::new(stream_id, role, send, handles.commands.clone()));
  }
  let body = if read_fin { None } else { queued_body(&mut recv) };
  // Without a body, or with all of it here, there is nothing left to read:
  // no reader object, and the audit stats ride with the batch.
  let (recv, audit_index) = if read_fin || matches!(body, Some((_, true))) {
    (None, Some(handles.audit.push(h3_audit_stats)))
  } else {
    (Some(NativeBodyReader::new(stream_id, recv, h3_audit_stats)), None)
  };
  NativeH3Event {
    stream_id: Some(stream_id as i64),
    headers: Some(headers_to_js(&headers)),
    recv,
    body: body.map(|(data, _)| data),
    audit_index,
    read_fin: Some(read_fin),
    ..event(Kind::Headers)
  }
}

/// Converts the events both drivers share.
pub fn core_event(ev: H3Event, role: Role, handles: &StreamHandles) -> NativeH3Event {
  // Unclaimed writers go when their stream can no longer be written: a
  // server hears that from StreamClosed; a client, which does not get it,
  // when the response ends.
  match ev {
    H3Event::StreamClosed { stream_id } => handles.writers.forget(stream_id),
    H3Event::ResetStream { stream_id } | H3Event::BodyBytesReceived { stream_id, fin: true, .. } if role == Role::Client => {
      handles.writers.forget(stream_id)
    },
    _ => {},
  }
  match ev {
    H3Event::IncomingSettings { settings } => NativeH3Event {
      settings: Some(settings.into_iter().flat_map(|(k, v)| [BigInt::from(k), BigInt::from(v)]).collect()),
      ..event(Kind::Settings)
    },
    H3Event::IncomingHeaders(h) => headers_event(h, role, handles),
    H3Event::NewFlow { flow_id, send, recv } => NativeH3Event {
      id: Some(flow_id as f64),
      flow: Some(NativeDatagramFlow::new(flow_id, send, recv)),
      ..event(Kind::NewFlow)
    },
    H3Event::ResetStream { stream_id } => NativeH3Event { stream_id: Some(stream_id as i64), ..event(Kind::ResetStream) },
    H3Event::ConnectionError(e) => NativeH3Event { error: Some(e.to_string()), ..event(Kind::ConnectionError) },
    H3Event::ConnectionShutdown(e) => NativeH3Event {
      error: e.map(|e| e.to_string()),
      ..event(Kind::ConnectionShutdown)
    },
    H3Event::BodyBytesReceived { stream_id, num_bytes, fin } => NativeH3Event {
      stream_id: Some(stream_id as i64),
      num_bytes: Some(num_bytes as f64),
      fin: Some(fin),
      ..event(Kind::BodyBytesReceived)
    },
    H3Event::StreamClosed { stream_id } => NativeH3Event { stream_id: Some(stream_id as i64), ..event(Kind::StreamClosed) },
    H3Event::GoAway { id } => NativeH3Event { id: Some(id as f64), ..event(Kind::GoAway) },
  }
}

pub fn server_event(ev: ServerH3Event, handles: &StreamHandles) -> NativeH3Event {
  match ev {
    ServerH3Event::Core(ev) => core_event(ev, Role::Server, handles),
    ServerH3Event::Headers { incoming_headers, priority, is_in_early_data } => NativeH3Event {
      priority: priority.map(|p| String::from_utf8_lossy(&p).into_owned()),
      is_in_early_data: Some(*is_in_early_data),
      ..headers_event(incoming_headers, Role::Server, handles)
    },
  }
}

/// Hands batches of events to JS. Strong on purpose: a live connection keeps
/// Node running, and the pump drops it when the connection ends.
pub type EventCallback = ThreadsafeFunction<EventBatch, (), EventBatch, Status, false>;

/// Where a pump hands its batches.
pub enum Deliver {
  /// A controller's own callback; the pump holds bookkeeping back itself.
  Callback(EventCallback),
  /// A `startH3` listener's outbox (outbox.rs), which holds bookkeeping back
  /// across the listener's connections, so the pump hands over at once.
  Outbox(Box<dyn FnMut(EventBatch) + Send>),
}

impl Deliver {
  fn send(&mut self, batch: EventBatch) {
    match self {
      Deliver::Callback(callback) => {
        crossings::into_js();
        callback.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
      },
      Deliver::Outbox(post) => post(batch),
    }
  }
}

/// Filled by `start()` (server) or `connect()` (client); read when the
/// event channel ends to report how the connection closed.
pub type ConnectionSlot = Arc<OnceLock<QuicConnection>>;

/// How many queued events one crossing carries at most.
const MAX_BATCH: usize = 64;

/// How long events JS needs only for bookkeeping may wait for company.
pub const LINGER: Duration = Duration::from_millis(5);

/// `streamClosed` and `bodyBytesReceived` (one or more per request) only
/// update bookkeeping: a batch of nothing else waits up to [`LINGER`] for an
/// event that cannot wait, or the connection's end, instead of waking JS on
/// its own. That is a wake-up of the JS thread less per request under load.
/// A `startH3` listener's outbox also lets a connection's final `closed`
/// wait, for another connection's events.
fn can_wait(ev: &NativeH3Event) -> bool {
  matches!(ev.kind, Kind::StreamClosed | Kind::BodyBytesReceived | Kind::Closed)
}

/// Drains `rx` into `deliver` until the driver drops its sender, then drops
/// the connection's unclaimed writers and sends a final `closed` event with
/// the close info. `convert` may consume an event (None). Events are small
/// (body bytes travel on the bounded per-stream channels), so batching them
/// is safe.
pub fn spawn_event_pump<E: Send + 'static>(
  mut rx: UnboundedReceiver<E>, mut deliver: Deliver, slot: ConnectionSlot, handles: StreamHandles,
  mut convert: impl FnMut(E) -> Option<NativeH3Event> + Send + 'static,
) {
  napi::bindgen_prelude::spawn(async move {
    let lingers = matches!(deliver, Deliver::Callback(_));
    let mut send = |events: Vec<NativeH3Event>| {
      let may_wait = events.iter().all(can_wait);
      deliver.send(EventBatch { events, audit: handles.audit.take(), may_wait });
    };
    // Returns the events still held when the channel ends.
    let drained = AssertUnwindSafe(async {
      let mut events = Vec::new();
      loop {
        let next = if events.is_empty() {
          rx.recv().await
        } else {
          match tokio::time::timeout(LINGER, rx.recv()).await {
            Ok(next) => next,
            Err(_) => {
              send(std::mem::take(&mut events));
              continue;
            },
          }
        };
        let Some(first) = next else { return events };
        events.extend(convert(first));
        while events.len() < MAX_BATCH {
          match rx.try_recv() {
            Ok(ev) => events.extend(convert(ev)),
            Err(_) => break,
          }
        }
        if !lingers || events.len() >= MAX_BATCH || !events.iter().all(can_wait) {
          send(std::mem::take(&mut events));
        }
      }
    })
    .catch_unwind()
    .await;
    handles.writers.clear();
    // JS always hears the end, even if a conversion panicked.
    let mut close = close_info(slot.get());
    if drained.is_err() {
      close.reason = Some("internal error: the event pump panicked".into());
    }
    let mut events = drained.unwrap_or_default();
    events.push(NativeH3Event { close: Some(close), ..event(Kind::Closed) });
    send(events);
  });
}

/// Converts a client event; `take_writer` hands over the body writer of a
/// request that asked for one.
pub fn client_event(
  ev: ClientH3Event, handles: &StreamHandles, take_writer: impl Fn(u64, u64) -> Option<NativeBodyWriter>,
) -> NativeH3Event {
  match ev {
    ClientH3Event::Core(ev) => core_event(ev, Role::Client, handles),
    ClientH3Event::NewOutboundRequest { stream_id, request_id } => NativeH3Event {
      stream_id: Some(stream_id as i64),
      request_id: Some(request_id as f64),
      send: take_writer(stream_id, request_id),
      ..event(Kind::NewOutboundRequest)
    },
  }
}

/// Converts a raw QUIC connection's event (`raw_driver.rs`).
pub fn raw_event(ev: RawEvent, handles: &StreamHandles) -> NativeH3Event {
  match ev {
    RawEvent::Established => event(Kind::Established),
    RawEvent::NewStream(mut ends) => {
      let stream_id = ends.stream_id;
      // As with a request's HEADERS: bytes already here ride with the event,
      // and when they end with FIN, JS needs no reader and no read crossing.
      let body = match ends.first.take() {
        Some((data, fin)) => Some((BodyBytes(data), fin)),
        None => ends.recv.as_mut().and_then(queued_body),
      };
      let audit_index = matches!(body, Some((_, true))).then(|| {
        ends.recv = None;
        handles.audit.push(ends.audit.clone())
      });
      let (send, recv) = raw_stream(ends, &handles.commands);
      // As a request's writer: it waits here until JS claims it, and a
      // stream ended with its last bytes (`endStream`) never makes one in JS.
      if let Some(writer) = send {
        handles.writers.put(writer);
      }
      NativeH3Event { stream_id: Some(stream_id as i64), recv, body: body.map(|(data, _)| data), audit_index, ..event(Kind::NewStream) }
    },
    RawEvent::StopSending { stream_id, code } => {
      NativeH3Event { stream_id: Some(stream_id as i64), id: Some(code as f64), ..event(Kind::StopSending) }
    },
  }
}
