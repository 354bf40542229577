//! HTTP/3 header validation and the latin1 string form headers take in JS.
//!
//! Headers cross the boundary as a flat `[name0, value0, name1, value1, ...]`
//! list of strings whose code points are bytes (latin1). That mapping is
//! lossless in both directions and avoids one `Buffer` per header.

use std::borrow::Cow;

use napi::bindgen_prelude::ToNapiValue;
use napi::{check_status, sys};
use tokio_quiche::quiche::h3::{self, NameValue};

use crate::errors::{BindingError, BindingResult, ErrorCode};

/// Headers that RFC 9114 §4.2 forbids on HTTP/3 messages.
const CONNECTION_SPECIFIC: &[&str] = &[
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
];

/// What a header list is about to be used for; each kind has its own
/// required pseudo-headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderBlock {
  Request,
  Response,
  Trailers,
}

fn invalid(message: String) -> BindingError {
  BindingError::new(ErrorCode::InvalidHeader, message)
}

/// Decodes a latin1 string into bytes, refusing code points above U+00FF;
/// ASCII, the usual case, is its own bytes. `part` ("name" or "value") and
/// `index` name the field only if there is an error to report.
fn latin1_bytes<'a>(s: &'a str, index: usize, part: &str) -> BindingResult<Cow<'a, [u8]>> {
  if s.is_ascii() {
    return Ok(Cow::Borrowed(s.as_bytes()));
  }
  s.chars()
    .map(|c| {
      u8::try_from(u32::from(c)).map_err(|_| {
        invalid(format!(
          "headers[{index}] {part} contains the character U+{:04X}, which is not a single byte (pass bytes instead)",
          u32::from(c)
        ))
      })
    })
    .collect::<BindingResult<Vec<u8>>>()
    .map(Cow::Owned)
}

