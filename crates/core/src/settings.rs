//! `QuicSettings` and `Http3Settings` as JS option objects.
//!
//! The TS layer validates types and ranges and names the offending field;
//! this module only maps the already-checked values onto tokio-quiche's
//! structs and applies the binding's safer defaults.

use std::time::Duration;

use napi_derive::napi;
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::settings::QuicSettings;

/// Idle timeout when the caller sets none (tokio-quiche's server default is 56 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Handshake deadline when the caller sets none (tokio-quiche has none).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// SETTINGS_MAX_FIELD_SECTION_SIZE when the caller sets none (tokio-quiche: unlimited).
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u64 = 64 * 1024;

/// The subset of tokio-quiche's `QuicSettings` reachable from JS.
#[napi(object)]
#[derive(Default, Clone)]
pub struct NativeQuicSettings {
  pub alpn: Option<Vec<String>>,
  pub max_idle_timeout_ms: Option<f64>,
  pub handshake_timeout_ms: Option<f64>,
  pub initial_max_data: Option<f64>,
  pub initial_max_stream_data_bidi_local: Option<f64>,
  pub initial_max_stream_data_bidi_remote: Option<f64>,
  pub initial_max_stream_data_uni: Option<f64>,
  pub initial_max_streams_bidi: Option<f64>,
  pub initial_max_streams_uni: Option<f64>,
  pub max_connection_window: Option<f64>,
  pub max_stream_window: Option<f64>,
  pub disable_client_ip_validation: Option<bool>,
  pub enable_early_data: Option<bool>,
  pub enable_dgram: Option<bool>,
  pub cc_algorithm: Option<String>,
  pub listen_backlog: Option<f64>,
  pub keylog_file: Option<String>,
  pub qlog_dir: Option<String>,
}

/// The subset of tokio-quiche's `Http3Settings` reachable from JS.
#[napi(object)]
#[derive(Default, Clone)]
pub struct NativeHttp3Settings {
  pub max_requests_per_connection: Option<f64>,
  pub max_header_list_size: Option<f64>,
  pub qpack_max_table_capacity: Option<f64>,
  pub qpack_blocked_streams: Option<f64>,
  pub post_accept_timeout_ms: Option<f64>,
  pub enable_extended_connect: Option<bool>,
}

fn ms(v: f64) -> Duration {
  Duration::from_millis(v as u64)
}

pub fn quic_settings(opts: &NativeQuicSettings) -> QuicSettings {
  let mut s = QuicSettings::default();
  if let Some(alpn) = &opts.alpn {
    s.alpn = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
  }
  s.max_idle_timeout = Some(opts.max_idle_timeout_ms.map_or(DEFAULT_IDLE_TIMEOUT, ms));
  s.handshake_timeout = Some(opts.handshake_timeout_ms.map_or(DEFAULT_HANDSHAKE_TIMEOUT, ms));
  let set_u64 = |field: &mut u64, v: Option<f64>| {
    if let Some(v) = v {
      *field = v as u64;
    }
  };
  set_u64(&mut s.initial_max_data, opts.initial_max_data);
  set_u64(&mut s.initial_max_stream_data_bidi_local, opts.initial_max_stream_data_bidi_local);
  set_u64(&mut s.initial_max_stream_data_bidi_remote, opts.initial_max_stream_data_bidi_remote);
  set_u64(&mut s.initial_max_stream_data_uni, opts.initial_max_stream_data_uni);
  set_u64(&mut s.initial_max_streams_bidi, opts.initial_max_streams_bidi);
  set_u64(&mut s.initial_max_streams_uni, opts.initial_max_streams_uni);
  set_u64(&mut s.max_connection_window, opts.max_connection_window);
  set_u64(&mut s.max_stream_window, opts.max_stream_window);
  if let Some(v) = opts.disable_client_ip_validation {
    s.disable_client_ip_validation = v;
  }
  if let Some(v) = opts.enable_early_data {
    s.enable_early_data = v;
  }
  if let Some(v) = opts.enable_dgram {
    s.enable_dgram = v;
  }
  if let Some(v) = &opts.cc_algorithm {
    s.cc_algorithm = v.clone();
  }
  if let Some(v) = opts.listen_backlog {
    s.listen_backlog = v as usize;
  }
  s.keylog_file = opts.keylog_file.clone();
  s.qlog_dir = opts.qlog_dir.clone();
  s
}

pub fn http3_settings(opts: &NativeHttp3Settings) -> Http3Settings {
  let mut s = Http3Settings::default();
  let opt_u64 = |v: Option<f64>| v.map(|v| v as u64);
  s.max_requests_per_connection = opt_u64(opts.max_requests_per_connection);
  s.max_header_list_size = Some(opt_u64(opts.max_header_list_size).unwrap_or(DEFAULT_MAX_HEADER_LIST_SIZE));
  s.qpack_max_table_capacity = opt_u64(opts.qpack_max_table_capacity);
  s.qpack_blocked_streams = opt_u64(opts.qpack_blocked_streams);
  s.post_accept_timeout = opts.post_accept_timeout_ms.map(ms);
  s.enable_extended_connect = opts.enable_extended_connect.unwrap_or(false);
  s
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn defaults_are_the_safe_ones() {
    let q = quic_settings(&NativeQuicSettings::default());
    assert_eq!(q.max_idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    assert_eq!(q.handshake_timeout, Some(DEFAULT_HANDSHAKE_TIMEOUT));
    assert!(!q.disable_client_ip_validation, "Retry stays on by default");
    assert_eq!(q.alpn, vec![b"h3".to_vec()]);
    let h = http3_settings(&NativeHttp3Settings::default());
    assert_eq!(h.max_header_list_size, Some(DEFAULT_MAX_HEADER_LIST_SIZE));
  }

  #[test]
  fn values_map_onto_tokio_quiche_fields() {
    let q = quic_settings(&NativeQuicSettings {
      max_idle_timeout_ms: Some(1500.0),
      initial_max_streams_bidi: Some(7.0),
      alpn: Some(vec!["h3".into(), "hq-interop".into()]),
      ..Default::default()
    });
    assert_eq!(q.max_idle_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(q.initial_max_streams_bidi, 7);
    assert_eq!(q.alpn.len(), 2);
    let h = http3_settings(&NativeHttp3Settings {
      max_requests_per_connection: Some(10.0),
      post_accept_timeout_ms: Some(250.0),
      ..Default::default()
    });
    assert_eq!(h.max_requests_per_connection, Some(10));
    assert_eq!(h.post_accept_timeout, Some(Duration::from_millis(250)));
  }
}
