//! TLS material: checking PEM files before tokio-quiche sees them, the client
//! trust configuration, and self-signed certificates for development.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};

use boring::pkey::{PKey, Private};
use boring::ssl::{SslContextBuilder, SslMethod, SslRef, SslSession, SslVerifyMode};
use boring::x509::store::{X509Store, X509StoreBuilder};
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

/// A certificate chain (leaf first) and the leaf's private key.
#[derive(Clone)]
pub struct Identity {
  pub chain: Vec<X509>,
  pub key: PKey<Private>,
}

/// Loads a certificate chain and key from PEM files and checks that they
/// exist, parse and belong together, so a typo fails up front with a message
/// naming `field` (`tls`, `sni["a.test"]`, `cert`) instead of failing every
/// handshake later.
pub fn load_identity(cert_path: &str, key_path: &str, field: &str) -> BindingResult<Identity> {
  let cert_field = format!("{field}.cert");
  let key_field = format!("{field}.privateKey");
  let chain = parse_certs(&read_file(cert_path, &cert_field)?, &cert_field, &format!("'{cert_path}'"))?;
  let key = PKey::private_key_from_pem(&read_file(key_path, &key_field)?).map_err(|_| {
    tls_error(format!(
      "{key_field}: '{key_path}' holds no PEM private key ('-----BEGIN PRIVATE KEY-----')"
    ))
  })?;
  let leaf_key = chain[0]
    .public_key()
    .map_err(|e| tls_error(format!("{cert_field}: unreadable public key in '{cert_path}': {e}")))?;
  if !leaf_key.public_eq(&key) {
    return Err(tls_error(format!(
      "{key_field}: '{key_path}' does not match the certificate in '{cert_path}'"
    )));
  }
  Ok(Identity { chain, key })
}

/// Puts `identity` on one connection's TLS object.
pub fn use_identity(ssl: &mut SslRef, identity: &Identity) -> Result<(), boring::error::ErrorStack> {
  ssl.set_certificate(&identity.chain[0])?;
  for intermediate in &identity.chain[1..] {
    ssl.add_chain_cert(intermediate)?;
  }
  ssl.set_private_key(&identity.key)
}

/// Loads trust anchors from PEM text or, when it does not look like PEM, from
/// a file path; `field` names the option in errors.
pub fn load_ca(ca: &str, field: &str) -> BindingResult<Vec<X509>> {
  if ca.trim_start().starts_with("-----BEGIN") {
    parse_certs(ca.as_bytes(), field, "the PEM text")
  } else {
    parse_certs(&read_file(ca, field)?, field, &format!("'{ca}'"))
  }
}

/// The DER SubjectPublicKeyInfo of a PEM `PUBLIC KEY` (`serverPublicKey`).
pub fn raw_public_key(pem: &str) -> BindingResult<Vec<u8>> {
  if !cfg!(feature = "rpk") {
    return Err(BindingError::new(
      ErrorCode::InvalidArg,
      "serverPublicKey: raw public keys need a build with the rpk feature (npm run build -- --features rpk)",
    ));
  }
  PKey::public_key_from_pem(pem.as_bytes())
    .and_then(|k| k.public_key_to_der())
    .map_err(|_| tls_error("serverPublicKey: not a PEM public key ('-----BEGIN PUBLIC KEY-----')".into()))
}

/// Checks that `bytes` looks like quiche's session encoding (what
/// `getSession()` returns): a u64 length and a TLS session, then a u64
/// length and the server's transport parameters.
pub fn check_session(bytes: &[u8]) -> BindingResult<()> {
  let bad = || BindingError::new(ErrorCode::InvalidArg, "session: not a session from getSession()");
  let (len, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
  let len = usize::try_from(u64::from_be_bytes(*len)).map_err(|_| bad())?;
  let der = rest.get(..len).ok_or_else(bad)?;
  SslSession::from_der(der).map_err(|_| bad())?;
  let (params_len, params) = rest[len..].split_first_chunk::<8>().ok_or_else(bad)?;
  if u64::from_be_bytes(*params_len) != params.len() as u64 {
    return Err(bad());
  }
  Ok(())
}

/// The system trust store, loaded on first use.
fn system_store() -> Result<&'static X509Store, boring::error::ErrorStack> {
  static STORE: OnceLock<X509Store> = OnceLock::new();
  if let Some(store) = STORE.get() {
    return Ok(store);
  }
  let mut builder = X509StoreBuilder::new()?;
  builder.set_default_paths()?;
  Ok(STORE.get_or_init(|| builder.build()))
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
  /// A raw public key (RFC 7250) instead of a certificate: the server must
  /// present exactly this DER SubjectPublicKeyInfo. Needs the `rpk` feature.
  PublicKey(Vec<u8>),
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
  /// A client certificate for servers that ask for one (mutual TLS).
  pub identity: Option<Identity>,
  /// Verify against this IP SAN (used when connecting to an IP without a server name).
  pub verify_ip: Option<IpAddr>,
  /// Why the server's certificate was rejected, for the `connect()` error.
  pub rejection: Arc<Mutex<Option<String>>>,
}

