//! The RtpMunger: one continuous sequence-number and timestamp space per consumer.
//!
//! A subscriber must see one gap-free stream whatever source (simulcast layer,
//! or a restarted publisher stream) the SFU forwards. The munger maps incoming
//! extended sequence numbers and RTP timestamps of the current source onto the
//! outgoing space with two offsets, and re-bases them on every source switch so
//! the outgoing stream continues right after the last packet it forwarded.

/// Outgoing numbers for one forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Munged {
    /// Extended (64-bit) outgoing sequence number.
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub timestamp: u32,
}

#[derive(Debug, Clone, Copy)]
struct Mapping {
    seq_offset: u64,
    ts_offset: u32,
    source_start_seq: u64,
    /// One past the highest outgoing sequence number so far (where the next source starts).
    next_out_seq: u64,
    highest_out_ts: u32,
}

/// Rewrites sequence numbers and timestamps of forwarded RTP packets.
#[derive(Debug, Clone, Default)]
pub struct RtpMunger {
    mapping: Option<Mapping>,
}

impl RtpMunger {
    /// A munger that has forwarded nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start forwarding a source whose first packet (normally a keyframe start) has
    /// extended sequence number `in_seq` and timestamp `in_ts`.
    ///
    /// The first source keeps its timestamps and the low 16 bits of its sequence
    /// numbers (so the outgoing rollover counter starts at zero). A later source
    /// continues at the sequence number after the highest one forwarded, with its
    /// timestamp `ts_advance` ticks after the highest forwarded packet's.
    pub fn switch_source(&mut self, in_seq: u64, in_ts: u32, ts_advance: u32) {
        let (out_seq, out_ts) = match self.mapping {
            None => (in_seq & 0xFFFF, in_ts),
            Some(m) => (
                m.next_out_seq,
                m.highest_out_ts.wrapping_add(ts_advance.max(1)),
            ),
        };
        self.mapping = Some(Mapping {
            seq_offset: out_seq.wrapping_sub(in_seq),
            ts_offset: out_ts.wrapping_sub(in_ts),
            source_start_seq: in_seq,
            // The switch packet itself takes `out_seq`; rewriting it moves this past it.
            next_out_seq: out_seq,
            highest_out_ts: out_ts,
        });
    }

    /// Whether a source has been started.
    pub fn is_started(&self) -> bool {
        self.mapping.is_some()
    }

