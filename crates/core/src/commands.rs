//! The command channel into a connection's H3 driver, shared by everything
//! that acts on a connection from JS: the controller, its body writers, and
//! the GOAWAY writer. The lowest layer of the bridge: it knows nothing of
//! events, streams or napi.

use std::sync::Arc;

use tokio_quiche::http3::driver::{H3Command, RequestSender};

/// The command channel of either controller type.
pub trait CommandSink: Send + Sync {
  /// False once the driver is gone.
  fn send(&self, cmd: H3Command) -> bool;
}

impl<C: Send> CommandSink for RequestSender<C, H3Command>
where
  H3Command: Into<C>,
{
  fn send(&self, cmd: H3Command) -> bool {
    RequestSender::send(self, cmd).is_ok()
  }
}

/// Shared by the controller, its pump and its body writers.
pub type Commands = Arc<dyn CommandSink>;
