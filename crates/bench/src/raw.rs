//! Raw QUIC (`ApplicationOverQuic`) rows, the native side of `bench/raw.ts`.
//! `tq-bench raw-server ADDR CERT KEY`: an echo of every bidirectional
//! stream, written straight on quiche (the native twin of
//! `bench/raw-server.ts`). `tq-bench raw-load ADDR bulk BYTES` sends BYTES
//! on one stream and reads the echo; `tq-bench raw-load ADDR rr STREAMS
//! SECONDS` keeps STREAMS fresh 1 KiB request/response streams open for
//! SECONDS. Both print one JSON line.

use std::collections::HashMap;
use std::future::pending;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_quiche::metrics::DefaultMetrics;
use tokio_quiche::quic::{HandshakeInfo, QuicheConnection};
use tokio_quiche::settings::{CertificateKind, Hooks, QuicSettings, TlsCertificatePaths};
use tokio_quiche::{ApplicationOverQuic, BoxError, ConnectionParams, QuicResult};

use crate::SMALL;

/// The ALPN both ends speak.
pub const ALPN: &[u8] = b"tq-bench-raw";
const READ_CHUNK: usize = 64 * 1024;
/// The bytes a load stream sends: zeros, reused.
static ZEROS: [u8; READ_CHUNK] = [0; READ_CHUNK];

fn settings() -> QuicSettings {
  let mut s = QuicSettings::default();
  s.alpn = vec![ALPN.to_vec()];
  s
}

/// Bytes quiche has not taken yet, and whether FIN follows them.
#[derive(Default)]
struct Pending {
  data: Vec<u8>,
  fin: bool,
}

/// Echoes each stream: reads only while the previous read is fully written back.
struct Echo {
  buf: Vec<u8>,
  pending: HashMap<u64, Pending>,
}

impl Echo {
  /// Writes back what is pending; true when nothing is left.
  fn flush(&mut self, qconn: &mut QuicheConnection, id: u64) -> bool {
    let Some(p) = self.pending.get_mut(&id) else { return true };
    match qconn.stream_send(id, &p.data, p.fin) {
      Ok(n) if n == p.data.len() => {
        self.pending.remove(&id);
        true
      },
      Ok(n) => {
        p.data.drain(..n);
        let _ = qconn.stream_writable(id, 1);
        false
      },
      Err(tokio_quiche::quiche::Error::Done) => {
        let _ = qconn.stream_writable(id, 1);
        false
      },
      Err(_) => {
        self.pending.remove(&id);
        true
      },
    }
  }

  fn echo(&mut self, qconn: &mut QuicheConnection, id: u64) {
    while self.flush(qconn, id) {
      match qconn.stream_recv(id, &mut self.buf) {
        Ok((len, fin)) => {
          if len == 0 && !fin {
            return;
          }
          self.pending.insert(id, Pending { data: self.buf[..len].to_vec(), fin });
          if fin {
            self.flush(qconn, id);
            return;
          }
        },
        Err(_) => return,
      }
    }
  }
}

impl ApplicationOverQuic for Echo {
  fn on_conn_established(&mut self, _: &mut QuicheConnection, _: &HandshakeInfo) -> QuicResult<()> {
    Ok(())
  }

  fn should_act(&self) -> bool {
    true
  }

  async fn wait_for_data(&mut self, _: &mut QuicheConnection) -> QuicResult<()> {
    pending().await
  }

  fn process_reads(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    while let Some(id) = qconn.stream_readable_next() {
      self.echo(qconn, id);
    }
    Ok(())
  }

  fn process_writes(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    while let Some(id) = qconn.stream_writable_next() {
      // Written back: read on, if the peer sent more meanwhile.
      if self.pending.contains_key(&id) && self.flush(qconn, id) {
        self.echo(qconn, id);
      }
    }
    Ok(())
  }
}

pub async fn serve(addr: &str, cert: &str, key: &str) -> Result<(), BoxError> {
  let socket = tokio::net::UdpSocket::bind(addr).await?;
  println!("listening {}", socket.local_addr()?);
  tokio::spawn(crate::server::answer_stats());
  let params = ConnectionParams::new_server(settings(), TlsCertificatePaths { cert, private_key: key, kind: CertificateKind::X509 }, Hooks::default());
  let mut listeners = tokio_quiche::listen([socket], params, DefaultMetrics)?;
  while let Some(conn) = listeners[0].next().await {
    conn?.start(Echo { buf: vec![0; READ_CHUNK], pending: HashMap::new() });
  }
  Ok(())
}

pub enum Mode {
  /// Send this many bytes on one stream and read them back.
  Bulk(u64),
  /// Keep this many 1 KiB request/response streams in flight for this long.
  RequestResponse { streams: usize, seconds: f64 },
}

#[derive(Default)]
struct Outcome {
  bytes: u64,
  completed: u64,
  elapsed: Duration,
  done: bool,
}

/// The load: writes its streams as quiche takes them, counts what comes back.
struct Load {
  mode: Mode,
  buf: Vec<u8>,
  start: Option<Instant>,
  /// Per open stream: bytes still to send.
  to_send: HashMap<u64, u64>,
  received: HashMap<u64, u64>,
  next_id: u64,
  outcome: Arc<(Mutex<Outcome>, Notify)>,
}

