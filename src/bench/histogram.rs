//! A log-linear latency histogram: microseconds, 32 sub-buckets per power of two
//! (about 3 % resolution), fixed size, no allocation per sample.

const SUB: u32 = 32;
const POWERS: u32 = 40;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; (SUB * POWERS) as usize],
            total: 0,
            max: 0,
        }
    }
}

fn bucket(v: u64) -> usize {
    if v < u64::from(SUB) {
        return v as usize;
    }
    let power = 63 - v.leading_zeros();
    let shift = power - SUB.trailing_zeros();
    let sub = (v >> shift) as u32 - SUB;
    (((power - SUB.trailing_zeros() + 1) * SUB + sub) as usize).min((SUB * POWERS) as usize - 1)
}

/// The smallest value that falls into bucket `b`.
fn floor(b: usize) -> u64 {
    let b = b as u32;
    if b < SUB {
        return u64::from(b);
    }
    let power = b / SUB - 1 + SUB.trailing_zeros();
    let sub = b % SUB;
    (u64::from(SUB + sub)) << (power - SUB.trailing_zeros())
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v)] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest sample, exactly.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), to bucket resolution.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return floor(b).min(self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_resolution() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        for (q, want) in [(0.5, 50_000.0), (0.99, 99_000.0), (0.999, 99_900.0)] {
            let got = h.quantile(q) as f64;
            assert!((got - want).abs() / want < 0.04, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.count(), 100_000);
        for v in [0, 1, 31, 32, 33, 1000, 1 << 30] {
            assert!(floor(bucket(v)) <= v, "{v}");
        }
    }
}
