//! What one subscriber measured on one received track: frames, loss, duplicates,
//! reordering, jitter, latency and bitrate, from the headers of the frames it got.

use crate::payload::FrameHeader;

/// How far back (in frames) duplicates and late frames are recognised.
const WINDOW: u32 = 4096;

/// Which recent frame numbers have been seen, relative to the highest one.
#[derive(Debug, Clone)]
struct SeenWindow {
    bits: Vec<u64>,
}

impl SeenWindow {
    fn new() -> Self {
        Self {
            bits: vec![0; (WINDOW / 64) as usize],
        }
    }

    fn slot(seq: u32) -> (usize, u64) {
        let i = seq % WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    fn test_and_set(&mut self, seq: u32) -> bool {
        let (word, bit) = Self::slot(seq);
        let seen = self.bits[word] & bit != 0;
        self.bits[word] |= bit;
        seen
    }

    fn clear(&mut self, seq: u32) {
        let (word, bit) = Self::slot(seq);
        self.bits[word] &= !bit;
    }
}

/// Receive statistics of one track at one subscriber.
#[derive(Debug, Clone)]
pub struct TrackStats {
    /// The publisher the signaling said the track belongs to.
    pub publisher: String,
    first_seq: Option<u32>,
    highest_seq: u32,
    seen: SeenWindow,
    /// Distinct frames received.
    pub frames: u64,
    /// Frames received more than once.
    pub duplicates: u64,
    /// Frames that arrived after a later one.
    pub reordered: u64,
    /// Frames that were corrupted or came from another publisher than announced.
    pub errors: u64,
    /// Payload bytes received.
    pub bytes: u64,
    /// One-way latency of every frame, microseconds.
    pub latencies_us: Vec<u32>,
    jitter_us: f64,
    last_transit_us: Option<i64>,
    last_layer: Option<u8>,
    /// How often the forwarded simulcast layer changed.
    pub layer_switches: u32,
    /// Frames that did not continue the RTP stream of the previous one (sequence gap).
    pub rtp_gaps: u64,
    /// RTP packets that made up the frames received (by their sequence numbers).
    pub rtp_packets: u64,
    /// First and highest RTP sequence number seen.
    rtp_range: Option<(u64, u64)>,
    /// First and last arrival, microseconds since the Unix epoch.
    pub span_us: Option<(u64, u64)>,
}

impl TrackStats {
    /// Statistics for a track announced as published by `publisher`.
    pub fn new(publisher: String) -> Self {
        Self {
            publisher,
            first_seq: None,
            highest_seq: 0,
            seen: SeenWindow::new(),
            frames: 0,
            duplicates: 0,
            reordered: 0,
            errors: 0,
            bytes: 0,
            latencies_us: Vec::new(),
            jitter_us: 0.0,
            last_transit_us: None,
            last_layer: None,
            layer_switches: 0,
            rtp_gaps: 0,
            rtp_packets: 0,
            rtp_range: None,
            span_us: None,
        }
    }

    /// A frame arrived after a gap in the RTP sequence numbers: the stream the SFU forwards
    /// for a track must stay continuous across layer switches.
    pub fn on_rtp_gap(&mut self) {
        self.rtp_gaps += 1;
    }

    /// A frame made of the RTP packets `first..=last` (extended sequence numbers) arrived.
    /// Packets at or below the highest already seen are not counted again.
    pub fn on_rtp_packets(&mut self, first: u64, last: u64) {
        let new_from = match self.rtp_range {
            None => first,
            Some((_, highest)) if last <= highest => return,
            Some((_, highest)) => first.max(highest + 1),
        };
        self.rtp_packets += last + 1 - new_from;
        let start = self.rtp_range.map_or(first, |(start, _)| start.min(first));
        self.rtp_range = Some((start, last));
    }

