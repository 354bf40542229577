//! Subject N: the native tokio-quiche server.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_quiche::http3::driver::{H3Event, IncomingH3Headers, OutboundFrame, ServerH3Event};
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::metrics::DefaultMetrics;
use tokio_quiche::quiche::h3::{self, NameValue};
use tokio_quiche::settings::{CertificateKind, Hooks, QuicSettings, TlsCertificatePaths};
use tokio_quiche::{BoxError, ConnectionParams, ServerH3Controller, ServerH3Driver};

use crate::{response_size, CHUNK};

pub async fn run(addr: &str, cert: &str, key: &str) -> Result<(), BoxError> {
  let socket = tokio::net::UdpSocket::bind(addr).await?;
  println!("listening {}", socket.local_addr()?);
  let params = ConnectionParams::new_server(
    QuicSettings::default(),
    TlsCertificatePaths { cert, private_key: key, kind: CertificateKind::X509 },
    Hooks::default(),
  );
  let mut listeners = tokio_quiche::listen([socket], params, DefaultMetrics)?;
  let accept = &mut listeners[0];
  while let Some(conn) = accept.next().await {
    let (driver, controller) = ServerH3Driver::new(Http3Settings::default());
    conn?.start(driver);
    tokio::spawn(serve(controller));
  }
  Ok(())
}

async fn serve(mut controller: ServerH3Controller) {
  while let Some(event) = controller.event_receiver_mut().recv().await {
    if let ServerH3Event::Headers { incoming_headers, .. } | ServerH3Event::Core(H3Event::IncomingHeaders(incoming_headers)) = event {
      tokio::spawn(respond(incoming_headers));
    }
  }
}

async fn respond(req: IncomingH3Headers) {
  let IncomingH3Headers { headers, mut send, .. } = req;
  let path = headers.iter().find(|h| h.name() == b":path").map(|h| String::from_utf8_lossy(h.value()).into_owned());
  let mut left = response_size(path.as_deref().unwrap_or("/"));
  static DATA: [u8; CHUNK] = [0x57; CHUNK];
  if send.send(OutboundFrame::Headers(vec![h3::Header::new(b":status", b"200")], None)).await.is_err() {
    return;
  }
  while left > 0 {
    let n = left.min(CHUNK);
    if send.send(OutboundFrame::Body(Bytes::from_static(&DATA[..n]), false)).await.is_err() {
      return;
    }
    left -= n;
  }
  let _ = send.send(OutboundFrame::Body(Bytes::new(), true)).await;
}
