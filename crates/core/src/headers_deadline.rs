//! A deadline for every request's HEADERS, not only the first one's.
//!
//! tokio-quiche hands a request over only once its HEADERS frame is whole,
//! and its one deadline for them, `post_accept_timeout`, covers the first
//! request of a connection. A peer that sent one request and then dribbles
//! the HEADERS of others holds their streams, and the header bytes buffered
//! for them, for as long as it keeps the connection alive.
//!
//! quiche lists no open streams, so every quarter of the timeout (one task
//! for all connections with that timeout, not a timer each) a command on the
//! driver thread walks the peer's request stream ids from the lowest one
//! still undecided. A stream that is open, has not ended and has had no
//! HEADERS for the timeout gets STOP_SENDING and RESET_STREAM with
//! H3_REQUEST_REJECTED: it was not processed, and a client may retry it.
//! HEADERS count as arrived when the event pump takes the request from
//! tokio-quiche, so an app that takes no events for the whole timeout has
//! its waiting requests reset too.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio_quiche::http3::driver::H3Command;
use tokio_quiche::quic::{QuicCommand, QuicheConnection};
use tokio_quiche::quiche;

use crate::commands::Commands;
use crate::goaway::REQUEST_REJECTED;

/// The walk's shortest period, for tiny timeouts.
const MIN_PERIOD: Duration = Duration::from_millis(10);

/// A client-initiated bidirectional stream, as the walk sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamState {
  /// Not opened (yet), or skipped by the peer.
  Unopened,
  /// Open, and the peer may still send on it.
  Open,
  /// The peer ended or reset it, or it is closed and gone.
  Ended,
}

/// What the walk needs of a connection; quiche's on the driver thread.
pub trait RequestStreams {
  fn state(&mut self, stream_id: u64) -> StreamState;
  /// STOP_SENDING and RESET_STREAM, both with H3_REQUEST_REJECTED.
  fn reject(&mut self, stream_id: u64);
}

impl RequestStreams for QuicheConnection {
  fn state(&mut self, stream_id: u64) -> StreamState {
    // `stream_capacity` is quiche's only way to ask whether a stream exists.
    match self.stream_capacity(stream_id) {
      Err(quiche::Error::InvalidStreamState(_)) if self.stream_closed(stream_id) => StreamState::Ended,
      Err(quiche::Error::InvalidStreamState(_)) => StreamState::Unopened,
      _ if self.stream_finished(stream_id) => StreamState::Ended,
      _ => StreamState::Open,
    }
  }

  fn reject(&mut self, stream_id: u64) {
    let _ = self.stream_shutdown(stream_id, quiche::Shutdown::Read, REQUEST_REJECTED);
    let _ = self.stream_shutdown(stream_id, quiche::Shutdown::Write, REQUEST_REJECTED);
  }
}

/// Which request streams are decided: their HEADERS came, they ended, or
/// they were rejected. Its size is bounded: `decided` grows only while the
/// stream at `floor` waits (at most the timeout and a period), and every
/// skipped id holds one of the peer's stream credits for good.
#[derive(Default)]
pub(crate) struct Walk {
  /// Every request stream id below it is decided or in `skipped`.
  floor: u64,
  /// Whether `floor`, `floor + 4`, ... are decided.
  decided: VecDeque<bool>,
  /// Ids below a stream the peer opened that quiche never saw (yet).
  skipped: BTreeSet<u64>,
  /// When each open stream without HEADERS was first found.
  waiting: HashMap<u64, Instant>,
}

impl Walk {
  pub(crate) fn decide(&mut self, stream_id: u64) {
    self.waiting.remove(&stream_id);
    // A skipped id can sit above the floor while a lower stream waits.
    if self.skipped.remove(&stream_id) || stream_id < self.floor {
      return;
    }
    let index = ((stream_id - self.floor) / 4) as usize;
    if self.decided.len() <= index {
      self.decided.resize(index + 1, false);
    }
    self.decided[index] = true;
  }

  /// Rejects `stream_id` if it has waited `timeout`; whether it did.
  fn expire(&mut self, streams: &mut impl RequestStreams, stream_id: u64, now: Instant, timeout: Duration) -> bool {
    let since = *self.waiting.entry(stream_id).or_insert(now);
    if now.duration_since(since) < timeout {
      return false;
    }
    streams.reject(stream_id);
    true
  }

