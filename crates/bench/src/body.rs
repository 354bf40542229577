//! Sending and counting bodies: the same static bytes for every response and
//! upload, so no subject pays for producing data.

use bytes::Bytes;
use futures_util::SinkExt;
use tokio_quiche::http3::driver::{InboundFrame, InboundFrameStream, OutboundFrame, OutboundFrameSender};

use crate::CHUNK;

static DATA: [u8; CHUNK] = [0x57; CHUNK];

/// Sends `left` bytes in CHUNK frames, FIN on the last (on an empty frame for
/// an empty body), as bench/routes.ts does. False if the stream went away.
pub async fn send(send: &mut OutboundFrameSender, mut left: u64) -> bool {
  loop {
    let n = left.min(CHUNK as u64) as usize;
    left -= n as u64;
    if send.send(OutboundFrame::Body(Bytes::from_static(&DATA[..n]), left == 0)).await.is_err() {
      return false;
    }
    if left == 0 {
      return true;
    }
  }
}

/// Reads a body to its FIN and returns its length; `on_chunk` sees each
/// frame's length as it arrives.
pub async fn count(recv: &mut InboundFrameStream, mut on_chunk: impl FnMut(u64)) -> u64 {
  let mut n = 0u64;
  while let Some(InboundFrame::Body(data, fin)) = recv.recv().await {
    n += data.len() as u64;
    on_chunk(data.len() as u64);
    if fin {
      break;
    }
  }
  n
}
