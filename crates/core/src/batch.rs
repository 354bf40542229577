//! The event record JS receives ([`NativeH3Event`], its [`Kind`], a
//! connection's [`CloseInfo`]) and how a batch of them crosses into JS.
//!
//! Building a JS object per event costs a napi call and a key lookup per
//! field, which on small requests was most of the JS thread's time. So a
//! batch crosses flat, as `[nums, refs, audit]`, and `src-ts/batch.ts` turns
//! it back into objects in JS, where that is cheap. A batch crosses as
//! `[nums, refs, audit, start, end]`:
//!
//! - `nums[start..end]` (a `Float64Array`, see [`Numbers`]), per event: the
//!   kind's index in [`Kind`], a mask of the fields present, then each
//!   numeric field present, in the order of mask bits 0-7: streamId,
//!   readFin, isInEarlyData, numBytes, fin, id, requestId, auditIndex
//!   (booleans as 0 or 1); then, with mask bit 15, the close info's numbers
//!   (see [`close_numbers`]);
//! - `refs` (an array): each object or string field present, in the order of
//!   mask bits 8-16: headers, send, recv, flow, priority, settings, error,
//!   the close info's reason (a string or undefined), body; event after event;
//! - `audit`: the `H3AuditStats` of the batch's bodiless requests.

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{BigInt, External, ToNapiValue};
use napi::{check_status, sys};
use napi_derive::napi;
use tokio_quiche::http3::H3AuditStats;

use crate::flow::NativeDatagramFlow;
use crate::headers::JsHeaders;
use crate::stats::{audit_stats, NativeH3AuditStats};
use crate::stream::{BodyBytes, NativeBodyReader, NativeBodyWriter};

/// Event kinds; each crosses as its index here, and `src-ts/batch.ts` has
/// the same list in the same order.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
  #[default]
  Settings,
  Headers,
  NewFlow,
  ResetStream,
  ConnectionError,
  ConnectionShutdown,
  BodyBytesReceived,
  StreamClosed,
  GoAway,
  NewOutboundRequest,
  MalformedRequest,
  Closed,
  /// A raw QUIC connection's handshake is done.
  Established,
  /// A stream the peer opened on a raw QUIC connection: `send` and/or `recv`.
  NewStream,
  /// The peer sent STOP_SENDING (code in `id`) on a raw QUIC stream this side writes.
  StopSending,
}

/// Every event variant in one struct; `kind` says which fields are set.
/// It crosses flattened (`batch.rs`).
#[derive(Default)]
pub struct NativeH3Event {
  pub kind: Kind,
  pub stream_id: Option<i64>,
  /// Latin1 `name\0value\0...`, or the flat `[name, value, ...]` list when a value holds a NUL.
  pub headers: Option<JsHeaders>,
  /// The body writer of a `newOutboundRequest`; a `headers` event's writer
  /// waits in the controller (`respond`, `claimWriter`).
  pub send: Option<NativeBodyWriter>,
  /// The body reader of a `headers` event whose HEADERS did not end the
  /// stream, unless `body` is all of it.
  pub recv: Option<NativeBodyReader>,
  /// Body bytes that came with the HEADERS (`queued_body`): the whole body,
  /// FIN included, without `recv`; its first chunk with `recv`.
  pub body: Option<BodyBytes>,
  /// Where a bodiless `headers` event's `H3AuditStats` is in its batch's `audit`.
  pub audit_index: Option<u32>,
  /// The DATAGRAM flow of a `newFlow` event.
  pub flow: Option<NativeDatagramFlow>,
  pub read_fin: Option<bool>,
  /// Raw RFC 9218 priority field value from PRIORITY_UPDATE (server only).
  pub priority: Option<String>,
  pub is_in_early_data: Option<bool>,
  /// Flat `[id, value, ...]` SETTINGS pairs.
  pub settings: Option<Vec<BigInt>>,
  pub num_bytes: Option<f64>,
  pub fin: Option<bool>,
  /// GOAWAY id, a `newFlow`'s flow id, or a `stopSending`'s error code.
  pub id: Option<f64>,
  pub request_id: Option<f64>,
  /// Text of a connection error or shutdown reason.
  pub error: Option<String>,
  pub close: Option<CloseInfo>,
}

