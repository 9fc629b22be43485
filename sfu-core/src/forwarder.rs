//! The Forwarder: per consumer, decide for each incoming packet whether to
//! forward it (and with which outgoing numbers) or drop it, and why.
//!
//! "Decide first, then send": [`Forwarder::decide`] returns a plain
//! [`Decision`]; the caller does the I/O. The decision also says what changed: the packet
//! that starts a layer, or the layer whose keyframe a dropped packet waits for, so the
//! caller never compares forwarder state before and after.

use std::time::Instant;

use crate::munger::{Munged, RtpMunger};
use crate::vp8_munger::{Vp8Fields, Vp8Munger};

/// The facts about one incoming packet that forwarding depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketInfo {
    /// Simulcast layer it belongs to (0 when the track is not simulcast).
    pub layer: u8,
    /// Extended sequence number.
    pub seq: u64,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Whether it is the first packet of a keyframe.
    pub keyframe_start: bool,
    /// When it arrived.
    pub arrival: Instant,
    /// Its VP8 payload descriptor counters (VP8 tracks only).
    pub vp8: Option<Vp8Fields>,
}

/// Why a packet was not forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Video not started yet, or switching: waiting for a keyframe of this (target) layer.
    WaitingForKeyframe(u8),
    /// The packet's layer is not the one forwarded to this consumer.
    OtherLayer,
    /// The consumer is paused.
    Paused,
    /// The packet is from before the current source started.
    Stale,
}

/// A packet to send, as it goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded {
    /// Its outgoing sequence number and timestamp.
    pub munged: Munged,
    /// Its outgoing VP8 descriptor counters (VP8 tracks only).
    pub vp8: Option<Vp8Fields>,
    /// The layer it starts, when it is the first packet forwarded since the consumer
    /// started, resumed or switched layers.
    pub starts_layer: Option<u8>,
}

/// What to do with one packet for one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Send it.
    Forward(Forwarded),
    /// Do not send it.
    Drop(DropReason),
}

/// Per-consumer forwarding state: the target and current layer and the munger.
#[derive(Debug, Clone)]
pub struct Forwarder {
    video: bool,
    clock_rate: u32,
    target: Option<u8>,
    current: Option<u8>,
    munger: RtpMunger,
    vp8: Vp8Munger,
    last_forward: Option<Instant>,
}

impl Forwarder {
    /// A forwarder for a track of the given kind and RTP clock rate, targeting layer 0.
    pub fn new(video: bool, clock_rate: u32) -> Self {
        Self {
            video,
            clock_rate,
            target: Some(0),
            current: None,
            munger: RtpMunger::new(),
            vp8: Vp8Munger::new(),
            last_forward: None,
        }
    }

    /// Choose the layer to forward; `None` pauses the consumer.
    pub fn set_target(&mut self, layer: Option<u8>) {
        self.target = layer;
        if layer.is_none() {
            self.current = None;
        }
    }

    /// The layer it is set to forward (`None`: paused).
    pub fn target(&self) -> Option<u8> {
        self.target
    }

    /// The layer being forwarded now (`None`: nothing is forwarded).
    pub fn current_layer(&self) -> Option<u8> {
        self.current
    }

    /// The layer a keyframe is awaited for, if video forwarding is waiting for one.
    pub fn awaited_keyframe_layer(&self) -> Option<u8> {
        match self.target {
            Some(t) if self.video && self.current != Some(t) => Some(t),
            _ => None,
        }
    }

