//! [`RawDriver`]: tokio-quiche's `ApplicationOverQuic` for a protocol of the
//! user's own on QUIC streams and datagrams ("raw QUIC"), and the channel
//! ends it hands the bridge ([`RawHandle`]). Plain Rust: no napi.
//!
//! Each stream's bytes travel on the same bounded channel types as an H3
//! body (`InboundFrame`/`OutboundFrame`), so the bridge's body readers,
//! writers and datagram flow serve raw streams unchanged. Back-pressure is
//! the H3 driver's: a stream is read from quiche only while its channel to
//! JS has room (else quiche's flow control holds the peer), and JS's frames
//! are taken only as quiche can buffer them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};
use tokio_quiche::datagram_socket::{DgramBuffer, StreamClosureKind};
use tokio_quiche::http3::driver::{H3Command, InboundFrame, InboundFrameStream, OutboundFrame, OutboundFrameSender, StreamShutdown};
use tokio_quiche::http3::H3AuditStats;
use tokio_quiche::quic::{HandshakeInfo, QuicCommand, QuicheConnection};
use tokio_quiche::quiche;
use tokio_quiche::{ApplicationOverQuic, QuicResult};
use tokio_util::sync::PollSender;

use crate::commands::CommandSink;
use crate::offer::Doorbell;

/// Frames queued per stream and direction (the H3 driver's release-build capacity).
const STREAM_CAPACITY: usize = 16;
/// The most bytes one inbound frame carries.
const READ_CHUNK: usize = 64 * 1024;
/// Inbound datagrams queued for JS; more are dropped (and counted).
const DATAGRAM_QUEUE: usize = 2048;
/// Outbound datagrams taken from JS per wake-up.
const DATAGRAM_BATCH: usize = 64;
/// Peer unidirectional streams handed to JS that the app has not taken yet.
/// Past this, new ones stay unread in quiche: a peer stream that ends at
/// once gives the peer its credit back when read, so without this a peer
/// could queue streams (and their bytes) for JS without bound.
const UNACCEPTED_UNI: usize = 100;
/// `max_datagram_size` until the handshake is done.
pub const DATAGRAM_SIZE_UNKNOWN: usize = usize::MAX;

/// What the bridge asks of a raw connection.
pub enum RawCommand {
  /// Opens a stream once the peer's stream limit allows.
  Open { bidi: bool, reply: oneshot::Sender<Result<RawStreamEnds, quiche::Error>> },
  /// The app took this many of the peer's unidirectional streams.
  Accepted(u32),
  Shutdown { stream_id: u64, shutdown: StreamShutdown },
  Quic(QuicCommand),
}

/// The command channel; as a [`CommandSink`] it takes the H3 commands that
/// make sense on any QUIC connection (close, stats, stream shutdown).
pub type RawCommands = mpsc::UnboundedSender<RawCommand>;

impl CommandSink for RawCommands {
  fn send(&self, cmd: H3Command) -> bool {
    let cmd = match cmd {
      H3Command::QuicCmd(cmd) => RawCommand::Quic(cmd),
      H3Command::ShutdownStream { stream_id, shutdown } => RawCommand::Shutdown { stream_id, shutdown },
      _ => return false,
    };
    mpsc::UnboundedSender::send(self, cmd).is_ok()
  }
}

/// One stream's ends for JS: a writer's sender (none on the peer's
/// unidirectional streams), a reader's receiver (none on ours), and the
/// stream's stats, which tell a reader why its channel ended.
pub struct RawStreamEnds {
  pub stream_id: u64,
  pub send: Option<OutboundFrameSender>,
  pub recv: Option<InboundFrameStream>,
  pub audit: Arc<H3AuditStats>,
  /// A peer's stream: the bytes quiche already had when it was handed over,
  /// and whether FIN came with them (then there is no `recv`).
  pub first: Option<(Vec<u8>, bool)>,
  /// With `send`: how its writer tells the driver it wrote.
  pub doorbell: Option<Doorbell>,
}

pub enum RawEvent {
  Established,
  /// A stream the peer opened.
  NewStream(RawStreamEnds),
  /// The peer sent STOP_SENDING on a stream this side writes: its writer is closed.
  StopSending { stream_id: u64, code: u64 },
}

