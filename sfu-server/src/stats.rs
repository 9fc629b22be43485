//! Process-wide counters, readable at `/healthz`. Every drop is counted somewhere here.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Monotonic counters shared by all tasks (relaxed atomics: they are statistics, not synchronization).
#[derive(Debug, Default)]
pub struct Stats {
    /// Datagrams read from the UDP socket.
    pub udp_received: AtomicU64,
    /// Bytes of the datagrams read from the UDP socket.
    pub udp_received_bytes: AtomicU64,
    /// Datagrams dropped as malformed (RFC 7983 kind or header lengths), whoever sent them.
    pub udp_malformed: AtomicU64,
    /// Datagrams dropped: unknown sender, not STUN from a new address, or a room too busy to take them.
    pub udp_dropped: AtomicU64,
    /// Datagrams a participant's WebRTC stack refused (bad DTLS/SRTP/RTP/RTCP).
    pub udp_rejected: AtomicU64,
    /// Datagrams that could not be sent (socket buffer full).
    pub udp_send_dropped: AtomicU64,
    /// ICE-TCP connections closed without being routed: no STUN check for a known
    /// ufrag as their first frame within 10 s, too many waiting for theirs, or their
    /// participant already holding its limit of connections.
    pub tcp_refused: AtomicU64,
    /// Signaling WebSockets refused at the upgrade (HTTP 503): `max_unjoined_connections`
    /// others had not joined yet.
    pub ws_refused: AtomicU64,
    /// Joins answered with a redirect to the node that owns the room (multi-node).
    pub cluster_redirects: AtomicU64,
    /// Failed Redis operations (heartbeats, placements); a join whose placement failed
    /// is served on this node.
    pub cluster_errors: AtomicU64,
    /// Node records in Redis that do not verify with the cluster secret (ignored: nothing is
    /// placed on or redirected to them).
    pub cluster_forged_records: AtomicU64,
    /// Rooms live on this node that Redis names another node as owner of (after an
    /// outage longer than the cluster TTL); their new joins go to that node.
    pub cluster_conflicts: AtomicU64,
    /// Signaling messages received.
    pub ws_messages: AtomicU64,
    /// Signaling messages refused with an `error` reply.
    pub signaling_errors: AtomicU64,
    /// Signaling messages dropped for going over `max_messages_per_second`.
    pub messages_rate_limited: AtomicU64,
    /// RTP packets forwarded to subscribers.
    pub rtp_forwarded: AtomicU64,
    /// RTP payload bytes forwarded to subscribers (before SRTP and headers).
    pub rtp_forwarded_bytes: AtomicU64,
    /// RTP packets not forwarded to a subscriber (waiting for a keyframe, paused, no codec match…).
    pub rtp_not_forwarded: AtomicU64,
    /// Times a consumer's forwarded layer changed (switch, start or pause).
    pub layer_switches: AtomicU64,
    /// Keyframe requests sent to publishers.
    pub keyframe_requests_sent: AtomicU64,
    /// Keyframe requests swallowed by the throttle.
    pub keyframe_requests_throttled: AtomicU64,
    /// Data channel messages relayed (counted once per receiving participant).
    pub data_relayed: AtomicU64,
    /// Data channel messages dropped (binary, too large, or the receiver's buffer full).
    pub data_dropped: AtomicU64,
    /// Signaling clients dropped for not reading: a message not taken within the send
    /// timeout (a full queue toward a client also removes its participant, and its
    /// blocked send is what gets counted).
    pub slow_clients_dropped: AtomicU64,
    /// Times a media thread's UDP receive loop panicked and was started again.
    pub udp_receive_restarts: AtomicU64,
    /// Room tasks that panicked: their participants were told the room closed, and the
    /// room's name, routes and resume tokens were freed for a new room.
    pub rooms_crashed: AtomicU64,
    /// NACKs received from subscribers (answered by str0m from its send buffer when it still holds the packet).
    pub nacks_from_subscribers: AtomicU64,
    /// Packets subscribers reported lost (never received, even after retransmission),
    /// from their receiver reports.
    pub packets_lost_at_subscribers: AtomicU64,
    /// PLIs received from subscribers.
    pub plis_from_subscribers: AtomicU64,
    /// FIRs received from subscribers.
    pub firs_from_subscribers: AtomicU64,
    /// NACKs sent to publishers for packets lost on their uplink.
    pub nacks_to_publishers: AtomicU64,
    /// PLIs sent to publishers.
    pub plis_to_publishers: AtomicU64,
    /// FIRs sent to publishers.
    pub firs_to_publishers: AtomicU64,
}

