//! What a synthetic publisher sends, frame by frame: sizes per simulcast layer with
//! periodic (and requested) keyframes, and Opus-sized audio every 20 ms.

use std::time::{Duration, Instant};

use crate::payload::FrameKind;
use crate::rng::Rng;

/// A keyframe is this many times the size of an interframe.
const KEYFRAME_FACTOR: usize = 4;
/// Frame sizes vary by up to this fraction around their mean.
const SIZE_SPREAD: f64 = 0.2;
/// Audio packet interval.
pub const AUDIO_INTERVAL: Duration = Duration::from_millis(20);
/// Mean Opus packet size at about 32 kbit/s.
const AUDIO_BYTES: usize = 80;

/// One video frame to send on one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerFrame {
    /// Layer index (0 = q).
    pub layer: usize,
    /// Keyframe or interframe.
    pub kind: FrameKind,
    /// Payload size in bytes.
    pub size: usize,
}

/// The frames of a video track with one or more layers.
#[derive(Debug, Clone)]
pub struct VideoPlan {
    /// Mean interframe size per layer.
    delta_bytes: Vec<usize>,
    frames_per_keyframe: u32,
    frame_interval: Duration,
    next_seq: u32,
    forced: Vec<bool>,
    rng: Rng,
}

impl VideoPlan {
    /// A plan for layers of `kbps` each, at `fps`, with a keyframe every `keyframe_every`.
    /// Sizes are set so that each layer averages its bitrate over a keyframe interval.
    pub fn new(kbps: &[u32], fps: u32, keyframe_every: Duration, seed: u64) -> Self {
        let fps = fps.max(1);
        let frames_per_keyframe =
            ((keyframe_every.as_secs_f64() * f64::from(fps)).round() as u32).max(1);
        let n = frames_per_keyframe as usize;
        let delta_bytes = kbps
            .iter()
            .map(|k| {
                let mean = *k as usize * 1000 / 8 / fps as usize;
                (n * mean / (n + KEYFRAME_FACTOR - 1)).max(1)
            })
            .collect();
        Self {
            delta_bytes,
            frames_per_keyframe,
            frame_interval: Duration::from_secs(1) / fps,
            next_seq: 0,
            forced: vec![false; kbps.len()],
            rng: Rng::new(seed),
        }
    }

    /// Time between two frames.
    pub fn frame_interval(&self) -> Duration {
        self.frame_interval
    }

    /// The receiver (through the SFU) asked for a keyframe on `layer`.
    pub fn request_keyframe(&mut self, layer: usize) {
        if let Some(f) = self.forced.get_mut(layer) {
            *f = true;
        }
    }

    /// The next frame number and the frame to send on every layer.
    pub fn next_frame(&mut self) -> (u32, Vec<LayerFrame>) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let periodic = seq.is_multiple_of(self.frames_per_keyframe);
        let frames = (0..self.delta_bytes.len())
            .map(|layer| {
                let key = periodic || std::mem::take(&mut self.forced[layer]);
                let mean = self.delta_bytes[layer] * if key { KEYFRAME_FACTOR } else { 1 };
                LayerFrame {
                    layer,
                    kind: if key {
                        FrameKind::VideoKey
                    } else {
                        FrameKind::VideoDelta
                    },
                    size: self.rng.around(mean, SIZE_SPREAD),
                }
            })
            .collect();
        (seq, frames)
    }
}

/// One audio packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFrame {
    /// Packet number within the track.
    pub seq: u32,
    /// Payload size in bytes.
    pub size: usize,
    /// Audio level for the RFC 6464 extension, in -dBov (0 loudest, 127 silence).
    pub level: i8,
}

/// Opus-sized audio packets with a varying speech level.
#[derive(Debug, Clone)]
pub struct AudioPlan {
    next_seq: u32,
    rng: Rng,
}

