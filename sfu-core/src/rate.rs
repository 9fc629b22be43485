//! A token bucket: at most `rate` events per second on average, with bursts up to `rate`.
//! Time is an argument, so the decision is tested without clocks.

use std::time::{Duration, Instant};

/// Admits events at a bounded rate.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    capacity: f64,
    per_second: f64,
    tokens: f64,
    updated: Option<Instant>,
}

impl TokenBucket {
    /// A full bucket allowing `per_second` events per second (and bursts of as many).
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            capacity: rate,
            per_second: rate,
            tokens: rate,
            updated: None,
        }
    }

    /// Take one token at `now`; `false` when the bucket is empty (the event is over the rate).
    pub fn admit(&mut self, now: Instant) -> bool {
        let elapsed = self
            .updated
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.updated = Some(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.capacity);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_then_the_steady_rate() {
        // Requirement: a client may send `rate` messages at once, then `rate` per second.
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut bucket = TokenBucket::new(10);
        let burst = (0..15).filter(|_| bucket.admit(at(0))).count();
        assert_eq!(burst, 10, "a full bucket admits 10 at once");
        assert!(!bucket.admit(at(50)), "half a token after 50 ms");
        assert!(bucket.admit(at(100)), "one token after 100 ms");
        let steady = (1..=105).filter(|i| bucket.admit(at(100 + i * 10))).count();
        assert_eq!(
            steady, 10,
            "10 per second at 100 attempts per second (1.05 s)"
        );
        assert!(
            TokenBucket::new(0).admit(at(0)),
            "a zero rate still admits one per second"
        );
    }

    #[test]
    fn idle_time_refills_only_up_to_the_capacity() {
        // Requirement: a quiet client does not save up more than one burst.
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5);
        assert!(bucket.admit(start));
        let later = start + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.admit(later)).count(), 5);
    }
}
