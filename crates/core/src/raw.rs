//! A raw QUIC connection's pair: the [`RawDriver`] tokio-quiche runs and the
//! controller (with its `RawParts`) JS drives it through. Servers
//! (`server.rs`) and clients (`client.rs`) make them here alike.

use std::sync::{Arc, Mutex};

use crate::controller::{NativeH3Controller, PeerCertSlot, RawParts};
use crate::events::{raw_event, spawn_event_pump, ConnectionSlot, StreamHandles};
use crate::flow::NativeDatagramFlow;
use crate::raw_driver::{RawDriver, RawHandle};

pub fn raw_pair(is_server: bool, slot: ConnectionSlot, peer_cert: Option<PeerCertSlot>) -> (RawDriver, NativeH3Controller) {
  let (driver, handle) = RawDriver::new(is_server);
  let RawHandle { commands, events, datagram_send, datagram_recv, shared } = handle;
  let handles = StreamHandles::new(Arc::new(commands.clone()));
  let (pump_handles, pump_slot) = (handles.clone(), slot.clone());
  let datagrams = NativeDatagramFlow::with_limit(datagram_send, datagram_recv, shared.max_datagram_size.clone());
  let controller = NativeH3Controller::new(
    handles,
    Arc::default(),
    Box::new(move |deliver| {
      let convert = pump_handles.clone();
      spawn_event_pump(events, deliver, pump_slot, pump_handles, move |ev| Some(raw_event(ev, &convert)))
    }),
    slot,
    None,
    peer_cert,
  )
  .with_raw(RawParts { commands, datagrams: Mutex::new(Some(datagrams)), shared });
  (driver, controller)
}
