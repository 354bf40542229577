//! `h3i-probe <host:port> <case>`: runs one h3i action list against an HTTP/3
//! server and prints h3i's `ConnectionSummary` (frames and resets received per
//! stream, how the connection closed) as one JSON line. The cases are the
//! malformed and edge-case sequences of __test__/h3i.spec.ts; `get` is a plain
//! request, to check that the server still serves after each of them.

use h3i::actions::h3::{send_headers_frame, send_headers_frame_literal, Action, ExpectedStreamSendResult, StreamEvent, StreamEventType, WaitType};
use h3i::client::sync_client;
use h3i::config::Config;
use h3i::quiche;
use h3i::quiche::h3::frame::Frame;
use h3i::quiche::h3::{Header, NameValue};

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
  Frame::Settings {
    max_field_section_size: None,
    qpack_max_table_capacity: None,
    qpack_blocked_streams: None,
    connect_protocol_enabled: None,
    h3_datagram: None,
    grease: None,
    additional_settings: None,
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

fn headers_frame(headers: &[Header]) -> Frame {
  let mut block = vec![0; headers.iter().map(|h| h.name().len() + h.value().len() + 32).sum()];
  let len = quiche::h3::qpack::Encoder::new().encode(headers, &mut block).expect("qpack encodes");
  block.truncate(len);
  Frame::Headers { header_block: block }
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
  out.push(Action::ConnectionClose {
    error: quiche::ConnectionError { is_app: true, error_code: quiche::h3::WireErrorCode::NoError as u64, reason: vec![] },
  });
  Some(out)
}

fn main() {
  env_logger::init();
  let args: Vec<String> = std::env::args().collect();
  let [_, address, case] = &args[..] else {
    eprintln!("usage: h3i-probe <host:port> <case>");
    std::process::exit(2);
  };
  let Some(actions) = actions(case) else {
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
