//! `QuicSettings` and `Http3Settings` as JS option objects.
//!
//! The TS layer validates types and ranges and names the offending field;
//! this module only maps the already-checked values onto tokio-quiche's
//! structs and applies the binding's safer defaults.

use std::fs::OpenOptions;
use std::time::Duration;

use napi_derive::napi;
use tokio_quiche::http3::settings::Http3Settings;
use tokio_quiche::settings::{QlogCompression, QuicSettings};

use crate::errors::{BindingError, BindingResult, ErrorCode};

/// Idle timeout when the caller sets none (tokio-quiche's server default is 56 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Handshake deadline when the caller sets none (tokio-quiche has none).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// SETTINGS_MAX_FIELD_SECTION_SIZE when the caller sets none (tokio-quiche: unlimited).
pub const DEFAULT_MAX_HEADER_LIST_SIZE: u64 = 64 * 1024;
/// Time to a connection's first request when the caller sets none (tokio-quiche:
/// none). Node's `server.headersTimeout` default: a peer that never finishes a
/// request's headers (slowloris) cannot hold a connection past it.
pub const DEFAULT_POST_ACCEPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time from a request stream's opening to its whole HEADERS when the caller
/// sets none (tokio-quiche: none); the same bound for every request.
pub const DEFAULT_HEADERS_TIMEOUT: Duration = Duration::from_secs(60);

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
  /// `none`, `gzip` or `zstd`.
  pub qlog_compression: Option<String>,
  pub dgram_recv_max_queue_len: Option<f64>,
  pub dgram_send_max_queue_len: Option<f64>,
  pub disable_active_migration: Option<bool>,
  pub active_connection_id_limit: Option<f64>,
  pub max_recv_udp_payload_size: Option<f64>,
  pub max_send_udp_payload_size: Option<f64>,
  pub initial_congestion_window_packets: Option<f64>,
  pub enable_relaxed_loss_threshold: Option<bool>,
  pub discover_path_mtu: Option<bool>,
  pub pmtud_max_probes: Option<f64>,
  pub enable_hystart: Option<bool>,
  pub enable_pacing: Option<bool>,
  pub max_pacing_rate: Option<f64>,
  pub enable_expensive_packet_count_metrics: Option<bool>,
  pub enable_send_streams_blocked: Option<bool>,
  pub grease: Option<bool>,
  pub max_amplification_factor: Option<f64>,
  pub send_capacity_factor: Option<f64>,
  pub ack_delay_exponent: Option<f64>,
  pub max_ack_delay: Option<f64>,
  pub max_path_challenge_recv_queue_len: Option<f64>,
  pub disable_dcid_reuse: Option<bool>,
  pub track_unknown_transport_parameters: Option<f64>,
  pub pool_send_buffer: Option<bool>,
  pub capture_quiche_logs: Option<bool>,
}

/// Copies each option that is set onto the field of the same name, converting
/// JS numbers with `as` (the TS layer has checked their range).
macro_rules! copy_set {
  ($target:expr, $opts:expr, { $($field:ident: $ty:ty),* $(,)? }) => {
    $( if let Some(v) = $opts.$field { $target.$field = v as $ty; } )*
  };
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
  /// The binding's own (see `headers_deadline.rs`); not tokio-quiche's.
  pub headers_timeout_ms: Option<f64>,
  pub enable_extended_connect: Option<bool>,
}

fn ms(v: f64) -> Duration {
  Duration::from_millis(v as u64)
}

