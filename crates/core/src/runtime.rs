//! The tokio runtime tokio-quiche runs on.
//!
//! napi-rs drives `async fn` exports on a process-wide tokio runtime; we give
//! it our own multi-threaded one (named threads, sized for a network server)
//! so napi's promises and tokio-quiche's tasks share one pool and no call
//! hops between runtimes. All servers, clients and worker_threads share it.

use std::num::NonZeroUsize;

/// Overrides the number of runtime threads (default: cores, at most 4).
const THREADS_ENV: &str = "TOKIO_QUICHE_THREADS";

pub fn worker_threads() -> usize {
  std::env::var(THREADS_ENV)
    .ok()
    .and_then(|v| v.parse::<NonZeroUsize>().ok())
    .map(NonZeroUsize::get)
    .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().min(4)))
}

#[napi_derive::module_init]
fn init() {
  let runtime = tokio::runtime::Builder::new_multi_thread()
    .worker_threads(worker_threads())
    .thread_name("tokio-quiche")
    .enable_all()
    .build();
  // On failure napi falls back to its default runtime, which also works.
  if let Ok(runtime) = runtime {
    napi::bindgen_prelude::create_custom_tokio_runtime(runtime);
  }
}
