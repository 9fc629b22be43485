//! Keyframe request throttling: subscribers' PLI/FIR storms become at most one
//! request per layer per interval toward the publisher.

use std::time::{Duration, Instant};

/// Highest simulcast layer index tracked (q, h, f → 0, 1, 2).
const LAYERS: usize = 3;

/// Remembers when a keyframe was last requested for each layer of one producer.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    last: [Option<Instant>; LAYERS],
}

impl KeyframeThrottle {
    /// A throttle allowing one request per layer per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: [None; LAYERS],
        }
    }

    /// Whether a request for `layer` may go out at `now`; records it when it may.
    /// Layers beyond the tracked range share the highest slot.
    pub fn try_request(&mut self, layer: u8, now: Instant) -> bool {
        let slot = &mut self.last[usize::from(layer).min(LAYERS - 1)];
        let allowed = slot.is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        if allowed {
            *slot = Some(now);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_request_per_layer_per_interval() {
        // Requirement: PLI/FIR storms reach the publisher as at most one request per layer per interval.
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut t = KeyframeThrottle::new(Duration::from_millis(500));
        let cases = [
            (0, 0, true),
            (0, 10, false),
            (1, 10, true),
            (0, 499, false),
            (0, 500, true),
            (1, 400, false),
            (1, 510, true),
            (2, 510, true),
            (7, 600, false),
        ];
        for (layer, ms, expected) in cases {
            assert_eq!(
                t.try_request(layer, at(ms)),
                expected,
                "layer {layer} at {ms} ms"
            );
        }
    }
}
