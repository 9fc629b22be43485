//! Any `join.token`: verification must refuse or accept, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = signaling::token::verify(token, b"fuzz-secret-0123456789abcdef0123", 1_000);
    }
});
