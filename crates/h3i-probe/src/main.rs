//! `h3i-probe <host:port> <case>`: runs one h3i action list against an HTTP/3
//! server and prints h3i's `ConnectionSummary` (frames and resets received per
//! stream, how the connection closed) as one JSON line. The cases are the
//! malformed and edge-case sequences of __test__/h3i.spec.ts; `get` is a plain
//! request, to check that the server still serves after each of them.
//! `random:<seed>` is a seeded random sequence, for the fuzz test there.

use h3i::actions::h3::{send_headers_frame, send_headers_frame_literal, Action, ExpectedStreamSendResult, StreamEvent, StreamEventType, WaitType};
use h3i::client::sync_client;
use h3i::config::Config;
use h3i::quiche;
use h3i::quiche::h3::frame::Frame;
use h3i::quiche::h3::{Header, NameValue};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashSet;
use std::time::Duration;

/// The request stream every case uses.
const STREAM: u64 = 0;
/// The first client-initiated unidirectional stream, used as our control stream.
const CONTROL: u64 = 2;
/// Above the h3i spec server's maxHeaderListSize (4 KiB), and small enough for
/// h3i to send in one go (it drops what does not fit the congestion window).
const OVERSIZED: usize = 8 * 1024;
/// The follow-up request stream of the cases that check the connection still serves.
const NEXT: u64 = 4;

fn request(extra: &[(&[u8], &[u8])]) -> Vec<Header> {
  let mut headers = vec![
    Header::new(b":method", b"GET"),
    Header::new(b":scheme", b"https"),
    Header::new(b":authority", b"localhost"),
    Header::new(b":path", b"/"),
  ];
  headers.extend(extra.iter().map(|(n, v)| Header::new(n, v)));
  headers
}

fn frame(stream_id: u64, frame: Frame, fin_stream: bool) -> Action {
  Action::SendFrame { stream_id, fin_stream, frame, expected_result: ExpectedStreamSendResult::Ok }
}

fn bytes(stream_id: u64, bytes: Vec<u8>, fin_stream: bool) -> Action {
  Action::StreamBytes { stream_id, fin_stream, bytes, expected_result: ExpectedStreamSendResult::Ok }
}

fn settings() -> Frame {
  settings_with(None)
}

/// SETTINGS with no standard setting, plus `additional_settings`.
fn settings_with(additional_settings: Option<Vec<(u64, u64)>>) -> Frame {
  Frame::Settings {
    max_field_section_size: None,
    qpack_max_table_capacity: None,
    qpack_blocked_streams: None,
    connect_protocol_enabled: None,
    h3_datagram: None,
    grease: None,
    additional_settings,
    raw: None,
  }
}

/// Opens our control stream with its SETTINGS, as a real client would.
fn control_stream() -> Vec<Action> {
  vec![
    Action::OpenUniStream { stream_id: CONTROL, fin_stream: false, stream_type: h3i::HTTP3_CONTROL_STREAM_TYPE_ID, expected_result: ExpectedStreamSendResult::Ok },
    frame(CONTROL, settings(), false),
  ]
}

/// A frame as raw bytes (type, length, payload): h3i's frame actions serialize
/// into a 9,999-byte buffer, too small for the oversized case, and cannot cut
/// a frame short.
fn encode(frame: &Frame, payload_len: usize) -> Vec<u8> {
  let mut out = vec![0; payload_len + 32];
  let len = frame.to_bytes(&mut octets::OctetsMut::with_slice(&mut out)).expect("frame encodes");
  out.truncate(len);
  out
}

fn header_block(headers: &[Header]) -> Vec<u8> {
  // Room for the block's prefix even when there are no fields.
  let mut block = vec![0; 16 + headers.iter().map(|h| h.name().len() + h.value().len() + 32).sum::<usize>()];
  let len = quiche::h3::qpack::Encoder::new().encode(headers, &mut block).expect("qpack encodes");
  block.truncate(len);
  block
}

fn headers_frame(headers: &[Header]) -> Frame {
  Frame::Headers { header_block: header_block(headers) }
}