/// What JS reads of a raw connection without asking the driver.
pub struct RawShared {
  pub alpn: OnceLock<Vec<u8>>,
  /// Inbound datagrams dropped because JS's queue was full.
  pub datagrams_dropped_in: AtomicU64,
  /// Outbound datagrams quiche refused (its send queue was full, or the peer takes none that large).
  pub datagrams_dropped_out: AtomicU64,
  /// The largest datagram payload the peer and path take now; 0 when the
  /// peer takes none, [`DATAGRAM_SIZE_UNKNOWN`] before the handshake is done.
  pub max_datagram_size: Arc<AtomicUsize>,
}

impl Default for RawShared {
  fn default() -> Self {
    Self {
      alpn: OnceLock::new(),
      datagrams_dropped_in: AtomicU64::new(0),
      datagrams_dropped_out: AtomicU64::new(0),
      max_datagram_size: Arc::new(AtomicUsize::new(DATAGRAM_SIZE_UNKNOWN)),
    }
  }
}

/// The bridge's ends of a [`RawDriver`].
pub struct RawHandle {
  pub commands: RawCommands,
  pub events: mpsc::UnboundedReceiver<RawEvent>,
  pub datagram_send: OutboundFrameSender,
  pub datagram_recv: InboundFrameStream,
  pub shared: Arc<RawShared>,
}

struct RawStream {
  to_js: Option<PollSender<InboundFrame>>,
  from_js: Option<mpsc::Receiver<OutboundFrame>>,
  /// Bytes (and FIN) taken from JS that quiche has not buffered yet.
  pending: Option<(Bytes, bool)>,
  /// JS dropped its writer before FIN.
  abandoned: bool,
  audit: Arc<H3AuditStats>,
}

pub struct RawDriver {
  is_server: bool,
  commands: mpsc::UnboundedReceiver<RawCommand>,
  /// Nobody holds the connection in JS any more: close it.
  commands_closed: bool,
  closing: bool,
  received: VecDeque<RawCommand>,
  events: mpsc::UnboundedSender<RawEvent>,
  streams: HashMap<u64, RawStream>,
  /// Streams whose next read waits for room in their channel to JS.
  read_blocked: HashSet<u64>,
  read_ready: Vec<u64>,
  /// Streams waiting for JS to write; their channels are read when the
  /// writer rings (`Doorbell`), not polled, so a wake-up costs the same with
  /// one idle stream or thousands.
  write_idle: HashSet<u64>,
  doorbell: mpsc::UnboundedSender<u64>,
  rung: mpsc::UnboundedReceiver<u64>,
  write_ready: HashSet<u64>,
  /// Waiting opens, bidirectional then unidirectional.
  opens: [VecDeque<oneshot::Sender<Result<RawStreamEnds, quiche::Error>>>; 2],
  next_local: [u64; 2],
  /// The next new stream id the peer may open, per kind, and the lower
  /// ones it skipped (opened implicitly, not seen yet).
  next_remote: [u64; 2],
  skipped_remote: HashSet<u64>,
  /// Peer unidirectional streams JS has but the app has not taken
  /// (`UNACCEPTED_UNI`), and the new ones left unread meanwhile.
  unaccepted_uni: usize,
  parked_uni: VecDeque<u64>,
  /// quiche's count of STOP_SENDING frames received, when last looked at.
  stops_seen: u64,
  datagrams_out: mpsc::Receiver<OutboundFrame>,
  datagram_queue: VecDeque<DgramBuffer>,
  datagrams_in: mpsc::Sender<InboundFrame>,
  shared: Arc<RawShared>,
  buf: Vec<u8>,
}

fn kind(stream_id: u64) -> usize {
  ((stream_id >> 1) & 1) as usize
}

