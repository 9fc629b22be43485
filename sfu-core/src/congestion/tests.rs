//! The estimator against a simulated bottleneck: a FIFO link of a set rate and queue, a
//! receiver reporting every 100 ms, media that switches layers on the estimate (as the
//! room's allocation does) and the probes the estimator asks for.

use std::collections::VecDeque;

use super::*;
use crate::twcc::{Arrival, TwccHeader};

const MS: Duration = Duration::from_millis(1);
const MEDIA_PACKET: usize = 1200;
const PROBE_PACKET: usize = 250;
const PROPAGATION: Duration = Duration::from_millis(20);
/// The full layer and the low layer the media switches between.
const FULL_BPS: u64 = 1_500_000;
const LOW_BPS: u64 = 150_000;

/// A bottleneck: `rate_bps`, a queue of `queue_bytes`, then [`PROPAGATION`]; a `dead`
/// one carries nothing.
struct Link {
    rate_bps: u64,
    queue_bytes: usize,
    free_at: Instant,
    dead: bool,
}

impl Link {
    /// When a packet of `bytes` sent at `now` arrives, or `None` when the queue is full.
    fn carry(&mut self, bytes: usize, now: Instant) -> Option<Instant> {
        if self.dead {
            return None;
        }
        let start = self.free_at.max(now);
        let backlog = start.duration_since(now).as_micros() as u64 * self.rate_bps / 8_000_000;
        if backlog as usize + bytes > self.queue_bytes {
            return None;
        }
        self.free_at = start + Duration::from_micros(bytes as u64 * 8_000_000 / self.rate_bps);
        Some(self.free_at + PROPAGATION)
    }
}

/// The call: sender, link, and the receiver's pending reports.
struct Call {
    t0: Instant,
    now: Instant,
    cc: Congestion,
    link: Link,
    media_budget: f64,
    /// Sent packets not yet reported: sequence number and arrival (`None`: dropped).
    in_flight: VecDeque<(u16, Option<Instant>)>,
    /// Reports on their way back: when they arrive, and what they say.
    reports: VecDeque<(Instant, TwccHeader, Vec<Arrival>)>,
    next_report: Instant,
    estimate: u64,
}

impl Call {
    fn new(rate_bps: u64) -> Self {
        let t0 = Instant::now();
        let mut cc = Congestion::new(1_000_000, t0);
        cc.want(FULL_BPS + 100_000, t0);
        cc.start(t0);
        Self {
            t0,
            now: t0,
            cc,
            link: Link {
                rate_bps,
                queue_bytes: 30 * MEDIA_PACKET,
                free_at: t0,
                dead: false,
            },
            media_budget: 0.0,
            in_flight: VecDeque::new(),
            reports: VecDeque::new(),
            next_report: t0,
            estimate: 1_000_000,
        }
    }

    fn send(&mut self, bytes: usize, probe: Option<ProbeTag>) {
        let seq = self.cc.on_sent(bytes, probe, self.now);
        let arrival = self.link.carry(bytes, self.now);
        self.in_flight.push_back((seq, arrival));
    }

    /// The receiver reports every packet up to the last one that arrived by now.
    fn report(&mut self) {
        let now = self.now;
        let Some(last) = self
            .in_flight
            .iter()
            .rposition(|(_, at)| at.is_some_and(|at| at <= now))
        else {
            return;
        };
        let reported: Vec<_> = self.in_flight.drain(..=last).collect();
        let first_arrival = reported
            .iter()
            .find_map(|(_, at)| *at)
            .expect("one arrived");
        let reference_units = first_arrival.duration_since(self.t0).as_micros() as i64 / 64_000;
        let arrivals = reported
            .iter()
            .map(|(seq, at)| Arrival {
                seq: *seq,
                at_us: at.map(|at| {
                    at.duration_since(self.t0).as_micros() as i64 - reference_units * 64_000
                }),
            })
            .collect();
        let header = TwccHeader {
            base_seq: reported[0].0,
            reference_time: reference_units as u32,
            feedback_count: 0,
        };
        self.reports
            .push_back((now + PROPAGATION, header, arrivals));
    }

