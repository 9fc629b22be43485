//! A producer: an incoming track, the layers it arrives in and who receives it.

use std::time::{Duration, Instant};

use sfu_core::codec::Codec;
use sfu_core::dynacast::{LayerHold, wanted_layers};
use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::layers::LayerSet;
use sfu_core::monitor::LayerMonitor;
use sfu_core::retransmission::PayloadHistory;
use sfu_core::rids::{layer_of, layers_of, nearest_layer, rid_of};
use sfu_core::throttle::KeyframeThrottle;
use signaling::{MediaKind, Track};
use str0m::format::{CodecSpec, PayloadParams};
use str0m::media::{KeyframeRequestKind, Mid, Pt, Rid};

/// A simulcast layer nobody wants is paused at the publisher after this long.
const DYNACAST_PAUSE_AFTER: Duration = Duration::from_secs(5);
/// A simulcast layer with no packet for this long is no longer chosen.
const LAYER_INACTIVE_AFTER: Duration = Duration::from_millis(1000);

/// An incoming track and who receives it.
pub struct Producer {
    id: ProducerId,
    owner: ParticipantId,
    /// The m-line it arrives on in the publisher's peer connection.
    mid: Mid,
    kind: MediaKind,
    /// Codec as last seen in its packets (or negotiated, before any packet).
    codec: Codec,
    /// Codec name for `Track.codec`.
    codec_name: String,
    /// Payload type and parameters of the last packet, to map onto subscribers' payload types.
    params: Option<(Pt, PayloadParams)>,
    clock_rate: u32,
    /// Simulcast rids, in layer order (empty when not simulcast).
    rids: Vec<String>,
    muted: bool,
    admin_muted: bool,
    /// Keyframe requests toward the publisher.
    throttle: KeyframeThrottle,
    /// Participants holding a consumer of it.
    subscribers: Vec<ParticipantId>,
    /// Which layers arrive, and their bitrates.
    monitor: LayerMonitor,
    /// The rids last asked of the publisher (dynacast); `None` until first decided.
    requested_rids: Option<Vec<String>>,
    /// Keeps unwanted layers requested for a while before pausing them.
    layer_hold: LayerHold,
    /// Its latest payloads, for our own egress to retransmit (kept once it is asked to).
    history: Option<PayloadHistory>,
}

/// Payloads a video producer keeps for retransmissions: about a second of a simulcast
/// publisher's three layers.
const HISTORY_PACKETS: usize = 1024;

/// What a mute request changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuteChange {
    /// It was set that way already.
    Unchanged,
    /// The setting changed, but the track is muted (or not) as before: the other party
    /// holds it muted.
    SettingOnly,
    /// Whether the track is muted changed to this.
    Visible(bool),
}

/// A keyframe request to send to the publisher, on one layer's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyframeAsk {
    /// The m-line of the track in the publisher's connection.
    pub mid: Mid,
    /// The layer's rid (none when not simulcast).
    pub rid: Option<Rid>,
    /// FIR where the publisher negotiated it, else PLI.
    pub kind: KeyframeRequestKind,
}

/// Why no keyframe request goes out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled;

impl Producer {
    /// A track `owner` publishes on `mid`, with the codec its m-line negotiated (Opus or VP8
    /// until a packet says otherwise) and at most one keyframe request per layer per
    /// `keyframe_interval`.
    pub fn new(
        id: ProducerId,
        owner: ParticipantId,
        mid: Mid,
        kind: MediaKind,
        negotiated: Option<CodecSpec>,
        rids: Vec<String>,
        keyframe_interval: Duration,
    ) -> Self {
        let (codec, codec_name, clock_rate) = match negotiated {
            Some(spec) => (
                core_codec(spec.codec),
                spec.codec.to_string(),
                spec.clock_rate.get(),
            ),
            None if kind == MediaKind::Audio => (Codec::Opus, "opus".into(), 48_000),
            None => (Codec::Vp8, "VP8".into(), 90_000),
        };
        Self {
            id,
            owner,
            mid,
            kind,
            codec,
            codec_name,
            params: None,
            clock_rate,
            rids,
            muted: false,
            admin_muted: false,
            throttle: KeyframeThrottle::new(keyframe_interval),
            subscribers: Vec::new(),
            monitor: LayerMonitor::new(LAYER_INACTIVE_AFTER),
            requested_rids: None,
            layer_hold: LayerHold::new(DYNACAST_PAUSE_AFTER),
            history: None,
        }
    }

