//! The client's `ClientH3Driver`, kept alive across the server's GOAWAY.
//!
//! tokio-quiche 0.20.1's client driver hands each request to quiche's
//! `send_request`, which refuses with `FrameUnexpected` once the peer's GOAWAY
//! has been read, and the driver treats that refusal as fatal: the connection
//! closes with H3_FRAME_UNEXPECTED and every response still in flight on it is
//! lost. A request can reach the driver after the GOAWAY without JS being at
//! fault: it was sent before the GOAWAY event crossed, or it waited in the
//! driver's own queue for stream credit.
//!
//! `GoawayGuard` relays the driver's events to see the GOAWAY go by, and after
//! it turns that one refusal into a dropped request. Nothing is lost: JS
//! refuses every request not yet on a stream when the GOAWAY event arrives
//! (`RequestRefusedError`), and `fetch()` sends it again on a new connection.

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio_quiche::http3::driver::{ClientH3Driver, ClientH3Event, H3ConnectionError, H3Event};
use tokio_quiche::metrics::Metrics;
use tokio_quiche::quic::{HandshakeInfo, QuicheConnection};
use tokio_quiche::quiche::h3;
use tokio_quiche::{ApplicationOverQuic, QuicResult};

pub struct GoawayGuard {
  driver: ClientH3Driver,
  /// Dropped once the controller is gone, so the driver sees it go.
  from_driver: Option<UnboundedReceiver<ClientH3Event>>,
  to_controller: UnboundedSender<ClientH3Event>,
  goaway_seen: bool,
}

impl GoawayGuard {
  /// Wraps `driver`, whose events come on `from_driver`; they go on to
  /// `to_controller` in order.
  pub fn new(
    driver: ClientH3Driver, from_driver: UnboundedReceiver<ClientH3Event>, to_controller: UnboundedSender<ClientH3Event>,
  ) -> Self {
    Self { driver, from_driver: Some(from_driver), to_controller, goaway_seen: false }
  }

  /// Passes on what the driver sent during its last call.
  fn relay(&mut self) {
    let Some(from_driver) = &mut self.from_driver else { return };
    while let Ok(event) = from_driver.try_recv() {
      self.goaway_seen |= matches!(event, ClientH3Event::Core(H3Event::GoAway { .. }));
      let _ = self.to_controller.send(event);
    }
  }

  fn relayed<T>(&mut self, result: T) -> T {
    self.relay();
    result
  }
}

/// quiche's `send_request` refusing because the peer sent GOAWAY.
fn is_refused_after_goaway(err: &(dyn std::error::Error + 'static)) -> bool {
  matches!(err.downcast_ref::<H3ConnectionError>(), Some(H3ConnectionError::H3(h3::Error::FrameUnexpected)))
}

impl ApplicationOverQuic for GoawayGuard {
  fn on_conn_established(&mut self, qconn: &mut QuicheConnection, handshake_info: &HandshakeInfo) -> QuicResult<()> {
    let result = self.driver.on_conn_established(qconn, handshake_info);
    self.relayed(result)
  }

  fn should_act(&self) -> bool {
    self.driver.should_act()
  }

  async fn wait_for_data(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    let result = tokio::select! {
      biased;
      result = self.driver.wait_for_data(qconn) => result,
      // The driver closes an idle connection whose controller is gone; it
      // watches its own event channel for that, which the relay keeps open.
      () = self.to_controller.closed(), if self.from_driver.is_some() => {
        self.from_driver = None;
        Ok(())
      },
    };
    self.relay();
    match result {
      // Requests only reach send_request here, and it refuses before touching
      // any state, so the driver carries on as if the request never came.
      Err(err) if self.goaway_seen && is_refused_after_goaway(err.as_ref()) => Ok(()),
      other => other,
    }
  }

  fn process_reads(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    let result = self.driver.process_reads(qconn);
    self.relayed(result)
  }

  fn process_writes(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    let result = self.driver.process_writes(qconn);
    self.relayed(result)
  }

  fn on_conn_close<M: Metrics>(&mut self, qconn: &mut QuicheConnection, metrics: &M, connection_result: &QuicResult<()>) {
    self.driver.on_conn_close(qconn, metrics, connection_result);
    self.relay();
  }
}