/// tokio-quiche's `QuicSettings` from the validated JS options. Fails only on
/// a `keylogFile` that cannot be opened for appending, which tokio-quiche
/// would otherwise skip with nothing but a log line.
pub fn quic_settings(opts: &NativeQuicSettings) -> BindingResult<QuicSettings> {
  let mut s = QuicSettings::default();
  if let Some(alpn) = &opts.alpn {
    s.alpn = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
  }
  s.max_idle_timeout = Some(opts.max_idle_timeout_ms.map_or(DEFAULT_IDLE_TIMEOUT, ms));
  s.handshake_timeout = Some(opts.handshake_timeout_ms.map_or(DEFAULT_HANDSHAKE_TIMEOUT, ms));
  copy_set!(s, opts, {
    initial_max_data: u64,
    initial_max_stream_data_bidi_local: u64,
    initial_max_stream_data_bidi_remote: u64,
    initial_max_stream_data_uni: u64,
    initial_max_streams_bidi: u64,
    initial_max_streams_uni: u64,
    max_connection_window: u64,
    max_stream_window: u64,
    disable_client_ip_validation: bool,
    enable_early_data: bool,
    enable_dgram: bool,
    listen_backlog: usize,
    dgram_recv_max_queue_len: usize,
    dgram_send_max_queue_len: usize,
    disable_active_migration: bool,
    active_connection_id_limit: u64,
    max_recv_udp_payload_size: usize,
    max_send_udp_payload_size: usize,
    initial_congestion_window_packets: usize,
    enable_relaxed_loss_threshold: bool,
    discover_path_mtu: bool,
    pmtud_max_probes: u8,
    enable_hystart: bool,
    enable_pacing: bool,
    enable_expensive_packet_count_metrics: bool,
    enable_send_streams_blocked: bool,
    grease: bool,
    max_amplification_factor: usize,
    send_capacity_factor: f64,
    ack_delay_exponent: u64,
    max_ack_delay: u64,
    max_path_challenge_recv_queue_len: usize,
    disable_dcid_reuse: bool,
    pool_send_buffer: bool,
    capture_quiche_logs: bool,
  });
  if let Some(v) = &opts.cc_algorithm {
    s.cc_algorithm = v.clone();
  }
  s.max_pacing_rate = opts.max_pacing_rate.map(|v| v as u64);
  s.track_unknown_transport_parameters = opts.track_unknown_transport_parameters.map(|v| v as usize);
  s.qlog_compression = match opts.qlog_compression.as_deref() {
    Some("gzip") => QlogCompression::Gzip,
    Some("zstd") => QlogCompression::Zstd,
    _ => QlogCompression::None,
  };
  if let Some(path) = &opts.keylog_file {
    OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
      BindingError::new(ErrorCode::InvalidArg, format!("settings.keylogFile: cannot open '{path}' for appending: {e}"))
    })?;
  }
  s.keylog_file = opts.keylog_file.clone();
  s.qlog_dir = opts.qlog_dir.clone();
  Ok(s)
}

pub fn http3_settings(opts: &NativeHttp3Settings) -> Http3Settings {
  let mut s = Http3Settings::default();
  let opt_u64 = |v: Option<f64>| v.map(|v| v as u64);
  s.max_requests_per_connection = opt_u64(opts.max_requests_per_connection);
  s.max_header_list_size = Some(opt_u64(opts.max_header_list_size).unwrap_or(DEFAULT_MAX_HEADER_LIST_SIZE));
  s.qpack_max_table_capacity = opt_u64(opts.qpack_max_table_capacity);
  s.qpack_blocked_streams = opt_u64(opts.qpack_blocked_streams);
  s.post_accept_timeout = deadline(opts.post_accept_timeout_ms, DEFAULT_POST_ACCEPT_TIMEOUT);
  s.enable_extended_connect = opts.enable_extended_connect.unwrap_or(false);
  s
}

/// The HEADERS deadline of each request; `None`: off.
pub fn headers_timeout(opts: &NativeHttp3Settings) -> Option<Duration> {
  deadline(opts.headers_timeout_ms, DEFAULT_HEADERS_TIMEOUT)
}

