//! What the load and idle clients share: connecting, request headers and
//! closing a connection.

use std::time::{Duration, Instant};

use tokio_quiche::http3::driver::{ClientH3Controller, ClientH3Driver};
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::quic::{ConnectionShutdownBehaviour, QuicCommand};
use tokio_quiche::quiche::h3;
use tokio_quiche::settings::{Hooks, QuicSettings};
use tokio_quiche::{BoxError, ConnectionParams, QuicConnection};

pub struct Connection {
  pub controller: ClientH3Controller,
  /// Held so the connection lives as long as this value.
  _conn: QuicConnection,
  pub handshake: Duration,
}

/// One connection from its own UDP socket; `idle` is the idle timeout this
/// side asks for (the peer's may be shorter). The socket gets the
/// capabilities tokio-quiche's servers get (GSO, GRO, ...), as this package's
/// `connect()` does; tokio-quiche's `connect()` leaves them off, and without
/// GRO a single client receiving bulk data is the bottleneck (measured: ~3.3
/// vs ~7 Gbit/s from subject N on loopback).
pub async fn connect(addr: &str, idle: Duration) -> Result<Connection, BoxError> {
  let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
  socket.connect(addr).await?;
  let mut settings = QuicSettings::default();
  // Loopback benchmark against our own test certificate.
  settings.verify_peer = false;
  settings.max_idle_timeout = Some(idle);
  let params = ConnectionParams::new_client(settings, None, Hooks::default());
  let (driver, controller) = ClientH3Driver::new(Http3Settings::default());
  let start = Instant::now();
  let mut socket: tokio_quiche::socket::Socket<_, _> = socket.try_into()?;
  socket.apply_max_capabilities();
  let conn = tokio_quiche::quic::connect_with_config(socket, Some("localhost"), &params, driver).await?;
  Ok(Connection { controller, _conn: conn, handshake: start.elapsed() })
}

impl Connection {
  /// Closes with NO_ERROR, as a client that is done would.
  pub fn close(&self) {
    let _ = self.controller.cmd_sender().send(QuicCommand::ConnectionClose(ConnectionShutdownBehaviour {
      send_application_close: true,
      error_code: 0x100, // H3_NO_ERROR
      reason: Vec::new(),
    }));
  }
}

pub fn request_headers(method: &str, path: &str) -> Vec<h3::Header> {
  vec![
    h3::Header::new(b":method", method.as_bytes()),
    h3::Header::new(b":scheme", b"https"),
    h3::Header::new(b":authority", b"localhost"),
    h3::Header::new(b":path", path.as_bytes()),
  ]
}
