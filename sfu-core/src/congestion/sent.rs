//! The packets we numbered with transport-wide sequence numbers: when each left, how big
//! it was and whether it probed, until a receiver's feedback tells what became of it.

use std::time::Instant;

/// How many packets are remembered: feedback comes every 50–100 ms, so this covers
/// two seconds of a subscriber's downlink at 1,000 packets/s (each entry is 48 bytes).
pub const REMEMBERED: usize = 2048;

/// A probe cluster a packet was sent for, as the estimator asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeTag {
    /// The cluster's id.
    pub cluster: i32,
    /// The fewest packets the cluster must send.
    pub min_probes: i32,
    /// The fewest bytes the cluster must send.
    pub min_bytes: i32,
}

/// What is known of one sent packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Its sequence number, extended past every wrap (the first packet is 0).
    pub seq: u64,
    /// When it left.
    pub at: Instant,
    /// Its size on the wire (RTP and SRTP), bytes.
    pub bytes: u16,
    /// The probe cluster it belonged to.
    pub probe: Option<ProbeTag>,
    /// Whether feedback already reported it received (later reports of it are ignored).
    pub acked: bool,
}

/// The last [`REMEMBERED`] packets sent, by transport-wide sequence number.
#[derive(Debug)]
pub struct SentLog {
    slots: Vec<Option<Sent>>,
    next: u64,
    /// Packets numbered below it are forgotten (see [`forget`](Self::forget)).
    floor: u64,
}

impl Default for SentLog {
    fn default() -> Self {
        Self {
            slots: vec![None; REMEMBERED],
            next: 0,
            floor: 0,
        }
    }
}

impl SentLog {
    /// Number the next packet, `bytes` long, leaving at `at`: returns the 16-bit sequence
    /// number it carries.
    pub fn record(&mut self, at: Instant, bytes: usize, probe: Option<ProbeTag>) -> u16 {
        let seq = self.next;
        self.next += 1;
        self.slots[slot(seq)] = Some(Sent {
            seq,
            at,
            bytes: u16::try_from(bytes).unwrap_or(u16::MAX),
            probe,
            acked: false,
        });
        seq as u16
    }

    /// The 16-bit sequence number the next packet will carry.
    pub fn next_seq(&self) -> u16 {
        self.next as u16
    }

    /// Forget every packet sent so far: reports about them find nothing.
    pub fn forget(&mut self) {
        self.floor = self.next;
    }

    /// The packet a report calls `seq`: the latest one sent with those 16 bits, if still
    /// remembered.
    pub fn get_mut(&mut self, seq: u16) -> Option<&mut Sent> {
        let back = u64::from((self.next as u16).wrapping_sub(seq));
        if back == 0 || back > self.next - self.floor || back > REMEMBERED as u64 {
            return None;
        }
        let extended = self.next - back;
        self.slots[slot(extended)]
            .as_mut()
            .filter(|sent| sent.seq == extended)
    }
}

/// Where packet `seq` is kept.
fn slot(seq: u64) -> usize {
    (seq % REMEMBERED as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_sent_by_its_16_bits_across_the_wrap() {
        // Requirement: a report's 16-bit numbers find the latest packet sent with them;
        // numbers not sent yet or forgotten find nothing.
        let t0 = Instant::now();
        let mut log = SentLog::default();
        for i in 0..70_000u64 {
            assert_eq!(log.record(t0, 100, None), i as u16);
        }
        let last = log.get_mut(69_999u64 as u16).expect("the last packet");
        assert_eq!((last.seq, last.bytes), (69_999, 100));
        assert_eq!(log.get_mut(70_000u64 as u16), None, "not sent yet");
        let oldest = 70_000 - REMEMBERED as u64;
        assert_eq!(log.get_mut(oldest as u16).map(|s| s.seq), Some(oldest));
        assert_eq!(log.get_mut((oldest - 1) as u16), None, "forgotten");
        let fresh = SentLog::default().get_mut(0).map(|s| s.seq);
        assert_eq!(fresh, None);
        // Requirement: a subscriber's log stays under 100 KB.
        assert!(std::mem::size_of::<Option<Sent>>() * REMEMBERED <= 48 * 2048);
    }

    #[test]
    fn forgets_what_was_sent_before_and_goes_on_numbering() {
        // Requirement: after `forget` the packets sent before find nothing, the numbering
        // goes on, and what is sent after is found.
        let t0 = Instant::now();
        let mut log = SentLog::default();
        for _ in 0..10 {
            log.record(t0, 100, None);
        }
        log.forget();
        assert_eq!(log.get_mut(9), None, "sent before");
        assert_eq!(log.record(t0, 200, None), 10);
        assert_eq!(log.get_mut(10).map(|s| s.bytes), Some(200));
        assert_eq!(log.get_mut(9), None, "still forgotten");
    }
}
