//! One subscriber's bandwidth over time: the rate its estimator should probe toward, the
//! share of the estimate left for video, and the grace before a shortage pauses a
//! consumer. (The split of one budget across consumers is [`crate::layers::allocate`].)

use std::time::{Duration, Instant};

use crate::layers::{LayerChoice, allocate, wanted_bitrate};

/// Bandwidth kept aside for each audio consumer when sharing a subscriber's estimate.
pub const AUDIO_RESERVE_BPS: u64 = 64_000;
/// The least a subscriber with video is probed for, bits per second.
pub const MIN_VIDEO_PROBE_TARGET_BPS: u64 = 2_500_000;
/// How long the estimate must stay below a consumer's cheapest layer before it is paused.
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// The rate to probe toward: what the video `choices` want plus the audio reserve, and at
/// least [`MIN_VIDEO_PROBE_TARGET_BPS`]: the estimator's first probes happen once and must
/// not be spent on layers whose rate is not measured yet. 0 without video.
pub fn probe_target(choices: &[LayerChoice], audio_consumers: u64) -> u64 {
    if choices.is_empty() {
        return 0;
    }
    (wanted_bitrate(choices) + audio_consumers * AUDIO_RESERVE_BPS).max(MIN_VIDEO_PROBE_TARGET_BPS)
}

/// What the estimate leaves for video once each audio consumer has its reserve (`None`:
/// no estimate yet, so no limit).
pub fn video_budget(estimate: Option<u64>, audio_consumers: u64) -> Option<u64> {
    estimate.map(|b| b.saturating_sub(audio_consumers * AUDIO_RESERVE_BPS))
}

/// Layer picks that pause a consumer for bandwidth only when the shortage lasts: a dip of
/// the estimate (at start-up, or while probing) keeps the cheapest layer flowing for
/// [`PAUSE_AFTER`].
#[derive(Debug, Clone, Default)]
pub struct PauseGrace {
    short_since: Option<Instant>,
}

impl PauseGrace {
    /// Each consumer's layer within `budget` at `now`, in the order of `choices`.
    pub fn picks(
        &mut self,
        budget: Option<u64>,
        choices: &[LayerChoice],
        now: Instant,
    ) -> Vec<Option<u8>> {
        let mut picks = allocate(budget, choices);
        let starved = picks
            .iter()
            .zip(choices)
            .any(|(pick, c)| pick.is_none() && c.select(None).is_some());
        if !starved {
            self.short_since = None;
            return picks;
        }
        let short_since = *self.short_since.get_or_insert(now);
        if now.saturating_duration_since(short_since) < PAUSE_AFTER {
            for (pick, c) in picks.iter_mut().zip(choices) {
                if pick.is_none() {
                    *pick = c.lowest();
                }
            }
        }
        picks
    }
}

/// One subscriber's downlink: its latest estimate, what its estimator was last told to
/// probe for, and the grace of a shortage.
#[derive(Debug, Clone, Default)]
pub struct Downlink {
    estimate: Option<u64>,
    probing_for: u64,
    grace: PauseGrace,
}

/// What one allocation of a subscriber's downlink decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// A new rate for the estimator to probe toward, when it changed.
    pub probe_for: Option<u64>,
    /// What the estimate leaves for video (`None`: no estimate yet, no limit).
    pub budget: Option<u64>,
    /// Each video consumer's layer, in the order of the choices.
    pub picks: Vec<Option<u8>>,
}

impl Downlink {
    /// The estimator's latest estimate, bits per second.
    pub fn on_estimate(&mut self, bps: u64) {
        self.estimate = Some(bps);
    }

