//! What one of our streams sent and what its subscriber reported of it (receiver report
//! blocks, feedback counts), as str0m reports its own streams: a `MediaEgressStats` each
//! second, so the room's loss counting and dashboards read both egresses alike.

use std::time::{Duration, Instant};

use str0m::media::Mid;
use str0m::rtp::rtcp::ReceptionReport;
use str0m::stats::{MediaEgressStats, RemoteIngressStats};

/// How often a stream's statistics are reported (str0m's stats interval).
pub const STATS_INTERVAL: Duration = Duration::from_secs(1);

/// One stream's counts, reports and round trip.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Bytes and packets sent, retransmissions included.
    bytes: u64,
    packets: u64,
    nacks: u64,
    plis: u64,
    firs: u64,
    /// The NTP middle 32 bits of our last sender report, and when it left.
    last_sr: Option<(u32, Instant)>,
    rtt: Option<Duration>,
    /// The sum and number of the loss fractions reported since the last statistics.
    loss_sum: f32,
    loss_reports: u32,
    remote: Option<RemoteIngressStats>,
    reported_at: Option<Instant>,
}

impl StreamStats {
    /// A packet of `bytes` was sent.
    pub fn sent(&mut self, bytes: usize) {
        self.bytes += bytes as u64;
        self.packets += 1;
    }

    /// A NACK, PLI or FIR about the stream arrived.
    pub fn feedback(&mut self, nacks: u64, plis: u64, firs: u64) {
        self.nacks += nacks;
        self.plis += plis;
        self.firs += firs;
    }

    /// Our sender report with NTP time `ntp` left at `now`.
    pub fn sender_report_sent(&mut self, ntp: u64, now: Instant) {
        self.last_sr = Some((((ntp >> 16) & 0xFFFF_FFFF) as u32, now));
    }

    /// A report block about the stream arrived at `now`: loss, highest sequence number,
    /// jitter, and the round trip when it answers our last sender report (RFC 3550
    /// §6.4.1: arrival less the report's send time less the receiver's delay).
    pub fn on_report(&mut self, block: &ReceptionReport, now: Instant) {
        self.loss_sum += f32::from(block.fraction_lost) / 256.0;
        self.loss_reports += 1;
        // The cumulative count is 24 bits, signed (duplicates can make it negative).
        let lost = ((block.packets_lost << 8) as i32) >> 8;
        self.remote = Some(RemoteIngressStats {
            jitter: block.jitter,
            maximum_sequence_number: u64::from(block.max_seq).into(),
            packets_lost: u64::try_from(lost).unwrap_or(0),
        });
        if let Some((ntp_mid, sent_at)) = self.last_sr
            && block.last_sr_time == ntp_mid
        {
            let delay = Duration::from_micros(u64::from(block.last_sr_delay) * 1_000_000 / 65_536);
            self.rtt = now.saturating_duration_since(sent_at).checked_sub(delay);
        }
    }

    /// The statistics of m-line `mid` at `now`, when [`STATS_INTERVAL`] has passed since
    /// the last (and something was sent).
    pub fn due(&mut self, mid: Mid, now: Instant) -> Option<MediaEgressStats> {
        if self.packets == 0
            || self
                .reported_at
                .is_some_and(|at| now.saturating_duration_since(at) < STATS_INTERVAL)
        {
            return None;
        }
        self.reported_at = Some(now);
        let loss = (self.loss_reports > 0).then(|| self.loss_sum / self.loss_reports as f32);
        (self.loss_sum, self.loss_reports) = (0.0, 0);
        Some(MediaEgressStats {
            mid,
            rid: None,
            bytes: self.bytes,
            packets: self.packets,
            firs: self.firs,
            plis: self.plis,
            nacks: self.nacks,
            rtt: self.rtt,
            loss,
            timestamp: now,
            remote: self.remote.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use str0m::rtp::Ssrc;

    fn block(lost: u32, lsr: u32, dlsr: u32) -> ReceptionReport {
        ReceptionReport {
            ssrc: Ssrc::from(1),
            fraction_lost: 64,
            packets_lost: lost,
            max_seq: 70_000,
            jitter: 9,
            last_sr_time: lsr,
            last_sr_delay: dlsr,
        }
    }

    #[test]
    fn reports_become_statistics_with_loss_and_round_trip() {
        // Requirement: the report's cumulative loss (24-bit signed), jitter and highest
        // number pass through; the round trip is measured only against our own last
        // sender report; a loss fraction is the mean of the reports since last time.
        let t0 = Instant::now();
        let mut stats = StreamStats::default();
        let mid = Mid::from("0");
        assert!(
            stats.due(mid, t0).is_none(),
            "nothing sent, nothing reported"
        );
        stats.sent(1200);
        stats.sent(300);
        stats.feedback(2, 1, 0);
        stats.sender_report_sent(0x0000_1234_5678_0000, t0);
        // Answered 10 ms after it was sent, held 4 ms (262 / 65536 s) by the receiver.
        stats.on_report(&block(5, 0x1234_5678, 262), t0 + Duration::from_millis(10));
        stats.on_report(&block(0xFF_FFFF, 0xDEAD, 0), t0 + Duration::from_millis(20));
        let s = stats.due(mid, t0 + Duration::from_secs(1)).expect("due");
        assert_eq!(
            (s.bytes, s.packets, s.nacks, s.plis, s.firs),
            (1500, 2, 2, 1, 0)
        );
        assert_eq!(s.loss, Some(0.25));
        let rtt = s.rtt.expect("a round trip").as_micros();
        assert!((5_990..=6_010).contains(&rtt), "{rtt} µs");
        let remote = s.remote.expect("the remote side");
        assert_eq!(
            (remote.jitter, *remote.maximum_sequence_number),
            (9, 70_000)
        );
        assert_eq!(remote.packets_lost, 0, "-1 counts as none lost");
        assert!(
            stats.due(mid, t0 + Duration::from_millis(1500)).is_none(),
            "once a second"
        );
        let later = stats
            .due(mid, t0 + Duration::from_secs(2))
            .expect("due again");
        assert_eq!(later.loss, None, "no report since");
    }
}
