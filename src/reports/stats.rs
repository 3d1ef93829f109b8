//! Medians and percentiles.
//!
//! **Definition** (the one spreadsheets use, so that a manager checking the
//! CSV export in Excel gets the same figures): linear interpolation between
//! closest ranks, also known as "type 7", Excel's `PERCENTILE.INC` and
//! numpy's default. For `n` values sorted `x[0] <= ... <= x[n-1]` the p-th
//! percentile (0 <= p <= 1) is at position `h = (n - 1) * p`:
//! `x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)])`.
//! The median is p = 0.5 (the middle value, or the mean of the two middle
//! values); p = 1 is the largest. Results are rounded to the millisecond.
//! No values gives no figure (`None`, `null` in JSON), never NaN.

/// The values of one group (e.g. waits on one day), in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<u32>);

impl Samples {
    #[inline]
    pub fn push(&mut self, v: u32) {
        self.0.push(v);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn median(&mut self) -> Option<i64> {
        self.percentiles(&[0.5])[0]
    }

    /// Several percentiles at once, `ps` ascending in 0..=1. Uses selection
    /// (average linear time), not a full sort, and reorders the values.
    pub fn percentiles(&mut self, ps: &[f64]) -> Vec<Option<i64>> {
        let n = self.0.len();
        if n == 0 {
            return vec![None; ps.len()];
        }
        let mut out = Vec::with_capacity(ps.len());
        // Every value before `done` is <= every value from `done` on.
        let mut done = 0usize;
        for &p in ps {
            let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
            let lo = (h.floor() as usize).min(n - 1);
            let frac = h - lo as f64;
            let lo = lo.max(done);
            let rest = &mut self.0[done..];
            let (_, x_lo, right) = rest.select_nth_unstable(lo - done);
            let x_lo = f64::from(*x_lo);
            let value = if frac > 0.0 {
                // The next rank is the smallest value to its right.
                let x_hi = right.iter().copied().min().map_or(x_lo, f64::from);
                x_lo + frac * (x_hi - x_lo)
            } else {
                x_lo
            };
            out.push(Some(value.round() as i64));
            done = lo;
        }
        out
    }
}

/// `part / whole`, or `None` when there is nothing to divide by.
pub fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(v: &[u32]) -> Samples {
        let mut s = Samples::default();
        for &x in v {
            s.push(x);
        }
        s
    }

    #[test]
    fn percentiles_interpolate_between_ranks() {
        // Sorted: 60 100 120 180 240 300 400 600 1000 1200 (n = 10).
        let mut s = samples(&[600, 60, 1200, 240, 100, 1000, 120, 400, 180, 300]);
        let got = s.percentiles(&[0.5, 0.9, 0.95, 1.0]);
        // median: h = 4.5 -> (240 + 300) / 2; p90: h = 8.1 -> 1000 + 0.1 * 200;
        // p95: h = 8.55 -> 1000 + 0.55 * 200; p100: the largest.
        assert_eq!(got, vec![Some(270), Some(1020), Some(1110), Some(1200)]);
    }

    #[test]
    fn small_and_empty_groups() {
        assert_eq!(samples(&[]).percentiles(&[0.5, 0.9]), vec![None, None]);
        assert_eq!(
            samples(&[7]).percentiles(&[0.5, 0.95, 1.0]),
            vec![Some(7); 3]
        );
        assert_eq!(samples(&[1, 2]).median(), Some(2), "1.5 rounds to 2");
        assert_eq!(samples(&[10, 20, 30]).median(), Some(20));
        assert_eq!(
            samples(&[5, 5, 5, 5]).percentiles(&[0.0, 0.5, 1.0]),
            vec![Some(5); 3]
        );
        assert_eq!(share(1, 0), None);
        assert_eq!(share(1, 4), Some(0.25));
    }

    #[test]
    fn matches_a_full_sort_on_many_values() {
        // A simple LCG gives repeatable pseudo-random values.
        let mut x: u64 = 12345;
        let mut v = Vec::new();
        for _ in 0..10_001 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            v.push((x >> 40) as u32 % 100_000);
        }
        let mut sorted = v.clone();
        sorted.sort_unstable();
        let reference = |p: f64| {
            let h = (sorted.len() - 1) as f64 * p;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(sorted.len() - 1);
            (sorted[lo] as f64 + (h - lo as f64) * (sorted[hi] as f64 - sorted[lo] as f64)).round()
                as i64
        };
        let ps = [0.1, 0.25, 0.5, 0.9, 0.95, 0.999, 1.0];
        let got = samples(&v).percentiles(&ps);
        for (p, g) in ps.iter().zip(got) {
            assert_eq!(g, Some(reference(*p)), "p = {p}");
        }
    }
}