    /// Map a packet of the current source. `None` for packets from before the
    /// current source started (they belong to a stream the subscriber never saw).
    pub fn rewrite(&mut self, in_seq: u64, in_ts: u32) -> Option<Munged> {
        let m = self.mapping.as_mut()?;
        if in_seq < m.source_start_seq {
            return None;
        }
        let seq = in_seq.wrapping_add(m.seq_offset);
        let timestamp = in_ts.wrapping_add(m.ts_offset);
        if seq >= m.next_out_seq {
            m.next_out_seq = seq + 1;
            m.highest_out_ts = timestamp;
        }
        Some(Munged { seq, timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(munger: &mut RtpMunger, packets: &[(u64, u32)]) -> Vec<Option<(u64, u32)>> {
        packets
            .iter()
            .map(|&(s, t)| munger.rewrite(s, t).map(|m| (m.seq, m.timestamp)))
            .collect()
    }

    #[test]
    fn the_first_source_passes_through_with_rollover_counter_zero() {
        // Requirement: the first source keeps its timestamps and its 16-bit sequence numbers, ROC 0.
        let mut m = RtpMunger::new();
        m.switch_source(70_000, 1000, 0);
        assert_eq!(
            run(&mut m, &[(70_000, 1000), (70_001, 1000), (70_002, 4000)]),
            vec![Some((4464, 1000)), Some((4465, 1000)), Some((4466, 4000))]
        );
    }

    #[test]
    fn out_of_order_duplicate_and_lost_packets_keep_their_relative_numbers() {
        // Requirement: within one source, reordering, duplicates and gaps are preserved, not invented or hidden.
        let mut m = RtpMunger::new();
        m.switch_source(100, 0, 0);
        let out = run(
            &mut m,
            &[(100, 0), (102, 3000), (101, 0), (102, 3000), (105, 9000)],
        );
        assert_eq!(
            out,
            vec![
                Some((100, 0)),
                Some((102, 3000)),
                Some((101, 0)),
                Some((102, 3000)),
                Some((105, 9000))
            ]
        );
    }

    #[test]
    fn a_switch_continues_right_after_the_highest_forwarded_packet() {
        // Requirement: across a source switch the subscriber sees no sequence gap and a forward timestamp step.
        let mut m = RtpMunger::new();
        m.switch_source(500, 90_000, 0);
        run(&mut m, &[(500, 90_000), (501, 93_000), (502, 93_000)]);
        // The new layer's keyframe has unrelated numbers.
        m.switch_source(40_000, 7_000_000, 3000);
        assert_eq!(
            run(
                &mut m,
                &[
                    (40_000, 7_000_000),
                    (40_001, 7_000_000),
                    (40_002, 7_003_000)
                ]
            ),
            vec![
                Some((503, 96_000)),
                Some((504, 96_000)),
                Some((505, 99_000))
            ]
        );
    }

    #[test]
    fn packets_from_before_the_switch_point_are_dropped() {
        // Requirement: a late packet of the new source from before its keyframe is never forwarded.
        let mut m = RtpMunger::new();
        m.switch_source(10, 0, 0);
        run(&mut m, &[(10, 0), (11, 0)]);
        m.switch_source(900, 50, 10);
        assert_eq!(
            run(&mut m, &[(899, 40), (900, 50)]),
            vec![None, Some((12, 10))]
        );
    }

    #[test]
    fn a_late_packet_does_not_move_the_switch_base_backwards() {
        // Requirement: the next switch continues after the HIGHEST forwarded number, not the last one seen.
        let mut m = RtpMunger::new();
        m.switch_source(10, 0, 0);
        run(&mut m, &[(10, 0), (12, 200), (11, 100)]);
        m.switch_source(5000, 1, 5);
        assert_eq!(run(&mut m, &[(5000, 1)]), vec![Some((13, 205))]);
    }

    #[test]
    fn sequence_and_timestamp_wrap_around_stays_continuous() {
        // Requirement: 16-bit sequence wrap (extended input) and 32-bit timestamp wrap produce continuous output.
        let mut m = RtpMunger::new();
        m.switch_source(65_534, u32::MAX - 1000, 0);
        assert_eq!(
            run(
                &mut m,
                &[
                    (65_534, u32::MAX - 1000),
                    (65_535, u32::MAX - 1000),
                    (65_536, 2000)
                ]
            ),
            vec![
                Some((65_534, u32::MAX - 1000)),
                Some((65_535, u32::MAX - 1000)),
                Some((65_536, 2000))
            ]
        );
        m.switch_source(3, 10, 3000);
        assert_eq!(run(&mut m, &[(3, 10)]), vec![Some((65_537, 5000))]);
    }

    #[test]
    fn a_switch_always_advances_the_timestamp() {
        // Requirement: even with no measured gap, the first packet of a new source gets a later timestamp.
        let mut m = RtpMunger::new();
        m.switch_source(1, 100, 0);
        run(&mut m, &[(1, 100)]);
        m.switch_source(50, 9, 0);
        assert_eq!(run(&mut m, &[(50, 9)]), vec![Some((2, 101))]);
    }

    #[test]
    fn nothing_is_forwarded_before_a_source_starts() {
        // Requirement: the munger never invents numbers for a stream it was not started on.
        let mut m = RtpMunger::new();
        assert!(!m.is_started());
        assert_eq!(m.rewrite(1, 1), None);
    }

    #[test]
    fn a_first_source_starting_at_sequence_zero_still_continues_after_a_switch() {
        // Requirement (found by the `forwarding` fuzz target): when the first forwarded packet's
        // 16-bit sequence number is 0, the next source still continues after it instead of
        // restarting at 0 (the highest-so-far used to be "0 - 1", which overflowed).
        let mut m = RtpMunger::new();
        m.switch_source(0x0001_0000, 100, 0);
        assert_eq!(
            run(&mut m, &[(0x0001_0000, 100), (0x0001_0001, 200)]),
            vec![Some((0, 100)), Some((1, 200))]
        );
        m.switch_source(5_000, 9_000, 3_000);
        assert_eq!(run(&mut m, &[(5_000, 9_000)]), vec![Some((2, 3_200))]);
        let mut fresh = RtpMunger::new();
        fresh.switch_source(0, 0, 0);
        fresh.switch_source(70, 70, 10);
        assert_eq!(
            run(&mut fresh, &[(70, 70)]),
            vec![Some((0, 10))],
            "a switch before any packet"
        );
    }
}