    /// Its track id.
    pub fn id(&self) -> ProducerId {
        self.id
    }

    /// The publishing participant.
    pub fn owner(&self) -> ParticipantId {
        self.owner
    }

    /// The m-line it arrives on in the publisher's peer connection.
    pub fn mid(&self) -> Mid {
        self.mid
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Codec family of its packets.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Codec name, as in `Track.codec`.
    pub fn codec_name(&self) -> &str {
        &self.codec_name
    }

    /// RTP clock rate.
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Simulcast rids, in layer order (empty when not simulcast).
    pub fn rids(&self) -> &[String] {
        &self.rids
    }

    /// Whether it arrives in simulcast layers.
    pub fn is_simulcast(&self) -> bool {
        !self.rids.is_empty()
    }

    /// Its layers, lowest first (`[0]` when not simulcast).
    pub fn layers(&self) -> Vec<u8> {
        layers_of(&self.rids)
    }

    /// The layer a packet with this rid belongs to.
    pub fn layer_of(&self, rid: Option<&str>) -> u8 {
        layer_of(rid, &self.rids)
    }

    /// The rid of a layer (none when not simulcast).
    pub fn rid_of(&self, layer: u8) -> Option<&str> {
        rid_of(layer, &self.rids)
    }

    /// The lowest layer it is published in.
    pub fn lowest_layer(&self) -> u8 {
        nearest_layer(0, &self.rids)
    }

    /// Payload type and parameters of its last packet.
    pub fn params(&self) -> Option<&(Pt, PayloadParams)> {
        self.params.as_ref()
    }

    /// Whether its packets with payload type `pt` were already seen.
    pub fn knows_payload_type(&self, pt: Pt) -> bool {
        self.params.as_ref().is_some_and(|(known, _)| *known == pt)
    }

    /// Its packets now carry payload type `pt` with these parameters.
    pub fn set_payload(&mut self, pt: Pt, params: PayloadParams) {
        let spec = params.spec();
        self.codec = core_codec(spec.codec);
        self.codec_name = spec.codec.to_string();
        self.clock_rate = spec.clock_rate.get();
        self.params = Some((pt, params));
    }

    /// Muted by its publisher or by an operator.
    pub fn is_muted(&self) -> bool {
        self.muted || self.admin_muted
    }

    /// Muted by an operator: its packets are not forwarded.
    pub fn is_admin_muted(&self) -> bool {
        self.admin_muted
    }

    /// Its publisher mutes or unmutes it.
    pub fn set_publisher_muted(&mut self, muted: bool) -> MuteChange {
        let was = self.is_muted();
        if std::mem::replace(&mut self.muted, muted) == muted {
            return MuteChange::Unchanged;
        }
        self.mute_change(was)
    }

    /// An operator mutes or unmutes it.
    pub fn set_admin_muted(&mut self, muted: bool) -> MuteChange {
        let was = self.is_muted();
        if std::mem::replace(&mut self.admin_muted, muted) == muted {
            return MuteChange::Unchanged;
        }
        self.mute_change(was)
    }

    fn mute_change(&self, was: bool) -> MuteChange {
        match self.is_muted() {
            now if now != was => MuteChange::Visible(now),
            _ => MuteChange::SettingOnly,
        }
    }

    /// A packet of `layer` arrived.
    pub fn on_packet(&mut self, layer: u8, bytes: usize, now: Instant) {
        self.monitor.on_packet(layer, bytes, now);
    }

    /// Keep `payload` for retransmissions; returns its id in [`Self::history`].
    pub fn remember(&mut self, payload: &[u8]) -> u64 {
        self.history
            .get_or_insert_with(|| PayloadHistory::new(HISTORY_PACKETS))
            .push(payload)
    }

    /// Its latest payloads, once it remembers any.
    pub fn history(&self) -> Option<&PayloadHistory> {
        self.history.as_ref()
    }

    /// The layers whose packets arrived within the last second.
    pub fn active_layers(&self, now: Instant) -> LayerSet {
        self.monitor.active(now)
    }

    /// The layers a consumer may be given: the active ones, or layer 0 of a track that is
    /// not simulcast (it has no other to fall back on).
    pub fn selectable_layers(&self, now: Instant) -> LayerSet {
        if self.is_simulcast() {
            self.active_layers(now)
        } else {
            LayerSet::of(&[0])
        }
    }

    /// Measured bitrate per layer, bits per second.
    pub fn bitrates(&self) -> [u64; sfu_core::layers::LAYER_COUNT] {
        self.monitor.bitrates()
    }

    /// The keyframe request to send for `layer`, unless one went out too recently.
    pub fn keyframe_request(
        &mut self,
        layer: u8,
        kind: KeyframeRequestKind,
        now: Instant,
    ) -> Result<KeyframeAsk, Throttled> {
        let fir_negotiated = self
            .params
            .as_ref()
            .is_some_and(|(_, params)| params.fb_fir());
        let kind = match kind {
            KeyframeRequestKind::Fir if fir_negotiated => KeyframeRequestKind::Fir,
            _ => KeyframeRequestKind::Pli,
        };
        if !self.throttle.try_request(layer, now) {
            return Err(Throttled);
        }
        Ok(KeyframeAsk {
            mid: self.mid,
            rid: self.rid_of(layer).map(Rid::from),
            kind,
        })
    }

    /// Participants holding a consumer of it.
    pub fn subscribers(&self) -> &[ParticipantId] {
        &self.subscribers
    }

    /// `subscriber` receives it (once, however often it subscribes).
    pub fn add_subscriber(&mut self, subscriber: ParticipantId) {
        if !self.subscribers.contains(&subscriber) {
            self.subscribers.push(subscriber);
        }
    }

    /// `subscriber` no longer receives it.
    pub fn remove_subscriber(&mut self, subscriber: ParticipantId) {
        self.subscribers.retain(|s| *s != subscriber);
    }

    /// Dynacast: the rids to ask of the publisher, when they differ from those asked last.
    /// `consumer_layers` are the layers its consumers wish for or are forwarded now;
    /// layers nobody wants stay requested for a hold time before they are paused.
    pub fn dynacast(
        &mut self,
        consumer_layers: impl IntoIterator<Item = u8>,
        now: Instant,
    ) -> Option<Vec<String>> {
        if !self.is_simulcast() {
            return None;
        }
        let wanted = wanted_layers(&self.rids, consumer_layers);
        let rids: Vec<String> = self
            .layer_hold
            .update(wanted, now)
            .iter()
            .filter_map(|l| rid_of(l, &self.rids).map(str::to_owned))
            .collect();
        if self.requested_rids.as_ref() == Some(&rids) {
            return None;
        }
        self.requested_rids = Some(rids.clone());
        Some(rids)
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

/// Our codec family for a str0m codec.
fn core_codec(codec: str0m::format::Codec) -> Codec {
    match codec {
        str0m::format::Codec::Opus => Codec::Opus,
        str0m::format::Codec::Vp8 => Codec::Vp8,
        str0m::format::Codec::H264 => Codec::H264,
        _ => Codec::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn simulcast_video() -> Producer {
        Producer::new(
            ProducerId::new(3),
            ParticipantId::new(1),
            Mid::from("1"),
            MediaKind::Video,
            None,
            ["q", "h", "f"].map(String::from).to_vec(),
            Duration::from_millis(500),
        )
    }

    #[test]
    fn mutes_by_publisher_and_operator_combine() {
        use MuteChange::*;
        let mut producer = simulcast_video();
        let steps: [(&str, bool, MuteChange, bool); 6] = [
            ("publisher", true, Visible(true), true),
            ("operator", true, SettingOnly, true),
            ("publisher", false, SettingOnly, true),
            ("publisher", false, Unchanged, true),
            ("operator", false, Visible(false), false),
            ("operator", false, Unchanged, false),
        ];
        for (who, muted, change, now_muted) in steps {
            let got = match who {
                "publisher" => producer.set_publisher_muted(muted),
                _ => producer.set_admin_muted(muted),
            };
            assert_eq!(got, change, "{who} muted={muted}");
            assert_eq!(producer.is_muted(), now_muted, "{who} muted={muted}");
            assert_eq!(producer.track().muted, now_muted);
        }
    }

    #[test]
    fn keyframe_requests_are_throttled_per_layer_and_fall_back_to_pli() {
        let t0 = Instant::now();
        let mut producer = simulcast_video();
        let ask = producer
            .keyframe_request(1, KeyframeRequestKind::Fir, t0)
            .expect("the first request goes out");
        assert_eq!(ask.rid, Some(Rid::from("h")));
        assert_eq!(ask.mid, Mid::from("1"));
        assert_eq!(
            ask.kind,
            KeyframeRequestKind::Pli,
            "FIR was not negotiated (no packet seen yet)"
        );
        let soon = t0 + Duration::from_millis(100);
        assert_eq!(
            producer.keyframe_request(1, KeyframeRequestKind::Pli, soon),
            Err(Throttled)
        );
        assert!(
            producer
                .keyframe_request(0, KeyframeRequestKind::Pli, soon)
                .is_ok()
        );
        let later = t0 + Duration::from_millis(500);
        assert!(
            producer
                .keyframe_request(1, KeyframeRequestKind::Pli, later)
                .is_ok()
        );
    }

    #[test]
    fn dynacast_asks_again_only_when_the_wanted_rids_change() {
        let t0 = Instant::now();
        let mut producer = simulcast_video();
        let rids = |names: &[&str]| Some(names.iter().map(|n| n.to_string()).collect());
        assert_eq!(producer.dynacast([2], t0), rids(&["q", "f"]));
        assert_eq!(producer.dynacast([2], t0), None, "asked already");
        let soon = t0 + Duration::from_secs(1);
        assert_eq!(producer.dynacast([], soon), None, "held before pausing");
        let later = t0 + DYNACAST_PAUSE_AFTER + Duration::from_secs(1);
        assert_eq!(producer.dynacast([], later), rids(&["q"]));
    }

    #[test]
    fn a_track_that_is_not_simulcast_has_one_selectable_layer_and_no_dynacast() {
        let t0 = Instant::now();
        let mut producer = Producer::new(
            ProducerId::new(4),
            ParticipantId::new(1),
            Mid::from("0"),
            MediaKind::Audio,
            None,
            Vec::new(),
            Duration::from_millis(500),
        );
        assert_eq!(producer.codec_name(), "opus");
        assert_eq!(producer.clock_rate(), 48_000);
        assert!(producer.selectable_layers(t0).contains(0));
        assert!(producer.active_layers(t0).is_empty(), "no packet yet");
        assert_eq!(producer.dynacast([2], t0), None);
        assert_eq!(producer.layers(), vec![0]);
    }

    #[test]
    fn a_subscriber_is_listed_once() {
        let mut producer = simulcast_video();
        let subscriber = ParticipantId::new(9);
        producer.add_subscriber(subscriber);
        producer.add_subscriber(subscriber);
        assert_eq!(producer.subscribers(), &[subscriber]);
        producer.remove_subscriber(subscriber);
        assert!(producer.subscribers().is_empty());
    }
}
