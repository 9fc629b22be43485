//! A consumer: one subscriber's copy of one producer, from negotiation to forwarding.

use std::time::{Duration, Instant};

use sfu_core::forwarder::{Decision, DropReason, Forwarded, Forwarder, PacketInfo};
use sfu_core::ids::{ParticipantId, ProducerId};
use sfu_core::layers::LayerChoice;
use sfu_core::negotiation::ConsumerNegotiation;
use signaling::{ForwardedQuality, MediaKind, Quality};
use str0m::media::{Mid, Pt};
use str0m::stats::MediaEgressStats;

use super::path_view::StreamView;
use super::producer::Producer;

/// One subscriber's copy of one producer.
pub struct Consumer {
    track_id: ProducerId,
    /// The publisher's participant id (the m-line's msid stream id).
    publisher_id: ParticipantId,
    kind: MediaKind,
    /// Where its m-line is in the subscriber's negotiation.
    negotiation: ConsumerNegotiation<Mid>,
    /// Forward-or-drop decisions and number rewriting.
    forwarder: Forwarder,
    /// Publisher payload type → this subscriber's payload type, for the last codec seen.
    pt_map: Option<(Pt, Pt)>,
    /// The highest layer the subscriber wants (`None`: paused by the subscriber).
    max_layer: Option<u8>,
    /// The quality last reported to the subscriber in a `quality` message.
    reported: Option<ForwardedQuality>,
    /// Creation order; later consumers come first when bandwidth is shared.
    created: u64,
    /// Its outgoing stream as the subscriber reports it.
    egress: StreamView,
    /// Cumulative packets lost in the subscriber's last receiver report.
    reported_lost: u64,
    /// Since when it has been waiting for a keyframe to start or switch a layer.
    keyframe_awaited_since: Option<Instant>,
}

/// What becomes of one incoming packet for one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Send it, as rewritten.
    Forward {
        /// Its outgoing numbers, and the layer it starts.
        forwarded: Forwarded,
        /// When it starts a layer the consumer waited a keyframe for: how long it waited.
        keyframe_waited: Option<Duration>,
    },
    /// Do not send it.
    Drop(DropReason),
}

impl Consumer {
    /// A new consumer of `producer`, wanting its highest layer, numbered `created` among the
    /// subscriber's consumers (later ones come first when bandwidth is short).
    pub fn new(producer: &Producer, created: u64) -> Self {
        let video = producer.kind() == MediaKind::Video;
        Self {
            track_id: producer.id(),
            publisher_id: producer.owner(),
            kind: producer.kind(),
            negotiation: ConsumerNegotiation::default(),
            forwarder: Forwarder::new(video, producer.clock_rate()),
            pt_map: None,
            max_layer: Some(2),
            reported: None,
            created,
            egress: StreamView::default(),
            reported_lost: 0,
            keyframe_awaited_since: None,
        }
    }

    /// The track it receives.
    pub fn track_id(&self) -> ProducerId {
        self.track_id
    }

    /// Who publishes that track.
    pub fn publisher_id(&self) -> ParticipantId {
        self.publisher_id
    }

    /// Audio or video.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Creation order among the subscriber's consumers.
    pub fn created(&self) -> u64 {
        self.created
    }

    /// The m-line carrying it, once offered.
    pub fn mid(&self) -> Option<Mid> {
        self.negotiation.mid()
    }

    /// The m-line it is forwarded on: negotiated and not being stopped.
    pub fn active_mid(&self) -> Option<Mid> {
        self.negotiation.active_mid()
    }

    /// Where its m-line is in the subscriber's negotiation.
    pub fn negotiation(&self) -> &ConsumerNegotiation<Mid> {
        &self.negotiation
    }

    /// Its negotiation, to move it on as offers and answers go by.
    pub fn negotiation_mut(&mut self) -> &mut ConsumerNegotiation<Mid> {
        &mut self.negotiation
    }

    /// The highest layer the subscriber wants (`None`: paused by the subscriber).
    pub fn max_layer(&self) -> Option<u8> {
        self.max_layer
    }

    /// Set the highest layer the subscriber wants (`None`: paused).
    pub fn set_max_layer(&mut self, max_layer: Option<u8>) {
        self.max_layer = max_layer;
    }

    /// The subscriber's wish in a `subscribe` message.
    pub fn wish(&mut self, quality: Quality, paused: bool) {
        self.max_layer = (!paused).then(|| max_layer_for(quality));
    }

    /// The layer it should be forwarded (`None`: nothing).
    pub fn target(&self) -> Option<u8> {
        self.forwarder.target()
    }