fn is_tchar(b: u8) -> bool {
  b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn check_name(name: &[u8], index: usize) -> BindingResult<()> {
  let shown = String::from_utf8_lossy(name);
  let body = name.strip_prefix(b":").unwrap_or(name);
  if body.is_empty() {
    return Err(invalid(format!("headers[{index}]: the header name is empty")));
  }
  if let Some(&b) = body.iter().find(|&&b| !is_tchar(b)) {
    return Err(invalid(format!(
      "headers[{index}]: the header name '{shown}' contains the invalid byte 0x{b:02x}"
    )));
  }
  if body.iter().any(u8::is_ascii_uppercase) {
    return Err(invalid(format!(
      "headers[{index}]: the header name '{shown}' has uppercase letters, which HTTP/3 forbids"
    )));
  }
  if CONNECTION_SPECIFIC.iter().any(|c| c.as_bytes() == name) {
    return Err(invalid(format!(
      "headers[{index}]: '{shown}' is a connection-specific header, which HTTP/3 forbids"
    )));
  }
  Ok(())
}

fn check_value(name: &[u8], value: &[u8], index: usize) -> BindingResult<()> {
  if let Some(&b) = value.iter().find(|&&b| matches!(b, 0 | b'\r' | b'\n')) {
    return Err(invalid(format!(
      "headers[{index}]: the value of '{}' contains the forbidden byte 0x{b:02x}",
      String::from_utf8_lossy(name)
    )));
  }
  if name == b"te" && value != b"trailers" {
    return Err(invalid(format!(
      "headers[{index}]: 'te' may only be 'trailers' in HTTP/3"
    )));
  }
  Ok(())
}

/// Checks the pseudo-headers a block needs and where they stand.
fn check_pseudo(headers: &[h3::Header], block: HeaderBlock) -> BindingResult<()> {
  let allowed: &[&[u8]] = match block {
    HeaderBlock::Request => &[b":method", b":scheme", b":authority", b":path", b":protocol"],
    HeaderBlock::Response => &[b":status"],
    HeaderBlock::Trailers => &[],
  };
  let mut seen_regular = false;
  for (index, h) in headers.iter().enumerate() {
    let name = h.name();
    if !name.starts_with(b":") {
      seen_regular = true;
      continue;
    }
    let shown = String::from_utf8_lossy(name);
    if !allowed.contains(&name) {
      return Err(invalid(format!(
        "headers[{index}]: the pseudo-header '{shown}' is not allowed in {block:?} headers"
      )));
    }
    if seen_regular {
      return Err(invalid(format!(
        "headers[{index}]: the pseudo-header '{shown}' must come before regular headers"
      )));
    }
    if headers[..index].iter().any(|o| o.name() == name) {
      return Err(invalid(format!("headers[{index}]: '{shown}' appears twice")));
    }
  }
  let find = |n: &[u8]| headers.iter().find(|h| h.name() == n).map(|h| h.value());
  match block {
    HeaderBlock::Response => match find(b":status") {
      Some(s) if s.len() == 3 && s.iter().all(u8::is_ascii_digit) && (b'1'..=b'5').contains(&s[0]) => Ok(()),
      Some(s) => Err(invalid(format!(
        "':status' must be a three-digit code from 100 to 599, got '{}'",
        String::from_utf8_lossy(s)
      ))),
      None => Err(invalid("response headers need a ':status'".to_string())),
    },
    HeaderBlock::Request => {
      let method = find(b":method").ok_or_else(|| invalid("request headers need a ':method'".to_string()))?;
      let is_plain_connect = method == b"CONNECT" && find(b":protocol").is_none();
      if !is_plain_connect {
        for required in [":scheme", ":path"] {
          if find(required.as_bytes()).is_none() {
            return Err(invalid(format!("request headers need a '{required}'")));
          }
        }
      }
      Ok(())
    },
    HeaderBlock::Trailers => Ok(()),
  }
}

/// Turns the flat latin1 list from JS into validated quiche headers.
pub fn headers_from_flat(flat: &[String], block: HeaderBlock) -> BindingResult<Vec<h3::Header>> {
  if !flat.len().is_multiple_of(2) {
    return Err(BindingError::new(
      ErrorCode::InvalidArg,
      "headers: expected name/value pairs",
    ));
  }
  let mut headers = Vec::with_capacity(flat.len() / 2);
  for (index, pair) in flat.chunks_exact(2).enumerate() {
    let name = latin1_bytes(&pair[0], index, "name")?;
    let value = latin1_bytes(&pair[1], index, "value")?;
    check_name(&name, index)?;
    check_value(&name, &value, index)?;
    headers.push(h3::Header::new(&name, &value));
  }
  check_pseudo(&headers, block)?;
  Ok(headers)
}

/// Checks a received header block by the rules we apply to our own: a
/// request breaking them is malformed (RFC 9114 §4.1.2), and quiche does not
/// check names, order or pseudo-headers itself.
pub fn check_received(headers: &[h3::Header], block: HeaderBlock) -> BindingResult<()> {
  for (index, h) in headers.iter().enumerate() {
    check_name(h.name(), index)?;
    check_value(h.name(), h.value(), index)?;
  }
  check_pseudo(headers, block)
}

/// Received headers on their way to JS. Usually one latin1 string,
/// `name\0value\0name\0value`: one string to create instead of two per
/// header. A block with a NUL inside (only a response can have one: a request
/// with one is malformed) goes as the flat list instead.
pub enum JsHeaders {
  Joined(Vec<u8>),
  List(Vec<String>),
}

pub fn headers_to_js(headers: &[h3::Header]) -> JsHeaders {
  if headers.iter().any(|h| h.name().contains(&0) || h.value().contains(&0)) {
    return JsHeaders::List(headers_to_flat(headers));
  }
  let mut joined = Vec::with_capacity(headers.iter().map(|h| h.name().len() + h.value().len() + 2).sum());
  for h in headers {
    if !joined.is_empty() {
      joined.push(0);
    }
    joined.extend_from_slice(h.name());
    joined.push(0);
    joined.extend_from_slice(h.value());
  }
  JsHeaders::Joined(joined)
}

impl ToNapiValue for JsHeaders {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    match val {
      JsHeaders::Joined(bytes) => {
        let mut out = std::ptr::null_mut();
        // SAFETY: `env` is live for this call (ToNapiValue's contract) and
        // `bytes` outlives it; latin1 maps every byte to one code point.
        check_status!(unsafe { sys::napi_create_string_latin1(env, bytes.as_ptr().cast(), bytes.len() as isize, &mut out) })?;
        Ok(out)
      },
      JsHeaders::List(list) => unsafe { Vec::to_napi_value(env, list) },
    }
  }
}

/// Turns received quiche headers into the flat latin1 list.
pub(crate) fn headers_to_flat(headers: &[h3::Header]) -> Vec<String> {
  let latin1 = |b: &[u8]| b.iter().map(|&c| char::from(c)).collect::<String>();
  headers
    .iter()
    .flat_map(|h| [latin1(h.name()), latin1(h.value())])
    .collect()
}

#[cfg(test)]
mod tests {
  use super::*;

  fn flat(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs.iter().flat_map(|(n, v)| [n.to_string(), v.to_string()]).collect()
  }

  fn err(pairs: &[(&str, &str)], block: HeaderBlock) -> String {
    headers_from_flat(&flat(pairs), block).unwrap_err().message
  }

  #[test]
  fn accepts_a_plain_response() {
    let h = headers_from_flat(&flat(&[(":status", "200"), ("content-type", "text/plain")]), HeaderBlock::Response).unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!(h[1].value(), b"text/plain");
  }

  #[test]
  fn round_trips_latin1_bytes() {
    let h = headers_from_flat(&flat(&[(":status", "200"), ("x-bin", "\u{ff}\u{80}a")]), HeaderBlock::Response).unwrap();
    assert_eq!(h[1].value(), &[0xff, 0x80, b'a']);
    assert_eq!(headers_to_flat(&h)[3], "\u{ff}\u{80}a");
    let JsHeaders::Joined(joined) = headers_to_js(&h) else { panic!("expected the joined form") };
    assert_eq!(joined, b":status\x00200\x00x-bin\x00\xff\x80a");
    let nul = [h3::Header::new(b":status", b"200"), h3::Header::new(b"x", b"a\x00b")];
    assert!(matches!(headers_to_js(&nul), JsHeaders::List(list) if list[3] == "a\u{0}b"));
  }

