//! Counts of JS↔Rust crossings on the per-request paths, so benchmarks can
//! check the bridge's cost per request (issue target: at most 2 per small
//! request, none per packet). Relaxed atomics: a few nanoseconds each.

use std::sync::atomic::{AtomicU64, Ordering};

use napi_derive::napi;

static TO_RUST: AtomicU64 = AtomicU64::new(0);
static TO_JS: AtomicU64 = AtomicU64::new(0);

/// A JS call into a per-request binding method (a frame sent, a read, a request).
pub fn into_rust() {
  TO_RUST.fetch_add(1, Ordering::Relaxed);
}

/// The runtime waking JS: an event batch, a read or a send that had to wait settling.
pub fn into_js() {
  TO_JS.fetch_add(1, Ordering::Relaxed);
}

/// Counts one `into_js()` when dropped: held by an async method, it marks
/// the promise settling whichever way the method returns.
pub struct Settles;

impl Drop for Settles {
  fn drop(&mut self) {
    into_js();
  }
}

#[napi(object, object_from_js = false)]
pub struct NativeBridgeCounters {
  pub to_rust: f64,
  pub to_js: f64,
}

/// Crossings since the process started.
#[napi(catch_unwind)]
pub fn bridge_counters() -> NativeBridgeCounters {
  NativeBridgeCounters { to_rust: TO_RUST.load(Ordering::Relaxed) as f64, to_js: TO_JS.load(Ordering::Relaxed) as f64 }
}