/// A plain snapshot of [`Stats`] for JSON output.
#[derive(Debug, Serialize)]
pub struct StatsSnapshot {
    udp_received: u64,
    udp_received_bytes: u64,
    udp_malformed: u64,
    udp_dropped: u64,
    udp_rejected: u64,
    udp_send_dropped: u64,
    tcp_refused: u64,
    ws_refused: u64,
    cluster_redirects: u64,
    cluster_errors: u64,
    cluster_forged_records: u64,
    cluster_conflicts: u64,
    ws_messages: u64,
    signaling_errors: u64,
    messages_rate_limited: u64,
    rtp_forwarded: u64,
    rtp_forwarded_bytes: u64,
    rtp_not_forwarded: u64,
    layer_switches: u64,
    keyframe_requests_sent: u64,
    keyframe_requests_throttled: u64,
    data_relayed: u64,
    data_dropped: u64,
    slow_clients_dropped: u64,
    udp_receive_restarts: u64,
    rooms_crashed: u64,
    nacks_from_subscribers: u64,
    packets_lost_at_subscribers: u64,
    plis_from_subscribers: u64,
    firs_from_subscribers: u64,
    nacks_to_publishers: u64,
    plis_to_publishers: u64,
    firs_to_publishers: u64,
}

/// Add one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Add `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl StatsSnapshot {
    /// Every counter by name, for exporters.
    pub fn counters(&self) -> Vec<(String, u64)> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map
                .into_iter()
                .filter_map(|(name, value)| Some((name, value.as_u64()?)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Stats {
    /// Read every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            udp_received: r(&self.udp_received),
            udp_received_bytes: r(&self.udp_received_bytes),
            udp_malformed: r(&self.udp_malformed),
            udp_dropped: r(&self.udp_dropped),
            udp_rejected: r(&self.udp_rejected),
            udp_send_dropped: r(&self.udp_send_dropped),
            tcp_refused: r(&self.tcp_refused),
            ws_refused: r(&self.ws_refused),
            cluster_redirects: r(&self.cluster_redirects),
            cluster_errors: r(&self.cluster_errors),
            cluster_forged_records: r(&self.cluster_forged_records),
            cluster_conflicts: r(&self.cluster_conflicts),
            ws_messages: r(&self.ws_messages),
            signaling_errors: r(&self.signaling_errors),
            messages_rate_limited: r(&self.messages_rate_limited),
            rtp_forwarded: r(&self.rtp_forwarded),
            rtp_forwarded_bytes: r(&self.rtp_forwarded_bytes),
            rtp_not_forwarded: r(&self.rtp_not_forwarded),
            layer_switches: r(&self.layer_switches),
            keyframe_requests_sent: r(&self.keyframe_requests_sent),
            keyframe_requests_throttled: r(&self.keyframe_requests_throttled),
            data_relayed: r(&self.data_relayed),
            data_dropped: r(&self.data_dropped),
            slow_clients_dropped: r(&self.slow_clients_dropped),
            udp_receive_restarts: r(&self.udp_receive_restarts),
            rooms_crashed: r(&self.rooms_crashed),
            nacks_from_subscribers: r(&self.nacks_from_subscribers),
            packets_lost_at_subscribers: r(&self.packets_lost_at_subscribers),
            plis_from_subscribers: r(&self.plis_from_subscribers),
            firs_from_subscribers: r(&self.firs_from_subscribers),
            nacks_to_publishers: r(&self.nacks_to_publishers),
            plis_to_publishers: r(&self.plis_to_publishers),
            firs_to_publishers: r(&self.firs_to_publishers),
        }
    }
}