/// Why and how a connection ended, from tokio-quiche's audit stats; it
/// crosses as numbers (`batch::close_numbers`), and `src-ts/events.ts`
/// describes its fields to users.
pub struct CloseInfo {
  /// CONNECTION_CLOSE (transport) code this side sent.
  pub local_transport_code: Option<i64>,
  /// CONNECTION_CLOSE (application) code this side sent.
  pub local_application_code: Option<i64>,
  /// CONNECTION_CLOSE (transport) code the peer sent.
  pub peer_transport_code: Option<i64>,
  /// CONNECTION_CLOSE (application) code the peer sent.
  pub peer_application_code: Option<i64>,
  /// tokio-quiche's description of a local failure, if any.
  pub reason: Option<String>,
  pub sent_bytes: u64,
  pub recv_bytes: u64,
  pub lost_packets: u64,
}

/// The `H3AuditStats` of one crossing's bodiless requests.
pub struct AuditBatch(Vec<Arc<H3AuditStats>>);

/// Audit stats of bodiless requests converted since the last crossing.
#[derive(Default)]
pub struct PendingAudit(Mutex<Vec<Arc<H3AuditStats>>>);

impl PendingAudit {
  /// Queues `stats` for the next crossing; returns its index there.
  pub fn push(&self, stats: Arc<H3AuditStats>) -> u32 {
    let mut pending = self.0.lock().unwrap_or_else(|p| p.into_inner());
    pending.push(stats);
    (pending.len() - 1) as u32
  }

  pub fn take(&self) -> Option<External<AuditBatch>> {
    let pending = std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()));
    (!pending.is_empty()).then(|| External::new(AuditBatch(pending)))
  }
}

/// The stats at `index` of a batch's `audit`. A request with a body keeps
/// its stats in its reader; one without has no reader, and a JS object per
/// request just to hold its stats would cost about as much as the rest of
/// the request, so a batch's share one, alive while JS holds any of them.
#[napi(catch_unwind)]
pub fn audit_stats_at(
  #[napi(ts_arg_type = "ExternalObject<'AuditBatch'>")] batch: &External<AuditBatch>, index: u32,
) -> Option<NativeH3AuditStats> {
  batch.0.get(index as usize).map(|stats| audit_stats(stats))
}

/// One crossing's events.
pub struct EventBatch {
  pub events: Vec<NativeH3Event>,
  pub audit: Option<External<AuditBatch>>,
  /// Bookkeeping only: a listener's outbox may hold it back (outbox.rs).
  /// Does not cross.
  pub may_wait: bool,
}

