//! What one participant of a run did and measured, as the report reads it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use signaling::MediaKind as TrackKind;

use crate::progress::{Progress, add};
use crate::scenario::PeerPlan;
use crate::track_stats::TrackStats;

/// Errors kept per participant (the count goes on).
const MAX_ERRORS_KEPT: usize = 10;
/// What one participant did and measured.
#[derive(Debug)]
pub struct PeerResult {
    /// The plan it ran.
    pub plan: PeerPlan,
    /// Its participant id, once joined.
    pub participant_id: Option<String>,
    /// From opening the WebSocket to ICE+DTLS connected.
    pub join_time: Option<Duration>,
    /// Track ids it published.
    pub published: Vec<String>,
    /// Per received track id: its kind and statistics.
    pub received: HashMap<String, (TrackKind, TrackStats)>,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Data channel messages sent and received.
    pub data_sent: u64,
    /// Data channel messages received.
    pub data_received: u64,
    /// Malformed and forged datagrams sent to the server.
    pub garbage_sent: u64,
    /// How many errors happened.
    pub error_count: u64,
    /// The first few errors, for the report.
    pub errors: Vec<String>,
    /// It stopped before the end of the run (connection lost, server gone, refused).
    pub ended_early: bool,
    /// When it started joining.
    pub started: Instant,
}

impl PeerResult {
    /// Count an error and keep its message if there is room.
    pub fn error(&mut self, progress: &Progress, message: String) {
        self.error_count += 1;
        add(&progress.errors, 1);
        if self.errors.len() < MAX_ERRORS_KEPT {
            self.errors.push(message);
        }
    }
}
