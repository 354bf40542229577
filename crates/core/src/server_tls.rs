//! The server's TLS context, built by a tokio-quiche `ConnectionHook`:
//! certificates chosen per connection by SNI from a store that
//! `setSecureContext()` can replace while the server runs, and optional
//! client certificates (mutual TLS).
//!
//! tokio-quiche builds one TLS context per listening socket and calls the hook
//! once for it, so per-connection choices happen in BoringSSL's
//! select-certificate callback, which reads the current store.

use std::sync::{Arc, RwLock};

use boring::pkey::PKey;
use boring::ssl::{NameType, SelectCertError, SslContextBuilder, SslMethod, SslVerifyMode};
use boring::x509::X509;
use napi_derive::napi;
use tokio_quiche::quic::ConnectionHook;
use tokio_quiche::settings::{CertificateKind, Hooks, TlsCertificatePaths};

use crate::errors::{BindingError, BindingResult, ErrorCode};
use crate::tls::{load_ca, load_identity, use_identity, Identity};

/// One more certificate, presented to clients asking for `name` by SNI.
#[napi(object)]
pub struct NativeSniIdentity {
  pub name: String,
  pub cert_path: String,
  pub key_path: String,
}

/// The server's TLS options, from JS (validated there).
#[napi(object)]
pub struct NativeServerTls {
  pub cert_path: String,
  pub key_path: String,
  /// `x509` (default) or `rawPublicKey` (RFC 7250; `cert_path` holds a DER
  /// SubjectPublicKeyInfo).
  pub kind: Option<String>,
  pub sni: Option<Vec<NativeSniIdentity>>,
  /// PEM text or path of the CAs client certificates must chain to; turns on
  /// mutual TLS.
  pub client_ca: Option<String>,
  pub require_client_cert: Option<bool>,
}

/// Loads the default identity and the SNI ones, each checked up front.
pub fn load_identities(tls: &NativeServerTls) -> BindingResult<Identities> {
  let default = load_identity(&tls.cert_path, &tls.key_path, "tls")?;
  let by_name = tls.sni.iter().flatten().map(|sni| {
    let identity = load_identity(&sni.cert_path, &sni.key_path, &format!("tls.sni[\"{}\"]", sni.name))?;
    Ok((sni.name.to_ascii_lowercase(), identity))
  });
  Ok(Identities { default, by_name: by_name.collect::<BindingResult<_>>()? })
}

/// How tokio-quiche should set up a listener's TLS.
pub struct ServerTlsSetup {
  pub hooks: Hooks,
  pub kind: CertificateKind,
  /// The certificate store `setSecureContext()` replaces (X.509 only).
  pub identities: Option<IdentityStore>,
}

pub fn server_tls(tls: &NativeServerTls) -> BindingResult<ServerTlsSetup> {
  let invalid = |message: &str| BindingError::new(ErrorCode::InvalidArg, message);
  if tls.kind.as_deref() == Some("rawPublicKey") {
    if !cfg!(feature = "rpk") {
      return Err(invalid("tls.kind: raw public keys need a build with the rpk feature (npm run build -- --features rpk)"));
    }
    if tls.sni.is_some() || tls.client_ca.is_some() {
      return Err(invalid("tls.kind: a raw public key server takes no sni or clientCa"));
    }
    check_raw_public_key(&tls.cert_path, &tls.key_path)?;
    // tokio-quiche's own RPK path builds the context from the two files.
    return Ok(ServerTlsSetup { hooks: Hooks::default(), kind: CertificateKind::RawPublicKey, identities: None });
  }
  let identities: IdentityStore = Arc::new(RwLock::new(Arc::new(load_identities(tls)?)));
  let client_auth = match &tls.client_ca {
    Some(ca) => Some(ClientAuth { anchors: load_ca(ca, "tls.clientCa")?, required: tls.require_client_cert.unwrap_or(true) }),
    None => None,
  };
  let hook = ServerTlsHook { identities: identities.clone(), client_auth };
  Ok(ServerTlsSetup { hooks: Hooks { connection_hook: Some(Arc::new(hook)) }, kind: CertificateKind::X509, identities: Some(identities) })
}

