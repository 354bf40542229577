//! Connection caps tokio-quiche lacks: at most so many connections per
//! server, and per source address. A connection over a cap is refused once
//! its handshake is done, with CONNECTION_REFUSED (0x2), so the client gets
//! an answer instead of a handshake that times out.
//!
//! Counting happens when the listener hands over a connection, after Retry
//! validated the peer's address: a spoofed source cannot use up another
//! address's share. IPv6 sources count per /64, the block one host usually
//! holds, so one host cannot dodge the cap by changing its low bits.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use napi_derive::napi;
use tokio_quiche::metrics::Metrics;
use tokio_quiche::quic::{HandshakeInfo, QuicheConnection};
use tokio_quiche::{ApplicationOverQuic, QuicResult};

use crate::errors::{js_error, ErrorCode, Result};

/// RFC 9000 §20.1: the server refuses to accept a new connection.
const CONNECTION_REFUSED: u64 = 0x2;

/// About 0.8 GB of idle connections (~78 KiB each, docs/benchmarks.md).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Room for a large NAT, far short of one peer holding the whole server.
pub const DEFAULT_MAX_PER_SOURCE: usize = 1_000;

/// `limits` of `listen()`'s params, from JS; `Infinity` lifts a cap.
#[napi(object)]
pub struct NativeConnectionLimits {
  pub max_connections: Option<f64>,
  pub max_connections_per_source: Option<f64>,
}

/// The caps of one `listen()` call, shared by its sockets.
pub struct ConnectionLimits {
  max_connections: usize,
  max_per_source: usize,
  state: Mutex<Counts>,
  refused: AtomicU64,
}

#[derive(Default)]
struct Counts {
  total: usize,
  per_source: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
  Server,
  Source,
}

impl Refusal {
  fn reason(&self) -> &'static [u8] {
    match self {
      Refusal::Server => b"server busy: too many connections",
      Refusal::Source => b"server busy: too many connections from this address",
    }
  }
}

/// One admitted connection; dropping it gives its place back.
pub struct Permit {
  limits: Arc<ConnectionLimits>,
  source: IpAddr,
}

impl ConnectionLimits {
  pub fn new(max_connections: usize, max_per_source: usize) -> Arc<Self> {
    Arc::new(Self { max_connections, max_per_source, state: Mutex::default(), refused: AtomicU64::new(0) })
  }

  /// The caps JS set, the defaults for those it did not.
  pub fn from_native(native: Option<&NativeConnectionLimits>) -> Result<Arc<Self>> {
    let (max_connections, max_per_source) = caps(native).map_err(|why| js_error(ErrorCode::InvalidArg, why))?;
    Ok(Self::new(max_connections, max_per_source))
  }

  /// Takes a place for a connection from `peer`, if both caps allow it.
  pub fn admit(self: &Arc<Self>, peer: IpAddr) -> std::result::Result<Permit, Refusal> {
    let source = source_of(peer);
    let mut counts = self.state.lock().unwrap_or_else(|p| p.into_inner());
    let from_source = counts.per_source.get(&source).copied().unwrap_or(0);
    let refusal = if counts.total >= self.max_connections {
      Some(Refusal::Server)
    } else if from_source >= self.max_per_source {
      Some(Refusal::Source)
    } else {
      None
    };
    if let Some(refusal) = refusal {
      self.refused.fetch_add(1, Ordering::Relaxed);
      return Err(refusal);
    }
    counts.total += 1;
    counts.per_source.insert(source, from_source + 1);
    Ok(Permit { limits: self.clone(), source })
  }

  /// Connections holding a place now.
  pub fn connections(&self) -> usize {
    self.state.lock().unwrap_or_else(|p| p.into_inner()).total
  }

  /// Connections refused since the listener started.
  pub fn refused(&self) -> u64 {
    self.refused.load(Ordering::Relaxed)
  }
}

impl Drop for Permit {
  fn drop(&mut self) {
    let mut counts = self.limits.state.lock().unwrap_or_else(|p| p.into_inner());
    counts.total -= 1;
    if let Some(n) = counts.per_source.get_mut(&self.source) {
      *n -= 1;
      if *n == 0 {
        counts.per_source.remove(&self.source);
      }
    }
  }
}

/// `from_native`'s checks, apart from napi (whose error cargo test cannot link).
fn caps(native: Option<&NativeConnectionLimits>) -> std::result::Result<(usize, usize), String> {
  let cap = |value: Option<f64>, default: usize, field: &str| match value {
    None => Ok(default),
    // Saturates: Infinity is no cap.
    Some(n) if n >= 1.0 && (n.fract() == 0.0 || n.is_infinite()) => Ok(n as usize),
    Some(n) => Err(format!("{field}: expected a positive integer or Infinity, got {n}")),
  };
  Ok((
    cap(native.and_then(|n| n.max_connections), DEFAULT_MAX_CONNECTIONS, "limits.maxConnections")?,
    cap(native.and_then(|n| n.max_connections_per_source), DEFAULT_MAX_PER_SOURCE, "limits.maxConnectionsPerSource")?,
  ))
}

