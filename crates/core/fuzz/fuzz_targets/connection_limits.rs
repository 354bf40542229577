#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tokio_quiche_node::fuzzing::connection_limits(data));
