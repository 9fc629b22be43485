//! Any offer SDP text: reading its BUNDLE mids never panics, and every mid read is a word of
//! an `a=group:BUNDLE` line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|sdp: &str| {
    for mid in sfu_core::sdp::bundle_mids(sdp) {
        assert!(!mid.is_empty() && !mid.contains(char::is_whitespace));
        assert!(sdp.lines().any(|l| l.starts_with("a=group:BUNDLE") && l.contains(mid)));
    }
});
