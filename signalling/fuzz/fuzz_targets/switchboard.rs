//! Random sessions against the switchboard with the invariant checker
//! watching (see signalling::sim): no request lost or duplicated, no call
//! with two clinicians, no relay outside a call.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ops = signalling::sim::ops_from_bytes(data);
    if let Err(broken) = signalling::sim::run(&ops) {
        panic!("{broken}\nops: {ops:?}");
    }
});