    /// Forward `target` from now on; says whether that changed anything.
    pub fn set_target(&mut self, target: Option<u8>) -> bool {
        let changed = self.forwarder.target() != target;
        if changed {
            self.forwarder.set_target(target);
        }
        changed
    }

    /// The layer forwarded now.
    pub fn forwarded_layer(&self) -> Option<u8> {
        self.forwarder.current_layer()
    }

    /// The layer whose keyframe it waits for to start or switch, if any.
    pub fn awaited_keyframe_layer(&self) -> Option<u8> {
        self.forwarder.awaited_keyframe_layer()
    }

    /// The layer a subscriber's keyframe request is about: the one forwarded, else the one
    /// awaited.
    pub fn keyframe_layer(&self) -> Option<u8> {
        self.forwarded_layer().or(self.awaited_keyframe_layer())
    }

    /// The layers dynacast must keep for it: the one wished for and the one still forwarded
    /// until a switch completes.
    pub fn wanted_layers(&self) -> impl Iterator<Item = u8> {
        [self.max_layer, self.forwarded_layer()]
            .into_iter()
            .flatten()
    }

    /// What its layer allocation starts from, given its producer now.
    pub fn layer_choice(&self, producer: &Producer, now: Instant) -> LayerChoice {
        LayerChoice {
            max_layer: self.max_layer,
            active: producer.selectable_layers(now),
            bitrates: producer.bitrates(),
            current: self.forwarded_layer(),
        }
    }

    /// Decide what becomes of one packet, keeping track of how long a layer start waits for
    /// its keyframe.
    pub fn decide(&mut self, packet: &PacketInfo) -> Delivery {
        match self.forwarder.decide(packet) {
            Decision::Forward(forwarded) => {
                let keyframe_waited = forwarded
                    .starts_layer
                    .and(self.keyframe_awaited_since.take())
                    .map(|since| packet.arrival.saturating_duration_since(since));
                Delivery::Forward {
                    forwarded,
                    keyframe_waited,
                }
            }
            Decision::Drop(reason) => {
                if let DropReason::WaitingForKeyframe(_) = reason {
                    self.keyframe_awaited_since.get_or_insert(packet.arrival);
                }
                Delivery::Drop(reason)
            }
        }
    }

    /// The subscriber's payload type for the publisher's `in_pt`: remembered from the last
    /// packet, else found by `map` (none: the subscriber did not negotiate that codec).
    pub fn out_pt(&mut self, in_pt: Pt, map: impl FnOnce() -> Option<Pt>) -> Option<Pt> {
        match self.pt_map {
            Some((from, to)) if from == in_pt => Some(to),
            _ => {
                let mapped = map();
                self.pt_map = mapped.map(|to| (in_pt, to));
                mapped
            }
        }
    }

    /// The quality to tell the subscriber, when it differs from the one told last.
    pub fn quality_to_report(&mut self) -> Option<ForwardedQuality> {
        let quality = forwarded_quality(self.forwarded_layer());
        (self.reported.replace(quality) != Some(quality)).then_some(quality)
    }

    /// The layer forwarded now, as `quality` messages name it.
    pub fn forwarded_quality(&self) -> ForwardedQuality {
        forwarded_quality(self.forwarded_layer())
    }

    /// Its outgoing stream as the subscriber reports it.
    pub fn egress(&self) -> &StreamView {
        &self.egress
    }

    /// str0m's periodic statistics of its outgoing stream; returns the packets the
    /// subscriber newly reports lost (lost even after retransmission).
    pub fn on_egress_stats(&mut self, stats: &MediaEgressStats) -> u64 {
        self.egress.on_egress_stats(stats);
        match stats.remote.as_ref().map(|r| r.packets_lost) {
            Some(lost) => lost.saturating_sub(std::mem::replace(&mut self.reported_lost, lost)),
            None => 0,
        }
    }
}

/// The highest layer a subscriber's wish allows.
fn max_layer_for(quality: Quality) -> u8 {
    match quality {
        Quality::Low => 0,
        Quality::Medium => 1,
        Quality::High | Quality::Auto => 2,
    }
}

