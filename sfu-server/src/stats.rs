//! Process-wide counters, readable at `/healthz` and exported as `sfu_<name>_total`. Every
//! drop is counted somewhere here. Each counter is declared once, in [`counters!`]: its
//! field, its snapshot, its name and its description all come from that one line.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use str0m::net::Protocol;

/// Declares the counters: the shared [`Stats`], its plain [`StatsSnapshot`], and
/// [`COUNTERS`] (each name with its description, from the doc comment).
macro_rules! counters {
    ($($(#[doc = $doc:literal])+ $name:ident,)+) => {
        /// Monotonic counters shared by all tasks (relaxed atomics: they are statistics,
        /// not synchronization).
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[doc = $doc])+ pub $name: AtomicU64,)+
        }

        /// A plain snapshot of [`Stats`], serialized as one JSON object (name → value).
        #[derive(Debug, Serialize)]
        pub struct StatsSnapshot {
            $($name: u64,)+
        }

        impl Stats {
            /// Read every counter.
            pub fn snapshot(&self) -> StatsSnapshot {
                StatsSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)+
                }
            }
        }

        impl StatsSnapshot {
            /// Every counter by name, for exporters.
            pub fn counters(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)+]
            }
        }

        /// Every counter's name and what it counts, for the exporters' descriptions.
        pub const COUNTERS: &[(&str, &str)] = &[$((stringify!($name), concat!($($doc, " "),+)),)+];
    };
}

counters! {
    /// Datagrams read from the UDP socket.
    udp_received,
    /// Bytes of the datagrams read from the UDP socket.
    udp_received_bytes,
    /// Datagrams dropped as malformed (RFC 7983 kind or header lengths), whoever sent them.
    udp_malformed,
    /// Datagrams dropped: unknown sender, not STUN from a new address, or a room too busy to take them.
    udp_dropped,
    /// Datagrams a participant's WebRTC stack refused (bad DTLS/SRTP/RTP/RTCP).
    udp_rejected,
    /// Datagrams that could not be sent (socket buffer full).
    udp_send_dropped,
    /// Frames read from ICE-TCP connections.
    tcp_received,
    /// Bytes of the frames read from ICE-TCP connections.
    tcp_received_bytes,
    /// ICE-TCP frames dropped as malformed (RFC 7983 kind or header lengths).
    tcp_malformed,
    /// ICE-TCP frames dropped: a STUN check that does not verify, or a room too busy to take them.
    tcp_dropped,
    /// ICE-TCP frames a participant's WebRTC stack refused (bad DTLS/SRTP/RTP/RTCP).
    tcp_rejected,
    /// ICE-TCP frames that could not be sent (the connection's queue full or gone, or over 65,535 bytes).
    tcp_send_dropped,
    /// ICE-TCP connections closed without being routed: no STUN check for a known
    /// ufrag as their first frame within 10 s, too many waiting for theirs, or their
    /// participant already holding its limit of connections.
    tcp_refused,
    /// Signaling WebSockets refused at the upgrade (HTTP 503): `max_unjoined_connections`
    /// others had not joined yet.
    ws_refused,
    /// Joins answered with a redirect to the node that owns the room (multi-node).
    cluster_redirects,
    /// Failed Redis operations (heartbeats, placements); a join whose placement failed
    /// is served on this node.
    cluster_errors,
    /// Distinct node records in Redis that do not verify with the cluster secret, counted
    /// when first read (ignored: nothing is placed on or redirected to them).
    cluster_forged_records,
    /// Rooms live on this node that Redis names another node as owner of (after an
    /// outage longer than the cluster TTL); their new joins go to that node.
    cluster_conflicts,
    /// Signaling messages received.
    ws_messages,
    /// Signaling messages refused with an `error` reply.
    signaling_errors,
    /// Signaling messages dropped for going over `max_messages_per_second`.
    messages_rate_limited,
    /// RTP packets forwarded to subscribers.
    rtp_forwarded,
    /// RTP payload bytes forwarded to subscribers (before SRTP and headers).
    rtp_forwarded_bytes,
    /// RTP packets not forwarded to a subscriber (waiting for a keyframe, paused, no codec match…).
    rtp_not_forwarded,
    /// RTP packets our own egress could not send: its subscriber's keys or path not known yet, or protection failed.
    egress_not_sent,
    /// Packets our own egress sent again (RTX) after a subscriber's NACK.
    egress_retransmitted,
    /// Sender reports (with SDES) our own egress sent for its streams.
    egress_sender_reports,
    /// SRTCP packets from subscribers our own egress refused (failed authentication, replayed or malformed).
    egress_feedback_rejected,
    /// TWCC feedback reports from subscribers our own egress read for its estimate.
    egress_twcc_reports,
    /// Padding packets our own egress sent as bandwidth probes.
    egress_probe_packets,
    /// Times a subscriber's downlink estimator in our own egress failed (it panicked and
    /// was switched off; its last estimate stays).
    egress_estimator_failures,
    /// Times a subscriber's downlink estimate in our own egress started again: its path
    /// changed, or its feedback came back after a silence (a path that was dead).
    egress_estimator_restarts,
    /// Times a consumer's forwarded layer changed (switch, start or pause).
    layer_switches,
    /// Keyframe requests sent to publishers.
    keyframe_requests_sent,
    /// Keyframe requests swallowed by the throttle.
    keyframe_requests_throttled,
    /// Data channel messages relayed (counted once per receiving participant).
    data_relayed,
    /// Data channel messages dropped (binary, too large, or the receiver's buffer full).
    data_dropped,
    /// Signaling clients dropped for not reading: a message not taken within the send
    /// timeout (a full queue toward a client also removes its participant, and its
    /// blocked send is what gets counted).
    slow_clients_dropped,
    /// Times a media thread's UDP receive loop panicked and was started again.
    udp_receive_restarts,
    /// Room tasks that panicked: their participants were told the room closed, and the
    /// room's name, routes and resume tokens were freed for a new room.
    rooms_crashed,
    /// NACKs received from subscribers (answered by str0m from its send buffer when it still holds the packet).
    nacks_from_subscribers,
    /// Packets subscribers reported lost (never received, even after retransmission),
    /// from their receiver reports.
    packets_lost_at_subscribers,
    /// PLIs received from subscribers.
    plis_from_subscribers,
    /// FIRs received from subscribers.
    firs_from_subscribers,
    /// NACKs sent to publishers for packets lost on their uplink.
    nacks_to_publishers,
    /// PLIs sent to publishers.
    plis_to_publishers,
    /// FIRs sent to publishers.
    firs_to_publishers,
}

impl Stats {
    /// The count of packets dropped before reaching a participant, for the transport
    /// they came over.
    pub fn dropped(&self, proto: Protocol) -> &AtomicU64 {
        match proto {
            Protocol::Udp => &self.udp_dropped,
            _ => &self.tcp_dropped,
        }
    }

    /// The count of packets a participant's WebRTC stack refused, for the transport they
    /// came over.
    pub fn rejected(&self, proto: Protocol) -> &AtomicU64 {
        match proto {
            Protocol::Udp => &self.udp_rejected,
            _ => &self.tcp_rejected,
        }
    }
}

/// Add one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Count an `error` reply sent to a client: in the total and by its code.
pub fn count_signaling_error(stats: &Stats, code: signaling::ErrorCode) {
    bump(&stats.signaling_errors);
    ::metrics::counter!(crate::metric_names::SIGNALING_ERRORS, "code" => code.as_str())
        .increment(1);
}

/// Add `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
