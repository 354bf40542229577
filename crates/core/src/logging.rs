//! Logs from tokio-quiche (and, with `captureQuicheLogs`, quiche) routed to a
//! JS callback. tokio-quiche logs through foundations' slog harness, which
//! discards everything until `foundations::telemetry::init`; the first
//! `setLogger()` initialises it with a drain that hands records to JS.
//!
//! Nothing here can block a tokio-quiche task: foundations queues records on
//! its own thread (1,024 deep, dropping beyond), and that thread hands them
//! to a bounded, non-blocking ThreadsafeFunction that drops when JS lags.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use foundations::telemetry::log::set_verbosity;
use foundations::telemetry::settings::{LogOutput, LogVerbosity, TelemetrySettings};
use foundations::telemetry::{init, TelemetryConfig, TelemetryDriver};
use foundations::ServiceInfo;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;
use slog::{Drain, Key, Never, OwnedKVList, Record, Serializer, KV};

use crate::errors::{js_error, ErrorCode, Result};

#[napi(object, object_from_js = false)]
pub struct NativeLogRecord {
  /// `error`, `warn`, `info`, `debug` or `trace`.
  pub level: String,
  pub message: String,
  /// Structured fields as `key=value` text, e.g. `error=...`.
  pub fields: Vec<String>,
}

/// Weak: a logger never keeps Node running. Bounded: records are dropped
/// rather than queued without limit when JS falls behind.
pub type LogCallback = ThreadsafeFunction<NativeLogRecord, (), NativeLogRecord, Status, false, true, 1024>;

static SINK: Mutex<Option<LogCallback>> = Mutex::new(None);
/// The most verbose slog level passed on (slog numbers levels from 1,
/// critical, to 6, trace). quiche's records bypass foundations' own filter
/// once captured, so the drain checks too.
static MAX_LEVEL: AtomicUsize = AtomicUsize::new(0);
/// Keeps foundations' log thread alive (its guard lives in the driver).
static TELEMETRY: OnceLock<std::result::Result<Mutex<TelemetryDriver>, String>> = OnceLock::new();

struct FieldText(Vec<String>);

impl Serializer for FieldText {
  fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments) -> slog::Result {
    self.0.push(format!("{key}={val}"));
    Ok(())
  }
}

/// The drain foundations runs on its logging thread.
struct JsDrain;

impl Drain for JsDrain {
  type Ok = ();
  type Err = Never;

  fn log(&self, record: &Record, values: &OwnedKVList) -> std::result::Result<(), Never> {
    if record.level().as_usize() > MAX_LEVEL.load(Ordering::Relaxed) {
      return Ok(());
    }
    let sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    let Some(callback) = sink.as_ref() else {
      return Ok(());
    };
    let mut fields = FieldText(Vec::new());
    let _ = record.kv().serialize(record, &mut fields);
    let _ = values.serialize(record, &mut fields);
    let mut message = String::new();
    let _ = write!(message, "{}", record.msg());
    let level = match record.level() {
      slog::Level::Critical | slog::Level::Error => "error",
      slog::Level::Warning => "warn",
      slog::Level::Info => "info",
      slog::Level::Debug => "debug",
      slog::Level::Trace => "trace",
    };
    // QueueFull drops the record: logging must never hold up the drain.
    callback.call(NativeLogRecord { level: level.into(), message, fields: fields.0 }, ThreadsafeFunctionCallMode::NonBlocking);
    Ok(())
  }
}

fn verbosity(level: &str) -> Result<LogVerbosity> {
  Ok(match level {
    "error" => LogVerbosity::Error,
    "warn" => LogVerbosity::Warning,
    "info" => LogVerbosity::Info,
    "debug" => LogVerbosity::Debug,
    "trace" => LogVerbosity::Trace,
    other => return Err(js_error(ErrorCode::InvalidArg, format!("level: expected error, warn, info, debug or trace, got '{other}'"))),
  })
}

/// Sends tokio-quiche's log records at `level` and above to `callback`;
/// `null` stops them.
#[napi(catch_unwind, ts_args_type = "callback: ((record: NativeLogRecord) => void) | null, level: string")]
pub fn set_logger(callback: Option<LogCallback>, level: String) -> Result<()> {
  let verbosity = verbosity(&level)?;
  let installed = callback.is_some();
  MAX_LEVEL.store(slog::Level::from(verbosity).as_usize(), Ordering::Relaxed);
  *SINK.lock().unwrap_or_else(|p| p.into_inner()) = callback;
  if !installed {
    return Ok(());
  }
  let telemetry = TELEMETRY.get_or_init(|| {
    let mut settings = TelemetrySettings::default();
    settings.logging.output = LogOutput::Custom(Arc::new(JsDrain.fuse()));
    settings.logging.verbosity = verbosity;
    settings.tracing.enabled = false;
    let service = ServiceInfo {
      name: "tokio-quiche",
      name_in_metrics: "tokio_quiche".into(),
      version: env!("CARGO_PKG_VERSION"),
      author: "",
      description: "",
    };
    init(TelemetryConfig { service_info: &service, settings: &settings }).map(Mutex::new).map_err(|e| e.to_string())
  });
  if let Err(e) = telemetry {
    return Err(js_error(ErrorCode::Internal, format!("starting the log pipeline failed: {e}")));
  }
  set_verbosity(verbosity).map_err(|e| js_error(ErrorCode::Internal, format!("setting the log level failed: {e}")))
}
