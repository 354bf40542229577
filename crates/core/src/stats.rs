//! Connection statistics (quiche's `Stats` and the active path's
//! `PathStats`) as a plain JS object.

use napi_derive::napi;
use tokio_quiche::datagram_socket::StreamClosureKind;
use tokio_quiche::http3::H3AuditStats;
use tokio_quiche::quic::QuicConnectionStats;

/// A snapshot of a connection's counters. Counts are packets unless named bytes.
#[napi(object, object_from_js = false)]
pub struct NativeConnectionStats {
  pub packets_sent: f64,
  pub packets_received: f64,
  pub packets_lost: f64,
  pub packets_retransmitted: f64,
  pub bytes_sent: f64,
  pub bytes_received: f64,
  pub bytes_lost: f64,
  /// Smoothed RTT, ms; null before the first sample.
  pub rtt_ms: Option<f64>,
  pub min_rtt_ms: Option<f64>,
  pub rtt_var_ms: Option<f64>,
  /// Congestion window, bytes.
  pub cwnd: Option<f64>,
  /// Path MTU, bytes.
  pub pmtu: Option<f64>,
  /// Estimated delivery rate, bytes per second.
  pub delivery_rate: Option<f64>,
  pub peer_address: Option<String>,
}

pub fn connection_stats(s: &QuicConnectionStats) -> NativeConnectionStats {
  let path = s.path_stats.as_ref();
  let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
  NativeConnectionStats {
    packets_sent: s.stats.sent as f64,
    packets_received: s.stats.recv as f64,
    packets_lost: s.stats.lost as f64,
    packets_retransmitted: s.stats.retrans as f64,
    bytes_sent: s.stats.sent_bytes as f64,
    bytes_received: s.stats.recv_bytes as f64,
    bytes_lost: s.stats.lost_bytes as f64,
    rtt_ms: path.map(|p| ms(p.rtt)),
    min_rtt_ms: path.and_then(|p| p.min_rtt).map(ms),
    rtt_var_ms: path.map(|p| ms(p.rttvar)),
    cwnd: path.map(|p| p.cwnd as f64),
    pmtu: path.map(|p| p.pmtu as f64),
    delivery_rate: path.map(|p| p.delivery_rate as f64),
    peer_address: path.map(|p| p.peer_addr.to_string()),
  }
}

/// tokio-quiche's per-stream `H3AuditStats`. Codes are HTTP/3 error codes;
/// null where none was sent or received.
#[napi(object, object_from_js = false)]
pub struct NativeH3AuditStats {
  pub stream_id: f64,
  /// Body bytes sent to the peer.
  pub bytes_sent: f64,
  /// Body bytes received from the peer.
  pub bytes_received: f64,
  pub sent_stop_sending_code: Option<i64>,
  pub sent_reset_stream_code: Option<i64>,
  pub received_stop_sending_code: Option<i64>,
  pub received_reset_stream_code: Option<i64>,
  /// How our side ended: `none`, `implicit` (the connection ended it) or `explicit` (FIN).
  pub sent_fin: String,
  /// How the peer's side ended, likewise.
  pub received_fin: String,
  /// Time the response HEADERS waited for flow control, ms.
  pub headers_flush_ms: f64,
}

fn closure(kind: StreamClosureKind) -> String {
  match kind {
    StreamClosureKind::None => "none",
    StreamClosureKind::Implicit => "implicit",
    StreamClosureKind::Explicit => "explicit",
  }
  .to_string()
}

/// tokio-quiche's audit stats store "no code" as -1.
pub fn error_code(v: i64) -> Option<i64> {
  (v >= 0).then_some(v)
}

pub fn audit_stats(s: &H3AuditStats) -> NativeH3AuditStats {
  let code = error_code;
  NativeH3AuditStats {
    stream_id: s.stream_id() as f64,
    bytes_sent: s.downstream_bytes_sent() as f64,
    bytes_received: s.downstream_bytes_recvd() as f64,
    sent_stop_sending_code: code(s.sent_stop_sending_error_code()),
    sent_reset_stream_code: code(s.sent_reset_stream_error_code()),
    received_stop_sending_code: code(s.recvd_stop_sending_error_code()),
    received_reset_stream_code: code(s.recvd_reset_stream_error_code()),
    sent_fin: closure(s.sent_stream_fin()),
    received_fin: closure(s.recvd_stream_fin()),
    headers_flush_ms: s.headers_flush_duration().as_secs_f64() * 1e3,
  }
}