    /// The latest estimate, bits per second.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// Share the downlink at `now` between video consumers wanting `choices` (most
    /// important first) and `audio_consumers`.
    pub fn allocate(
        &mut self,
        choices: &[LayerChoice],
        audio_consumers: u64,
        now: Instant,
    ) -> Allocation {
        let target = probe_target(choices, audio_consumers);
        let probe_for = (target != self.probing_for).then(|| {
            self.probing_for = target;
            target
        });
        let budget = video_budget(self.estimate, audio_consumers);
        let picks = self.grace.picks(budget, choices, now);
        Allocation {
            probe_for,
            budget,
            picks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::LayerSet;

    /// A consumer of three active layers at 150 kbit/s, 500 kbit/s and 1.5 Mbit/s.
    fn simulcast(max_layer: Option<u8>) -> LayerChoice {
        LayerChoice {
            max_layer,
            active: LayerSet::of(&[0, 1, 2]),
            bitrates: [150_000, 500_000, 1_500_000],
            current: None,
        }
    }

    #[test]
    fn the_probe_target_covers_what_is_wanted_and_never_less_than_the_floor() {
        let table = [
            (vec![], 3, 0),
            (vec![simulcast(Some(0))], 0, MIN_VIDEO_PROBE_TARGET_BPS),
            (
                vec![simulcast(Some(2)), simulcast(Some(2))],
                2,
                3_000_000 + 2 * AUDIO_RESERVE_BPS,
            ),
        ];
        for (choices, audio, expected) in table {
            assert_eq!(probe_target(&choices, audio), expected, "{choices:?}");
        }
        assert_eq!(video_budget(None, 4), None);
        assert_eq!(video_budget(Some(1_000_000), 2), Some(872_000));
        assert_eq!(video_budget(Some(100_000), 2), Some(0));
    }

    #[test]
    fn a_shortage_pauses_only_after_it_lasted() {
        // Requirement: an estimate below the cheapest layer keeps that layer for
        // PAUSE_AFTER, then pauses; a recovery ends the shortage, and a new dip gets the
        // grace again.
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let choices = [simulcast(Some(2))];
        let mut grace = PauseGrace::default();
        let table = [
            (0, Some(100_000), Some(0)),
            (2_900, Some(100_000), Some(0)),
            (3_000, Some(100_000), None),
            (4_000, Some(100_000), None),
            (4_100, Some(600_000), Some(1)),
            (5_000, Some(100_000), Some(0)),
            (7_900, Some(100_000), Some(0)),
            (8_000, Some(100_000), None),
            (8_100, None, Some(2)),
        ];
        for (ms, budget, expected) in table {
            assert_eq!(
                grace.picks(budget, &choices, at(ms)),
                vec![expected],
                "at {ms} ms with {budget:?}"
            );
        }
        let paused_by_the_subscriber = [simulcast(None)];
        let mut grace = PauseGrace::default();
        assert_eq!(
            grace.picks(Some(0), &paused_by_the_subscriber, at(0)),
            vec![None]
        );
        assert_eq!(grace.short_since, None, "no shortage for a paused consumer");
    }

    #[test]
    fn a_downlink_tells_its_estimator_only_new_targets() {
        // Requirement: the estimator is retold its probe target only when it changes, and
        // the estimate (less the audio reserve) bounds the video layers.
        let now = Instant::now();
        let mut downlink = Downlink::default();
        let one = [simulcast(Some(2))];
        let two = [simulcast(Some(2)), simulcast(Some(2))];
        let first = downlink.allocate(&one, 1, now);
        assert_eq!(first.probe_for, Some(MIN_VIDEO_PROBE_TARGET_BPS));
        assert_eq!((first.budget, first.picks), (None, vec![Some(2)]));
        assert_eq!(downlink.allocate(&one, 1, now).probe_for, None);
        downlink.on_estimate(700_000 + AUDIO_RESERVE_BPS);
        let shared = downlink.allocate(&two, 1, now);
        assert_eq!(shared.probe_for, Some(3_000_000 + AUDIO_RESERVE_BPS));
        assert_eq!(shared.budget, Some(700_000));
        assert_eq!(shared.picks, vec![Some(1), Some(0)]);
        assert_eq!(downlink.estimate(), Some(700_000 + AUDIO_RESERVE_BPS));
        assert_eq!(downlink.allocate(&[], 2, now).probe_for, Some(0));
    }
}
