//! Harnesses for coverage-guided fuzzing (`crates/core/fuzz`, `cargo fuzz`).
//! Each decodes the fuzzer's bytes into calls on one of the binding's pure
//! parts and panics when an invariant breaks. Built only with `--cfg fuzzing`
//! (cargo fuzz sets it) and in unit tests, which run each on seeded random
//! bytes so that they keep compiling and keep passing.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use tokio::sync::mpsc;
use tokio_quiche::datagram_socket::DgramBuffer;
use tokio_quiche::http3::driver::InboundFrame;
use tokio_quiche::quiche::h3::{self, NameValue};

use crate::headers::{check_received, headers_from_flat, headers_to_flat, headers_to_js, HeaderBlock, JsHeaders};
use crate::headers_deadline::{RequestStreams, StreamState, Walk};
use crate::limits::{ConnectionLimits, Refusal};
use crate::stream::join_queued;

/// The fuzzer's bytes, read front to back; zeros once they run out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
  fn byte(&mut self) -> u8 {
    let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
    self.0 = rest;
    first
  }

  fn bytes(&mut self, max: usize) -> Vec<u8> {
    let len = (self.byte() as usize % (max + 1)).min(self.0.len());
    let (taken, rest) = self.0.split_at(len);
    self.0 = rest;
    taken.to_vec()
  }

  fn is_empty(&self) -> bool {
    self.0.is_empty()
  }
}

fn block(byte: u8) -> HeaderBlock {
  [HeaderBlock::Request, HeaderBlock::Response, HeaderBlock::Trailers][byte as usize % 3]
}

/// Header lists both ways. From JS: whatever is accepted is what a peer may
/// receive and crosses back unchanged; code points above U+00FF (0xFE
/// escapes the next byte into one) are refused, never truncated. From a
/// peer: any bytes, no panic; what is accepted could be sent on; the form
/// handed to JS gives back every name and value.
pub fn headers(data: &[u8]) {
  let mut input = Input(data);
  let kind = block(input.byte());
  let mut flat = Vec::new();
  let mut received = Vec::new();
  while !input.is_empty() && flat.len() < 32 {
    let (name, value) = (input.bytes(40), input.bytes(40));
    received.push(h3::Header::new(&name, &value));
    for raw in [name, value] {
      let mut text = String::new();
      let mut escape = false;
      for b in raw {
        if escape {
          text.push(char::from_u32(0x100 + u32::from(b)).unwrap());
          escape = false;
        } else if b == 0xFE {
          escape = true;
        } else {
          text.push(char::from(b));
        }
      }
      flat.push(text);
    }
  }
  if let Ok(headers) = headers_from_flat(&flat, kind) {
    assert!(flat.iter().all(|s| s.chars().all(|c| (c as u32) < 0x100)), "a code point above U+00FF was accepted");
    assert!(check_received(&headers, kind).is_ok(), "sent headers a peer would refuse");
    assert_eq!(headers_to_flat(&headers), flat);
  }
  if check_received(&received, kind).is_ok() {
    assert!(headers_from_flat(&headers_to_flat(&received), kind).is_ok(), "received headers that could not be sent on");
  }
  let expected: Vec<Vec<u8>> = received.iter().flat_map(|h| [h.name().to_vec(), h.value().to_vec()]).collect();
  match headers_to_js(&received) {
    JsHeaders::Joined(joined) => {
      let split: Vec<Vec<u8>> = if joined.is_empty() { Vec::new() } else { joined.split(|&b| b == 0).map(<[u8]>::to_vec).collect() };
      assert_eq!(split, expected);
    },
    JsHeaders::List(list) => {
      let list: Vec<Vec<u8>> = list.iter().map(|s| s.chars().map(|c| c as u8).collect()).collect();
      assert_eq!(list, expected);
    },
  }
}

