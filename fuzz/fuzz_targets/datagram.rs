//! Any datagram on the media port: the structural check must never panic, and what it
//! accepts as STUN must have the length its header says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfu_core::datagram::{DatagramKind, classify};

fuzz_target!(|data: &[u8]| {
    if classify(data) == Ok(DatagramKind::Stun) {
        assert_eq!(usize::from(u16::from_be_bytes([data[2], data[3]])) + 20, data.len());
    }
});