/// The address a cap counts `peer` under.
fn source_of(peer: IpAddr) -> IpAddr {
  match peer {
    IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
      Some(v4) => IpAddr::V4(v4),
      None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !((1u128 << 64) - 1))),
    },
    v4 => v4,
  }
}

/// `app`, holding its connection's place for as long as the connection runs.
pub struct Admitted<A> {
  app: A,
  _permit: Permit,
}

impl<A> Admitted<A> {
  pub fn new(app: A, permit: Permit) -> Self {
    Self { app, _permit: permit }
  }
}

impl<A: ApplicationOverQuic> ApplicationOverQuic for Admitted<A> {
  fn on_conn_established(&mut self, qconn: &mut QuicheConnection, handshake_info: &HandshakeInfo) -> QuicResult<()> {
    self.app.on_conn_established(qconn, handshake_info)
  }

  fn should_act(&self) -> bool {
    self.app.should_act()
  }

  async fn wait_for_data(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    self.app.wait_for_data(qconn).await
  }

  fn process_reads(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    self.app.process_reads(qconn)
  }

  fn process_writes(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    self.app.process_writes(qconn)
  }

  fn on_conn_close<M: Metrics>(&mut self, qconn: &mut QuicheConnection, metrics: &M, connection_result: &QuicResult<()>) {
    self.app.on_conn_close(qconn, metrics, connection_result)
  }
}

/// Closes its connection with CONNECTION_REFUSED as soon as the handshake is
/// done: tokio-quiche lets no application act before that.
pub struct Refused(pub Refusal);

impl ApplicationOverQuic for Refused {
  fn on_conn_established(&mut self, qconn: &mut QuicheConnection, _handshake_info: &HandshakeInfo) -> QuicResult<()> {
    let _ = qconn.close(false, CONNECTION_REFUSED, self.0.reason());
    Ok(())
  }

  fn should_act(&self) -> bool {
    false
  }

  async fn wait_for_data(&mut self, _qconn: &mut QuicheConnection) -> QuicResult<()> {
    std::future::pending().await
  }

  fn process_reads(&mut self, _qconn: &mut QuicheConnection) -> QuicResult<()> {
    Ok(())
  }

  fn process_writes(&mut self, _qconn: &mut QuicheConnection) -> QuicResult<()> {
    Ok(())
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
  }

  #[test]
  fn a_source_gets_its_cap_and_its_places_back() {
    let limits = ConnectionLimits::new(10, 2);
    let first = limits.admit(ip("10.0.0.1")).unwrap();
    let _second = limits.admit(ip("10.0.0.1")).unwrap();
    assert_eq!(limits.admit(ip("10.0.0.1")).err(), Some(Refusal::Source));
    let _other = limits.admit(ip("10.0.0.2")).unwrap();
    assert_eq!(limits.connections(), 3);
    drop(first);
    assert!(limits.admit(ip("10.0.0.1")).is_ok());
    assert_eq!(limits.refused(), 1);
  }

  #[test]
  fn the_server_cap_counts_every_source() {
    let limits = ConnectionLimits::new(2, 2);
    let _a = limits.admit(ip("10.0.0.1")).unwrap();
    let b = limits.admit(ip("10.0.0.2")).unwrap();
    assert_eq!(limits.admit(ip("10.0.0.3")).err(), Some(Refusal::Server));
    drop(b);
    assert!(limits.admit(ip("10.0.0.3")).is_ok());
  }

  #[test]
  fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
    let limits = ConnectionLimits::new(10, 1);
    let _a = limits.admit(ip("2001:db8:1:2::1")).unwrap();
    assert_eq!(limits.admit(ip("2001:db8:1:2:ffff::9")).err(), Some(Refusal::Source));
    assert!(limits.admit(ip("2001:db8:1:3::1")).is_ok());
    let _v4 = limits.admit(ip("192.0.2.7")).unwrap();
    assert_eq!(limits.admit(ip("::ffff:192.0.2.7")).err(), Some(Refusal::Source));
  }

  #[test]
  fn caps_from_js_are_checked() {
    let caps_of = |max_connections, max_connections_per_source| {
      caps(Some(&NativeConnectionLimits { max_connections, max_connections_per_source }))
    };
    assert_eq!(caps(None), Ok((DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_SOURCE)));
    assert_eq!(caps_of(Some(f64::INFINITY), Some(3.0)), Ok((usize::MAX, 3)));
    for bad in [0.0, -1.0, 1.5, f64::NAN, f64::NEG_INFINITY] {
      let why = caps_of(None, Some(bad)).unwrap_err();
      assert!(why.starts_with("limits.maxConnectionsPerSource: "), "{why}");
    }
    assert!(caps_of(Some(0.0), None).unwrap_err().starts_with("limits.maxConnections: "));
  }

  #[test]
  fn places_are_all_given_back() {
    let limits = ConnectionLimits::new(100, 100);
    let permits: Vec<_> = (0..50).map(|i| limits.admit(ip(&format!("10.0.0.{}", i % 7))).unwrap()).collect();
    assert_eq!(limits.connections(), 50);
    drop(permits);
    assert_eq!(limits.connections(), 0);
    assert!(limits.state.lock().unwrap().per_source.is_empty());
  }
}
