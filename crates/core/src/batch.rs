//! How a batch of H3 events crosses into JS.
//!
//! Building a JS object per event costs a napi call and a key lookup per
//! field, which on small requests was most of the JS thread's time. So a
//! batch crosses flat, as `[nums, refs, audit]`, and `src-ts/batch.ts` turns
//! it back into objects in JS, where that is cheap:
//!
//! - `nums` (a `Float64Array`), per event: the kind's index in [`Kind`], a
//!   mask of the fields present, then each numeric field present, in the
//!   order of mask bits 0-7: streamId, readFin, isInEarlyData, numBytes, fin,
//!   id, requestId, auditIndex (booleans as 0 or 1);
//! - `refs` (an array): each object or string field present, in the order of
//!   mask bits 8-16: headers, send, recv, flow, priority, settings, error,
//!   close, body; event after event;
//! - `audit`: the `H3AuditStats` of the batch's bodiless requests.

use std::sync::{Arc, Mutex};

use napi::bindgen_prelude::{External, ToNapiValue};
use napi::{check_status, sys};
use napi_derive::napi;
use tokio_quiche::http3::H3AuditStats;

use crate::events::NativeH3Event;
use crate::stats::{audit_stats, NativeH3AuditStats};

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
  add(ev.close.map(|v| unsafe { ToNapiValue::to_napi_value(env, v) }).transpose()?);
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

/// A `Float64Array` copied from `nums` (a plain ArrayBuffer: no finalizer).
unsafe fn float64_array(env: sys::napi_env, nums: &[f64]) -> napi::Result<sys::napi_value> {
  let bytes = std::mem::size_of_val(nums);
  let (mut data, mut buffer, mut array) = (std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut());
  // SAFETY: `env` is live (caller's contract); napi allocates `bytes`
  // bytes at `data`, which we fill before anything else can see them.
  unsafe {
    check_status!(sys::napi_create_arraybuffer(env, bytes, &mut data, &mut buffer))?;
    if bytes > 0 {
      std::ptr::copy_nonoverlapping(nums.as_ptr().cast::<u8>(), data.cast::<u8>(), bytes);
    }
    check_status!(sys::napi_create_typedarray(env, sys::TypedarrayType::float64_array, nums.len(), buffer, 0, &mut array))?;
  }
  Ok(array)
}

impl ToNapiValue for EventBatch {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    let mut nums = Vec::with_capacity(val.events.len() * 6);
    let mut refs = Vec::with_capacity(val.events.len() * 2);
    // SAFETY (all below): ToNapiValue's contract is that `env` is live.
    for ev in val.events {
      unsafe { flatten(env, ev, &mut nums, &mut refs)? };
    }
    let audit = match val.audit {
      Some(audit) => unsafe { ToNapiValue::to_napi_value(env, audit)? },
      None => unsafe { ToNapiValue::to_napi_value(env, ())? },
    };
    let parts = [unsafe { float64_array(env, &nums)? }, unsafe { js_array(env, &refs)? }, audit];
    unsafe { js_array(env, &parts) }
  }
}

#[cfg(test)]
mod tests {
  use super::Kind::{self, *};

  #[test]
  fn kinds_cross_in_the_order_src_ts_decodes_them() {
    const ALL: [Kind; 12] = [
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
