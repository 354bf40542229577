//! TLS material: checking PEM files before tokio-quiche sees them, the client
//! trust configuration, and self-signed certificates for development.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use boring::pkey::PKey;
use boring::ssl::{SslContextBuilder, SslMethod, SslVerifyMode};
use boring::x509::X509;
use tokio_quiche::quic::ConnectionHook;
use tokio_quiche::settings::TlsCertificatePaths;

use crate::errors::{BindingError, BindingResult, ErrorCode};

fn tls_error(message: String) -> BindingError {
  BindingError::new(ErrorCode::TlsCert, message)
}

fn read_file(path: &str, field: &str) -> BindingResult<Vec<u8>> {
  std::fs::read(path).map_err(|e| tls_error(format!("{field}: cannot read '{path}': {e}")))
}

fn parse_certs(pem: &[u8], field: &str, origin: &str) -> BindingResult<Vec<X509>> {
  match X509::stack_from_pem(pem) {
    Ok(certs) if !certs.is_empty() => Ok(certs),
    _ => Err(tls_error(format!(
      "{field}: {origin} holds no PEM certificate ('-----BEGIN CERTIFICATE-----')"
    ))),
  }
}

/// Checks that the server's certificate chain and key files exist, parse,
/// and belong together, so a typo fails `listen()` with a message naming the
/// field instead of failing every handshake later.
pub fn check_server_identity(cert_path: &str, key_path: &str) -> BindingResult<()> {
  let certs = parse_certs(&read_file(cert_path, "tls.cert")?, "tls.cert", &format!("'{cert_path}'"))?;
  let key = PKey::private_key_from_pem(&read_file(key_path, "tls.privateKey")?).map_err(|_| {
    tls_error(format!(
      "tls.privateKey: '{key_path}' holds no PEM private key ('-----BEGIN PRIVATE KEY-----')"
    ))
  })?;
  let leaf_key = certs[0]
    .public_key()
    .map_err(|e| tls_error(format!("tls.cert: unreadable public key in '{cert_path}': {e}")))?;
  if !leaf_key.public_eq(&key) {
    return Err(tls_error(format!(
      "tls.privateKey: '{key_path}' does not match the certificate in '{cert_path}'"
    )));
  }
  Ok(())
}

/// Loads trust anchors from PEM text or, when it does not look like PEM, from
/// a file path.
pub fn load_ca(ca: &str) -> BindingResult<Vec<X509>> {
  if ca.trim_start().starts_with("-----BEGIN") {
    parse_certs(ca.as_bytes(), "ca", "the PEM text")
  } else {
    parse_certs(&read_file(ca, "ca")?, "ca", &format!("'{ca}'"))
  }
}

/// How a client checks the server's certificate.
#[derive(Clone)]
pub enum ServerTrust {
  /// The system's default trust store.
  System,
  /// Only these anchors (Node's `ca` semantics: it replaces the defaults).
  Anchors(Vec<X509>),
  /// No verification at all; only reachable through an option named insecure.
  Insecure,
}

/// Builds the client's TLS context. tokio-quiche only consults a
/// [`ConnectionHook`] to customise TLS, so this is how a custom CA, and an IP
/// address check when there is no name to verify, get in.
///
/// The hook owns verification: quiche's own `verify_peer` would replace the
/// verify callback that records why a certificate was rejected, so the
/// caller leaves `QuicSettings::verify_peer` off.
pub struct ClientTlsHook {
  pub trust: ServerTrust,
  /// Verify against this IP SAN (used when connecting to an IP without a server name).
  pub verify_ip: Option<IpAddr>,
  /// Why the server's certificate was rejected, for the `connect()` error.
  pub rejection: Arc<Mutex<Option<String>>>,
}

impl ClientTlsHook {
  pub fn new(trust: ServerTrust, verify_ip: Option<IpAddr>) -> Self {
    Self { trust, verify_ip, rejection: Arc::default() }
  }

