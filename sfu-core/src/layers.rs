//! Layer choice: which simulcast layer a consumer should receive.
//!
//! Inputs are plain values: the subscriber's wish (the highest layer it wants,
//! or nothing when paused), the layers the publisher is sending right now, what
//! each layer costs, and the bandwidth this consumer may use. The answer is a
//! layer index (0 = `q`, 1 = `h`, 2 = `f`) or `None`: forward nothing.

/// Number of simulcast layers (q, h, f).
pub const LAYER_COUNT: usize = 3;

/// The layer already forwarded is kept while the budget covers this much less than its rate.
pub const KEEP_DISCOUNT_PERCENT: u64 = 20;

/// The layers a publisher is sending now, as a bit set (bit i = layer i).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LayerSet(u8);

impl LayerSet {
    /// No layer.
    pub const EMPTY: LayerSet = LayerSet(0);

    /// A set of the given layers.
    pub fn of(layers: &[u8]) -> Self {
        layers.iter().fold(Self::EMPTY, |set, &l| set.with(l))
    }

    /// This set plus `layer`.
    pub fn with(self, layer: u8) -> Self {
        if usize::from(layer) < LAYER_COUNT {
            LayerSet(self.0 | (1 << layer))
        } else {
            self
        }
    }

    /// Whether `layer` is in the set.
    pub fn contains(self, layer: u8) -> bool {
        usize::from(layer) < LAYER_COUNT && self.0 & (1 << layer) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layers in ascending order.
    pub fn iter(self) -> impl DoubleEndedIterator<Item = u8> {
        (0..LAYER_COUNT as u8).filter(move |l| self.contains(*l))
    }
}

/// What one consumer could receive: the subscriber's wish and the publisher's layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerChoice {
    /// Highest layer the subscriber wants; `None` when it paused the consumer.
    pub max_layer: Option<u8>,
    /// Layers arriving from the publisher now.
    pub active: LayerSet,
    /// Measured bitrate of each layer, bits per second (0 when unknown).
    pub bitrates: [u64; LAYER_COUNT],
    /// The layer forwarded now, which keeps its place until the budget falls clearly
    /// below its rate (hysteresis against an estimate hovering around it).
    pub current: Option<u8>,
}

impl LayerChoice {
    /// The layers this consumer may be given, best first: the active layers up to
    /// its wish, then (when none is that low) the lowest active layer above it.
    fn candidates(&self) -> impl Iterator<Item = u8> + '_ {
        let max = self.max_layer;
        let within: Vec<u8> = self
            .active
            .iter()
            .rev()
            .filter(|l| max.is_some_and(|m| *l <= m))
            .collect();
        let fallback = if within.is_empty() && max.is_some() {
            self.active.iter().next()
        } else {
            None
        };
        within.into_iter().chain(fallback)
    }

    /// The bitrate `layer` is charged at: its measured rate, discounted by
    /// [`KEEP_DISCOUNT_PERCENT`] for the layer already forwarded.
    pub fn cost(&self, layer: u8) -> u64 {
        let rate = self.bitrates.get(usize::from(layer)).copied().unwrap_or(0);
        if self.current == Some(layer) {
            rate * (100 - KEEP_DISCOUNT_PERCENT) / 100
        } else {
            rate
        }
    }

    /// The best layer that fits `budget` bits per second (`None` budget: unlimited).
    pub fn select(&self, budget: Option<u64>) -> Option<u8> {
        self.candidates()
            .find(|l| budget.is_none_or(|b| self.cost(*l) <= b))
    }

    /// The cheapest layer it may be given at all, ignoring bandwidth.
    pub fn lowest(&self) -> Option<u8> {
        self.candidates().last()
    }
}

