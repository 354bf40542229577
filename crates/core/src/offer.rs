//! Offering frames to one of the driver's bounded channels (a stream's body
//! channel, a connection's datagram channel) from the JS thread: the JS
//! writer's back-pressure, shared by body writers and datagram flows.

use napi::bindgen_prelude::PromiseRaw;
use napi::Env;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::{Sender, UnboundedSender};
use tokio_quiche::http3::driver::OutboundFrame;

use crate::crossings;
use crate::errors::{napi_failure, Result};

/// What became of a frame offered to one of the driver's bounded channels.
pub enum Offer<'env> {
  /// The channel took it without waiting.
  Taken,
  /// The channel is full: the promise resolves to "accepted?" once it has room.
  Pending(PromiseRaw<'env, bool>),
  /// The driver dropped its end.
  Closed,
}

/// How a writer tells a driver that reads its channels only when asked (raw
/// QUIC's, which would otherwise poll every idle stream at each wake-up)
/// that a stream has frames, or that its writer has gone.
#[derive(Clone)]
pub struct Doorbell {
  pub queue: UnboundedSender<u64>,
  pub stream_id: u64,
}

impl Doorbell {
  pub fn ring(&self) {
    let _ = self.queue.send(self.stream_id);
  }
}

/// Offers `frames`, in order, without blocking the JS thread; from the first
/// one the channel has no room for, the rest wait on the runtime, still in
/// order. This is the JS writer's back-pressure. `doorbell` rings once the
/// frames are in.
pub fn offer<'env>(
  env: &'env Env, sender: &Sender<OutboundFrame>, frames: impl IntoIterator<Item = OutboundFrame>, doorbell: Option<&Doorbell>,
) -> Result<Offer<'env>> {
  let mut frames = frames.into_iter();
  while let Some(frame) = frames.next() {
    match sender.try_send(frame) {
      Ok(()) => {},
      Err(TrySendError::Full(frame)) => {
        let sender = sender.clone();
        let rest: Vec<_> = std::iter::once(frame).chain(frames).collect();
        let doorbell = doorbell.cloned();
        let waited = env.spawn_future(async move {
          let mut accepted = true;
          for frame in rest {
            accepted = accepted && sender.send(frame).await.is_ok();
          }
          if let Some(doorbell) = doorbell {
            doorbell.ring();
          }
          crossings::into_js();
          Ok(accepted)
        });
        return Ok(Offer::Pending(waited.map_err(napi_failure)?));
      },
      Err(TrySendError::Closed(_)) => return Ok(Offer::Closed),
    }
  }
  if let Some(doorbell) = doorbell {
    doorbell.ring();
  }
  Ok(Offer::Taken)
}
