//! Messages the server sends to a client.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, Refused};
use crate::types::{
    ForwardedQuality, IceCandidateInit, IceServer, Participant, Speaker, Track, TrackMap,
};

/// Why the server ends a session (`leave.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// Removed by an operator.
    Kicked,
    /// The room was closed.
    RoomClosed,
    /// The server is shutting down.
    Shutdown,
    /// The client or its media path stopped responding.
    Timeout,
    /// Addition: another connection resumed this participant; this one is no longer its.
    Replaced,
}

/// Every message the server may send, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join was accepted.
    Joined {
        /// The id given to this participant.
        participant_id: String,
        /// The room joined.
        room: String,
        /// The others already in the room.
        participants: Vec<Participant>,
        /// ICE servers for the client's peer connection.
        ice_servers: Vec<IceServer>,
        /// Addition: the secret for `resume` after a lost connection (absent from servers
        /// that do not offer resuming).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume_token: Option<String>,
    },
    /// Someone entered the room.
    ParticipantJoined {
        /// Who.
        participant: Participant,
    },
    /// Someone left the room; their tracks are gone too.
    ParticipantLeft {
        /// Who.
        participant_id: String,
    },
    /// A track became available.
    TrackPublished {
        /// The track.
        track: Track,
    },
    /// A track is gone.
    TrackUnpublished {
        /// Its id.
        track_id: String,
    },
    /// A publisher muted or unmuted a track.
    TrackMuted {
        /// The track.
        track_id: String,
        /// Muted or not.
        muted: bool,
    },
    /// The server's offer; the client answers it.
    Offer {
        /// Session description.
        sdp: String,
        /// mid → track id for every sending m-line.
        tracks: TrackMap,
    },
    /// The server's answer to the client's offer.
    Answer {
        /// Session description.
        sdp: String,
        /// mid → track id for each track the client publishes.
        tracks: TrackMap,
    },
    /// A trickled ICE candidate; `None` means end-of-candidates.
    Candidate {
        /// The candidate, or null.
        candidate: Option<IceCandidateInit>,
    },
    /// The layer forwarded to this subscriber changed.
    Quality {
        /// The track.
        track_id: String,
        /// What is forwarded now.
        quality: ForwardedQuality,
    },
    /// Dynacast: the simulcast layers of one of the client's own tracks that someone
    /// receives; the client sends exactly these (`RTCRtpSender.setParameters` `active`).
    Layers {
        /// One of the client's published tracks.
        track_id: String,
        /// The rids to send; the others may be paused.
        rids: Vec<String>,
    },
    /// The active speakers changed.
    Speakers {
        /// Loudest first.
        speakers: Vec<Speaker>,
    },
    /// Something the client sent was refused.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// The message refused, when the client waits for a reply to it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refused: Option<Refused>,
    },
    /// Reply to `ping`.
    Pong {
        /// The `ts` of the ping.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ts: Option<serde_json::Number>,
    },
    /// The server ends the session; the socket closes after it.
    Leave {
        /// Why.
        reason: LeaveReason,
    },
    /// Addition (multi-node): the room lives on another node; join it at `url` instead.
    /// Sent in reply to `join`; the socket closes after it.
    Redirect {
        /// The signaling WebSocket URL of the node that owns the room.
        url: String,
        /// The room asked for.
        room: String,
    },
}

impl ServerMessage {
    /// Build an `error` message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            refused: None,
        }
    }

    /// Build the `error` refusing the client's `offer`, which will not be answered.
    pub fn offer_refused(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerMessage::Error {
            code,
            message: message.into(),
            refused: Some(Refused::Offer),
        }
    }

    /// Serialize to the JSON text of one WebSocket frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs (string keys, no maps with non-string keys,
        // finite numbers only) cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"serialization failed"}"#.to_owned()
        })
    }
}
