//! A small seeded random number generator (xorshift64*), so a run's media sizes and
//! levels repeat exactly for the same `--seed`.

/// Deterministic pseudo-random numbers; not for anything security related.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value spread uniformly over `[0, 1)`.
    pub fn fraction(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A value spread uniformly over `[1 - spread, 1 + spread]` times `base`.
    pub fn around(&mut self, base: usize, spread: f64) -> usize {
        let factor = 1.0 + spread * (2.0 * self.fraction() - 1.0);
        (base as f64 * factor).round().max(1.0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        // Requirement: runs are reproducible with --seed.
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn around_stays_within_its_spread() {
        // Requirement: frame sizes vary, but only within the configured spread.
        let mut rng = Rng::new(0);
        for _ in 0..10_000 {
            let v = rng.around(1000, 0.2);
            assert!((800..=1200).contains(&v), "{v}");
        }
    }
}
