//! `tq-bench server ADDR CERT KEY`: subject N, a native tokio-quiche HTTP/3
//! server doing what `bench/server.ts` (subject P) does.
//! `tq-bench load ADDR PATH [options]`: a native HTTP/3 load client; prints
//! one JSON line of results (see `load.rs` for the options).
//! `tq-bench idle ADDR PATH COUNT`: opens COUNT connections, one request
//! each, prints one JSON line, then holds them open until killed.
//! `tq-bench raw-server` / `raw-load`: the raw QUIC rows (`raw.rs`).

mod body;
mod client;
mod idle;
mod load;
mod raw;
mod server;
mod tcp;

/// The routes every subject serves: `GET /bytes/<n>` is n bytes sent in
/// 64 KiB frames; any other GET is 1 KiB; a POST's body is read, counted and
/// discarded, and the answer is its length in decimal.
pub const CHUNK: usize = 64 * 1024;
pub const SMALL: usize = 1024;

pub fn response_size(path: &str) -> usize {
  path.strip_prefix("/bytes/").and_then(|n| n.parse().ok()).unwrap_or(SMALL)
}

const USAGE: &str = "usage: tq-bench server ADDR CERT KEY
       tq-bench load ADDR PATH [--streams S] [--conns C] [--seconds D] [--per-conn R] [--upload BYTES]
       tq-bench idle ADDR PATH COUNT
       tq-bench raw-server ADDR CERT KEY
       tq-bench raw-load ADDR bulk BYTES | rr STREAMS SECONDS";

fn usage() -> ! {
  eprintln!("{USAGE}");
  std::process::exit(2)
}

fn number<T: std::str::FromStr>(s: &str) -> T {
  s.parse().unwrap_or_else(|_| usage())
}

fn load_options(rest: &[&str]) -> load::Options {
  let mut o = load::Options::default();
  let mut rest = rest;
  while let [flag, tail @ ..] = rest {
    let [value, tail @ ..] = tail else { usage() };
    rest = tail;
    match [*flag, *value] {
      ["--streams", v] => o.streams = number(v),
      ["--conns", v] => o.conns = number(v),
      ["--seconds", v] => o.seconds = number(v),
      ["--per-conn", v] => o.per_conn = Some(number(v)),
      ["--upload", v] => o.upload = Some(number(v)),
      ["--proto", "h3"] => o.proto = load::Proto::H3,
      ["--proto", "h2"] => o.proto = load::Proto::H2,
      ["--proto", "h1"] => o.proto = load::Proto::H1,
      _ => usage(),
    }
  }
  o
}

fn main() {
  let args: Vec<String> = std::env::args().skip(1).collect();
  let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
  let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
    ["server", addr, cert, key] => runtime.block_on(server::run(addr, cert, key)),
    ["load", addr, path, rest @ ..] => runtime.block_on(load::run(addr, path, load_options(rest))),
    ["idle", addr, path, count] => runtime.block_on(idle::run(addr, path, number(count))),
    ["raw-server", addr, cert, key] => runtime.block_on(raw::serve(addr, cert, key)),
    ["raw-load", addr, "bulk", bytes] => runtime.block_on(raw::load(addr, raw::Mode::Bulk(number(bytes)))),
    ["raw-load", addr, "rr", streams, seconds] => {
      runtime.block_on(raw::load(addr, raw::Mode::RequestResponse { streams: number(streams), seconds: number(seconds) }))
    },
    _ => usage(),
  };
  if let Err(e) = result {
    eprintln!("tq-bench: {e}");
    std::process::exit(1);
  }
}

/// This process's user + system CPU time, from /proc (Linux).
pub fn cpu_seconds() -> f64 {
  let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
  let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
  let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
  // utime and stime are fields 14 and 15 of stat (11 and 12 after the comm field); 100 ticks/s.
  (ticks(11) + ticks(12)) / 100.0
}
