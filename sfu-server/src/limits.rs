//! One counter for the limits this server enforces per participant or client, labelled by
//! limit, so an operator sees which one clients run into (`sfu_limits_hit_total{limit}`).

/// Times a limit refused or dropped something, by `limit`.
pub const LIMITS_HIT: &str = "sfu_limits_hit_total";

/// A limit, as its label spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_offers_per_second`: a client offer refused with `rate_limited`.
    OffersPerSecond,
    /// `max_tracks_per_participant`: an offer refused with `too_large`.
    TracksPerParticipant,
    /// `max_tracks_per_room`: an offer refused with `room_full`.
    TracksPerRoom,
    /// Three simulcast layers or six SSRCs per track: an offer refused with `too_large`.
    StreamsPerTrack,
    /// A server offer that would be larger than a client may answer (`max_sdp_bytes`): the
    /// tracks that did not fit were not offered, and the subscriber was told.
    ServerOfferSize,
    /// `max_http_connections`: a connection closed as soon as accepted.
    HttpConnections,
    /// `max_http_connections_per_ip`: a connection closed as soon as accepted.
    HttpConnectionsPerIp,
    /// `max_unjoined_connections_per_ip`: a signaling upgrade refused with HTTP 503.
    UnjoinedPerIp,
    /// A signaling socket that sent more than it may before joining: `too_large`, closed.
    BytesBeforeJoin,
    /// A frame over the WebSocket read limit: `too_large`, closed.
    FrameSize,
    /// `max_data_messages_per_second`: a data channel message not relayed.
    DataMessagesPerSecond,
    /// An HTTP request whose headers did not arrive within 10 s: the connection closed.
    HeaderTimeout,
}

impl Limit {
    /// Every limit, for registering the series at zero.
    pub const ALL: [Limit; 12] = [
        Limit::OffersPerSecond,
        Limit::TracksPerParticipant,
        Limit::TracksPerRoom,
        Limit::StreamsPerTrack,
        Limit::ServerOfferSize,
        Limit::HttpConnections,
        Limit::HttpConnectionsPerIp,
        Limit::UnjoinedPerIp,
        Limit::BytesBeforeJoin,
        Limit::FrameSize,
        Limit::DataMessagesPerSecond,
        Limit::HeaderTimeout,
    ];

    /// Its label value.
    pub fn label(self) -> &'static str {
        match self {
            Limit::OffersPerSecond => "offers_per_second",
            Limit::TracksPerParticipant => "tracks_per_participant",
            Limit::TracksPerRoom => "tracks_per_room",
            Limit::StreamsPerTrack => "streams_per_track",
            Limit::ServerOfferSize => "server_offer_size",
            Limit::HttpConnections => "http_connections",
            Limit::HttpConnectionsPerIp => "http_connections_per_ip",
            Limit::UnjoinedPerIp => "unjoined_connections_per_ip",
            Limit::BytesBeforeJoin => "bytes_before_join",
            Limit::FrameSize => "frame_size",
            Limit::DataMessagesPerSecond => "data_messages_per_second",
            Limit::HeaderTimeout => "header_timeout",
        }
    }
}

/// Count one hit of `limit`.
pub fn hit(limit: Limit) {
    ::metrics::counter!(LIMITS_HIT, "limit" => limit.label()).increment(1);
}
