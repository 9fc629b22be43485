//! Dynacast: which layers of a publisher anyone wants ([`wanted_layers`]), and pause
//! debouncing: a layer nobody wants keeps flowing for a while before the publisher is
//! told to pause it, so quick switches back and forth do not make the publisher's encoder
//! stop and restart layers (each restart reconfigures the encoder and can briefly stall
//! every layer).

use std::time::{Duration, Instant};

use crate::layers::{LAYER_COUNT, LayerSet};
use crate::rids::nearest_layer;

/// The layers of a publisher sending `rids` that are wanted, given each consumer's wished
/// and still-forwarded layers: each mapped to the nearest layer it sends, plus its lowest
/// layer, which always flows (the fallback when a subscriber's bandwidth drops).
pub fn wanted_layers(rids: &[String], consumer_layers: impl IntoIterator<Item = u8>) -> LayerSet {
    consumer_layers
        .into_iter()
        .fold(LayerSet::of(&[nearest_layer(0, rids)]), |wanted, layer| {
            wanted.with(nearest_layer(layer, rids))
        })
}

/// Remembers when each layer was last wanted.
#[derive(Debug, Clone)]
pub struct LayerHold {
    hold: Duration,
    last_wanted: [Option<Instant>; LAYER_COUNT],
}

impl LayerHold {
    /// Layers stay requested for `hold` after they were last wanted.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            last_wanted: [None; LAYER_COUNT],
        }
    }

    /// The layers to request from the publisher, given those wanted at `now`:
    /// wanted layers at once, unwanted ones only after the hold time.
    pub fn update(&mut self, wanted: LayerSet, now: Instant) -> LayerSet {
        let mut requested = LayerSet::EMPTY;
        for (layer, last) in self.last_wanted.iter_mut().enumerate() {
            let layer = layer as u8;
            if wanted.contains(layer) {
                *last = Some(now);
            }
            if last.is_some_and(|t| now.saturating_duration_since(t) < self.hold) {
                requested = requested.with(layer);
            }
        }
        requested
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_layer_and_each_consumers_nearest_layer_are_wanted() {
        // Requirement: the lowest layer sent always flows; a consumer's wish or forwarded
        // layer counts as the nearest layer the publisher sends at or below it.
        let rids = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let cases: [(&[&str], &[u8], &[u8]); 5] = [
            (&["q", "h", "f"], &[], &[0]),
            (&["q", "h", "f"], &[2, 1], &[0, 1, 2]),
            (&["h", "f"], &[0], &[1]),
            (&["q", "f"], &[1], &[0]),
            (&["q", "h", "f"], &[7], &[0, 2]),
        ];
        for (sent, consumers, wanted) in cases {
            assert_eq!(
                wanted_layers(&rids(sent), consumers.iter().copied()),
                LayerSet::of(wanted),
                "{sent:?} {consumers:?}"
            );
        }
    }

    #[test]
    fn unwanted_layers_pause_only_after_the_hold_and_resume_at_once() {
        // Requirement: a layer is resumed as soon as someone wants it and paused only once nobody has wanted it for the hold time.
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut hold = LayerHold::new(Duration::from_secs(5));
        let all = LayerSet::of(&[0, 1, 2]);
        let low = LayerSet::of(&[0]);
        let cases = [
            (0, all, all),
            (1000, low, all),
            (4999, low, all),
            (5000, low, low),
            (7000, LayerSet::of(&[0, 2]), LayerSet::of(&[0, 2])),
            (8000, low, LayerSet::of(&[0, 2])),
            (11_999, low, LayerSet::of(&[0, 2])),
            (12_000, low, low),
            (16_999, LayerSet::EMPTY, low),
            (17_000, LayerSet::EMPTY, LayerSet::EMPTY),
        ];
        for (ms, wanted, expected) in cases {
            assert_eq!(hold.update(wanted, at(ms)), expected, "at {ms} ms");
        }
    }
}
