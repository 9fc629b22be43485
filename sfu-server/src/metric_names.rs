//! The names of the Prometheus series recorded where things happen (rooms, sessions), so
//! that the code recording them needs nothing of the exporter in `metrics`.

/// Join: from the `join` message to ICE and DTLS connected.
pub const JOIN_SECONDS: &str = "sfu_join_seconds";
/// Inside the SFU: from a packet's receipt to its last copy handed to the socket.
pub const FORWARDING_SECONDS: &str = "sfu_forwarding_seconds";
/// Consumers: from waiting for a layer's keyframe to forwarding it.
pub const KEYFRAME_WAIT_SECONDS: &str = "sfu_keyframe_wait_seconds";
/// Signaling errors sent, by code.
pub const SIGNALING_ERRORS: &str = "sfu_signaling_errors_by_code_total";
/// Participants removed because their media path failed, by reason.
pub const CONNECTION_FAILURES: &str = "sfu_connection_failures_total";
/// The reasons of [`CONNECTION_FAILURES`].
pub const CONNECTION_FAILURE_REASONS: [&str; 5] = [
    "signaling_lost",
    "ice_connect_timeout",
    "media_path_lost",
    "peer_connection_closed",
    "rtc_error",
];
