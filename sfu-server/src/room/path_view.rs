//! What operators see of a participant's media path: ICE/DTLS state changes, the selected
//! candidate pair, RTT and loss; and of each consumer: bitrate, loss, RTT and feedback.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use serde::Serialize;
use str0m::CandidateKind;
use str0m::stats::{MediaEgressStats, PeerStats};

/// State changes kept per participant (the first ones and the latest ones matter most).
const TIMELINE_LIMIT: usize = 32;

/// One state change of a participant's connection.
#[derive(Debug, Clone, Serialize)]
pub struct StateChange {
    /// Seconds after the join.
    pub at_secs: f64,
    /// What happened (`ice_checking`, `ice_connected`, `dtls_connected`, `ice_disconnected`, …).
    pub state: String,
}

/// The ICE candidate pair media flows on.
#[derive(Debug, Clone, Serialize)]
pub struct PairView {
    /// `udp` or `tcp`.
    pub protocol: String,
    /// Our address.
    pub local: SocketAddr,
    /// The participant's address as we see it.
    pub remote: SocketAddr,
    /// The kind of the participant's candidate at that address (`host`, `srflx`, `prflx`,
    /// `relay`), from the candidates it signalled; `prflx` when it signalled none there.
    pub remote_kind: String,
}

/// A participant's media path.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MediaPathView {
    /// State changes, oldest first (at most 32: the first 16 and the latest 16).
    pub timeline: Vec<StateChange>,
    /// The selected candidate pair.
    pub selected_pair: Option<PairView>,
    /// Round-trip time, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Share of the packets we sent that the participant lost (last second).
    pub egress_loss: Option<f32>,
    /// Share of the packets it sent that we lost (last interval).
    pub ingress_loss: Option<f32>,
    /// Remote candidates it signalled: address → kind.
    #[serde(skip)]
    remote_candidates: HashMap<SocketAddr, CandidateKind>,
}

impl MediaPathView {
    /// Note a state change `since_join` after the join.
    pub fn record(&mut self, since_join: std::time::Duration, state: &str) {
        if self.timeline.len() >= TIMELINE_LIMIT {
            self.timeline.remove(TIMELINE_LIMIT / 2);
        }
        self.timeline.push(StateChange {
            at_secs: since_join.as_secs_f64(),
            state: state.to_owned(),
        });
    }

    /// Whether a remote candidate at `addr` fits under `limit` distinct addresses.
    pub fn has_room_for_candidate(&self, addr: SocketAddr, limit: usize) -> bool {
        self.remote_candidates.len() < limit || self.remote_candidates.contains_key(&addr)
    }

    /// Forget the signalled candidates: an ICE restart makes them obsolete.
    pub fn forget_remote_candidates(&mut self) {
        self.remote_candidates.clear();
    }

    /// Remember a candidate the participant signalled.
    pub fn remote_candidate(&mut self, addr: SocketAddr, kind: CandidateKind) {
        self.remote_candidates.insert(addr, kind);
    }

    /// Take in str0m's periodic peer statistics.
    pub fn on_peer_stats(&mut self, stats: &PeerStats) {
        self.egress_loss = stats.egress_loss_fraction;
        self.ingress_loss = stats.ingress_loss_fraction;
        let pair_rtt = stats
            .selected_candidate_pair
            .as_ref()
            .and_then(|p| p.current_round_trip_time);
        if let Some(rtt) = stats.rtt.or(pair_rtt) {
            self.rtt_ms = Some(rtt.as_secs_f64() * 1000.0);
        }
        if let Some(pair) = &stats.selected_candidate_pair {
            let remote = pair.remote.addr;
            let remote_kind = self
                .remote_candidates
                .get(&remote)
                .map_or("prflx".to_owned(), |k| k.to_string());
            self.selected_pair = Some(PairView {
                protocol: pair.protocol.to_string().to_lowercase(),
                local: pair.local.addr,
                remote,
                remote_kind,
            });
        }
    }
}

/// What a consumer's outgoing stream looks like from the subscriber's reports.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StreamView {
    /// Bits per second sent over the last stats interval (retransmissions included).
    pub bitrate_bps: u64,
    /// Packets sent in all.
    pub packets: u64,
    /// Fraction lost, from the subscriber's receiver reports.
    pub loss: Option<f32>,
    /// Round-trip time from receiver reports, milliseconds.
    pub rtt_ms: Option<f64>,
    /// Interarrival jitter the subscriber reports, in RTP timestamp units.
    pub jitter: Option<u32>,
    /// NACKs, PLIs and FIRs received from the subscriber.
    pub nacks: u64,
    /// PLIs received.
    pub plis: u64,
    /// FIRs received.
    pub firs: u64,
    #[serde(skip)]
    last: Option<(Instant, u64)>,
}

impl StreamView {
    /// Take in str0m's periodic statistics of the stream.
    pub fn on_egress_stats(&mut self, stats: &MediaEgressStats) {
        if let Some((at, bytes)) = self.last {
            let secs = stats.timestamp.saturating_duration_since(at).as_secs_f64();
            if secs > 0.0 {
                self.bitrate_bps = (stats.bytes.saturating_sub(bytes) as f64 * 8.0 / secs) as u64;
            }
        }
        self.last = Some((stats.timestamp, stats.bytes));
        self.packets = stats.packets;
        self.loss = stats.loss.or(self.loss);
        self.rtt_ms = stats.rtt.map(|d| d.as_secs_f64() * 1000.0).or(self.rtt_ms);
        self.jitter = stats.remote.as_ref().map(|r| r.jitter).or(self.jitter);
        self.nacks = stats.nacks;
        self.plis = stats.plis;
        self.firs = stats.firs;
    }
}