/// 0 turns a deadline off, as 0 does for Node's server timeouts.
fn deadline(v: Option<f64>, default: Duration) -> Option<Duration> {
  match v {
    None => Some(default),
    Some(v) if v == 0.0 => None,
    Some(v) => Some(ms(v)),
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn defaults_are_the_safe_ones() {
    let q = quic_settings(&NativeQuicSettings::default()).unwrap();
    assert_eq!(q.max_idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
    assert_eq!(q.handshake_timeout, Some(DEFAULT_HANDSHAKE_TIMEOUT));
    assert!(!q.disable_client_ip_validation, "Retry stays on by default");
    assert_eq!(q.alpn, vec![b"h3".to_vec()]);
    let h = http3_settings(&NativeHttp3Settings::default());
    assert_eq!(h.max_header_list_size, Some(DEFAULT_MAX_HEADER_LIST_SIZE));
    assert_eq!(h.post_accept_timeout, Some(DEFAULT_POST_ACCEPT_TIMEOUT));
    let off = http3_settings(&NativeHttp3Settings { post_accept_timeout_ms: Some(0.0), ..Default::default() });
    assert_eq!(off.post_accept_timeout, None, "0 turns it off");
    assert_eq!(headers_timeout(&NativeHttp3Settings::default()), Some(DEFAULT_HEADERS_TIMEOUT));
    let off = NativeHttp3Settings { headers_timeout_ms: Some(0.0), ..Default::default() };
    assert_eq!(headers_timeout(&off), None, "0 turns it off");
  }

  #[test]
  fn an_unwritable_keylog_file_names_the_field() {
    let opts = NativeQuicSettings { keylog_file: Some("/nonexistent/dir/keys.log".into()), ..Default::default() };
    let err = quic_settings(&opts).unwrap_err();
    assert_eq!(err.code, ErrorCode::InvalidArg);
    assert!(err.message.starts_with("settings.keylogFile: cannot open '/nonexistent/dir/keys.log'"), "{}", err.message);
  }

  #[test]
  fn values_map_onto_tokio_quiche_fields() {
    let q = quic_settings(&NativeQuicSettings {
      max_idle_timeout_ms: Some(1500.0),
      initial_max_streams_bidi: Some(7.0),
      alpn: Some(vec!["h3".into(), "hq-interop".into()]),
      ..Default::default()
    }).unwrap();
    assert_eq!(q.max_idle_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(q.initial_max_streams_bidi, 7);
    assert_eq!(q.alpn.len(), 2);
    let h = http3_settings(&NativeHttp3Settings {
      max_requests_per_connection: Some(10.0),
      post_accept_timeout_ms: Some(250.0),
      ..Default::default()
    });
    assert_eq!(h.max_requests_per_connection, Some(10));
    let q = quic_settings(&NativeQuicSettings {
      send_capacity_factor: Some(1.5),
      pmtud_max_probes: Some(5.0),
      enable_pacing: Some(true),
      max_pacing_rate: Some(1e6),
      qlog_compression: Some("zstd".into()),
      ..Default::default()
    }).unwrap();
    assert_eq!(q.send_capacity_factor, 1.5);
    assert_eq!(q.pmtud_max_probes, 5);
    assert!(q.enable_pacing);
    assert_eq!(q.max_pacing_rate, Some(1_000_000));
    assert!(matches!(q.qlog_compression, QlogCompression::Zstd));
    assert_eq!(h.post_accept_timeout, Some(Duration::from_millis(250)));
  }

  mod props {
    use proptest::prelude::*;

    use super::super::*;

    /// Any number JS can hold, the edges included (the TS layer refuses most of them first).
    fn number() -> impl Strategy<Value = Option<f64>> {
      proptest::option::of(prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(-1.0),
        Just(2f64.powi(53)),
        Just(2f64.powi(64)),
        0.0..1e7,
      ])
    }

    proptest! {
      /// Numbers that slip past the TS checks saturate rather than panic.
      #[test]
      fn prop_settings_take_any_number(n in proptest::collection::vec(number(), 12), flag in any::<Option<bool>>()) {
        let opts = NativeQuicSettings {
          max_idle_timeout_ms: n[0],
          handshake_timeout_ms: n[1],
          initial_max_data: n[2],
          initial_max_streams_bidi: n[3],
          initial_max_streams_uni: n[4],
          max_stream_window: n[5],
          listen_backlog: n[6],
          dgram_recv_max_queue_len: n[7],
          send_capacity_factor: n[8],
          max_pacing_rate: n[9],
          max_amplification_factor: n[10],
          enable_dgram: flag,
          ..Default::default()
        };
        let q = quic_settings(&opts).expect("only a keylog file can fail");
        if let Some(v) = n[3] {
          prop_assert_eq!(q.initial_max_streams_bidi, v as u64);
        }
        let h = http3_settings(&NativeHttp3Settings { max_header_list_size: n[11], post_accept_timeout_ms: n[0], ..Default::default() });
        prop_assert_eq!(h.max_header_list_size, Some(n[11].map_or(DEFAULT_MAX_HEADER_LIST_SIZE, |v| v as u64)));
      }
    }
  }
}
