//! Producers (incoming tracks) and consumers (one subscriber's copy of one producer).

use sfu_core::codec::Codec;
use sfu_core::dynacast::LayerHold;
use sfu_core::forwarder::Forwarder;
use sfu_core::ids::{ParticipantId, ProducerId};

use sfu_core::monitor::LayerMonitor;
use sfu_core::negotiation::ConsumerNegotiation;
use sfu_core::throttle::KeyframeThrottle;
use signaling::{ForwardedQuality, MediaKind, Quality, Track};
use str0m::format::PayloadParams;
use str0m::media::{Mid, Pt};

use super::path_view::StreamView;

/// An incoming track and who receives it.
pub struct Producer {
    /// The protocol's track id.
    pub id: ProducerId,
    /// The publishing participant.
    pub owner: ParticipantId,
    /// The m-line it arrives on in the publisher's peer connection.
    pub mid: Mid,
    /// Audio or video.
    pub kind: MediaKind,
    /// Codec as last seen in its packets (or negotiated, before any packet).
    pub codec: Codec,
    /// Codec name for `Track.codec`.
    pub codec_name: String,
    /// Payload type and parameters of the last packet, to map onto subscribers' payload types.
    pub params: Option<(Pt, PayloadParams)>,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// Simulcast rids, in layer order (empty when not simulcast).
    pub rids: Vec<String>,
    /// Muted by its publisher.
    pub muted: bool,
    /// Muted by an operator: its packets are not forwarded.
    pub admin_muted: bool,
    /// Keyframe requests toward the publisher.
    pub throttle: KeyframeThrottle,
    /// Participants holding a consumer of it.
    pub subscribers: Vec<ParticipantId>,
    /// Which layers arrive, and their bitrates.
    pub monitor: LayerMonitor,
    /// The rids last asked of the publisher (dynacast); `None` until first decided.
    pub requested_rids: Option<Vec<String>>,
    /// Keeps unwanted layers requested for a while before pausing them.
    pub layer_hold: LayerHold,
}

impl Producer {
    /// Muted by its publisher or by an operator.
    pub fn is_muted(&self) -> bool {
        self.muted || self.admin_muted
    }

    /// The protocol's description of this track.
    pub fn track(&self) -> Track {
        Track {
            id: self.id.to_string(),
            participant_id: self.owner.to_string(),
            kind: self.kind,
            muted: self.is_muted(),
            simulcast: self.rids.clone(),
            codec: self.codec_name.clone(),
        }
    }
}

/// One subscriber's copy of one producer.
pub struct Consumer {
    /// Its track id (for the offer's `tracks` map).
    pub track_id: ProducerId,
    /// The publisher's participant id (the m-line's msid stream id).
    pub publisher_id: ParticipantId,
    /// Audio or video.
    pub kind: MediaKind,
    /// Where its m-line is in the subscriber's negotiation.
    pub negotiation: ConsumerNegotiation<Mid>,
    /// Forward-or-drop decisions and number rewriting.
    pub forwarder: Forwarder,
    /// Publisher payload type → this subscriber's payload type, for the last codec seen.
    pub pt_map: Option<(Pt, Pt)>,
    /// The highest layer the subscriber wants (`None`: paused by the subscriber).
    pub max_layer: Option<u8>,
    /// The quality last reported to the subscriber in a `quality` message.
    pub reported: Option<ForwardedQuality>,
    /// Creation order; later consumers come first when bandwidth is shared.
    pub created: u64,
    /// Its outgoing stream as the subscriber reports it.
    pub egress: StreamView,
    /// Cumulative packets lost in the subscriber's last receiver report.
    pub reported_lost: u64,
    /// Since when it has been waiting for a keyframe to start or switch a layer.
    pub keyframe_awaited_since: Option<std::time::Instant>,
}

impl Consumer {
    /// The m-line carrying it, once offered.
    pub fn mid(&self) -> Option<Mid> {
        self.negotiation.mid()
    }
}

/// The highest layer a subscriber's wish allows.
pub fn max_layer_for(quality: Quality) -> u8 {
    match quality {
        Quality::Low => 0,
        Quality::Medium => 1,
        Quality::High | Quality::Auto => 2,
    }
}

/// How a forwarded layer is named in `quality` messages.
pub fn forwarded_quality(layer: Option<u8>) -> ForwardedQuality {
    match layer {
        None => ForwardedQuality::Off,
        Some(0) => ForwardedQuality::Low,
        Some(1) => ForwardedQuality::Medium,
        Some(_) => ForwardedQuality::High,
    }
}

/// Our codec family for a str0m codec.
pub fn core_codec(codec: str0m::format::Codec) -> Codec {
    match codec {
        str0m::format::Codec::Opus => Codec::Opus,
        str0m::format::Codec::Vp8 => Codec::Vp8,
        str0m::format::Codec::H264 => Codec::H264,
        _ => Codec::Other,
    }
}