/// The case's actions; each ends by waiting for its last request stream to
/// finish (response FIN or RESET_STREAM) and closing with H3_NO_ERROR, unless
/// the server closes the connection first, which also ends h3i's run.
fn actions(case: &str) -> Option<Vec<Action>> {
  let mut out = control_stream();
  let mut last = STREAM;
  match case {
    "get" => out.push(send_headers_frame(STREAM, true, request(&[]))),
    // RFC 9114 §4.2: uppercase field names make a request malformed (§4.1.2: H3_MESSAGE_ERROR).
    "uppercase-header" => out.push(send_headers_frame_literal(STREAM, true, request(&[(b"X-Upper", b"1")]))),
    // RFC 9114 §4.3: pseudo-header fields after a regular field: malformed.
    "pseudo-after-regular" => {
      let mut headers = request(&[]);
      headers.insert(2, Header::new(b"x-regular", b"1"));
      out.push(send_headers_frame(STREAM, true, headers));
    },
    // RFC 9114 §9: unknown and reserved (0x1f * N + 0x21) frame types are ignored, on a request stream ...
    "reserved-frame-request" => {
      out.push(frame(STREAM, Frame::Unknown { raw_type: 0x21, payload: b"ignore me".to_vec() }, false));
      out.push(send_headers_frame(STREAM, true, request(&[])));
    },
    // ... and on the control stream.
    "reserved-frame-control" => {
      out.push(frame(CONTROL, Frame::Unknown { raw_type: 0x1f * 7 + 0x21, payload: b"ignore me".to_vec() }, false));
      out.push(send_headers_frame(STREAM, true, request(&[])));
    },
    // RFC 9114 §7.2.8: HTTP/2 frame types (here 0x6, PING) are H3_FRAME_UNEXPECTED.
    "http2-frame" => {
      out.push(frame(STREAM, Frame::Unknown { raw_type: 0x6, payload: vec![0; 8] }, false));
      out.push(send_headers_frame(STREAM, true, request(&[])));
    },
    // Headers bigger than the server's SETTINGS_MAX_FIELD_SECTION_SIZE.
    "oversized-headers" => {
      let value = vec![b'a'; OVERSIZED];
      out.push(bytes(STREAM, encode(&headers_frame(&request(&[(b"x-big", &value)])), OVERSIZED + 64), true));
    },
    // FIN on a request stream that carried nothing (RFC 9114 §4.1.2: an
    // incomplete request), then a real request on the same connection.
    "empty-fin" => {
      out.push(bytes(STREAM, vec![], true));
      out.push(send_headers_frame(NEXT, true, request(&[])));
      last = NEXT;
    },
    // FIN in the middle of the HEADERS frame (RFC 9114 §7.1: a truncated frame
    // is a connection error H3_FRAME_ERROR), then a real request.
    "truncated-headers-fin" => {
      let whole = encode(&headers_frame(&request(&[])), 256);
      out.push(bytes(STREAM, whole[..whole.len() / 2].to_vec(), true));
      out.push(send_headers_frame(NEXT, true, request(&[])));
      last = NEXT;
    },
    // RFC 9114 §7.2.4: a second SETTINGS is H3_FRAME_UNEXPECTED.
    "duplicate-settings" => {
      out.push(frame(CONTROL, settings(), false));
      out.push(send_headers_frame(STREAM, true, request(&[])));
    },
    _ => return None,
  }
  out.push(Action::Wait { wait_type: WaitType::StreamEvent(StreamEvent { stream_id: last, event_type: StreamEventType::Finished }) });
  out.push(close_no_error());
  Some(out)
}

/// Request streams the random sequences use.
const RANDOM_STREAMS: [u64; 4] = [0, 4, 8, 12];
/// Field names a random HEADERS frame draws from: valid, forbidden in HTTP/3,
/// malformed, and pseudo-headers in and out of place.
const FIELD_NAMES: [&[u8]; 12] =
  [b"x-a", b"X-Upper", b"", b":bogus", b"connection", b"te", b":path", b":method", b"x\0y", b"content-length", b"cookie", b":protocol"];