/// Joining queued body frames for one read: the bytes in order up to the
/// limit, FIN only with the last frame taken, datagrams skipped, and what is
/// not joined left queued.
pub fn join_frames(data: &[u8]) {
  let mut input = Input(data);
  let max = 1 + input.byte() as usize * 4;
  let (tx, mut rx) = mpsc::channel(64);
  let mut all = Vec::new();
  while !input.is_empty() && tx.capacity() > 0 {
    let flags = input.byte();
    let bytes = input.bytes(100);
    let frame = if flags & 2 != 0 {
      InboundFrame::Datagram(DgramBuffer::from_slice(&bytes))
    } else {
      all.extend_from_slice(&bytes);
      InboundFrame::Body(BytesMut::from(bytes.as_slice()), flags & 1 != 0)
    };
    tx.try_send(frame).unwrap();
  }
  let Ok(first) = rx.try_recv() else { return };
  let (joined, fin) = join_queued(&mut rx, first, max);
  let mut rest = Vec::new();
  while let Ok(frame) = rx.try_recv() {
    if let InboundFrame::Body(b, _) = frame {
      rest.extend_from_slice(&b);
    }
  }
  assert_eq!([joined.as_slice(), rest.as_slice()].concat(), all, "bytes lost or reordered");
  assert!(fin || rest.is_empty() || joined.len() >= max, "stopped at {} of {max} bytes with more queued", joined.len());
}

/// One request stream in the HEADERS deadline's model.
#[derive(Default)]
struct Modelled {
  state: Option<StreamState>,
  headers: bool,
  /// The first walk that ran while it was open: its wait starts there.
  first_walk: Option<Instant>,
}

/// quiche's request streams as the model keeps them, for [`Walk`].
struct Streams<'a> {
  streams: &'a mut HashMap<u64, Modelled>,
  rejected: Vec<u64>,
}

impl RequestStreams for Streams<'_> {
  fn state(&mut self, stream_id: u64) -> StreamState {
    self.streams.get(&stream_id).and_then(|s| s.state).unwrap_or(StreamState::Unopened)
  }

  fn reject(&mut self, stream_id: u64) {
    self.rejected.push(stream_id);
  }
}

/// The HEADERS deadline's walk against a peer that opens, skips, finishes
/// and sends HEADERS on streams within its stream credit while time passes.
/// Exactly the open streams without HEADERS whose first walk was at least
/// the timeout ago are rejected, each once; what the walk keeps stays
/// within the peer's credit.
pub fn headers_deadline(data: &[u8]) {
  let mut input = Input(data);
  let timeout = Duration::from_millis(1 + input.byte() as u64 * 4);
  let limit = 1 + input.byte() as u64 % 16;
  let (mut walk, mut streams) = (Walk::default(), HashMap::<u64, Modelled>::new());
  let (mut now, mut ended) = (Instant::now(), 0u64);
  while !input.is_empty() {
    let (op, arg) = (input.byte(), input.byte() as u64);
    // A peer may open stream index i only while i < limit + streams gone:
    // quiche gives a credit back for each stream it collects.
    let credit = limit + ended;
    let mut open: Vec<u64> = streams.iter().filter(|(_, s)| s.state == Some(StreamState::Open)).map(|(&id, _)| id).collect();
    open.sort_unstable();
    match op % 5 {
      0 => {
        // Any id within the credit: a new one, one skipped so far, or one
        // already open or gone (then nothing changes).
        let id = 4 * (credit - 1 - arg % credit);
        streams.entry(id).or_default().state.get_or_insert(StreamState::Open);
      },
      1 | 2 if !open.is_empty() => {
        let id = open[arg as usize % open.len()];
        let stream = streams.get_mut(&id).unwrap();
        if op % 5 == 1 && !stream.headers {
          stream.headers = true;
          walk.decide(id);
        } else if op % 5 == 2 {
          stream.state = Some(StreamState::Ended);
          ended += 1;
        }
      },
      3 => now += timeout * arg as u32 / 64,
      4 => {
        let mut peer = Streams { streams: &mut streams, rejected: Vec::new() };
        walk.step(&mut peer, now, timeout, limit);
        let mut rejected = peer.rejected;
        rejected.sort_unstable();
        let mut due = Vec::new();
        for (&id, stream) in streams.iter_mut() {
          if stream.state == Some(StreamState::Open) && !stream.headers {
            let since = *stream.first_walk.get_or_insert(now);
            if now.duration_since(since) >= timeout {
              due.push(id);
            }
          }
        }
        due.sort_unstable();
        assert_eq!(rejected, due, "rejected at {:?} after a timeout of {timeout:?}", now);
        for id in rejected {
          streams.get_mut(&id).unwrap().state = Some(StreamState::Ended);
          ended += 1;
        }
        let (floor, decided, skipped, waiting) = walk.held();
        assert!(floor / 4 + decided as u64 <= limit + ended, "walk kept {decided} ids past {floor}, credit {}", limit + ended);
        assert!(skipped as u64 <= limit + ended && waiting <= streams.len(), "skipped {skipped}, waiting {waiting}");
      },
      _ => {},
    }
  }
}