    /// RTP packets missing between the first and highest sequence number seen.
    pub fn rtp_lost(&self) -> u64 {
        self.rtp_range.map_or(0, |(first, last)| {
            (last + 1 - first).saturating_sub(self.rtp_packets)
        })
    }

    /// A frame that failed to decode.
    pub fn on_bad_frame(&mut self) {
        self.errors += 1;
    }

    /// A decoded frame of `size` bytes arrived at `now_us`. Returns false, counting an
    /// error, when it came from another publisher than the track's.
    pub fn on_frame(&mut self, header: &FrameHeader, size: usize, now_us: u64) -> bool {
        if header.publisher != self.publisher {
            self.errors += 1;
            return false;
        }
        let seq = header.seq;
        match self.first_seq {
            None => {
                self.first_seq = Some(seq);
                self.highest_seq = seq;
                self.seen.test_and_set(seq);
            }
            Some(_) if seq > self.highest_seq => {
                let gap = seq - self.highest_seq;
                for s in (self.highest_seq + 1)..=seq.min(self.highest_seq + WINDOW) {
                    self.seen.clear(s);
                }
                if gap >= WINDOW {
                    self.seen = SeenWindow::new();
                }
                self.highest_seq = seq;
                self.seen.test_and_set(seq);
            }
            Some(first) => {
                if seq < first || self.highest_seq - seq >= WINDOW {
                    self.reordered += 1;
                    return true;
                }
                if seq == self.highest_seq && self.last_layer != Some(header.layer) {
                    // Every layer carries the same frame numbers: switching up, the new
                    // layer's keyframe can repeat the number just forwarded from the old one.
                    self.layer_switches += 1;
                    self.last_layer = Some(header.layer);
                    return true;
                }
                if self.seen.test_and_set(seq) {
                    self.duplicates += 1;
                    return true;
                }
                self.reordered += 1;
            }
        }
        self.frames += 1;
        self.bytes += size as u64;
        let latency = now_us.saturating_sub(header.sent_at_us);
        self.latencies_us
            .push(u32::try_from(latency).unwrap_or(u32::MAX));
        let transit = now_us as i64 - header.sent_at_us as i64;
        if let Some(last) = self.last_transit_us {
            let d = (transit - last).abs() as f64;
            self.jitter_us += (d - self.jitter_us) / 16.0;
        }
        self.last_transit_us = Some(transit);
        if self.last_layer.is_some_and(|l| l != header.layer) {
            self.layer_switches += 1;
        }
        self.last_layer = Some(header.layer);
        let (start, _) = self.span_us.unwrap_or((now_us, now_us));
        self.span_us = Some((start, now_us));
        true
    }

    /// Frames the publisher sent between the first and the highest one received.
    pub fn expected(&self) -> u64 {
        self.first_seq
            .map_or(0, |first| u64::from(self.highest_seq - first) + 1)
    }

