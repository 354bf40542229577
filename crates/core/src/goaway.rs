//! GOAWAY written by the binding instead of `H3Command::GoAway`.
//!
//! tokio-quiche 0.20.1 runs `H3Command::GoAway` as
//! `h3::Connection::send_goaway(qconn, max_stream_seen)?`. quiche refuses
//! with `StreamBlocked` whenever the connection's send capacity (congestion
//! window, flow control) is used up, which is the normal state while
//! responses stream, and the `?` makes that fatal: the driver stops without
//! a CONNECTION_CLOSE and the peer idles out. Its id is also the highest
//! request seen, which RFC 9114 §5.2 calls unprocessed although it runs.
//!
//! So the binding writes the frame itself on the control stream from a
//! `QuicCommand::Custom` on the driver thread, only when it fits, retrying
//! until it does; its id is the first request stream JS has not been given,
//! and requests at or above it are refused with H3_REQUEST_REJECTED.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_quiche::http3::driver::{H3Command, StreamShutdown};
use tokio_quiche::quic::{QuicCommand, QuicheConnection};

use crate::commands::Commands;

/// RFC 9114 §7.2.6.
const GOAWAY_FRAME: u64 = 0x07;
/// H3_REQUEST_REJECTED: the request was not processed; the client may retry it.
pub const REQUEST_REJECTED: u64 = 0x10b;
/// How long to wait for send capacity before trying again.
const RETRY: Duration = Duration::from_millis(10);

#[derive(Default)]
struct State {
  /// Highest request stream id handed to JS (server).
  last_request: Option<u64>,
  /// The id of the GOAWAY written, once it is.
  sent: Option<u64>,
}

/// One connection's GOAWAY state.
#[derive(Default)]
pub struct Goaway {
  state: Mutex<State>,
}

impl Goaway {
  /// Server: whether the request on `stream_id` may reach JS, i.e. no GOAWAY
  /// already told the peer it will not be processed. Admitted requests raise
  /// the id of a GOAWAY still to be written.
  pub fn admit(&self, stream_id: u64) -> bool {
    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
    if state.sent.is_some_and(|id| stream_id >= id) {
      return false;
    }
    state.last_request = Some(state.last_request.map_or(stream_id, |last| last.max(stream_id)));
    true
  }

  /// Writes the GOAWAY frame if the control stream can take all of it now.
  fn try_write(&self, qconn: &mut QuicheConnection) -> bool {
    let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
    // A client sends 0: it accepts no server push.
    let id = if qconn.is_server() { state.last_request.map_or(0, |last| last + 4) } else { 0 };
    // Later GOAWAYs may not raise the id (RFC 9114 §5.2).
    let id = state.sent.map_or(id, |sent| id.min(sent));
    let frame = goaway_frame(id);
    // quiche's h3 layer opens the control stream as its first unidirectional
    // stream and writes whole frames, so a whole frame here never splits one.
    let control = if qconn.is_server() { 3 } else { 2 };
    if !matches!(qconn.stream_capacity(control), Ok(cap) if cap >= frame.len()) {
      return false;
    }
    if !matches!(qconn.stream_send(control, &frame, false), Ok(n) if n == frame.len()) {
      return false;
    }
    state.sent = Some(id);
    true
  }

  /// Queues one attempt; its receiver says whether the frame went out. None
  /// once the driver is gone.
  fn attempt(self: &Arc<Self>, commands: &Commands) -> Option<oneshot::Receiver<bool>> {
    let (tx, rx) = oneshot::channel();
    let goaway = self.clone();
    let write = QuicCommand::Custom(Box::new(move |qconn| {
      let _ = tx.send(goaway.try_write(qconn));
    }));
    commands.send(H3Command::QuicCmd(write)).then_some(rx)
  }

  /// Sends GOAWAY as soon as it fits; false if the driver is gone.
  pub fn send(self: &Arc<Self>, commands: &Commands) -> bool {
    let Some(mut written) = self.attempt(commands) else {
      return false;
    };
    let (goaway, commands) = (self.clone(), commands.clone());
    napi::bindgen_prelude::spawn(async move {
      // Err: the driver dropped the command, so the connection is ending anyway.
      while let Ok(false) = written.await {
        tokio::time::sleep(RETRY).await;
        match goaway.attempt(&commands) {
          Some(next) => written = next,
          None => return,
        }
      }
    });
    true
  }
}

/// Refuses a request a GOAWAY excluded, with H3_REQUEST_REJECTED both ways.
/// `event` (holding the stream's body channels) is dropped on the driver
/// after the shutdown; dropped first, tokio-quiche would reset the stream
/// with H3_REQUEST_CANCELLED, which does not tell the client to retry.
pub fn reject<E: Send + 'static>(commands: &Commands, stream_id: u64, event: E) {
  let shutdown = StreamShutdown::Both { read_error_code: REQUEST_REJECTED, write_error_code: REQUEST_REJECTED };
  commands.send(H3Command::ShutdownStream { stream_id, shutdown });
  commands.send(H3Command::QuicCmd(QuicCommand::Custom(Box::new(move |_| drop(event)))));
}

/// A GOAWAY frame carrying `id`: type, length and id as QUIC varints.
fn goaway_frame(id: u64) -> Vec<u8> {
  let mut frame = [0u8; 3 * 8];
  let mut out = octets::OctetsMut::with_slice(&mut frame);
  // A 24-byte buffer holds three varints, so these cannot fail.
  let _ = out.put_varint(GOAWAY_FRAME);
  let _ = out.put_varint(octets::varint_len(id) as u64);
  let _ = out.put_varint(id);
  let len = out.off();
  frame[..len].to_vec()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn goaway_frames_are_type_length_id() {
    assert_eq!(goaway_frame(12), [0x07, 0x01, 0x0c]);
    // RFC 9000 §A.1's two-byte example, 15,293.
    assert_eq!(goaway_frame(15_293), [0x07, 0x02, 0x7b, 0xbd]);
  }

  #[test]
  fn requests_at_or_above_the_sent_id_are_refused() {
    let goaway = Goaway::default();
    assert!(goaway.admit(0));
    assert!(goaway.admit(8));
    goaway.state.lock().unwrap().sent = Some(12);
    assert!(goaway.admit(4), "below the id: processed");
    assert!(!goaway.admit(12));
    assert!(!goaway.admit(16));
  }
}
