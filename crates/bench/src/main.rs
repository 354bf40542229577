//! `tq-bench server ADDR CERT KEY`: subject N, a native tokio-quiche HTTP/3
//! server doing what `bench/server.ts` (subject P) does.
//! `tq-bench load ADDR PATH STREAMS SECONDS`: a native multi-stream HTTP/3
//! load client; prints one JSON line of results.

mod load;
mod server;

/// The routes both subjects serve: `/bytes/<n>` is n bytes sent in 64 KiB
/// frames; anything else is 1 KiB.
pub const CHUNK: usize = 64 * 1024;
pub const SMALL: usize = 1024;

pub fn response_size(path: &str) -> usize {
  path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()).unwrap_or(SMALL)
}

fn usage() -> ! {
  eprintln!("usage: tq-bench server ADDR CERT KEY | tq-bench load ADDR PATH STREAMS SECONDS");
  std::process::exit(2)
}

fn main() {
  let args: Vec<String> = std::env::args().skip(1).collect();
  let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
  let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
    ["server", addr, cert, key] => runtime.block_on(server::run(addr, cert, key)),
    ["load", addr, path, streams, seconds] => {
      let streams = streams.parse().unwrap_or_else(|_| usage());
      let seconds = seconds.parse().unwrap_or_else(|_| usage());
      runtime.block_on(load::run(addr, path, streams, seconds))
    },
    _ => usage(),
  };
  if let Err(e) = result {
    eprintln!("tq-bench: {e}");
    std::process::exit(1);
  }
}