  pub fn build(&self) -> Result<SslContextBuilder, boring::error::ErrorStack> {
    let mut builder = SslContextBuilder::new(SslMethod::tls())?;
    match &self.trust {
      ServerTrust::Insecure => builder.set_verify(SslVerifyMode::NONE),
      ServerTrust::System => builder.set_default_verify_paths()?,
      ServerTrust::Anchors(certs) => {
        for cert in certs {
          builder.cert_store_mut().add_cert(cert)?;
        }
      },
    }
    if !matches!(self.trust, ServerTrust::Insecure) {
      let rejection = self.rejection.clone();
      builder.set_verify_callback(SslVerifyMode::PEER, move |ok, ctx| {
        if let (false, Err(e)) = (ok, ctx.verify_result()) {
          rejection.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| e.to_string());
        }
        ok
      });
    }
    if let (Some(ip), false) = (self.verify_ip, matches!(self.trust, ServerTrust::Insecure)) {
      builder.cert_store_mut().verify_param_mut().set_ip(ip)?;
    }
    Ok(builder)
  }
}

impl ConnectionHook for ClientTlsHook {
  fn create_custom_ssl_context_builder(&self, _: TlsCertificatePaths<'_>) -> Option<SslContextBuilder> {
    // `None` would make tokio-quiche fall back to loading the (placeholder)
    // certificate paths, so a failure here must surface as a failed handshake.
    self.build().ok()
  }
}

/// A self-signed certificate and its key, both PEM.
#[derive(Debug)]
pub struct SelfSigned {
  pub cert_pem: String,
  pub key_pem: String,
}

/// Generates an ECDSA P-256 self-signed certificate for `names` (DNS names or
/// IP addresses, each becoming a subjectAltName).
pub fn self_signed(names: Vec<String>) -> BindingResult<SelfSigned> {
  if names.is_empty() {
    return Err(BindingError::new(ErrorCode::InvalidArg, "names: give at least one DNS name or IP address"));
  }
  let certified = rcgen::generate_simple_self_signed(names)
    .map_err(|e| BindingError::new(ErrorCode::InvalidArg, format!("names: {e}")))?;
  Ok(SelfSigned {
    cert_pem: certified.cert.pem(),
    key_pem: certified.signing_key.serialize_pem(),
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
  }

  #[test]
  fn generated_identity_passes_the_checks() {
    let dir = tempdir();
    let id = self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = write(&dir, "cert.pem", &id.cert_pem);
    let key = write(&dir, "key.pem", &id.key_pem);
    check_server_identity(&cert, &key).unwrap();
    assert_eq!(load_ca(&id.cert_pem).unwrap().len(), 1);
    assert_eq!(load_ca(&cert).unwrap().len(), 1);
  }

  #[test]
  fn bad_material_names_the_field() {
    let dir = tempdir();
    let a = self_signed(vec!["a.test".into()]).unwrap();
    let b = self_signed(vec!["b.test".into()]).unwrap();
    let cert = write(&dir, "cert.pem", &a.cert_pem);
    let other_key = write(&dir, "key.pem", &b.key_pem);
    let junk = write(&dir, "junk.pem", "not pem");

    let e = check_server_identity("/nonexistent/cert.pem", &other_key).unwrap_err();
    assert_eq!(e.code, ErrorCode::TlsCert);
    assert!(e.message.starts_with("tls.cert: cannot read"), "{}", e.message);
    assert!(check_server_identity(&junk, &other_key).unwrap_err().message.contains("no PEM certificate"));
    assert!(check_server_identity(&cert, &junk).unwrap_err().message.contains("tls.privateKey"));
    assert!(check_server_identity(&cert, &other_key).unwrap_err().message.contains("does not match"));
    assert!(load_ca("-----BEGIN CERTIFICATE-----\nxx\n").unwrap_err().message.starts_with("ca:"));
    assert_eq!(self_signed(vec![]).unwrap_err().code, ErrorCode::InvalidArg);
  }

  fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tq-tls-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
  }
}