    /// Frames never received in that range.
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.frames)
    }

    /// RFC 3550-style interarrival jitter, microseconds.
    pub fn jitter_us(&self) -> f64 {
        self.jitter_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u32, layer: u8, sent_at_us: u64) -> FrameHeader {
        FrameHeader {
            layer,
            seq,
            sent_at_us,
            publisher: "PA_1".to_owned(),
        }
    }

    /// Feed (seq, layer, sent, received) tuples; return the summary.
    fn feed(frames: &[(u32, u8, u64, u64)]) -> TrackStats {
        let mut t = TrackStats::new("PA_1".to_owned());
        for (seq, layer, sent, got) in frames {
            t.on_frame(&frame(*seq, *layer, *sent), 100, *got);
        }
        t
    }

    #[test]
    fn counts_loss_duplicates_and_reordering() {
        // Requirement: loss, duplicates and reordering are told apart and counted exactly.
        /// (frames, lost, duplicates, reordered)
        type Counts = (u64, u64, u64, u64);
        let table: Vec<(&str, Vec<u32>, Counts)> = vec![
            // (case, seqs received, (frames, lost, duplicates, reordered))
            ("in order", vec![10, 11, 12, 13], (4, 0, 0, 0)),
            ("a gap is loss", vec![10, 11, 14], (3, 2, 0, 0)),
            ("a late frame fills its gap", vec![10, 12, 11], (3, 0, 0, 1)),
            (
                "a repeat is a duplicate",
                vec![10, 11, 11, 12],
                (3, 0, 1, 0),
            ),
            (
                "a repeat of a late frame too",
                vec![10, 12, 11, 11],
                (3, 0, 1, 1),
            ),
            (
                "before the first is late, not counted",
                vec![10, 11, 9],
                (2, 0, 0, 1),
            ),
            (
                "a jump beyond the window",
                vec![1, 10_000, 10_001],
                (3, 9_998, 0, 0),
            ),
        ];
        for (case, seqs, want) in table {
            let frames: Vec<_> = seqs.iter().map(|s| (*s, 0, 0, 0)).collect();
            let t = feed(&frames);
            assert_eq!(
                (t.frames, t.lost(), t.duplicates, t.reordered),
                want,
                "{case}"
            );
        }
    }

    #[test]
    fn measures_latency_jitter_and_layer_switches() {
        // Requirement: latency is receive minus send time; jitter follows RFC 3550; layer changes are counted.
        let t = feed(&[
            (0, 0, 1_000, 3_000),
            (1, 0, 34_000, 36_000),
            (2, 2, 67_000, 71_000),
            (3, 2, 100_000, 102_000),
        ]);
        assert_eq!(t.latencies_us, vec![2_000, 2_000, 4_000, 2_000]);
        assert_eq!(t.layer_switches, 1);
        // Transit 2000, 2000, 4000, 2000: D = 0, 2000, 2000 -> J = 0, 125, 242.1875.
        assert!((t.jitter_us() - 242.1875).abs() < 1e-9, "{}", t.jitter_us());
        assert_eq!(t.span_us, Some((3_000, 102_000)));
    }

    #[test]
    fn a_switch_that_repeats_a_frame_number_is_a_switch_not_a_duplicate() {
        // Requirement: the new layer's first frame may carry the number just received on the
        // old layer; a true repeat on the same layer is still a duplicate.
        let t = feed(&[
            (0, 0, 0, 1),
            (1, 0, 0, 2),
            (1, 2, 0, 3),
            (2, 2, 0, 4),
            (2, 2, 0, 5),
        ]);
        assert_eq!(
            (t.frames, t.duplicates, t.layer_switches, t.lost()),
            (3, 1, 1, 0)
        );
    }

    #[test]
    fn counts_rtp_packet_loss_from_frame_sequence_ranges() {
        // Requirement: packet loss is told from the RTP sequence numbers of delivered frames.
        let mut t = TrackStats::new("PA_1".to_owned());
        for (first, last) in [(100, 104), (105, 105), (109, 112), (106, 108), (111, 112)] {
            t.on_rtp_packets(first, last);
        }
        assert_eq!(
            (t.rtp_packets, t.rtp_lost()),
            (10, 3),
            "106..=108 came late: counted as lost, not again"
        );
        let mut fresh = TrackStats::new("PA_1".to_owned());
        assert_eq!(fresh.rtp_lost(), 0);
        fresh.on_rtp_packets(0, 0);
        assert_eq!((fresh.rtp_packets, fresh.rtp_lost()), (1, 0));
    }

    #[test]
    fn frames_of_another_publisher_are_errors() {
        // Requirement: a subscriber notices media from the wrong publisher on a track.
        let mut t = TrackStats::new("PA_1".to_owned());
        let mut other = frame(0, 0, 0);
        other.publisher = "PA_2".to_owned();
        assert!(!t.on_frame(&other, 100, 10));
        t.on_bad_frame();
        assert_eq!((t.frames, t.errors), (0, 2));
    }
}