    /// Decide what to do with `packet`.
    pub fn decide(&mut self, packet: &PacketInfo) -> Decision {
        let Some(target) = self.target else {
            return Decision::Drop(DropReason::Paused);
        };
        let starts_target = packet.layer == target && self.current != Some(target);
        let starts_layer = starts_target && (packet.keyframe_start || !self.video);
        if starts_layer {
            let advance = self.timestamp_advance(packet.arrival);
            self.munger
                .switch_source(packet.seq, packet.timestamp, advance);
            if let Some(fields) = packet.vp8 {
                self.vp8.switch_source(fields);
            }
            self.current = Some(target);
        } else if self.current != Some(packet.layer) {
            let reason = if self.current.is_none() || packet.layer == target {
                DropReason::WaitingForKeyframe(target)
            } else {
                DropReason::OtherLayer
            };
            return Decision::Drop(reason);
        }
        match self.munger.rewrite(packet.seq, packet.timestamp) {
            Some(munged) => {
                self.last_forward = Some(packet.arrival);
                Decision::Forward(Forwarded {
                    munged,
                    vp8: packet.vp8.map(|f| self.vp8.rewrite(f)),
                    starts_layer: starts_layer.then_some(target),
                })
            }
            None => Decision::Drop(DropReason::Stale),
        }
    }