/// How a forwarded layer is named in `quality` messages.
fn forwarded_quality(layer: Option<u8>) -> ForwardedQuality {
    match layer {
        None => ForwardedQuality::Off,
        Some(0) => ForwardedQuality::Low,
        Some(1) => ForwardedQuality::Medium,
        Some(_) => ForwardedQuality::High,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use sfu_core::ids::{ParticipantId, ProducerId};
    use str0m::stats::RemoteIngressStats;

    use super::*;

    fn video_consumer() -> Consumer {
        let producer = Producer::new(
            ProducerId::new(3),
            ParticipantId::new(1),
            Mid::from("0"),
            MediaKind::Video,
            None,
            Vec::new(),
            Duration::from_millis(500),
        );
        Consumer::new(&producer, 7)
    }

    fn packet(seq: u64, keyframe_start: bool, arrival: Instant) -> PacketInfo {
        PacketInfo {
            layer: 0,
            seq,
            timestamp: 3000 * u32::try_from(seq).expect("a small sequence number"),
            keyframe_start,
            arrival,
            vp8: None,
        }
    }

    #[test]
    fn a_layer_start_reports_how_long_it_waited_for_its_keyframe() {
        let t0 = Instant::now();
        let mut consumer = video_consumer();
        assert_eq!(
            consumer.decide(&packet(1, false, t0)),
            Delivery::Drop(DropReason::WaitingForKeyframe(0))
        );
        assert_eq!(consumer.awaited_keyframe_layer(), Some(0));
        // A second dropped packet does not restart the wait.
        consumer.decide(&packet(2, false, t0 + Duration::from_millis(100)));
        let Delivery::Forward {
            forwarded,
            keyframe_waited,
        } = consumer.decide(&packet(3, true, t0 + Duration::from_millis(300)))
        else {
            panic!("the keyframe was not forwarded");
        };
        assert_eq!(forwarded.starts_layer, Some(0));
        assert_eq!(keyframe_waited, Some(Duration::from_millis(300)));
        assert_eq!(consumer.forwarded_layer(), Some(0));
        let Delivery::Forward {
            keyframe_waited, ..
        } = consumer.decide(&packet(4, false, t0 + Duration::from_millis(320)))
        else {
            panic!("the packet after the keyframe was not forwarded");
        };
        assert_eq!(keyframe_waited, None, "only the start of a layer waited");
    }

    #[test]
    fn the_payload_type_mapping_is_looked_up_once_per_publisher_payload_type() {
        let mut consumer = video_consumer();
        let mut lookups = 0;
        for (in_pt, found, expected) in [
            (96, Some(100), Some(100)),
            (96, Some(111), Some(100)),
            (98, None, None),
            (98, Some(102), Some(102)),
        ] {
            let out = consumer.out_pt(Pt::from(in_pt), || {
                lookups += 1;
                found.map(Pt::from)
            });
            assert_eq!(out, expected.map(Pt::from), "in {in_pt}");
        }
        assert_eq!(lookups, 3, "a remembered mapping is not looked up again");
    }

    #[test]
    fn a_quality_is_reported_once_per_change() {
        let t0 = Instant::now();
        let mut consumer = video_consumer();
        assert_eq!(consumer.quality_to_report(), Some(ForwardedQuality::Off));
        assert_eq!(consumer.quality_to_report(), None);
        consumer.decide(&packet(1, true, t0));
        assert_eq!(consumer.quality_to_report(), Some(ForwardedQuality::Low));
        assert_eq!(consumer.quality_to_report(), None);
    }

    #[test]
    fn receiver_reports_count_each_loss_once() {
        let mut consumer = video_consumer();
        let stats = |lost: Option<u64>| MediaEgressStats {
            mid: Mid::from("0"),
            rid: None,
            bytes: 0,
            packets: 0,
            firs: 0,
            plis: 0,
            nacks: 0,
            rtt: None,
            loss: None,
            timestamp: Instant::now(),
            remote: lost.map(|packets_lost| RemoteIngressStats {
                jitter: 0,
                maximum_sequence_number: 0.into(),
                packets_lost,
            }),
        };
        for (lost, new) in [
            (Some(3), 3),
            (Some(5), 2),
            (None, 0),
            (Some(5), 0),
            (Some(9), 4),
        ] {
            assert_eq!(consumer.on_egress_stats(&stats(lost)), new, "lost {lost:?}");
        }
    }

    #[test]
    fn a_wish_sets_the_highest_layer() {
        let mut consumer = video_consumer();
        assert_eq!(consumer.max_layer(), Some(2), "new consumers want the best");
        for (quality, paused, max_layer) in [
            (Quality::Low, false, Some(0)),
            (Quality::Medium, false, Some(1)),
            (Quality::High, false, Some(2)),
            (Quality::Auto, false, Some(2)),
            (Quality::High, true, None),
        ] {
            consumer.wish(quality, paused);
            assert_eq!(
                consumer.max_layer(),
                max_layer,
                "{quality:?} paused {paused}"
            );
        }
    }

    #[test]
    fn a_target_change_is_reported_only_when_it_changes() {
        let mut consumer = video_consumer();
        assert_eq!(consumer.target(), Some(0));
        assert!(!consumer.set_target(Some(0)));
        assert!(consumer.set_target(None));
        assert_eq!(consumer.target(), None);
    }
}
