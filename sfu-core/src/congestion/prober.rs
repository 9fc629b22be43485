//! Sending the probe clusters the estimator asks for: padding at a cluster's rate until it
//! has sent its bytes and packets, so the receiver's feedback measures that rate.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::sent::ProbeTag;

/// One probe the estimator asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePlan {
    /// The cluster's id.
    pub cluster: i32,
    /// The rate to send at, bits per second.
    pub rate_bps: u64,
    /// The fewest packets to send.
    pub min_probes: i32,
    /// How long to send for at that rate.
    pub duration: Duration,
}

/// How long a cluster may wait to start (no path yet, nothing to pad on) before it is
/// given up: its estimate would describe a moment long gone.
const START_WITHIN: Duration = Duration::from_secs(1);
/// The most clusters waiting; more asks replace the oldest.
const MAX_QUEUED: usize = 4;

/// A cluster being sent.
#[derive(Debug, Clone, Copy)]
struct Cluster {
    plan: ProbePlan,
    asked_at: Instant,
    started_at: Option<Instant>,
    sent_bytes: u64,
    sent_probes: i32,
}

impl Cluster {
    fn tag(&self) -> ProbeTag {
        ProbeTag {
            cluster: self.plan.cluster,
            min_probes: self.plan.min_probes,
            min_bytes: i32::try_from(self.min_bytes()).unwrap_or(i32::MAX),
        }
    }

    fn min_bytes(&self) -> u64 {
        (self.plan.rate_bps as u128 * self.plan.duration.as_micros() / 8_000_000) as u64
    }

    fn done(&self) -> bool {
        self.sent_probes >= self.plan.min_probes && self.sent_bytes >= self.min_bytes()
    }

    /// When the next packet may leave: once the bytes sent so far fit the rate (the
    /// first one as soon as asked).
    fn next_at(&self) -> Instant {
        let Some(start) = self.started_at else {
            return self.asked_at;
        };
        let micros = self.sent_bytes as u128 * 8_000_000 / u128::from(self.plan.rate_bps.max(1));
        start + Duration::from_micros(micros as u64)
    }
}

/// The clusters asked for, sent one after another.
#[derive(Debug, Default)]
pub struct Prober {
    clusters: VecDeque<Cluster>,
}

impl Prober {
    /// The estimator asked for `plan` at `now`.
    pub fn push(&mut self, plan: ProbePlan, now: Instant) {
        if self.clusters.len() == MAX_QUEUED {
            self.clusters.pop_front();
        }
        self.clusters.push_back(Cluster {
            plan,
            asked_at: now,
            started_at: None,
            sent_bytes: 0,
            sent_probes: 0,
        });
    }

    /// When the next probe packet is due, if a cluster is waiting.
    pub fn next_at(&self) -> Option<Instant> {
        self.clusters.front().map(Cluster::next_at)
    }

    /// Whether a probe packet of `bytes` is due at `now`: the tag to send it with, counted
    /// as sent. Clusters that could not start in time are dropped.
    pub fn poll(&mut self, bytes: usize, now: Instant) -> Option<ProbeTag> {
        while let Some(front) = self.clusters.front()
            && front.started_at.is_none()
            && now.saturating_duration_since(front.asked_at) > START_WITHIN
        {
            self.clusters.pop_front();
        }
        let cluster = self.clusters.front_mut()?;
        if cluster.next_at() > now {
            return None;
        }
        cluster.started_at.get_or_insert(now);
        cluster.sent_bytes += bytes as u64;
        cluster.sent_probes += 1;
        let tag = cluster.tag();
        if cluster.done() {
            self.clusters.pop_front();
        }
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(cluster: i32, rate_bps: u64) -> ProbePlan {
        ProbePlan {
            cluster,
            rate_bps,
            min_probes: 5,
            duration: Duration::from_millis(15),
        }
    }

    #[test]
    fn a_cluster_is_paced_at_its_rate_until_its_bytes_and_packets_are_sent() {
        // Requirement: 1 Mbit/s for 15 ms is 1875 bytes; 250-byte packets leave every 2 ms,
        // and the cluster ends after its 8th packet (both minimums met).
        let t0 = Instant::now();
        let mut prober = Prober::default();
        prober.push(plan(7, 1_000_000), t0);
        let mut sent_at = Vec::new();
        let mut now = t0;
        while let Some(at) = prober.next_at() {
            now = now.max(at);
            let tag = prober.poll(250, now).expect("due");
            assert_eq!((tag.cluster, tag.min_probes, tag.min_bytes), (7, 5, 1875));
            sent_at.push(now.duration_since(t0).as_millis());
            assert!(sent_at.len() <= 8, "the cluster never ends");
        }
        assert_eq!(sent_at, [0, 2, 4, 6, 8, 10, 12, 14]);
    }

    #[test]
    fn nothing_is_due_between_packets_and_stale_clusters_are_dropped() {
        // Requirement: a packet leaves only when its time came; a cluster that could not
        // start within a second is forgotten, the next one goes instead.
        let t0 = Instant::now();
        let mut prober = Prober::default();
        assert_eq!(prober.poll(250, t0), None);
        prober.push(plan(1, 1_000_000), t0);
        assert!(prober.poll(250, t0).is_some());
        assert_eq!(prober.poll(250, t0 + Duration::from_millis(1)), None);
        let mut stale = Prober::default();
        stale.push(plan(1, 1_000_000), t0);
        stale.push(plan(2, 1_000_000), t0 + Duration::from_millis(900));
        let late = t0 + Duration::from_millis(1500);
        assert_eq!(stale.poll(250, late).map(|t| t.cluster), Some(2));
    }
}