impl Load {
  fn open(&mut self, qconn: &mut QuicheConnection, bytes: u64) {
    let id = self.next_id;
    self.next_id += 4;
    self.to_send.insert(id, bytes);
    self.received.insert(id, 0);
    self.send(qconn, id);
  }

  fn send(&mut self, qconn: &mut QuicheConnection, id: u64) {
    while let Some(&left) = self.to_send.get(&id) {
      let n = left.min(READ_CHUNK as u64) as usize;
      match qconn.stream_send(id, &ZEROS[..n], left as usize == n) {
        Ok(sent) => {
          if sent as u64 == left {
            self.to_send.remove(&id);
          } else {
            self.to_send.insert(id, left - sent as u64);
            if sent < n {
              let _ = qconn.stream_writable(id, 1);
              return;
            }
          }
        },
        Err(_) => {
          let _ = qconn.stream_writable(id, 1);
          return;
        },
      }
    }
  }

  fn finish(&mut self, qconn: &mut QuicheConnection) {
    let (outcome, notify) = &*self.outcome;
    let mut o = outcome.lock().unwrap();
    if o.done {
      return;
    }
    o.done = true;
    o.elapsed = self.start.map_or(Duration::ZERO, |s| s.elapsed());
    notify.notify_one();
    let _ = qconn.close(true, 0, b"done");
  }

  fn deadline(&self) -> Option<Instant> {
    match self.mode {
      Mode::RequestResponse { seconds, .. } => self.start.map(|s| s + Duration::from_secs_f64(seconds)),
      Mode::Bulk(_) => None,
    }
  }
}

impl ApplicationOverQuic for Load {
  fn on_conn_established(&mut self, qconn: &mut QuicheConnection, _: &HandshakeInfo) -> QuicResult<()> {
    self.start = Some(Instant::now());
    match self.mode {
      Mode::Bulk(bytes) => self.open(qconn, bytes),
      Mode::RequestResponse { streams, .. } => {
        for _ in 0..streams.min(qconn.peer_streams_left_bidi() as usize) {
          self.open(qconn, SMALL as u64);
        }
      },
    }
    Ok(())
  }

  fn should_act(&self) -> bool {
    true
  }

  async fn wait_for_data(&mut self, _: &mut QuicheConnection) -> QuicResult<()> {
    match self.deadline() {
      Some(at) => tokio::time::sleep_until(at.into()).await,
      None => pending().await,
    }
    Ok(())
  }

  fn process_reads(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    while let Some(id) = qconn.stream_readable_next() {
      while let Ok((len, fin)) = qconn.stream_recv(id, &mut self.buf) {
        *self.received.entry(id).or_default() += len as u64;
        self.outcome.0.lock().unwrap().bytes += len as u64;
        if !fin {
          continue;
        }
        self.received.remove(&id);
        self.outcome.0.lock().unwrap().completed += 1;
        match self.mode {
          Mode::Bulk(_) => self.finish(qconn),
          Mode::RequestResponse { .. } => {},
        }
        break;
      }
    }
    Ok(())
  }

  fn process_writes(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    if self.deadline().is_some_and(|d| Instant::now() >= d) {
      self.finish(qconn);
      return Ok(());
    }
    while let Some(id) = qconn.stream_writable_next() {
      self.send(qconn, id);
    }
    if let Mode::RequestResponse { streams, .. } = self.mode {
      // A fresh stream for each one that completed, as the peer's credit allows.
      while self.received.len() < streams && qconn.peer_streams_left_bidi() > 0 {
        self.open(qconn, SMALL as u64);
      }
    }
    Ok(())
  }
}

pub async fn load(addr: &str, mode: Mode) -> Result<(), BoxError> {
  let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
  socket.connect(addr).await?;
  let mut settings = settings();
  // Loopback benchmark against our own test certificate.
  settings.verify_peer = false;
  let params = ConnectionParams::new_client(settings, None, Hooks::default());
  let outcome = Arc::new((Mutex::new(Outcome::default()), Notify::new()));
  let app = Load { mode, buf: vec![0; READ_CHUNK], start: None, to_send: HashMap::new(), received: HashMap::new(), next_id: 0, outcome: outcome.clone() };
  let mut socket: tokio_quiche::socket::Socket<_, _> = socket.try_into()?;
  socket.apply_max_capabilities();
  let cpu = crate::cpu_seconds();
  let _conn = tokio_quiche::quic::connect_with_config(socket, Some("localhost"), &params, app).await?;
  outcome.1.notified().await;
  let o = outcome.0.lock().unwrap();
  let seconds = o.elapsed.as_secs_f64();
  println!(
    "{{\"seconds\":{seconds},\"bytes\":{},\"completed\":{},\"mbps\":{},\"rps\":{},\"clientCpu\":{}}}",
    o.bytes,
    o.completed,
    o.bytes as f64 * 8.0 / seconds / 1e6,
    o.completed as f64 / seconds,
    crate::cpu_seconds() - cpu
  );
  Ok(())
}
