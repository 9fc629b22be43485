//! RTCP feedback counters from str0m's periodic per-stream statistics.
//!
//! str0m reports cumulative NACK/PLI/FIR counts per stream; the room adds each
//! stream's increase since the previous report to the node's counters.

use std::sync::atomic::{AtomicU64, Ordering};

use sfu_core::ids::ParticipantId;
use str0m::media::{Mid, Rid};
use str0m::stats::{MediaEgressStats, MediaIngressStats};

use super::Room;

/// Which way the feedback went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedbackDirection {
    /// Received from a subscriber about a stream we send.
    FromSubscriber,
    /// Sent by us to a publisher about a stream we receive.
    ToPublisher,
}

/// One stream's feedback in one direction.
pub type FeedbackStream = (Mid, Option<Rid>, FeedbackDirection);

/// Last cumulative (nacks, plis, firs) seen per stream of one participant.
pub type FeedbackTotals = std::collections::HashMap<FeedbackStream, [u64; 3]>;

impl Room {
    pub(super) fn egress_stats(&mut self, key: ParticipantId, stats: MediaEgressStats) {
        if let Some(p) = self.participants.get_mut(&key) {
            let consumer = p.consumer_by_mid(stats.mid);
            if let Some(c) = consumer.and_then(|pk| p.consumers_mut().get_mut(&pk)) {
                // Receiver reports count a packet as lost only if it never arrived, even
                // after retransmission: the losses NACK could not repair, as seen downstream.
                let lost = c.on_egress_stats(&stats);
                self.ctx
                    .stats
                    .packets_lost_at_subscribers
                    .fetch_add(lost, Ordering::Relaxed);
            }
        }
        let totals = [stats.nacks, stats.plis, stats.firs];
        let node = self.ctx.stats.clone();
        let counters = [
            &node.nacks_from_subscribers,
            &node.plis_from_subscribers,
            &node.firs_from_subscribers,
        ];
        self.add_feedback(
            key,
            (stats.mid, stats.rid, FeedbackDirection::FromSubscriber),
            totals,
            counters,
        );
    }

    pub(super) fn ingress_stats(&mut self, key: ParticipantId, stats: MediaIngressStats) {
        let totals = [stats.nacks, stats.plis, stats.firs];
        let node = self.ctx.stats.clone();
        let counters = [
            &node.nacks_to_publishers,
            &node.plis_to_publishers,
            &node.firs_to_publishers,
        ];
        self.add_feedback(
            key,
            (stats.mid, stats.rid, FeedbackDirection::ToPublisher),
            totals,
            counters,
        );
    }

    fn add_feedback(
        &mut self,
        key: ParticipantId,
        stream: FeedbackStream,
        totals: [u64; 3],
        counters: [&AtomicU64; 3],
    ) {
        let Some(p) = self.participants.get_mut(&key) else {
            return;
        };
        let previous = p.swap_feedback_totals(stream, totals);
        for ((now, before), counter) in totals.iter().zip(previous).zip(counters) {
            counter.fetch_add(now.saturating_sub(before), Ordering::Relaxed);
        }
    }
}