impl ClientTlsHook {
  pub fn new(trust: ServerTrust, verify_ip: Option<IpAddr>, identity: Option<Identity>) -> Self {
    Self { trust, identity, verify_ip, rejection: Arc::default() }
  }

  pub fn build(&self) -> Result<SslContextBuilder, boring::error::ErrorStack> {
    let mut builder = SslContextBuilder::new(SslMethod::tls())?;
    if let Some(Identity { chain, key }) = &self.identity {
      builder.set_certificate(&chain[0])?;
      for intermediate in &chain[1..] {
        builder.add_extra_chain_cert(intermediate.clone())?;
      }
      builder.set_private_key(key)?;
    }
    match &self.trust {
      ServerTrust::Insecure => builder.set_verify(SslVerifyMode::NONE),
      // Loading the system bundle costs milliseconds per connection, so it
      // is loaded once and shared, except where the IP check needs the
      // store's own parameters.
      ServerTrust::System if self.verify_ip.is_none() => builder.set_cert_store_ref(system_store()?),
      ServerTrust::System => builder.set_default_verify_paths()?,
      ServerTrust::Anchors(certs) => {
        for cert in certs {
          builder.cert_store_mut().add_cert(cert)?;
        }
      },
      ServerTrust::PublicKey(pinned) => {
        self.pin_public_key(&mut builder, pinned.clone())?;
        return Ok(builder);
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

#[cfg(feature = "rpk")]
impl ClientTlsHook {
  /// Offers only raw public keys and accepts only `pinned`.
  fn pin_public_key(&self, builder: &mut SslContextBuilder, pinned: Vec<u8>) -> Result<(), boring::error::ErrorStack> {
    use boring::ssl::{CertificateType, SslAlert, SslVerifyError};
    builder.set_server_certificate_types(&[CertificateType::RAW_PUBLIC_KEY])?;
    let rejection = self.rejection.clone();
    builder.set_custom_verify_callback(SslVerifyMode::PEER, move |ssl| {
      let presented = ssl.peer_pubkey().and_then(|k| k.public_key_to_der().ok());
      if presented.as_deref() == Some(pinned.as_slice()) {
        return Ok(());
      }
      let why = if presented.is_some() { "raw public key does not match serverPublicKey" } else { "no raw public key presented" };
      rejection.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(|| why.to_string());
      Err(SslVerifyError::Invalid(SslAlert::BAD_CERTIFICATE))
    });
    Ok(())
  }
}

#[cfg(not(feature = "rpk"))]
impl ClientTlsHook {
  /// connect() refuses `serverPublicKey` before a handshake without `rpk`.
  fn pin_public_key(&self, _: &mut SslContextBuilder, _: Vec<u8>) -> Result<(), boring::error::ErrorStack> {
    Err(boring::error::ErrorStack::get())
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
    load_identity(&cert, &key, "tls").unwrap();
    assert_eq!(load_ca(&id.cert_pem, "ca").unwrap().len(), 1);
    assert_eq!(load_ca(&cert, "ca").unwrap().len(), 1);
  }

  #[test]
  fn bad_material_names_the_field() {
    let dir = tempdir();
    let a = self_signed(vec!["a.test".into()]).unwrap();
    let b = self_signed(vec!["b.test".into()]).unwrap();
    let cert = write(&dir, "cert.pem", &a.cert_pem);
    let other_key = write(&dir, "key.pem", &b.key_pem);
    let junk = write(&dir, "junk.pem", "not pem");

    let e = load_identity("/nonexistent/cert.pem", &other_key, "tls").err().unwrap();
    assert_eq!(e.code, ErrorCode::TlsCert);
    assert!(e.message.starts_with("tls.cert: cannot read"), "{}", e.message);
    let err = |cert: &str, key: &str| load_identity(cert, key, "sni[\"b.test\"]").err().unwrap().message;
    assert!(err(&junk, &other_key).contains("no PEM certificate"));
    assert!(err(&cert, &junk).starts_with("sni[\"b.test\"].privateKey:"));
    assert!(err(&cert, &other_key).contains("does not match"));
    assert!(load_ca("-----BEGIN CERTIFICATE-----\nxx\n", "ca").unwrap_err().message.starts_with("ca:"));
    assert_eq!(self_signed(vec![]).unwrap_err().code, ErrorCode::InvalidArg);
    for junk in [&b""[..], &[0, 0, 0, 0, 0, 0, 0, 200, 1, 2][..], &[0u8; 16][..]] {
      assert!(check_session(junk).unwrap_err().message.starts_with("session: "));
    }
  }

  fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tq-tls-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
  }
}
