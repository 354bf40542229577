//! A client's requests between `sendRequest` and their `newOutboundRequest`
//! event: the request channel, and the body writers the driver hands over
//! before it announces each request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use tokio_quiche::http3::driver::{ClientRequestSender, OutboundFrameSender};

use crate::commands::Commands;
use crate::stream::{NativeBodyWriter, Role};

/// Body writers of client requests, waiting for their `NewOutboundRequest` event.
pub type PendingWriters = Arc<Mutex<HashMap<u64, oneshot::Receiver<OutboundFrameSender>>>>;

/// The client-only half: the request channel.
pub struct ClientRequests {
  pub sender: ClientRequestSender,
  pub writers: PendingWriters,
}

/// Takes the body writer for `request_id`, which the driver sent just before
/// announcing the request.
pub fn take_writer(writers: &PendingWriters, commands: &Commands, stream_id: u64, request_id: u64) -> Option<NativeBodyWriter> {
  let mut rx = writers.lock().unwrap_or_else(|p| p.into_inner()).remove(&request_id)?;
  rx.try_recv().ok().map(|send| NativeBodyWriter::new(stream_id, Role::Client, send, commands.clone()))
}
