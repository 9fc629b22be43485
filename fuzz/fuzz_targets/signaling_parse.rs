//! Any text frame a client can send: parsing and validation must answer, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use signaling::{Limits, parse_client_message};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_client_message(text, &Limits::default());
    }
});