    /// Run for `secs` seconds; returns the lowest and the last estimate of the last
    /// `settle` seconds.
    fn run(&mut self, secs: u64, settle: u64) -> (u64, u64) {
        let end = self.now + Duration::from_secs(secs);
        let settled_from = end - Duration::from_secs(settle);
        let mut lowest = u64::MAX;
        while self.now < end {
            while let Some((at, _, _)) = self.reports.front()
                && *at <= self.now
            {
                let (_, header, arrivals) = self.reports.pop_front().expect("a report");
                self.cc.on_feedback(&header, &arrivals, self.now);
            }
            self.cc.on_timeout(self.now);
            if let Some(bps) = self.cc.poll_estimate() {
                self.estimate = bps;
            }
            // The room's allocation: the full layer once it fits.
            let media_bps = if self.estimate >= FULL_BPS + 100_000 {
                FULL_BPS
            } else {
                LOW_BPS
            };
            self.media_budget += media_bps as f64 / 8_000.0;
            while self.media_budget >= MEDIA_PACKET as f64 {
                self.media_budget -= MEDIA_PACKET as f64;
                self.send(MEDIA_PACKET, None);
            }
            while let Some(tag) = self.cc.probe_due(PROBE_PACKET, self.now) {
                self.send(PROBE_PACKET, Some(tag));
            }
            if self.now >= self.next_report {
                self.next_report = self.now + 100 * MS;
                self.report();
            }
            if self.now >= settled_from {
                lowest = lowest.min(self.estimate);
            }
            self.now += MS;
        }
        assert!(!self.cc.is_broken(), "the controller panicked");
        (lowest, self.estimate)
    }
}

#[test]
fn a_free_link_is_found_a_limited_one_respected_and_a_lifted_limit_found_again() {
    // Requirement (what bandwidth.test.mjs checks in a browser): on a free link the
    // estimate reaches the full layer within 10 s; under a 400 kbit/s bottleneck it falls
    // below 400 kbit/s within 15 s and stays above the low layer; with the limit lifted
    // the probes find the full layer again within 40 s.
    let mut call = Call::new(10_000_000);
    let (_, free) = call.run(10, 1);
    assert!(free >= FULL_BPS + 100_000, "free link: estimate {free}");
    call.link.rate_bps = 400_000;
    let (lowest, limited) = call.run(15, 5);
    assert!(limited < 400_000, "limited link: estimate {limited}");
    assert!(lowest >= LOW_BPS, "limited link: estimate fell to {lowest}");
    call.link.rate_bps = 10_000_000;
    let (_, lifted) = call.run(40, 1);
    assert!(
        lifted >= FULL_BPS + 100_000,
        "lifted limit: estimate {lifted}"
    );
}

#[test]
fn a_path_that_comes_back_is_estimated_afresh() {
    // Requirement (what mediapath.test.mjs's blip checks in a browser): with no feedback
    // for 15 s the estimate decays below the full layer; once the path is back, the first
    // report restarts the estimator, which finds the full layer again within 5 s.
    let mut call = Call::new(10_000_000);
    let (_, free) = call.run(10, 1);
    assert!(free >= FULL_BPS + 100_000, "free link: estimate {free}");
    call.link.dead = true;
    let (_, dead) = call.run(15, 1);
    assert!(dead < FULL_BPS, "dead path: estimate {dead}");
    assert_eq!(call.cc.restarts(), 0);
    call.link.dead = false;
    let (_, back) = call.run(5, 1);
    assert!(back >= FULL_BPS + 100_000, "path back: estimate {back}");
    assert_eq!(call.cc.restarts(), 1);
}

#[test]
fn a_short_silence_changes_nothing() {
    // Requirement: feedback missing for less than FEEDBACK_SILENCE (a burst of loss, a
    // late report) does not restart the estimate.
    let mut call = Call::new(10_000_000);
    call.run(10, 1);
    call.link.dead = true;
    call.run(FEEDBACK_SILENCE.as_secs() - 2, 1);
    call.link.dead = false;
    call.run(2, 1);
    assert_eq!(call.cc.restarts(), 0);
}

#[test]
fn reports_of_lost_packets_only_wait_for_one_with_an_arrival() {
    // Requirement: a report where nothing arrived changes nothing by itself (the
    // controller needs an arrival per report); its losses count with the next one.
    let t0 = Instant::now();
    let mut cc = Congestion::new(1_000_000, t0);
    for i in 0..4 {
        cc.on_sent(1200, None, t0 + i * MS);
    }
    let lost = [0, 1].map(|seq| Arrival { seq, at_us: None });
    let header = |base_seq| TwccHeader {
        base_seq,
        reference_time: 0,
        feedback_count: 0,
    };
    cc.on_feedback(&header(0), &lost, t0 + 50 * MS);
    assert_eq!(cc.held_losses.len(), 2);
    let arrived = [2, 3].map(|seq| Arrival {
        seq,
        at_us: Some(i64::from(seq) * 1000),
    });
    cc.on_feedback(&header(2), &arrived, t0 + 60 * MS);
    assert!(cc.held_losses.is_empty());
    assert!(!cc.is_broken());
}
