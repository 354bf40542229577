//! A `startH3` listener's outbox: its connections' event batches cross to
//! JS together. A batch JS must act on goes at once and takes every waiting
//! batch with it; a batch of bookkeeping only waits up to [`LINGER`] for
//! company. Under handshake load a connection's end then rides along with
//! another one's request instead of waking the JS thread on its own.

use std::sync::{Arc, Mutex, MutexGuard};

use napi::bindgen_prelude::ToNapiValue;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{check_status, sys, Status};

use crate::batch::{EventBatch, Numbers};
use crate::controller::NativeH3Controller;
use crate::crossings;
use crate::events::LINGER;

/// One batch of one connection's events; the connection's first also
/// carries its controller.
pub struct ConnectionEvents {
  pub id: u32,
  pub controller: Option<NativeH3Controller>,
  pub batch: EventBatch,
}

/// What crosses at once: `[id, controller | undefined, batch, id, ...]`,
/// flat so that several connections cost one array.
pub struct Deliveries(Vec<ConnectionEvents>);

impl ToNapiValue for Deliveries {
  unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
    let mut array = std::ptr::null_mut();
    // SAFETY (all below): ToNapiValue's contract is that `env` is live, on its thread.
    unsafe { check_status!(sys::napi_create_array_with_length(env, val.0.len() * 3, &mut array))? };
    let mut numbers = unsafe { Numbers::new(env)? };
    for (i, ConnectionEvents { id, controller, batch }) in val.0.into_iter().enumerate() {
      let values = unsafe {
        [
          ToNapiValue::to_napi_value(env, id)?,
          ToNapiValue::to_napi_value(env, controller)?,
          batch.into_js(env, &mut numbers)?,
        ]
      };
      for (j, value) in values.into_iter().enumerate() {
        unsafe { check_status!(sys::napi_set_element(env, array, (i * 3 + j) as u32, value))? };
      }
    }
    Ok(array)
  }
}

/// `startH3`'s callback: strong, like a listening socket; `null` once the
/// listener is closed.
pub type DeliveriesCallback = ThreadsafeFunction<Option<Deliveries>, (), Option<Deliveries>, Status, false>;

/// The outbox of a `startH3` listener, crossing through `callback`.
pub fn for_callback(callback: DeliveriesCallback) -> Arc<Outbox<ConnectionEvents>> {
  Outbox::new(move |deliveries| {
    crossings::into_js();
    callback.call(deliveries.map(Deliveries), ThreadsafeFunctionCallMode::NonBlocking);
  })
}

type Sink<T> = Box<dyn Fn(Option<Vec<T>>) + Send + Sync>;

/// Collects items and hands them to its sink in arrival order, several at a
/// time; `None` marks the end. Must be used inside the tokio runtime (its
/// timer is a task).
pub struct Outbox<T> {
  sink: Sink<T>,
  pending: Mutex<Pending<T>>,
}

struct Pending<T> {
  items: Vec<T>,
  /// A timer will flush what waits.
  armed: bool,
}

impl<T: Send + 'static> Outbox<T> {
  pub fn new(sink: impl Fn(Option<Vec<T>>) + Send + Sync + 'static) -> Arc<Self> {
    Arc::new(Self { sink: Box::new(sink), pending: Mutex::new(Pending { items: Vec::new(), armed: false }) })
  }

  /// Queues `item`: it goes at once, with all that waits, unless it may
  /// wait; then it goes within [`LINGER`].
  pub fn post(self: &Arc<Self>, item: T, may_wait: bool) {
    let mut pending = self.lock();
    pending.items.push(item);
    if !may_wait {
      return self.flush(&mut pending);
    }
    if !std::mem::replace(&mut pending.armed, true) {
      let outbox = self.clone();
      tokio::spawn(async move {
        tokio::time::sleep(LINGER).await;
        let mut pending = outbox.lock();
        pending.armed = false;
        outbox.flush(&mut pending);
      });
    }
  }

  /// Sends what waits, then the end.
  pub fn close(&self) {
    let mut pending = self.lock();
    self.flush(&mut pending);
    (self.sink)(None);
  }

  /// Under the lock, so that flushes keep arrival order.
  fn flush(&self, pending: &mut Pending<T>) {
    if !pending.items.is_empty() {
      (self.sink)(Some(std::mem::take(&mut pending.items)));
    }
  }

  fn lock(&self) -> MutexGuard<'_, Pending<T>> {
    self.pending.lock().unwrap_or_else(|p| p.into_inner())
  }
}

#[cfg(test)]
mod tests {
  use std::sync::{Arc, Mutex};

  use super::{Outbox, LINGER};

  /// An outbox of numbers and what its sink received.
  fn outbox() -> (Arc<Outbox<u32>>, Arc<Mutex<Vec<Option<Vec<u32>>>>>) {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let sink = sent.clone();
    (Outbox::new(move |items| sink.lock().unwrap().push(items)), sent)
  }

  #[tokio::test(start_paused = true)]
  async fn an_urgent_item_goes_at_once_and_takes_the_waiting_ones() {
    let (outbox, sent) = outbox();
    outbox.post(1, true);
    outbox.post(2, true);
    assert!(sent.lock().unwrap().is_empty(), "bookkeeping waits");
    outbox.post(3, false);
    assert_eq!(*sent.lock().unwrap(), [Some(vec![1, 2, 3])]);
    // The timer armed by 1 finds nothing left.
    tokio::time::sleep(LINGER * 2).await;
    assert_eq!(sent.lock().unwrap().len(), 1);
  }

  #[tokio::test(start_paused = true)]
  async fn waiting_items_go_within_the_linger_without_company() {
    let (outbox, sent) = outbox();
    outbox.post(1, true);
    tokio::time::sleep(LINGER / 2).await;
    outbox.post(2, true);
    assert!(sent.lock().unwrap().is_empty());
    tokio::time::sleep(LINGER / 2 + LINGER / 10).await;
    assert_eq!(*sent.lock().unwrap(), [Some(vec![1, 2])], "one timer, from the first item");
    outbox.post(3, true);
    tokio::time::sleep(LINGER * 2).await;
    assert_eq!(sent.lock().unwrap()[1], Some(vec![3]), "a later item arms it again");
  }

  #[tokio::test(start_paused = true)]
  async fn close_sends_what_waits_then_the_end() {
    let (outbox, sent) = outbox();
    outbox.post(1, true);
    outbox.close();
    assert_eq!(*sent.lock().unwrap(), [Some(vec![1]), None]);
    tokio::time::sleep(LINGER * 2).await;
    assert_eq!(sent.lock().unwrap().len(), 2, "nothing after the end");
  }
}