  /// One pass. A run of `stream_limit` unopened ids past every known one ends
  /// it: the peer cannot open a stream beyond such a run (each id it skips
  /// uses a credit), so there is nothing further to find.
  pub(crate) fn step(&mut self, streams: &mut impl RequestStreams, now: Instant, timeout: Duration, stream_limit: u64) {
    for stream_id in self.skipped.clone() {
      match streams.state(stream_id) {
        StreamState::Unopened => {},
        StreamState::Open if !self.expire(streams, stream_id, now, timeout) => {},
        _ => self.decide(stream_id),
      }
    }
    let (mut index, mut unopened_run, mut last_opened) = (0usize, 0u64, None);
    loop {
      if index >= self.decided.len() && unopened_run >= stream_limit.max(1) {
        break;
      }
      let stream_id = self.floor + 4 * index as u64;
      if self.decided.get(index) == Some(&true) {
        (unopened_run, last_opened) = (0, Some(index));
      } else {
        match streams.state(stream_id) {
          StreamState::Unopened => unopened_run += 1,
          state => {
            (unopened_run, last_opened) = (0, Some(index));
            if state == StreamState::Ended || self.expire(streams, stream_id, now, timeout) {
              self.decide(stream_id);
            }
          },
        }
      }
      index += 1;
    }
    // Unopened ids below one the peer opened are skipped (or late): set them aside.
    let opened = last_opened.map_or(0, |last| last + 1);
    if self.decided.len() < opened {
      self.decided.resize(opened, false);
    }
    for index in 0..opened {
      let stream_id = self.floor + 4 * index as u64;
      if !self.decided[index] && !self.waiting.contains_key(&stream_id) {
        self.skipped.insert(stream_id);
        self.decided[index] = true;
      }
    }
    while self.decided.front() == Some(&true) {
      self.decided.pop_front();
      self.floor += 4;
    }
  }

  /// The floor, and how many ids are decided, skipped and waiting.
  #[cfg(any(fuzzing, test))]
  pub(crate) fn held(&self) -> (u64, usize, usize, usize) {
    (self.floor, self.decided.len(), self.skipped.len(), self.waiting.len())
  }
}

/// One server connection's HEADERS deadline; `None` timeout: off.
pub struct HeadersDeadline {
  timeout: Option<Duration>,
  /// Its connection's command channel.
  commands: Commands,
  /// The connection's `initial_max_streams_bidi`, once it has started.
  stream_limit: OnceLock<u64>,
  walk: Mutex<Walk>,
}

impl HeadersDeadline {
  pub fn new(timeout: Option<Duration>, commands: Commands) -> Arc<Self> {
    Arc::new(Self { timeout, commands, stream_limit: OnceLock::new(), walk: Mutex::default() })
  }

  /// The request on `stream_id` has its HEADERS: it is no longer waited for.
  pub fn headers_arrived(&self, stream_id: u64) {
    self.walk.lock().unwrap_or_else(|p| p.into_inner()).decide(stream_id);
  }

  fn step(&self, streams: &mut impl RequestStreams, now: Instant, stream_limit: u64) {
    if let Some(timeout) = self.timeout {
      self.walk.lock().unwrap_or_else(|p| p.into_inner()).step(streams, now, timeout, stream_limit);
    }
  }

  /// The connection started with `initial_max_streams_bidi` of
  /// `stream_limit`: from now on it is walked every quarter of the timeout.
  pub fn started(self: &Arc<Self>, stream_limit: u64) {
    if let Some(timeout) = self.timeout {
      if self.stream_limit.set(stream_limit).is_ok() {
        watch(self, (timeout / 4).max(MIN_PERIOD));
      }
    }
  }

  /// Queues one walk on the driver thread; false once the driver is gone.
  fn walk(self: &Arc<Self>) -> bool {
    let Some(&stream_limit) = self.stream_limit.get() else { return false };
    let deadline = self.clone();
    let walk = QuicCommand::Custom(Box::new(move |qconn| deadline.step(qconn, Instant::now(), stream_limit)));
    self.commands.send(H3Command::QuicCmd(walk))
  }
}

/// The connections walked every one period, weakly held.
type Watched = Arc<Mutex<Vec<Weak<HeadersDeadline>>>>;

/// One task per period walks all its connections: a timer per connection
/// costs each about 1.5 KiB of RSS (idle-1k), one entry here 8 bytes.
static WATCHED: Mutex<Vec<(Duration, Watched)>> = Mutex::new(Vec::new());

fn watch(deadline: &Arc<HeadersDeadline>, period: Duration) {
  let mut groups = WATCHED.lock().unwrap_or_else(|p| p.into_inner());
  let group = match groups.iter().find(|(p, _)| *p == period) {
    Some((_, group)) => group.clone(),
    None => {
      let group = Watched::default();
      groups.push((period, group.clone()));
      spawn_walker(period, group.clone());
      group
    },
  };
  group.lock().unwrap_or_else(|p| p.into_inner()).push(Arc::downgrade(deadline));
}

/// Every `period`, walks each connection of `group`, and forgets those gone.
fn spawn_walker(period: Duration, group: Watched) {
  napi::bindgen_prelude::spawn(async move {
    // The first walk is one period in: nothing can be overdue sooner.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
      ticks.tick().await;
      group.lock().unwrap_or_else(|p| p.into_inner()).retain(|weak| weak.upgrade().is_some_and(|deadline| deadline.walk()));
    }
  });
}

#[cfg(test)]
mod tests {
  use super::*;

  /// Streams by id; ids missing are unopened. `rejected` records resets.
  #[derive(Default)]
  struct Fake {
    states: HashMap<u64, StreamState>,
    rejected: Vec<u64>,
  }

