//! Typed errors surfaced to JavaScript.
//!
//! Every error that crosses into JS carries a stable `code` (the napi status
//! string), so the TS layer can map it onto its error classes without parsing
//! messages.

use std::fmt::Display;

/// Stable error codes; `src-ts/errors.ts` lists them (plus ERR_STREAM_RESET, raised in TS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
  /// An option or argument has the wrong type or range.
  InvalidArg,
  /// An address or port that cannot be parsed or bound.
  InvalidAddress,
  /// A certificate, key or CA that is missing or malformed.
  TlsCert,
  /// A header name or value that HTTP/3 forbids.
  InvalidHeader,
  /// A frame sent after the stream's FIN.
  StreamFinished,
  /// The stream can no longer be written (peer STOP_SENDING, reset, closed connection).
  StreamClosed,
  /// An object used after `close()`.
  Closed,
  /// The QUIC handshake did not complete.
  Connect,
  /// Binding or configuring a listening socket failed.
  Listen,
  /// A bug: a Rust panic or a broken invariant, caught before it reached Node.
  Internal,
}

impl ErrorCode {
  pub fn as_str(self) -> &'static str {
    match self {
      ErrorCode::InvalidArg => "ERR_INVALID_ARG",
      ErrorCode::InvalidAddress => "ERR_INVALID_ADDRESS",
      ErrorCode::TlsCert => "ERR_TLS_CERT",
      ErrorCode::InvalidHeader => "ERR_INVALID_HEADER",
      ErrorCode::StreamFinished => "ERR_STREAM_FINISHED",
      ErrorCode::StreamClosed => "ERR_STREAM_CLOSED",
      ErrorCode::Closed => "ERR_CLOSED",
      ErrorCode::Connect => "ERR_CONNECT",
      ErrorCode::Listen => "ERR_LISTEN",
      ErrorCode::Internal => "ERR_INTERNAL",
    }
  }
}

impl AsRef<str> for ErrorCode {
  fn as_ref(&self) -> &str {
    self.as_str()
  }
}

/// A plain-Rust error with a code; converted to a napi error at the boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingError {
  pub code: ErrorCode,
  pub message: String,
}

impl BindingError {
  pub fn new(code: ErrorCode, message: impl Display) -> Self {
    Self {
      code,
      message: message.to_string(),
    }
  }
}

impl Display for BindingError {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    write!(f, "{}: {}", self.code.as_str(), self.message)
  }
}

impl std::error::Error for BindingError {}

impl From<BindingError> for napi::Error<ErrorCode> {
  fn from(err: BindingError) -> Self {
    napi::Error::new(err.code, err.message)
  }
}

pub type BindingResult<T> = std::result::Result<T, BindingError>;

/// The result type of every napi export: the JS error's `code` is the [`ErrorCode`].
pub type Result<T> = napi::Result<T, ErrorCode>;

/// Shorthand used by the napi glue.
pub fn js_error(code: ErrorCode, message: impl Display) -> napi::Error<ErrorCode> {
  napi::Error::new(code, message)
}

/// napi-rs only rejects promises with `Status` errors, so a rejected
/// promise carries its code as a `[ERR_X] ` message prefix, which
/// `src-ts/errors.ts` turns back into `code`.
pub fn for_promise(err: napi::Error<ErrorCode>) -> napi::Error {
  napi::Error::new(napi::Status::GenericFailure, format!("[{}] {}", err.status.as_str(), err.reason))
}

/// Maps a failure of napi itself (not of the caller's input) to an internal error.
pub fn napi_failure(err: napi::Error) -> napi::Error<ErrorCode> {
  napi::Error::new(ErrorCode::Internal, err.reason)
}
