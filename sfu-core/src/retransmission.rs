//! What a retransmission (RFC 4588 RTX, answering a NACK) is rebuilt from, kept without a
//! copy per subscriber: each producer keeps the payloads it received lately in a
//! [`PayloadHistory`], and each consumer's stream remembers, per outgoing sequence number,
//! which payload it sent with which header in a [`SentHistory`].

use std::time::{Duration, Instant};

use crate::vp8_munger::Vp8Fields;

/// The payloads a producer received lately, each under an id that only grows. Slots are
/// reused: once warm, remembering a payload allocates nothing.
#[derive(Debug, Clone)]
pub struct PayloadHistory {
    slots: Vec<(u64, Vec<u8>)>,
    next: u64,
}

impl PayloadHistory {
    /// A history of the last `capacity` payloads.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: vec![(u64::MAX, Vec::new()); capacity.max(1)],
            next: 0,
        }
    }

    /// Remember `payload`; returns its id.
    pub fn push(&mut self, payload: &[u8]) -> u64 {
        let id = self.next;
        self.next += 1;
        let len = self.slots.len();
        let slot = &mut self.slots[slot_of(id, len)];
        slot.0 = id;
        slot.1.clear();
        slot.1.extend_from_slice(payload);
        id
    }

    /// The payload remembered as `id`, unless newer ones took its slot.
    pub fn get(&self, id: u64) -> Option<&[u8]> {
        let (held, payload) = &self.slots[slot_of(id, self.slots.len())];
        (*held == id).then_some(payload.as_slice())
    }
}

/// One packet a consumer's stream sent: enough to send it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentPacket {
    /// Extended outgoing sequence number.
    pub seq: u64,
    /// Outgoing RTP timestamp.
    pub timestamp: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload type (of the media; its RTX payload type is the subscriber's `apt` of it).
    pub payload_type: u8,
    /// The payload's id in its producer's [`PayloadHistory`].
    pub payload_id: u64,
    /// Rewritten VP8 counters written into the payload.
    pub vp8: Option<Vp8Fields>,
    /// When it was last sent (first sent, or resent).
    pub sent_at: Instant,
}

/// The packets one stream sent lately, by sequence number.
#[derive(Debug, Clone)]
pub struct SentHistory {
    slots: Vec<Option<SentPacket>>,
    highest: Option<u64>,
}

/// Why a NACKed packet is not sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotResent {
    /// Older than the history, or never sent.
    Unknown,
    /// Sent (or resent) less than the minimum interval ago: the NACK crossed it.
    TooSoon,
}

impl SentHistory {
    /// A history of the last `capacity` sequence numbers.
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: vec![None; capacity.max(1)],
            highest: None,
        }
    }

    /// `packet` was sent.
    pub fn record(&mut self, packet: SentPacket) {
        let len = self.slots.len();
        self.slots[slot_of(packet.seq, len)] = Some(packet);
        self.highest = Some(self.highest.map_or(packet.seq, |h| h.max(packet.seq)));
    }

    /// The packet a NACK names by its 16-bit sequence number `seq`, to send again at
    /// `now` unless it went out less than `min_interval` ago; marked as resent then.
    pub fn resend(
        &mut self,
        seq: u16,
        now: Instant,
        min_interval: Duration,
    ) -> Result<SentPacket, NotResent> {
        let highest = self.highest.ok_or(NotResent::Unknown)?;
        let extended = extend(highest, seq).ok_or(NotResent::Unknown)?;
        let len = self.slots.len();
        let slot = &mut self.slots[slot_of(extended, len)];
        let packet = slot
            .as_mut()
            .filter(|p| p.seq == extended)
            .ok_or(NotResent::Unknown)?;
        if now.saturating_duration_since(packet.sent_at) < min_interval {
            return Err(NotResent::TooSoon);
        }
        packet.sent_at = now;
        Ok(*packet)
    }
}

/// The extended sequence number nearest `highest` (at most 2^15 behind, never ahead by
/// more) with low bits `seq`.
fn extend(highest: u64, seq: u16) -> Option<u64> {
    let base = highest & !0xFFFF;
    [
        base.checked_sub(0x1_0000),
        Some(base),
        base.checked_add(0x1_0000),
    ]
    .into_iter()
    .flatten()
    .map(|b| b | u64::from(seq))
    .filter(|s| *s <= highest)
    .max()
    .filter(|s| highest - s < 0x8000)
}

/// The slot of `id` in a ring of `len`.
fn slot_of(id: u64, len: usize) -> usize {
    usize::try_from(id % u64::try_from(len).unwrap_or(1)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_stay_until_their_slot_is_reused() {
        // Requirement: the last `capacity` payloads are found by id, older ones are gone.
        let mut h = PayloadHistory::new(3);
        let ids: Vec<u64> = (0u8..5).map(|n| h.push(&[n; 4])).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        assert_eq!(h.get(0), None);
        assert_eq!(h.get(1), None);
        assert_eq!(h.get(2), Some(&[2u8; 4][..]));
        assert_eq!(h.get(4), Some(&[4u8; 4][..]));
        assert_eq!(h.get(5), None, "not yet pushed");
    }

    fn sent(seq: u64, at: Instant) -> SentPacket {
        SentPacket {
            seq,
            timestamp: 90 * u32::try_from(seq).expect("small"),
            marker: false,
            payload_type: 96,
            payload_id: seq + 1000,
            vp8: None,
            sent_at: at,
        }
    }

    #[test]
    fn a_nack_finds_the_packet_across_the_wrap_once_per_interval() {
        // Requirement: 16-bit NACKed numbers extend to the packets sent around the
        // highest one (across a wrap); one too old, not sent or just resent is refused.
        let t0 = Instant::now();
        let gap = Duration::from_millis(50);
        let mut h = SentHistory::new(64);
        assert_eq!(h.resend(1, t0, gap), Err(NotResent::Unknown));
        for seq in 65_530..65_545 {
            h.record(sent(seq, t0));
        }
        let later = t0 + Duration::from_millis(100);
        assert_eq!(h.resend(65_535, later, gap).map(|p| p.seq), Ok(65_535));
        assert_eq!(h.resend(3, later, gap).map(|p| p.payload_id), Ok(66_539));
        assert_eq!(h.resend(3, later + gap / 2, gap), Err(NotResent::TooSoon));
        assert_eq!(h.resend(3, later + gap, gap).map(|p| p.seq), Ok(65_539));
        assert_eq!(
            h.resend(9, later, gap),
            Err(NotResent::Unknown),
            "not sent yet"
        );
        for seq in 65_545..65_700 {
            h.record(sent(seq, t0));
        }
        assert_eq!(
            h.resend(65_535, later, gap),
            Err(NotResent::Unknown),
            "overwritten"
        );
    }

    #[test]
    fn extending_prefers_the_nearest_earlier_number() {
        let table = [
            (70_000, 4464, Some(70_000)),
            (70_000, 4000, Some(69_536)),
            (70_000, 65_000, Some(65_000)),
            (70_000, 5000, None),
            (10, 65_535, None),
            (40_000, 7_000, None),
        ];
        for (highest, seq, want) in table {
            assert_eq!(extend(highest, seq), want, "{highest} {seq}");
        }
    }
}
