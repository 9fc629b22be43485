//! Messages a client sends to the server.

use serde::{Deserialize, Serialize};

use crate::types::{IceCandidateInit, Quality};

fn default_true() -> bool {
    true
}

/// Every message a client may send, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Enter a room (created on first join). Must be the first message.
    Join {
        /// Room name.
        room: String,
        /// Display name.
        name: String,
        /// Join token (optional while auth is off).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        token: Option<String>,
        /// Subscribe to every track in the room automatically.
        #[serde(default = "default_true")]
        auto_subscribe: bool,
    },
    /// The client's offer (it publishes or stops publishing).
    Offer {
        /// Session description.
        sdp: String,
    },
    /// The client's answer to the server's last offer.
    Answer {
        /// Session description.
        sdp: String,
    },
    /// A trickled ICE candidate; `None` means end-of-candidates.
    Candidate {
        /// The candidate, or null; the field itself is required.
        #[serde(deserialize_with = "Option::<IceCandidateInit>::deserialize")]
        candidate: Option<IceCandidateInit>,
    },
    /// Start a subscription or change its preferences.
    Subscribe {
        /// The track to receive.
        track_id: String,
        /// The wanted quality (simulcast tracks only).
        #[serde(default)]
        quality: Quality,
        /// Keep the subscription but forward nothing.
        #[serde(default)]
        paused: bool,
    },
    /// Stop receiving a track.
    Unsubscribe {
        /// The track to stop.
        track_id: String,
    },
    /// The publisher marks its own track muted or unmuted.
    Mute {
        /// One of the sender's own tracks.
        track_id: String,
        /// Muted or not.
        muted: bool,
    },
    /// Leave the room.
    Leave,
    /// Addition: instead of `join`, take back a participant whose signaling connection was
    /// lost, within the server's grace period, with the `resume_token` of its `joined`.
    Resume {
        /// The secret from `joined`.
        resume_token: String,
    },
    /// Keepalive, answered by `pong` with the same `ts`.
    Ping {
        /// Any number, echoed back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<serde_json::Number>,
    },
}

impl ClientMessage {
    /// The `type` tags a client may send, for telling "unknown type" from other errors.
    pub const TYPES: &'static [&'static str] = &[
        "join",
        "offer",
        "answer",
        "candidate",
        "subscribe",
        "unsubscribe",
        "mute",
        "leave",
        "ping",
        "resume",
    ];

    /// The message's `type` tag, for logs and metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            ClientMessage::Join { .. } => "join",
            ClientMessage::Offer { .. } => "offer",
            ClientMessage::Answer { .. } => "answer",
            ClientMessage::Candidate { .. } => "candidate",
            ClientMessage::Subscribe { .. } => "subscribe",
            ClientMessage::Unsubscribe { .. } => "unsubscribe",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::Leave => "leave",
            ClientMessage::Ping { .. } => "ping",
            ClientMessage::Resume { .. } => "resume",
        }
    }
}