impl RawDriver {
  pub fn new(is_server: bool) -> (Self, RawHandle) {
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let (events, events_rx) = mpsc::unbounded_channel();
    let (datagram_send, datagrams_out) = mpsc::channel(DATAGRAM_BATCH);
    let (datagrams_in, datagram_recv) = mpsc::channel(DATAGRAM_QUEUE);
    let shared = Arc::new(RawShared::default());
    let (doorbell, rung) = mpsc::unbounded_channel();
    let (local, remote) = if is_server { (1, 0) } else { (0, 1) };
    let driver = Self {
      is_server,
      commands,
      commands_closed: false,
      closing: false,
      received: VecDeque::new(),
      events,
      streams: HashMap::new(),
      read_blocked: HashSet::new(),
      read_ready: Vec::new(),
      write_idle: HashSet::new(),
      doorbell,
      rung,
      write_ready: HashSet::new(),
      opens: Default::default(),
      next_local: [local, local | 2],
      next_remote: [remote, remote | 2],
      skipped_remote: HashSet::new(),
      unaccepted_uni: 0,
      parked_uni: VecDeque::new(),
      stops_seen: 0,
      datagrams_out,
      datagram_queue: VecDeque::new(),
      datagrams_in,
      shared: shared.clone(),
      buf: vec![0; READ_CHUNK],
    };
    let handle = RawHandle {
      commands: commands_tx,
      events: events_rx,
      datagram_send: PollSender::new(datagram_send),
      datagram_recv,
      shared,
    };
    (driver, handle)
  }

  fn is_local(&self, stream_id: u64) -> bool {
    (stream_id & 1 == 1) == self.is_server
  }

  /// `read_all`: the peer's FIN has been read already, so JS needs no reader.
  fn new_stream(&mut self, stream_id: u64, read_all: bool) -> RawStreamEnds {
    let bidi = kind(stream_id) == 0;
    let local = self.is_local(stream_id);
    let audit = Arc::new(H3AuditStats::new(stream_id));
    let (send, from_js, doorbell) = if bidi || local {
      let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
      self.write_idle.insert(stream_id);
      (Some(PollSender::new(tx)), Some(rx), Some(Doorbell { queue: self.doorbell.clone(), stream_id }))
    } else {
      (None, None, None)
    };
    let (to_js, recv) = if (bidi || !local) && !read_all {
      let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
      (Some(PollSender::new(tx)), Some(rx))
    } else {
      (None, None)
    };
    self.streams.insert(stream_id, RawStream { to_js, from_js, pending: None, abandoned: false, audit: audit.clone() });
    RawStreamEnds { stream_id, send, recv, audit, first: None, doorbell }
  }

  /// Whether `stream_id` is a stream the peer opens now; records it as seen.
  fn is_new_remote(&mut self, stream_id: u64) -> bool {
    if self.is_local(stream_id) || self.streams.contains_key(&stream_id) {
      return false;
    }
    let next = &mut self.next_remote[kind(stream_id)];
    if stream_id >= *next {
      self.skipped_remote.extend((*next..stream_id).step_by(4));
      *next = stream_id + 4;
      return true;
    }
    self.skipped_remote.remove(&stream_id)
  }

  /// Hands a stream the peer opened to JS, with what quiche already has of
  /// it: a small message that came whole (FIN included) needs no reader
  /// channel at all, and JS gets it with the event.
  fn accept_remote(&mut self, qconn: &mut QuicheConnection, stream_id: u64) {
    if kind(stream_id) == 1 {
      self.unaccepted_uni += 1;
    }
    let (first, reset) = match qconn.stream_recv(stream_id, &mut self.buf) {
      Ok((len, fin)) => (Some((self.buf[..len].to_vec(), fin)), None),
      // quiche reports a reset once: the reader learns it from the stats.
      Err(quiche::Error::StreamReset(code)) => (None, Some(code)),
      Err(_) => (None, None),
    };
    let read_all = matches!(first, Some((_, true)));
    let mut ends = self.new_stream(stream_id, read_all);
    if let Some((data, fin)) = &first {
      ends.audit.add_downstream_bytes_recvd(data.len() as u64);
      if *fin {
        ends.audit.set_recvd_stream_fin(StreamClosureKind::Explicit);
      }
    }
    if let Some(code) = reset {
      ends.audit.set_recvd_reset_stream_error_code(code as i64);
      // Its channel to JS ends at once, as after a reset mid-stream.
      if let Some(stream) = self.streams.get_mut(&stream_id) {
        stream.to_js = None;
      }
    }
    ends.first = first;
    let _ = self.events.send(RawEvent::NewStream(ends));
    if read_all || reset.is_some() {
      self.forget_if_done(stream_id);
    } else {
      self.read_stream(qconn, stream_id);
    }
  }