const FIELD_VALUES: [&[u8]; 8] = [b"1", b"", b"-1", b"99999999999999999999", b"a\r\nb", b" padded ", b"GET", b"trailers"];
/// Frame types for unknown-frame actions: HTTP/2-only types (RFC 9114 §7.2.8), reserved ones (§7.2.9), one of each kind.
const FRAME_TYPES: [u64; 6] = [0x2, 0x6, 0x8, 0x9, 0x21, 0x1f * 3 + 0x21];
/// Unidirectional stream types: a second control stream, push (a client must not), the QPACK streams, reserved, unknown.
const UNI_TYPES: [u64; 6] = [0x0, 0x1, 0x2, 0x3, 0x21, 0x7f];

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
  let mut out = vec![0; rng.random_range(0..=max)];
  rng.fill(&mut out[..]);
  out
}

fn random_headers(rng: &mut StdRng) -> Vec<Header> {
  let mut headers = if rng.random_bool(0.5) { request(&[]) } else { vec![] };
  for _ in 0..rng.random_range(0..6) {
    let name = FIELD_NAMES[rng.random_range(0..FIELD_NAMES.len())];
    let value = FIELD_VALUES[rng.random_range(0..FIELD_VALUES.len())];
    headers.insert(rng.random_range(0..=headers.len()), Header::new(name, value));
  }
  // h3i's literal encoder has no room for an empty block's prefix.
  if headers.is_empty() {
    headers.push(Header::new(b"x-a", b"1"));
  }
  headers
}

fn random_control_frame(rng: &mut StdRng) -> Frame {
  match rng.random_range(0..7) {
    // Varints stop below 2^62.
    0 => settings_with(Some(vec![(rng.random_range(0..0x40), rng.random_range(0..1 << 62))])),
    1 => Frame::GoAway { id: rng.random_range(0..64) },
    2 => Frame::MaxPushId { push_id: rng.random_range(0..64) },
    3 => Frame::CancelPush { push_id: rng.random_range(0..64) },
    4 => Frame::PriorityUpdateRequest { prioritized_element_id: RANDOM_STREAMS[rng.random_range(0..4)], priority_field_value: random_bytes(rng, 20) },
    5 => Frame::Data { payload: random_bytes(rng, 50) },
    _ => headers_frame(&request(&[])),
  }
}