/// Appends one event to `nums` and converts its object fields into `refs`.
///
/// # Safety
/// `env` must be the live env of the current napi call.
unsafe fn flatten(env: sys::napi_env, ev: NativeH3Event, nums: &mut Vec<f64>, refs: &mut Vec<sys::napi_value>) -> napi::Result<()> {
  let numeric = [
    ev.stream_id.map(|v| v as f64),
    ev.read_fin.map(f64::from),
    ev.is_in_early_data.map(f64::from),
    ev.num_bytes,
    ev.fin.map(f64::from),
    ev.id,
    ev.request_id,
    ev.audit_index.map(f64::from),
  ];
  // The mask goes before the values; its slot is filled once it is known.
  nums.push(ev.kind as u8 as f64);
  let mask_at = nums.len();
  nums.push(0.0);
  let mut mask = 0u32;
  for (bit, value) in numeric.into_iter().enumerate() {
    if let Some(value) = value {
      mask |= 1 << bit;
      nums.push(value);
    }
  }
  let close = ev.close.map(|close| {
    nums.extend(close_numbers(&close));
    close.reason
  });
  let mut bit = 8;
  let mut add = |value: Option<sys::napi_value>| {
    if let Some(value) = value {
      mask |= 1 << bit;
      refs.push(value);
    }
    bit += 1;
  };
  // SAFETY (all below): `env` is live, per this function's contract.
  add(ev.headers.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(ev.send.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(ev.recv.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(ev.flow.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(ev.priority.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(ev.settings.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(ev.error.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  add(close.map(|reason| unsafe { ToNapiValue::to_napi_value(env, reason) }).transpose()?);
  add(ev.body.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
  nums[mask_at] = f64::from(mask);
  Ok(())
}

/// A fresh JS array holding `values`.
unsafe fn js_array(env: sys::napi_env, values: &[sys::napi_value]) -> napi::Result<sys::napi_value> {
  let mut array = std::ptr::null_mut();
  // SAFETY: `env` is live (caller's contract); every value came from it.
  unsafe {
    check_status!(sys::napi_create_array_with_length(env, values.len(), &mut array))?;
    for (i, value) in values.iter().enumerate() {
      check_status!(sys::napi_set_element(env, array, i as u32, *value))?;
    }
  }
  Ok(array)
}

/// The numbers of a close info, in the order `src-ts/batch.ts` reads them:
/// the four CONNECTION_CLOSE codes (NaN when not sent), then sent bytes,
/// received bytes and lost packets. Numbers rather than an object: a napi
/// object costs a property definition per field, a visible part of the JS
/// thread's time per connection under handshake load.
pub fn close_numbers(close: &CloseInfo) -> [f64; 7] {
  let code = |c: Option<i64>| c.map_or(f64::NAN, |c| c as f64);
  [
    code(close.local_transport_code),
    code(close.local_application_code),
    code(close.peer_transport_code),
    code(close.peer_application_code),
    close.sent_bytes as f64,
    close.recv_bytes as f64,
    close.lost_packets as f64,
  ]
}

/// How many numbers the JS thread's shared array holds at first (32 KiB);
/// a crossing that needs more replaces it with a bigger one.
const SHARED_LEN: usize = 4096;

/// The JS thread's shared array: its env, a reference that keeps it alive,
/// its data and length.
type Shared = (sys::napi_env, sys::napi_ref, *mut f64, usize);

thread_local! {
  static SHARED: Cell<Option<Shared>> = const { Cell::new(None) };
}

/// Where one crossing's batches put their numbers: a `Float64Array` shared
/// by every crossing on a JS thread, rather than a fresh ArrayBuffer per
/// batch (a backing store to allocate, account for and later sweep: a few
/// microseconds a batch). Reuse is safe because JS decodes a batch before
/// its callback returns (`src-ts/controller.ts`, `deliver`), and napi
/// converts the next crossing only after that. When a crossing's numbers
/// outgrow the array, a bigger one replaces it; the crossing's earlier
/// batches keep the old one.
pub struct Numbers {
  shared: sys::napi_value,
  data: *mut f64,
  len: usize,
  used: usize,
}

impl Numbers {
  /// The shared array of `env`'s thread, if it has one yet.
  ///
  /// # Safety
  /// `env` must be the live env of the current napi call, on its JS thread.
  pub unsafe fn new(env: sys::napi_env) -> napi::Result<Self> {
    let mut numbers = Self { shared: std::ptr::null_mut(), data: std::ptr::null_mut(), len: 0, used: 0 };
    if let Some((_, reference, data, len)) = SHARED.get().filter(|(owner, ..)| *owner == env) {
      // SAFETY: the reference belongs to `env`, which is live.
      unsafe { check_status!(sys::napi_get_reference_value(env, reference, &mut numbers.shared))? };
      (numbers.data, numbers.len) = (data, len);
    }
    Ok(numbers)
  }

  /// Copies `nums` in; returns the array that holds them and where.
  ///
  /// # Safety
  /// As [`Numbers::new`], with the same `env`.
  unsafe fn put(&mut self, env: sys::napi_env, nums: &[f64]) -> napi::Result<(sys::napi_value, usize, usize)> {
    if nums.len() > self.len - self.used {
      // SAFETY: as this function's.
      unsafe { self.replace(env, nums.len().max(SHARED_LEN))? };
    }
    let start = self.used;
    // SAFETY: `data` holds `len` numbers, of which [start, start + nums.len()) are free.
    unsafe { std::ptr::copy_nonoverlapping(nums.as_ptr(), self.data.add(start), nums.len()) };
    self.used += nums.len();
    Ok((self.shared, start, self.used))
  }

  /// Makes a new shared array of `len` numbers for this thread.
  unsafe fn replace(&mut self, env: sys::napi_env, len: usize) -> napi::Result<()> {
    let mut reference = std::ptr::null_mut();
    // SAFETY: `env` is live (caller's contract). The reference keeps the
    // array, and so `data`, alive until the env is torn down or the array
    // is replaced; only this thread uses either.
    unsafe {
      (self.shared, self.data) = float64_array(env, len)?;
      check_status!(sys::napi_create_reference(env, self.shared, 1, &mut reference))?;
    }
    (self.len, self.used) = (len, 0);
    if let Some((owner, old, ..)) = SHARED.replace(Some((env, reference, self.data, len))) {
      // A reference of an env that is gone went with it.
      if owner == env {
        unsafe { check_status!(sys::napi_delete_reference(env, old))? };
      }
    }
    Ok(())
  }
}

/// A fresh `Float64Array` of `len` numbers (a plain ArrayBuffer: no
/// finalizer), and its data.
unsafe fn float64_array(env: sys::napi_env, len: usize) -> napi::Result<(sys::napi_value, *mut f64)> {
  let (mut data, mut buffer, mut array) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
  // SAFETY: `env` is live (caller's contract).
  unsafe {
    check_status!(sys::napi_create_arraybuffer(env, len * std::mem::size_of::<f64>(), &mut data, &mut buffer))?;
    check_status!(sys::napi_create_typedarray(env, sys::TypedarrayType::float64_array, len, buffer, 0, &mut array))?;
  }
  Ok((array, data.cast::<f64>()))
}

impl EventBatch {
  /// The batch as JS receives it, its numbers put in `numbers`.
  ///
  /// # Safety
  /// As [`Numbers::new`], with the env `numbers` was made for.
  pub unsafe fn into_js(self, env: sys::napi_env, numbers: &mut Numbers) -> napi::Result<sys::napi_value> {
    let mut nums = Vec::with_capacity(self.events.len() * 6);
    let mut refs = Vec::with_capacity(self.events.len() * 2);
    // SAFETY (all below): `env` is live, per this function's contract.
    for ev in self.events {
      unsafe { flatten(env, ev, &mut nums, &mut refs)? };
    }
    let audit = match self.audit {
      Some(audit) => unsafe { ToNapiValue::to_napi_value(env, audit)? },
      None => unsafe { ToNapiValue::to_napi_value(env, ())? },
    };
    let (array, start, end) = unsafe { numbers.put(env, &nums)? };
    let parts = [
      array,
      unsafe { js_array(env, &refs)? },
      audit,
      unsafe { ToNapiValue::to_napi_value(env, start as u32)? },
      unsafe { ToNapiValue::to_napi_value(env, end as u32)? },
    ];
    unsafe { js_array(env, &parts) }
  }
}

impl ToNapiValue for EventBatch {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    // SAFETY: ToNapiValue's contract is that `env` is live, on its thread.
    unsafe { val.into_js(env, &mut Numbers::new(env)?) }
  }
}

#[cfg(test)]
mod tests {
  use super::close_numbers;
  use super::CloseInfo;
  use super::Kind::{self, *};

  #[test]
  fn close_numbers_mark_codes_not_sent_with_nan() {
    let close = CloseInfo {
      local_transport_code: None,
      local_application_code: Some(0x100),
      peer_transport_code: None,
      peer_application_code: Some(0x10c),
      reason: None,
      sent_bytes: 1200,
      recv_bytes: 3400,
      lost_packets: 2,
    };
    let nums = close_numbers(&close);
    assert!(nums[0].is_nan() && nums[2].is_nan());
    assert_eq!([nums[1], nums[3], nums[4], nums[5], nums[6]], [256.0, 268.0, 1200.0, 3400.0, 2.0]);
  }

  #[test]
  fn kinds_cross_in_the_order_src_ts_decodes_them() {
    const ALL: [Kind; 15] = [
      Settings,
      Headers,
      NewFlow,
      ResetStream,
      ConnectionError,
      ConnectionShutdown,
      BodyBytesReceived,
      StreamClosed,
      GoAway,
      NewOutboundRequest,
      MalformedRequest,
      Closed,
      Established,
      NewStream,
      StopSending,
    ];
    let ts = include_str!("../../../src-ts/batch.ts");
    let list = &ts[ts.find("const KINDS = [").expect("KINDS in src-ts/batch.ts")..];
    let names: Vec<&str> = list[..list.find(']').unwrap()].split('\'').skip(1).step_by(2).collect();
    assert_eq!(names.len(), ALL.len());
    for (index, kind) in ALL.into_iter().enumerate() {
      assert_eq!(kind as usize, index);
      let debug = format!("{kind:?}");
      let camel = debug[..1].to_lowercase() + &debug[1..];
      assert_eq!(names[index], camel, "src-ts/batch.ts KINDS[{index}]");
    }
  }
}
