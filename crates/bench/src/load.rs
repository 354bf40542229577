//! The load client: CONNS connections in parallel, each keeping STREAMS
//! requests in flight until SECONDS have passed (HTTP/3 here; `--proto h2|h1`
//! the same over TLS and TCP, tcp.rs); with `--per-conn R` a
//! connection is closed after R requests and a new one opened (churn,
//! handshakes); with `--upload BYTES` each request is a POST of BYTES.
//! Counts completed requests, bytes (response bytes, or uploaded bytes),
//! connections, per-request latency and handshake time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_quiche::http3::driver::{ClientH3Event, H3Event, IncomingH3Headers, NewClientRequest, OutboundFrameSender};
use tokio_quiche::BoxError;

use crate::{body, client, cpu_seconds, tcp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
  H3,
  H2,
  H1,
}

#[derive(Clone, Debug)]
pub struct Options {
  pub proto: Proto,
  pub streams: usize,
  pub conns: usize,
  pub seconds: f64,
  pub per_conn: Option<u64>,
  pub upload: Option<u64>,
}

impl Default for Options {
  fn default() -> Self {
    Self { proto: Proto::H3, streams: 1, conns: 1, seconds: 5.0, per_conn: None, upload: None }
  }
}

#[derive(Default)]
pub struct Tally {
  requests: u64,
  bytes: u64,
  connections: u64,
  latencies_us: Vec<u64>,
  handshakes_us: Vec<u64>,
}

impl Tally {
  pub fn connected(&mut self, handshake: Duration) {
    self.connections += 1;
    self.handshakes_us.push(handshake.as_micros() as u64);
  }

  pub fn done(&mut self, started: Instant, bytes: u64) {
    self.latencies_us.push(started.elapsed().as_micros() as u64);
    self.requests += 1;
    self.bytes += bytes;
  }

  pub fn merge(&mut self, o: Tally) {
    self.requests += o.requests;
    self.bytes += o.bytes;
    self.connections += o.connections;
    self.latencies_us.extend(o.latencies_us);
    self.handshakes_us.extend(o.handshakes_us);
  }
}

struct Done {
  request_id: u64,
  bytes: u64,
}

pub async fn run(addr: &str, path: &str, o: Options) -> Result<(), BoxError> {
  let cpu_start = cpu_seconds();
  let start = Instant::now();
  let deadline = start + Duration::from_secs_f64(o.seconds);
  if o.upload.is_some() && o.proto != Proto::H3 {
    return Err("--upload is HTTP/3 only (H2 and H1 uploads are driven by h2load)".into());
  }
  // One TLS context for all connections, as a real client keeps one.
  let tls = match o.proto {
    Proto::H3 => None,
    Proto::H2 => Some(Arc::new(tcp::connector(b"\x02h2")?)),
    Proto::H1 => Some(Arc::new(tcp::connector(b"\x08http/1.1")?)),
  };
  // HTTP/1.1 has no multiplexing: each concurrent request gets its own connection.
  let conns = if o.proto == Proto::H1 { o.conns * o.streams } else { o.conns };
  let mut workers = JoinSet::new();
  for _ in 0..conns {
    let (addr, path, o, tls) = (addr.to_owned(), path.to_owned(), o.clone(), tls.clone());
    workers.spawn(async move {
      let mut tally = Tally::default();
      while Instant::now() < deadline {
        match (&tls, o.proto) {
          (Some(tls), Proto::H2) => tcp::h2_connection(tls, &addr, &path, &o, deadline, &mut tally).await?,
          (Some(tls), _) => tcp::h1_connection(tls, &addr, &path, &o, deadline, &mut tally).await?,
          (None, _) => connection(&addr, &path, &o, deadline, &mut tally).await?,
        }
      }
      Ok::<_, BoxError>(tally)
    });
  }
  let mut t = Tally::default();
  while let Some(worker) = workers.join_next().await {
    t.merge(worker??);
  }
  let elapsed = start.elapsed().as_secs_f64();
  let cpu = cpu_seconds() - cpu_start;
  let pct = |xs: &mut Vec<u64>, p: f64| {
    xs.sort_unstable();
    xs.get(((xs.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0)
  };
  println!(
    "{{\"requests\":{},\"bytes\":{},\"connections\":{},\"seconds\":{elapsed:.4},\"rps\":{:.1},\"mbps\":{:.2},\"cps\":{:.1},\"p50_us\":{},\"p99_us\":{},\"handshake_us\":{},\"client_cpu_s\":{cpu:.3}}}",
    t.requests,
    t.bytes,
    t.connections,
    t.requests as f64 / elapsed,
    t.bytes as f64 * 8.0 / elapsed / 1e6,
    t.connections as f64 / elapsed,
    pct(&mut t.latencies_us, 0.5),
    pct(&mut t.latencies_us, 0.99),
    pct(&mut t.handshakes_us, 0.5),
  );
  Ok(())
}

/// One connection's life: until the deadline, or until `per_conn` requests.
async fn connection(addr: &str, path: &str, o: &Options, deadline: Instant, t: &mut Tally) -> Result<(), BoxError> {
  let mut conn = client::connect(addr, Duration::from_secs(30)).await?;
  t.connected(conn.handshake);
  let headers = client::request_headers(if o.upload.is_some() { "POST" } else { "GET" }, path);
  let budget = o.per_conn.unwrap_or(u64::MAX);
  let sender = conn.controller.request_sender();
  let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
  let mut started: HashMap<u64, Instant> = HashMap::new();
  let mut by_stream: HashMap<u64, u64> = HashMap::new();
  let mut issued = 0u64;
  let issue = |started: &mut HashMap<u64, Instant>, issued: &mut u64| -> Result<(), BoxError> {
    let body_writer = o.upload.map(|n| {
      let (tx, rx) = oneshot::channel();
      tokio::spawn(upload(rx, n));
      tx
    });
    started.insert(*issued, Instant::now());
    sender
      .send(NewClientRequest { request_id: *issued, headers: headers.clone(), body_writer })
      .map_err(|_| "the connection closed")?;
    *issued += 1;
    Ok(())
  };
  for _ in 0..(o.streams as u64).min(budget) {
    issue(&mut started, &mut issued)?;
  }

  let events = conn.controller.event_receiver_mut();
  while !started.is_empty() {
    tokio::select! {
      event = events.recv() => match event {
        Some(ClientH3Event::NewOutboundRequest { stream_id, request_id }) => { by_stream.insert(stream_id, request_id); },
        Some(ClientH3Event::Core(H3Event::IncomingHeaders(IncomingH3Headers { stream_id, mut recv, .. }))) => {
          let request_id = by_stream.remove(&stream_id).unwrap_or(u64::MAX);
          let done_tx = done_tx.clone();
          tokio::spawn(async move {
            let bytes = body::count(&mut recv, |_| {}).await;
            let _ = done_tx.send(Done { request_id, bytes });
          });
        },
        Some(_) => {},
        None => return Err("the connection closed during the run".into()),
      },
      Some(done) = done_rx.recv() => {
        let t0 = started.remove(&done.request_id).ok_or("a response to no request")?;
        t.done(t0, o.upload.unwrap_or(done.bytes));
        if Instant::now() < deadline && issued < budget {
          issue(&mut started, &mut issued)?;
        }
      },
      _ = tokio::time::sleep(Duration::from_secs(30)) => return Err("no progress for 30 s".into()),
    }
  }
  conn.close();
  Ok(())
}

async fn upload(writer: oneshot::Receiver<OutboundFrameSender>, bytes: u64) {
  if let Ok(mut send) = writer.await {
    body::send(&mut send, bytes).await;
  }
}
