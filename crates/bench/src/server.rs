//! Subject N: the native tokio-quiche server.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncBufReadExt;
use tokio_quiche::http3::driver::{H3Event, IncomingH3Headers, OutboundFrame, ServerH3Event};
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::metrics::DefaultMetrics;
use tokio_quiche::quiche::h3::{self, NameValue};
use tokio_quiche::settings::{CertificateKind, Hooks, QuicSettings, TlsCertificatePaths};
use tokio_quiche::{BoxError, ConnectionParams, ServerH3Controller, ServerH3Driver};

use crate::{body, response_size};

/// Request-body bytes received, partial uploads included, so the harness can
/// measure upload goodput on the server side whatever the client.
static UPLOADED: AtomicU64 = AtomicU64::new(0);

pub async fn run(addr: &str, cert: &str, key: &str) -> Result<(), BoxError> {
  let socket = tokio::net::UdpSocket::bind(addr).await?;
  println!("listening {}", socket.local_addr()?);
  tokio::spawn(answer_stats());
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

/// Each line on stdin is answered with `stats {"uploaded":N}` (bench/subjects.ts);
/// the end of stdin ends the server, so it never outlives the harness.
pub(crate) async fn answer_stats() {
  let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
  while let Ok(Some(_)) = lines.next_line().await {
    println!("stats {{\"uploaded\":{}}}", UPLOADED.load(Ordering::Relaxed));
  }
  std::process::exit(0);
}

async fn serve(mut controller: ServerH3Controller) {
  while let Some(event) = controller.event_receiver_mut().recv().await {
    if let ServerH3Event::Headers { incoming_headers, .. } | ServerH3Event::Core(H3Event::IncomingHeaders(incoming_headers)) = event {
      tokio::spawn(respond(incoming_headers));
    }
  }
}

async fn respond(req: IncomingH3Headers) {
  let IncomingH3Headers { headers, mut send, mut recv, .. } = req;
  let header = |name: &[u8]| headers.iter().find(|h| h.name() == name).map(|h| String::from_utf8_lossy(h.value()).into_owned());
  let upload = header(b":method").as_deref() == Some("POST");
  let received = if upload { body::count(&mut recv, |n| _ = UPLOADED.fetch_add(n, Ordering::Relaxed)).await } else { 0 };
  if send.send(OutboundFrame::Headers(vec![h3::Header::new(b":status", b"200")], None)).await.is_err() {
    return;
  }
  if upload {
    let _ = send.send(OutboundFrame::Body(Bytes::from(received.to_string()), true)).await;
  } else {
    body::send(&mut send, response_size(header(b":path").as_deref().unwrap_or("/")) as u64).await;
  }
}
