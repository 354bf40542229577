//! tokio-quiche's `DefaultMetrics` (listener, handshake, write-error and
//! close-code counters and histograms) as Prometheus text, so a `prom-client`
//! or plain HTTP /metrics endpoint can expose them.

use foundations::telemetry::metrics::collect;
use foundations::telemetry::settings::MetricsSettings;
use napi_derive::napi;

use crate::errors::{js_error, ErrorCode, Result};

/// The prefix foundations puts on every metric name before its telemetry is
/// initialised (which would take over the process's logging and tracing too).
const UNINITIALISED_PREFIX: &str = "undefined_";
/// The prefix our metrics carry instead.
const PREFIX: &str = "tokio_quiche_";

/// Renames `undefined_x` to `tokio_quiche_x` in metric lines and their
/// `# HELP` / `# TYPE` comments.
fn rename(text: &str) -> String {
  text
    .lines()
    .map(|line| {
      let (head, rest) = match line.strip_prefix("# HELP ").or_else(|| line.strip_prefix("# TYPE ")) {
        Some(rest) => (&line[..7], rest),
        None => ("", line),
      };
      match rest.strip_prefix(UNINITIALISED_PREFIX) {
        Some(name) => format!("{head}{PREFIX}{name}\n"),
        None => format!("{line}\n"),
      }
    })
    .collect()
}

/// Everything in the process's foundations metrics registry, in the
/// Prometheus text exposition format, names prefixed `tokio_quiche_`.
#[napi(catch_unwind)]
#[allow(deprecated)] // `collect` is text-only by design; text is what we return.
pub fn prometheus_metrics() -> Result<String> {
  let settings = MetricsSettings { report_optional: true, ..Default::default() };
  collect(&settings)
    .map(|text| rename(&text))
    .map_err(|e| js_error(ErrorCode::Internal, format!("collecting metrics failed: {e}")))
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn renames_metric_lines_and_their_comments_only() {
    let text = "# HELP undefined_quic_x Help.\n# TYPE undefined_quic_x counter\nundefined_quic_x{a=\"undefined_b\"} 1\nother 2\n";
    assert_eq!(
      rename(text),
      "# HELP tokio_quiche_quic_x Help.\n# TYPE tokio_quiche_quic_x counter\ntokio_quiche_quic_x{a=\"undefined_b\"} 1\nother 2\n"
    );
  }
}
