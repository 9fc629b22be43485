//! Active speaker ranking from RFC 6464 audio levels.
//!
//! Each audio packet's level (0 dBov loudest … -127 dBov silence) is mapped to
//! 0.0–1.0 and smoothed per participant. The ranking lists participants above
//! a speaking threshold, loudest first; it is reported when the order of
//! speakers changes, at most once per minimum interval.

use std::time::{Duration, Instant};

/// Levels at or below this many dBov count as silence (0.0).
const SILENCE_DBOV: f32 = -80.0;
/// Weight of a new packet's level in the smoothed level.
const SMOOTHING: f32 = 0.2;
/// A smoothed level must reach this to count as speaking.
const SPEAKING_THRESHOLD: f32 = 0.25;
/// A participant whose audio stops arriving decays to silence after this long.
const STALE_AFTER: Duration = Duration::from_millis(1000);

/// Map an RFC 6464 level (negative dBov) to 0.0 (silence) – 1.0 (loudest).
pub fn level_from_dbov(dbov: i8) -> f32 {
    let db = f32::from(dbov.min(0));
    ((db - SILENCE_DBOV) / -SILENCE_DBOV).clamp(0.0, 1.0)
}

#[derive(Debug, Clone)]
struct Entry<K> {
    key: K,
    level: f32,
    last_packet: Instant,
}

/// Smoothed audio levels of a room's participants and the last reported ranking.
#[derive(Debug, Clone)]
pub struct SpeakerRanking<K> {
    min_interval: Duration,
    entries: Vec<Entry<K>>,
    reported: Vec<K>,
    last_report: Option<Instant>,
}

impl<K: Clone + PartialEq> SpeakerRanking<K> {
    /// A ranking reported at most once per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            entries: Vec::new(),
            reported: Vec::new(),
            last_report: None,
        }
    }

    /// Record one audio packet's level for `key`.
    pub fn observe(&mut self, key: &K, dbov: i8, now: Instant) {
        let level = level_from_dbov(dbov);
        match self.entries.iter_mut().find(|e| e.key == *key) {
            Some(e) => {
                e.level += SMOOTHING * (level - e.level);
                e.last_packet = now;
            }
            None => self.entries.push(Entry {
                key: key.clone(),
                level: SMOOTHING * level,
                last_packet: now,
            }),
        }
    }

    /// Forget a participant that left.
    pub fn remove(&mut self, key: &K) {
        self.entries.retain(|e| e.key != *key);
    }

    /// The current speakers, loudest first, if their order changed since the last
    /// report and the minimum interval has passed.
    pub fn poll(&mut self, now: Instant) -> Option<Vec<(K, f32)>> {
        if self
            .last_report
            .is_some_and(|t| now.saturating_duration_since(t) < self.min_interval)
        {
            return None;
        }
        let mut speaking: Vec<(K, f32)> = self
            .entries
            .iter()
            .filter(|e| now.saturating_duration_since(e.last_packet) < STALE_AFTER)
            .filter(|e| e.level >= SPEAKING_THRESHOLD)
            .map(|e| (e.key.clone(), e.level))
            .collect();
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1));
        let order: Vec<K> = speaking.iter().map(|(k, _)| k.clone()).collect();
        if order == self.reported {
            return None;
        }
        self.reported = order;
        self.last_report = Some(now);
        Some(speaking)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(
        r: &mut SpeakerRanking<&'static str>,
        key: &'static str,
        dbov: i8,
        from_ms: u64,
        to_ms: u64,
        t0: Instant,
    ) {
        for ms in (from_ms..to_ms).step_by(20) {
            r.observe(&key, dbov, t0 + Duration::from_millis(ms));
        }
    }

    #[test]
    fn levels_map_from_dbov_to_unit_range() {
        // Requirement: 0 dBov is 1.0, silence is 0.0, and louder is always higher.
        assert_eq!(level_from_dbov(0), 1.0);
        assert_eq!(level_from_dbov(-127), 0.0);
        assert_eq!(level_from_dbov(-80), 0.0);
        assert!(level_from_dbov(-20) > level_from_dbov(-40));
        assert_eq!(level_from_dbov(5), 1.0);
    }

    #[test]
    fn speakers_are_ranked_loudest_first_and_reported_on_change_only() {
        // Requirement: the ranking lists speakers loudest first, is sent only when it changes, and not more often than the interval.
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = SpeakerRanking::new(Duration::from_millis(300));
        feed(&mut r, "a", -20, 0, 400, t0);
        feed(&mut r, "b", -50, 0, 400, t0);
        feed(&mut r, "c", -127, 0, 400, t0);
        let first = r.poll(at(400)).expect("first ranking");
        assert_eq!(
            first.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(first[0].1 > first[1].1);
        assert_eq!(
            r.poll(at(800)),
            None,
            "unchanged order is not reported again"
        );
        // b gets louder than a.
        feed(&mut r, "a", -60, 400, 1200, t0);
        feed(&mut r, "b", -5, 400, 1200, t0);
        let swapped = r.poll(at(1200)).expect("new order");
        assert_eq!(swapped[0].0, "b");
        // a gets loudest again, but the next report waits for the interval.
        feed(&mut r, "a", 0, 1200, 1800, t0);
        feed(&mut r, "b", -127, 1200, 1800, t0);
        assert_eq!(r.poll(at(1400)), None, "reported less than 300 ms ago");
        assert_eq!(r.poll(at(1800)).expect("a first again")[0].0, "a");
    }

    #[test]
    fn silence_and_departure_remove_a_speaker() {
        // Requirement: a participant whose audio stops, or who leaves, drops out of the ranking.
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut r = SpeakerRanking::new(Duration::from_millis(100));
        feed(&mut r, "a", -10, 0, 400, t0);
        feed(&mut r, "b", -10, 0, 400, t0);
        assert_eq!(r.poll(at(400)).map(|v| v.len()), Some(2));
        feed(&mut r, "b", -10, 400, 2000, t0);
        let only_b = r.poll(at(2000)).expect("a went stale");
        assert_eq!(
            only_b.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec!["b"]
        );
        r.remove(&"b");
        assert_eq!(r.poll(at(2200)), Some(vec![]));
    }
}