  /// Hands over the parked peer streams the app now has room for.
  fn unpark(&mut self, qconn: &mut QuicheConnection) {
    while self.unaccepted_uni < UNACCEPTED_UNI {
      let Some(stream_id) = self.parked_uni.pop_front() else { break };
      self.accept_remote(qconn, stream_id);
    }
  }

  /// The writer of `stream_id` can write no more: the peer sent STOP_SENDING.
  fn writer_stopped(&mut self, stream_id: u64, code: u64) {
    let Some(stream) = self.streams.get_mut(&stream_id) else { return };
    stream.audit.set_recvd_stop_sending_error_code(code as i64);
    // Dropping the receiver tells the JS writer the stream is closed; the event says why.
    stream.from_js = None;
    stream.pending = None;
    self.write_idle.remove(&stream_id);
    let _ = self.events.send(RawEvent::StopSending { stream_id, code });
  }

  /// quiche reports a stopped stream through `stream_writable_next` only if
  /// it was not writable already, so an idle writer's STOP_SENDING would go
  /// unnoticed: when quiche counted a new one, look at the idle writers.
  /// (`stats()` sums the streams' buffered bytes, so only with idle writers.)
  fn find_stopped_writers(&mut self, qconn: &mut QuicheConnection) {
    if self.write_idle.is_empty() {
      return;
    }
    let stops = qconn.stats().stopped_stream_count_remote;
    if stops == self.stops_seen {
      return;
    }
    self.stops_seen = stops;
    let stopped: Vec<(u64, u64)> = self
      .write_idle
      .iter()
      .filter_map(|&id| match qconn.stream_capacity(id) {
        Err(quiche::Error::StreamStopped(code)) => Some((id, code)),
        _ => None,
      })
      .collect();
    for (stream_id, code) in stopped {
      self.writer_stopped(stream_id, code);
      self.forget_if_done(stream_id);
    }
  }

  /// Forgets a stream once both directions are over.
  fn forget_if_done(&mut self, stream_id: u64) {
    if self.streams.get(&stream_id).is_some_and(|s| s.to_js.is_none() && s.from_js.is_none()) {
      self.streams.remove(&stream_id);
      self.read_blocked.remove(&stream_id);
      self.write_idle.remove(&stream_id);
      self.write_ready.remove(&stream_id);
    }
  }

  /// Collects what became ready: commands, datagrams and frames from JS,
  /// room in channels to JS. Only moves items into `self`, so the future
  /// it backs is cancel-safe.
  fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<()> {
    let mut ready = false;
    while !self.commands_closed {
      match self.commands.poll_recv(cx) {
        Poll::Ready(Some(cmd)) => self.received.push_back(cmd),
        Poll::Ready(None) => self.commands_closed = true,
        Poll::Pending => break,
      }
      ready = true;
    }
    // Taken only as quiche queues them: a full queue holds JS's sends back.
    while self.datagram_queue.len() < DATAGRAM_BATCH {
      match self.datagrams_out.poll_recv(cx) {
        Poll::Ready(Some(OutboundFrame::Datagram(dgram, _))) => self.datagram_queue.push_back(dgram),
        Poll::Ready(Some(_)) => {},
        Poll::Ready(None) | Poll::Pending => break,
      }
      ready = true;
    }
    let Self { streams, write_idle, rung, write_ready, read_blocked, read_ready, .. } = self;
    while let Poll::Ready(Some(id)) = rung.poll_recv(cx) {
      // A stream not idle is being written: `write_stream` reads on itself.
      if !write_idle.contains(&id) {
        continue;
      }
      let Some(rx) = streams.get_mut(&id).and_then(|s| s.from_js.as_mut()) else {
        write_idle.remove(&id);
        continue;
      };
      let frame = match rx.try_recv() {
        Ok(frame) => Some(frame),
        // Rung for a frame `write_stream` already took.
        Err(mpsc::error::TryRecvError::Empty) => continue,
        Err(mpsc::error::TryRecvError::Disconnected) => None,
      };
      streams.get_mut(&id).expect("looked up above").take(frame);
      write_idle.remove(&id);
      write_ready.insert(id);
    }
    read_blocked.retain(|id| {
      let Some(tx) = streams.get_mut(id).and_then(|s| s.to_js.as_mut()) else { return false };
      match tx.poll_reserve(cx) {
        Poll::Ready(_) => {
          read_ready.push(*id);
          false
        },
        Poll::Pending => true,
      }
    });
    if ready || !write_ready.is_empty() || !read_ready.is_empty() {
      Poll::Ready(())
    } else {
      Poll::Pending
    }
  }

