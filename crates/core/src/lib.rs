//! Node.js binding for tokio-quiche. The napi surface (`Native*` classes and
//! functions) is internal; `src-ts/` builds the public API on top of it.

// napi-derive compiles the JS registration glue out of unit-test builds,
// which leaves items only that glue uses looking dead there.
#![cfg_attr(test, allow(dead_code))]

mod address;
mod alloc;
mod batch;
mod client;
mod client_driver;
mod commands;
mod controller;
mod crossings;
mod errors;
mod events;
mod flow;
#[cfg(any(fuzzing, test))]
pub mod fuzzing;
mod goaway;
mod headers;
mod headers_deadline;
#[cfg(test)]
mod layers;
mod limits;
mod logging;
mod metrics;
mod offer;
mod outbox;
mod raw;
mod raw_driver;
mod requests;
mod runtime;
mod server;
mod server_tls;
mod settings;
mod stats;
mod stream;
mod tls;

use napi_derive::napi;

/// Rust's allocations in the addon: mimalloc for small blocks, the system
/// allocator for larger ones (alloc.rs says why).
#[global_allocator]
static ALLOCATOR: alloc::SizeSplit = alloc::SizeSplit;

/// A self-signed certificate and key, both PEM.
#[napi(object)]
pub struct NativeSelfSigned {
  pub cert: String,
  pub key: String,
}

/// Generates a self-signed ECDSA P-256 certificate for `names`.
#[napi(catch_unwind)]
pub fn generate_self_signed(names: Vec<String>) -> errors::Result<NativeSelfSigned> {
  let id = tls::self_signed(names)?;
  Ok(NativeSelfSigned { cert: id.cert_pem, key: id.key_pem })
}

/// The optional Cargo features this binary was built with (tokio-quiche's
/// feature flags), in a fixed order.
#[napi]
pub fn build_features() -> Vec<&'static str> {
  [
    ("capture_keylogs", cfg!(feature = "capture_keylogs")),
    ("gcongestion", cfg!(feature = "gcongestion")),
    ("zero-copy", cfg!(feature = "zero-copy")),
    ("rpk", cfg!(feature = "rpk")),
    ("perf-quic-listener-metrics", cfg!(feature = "perf-quic-listener-metrics")),
    ("tokio-task-metrics", cfg!(feature = "tokio-task-metrics")),
  ]
  .into_iter()
  .filter_map(|(name, on)| on.then_some(name))
  .collect()
}