/// A peer address from one byte of a few: IPv4, the same as IPv4-mapped
/// IPv6, and IPv6 hosts that share or do not share a /64.
fn address(byte: u8) -> IpAddr {
  let host = byte & 3;
  match byte >> 2 & 3 {
    0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, host)),
    1 => IpAddr::V6(Ipv4Addr::new(192, 0, 2, host).to_ipv6_mapped()),
    prefix => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, prefix as u16, 0, byte as u16 >> 4, 0, 1)),
  }
}

/// The connection caps against a peer whose connections come and go from
/// those addresses. A connection is admitted exactly when the server and its
/// source (the IPv4 address, mapped or not, or the IPv6 /64) are under their
/// caps. Refusals are counted, and each connection gone gives its place back.
pub fn connection_limits(data: &[u8]) {
  let mut input = Input(data);
  let (max, per_source) = (1 + input.byte() as usize % 8, 1 + input.byte() as usize % 4);
  let limits = ConnectionLimits::new(max, per_source);
  let source = |peer: IpAddr| match peer {
    IpAddr::V4(v4) => (4, u128::from(v4.to_bits())),
    IpAddr::V6(v6) if v6.segments()[..6] == [0, 0, 0, 0, 0, 0xffff] => (4, v6.to_bits() & 0xffff_ffff),
    IpAddr::V6(v6) => (6, v6.to_bits() >> 64),
  };
  let (mut live, mut refused) = (Vec::new(), 0u64);
  while !input.is_empty() {
    let byte = input.byte();
    if byte & 0x80 != 0 && !live.is_empty() {
      live.swap_remove(byte as usize % live.len());
    } else {
      let peer = address(byte);
      let from_source = live.iter().filter(|(s, _)| *s == source(peer)).count();
      let expected = if live.len() >= max {
        Some(Refusal::Server)
      } else if from_source >= per_source {
        Some(Refusal::Source)
      } else {
        None
      };
      match limits.admit(peer) {
        Ok(permit) => {
          assert_eq!(expected, None, "{peer} admitted");
          live.push((source(peer), permit));
        },
        Err(refusal) => {
          assert_eq!(Some(refusal), expected, "{peer} refused");
          refused += 1;
        },
      }
    }
    assert_eq!((limits.connections(), limits.refused()), (live.len(), refused));
  }
  live.clear();
  assert_eq!(limits.connections(), 0, "places not given back");
}

#[cfg(test)]
mod tests {
  /// xorshift64: the same seeds every run.
  fn seeded(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
      .map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
      })
      .collect()
  }

  #[test]
  fn the_harnesses_hold_on_seeded_input() {
    for seed in 0..2_000 {
      let data = seeded(seed, (seed % 300) as usize);
      super::headers(&data);
      super::join_frames(&data);
      super::headers_deadline(&data);
      super::connection_limits(&data);
    }
  }
}
