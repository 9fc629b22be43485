//! Value types shared by client and server messages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// mid → track id, as carried by `offer` and `answer` messages.
pub type TrackMap = BTreeMap<String, String>;

/// The kind of media a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// An audio track.
    Audio,
    /// A video track.
    Video,
}

/// A published track as announced to other participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// The track id (`TR_…`), unique in the server.
    pub id: String,
    /// The participant publishing it.
    pub participant_id: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// Whether the publisher has muted it.
    pub muted: bool,
    /// Simulcast rids the publisher sends (empty when not simulcast).
    pub simulcast: Vec<String>,
    /// Codec name as in SDP (`VP8`, `H264`, `opus`, …).
    pub codec: String,
}

/// A participant in a room, with the tracks it publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// The participant id (`PA_…`).
    pub id: String,
    /// The display name given at join.
    pub name: String,
    /// The tracks it publishes now.
    pub tracks: Vec<Track>,
}

/// An ICE server handed to clients (the W3C `RTCIceServer` dictionary).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:` / `turn:` / `turns:` URLs.
    pub urls: Vec<String>,
    /// TURN username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// A trickled ICE candidate (the W3C `RTCIceCandidateInit` dictionary, camelCase as in browsers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceCandidateInit {
    /// The `candidate:` attribute line (empty string for end-of-candidates in some browsers).
    pub candidate: String,
    /// The mid of the m-line it belongs to.
    #[serde(rename = "sdpMid", default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The index of the m-line it belongs to.
    #[serde(
        rename = "sdpMLineIndex",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment it was gathered for.
    #[serde(
        rename = "usernameFragment",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub username_fragment: Option<String>,
}

/// The quality a subscriber asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// The `q` simulcast layer.
    Low,
    /// The `h` simulcast layer.
    Medium,
    /// The `f` simulcast layer.
    High,
    /// The best layer bandwidth allows.
    #[default]
    Auto,
}

/// The quality actually forwarded to a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardedQuality {
    /// The `q` simulcast layer.
    Low,
    /// The `h` simulcast layer.
    Medium,
    /// The `f` simulcast layer.
    High,
    /// Nothing is forwarded (paused, or not enough bandwidth).
    Off,
}

/// One entry of the `speakers` list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    /// The speaking participant.
    pub participant_id: String,
    /// Smoothed audio level, 0.0 (silence) to 1.0 (loudest).
    pub level: f32,
}