/// `random:<seed>`: up to 16 actions drawn from a seeded generator. Some are
/// well formed, most are not: HEADERS with valid, forbidden and malformed
/// fields, DATA, raw bytes, truncated frames, HTTP/2 and reserved frame
/// types, PUSH_PROMISE from a client, control-stream frames (a second
/// SETTINGS, GOAWAY, MAX_PUSH_ID, DATA), new unidirectional streams of every
/// type with random bytes, RESET_STREAM and STOP_SENDING. Nothing is sent on
/// a stream after its FIN or reset, so h3i itself does not fail. Even seeds
/// start each stream with HEADERS and then keep to what mostly fails only a
/// stream (HEADERS, DATA, raw bytes, reserved frame types, resets), so that
/// more of the sequence reaches the server's streams instead of ending at the
/// first connection error. Ends after
/// 100 ms with H3_NO_ERROR, unless the server closes first.
fn random_actions(seed: u64) -> Vec<Action> {
  let mut rng = StdRng::seed_from_u64(seed);
  let stream_level = seed.is_multiple_of(2);
  let mut out = control_stream();
  let mut ended: HashSet<u64> = HashSet::new();
  let mut started: HashSet<u64> = HashSet::new();
  let mut next_uni = CONTROL + 4;
  for _ in 0..rng.random_range(1..=16) {
    let stream = RANDOM_STREAMS[rng.random_range(0..RANDOM_STREAMS.len())];
    let kind = match (stream_level, started.insert(stream)) {
      // A stream's first frame decides much of what follows: here, HEADERS.
      (true, true) => rng.random_range(0..2),
      (true, false) => [0, 1, 2, 3, 4, 8][rng.random_range(0..6)],
      (false, _) => rng.random_range(0..10),
    };
    if ended.contains(&stream) && kind != 5 && kind != 7 {
      continue;
    }
    let fin = rng.random_bool(0.3);
    match kind {
      0 => out.push(send_headers_frame(stream, fin, request(&[]))),
      1 => out.push(send_headers_frame_literal(stream, fin, random_headers(&mut rng))),
      2 => out.push(frame(stream, Frame::Data { payload: random_bytes(&mut rng, 1500) }, fin)),
      3 => out.push(bytes(stream, random_bytes(&mut rng, 200), fin)),
      4 => {
        // The last two are the reserved types.
        let raw_type = FRAME_TYPES[rng.random_range(if stream_level { 4 } else { 0 }..FRAME_TYPES.len())];
        out.push(frame(stream, Frame::Unknown { raw_type, payload: random_bytes(&mut rng, 50) }, fin));
      },
      // Our control stream never ends: a FIN there is already a case of its own.
      5 => {
        out.push(frame(CONTROL, random_control_frame(&mut rng), false));
        continue;
      },
      6 => {
        let whole = encode(&headers_frame(&random_headers(&mut rng)), 512);
        let cut = rng.random_range(0..whole.len());
        out.push(bytes(stream, whole[..cut].to_vec(), fin));
      },
      7 => {
        let stream_type = UNI_TYPES[rng.random_range(0..UNI_TYPES.len())];
        out.push(Action::OpenUniStream { stream_id: next_uni, fin_stream: false, stream_type, expected_result: ExpectedStreamSendResult::Ok });
        out.push(bytes(next_uni, random_bytes(&mut rng, 100), fin));
        next_uni += 4;
        continue;
      },
      8 => {
        let error_code = rng.random_range(0..0x200);
        out.push(if rng.random_bool(0.5) { Action::ResetStream { stream_id: stream, error_code } } else { Action::StopSending { stream_id: stream, error_code } });
        if matches!(out.last(), Some(Action::ResetStream { .. })) {
          ended.insert(stream);
        }
        continue;
      },
      _ => out.push(frame(stream, Frame::PushPromise { push_id: rng.random_range(0..8), header_block: header_block(&request(&[])) }, fin)),
    }
    if fin {
      ended.insert(stream);
    }
  }
  out.push(Action::Wait { wait_type: WaitType::WaitDuration(Duration::from_millis(100)) });
  out.push(close_no_error());
  out
}

fn close_no_error() -> Action {
  Action::ConnectionClose {
    error: quiche::ConnectionError { is_app: true, error_code: quiche::h3::WireErrorCode::NoError as u64, reason: vec![] },
  }
}

fn main() {
  env_logger::init();
  let args: Vec<String> = std::env::args().collect();
  let [_, address, case] = &args[..] else {
    eprintln!("usage: h3i-probe <host:port> <case>");
    std::process::exit(2);
  };
  let random = case.strip_prefix("random:").map(|seed| seed.parse::<u64>().map(random_actions));
  let Some(actions) = random.map(Result::ok).unwrap_or_else(|| actions(case)) else {
    eprintln!("unknown case {case}");
    std::process::exit(2);
  };
  // h3i's sync client has no CA option; the spec's server uses a throwaway
  // self-signed certificate, and this probe checks HTTP/3 behaviour, not TLS.
  let port = address.rsplit(':').next().unwrap_or_default();
  let config = Config::new()
    // SNI "localhost" (the certificate's name), sent to the address given.
    .with_host_port(format!("localhost:{port}"))
    .with_connect_to(address.clone())
    .verify_peer(false)
    .with_idle_timeout(3000)
    .build()
    .expect("h3i config");
  match sync_client::connect(config, actions, None) {
    Ok(summary) => println!("{}", serde_json::to_string(&summary).expect("summary serializes")),
    Err(err) => {
      eprintln!("h3i failed: {err:?}");
      std::process::exit(1);
    },
  }
}
