//! `tq-bench load --proto h2|h1`: HTTP/2 and HTTP/1.1 over TLS (BoringSSL)
//! and TCP, in the same connection loop as HTTP/3, so the churn and
//! handshake scenarios can drive Node's http2 and https servers too (h2load
//! keeps each connection for the whole run, so it cannot).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use boring::ssl::{SslConnector, SslMethod, SslVerifyMode};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio_boring::SslStream;
use tokio_quiche::BoxError;

use crate::load::{Options, Tally};

/// `alpn` in wire format. No verification, as the HTTP/3 client.
pub fn connector(alpn: &[u8]) -> Result<SslConnector, BoxError> {
  let mut b = SslConnector::builder(SslMethod::tls())?;
  b.set_verify(SslVerifyMode::NONE);
  b.set_alpn_protos(alpn)?;
  Ok(b.build())
}

async fn connect(tls: &SslConnector, addr: &str, t: &mut Tally) -> Result<SslStream<TcpStream>, BoxError> {
  let start = Instant::now();
  let tcp = TcpStream::connect(addr).await?;
  tcp.set_nodelay(true)?;
  let stream = tokio_boring::connect(tls.configure()?, "localhost", tcp).await.map_err(|e| e.to_string())?;
  t.connected(start.elapsed());
  Ok(stream)
}

/// Requests a connection may still start: `per_conn`, and none past the deadline.
struct Budget(AtomicU64, Instant);

impl Budget {
  fn take(&self) -> bool {
    Instant::now() < self.1 && self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
  }
}

pub async fn h2_connection(tls: &SslConnector, addr: &str, path: &str, o: &Options, deadline: Instant, t: &mut Tally) -> Result<(), BoxError> {
  let stream = connect(tls, addr, t).await?;
  let (client, conn) = h2::client::handshake(stream).await?;
  let driver = tokio::spawn(conn);
  let budget = Arc::new(Budget(AtomicU64::new(o.per_conn.unwrap_or(u64::MAX)), deadline));
  let uri = format!("https://localhost{path}");
  let mut streams = JoinSet::new();
  for _ in 0..o.streams {
    let (client, budget, uri) = (client.clone(), budget.clone(), uri.clone());
    streams.spawn(async move {
      let mut part = Tally::default();
      while budget.take() {
        let t0 = Instant::now();
        let (response, _) = client.clone().ready().await?.send_request(http::Request::get(uri.as_str()).body(())?, true)?;
        let mut body = response.await?.into_body();
        let mut n = 0u64;
        while let Some(chunk) = body.data().await {
          let chunk = chunk?;
          n += chunk.len() as u64;
          let _ = body.flow_control().release_capacity(chunk.len());
        }
        part.done(t0, n);
      }
      Ok::<_, BoxError>(part)
    });
  }
  while let Some(part) = streams.join_next().await {
    t.merge(part??);
  }
  driver.abort();
  Ok(())
}

/// One request at a time (no pipelining), keep-alive between them.
pub async fn h1_connection(tls: &SslConnector, addr: &str, path: &str, o: &Options, deadline: Instant, t: &mut Tally) -> Result<(), BoxError> {
  let mut stream = BufReader::new(connect(tls, addr, t).await?);
  let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
  let budget = Budget(AtomicU64::new(o.per_conn.unwrap_or(u64::MAX)), deadline);
  while budget.take() {
    let t0 = Instant::now();
    stream.get_mut().write_all(request.as_bytes()).await?;
    let n = read_response(&mut stream).await?;
    t.done(t0, n);
  }
  let _ = stream.get_mut().shutdown().await;
  Ok(())
}

/// Reads one response (the subjects always send content-length) and returns its body length.
async fn read_response(r: &mut BufReader<SslStream<TcpStream>>) -> Result<u64, BoxError> {
  let mut length = None;
  let mut line = String::new();
  loop {
    line.clear();
    if r.read_line(&mut line).await? == 0 {
      return Err("the server closed the connection".into());
    }
    if line == "\r\n" {
      break;
    }
    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
      length = Some(v.trim().parse::<u64>()?);
    }
  }
  let length = length.ok_or("a response without content-length")?;
  tokio::io::copy(&mut (&mut *r).take(length), &mut tokio::io::sink()).await?;
  Ok(length)
}