  impl RequestStreams for Fake {
    fn state(&mut self, stream_id: u64) -> StreamState {
      *self.states.get(&stream_id).unwrap_or(&StreamState::Unopened)
    }
    fn reject(&mut self, stream_id: u64) {
      self.rejected.push(stream_id);
      self.states.insert(stream_id, StreamState::Ended);
    }
  }

  const T: Duration = Duration::from_secs(60);

  /// A command channel whose driver is gone: the tests call `step` directly.
  struct Gone;
  impl crate::commands::CommandSink for Gone {
    fn send(&self, _: H3Command) -> bool {
      false
    }
  }

  fn deadline(timeout: Option<Duration>) -> Arc<HeadersDeadline> {
    HeadersDeadline::new(timeout, Arc::new(Gone))
  }

  fn open(fake: &mut Fake, ids: &[u64]) {
    for &id in ids {
      fake.states.insert(id, StreamState::Open);
    }
  }

  #[test]
  fn a_stream_without_headers_is_rejected_after_the_timeout_and_only_then() {
    let (deadline, mut fake, t0) = (deadline(Some(T)), Fake::default(), Instant::now());
    open(&mut fake, &[0, 4]);
    deadline.headers_arrived(0);
    deadline.step(&mut fake, t0, 100);
    deadline.step(&mut fake, t0 + T - Duration::from_millis(1), 100);
    assert!(fake.rejected.is_empty());
    deadline.step(&mut fake, t0 + T, 100);
    assert_eq!(fake.rejected, [4], "stream 0 had its HEADERS");
    deadline.step(&mut fake, t0 + 3 * T, 100);
    assert_eq!(fake.rejected, [4], "rejected once");
    let walk = deadline.walk.lock().unwrap();
    assert_eq!((walk.floor, walk.decided.len(), walk.waiting.len()), (8, 0, 0), "nothing kept for decided streams");
  }

  #[test]
  fn headers_in_time_and_ended_streams_are_never_rejected() {
    let (deadline, mut fake, t0) = (deadline(Some(T)), Fake::default(), Instant::now());
    open(&mut fake, &[0, 4]);
    fake.states.insert(8, StreamState::Ended);
    deadline.step(&mut fake, t0, 100);
    deadline.headers_arrived(0);
    deadline.headers_arrived(4);
    deadline.step(&mut fake, t0 + 2 * T, 100);
    assert!(fake.rejected.is_empty());
    assert_eq!(deadline.walk.lock().unwrap().floor, 12);
  }

  #[test]
  fn a_stream_beyond_skipped_ids_is_found_and_a_skipped_id_opened_late_is_watched() {
    let (deadline, mut fake, t0) = (deadline(Some(T)), Fake::default(), Instant::now());
    // The peer skips 0..36 and opens 40 without HEADERS: the walk reaches it.
    open(&mut fake, &[40]);
    deadline.step(&mut fake, t0, 100);
    deadline.headers_arrived(40);
    deadline.step(&mut fake, t0 + Duration::from_secs(1), 100);
    assert_eq!(deadline.walk.lock().unwrap().floor, 44, "the floor moved past the skipped ids");
    // Then it opens a skipped one and dribbles its HEADERS.
    open(&mut fake, &[8]);
    deadline.step(&mut fake, t0 + Duration::from_secs(2), 100);
    deadline.step(&mut fake, t0 + Duration::from_secs(2) + T, 100);
    assert_eq!(fake.rejected, [8]);
    assert_eq!(deadline.walk.lock().unwrap().skipped.len(), 9, "0..36 but 8 stay set aside");
  }

  #[test]
  fn a_skipped_id_above_a_waiting_stream_is_not_rejected_once_its_headers_come() {
    // Found by the fuzz target (fuzzing.rs): 4 arrives after 8, as under
    // reordering, while 0 holds the floor down.
    let (deadline, mut fake, t0) = (deadline(Some(T)), Fake::default(), Instant::now());
    open(&mut fake, &[0, 8]);
    deadline.headers_arrived(8);
    deadline.step(&mut fake, t0, 100);
    open(&mut fake, &[4]);
    deadline.headers_arrived(4);
    for walk in 1..4 {
      deadline.step(&mut fake, t0 + walk * T, 100);
    }
    assert_eq!(fake.rejected, [0]);
  }

  #[test]
  fn the_walk_stops_after_a_stream_limit_of_unopened_ids() {
    let (deadline, mut fake, t0) = (deadline(Some(T)), Fake::default(), Instant::now());
    // Beyond a run of 10 unopened ids with a limit of 10: not reachable, so not looked at.
    open(&mut fake, &[40]);
    deadline.step(&mut fake, t0, 10);
    deadline.step(&mut fake, t0 + T, 10);
    assert!(fake.rejected.is_empty());
    deadline.step(&mut fake, t0, 11);
    deadline.step(&mut fake, t0 + T, 11);
    assert_eq!(fake.rejected, [40]);
  }

  #[test]
  fn off_never_walks() {
    let (deadline, mut fake) = (deadline(None), Fake::default());
    open(&mut fake, &[0]);
    deadline.step(&mut fake, Instant::now() + 10 * T, 100);
    assert!(fake.rejected.is_empty());
  }
}
