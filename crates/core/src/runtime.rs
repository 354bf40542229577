//! The tokio runtime tokio-quiche runs on.
//!
//! napi-rs drives `async fn` exports on a process-wide tokio runtime; we give
//! it our own multi-threaded one (named threads, sized for a network server)
//! so napi's promises and tokio-quiche's tasks share one pool and no call
//! hops between runtimes. All servers, clients and worker_threads share it.

use std::num::NonZeroUsize;

/// Overrides the number of runtime threads.
const THREADS_ENV: &str = "TOKIO_QUICHE_THREADS";

/// The runtime's worker threads: one core left for the JS thread, which
/// every request crosses, then up to 4 (measured on 2 cores: 1 worker beat 2
/// on bulk throughput by ~15 % and on p50 latency by ~30 %; `npm run bench` with
/// TOKIO_QUICHE_THREADS=1 and 2).
pub fn default_threads(cores: usize) -> usize {
  cores.saturating_sub(1).clamp(1, 4)
}

pub fn worker_threads() -> usize {
  std::env::var(THREADS_ENV)
    .ok()
    .and_then(|v| v.parse::<NonZeroUsize>().ok())
    .map(NonZeroUsize::get)
    .unwrap_or_else(|| default_threads(std::thread::available_parallelism().map_or(2, |n| n.get())))
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

#[cfg(test)]
mod tests {
  use super::default_threads;

  #[test]
  fn leaves_a_core_for_javascript() {
    assert_eq!([1, 2, 3, 4, 8, 64].map(default_threads), [1, 1, 2, 3, 4, 4]);
  }
}