impl AudioPlan {
    /// A plan seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            next_seq: 0,
            rng: Rng::new(seed),
        }
    }

    /// The next packet.
    pub fn next_frame(&mut self) -> AudioFrame {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        let level = -(20 + (self.rng.next_u64() % 30) as i8);
        AudioFrame {
            seq,
            size: self.rng.around(AUDIO_BYTES, SIZE_SPREAD),
            level,
        }
    }
}

/// When a publisher's first frame of a stream sent every `interval` goes out: somewhere in
/// its first interval, by `seed`. Independent clients are not in step, and publishers that
/// joined a whole number of intervals apart (10 joins per second, 30 frames per second)
/// would otherwise all send their frames at the same instants.
pub fn first_frame_at(now: Instant, interval: Duration, seed: u64) -> Instant {
    now + interval.mul_f64(Rng::new(seed).fraction())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layer_averages_its_bitrate() {
        // Requirement: a layer configured at N kbit/s sends about N kbit/s (within 5%), keyframes included.
        let kbps = [150, 500, 1500];
        let mut plan = VideoPlan::new(&kbps, 30, Duration::from_secs(3), 1);
        let mut bytes = [0usize; 3];
        let frames = 30 * 30;
        for _ in 0..frames {
            for f in plan.next_frame().1 {
                bytes[f.layer] += f.size;
            }
        }
        for (layer, k) in kbps.iter().enumerate() {
            let got = bytes[layer] as f64 * 8.0 / 30.0 / 1000.0;
            let want = f64::from(*k);
            assert!(
                (got - want).abs() / want < 0.05,
                "layer {layer}: {got:.0} kbit/s, want {want}"
            );
        }
    }

    #[test]
    fn keyframes_come_periodically_and_on_request() {
        // Requirement: every layer starts with a keyframe, repeats one each interval, and answers a request with one.
        let mut plan = VideoPlan::new(&[100, 200], 10, Duration::from_secs(1), 1);
        let kinds: Vec<Vec<FrameKind>> = (0..12)
            .map(|i| {
                if i == 4 {
                    plan.request_keyframe(1);
                }
                plan.next_frame().1.iter().map(|f| f.kind).collect()
            })
            .collect();
        use FrameKind::{VideoDelta as D, VideoKey as K};
        assert_eq!(kinds[0], vec![K, K]);
        assert_eq!(kinds[1], vec![D, D]);
        assert_eq!(kinds[4], vec![D, K], "requested keyframe on layer 1 only");
        assert_eq!(kinds[5], vec![D, D], "a request gives one keyframe");
        assert_eq!(
            kinds[10],
            vec![K, K],
            "periodic keyframe after 1 s at 10 fps"
        );
    }

    #[test]
    fn audio_packets_are_opus_sized_with_speech_levels() {
        // Requirement: audio looks like speech to the SFU: ~80-byte packets with a level in the speaking range.
        let mut plan = AudioPlan::new(3);
        for expected_seq in 0..500 {
            let a = plan.next_frame();
            assert_eq!(a.seq, expected_seq);
            assert!((64..=96).contains(&a.size), "{}", a.size);
            assert!((-49..=-20).contains(&a.level), "{}", a.level);
        }
    }

    #[test]
    fn publishers_start_their_streams_out_of_step() {
        // Requirement: publishers' frames are spread over the frame interval by their seed,
        // the same for the same seed.
        let now = Instant::now();
        let interval = Duration::from_millis(33);
        let offsets: Vec<Duration> = (0..20)
            .map(|seed| first_frame_at(now, interval, seed) - now)
            .collect();
        assert!(offsets.iter().all(|o| *o < interval));
        let mut distinct = offsets.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 15, "{offsets:?}");
        assert!(
            distinct[distinct.len() - 1] - distinct[0] > interval / 2,
            "{offsets:?}"
        );
        assert_eq!(
            first_frame_at(now, interval, 7),
            first_frame_at(now, interval, 7)
        );
    }
}