  fn run_commands(&mut self, qconn: &mut QuicheConnection) {
    while let Some(cmd) = self.received.pop_front() {
      match cmd {
        RawCommand::Open { bidi, reply } => self.opens[usize::from(!bidi)].push_back(reply),
        RawCommand::Accepted(n) => self.unaccepted_uni = self.unaccepted_uni.saturating_sub(n as usize),
        RawCommand::Shutdown { stream_id, shutdown } => self.shutdown(qconn, stream_id, shutdown),
        RawCommand::Quic(cmd) => cmd.execute(qconn),
      }
    }
    if self.commands_closed && !self.closing {
      self.closing = true;
      let _ = qconn.close(true, 0, b"");
    }
  }

  fn shutdown(&mut self, qconn: &mut QuicheConnection, stream_id: u64, shutdown: StreamShutdown) {
    let (read, write) = match shutdown {
      StreamShutdown::Read { error_code } => (Some(error_code), None),
      StreamShutdown::Write { error_code } => (None, Some(error_code)),
      StreamShutdown::Both { read_error_code, write_error_code } => (Some(read_error_code), Some(write_error_code)),
    };
    let Some(stream) = self.streams.get_mut(&stream_id) else { return };
    if let Some(code) = read.filter(|_| stream.to_js.is_some()) {
      let _ = qconn.stream_shutdown(stream_id, quiche::Shutdown::Read, code);
      stream.audit.set_sent_stop_sending_error_code(code as i64);
      stream.to_js = None;
    }
    if let Some(code) = write.filter(|_| stream.from_js.is_some()) {
      let _ = qconn.stream_shutdown(stream_id, quiche::Shutdown::Write, code);
      stream.audit.set_sent_reset_stream_error_code(code as i64);
      stream.from_js = None;
      stream.pending = None;
    }
    self.forget_if_done(stream_id);
  }

  /// Opens the streams asked for while the peer's limits allow.
  fn open_streams(&mut self, qconn: &mut QuicheConnection) {
    for (index, bidi) in [(0, true), (1, false)] {
      while let Some(reply) = self.opens[index].front() {
        if reply.is_closed() {
          self.opens[index].pop_front();
          continue;
        }
        let left = if bidi { qconn.peer_streams_left_bidi() } else { qconn.peer_streams_left_uni() };
        if left == 0 {
          break;
        }
        let reply = self.opens[index].pop_front().expect("checked above");
        let stream_id = self.next_local[index];
        self.next_local[index] += 4;
        // quiche opens a stream on its first send; an empty one takes the
        // peer's credit now, without putting a frame on the wire.
        if let Err(e) = qconn.stream_send(stream_id, &[], false) {
          let _ = reply.send(Err(e));
          continue;
        }
        let ends = self.new_stream(stream_id, false);
        let _ = reply.send(Ok(ends));
      }
    }
  }

  fn send_datagrams(&mut self, qconn: &mut QuicheConnection) {
    self.shared.max_datagram_size.store(qconn.dgram_max_writable_len().unwrap_or(0), Ordering::Relaxed);
    while !qconn.is_dgram_send_queue_full() {
      let Some(dgram) = self.datagram_queue.pop_front() else { break };
      if qconn.dgram_send(dgram.as_slice()).is_err() {
        self.shared.datagrams_dropped_out.fetch_add(1, Ordering::Relaxed);
      }
    }
  }

  fn receive_datagrams(&mut self, qconn: &mut QuicheConnection) {
    while let Ok(len) = qconn.dgram_recv(&mut self.buf) {
      let dgram = InboundFrame::Datagram(DgramBuffer::from_slice(&self.buf[..len]));
      if self.datagrams_in.try_send(dgram).is_err() {
        self.shared.datagrams_dropped_in.fetch_add(1, Ordering::Relaxed);
      }
    }
  }

