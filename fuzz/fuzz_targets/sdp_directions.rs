//! Any offer SDP text: counting the sections it sends on must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sdp = String::from_utf8_lossy(data);
    let sending = sfu_core::sdp::sending_media_sections(&sdp);
    assert_eq!(sfu_core::sdp::sends_media(&sdp), sending > 0);
});