  #[test]
  fn rejects_bad_names_and_values() {
    assert!(err(&[(":status", "200"), ("Content-Type", "x")], HeaderBlock::Response).contains("uppercase"));
    assert!(err(&[(":status", "200"), ("bad name", "x")], HeaderBlock::Response).contains("invalid byte 0x20"));
    assert!(err(&[(":status", "200"), ("x", "a\r\nb")], HeaderBlock::Response).contains("0x0d"));
    assert!(err(&[(":status", "200"), ("connection", "close")], HeaderBlock::Response).contains("connection-specific"));
    assert!(err(&[(":status", "200"), ("x", "\u{100}")], HeaderBlock::Response).contains("U+0100"));
    assert!(err(&[(":status", "200"), ("", "x")], HeaderBlock::Response).contains("empty"));
  }

  #[test]
  fn received_requests_are_checked_like_sent_ones() {
    let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(n, v)| h3::Header::new(n.as_bytes(), v.as_bytes())).collect::<Vec<_>>();
    let ok = h(&[(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/"), ("accept", "*/*")]);
    assert!(check_received(&ok, HeaderBlock::Request).is_ok());
    let upper = h(&[(":method", "GET"), (":scheme", "https"), (":path", "/"), ("Accept", "*/*")]);
    assert!(check_received(&upper, HeaderBlock::Request).unwrap_err().message.contains("uppercase"));
    let late = h(&[(":method", "GET"), (":scheme", "https"), ("accept", "*/*"), (":path", "/")]);
    assert!(check_received(&late, HeaderBlock::Request).unwrap_err().message.contains("must come before"));
  }

  #[test]
  fn checks_pseudo_headers() {
    assert!(err(&[("x", "1")], HeaderBlock::Response).contains("need a ':status'"));
    assert!(err(&[(":status", "20")], HeaderBlock::Response).contains("three-digit"));
    assert!(err(&[(":status", "200"), (":path", "/")], HeaderBlock::Response).contains("not allowed"));
    assert!(err(&[("x", "1"), (":status", "200")], HeaderBlock::Response).contains("before regular"));
    assert!(err(&[(":method", "GET"), (":scheme", "https")], HeaderBlock::Request).contains("':path'"));
    assert!(err(&[(":status", "200")], HeaderBlock::Trailers).contains("not allowed"));
    assert!(headers_from_flat(&flat(&[(":method", "CONNECT"), (":authority", "a:1")]), HeaderBlock::Request).is_ok());
  }

  #[test]
  fn odd_lists_are_invalid_arguments() {
    let e = headers_from_flat(&["x".to_string()], HeaderBlock::Trailers).unwrap_err();
    assert_eq!(e.code, ErrorCode::InvalidArg);
  }

  mod props {
    use proptest::prelude::*;

    use super::super::*;

    fn block() -> impl Strategy<Value = HeaderBlock> {
      prop_oneof![Just(HeaderBlock::Request), Just(HeaderBlock::Response), Just(HeaderBlock::Trailers)]
    }

    /// Header-ish strings: plausible names and values, pseudo-headers, any latin1 byte, any Unicode.
    fn field() -> impl Strategy<Value = String> {
      prop_oneof![
        "[a-z][a-z0-9-]{0,8}",
        prop_oneof![Just(":status"), Just(":method"), Just(":path"), Just(":scheme"), Just(":authority"), Just(":protocol")].prop_map(String::from),
        "[0-9]{1,4}",
        "[\\x00-\\xff]{0,6}",
        any::<String>(),
      ]
    }

    proptest! {
      /// Whatever JS passes: no panic, and what is accepted is what a peer
      /// may receive (`check_received` agrees) and crosses back unchanged.
      #[test]
      fn prop_headers_from_flat(flat in proptest::collection::vec(field(), 0..12), block in block()) {
        if let Ok(headers) = headers_from_flat(&flat, block) {
          prop_assert!(check_received(&headers, block).is_ok());
          prop_assert_eq!(headers_to_flat(&headers), flat);
        }
      }

      /// The joined form JS splits on NUL gives back every name and value.
      #[test]
      fn prop_headers_to_js(pairs in proptest::collection::vec(("[a-z-]{1,8}", "[\\x00-\\xff]{0,8}"), 0..8)) {
        let headers: Vec<h3::Header> = pairs.iter().map(|(n, v)| h3::Header::new(n.as_bytes(), &v.chars().map(|c| c as u8).collect::<Vec<_>>())).collect();
        let flat: Vec<String> = pairs.iter().flat_map(|(n, v)| [n.clone(), v.clone()]).collect();
        match headers_to_js(&headers) {
          JsHeaders::Joined(bytes) => {
            let text: String = bytes.iter().map(|&b| char::from(b)).collect();
            let split: Vec<String> = if text.is_empty() { Vec::new() } else { text.split('\0').map(String::from).collect() };
            prop_assert_eq!(split, flat);
          },
          JsHeaders::List(list) => prop_assert_eq!(list, flat),
        }
      }
    }
  }
}