  /// Writes what JS gave a stream until quiche can buffer no more.
  fn write_stream(&mut self, qconn: &mut QuicheConnection, stream_id: u64) {
    let Some(stream) = self.streams.get_mut(&stream_id) else { return };
    loop {
      if stream.pending.is_none() {
        let Some(rx) = stream.from_js.as_mut() else { break };
        match rx.try_recv() {
          Ok(frame) => stream.take(Some(frame)),
          Err(mpsc::error::TryRecvError::Empty) if !stream.abandoned => {
            self.write_idle.insert(stream_id);
            break;
          },
          Err(_) => stream.take(None),
        }
        if stream.abandoned {
          // The writer went away before FIN: the peer must not wait for more.
          let _ = qconn.stream_shutdown(stream_id, quiche::Shutdown::Write, 0);
          stream.audit.set_sent_reset_stream_error_code(0);
          stream.from_js = None;
          break;
        }
        continue;
      }
      let (data, fin) = stream.pending.take().expect("checked above");
      match qconn.stream_send(stream_id, &data, fin) {
        Ok(sent) if sent == data.len() => {
          stream.audit.add_downstream_bytes_sent(sent as u64);
          if fin {
            stream.audit.set_sent_stream_fin(StreamClosureKind::Explicit);
            stream.from_js = None;
            break;
          }
        },
        Ok(sent) => {
          stream.audit.add_downstream_bytes_sent(sent as u64);
          stream.pending = Some((data.slice(sent..), fin));
          // stream_writable_next() reports it once quiche has room again.
          let _ = qconn.stream_writable(stream_id, 1);
          break;
        },
        Err(quiche::Error::Done) => {
          stream.pending = Some((data, fin));
          let _ = qconn.stream_writable(stream_id, 1);
          break;
        },
        Err(quiche::Error::StreamStopped(code)) => {
          self.writer_stopped(stream_id, code);
          break;
        },
        Err(_) => {
          // Dropping the receiver tells the JS writer the stream is closed.
          stream.from_js = None;
          break;
        },
      }
    }
    self.forget_if_done(stream_id);
  }

  /// Reads a stream into its channel to JS while that has room.
  fn read_stream(&mut self, qconn: &mut QuicheConnection, stream_id: u64) {
    let Self { streams, buf, read_blocked, .. } = self;
    let Some(stream) = streams.get_mut(&stream_id) else { return };
    let Some(to_js) = stream.to_js.as_mut() else {
      // Reading was stopped: quiche still reports what arrives; discard it.
      while qconn.stream_recv(stream_id, buf).is_ok() {}
      return;
    };
    loop {
      match to_js.poll_reserve(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) => {},
        Poll::Ready(Err(_)) => {
          // JS dropped its reader: stop the peer sending.
          let _ = qconn.stream_shutdown(stream_id, quiche::Shutdown::Read, 0);
          stream.audit.set_sent_stop_sending_error_code(0);
          stream.to_js = None;
          break;
        },
        Poll::Pending => {
          read_blocked.insert(stream_id);
          break;
        },
      }
      match qconn.stream_recv(stream_id, buf) {
        Ok((len, fin)) => {
          stream.audit.add_downstream_bytes_recvd(len as u64);
          let _ = to_js.send_item(InboundFrame::Body(BytesMut::from(&buf[..len]), fin));
          if fin {
            stream.audit.set_recvd_stream_fin(StreamClosureKind::Explicit);
            stream.to_js = None;
            break;
          }
        },
        Err(quiche::Error::Done) => {
          to_js.abort_send();
          break;
        },
        Err(e) => {
          if let quiche::Error::StreamReset(code) = e {
            stream.audit.set_recvd_reset_stream_error_code(code as i64);
          }
          to_js.abort_send();
          stream.to_js = None;
          break;
        },
      }
    }
    self.forget_if_done(stream_id);
  }
}

