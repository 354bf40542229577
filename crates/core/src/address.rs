//! Socket addresses as JS passes them: `"host:port"`, `"[v6]:port"`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::errors::{BindingError, BindingResult, ErrorCode};

/// Resolves `address` (an IP literal or a host name, with a port) to the
/// first socket address it names.
pub async fn resolve(address: &str, field: &str) -> BindingResult<SocketAddr> {
  if let Ok(addr) = address.parse::<SocketAddr>() {
    return Ok(addr);
  }
  let invalid = |why: String| BindingError::new(ErrorCode::InvalidAddress, format!("{field}: '{address}' {why}"));
  let (host, port) = address
    .rsplit_once(':')
    .ok_or_else(|| invalid("has no port (expected host:port)".into()))?;
  if host.is_empty() || port.parse::<u16>().is_err() {
    return Err(invalid("is not host:port with a port from 0 to 65535".into()));
  }
  tokio::net::lookup_host(address)
    .await
    .map_err(|e| invalid(format!("does not resolve: {e}")))?
    .next()
    .ok_or_else(|| invalid("resolves to no address".into()))
}

/// The unspecified address of `peer`'s family, any port: where a socket that
/// talks to `peer` binds.
pub fn any_port_for(peer: &SocketAddr) -> SocketAddr {
  match peer {
    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
  }
}

/// The host part of `address`, if it is a name rather than an IP literal.
pub fn host_name(address: &str) -> Option<&str> {
  let (host, _) = address.rsplit_once(':')?;
  let bare = host.trim_start_matches('[').trim_end_matches(']');
  (bare.parse::<std::net::IpAddr>().is_err() && !bare.is_empty()).then_some(bare)
}

#[cfg(test)]
mod tests {
  use super::*;

  #[tokio::test]
  async fn resolves_literals_and_names() {
    assert_eq!(resolve("127.0.0.1:443", "a").await.unwrap().port(), 443);
    assert_eq!(resolve("[::1]:80", "a").await.unwrap().port(), 80);
    assert!(resolve("localhost:8443", "a").await.unwrap().ip().is_loopback());
  }

  #[tokio::test]
  async fn bad_addresses_name_the_field() {
    for bad in ["127.0.0.1", "127.0.0.1:70000", ":443", "localhost:http"] {
      let e = resolve(bad, "sockets[0].address").await.unwrap_err();
      assert_eq!(e.code, ErrorCode::InvalidAddress, "{bad}");
      assert!(e.message.starts_with("sockets[0].address: "), "{}", e.message);
    }
  }

  #[test]
  fn host_names_exclude_ip_literals() {
    assert_eq!(host_name("example.com:443"), Some("example.com"));
    assert_eq!(host_name("127.0.0.1:443"), None);
    assert_eq!(host_name("[::1]:443"), None);
  }
}