    /// Timestamp ticks between the last forwarded packet and a new source's first one.
    fn timestamp_advance(&self, now: Instant) -> u32 {
        let Some(last) = self.last_forward else {
            return 0;
        };
        let elapsed_ms = now.saturating_duration_since(last).as_millis();
        let ticks = elapsed_ms * u128::from(self.clock_rate) / 1000;
        u32::try_from(ticks).unwrap_or(u32::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    struct Builder {
        start: Instant,
    }

    impl Builder {
        fn new() -> Self {
            Self {
                start: Instant::now(),
            }
        }
        fn pkt(&self, layer: u8, seq: u64, ts: u32, key: bool, ms: u64) -> PacketInfo {
            PacketInfo {
                layer,
                seq,
                timestamp: ts,
                keyframe_start: key,
                arrival: self.start + Duration::from_millis(ms),
                vp8: None,
            }
        }

        fn vp8(&self, layer: u8, seq: u64, key: bool, picture_id: u16, tl0: u8) -> PacketInfo {
            PacketInfo {
                vp8: Some(Vp8Fields {
                    picture_id: Some(picture_id),
                    tl0_pic_idx: Some(tl0),
                }),
                ..self.pkt(layer, seq, 0, key, 0)
            }
        }
    }

    fn fwd(seq: u64, timestamp: u32) -> Decision {
        Decision::Forward(Forwarded {
            munged: Munged { seq, timestamp },
            vp8: None,
            starts_layer: None,
        })
    }

    /// A forwarded packet that starts `layer`.
    fn start(seq: u64, timestamp: u32, layer: u8) -> Decision {
        Decision::Forward(Forwarded {
            munged: Munged { seq, timestamp },
            vp8: None,
            starts_layer: Some(layer),
        })
    }

    /// The VP8 counters a forwarded packet carries.
    fn vp8_out(decision: Decision) -> Option<(u16, u8)> {
        match decision {
            Decision::Forward(Forwarded { vp8: Some(f), .. }) => {
                Some((f.picture_id?, f.tl0_pic_idx?))
            }
            _ => None,
        }
    }

    #[test]
    fn vp8_picture_ids_continue_across_a_layer_switch() {
        // Requirement: the subscriber sees one PictureID / TL0PICIDX sequence whichever layer is forwarded.
        let b = Builder::new();
        let mut f = Forwarder::new(true, 90_000);
        let cases = [
            (b.vp8(0, 1, true, 4000, 20), Some((4000, 20))),
            (b.vp8(0, 2, false, 4001, 21), Some((4001, 21))),
            (b.vp8(2, 900, true, 123, 250), None),
        ];
        for (packet, expected) in cases {
            assert_eq!(vp8_out(f.decide(&packet)), expected, "{packet:?}");
        }
        f.set_target(Some(2));
        let after_switch = [
            (b.vp8(0, 3, false, 4002, 22), Some((4002, 22))),
            (b.vp8(2, 901, true, 124, 251), Some((4003, 23))),
            (b.vp8(2, 902, false, 125, 252), Some((4004, 24))),
        ];
        for (packet, expected) in after_switch {
            assert_eq!(vp8_out(f.decide(&packet)), expected, "{packet:?}");
        }
    }

    #[test]
    fn video_waits_for_a_keyframe_before_forwarding_anything() {
        // Requirement: a new video consumer starts at a keyframe so the subscriber can decode its first frame.
        let b = Builder::new();
        let mut f = Forwarder::new(true, 90_000);
        assert_eq!(f.awaited_keyframe_layer(), Some(0));
        let cases = [
            (
                b.pkt(0, 10, 0, false, 0),
                Decision::Drop(DropReason::WaitingForKeyframe(0)),
            ),
            (b.pkt(0, 11, 3000, true, 33), start(11, 3000, 0)),
            (b.pkt(0, 12, 3000, false, 34), fwd(12, 3000)),
            (
                b.pkt(0, 10, 0, false, 35),
                Decision::Drop(DropReason::Stale),
            ),
        ];
        for (packet, expected) in cases {
            assert_eq!(f.decide(&packet), expected, "{packet:?}");
        }
        assert_eq!(f.awaited_keyframe_layer(), None);
        assert_eq!(f.current_layer(), Some(0));
    }

    #[test]
    fn audio_starts_at_the_first_packet() {
        // Requirement: audio needs no keyframe and is forwarded from the first packet on.
        let b = Builder::new();
        let mut f = Forwarder::new(false, 48_000);
        assert_eq!(f.awaited_keyframe_layer(), None);
        assert_eq!(f.decide(&b.pkt(0, 7, 960, false, 0)), start(7, 960, 0));
        assert_eq!(f.decide(&b.pkt(0, 8, 1920, false, 20)), fwd(8, 1920));
    }

    #[test]
    fn a_layer_switch_happens_only_at_a_keyframe_of_the_target_layer() {
        // Requirement: the old layer keeps flowing until the target layer's keyframe, then the new one continues the numbering.
        let b = Builder::new();
        let mut f = Forwarder::new(true, 90_000);
        f.decide(&b.pkt(0, 100, 9000, true, 0));
        f.set_target(Some(2));
        assert_eq!(f.awaited_keyframe_layer(), Some(2));
        let cases = [
            (b.pkt(0, 101, 12_000, false, 33), fwd(101, 12_000)),
            (
                b.pkt(2, 500, 777_000, false, 34),
                Decision::Drop(DropReason::WaitingForKeyframe(2)),
            ),
            (
                b.pkt(1, 300, 555_000, true, 35),
                Decision::Drop(DropReason::OtherLayer),
            ),
            // 100 ms after the last forwarded packet: 9000 ticks at 90 kHz.
            (b.pkt(2, 501, 780_000, true, 133), start(102, 21_000, 2)),
            (
                b.pkt(0, 102, 15_000, false, 134),
                Decision::Drop(DropReason::OtherLayer),
            ),
            (b.pkt(2, 502, 783_000, false, 166), fwd(103, 24_000)),
        ];
        for (packet, expected) in cases {
            assert_eq!(f.decide(&packet), expected, "{packet:?}");
        }
        assert_eq!(f.current_layer(), Some(2));
    }

    #[test]
    fn pausing_drops_everything_and_resuming_waits_for_a_keyframe() {
        // Requirement: a paused consumer gets nothing; on resume it restarts cleanly at a keyframe with continuous numbers.
        let b = Builder::new();
        let mut f = Forwarder::new(true, 90_000);
        f.decide(&b.pkt(0, 1, 0, true, 0));
        f.set_target(None);
        assert_eq!(f.current_layer(), None);
        assert_eq!(
            f.decide(&b.pkt(0, 2, 3000, true, 33)),
            Decision::Drop(DropReason::Paused)
        );
        f.set_target(Some(0));
        assert_eq!(
            f.decide(&b.pkt(0, 3, 6000, false, 66)),
            Decision::Drop(DropReason::WaitingForKeyframe(0))
        );
        assert_eq!(
            f.decide(&b.pkt(0, 4, 9000, true, 1000)),
            start(2, 90_000, 0)
        );
    }
}
