//! Idle connections for the memory-per-connection scenario: COUNT
//! connections, each doing one GET (so both sides have set up HTTP/3 state),
//! then held open and silent until the process is killed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_quiche::http3::driver::{ClientH3Event, H3Event, IncomingH3Headers, NewClientRequest};
use tokio_quiche::BoxError;

use crate::{body, client};

/// Handshakes in flight at once: enough to open 10,000 in seconds without
/// the server's handshake timeout firing on a 2-core box.
const OPENING: usize = 64;

pub async fn run(addr: &str, path: &str, count: usize) -> Result<(), BoxError> {
  let start = Instant::now();
  let limit = Arc::new(Semaphore::new(OPENING));
  let mut opening = JoinSet::new();
  for _ in 0..count {
    let permit = limit.clone().acquire_owned().await?;
    let (addr, path) = (addr.to_owned(), path.to_owned());
    opening.spawn(async move {
      let conn = one(&addr, &path).await;
      drop(permit);
      conn
    });
  }
  let mut held = Vec::with_capacity(count);
  while let Some(conn) = opening.join_next().await {
    held.push(conn??);
  }
  println!("{{\"connections\":{},\"seconds\":{:.3}}}", held.len(), start.elapsed().as_secs_f64());
  std::future::pending::<()>().await;
  Ok(())
}

async fn one(addr: &str, path: &str) -> Result<client::Connection, BoxError> {
  // Longer than any run, so only the server's own idle timeout applies.
  let mut conn = client::connect(addr, Duration::from_secs(600)).await?;
  let request = NewClientRequest { request_id: 0, headers: client::request_headers("GET", path), body_writer: None };
  conn.controller.request_sender().send(request).map_err(|_| "the connection closed")?;
  loop {
    match conn.controller.event_receiver_mut().recv().await {
      Some(ClientH3Event::Core(H3Event::IncomingHeaders(IncomingH3Headers { mut recv, .. }))) => {
        body::count(&mut recv, |_| {}).await;
        return Ok(conn);
      },
      Some(_) => {},
      None => return Err("the connection closed before its response".into()),
    }
  }
}