/// A raw public key file (DER SubjectPublicKeyInfo) and the PEM private key it belongs to.
fn check_raw_public_key(spki_path: &str, key_path: &str) -> BindingResult<()> {
  let tls_error = |m: String| BindingError::new(ErrorCode::TlsCert, m);
  let spki = std::fs::read(spki_path).map_err(|e| tls_error(format!("tls.cert: cannot read '{spki_path}': {e}")))?;
  let public = PKey::public_key_from_der(&spki)
    .map_err(|_| tls_error(format!("tls.cert: '{spki_path}' is not a DER SubjectPublicKeyInfo")))?;
  let key = std::fs::read(key_path).map_err(|e| tls_error(format!("tls.privateKey: cannot read '{key_path}': {e}")))?;
  let private = PKey::private_key_from_pem(&key)
    .map_err(|_| tls_error(format!("tls.privateKey: '{key_path}' holds no PEM private key")))?;
  if !public.public_eq(&private) {
    return Err(tls_error(format!("tls.privateKey: '{key_path}' does not match the public key in '{spki_path}'")));
  }
  Ok(())
}

/// The certificates a server presents: a default and, by host name, others.
pub struct Identities {
  pub default: Identity,
  /// Lowercase host names, exact (`a.test`) or wildcard (`*.a.test`).
  pub by_name: Vec<(String, Identity)>,
}

impl Identities {
  /// The identity for `sni`: an exact name first, then a `*.` wildcard
  /// covering one label, else the default.
  pub fn select(&self, sni: Option<&str>) -> &Identity {
    let Some(sni) = sni.map(str::to_ascii_lowercase) else {
      return &self.default;
    };
    let exact = self.by_name.iter().find(|(name, _)| *name == sni);
    let wildcard = || {
      let parent = sni.split_once('.')?.1;
      self.by_name.iter().find(|(name, _)| name.strip_prefix("*.") == Some(parent))
    };
    exact.or_else(wildcard).map_or(&self.default, |(_, id)| id)
  }
}

/// Shared between the hook and `setSecureContext()`.
pub type IdentityStore = Arc<RwLock<Arc<Identities>>>;

/// Which client certificates the server asks for and trusts.
pub struct ClientAuth {
  pub anchors: Vec<X509>,
  /// Refuse clients without a certificate; otherwise one is optional but
  /// verified when presented.
  pub required: bool,
}

pub struct ServerTlsHook {
  pub identities: IdentityStore,
  pub client_auth: Option<ClientAuth>,
}

impl ServerTlsHook {
  pub fn build(&self) -> Result<SslContextBuilder, boring::error::ErrorStack> {
    let mut builder = SslContextBuilder::new(SslMethod::tls())?;
    let store = self.identities.clone();
    builder.set_select_certificate_callback(move |mut hello| {
      let identities = store.read().unwrap_or_else(|p| p.into_inner()).clone();
      let identity = identities.select(hello.servername(NameType::HOST_NAME));
      use_identity(hello.ssl_mut(), identity).map_err(|_| SelectCertError::ERROR)
    });
    if let Some(auth) = &self.client_auth {
      for anchor in &auth.anchors {
        builder.cert_store_mut().add_cert(anchor.clone())?;
      }
      let mode = if auth.required { SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT } else { SslVerifyMode::PEER };
      builder.set_verify(mode);
    }
    Ok(builder)
  }
}

impl ConnectionHook for ServerTlsHook {
  fn create_custom_ssl_context_builder(&self, _: TlsCertificatePaths<'_>) -> Option<SslContextBuilder> {
    // `None` would make tokio-quiche load the certificate files itself
    // without SNI or client authentication; failing the socket is clearer.
    self.build().ok()
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::tls::self_signed;
  use boring::pkey::PKey;

  fn identity(name: &str) -> Identity {
    let id = self_signed(vec![name.into()]).unwrap();
    Identity { chain: X509::stack_from_pem(id.cert_pem.as_bytes()).unwrap(), key: PKey::private_key_from_pem(id.key_pem.as_bytes()).unwrap() }
  }

  fn subject_alt_name(id: &Identity) -> String {
    id.chain[0].subject_alt_names().unwrap().iter().next().unwrap().dnsname().unwrap().to_string()
  }

  #[test]
  fn sni_picks_exact_then_wildcard_then_default() {
    let ids = Identities {
      default: identity("default.test"),
      by_name: vec![("a.test".into(), identity("a.test")), ("*.b.test".into(), identity("*.b.test"))],
    };
    assert_eq!(subject_alt_name(ids.select(Some("A.Test"))), "a.test");
    assert_eq!(subject_alt_name(ids.select(Some("x.b.test"))), "*.b.test");
    assert_eq!(subject_alt_name(ids.select(Some("x.y.b.test"))), "default.test", "a wildcard covers one label");
    assert_eq!(subject_alt_name(ids.select(Some("b.test"))), "default.test");
    assert_eq!(subject_alt_name(ids.select(None)), "default.test");
  }
}