impl RawStream {
  /// Takes a frame from JS; `None` means its writer is gone.
  fn take(&mut self, frame: Option<OutboundFrame>) {
    match frame {
      Some(OutboundFrame::Body(data, fin)) => self.pending = Some((data, fin)),
      // Headers, trailers and the rest are H3's; body writers refuse them.
      Some(_) => {},
      None => self.abandoned = true,
    }
  }
}

impl ApplicationOverQuic for RawDriver {
  fn on_conn_established(&mut self, qconn: &mut QuicheConnection, _handshake_info: &HandshakeInfo) -> QuicResult<()> {
    let _ = self.shared.alpn.set(qconn.application_proto().to_vec());
    self.shared.max_datagram_size.store(qconn.dgram_max_writable_len().unwrap_or(0), Ordering::Relaxed);
    let _ = self.events.send(RawEvent::Established);
    Ok(())
  }

  fn should_act(&self) -> bool {
    true
  }

  async fn wait_for_data(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    // Datagrams held back by a full quiche queue go as soon as it has room.
    if self.datagram_queue.is_empty() || qconn.is_dgram_send_queue_full() {
      poll_fn(|cx| self.poll_ready(cx)).await;
    }
    self.run_commands(qconn);
    Ok(())
  }

  fn process_reads(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    while let Some(stream_id) = qconn.stream_readable_next() {
      if self.is_new_remote(stream_id) {
        if kind(stream_id) == 1 && self.unaccepted_uni >= UNACCEPTED_UNI {
          // Left unread (so uncredited) until the app takes some: `unpark`.
          self.parked_uni.push_back(stream_id);
          continue;
        }
        self.accept_remote(qconn, stream_id);
        continue;
      }
      // A parked stream is not in `streams` yet: this leaves it unread.
      self.read_stream(qconn, stream_id);
    }
    self.receive_datagrams(qconn);
    self.find_stopped_writers(qconn);
    Ok(())
  }

  fn process_writes(&mut self, qconn: &mut QuicheConnection) -> QuicResult<()> {
    self.run_commands(qconn);
    self.unpark(qconn);
    self.open_streams(qconn);
    self.send_datagrams(qconn);
    while let Some(stream_id) = qconn.stream_writable_next() {
      if self.streams.get(&stream_id).is_some_and(|s| s.pending.is_some()) {
        self.write_ready.insert(stream_id);
      }
    }
    for stream_id in std::mem::take(&mut self.write_ready) {
      self.write_stream(qconn, stream_id);
    }
    for stream_id in std::mem::take(&mut self.read_ready) {
      self.read_stream(qconn, stream_id);
    }
    Ok(())
  }
}

impl Drop for RawDriver {
  fn drop(&mut self) {
    // Streams still being read end with the connection: readers hear "closed", not FIN.
    for stream in self.streams.values().filter(|s| s.to_js.is_some()) {
      stream.audit.set_recvd_stream_fin(StreamClosureKind::Implicit);
    }
  }
}

#[cfg(test)]
mod tests {
  use super::RawDriver;

  #[test]
  fn peer_streams_are_new_once_even_out_of_order() {
    let (mut server, _handle) = RawDriver::new(true);
    assert!(!server.is_new_remote(1), "stream 1 is the server's own");
    assert!(server.is_new_remote(8), "client bidi 8 arrives first");
    assert!(server.is_new_remote(0) && server.is_new_remote(4), "the skipped ones are new when they come");
    assert!(!server.is_new_remote(4), "but only once");
    assert!(server.is_new_remote(2), "client uni streams count apart");
    assert_eq!(server.next_remote, [12, 6]);
    assert!(server.skipped_remote.is_empty());
  }

  mod props {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::super::RawDriver;

    proptest! {
      /// However a peer's stream ids arrive (any order, repeated, both
      /// kinds, ours mixed in), each of the peer's is new exactly once.
      #[test]
      fn prop_peer_streams_are_new_exactly_once(is_server in any::<bool>(), ids in proptest::collection::vec(0u64..400, 0..200)) {
        let (mut driver, _handle) = RawDriver::new(is_server);
        let mut seen = HashSet::new();
        for id in ids {
          let remote = (id & 1 == 1) != is_server;
          let new = driver.is_new_remote(id);
          prop_assert_eq!(new, remote && seen.insert(id), "stream {}", id);
        }
      }
    }
  }
}
