//! The load client: one connection, STREAMS requests in flight for SECONDS,
//! counting completed responses, bytes and per-request latency.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_quiche::http3::driver::{ClientH3Event, ClientH3Driver, H3Event, InboundFrame, IncomingH3Headers, NewClientRequest};
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::quiche::h3;
use tokio_quiche::settings::{Hooks, QuicSettings};
use tokio_quiche::{BoxError, ConnectionParams};

struct Done {
  request_id: u64,
  bytes: u64,
}

pub async fn run(addr: &str, path: &str, streams: usize, seconds: f64) -> Result<(), BoxError> {
  let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
  socket.connect(addr).await?;
  let mut settings = QuicSettings::default();
  // Loopback benchmark against our own test certificate.
  settings.verify_peer = false;
  settings.max_idle_timeout = Some(Duration::from_secs(30));
  let params = ConnectionParams::new_client(settings, None, Hooks::default());
  let (driver, mut controller) = ClientH3Driver::new(Http3Settings::default());
  let cpu_start = cpu_seconds();
  let connect_start = Instant::now();
  let _conn = tokio_quiche::quic::connect_with_config(socket.try_into()?, Some("localhost"), &params, driver).await?;
  let handshake = connect_start.elapsed();

  let headers = vec![
    h3::Header::new(b":method", b"GET"),
    h3::Header::new(b":scheme", b"https"),
    h3::Header::new(b":authority", b"localhost"),
    h3::Header::new(b":path", path.as_bytes()),
  ];
  let sender = controller.request_sender();
  let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
  let mut started: HashMap<u64, Instant> = HashMap::new();
  let mut by_stream: HashMap<u64, u64> = HashMap::new();
  let mut next_id = 0u64;
  let mut issue = |started: &mut HashMap<u64, Instant>| -> Result<(), BoxError> {
    started.insert(next_id, Instant::now());
    sender
      .send(NewClientRequest { request_id: next_id, headers: headers.clone(), body_writer: None })
      .map_err(|_| "the connection closed")?;
    next_id += 1;
    Ok(())
  };
  for _ in 0..streams {
    issue(&mut started)?;
  }

  let run_start = Instant::now();
  let deadline = run_start + Duration::from_secs_f64(seconds);
  let (mut completed, mut bytes) = (0u64, 0u64);
  let mut latencies_us: Vec<u64> = Vec::new();
  let events = controller.event_receiver_mut();
  while Instant::now() < deadline || !started.is_empty() {
    tokio::select! {
      event = events.recv() => match event {
        Some(ClientH3Event::NewOutboundRequest { stream_id, request_id }) => { by_stream.insert(stream_id, request_id); },
        Some(ClientH3Event::Core(H3Event::IncomingHeaders(IncomingH3Headers { stream_id, mut recv, .. }))) => {
          let request_id = by_stream.remove(&stream_id).unwrap_or(u64::MAX);
          let done_tx = done_tx.clone();
          tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(InboundFrame::Body(data, fin)) = recv.recv().await {
              n += data.len() as u64;
              if fin { break; }
            }
            let _ = done_tx.send(Done { request_id, bytes: n });
          });
        },
        Some(_) => {},
        None => return Err("the connection closed during the run".into()),
      },
      Some(done) = done_rx.recv() => {
        if let Some(t0) = started.remove(&done.request_id) {
          latencies_us.push(t0.elapsed().as_micros() as u64);
        }
        completed += 1;
        bytes += done.bytes;
        if Instant::now() < deadline {
          issue(&mut started)?;
        }
      },
      _ = tokio::time::sleep(Duration::from_secs(30)) => return Err("no progress for 30 s".into()),
    }
  }
  let elapsed = run_start.elapsed().as_secs_f64();
  let cpu = cpu_seconds() - cpu_start;
  latencies_us.sort_unstable();
  let pct = |p: f64| latencies_us.get(((latencies_us.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
  println!(
    "{{\"requests\":{completed},\"bytes\":{bytes},\"seconds\":{elapsed:.4},\"rps\":{:.1},\"mbps\":{:.2},\"p50_us\":{},\"p99_us\":{},\"handshake_us\":{},\"client_cpu_s\":{cpu:.3}}}",
    completed as f64 / elapsed,
    bytes as f64 * 8.0 / elapsed / 1e6,
    pct(0.5),
    pct(0.99),
    handshake.as_micros(),
  );
  Ok(())
}

/// This process's user + system CPU time, from /proc (Linux).
fn cpu_seconds() -> f64 {
  let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
  let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
  let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the comm field); 100 ticks/s.
  (ticks(11) + ticks(12)) / 100.0
}
