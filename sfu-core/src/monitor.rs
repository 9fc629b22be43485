//! The LayerMonitor: which simulcast layers of a producer are arriving, and at what bitrate.

use std::time::{Duration, Instant};

use crate::layers::{LAYER_COUNT, LayerSet};

/// Shortest window a bitrate is measured over.
const RATE_WINDOW: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, Default)]
struct LayerStats {
    last_seen: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
    bitrate: u64,
}

/// Per-layer arrival times and bitrates of one producer.
#[derive(Debug, Clone)]
pub struct LayerMonitor {
    inactive_after: Duration,
    layers: [LayerStats; LAYER_COUNT],
}

impl LayerMonitor {
    /// A monitor that drops a layer from the active set after `inactive_after` without packets.
    pub fn new(inactive_after: Duration) -> Self {
        Self {
            inactive_after,
            layers: [LayerStats::default(); LAYER_COUNT],
        }
    }

    /// Record a packet of `bytes` payload bytes on `layer` at `now`.
    pub fn on_packet(&mut self, layer: u8, bytes: usize, now: Instant) {
        let Some(stats) = self.layers.get_mut(usize::from(layer)) else {
            return;
        };
        stats.last_seen = Some(now);
        let start = *stats.window_start.get_or_insert(now);
        stats.window_bytes += bytes as u64;
        let elapsed = now.saturating_duration_since(start);
        if elapsed >= RATE_WINDOW {
            stats.bitrate = stats.window_bytes * 8 * 1000 / elapsed.as_millis().max(1) as u64;
            stats.window_start = Some(now);
            stats.window_bytes = 0;
        }
    }

    /// The layers that had a packet within the inactivity timeout.
    pub fn active(&self, now: Instant) -> LayerSet {
        self.layers
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                s.last_seen
                    .is_some_and(|t| now.saturating_duration_since(t) < self.inactive_after)
            })
            .fold(LayerSet::EMPTY, |set, (i, _)| set.with(i as u8))
    }

    /// Last measured bitrate of each layer in bits per second (0 until measured).
    pub fn bitrates(&self) -> [u64; LAYER_COUNT] {
        self.layers.map(|s| s.bitrate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_that_stops_arriving_leaves_the_active_set_and_returns_with_its_packets() {
        // Requirement: a layer not seen for ~1 s is dropped from the choice, and picked again when it returns.
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut m = LayerMonitor::new(Duration::from_millis(1000));
        m.on_packet(0, 100, at(0));
        m.on_packet(2, 100, at(0));
        assert_eq!(m.active(at(500)), LayerSet::of(&[0, 2]));
        m.on_packet(0, 100, at(900));
        assert_eq!(m.active(at(1000)), LayerSet::of(&[0]));
        m.on_packet(2, 100, at(1500));
        assert_eq!(m.active(at(1600)), LayerSet::of(&[0, 2]));
        m.on_packet(9, 100, at(1600));
        assert_eq!(m.active(at(1600)), LayerSet::of(&[0, 2]));
    }

    #[test]
    fn bitrate_is_measured_per_layer_over_half_second_windows() {
        // Requirement: each layer's bitrate comes from its own packets, in bits per second.
        let t0 = Instant::now();
        let mut m = LayerMonitor::new(Duration::from_secs(1));
        for i in 0..=50u64 {
            // 1000 bytes every 10 ms on layer 1: 800 kbps.
            m.on_packet(1, 1000, t0 + Duration::from_millis(i * 10));
        }
        let rates = m.bitrates();
        assert_eq!(rates[0], 0);
        assert!((790_000..=820_000).contains(&rates[1]), "{rates:?}");
        assert_eq!(rates[2], 0);
    }
}
