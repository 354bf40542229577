//! Client side: `connect()` with certificate verification on by default.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::Buffer;
use napi_derive::napi;
use tokio::net::UdpSocket;
use tokio_quiche::http3::driver::ClientH3Driver;
use tokio_quiche::settings::{CertificateKind, Hooks, TlsCertificatePaths};
use tokio_quiche::socket::Socket;
use tokio_quiche::{ApplicationOverQuic, ConnectionParams, QuicConnection};

use crate::address::{any_port_for, host_name, resolve};
use crate::client_driver::GoawayGuard;
use crate::controller::NativeH3Controller;
use crate::raw::raw_pair;
use crate::requests::{take_writer, ClientRequests, PendingWriters};
use crate::errors::{for_promise, js_error, ErrorCode, Result};
use crate::events::{client_event, spawn_event_pump, ConnectionSlot, StreamHandles};
use crate::settings::{http3_settings, quic_settings, NativeHttp3Settings, NativeQuicSettings, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::tls::{check_session, load_ca, load_identity, raw_public_key, ClientTlsHook, ServerTrust};

#[napi(object)]
pub struct NativeConnectOptions {
  pub address: String,
  /// SNI and the name the certificate must carry; defaults to the address's host name.
  pub server_name: Option<String>,
  /// PEM text or a path; replaces the system trust store.
  pub ca: Option<String>,
  pub insecure_skip_verify: Option<bool>,
  /// PEM file paths of a client certificate (mutual TLS).
  pub cert_path: Option<String>,
  pub key_path: Option<String>,
  /// PEM `PUBLIC KEY`: expect this raw public key (RFC 7250) instead of a certificate.
  pub server_public_key: Option<String>,
  /// A session from `session()` of an earlier connection, to resume.
  pub session: Option<Buffer>,
  pub settings: Option<NativeQuicSettings>,
  pub http3: Option<NativeHttp3Settings>,
}

/// `tokio_quiche::quic::connect_with_config` with an `ClientH3Driver`; resolves
/// once the handshake is done.
#[napi]
pub async fn connect(options: NativeConnectOptions) -> napi::Result<NativeH3Controller> {
  connect_h3(options).await.map_err(for_promise)
}

/// `tokio_quiche::quic::connect_with_config` with a `RawDriver` (raw QUIC:
/// `settings.alpn` names the protocol); resolves once the handshake is done.
#[napi]
pub async fn connect_quic(options: NativeConnectOptions) -> napi::Result<NativeH3Controller> {
  let slot: ConnectionSlot = Arc::new(OnceLock::new());
  let (driver, controller) = raw_pair(false, slot.clone(), None);
  let conn = handshake(options, driver).await.map_err(for_promise)?;
  let _ = slot.set(conn);
  Ok(controller)
}

async fn connect_h3(mut options: NativeConnectOptions) -> Result<NativeH3Controller> {
  let (driver, mut controller) = ClientH3Driver::new(http3_settings(&options.http3.take().unwrap_or_default()));
  let (to_controller, events) = tokio::sync::mpsc::unbounded_channel();
  let driver = GoawayGuard::new(driver, controller.take_event_receiver(), to_controller);
  let conn = handshake(options, driver).await?;

  let slot: ConnectionSlot = Arc::new(OnceLock::new());
  let _ = slot.set(conn);
  let writers = PendingWriters::default();
  let pump_writers = writers.clone();
  let pump_slot = slot.clone();
  let handles = StreamHandles::new(Arc::new(controller.h3_cmd_sender()));
  let pump_handles = handles.clone();
  Ok(NativeH3Controller::new(
    handles,
    Arc::default(),
    Box::new(move |callback| {
      let handles = pump_handles.clone();
      spawn_event_pump(events, callback, pump_slot, handles, move |ev| {
        let take = |stream_id, request_id| take_writer(&pump_writers, &pump_handles.commands, stream_id, request_id);
        Some(client_event(ev, &pump_handles, take))
      })
    }),
    slot,
    Some(ClientRequests { sender: controller.request_sender(), writers }),
    None,
  ))
}

/// Resolves, verifies and runs the QUIC handshake with `app` on its own UDP socket.
async fn handshake<A: ApplicationOverQuic>(options: NativeConnectOptions, app: A) -> Result<QuicConnection> {
  let peer = resolve(&options.address, "address").await?;
  let trust = match (options.insecure_skip_verify.unwrap_or(false), &options.ca, &options.server_public_key) {
    (true, _, _) => ServerTrust::Insecure,
    (false, _, Some(pem)) => ServerTrust::PublicKey(raw_public_key(pem)?),
    (false, Some(ca), None) => ServerTrust::Anchors(load_ca(ca, "ca")?),
    (false, None, None) => ServerTrust::System,
  };
  if let Some(session) = &options.session {
    check_session(session)?;
  }
  let identity = match (&options.cert_path, &options.key_path) {
    (Some(cert), Some(key)) => Some(load_identity(cert, key, "clientCertificate")?),
    _ => None,
  };
  let server_name = options.server_name.clone().or_else(|| host_name(&options.address).map(str::to_owned));
  let verify_ip: Option<IpAddr> = server_name.is_none().then_some(peer.ip());

  let connect_error = |e: std::io::Error| js_error(ErrorCode::Connect, format!("address: {peer}: {e}"));
  let socket = UdpSocket::bind(any_port_for(&peer)).await.map_err(connect_error)?;
  socket.connect(peer).await.map_err(connect_error)?;
  // tokio-quiche sends the first Initials from concurrent tasks through
  // `poll_send`, which keeps one waker per socket: on a socket whose write
  // readiness tokio has not seen yet, all but one wait for a wake-up that
  // never comes, and the stuck task keeps the socket open after the
  // connection ends. Once readiness is known, those sends go straight out.
  socket.writable().await.map_err(connect_error)?;

  let quic = options.settings.unwrap_or_default();
  let handshake_timeout = quic.handshake_timeout_ms.map_or(DEFAULT_HANDSHAKE_TIMEOUT, |ms| Duration::from_millis(ms as u64));
  // Verification is the hook's (see ClientTlsHook); quiche's would drop its callback.
  let settings = quic_settings(&quic)?;
  let (idle_timeout, alpn) = (settings.max_idle_timeout, settings.alpn.clone());
  // tokio-quiche consults the hook only when certificate paths are set; the
  // hook builds the whole TLS context, so these placeholders are never read.
  let placeholder = TlsCertificatePaths { cert: "", private_key: "", kind: CertificateKind::X509 };
  let hook = Arc::new(ClientTlsHook::new(trust, verify_ip, identity));
  let rejection = hook.rejection.clone();
  let hooks = Hooks { connection_hook: Some(hook) };
  let mut params = ConnectionParams::new_client(settings, Some(placeholder), hooks);
  params.session = options.session.map(|s| s.to_vec());

  let mut socket: Socket<_, _> = socket.try_into().map_err(connect_error)?;
  // GSO/GRO and the other offloads tokio-quiche's listen() sets up for servers.
  socket.apply_max_capabilities();
  let started = Instant::now();
  let handshake = tokio_quiche::quic::connect_with_config(socket, server_name.as_deref(), &params, app);
  match tokio::time::timeout(handshake_timeout, handshake).await {
    Ok(Ok(conn)) => Ok(conn),
    Ok(Err(e)) => {
      let why = match rejection.lock().unwrap_or_else(|p| p.into_inner()).take() {
        Some(cert) => format!("the server's certificate was rejected ({cert}); pass its CA as `ca`"),
        None => handshake_failure(&*e, started.elapsed(), idle_timeout, &alpn),
      };
      return Err(js_error(ErrorCode::Connect, format!("{peer}: {why}")));
    },
    Err(_) => {
      return Err(js_error(
        ErrorCode::Connect,
        format!("{peer}: no QUIC handshake within {} ms (settings.handshakeTimeoutMs)", handshake_timeout.as_millis()),
      ))
    },
  }
}

/// Why a handshake that tokio-quiche gave up on failed. Its connector reports
/// a connection that closed before it was established as "timed out" in both
/// cases: quiche's idle timer fired, or a CONNECTION_CLOSE arrived (quiche
/// drains it for 3 PTOs, about 3 s before any RTT sample). The close's error
/// code does not reach us, so a failure before the idle timeout is named as a
/// refusal, with what the server most often refuses.
fn handshake_failure(e: &(dyn std::error::Error + 'static), elapsed: Duration, idle_timeout: Option<Duration>, alpn: &[Vec<u8>]) -> String {
  let timed_out = e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
  if !timed_out || idle_timeout.is_some_and(|idle| elapsed >= idle) {
    return format!("the QUIC handshake failed: {e}");
  }
  let offered: Vec<String> = alpn.iter().map(|p| format!("'{}'", String::from_utf8_lossy(p))).collect();
  format!(
    "the connection was closed during the handshake, after {} ms (the server refused it: most often it speaks none of the ALPN protocols offered, {})",
    elapsed.as_millis(),
    offered.join(", ")
  )
}

#[cfg(test)]
mod tests {
  use super::*;

  fn timed_out() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, "connection 0a timed out")
  }

  #[test]
  fn a_close_before_the_idle_timeout_is_a_refusal_naming_the_alpn() {
    let why = handshake_failure(&timed_out(), Duration::from_millis(3001), Some(Duration::from_secs(30)), &[b"h3".to_vec(), b"hq".to_vec()]);
    assert_eq!(why, "the connection was closed during the handshake, after 3001 ms (the server refused it: most often it speaks none of the ALPN protocols offered, 'h3', 'hq')");
  }

  #[test]
  fn the_idle_timeout_and_other_errors_keep_tokio_quiches_words() {
    let idle = handshake_failure(&timed_out(), Duration::from_millis(1000), Some(Duration::from_millis(1000)), &[b"h3".to_vec()]);
    assert_eq!(idle, "the QUIC handshake failed: connection 0a timed out");
    let other = std::io::Error::other("boom");
    assert_eq!(handshake_failure(&other, Duration::ZERO, None, &[]), "the QUIC handshake failed: boom");
  }
}