/// Share one subscriber's bandwidth across its consumers.
///
/// `choices` are in priority order (most important first). Every consumer is
/// first given its cheapest allowed layer while the budget lasts, in priority
/// order; then, again in priority order, each is upgraded to the best layer the
/// remaining budget allows. A consumer that cannot get even its cheapest layer
/// gets `None` (paused) rather than a stream the link cannot carry.
pub fn allocate(budget: Option<u64>, choices: &[LayerChoice]) -> Vec<Option<u8>> {
    let Some(mut left) = budget else {
        return choices.iter().map(|c| c.select(None)).collect();
    };
    let mut picked: Vec<Option<u8>> = choices
        .iter()
        .map(|c| {
            let lowest = c.lowest()?;
            let cost = c.cost(lowest);
            (cost <= left).then(|| {
                left -= cost;
                lowest
            })
        })
        .collect();
    for (choice, pick) in choices.iter().zip(picked.iter_mut()) {
        let Some(current) = *pick else { continue };
        let spare = left + choice.cost(current);
        if let Some(better) = choice.select(Some(spare)) {
            left = spare - choice.cost(better);
            *pick = Some(better);
        }
    }
    picked
}

/// The bandwidth every consumer's wish would take with no limit: the sum of the
/// measured rates of the layers [`allocate`] gives an unlimited budget. A subscriber's
/// estimator probes up to this figure, so it finds out whether the wishes fit.
pub fn wanted_bitrate(choices: &[LayerChoice]) -> u64 {
    choices
        .iter()
        .filter_map(|c| {
            let layer = c.select(None)?;
            c.bitrates.get(usize::from(layer)).copied()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q: u8 = 0;
    const H: u8 = 1;
    const F: u8 = 2;
    const RATES: [u64; 3] = [150_000, 500_000, 1_500_000];

    fn choice(max: Option<u8>, active: &[u8]) -> LayerChoice {
        LayerChoice {
            max_layer: max,
            active: LayerSet::of(active),
            bitrates: RATES,
            current: None,
        }
    }

    #[test]
    fn every_wish_availability_and_bandwidth_combination() {
        // Requirement: the layer is the best active one within the wish that the bandwidth allows,
        // a lower wish than anything sent gets the lowest layer sent, and nothing affordable means off.
        let all: &[u8] = &[Q, H, F];
        /// (what, wish, layers sent, budget, expected layer)
        type Case<'a> = (&'a str, Option<u8>, &'a [u8], Option<u64>, Option<u8>);
        let cases: &[Case] = &[
            ("high, all sent, unlimited", Some(F), all, None, Some(F)),
            ("medium, all sent, unlimited", Some(H), all, None, Some(H)),
            ("low, all sent, unlimited", Some(Q), all, None, Some(Q)),
            ("paused", None, all, None, None),
            ("high, f stopped", Some(F), &[Q, H], None, Some(H)),
            ("high, only q sent", Some(F), &[Q], None, Some(Q)),
            (
                "low, q stopped: lowest sent instead",
                Some(Q),
                &[H, F],
                None,
                Some(H),
            ),
            ("medium, only f sent", Some(H), &[F], None, Some(F)),
            ("nothing sent", Some(F), &[], None, None),
            (
                "high, 1 Mbps: h fits, f does not",
                Some(F),
                all,
                Some(1_000_000),
                Some(H),
            ),
            (
                "high, 200 kbps: only q",
                Some(F),
                all,
                Some(200_000),
                Some(Q),
            ),
            (
                "high, 100 kbps: nothing fits",
                Some(F),
                all,
                Some(100_000),
                None,
            ),
            (
                "low, 10 Mbps: still low",
                Some(Q),
                all,
                Some(10_000_000),
                Some(Q),
            ),
            (
                "medium, exactly h's rate",
                Some(H),
                all,
                Some(500_000),
                Some(H),
            ),
            (
                "not simulcast (layer 0 only), any wish",
                Some(F),
                &[Q],
                Some(200_000),
                Some(Q),
            ),
        ];
        for (what, max, active, budget, expected) in cases {
            assert_eq!(choice(*max, active).select(*budget), *expected, "{what}");
        }
    }

    #[test]
    fn unknown_bitrates_never_block_a_layer() {
        // Requirement: a layer whose rate is not measured yet (0) is not refused for bandwidth.
        let c = LayerChoice {
            max_layer: Some(F),
            active: LayerSet::of(&[Q, H, F]),
            bitrates: [0; 3],
            current: None,
        };
        assert_eq!(c.select(Some(1)), Some(F));
    }

    #[test]
    fn the_forwarded_layer_is_kept_until_the_budget_is_clearly_short() {
        // Requirement: an estimate hovering just under a layer's rate does not make it flap; a clear shortfall does downgrade.
        let mut c = choice(Some(F), &[Q, H, F]);
        assert_eq!(
            c.select(Some(1_400_000)),
            Some(H),
            "not yet forwarded: needs the full rate"
        );
        c.current = Some(F);
        assert_eq!(
            c.select(Some(1_400_000)),
            Some(F),
            "forwarded: kept at 93% of its rate"
        );
        assert_eq!(
            c.select(Some(1_100_000)),
            Some(H),
            "73% of its rate: downgraded"
        );
    }

    #[test]
    fn bandwidth_is_shared_in_priority_order() {
        // Requirement: every consumer first gets its cheapest layer in priority order, then upgrades go to the most important first.
        let all: &[u8] = &[Q, H, F];
        /// (what, budget, consumers in priority order, expected layers)
        type Case<'a> = (&'a str, Option<u64>, Vec<LayerChoice>, Vec<Option<u8>>);
        let cases: &[Case] = &[
            (
                "unlimited: everyone their wish",
                None,
                vec![choice(Some(F), all), choice(Some(H), all)],
                vec![Some(F), Some(H)],
            ),
            (
                "1.9 Mbps: first gets f, second keeps q",
                Some(1_900_000),
                vec![choice(Some(F), all), choice(Some(F), all)],
                vec![Some(F), Some(Q)],
            ),
            (
                "1.2 Mbps: h then h",
                Some(1_200_000),
                vec![choice(Some(F), all), choice(Some(F), all)],
                vec![Some(H), Some(H)],
            ),
            (
                "250 kbps: first q, second off",
                Some(250_000),
                vec![choice(Some(F), all), choice(Some(F), all)],
                vec![Some(Q), None],
            ),
            (
                "paused consumer takes nothing",
                Some(700_000),
                vec![choice(None, all), choice(Some(F), all)],
                vec![None, Some(H)],
            ),
            (
                "a low wish leaves room for others",
                Some(1_700_000),
                vec![choice(Some(Q), all), choice(Some(F), all)],
                vec![Some(Q), Some(F)],
            ),
            (
                "100 kbps: everyone off",
                Some(100_000),
                vec![choice(Some(F), all)],
                vec![None],
            ),
        ];
        for (what, budget, choices, expected) in cases {
            assert_eq!(&allocate(*budget, choices), expected, "{what}");
        }
    }

    #[test]
    fn layer_sets_ignore_out_of_range_layers() {
        // Requirement: a rid beyond q/h/f never corrupts the set.
        let set = LayerSet::of(&[0, 2, 7]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![0, 2]);
        assert!(!set.contains(7));
        assert!(LayerSet::EMPTY.is_empty());
    }

    #[test]
    fn wanted_bitrate_sums_what_an_unlimited_budget_gives() {
        let mut kept = choice(Some(F), &[Q, H, F]);
        kept.current = Some(F);
        let table = [
            // (consumers, wanted bits per second, requirement)
            (vec![], 0, "nothing wanted, nothing to probe for"),
            (
                vec![choice(Some(F), &[Q, H, F])],
                1_500_000,
                "full layer when wished and sent",
            ),
            (
                vec![choice(Some(F), &[Q, H])],
                500_000,
                "only layers that arrive count",
            ),
            (
                vec![choice(None, &[Q, H, F])],
                0,
                "a paused consumer wants nothing",
            ),
            (
                vec![kept],
                1_500_000,
                "the kept layer counts at its full rate",
            ),
            (
                vec![choice(Some(Q), &[Q, H, F]), choice(Some(H), &[Q, H, F])],
                650_000,
                "the wishes of all consumers add up",
            ),
            (
                vec![choice(Some(Q), &[H, F])],
                500_000,
                "the fallback above a too-low wish",
            ),
        ];
        for (choices, wanted, requirement) in table {
            assert_eq!(wanted_bitrate(&choices), wanted, "{requirement}");
        }
    }
}
