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

    /// Adds another group's values to this one.
    pub fn append(&mut self, mut other: Samples) {
        self.0.append(&mut other.0);
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

/// A group index meaning "in no group of this dimension".
pub const NO_GROUP: u16 = u16::MAX;

/// The percentiles of many groups at once (waits by urgency, station,
/// clinician, day and hour together), exactly as [`Samples`] would give
/// them, for less work: each value is stored once with its group in each of
/// `D` dimensions, sorted once (a radix sort), and one walk in value order
/// picks the ranks every group needs.
#[derive(Debug, Default, Clone)]
pub struct Grouped<const D: usize> {
    items: Vec<(u32, [u16; D])>,
}

impl<const D: usize> Grouped<D> {
    pub fn with_capacity(n: usize) -> Self {
        Grouped {
            items: Vec::with_capacity(n),
        }
    }

    #[inline]
    pub fn push(&mut self, value: u32, groups: [u16; D]) {
        self.items.push((value, groups));
    }

    /// Adds another set's values (with the same numbering of groups).
    pub fn append(&mut self, mut other: Grouped<D>) {
        self.items.append(&mut other.items);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// `sizes[d]`: how many groups dimension `d` has (indices at or above
    /// it, such as [`NO_GROUP`], belong to none); `ps[d]`: the percentiles
    /// wanted there, ascending. The answer `[d][g][i]` is percentile
    /// `ps[d][i]` of group `g` of dimension `d`.
    pub fn percentiles(mut self, sizes: [usize; D], ps: [&[f64]; D]) -> [Vec<Vec<Option<i64>>>; D] {
        radix_sort(&mut self.items);
        let mut counts: [Vec<u32>; D] = std::array::from_fn(|d| vec![0; sizes[d]]);
        for (_, groups) in &self.items {
            for d in 0..D {
                if let Some(c) = counts[d].get_mut(usize::from(groups[d])) {
                    *c += 1;
                }
            }
        }
        // The ranks each group needs (floor(h) and the one above), flat:
        // group g of dimension d owns ranks[d][start[d][g]..start[d][g + 1]].
        let mut ranks: [Vec<u32>; D] = std::array::from_fn(|_| Vec::new());
        let mut start: [Vec<usize>; D] = std::array::from_fn(|_| Vec::new());
        for d in 0..D {
            for &n in &counts[d] {
                start[d].push(ranks[d].len());
                let first = ranks[d].len();
                if n > 0 {
                    for &p in ps[d] {
                        let (lo, frac) = position(n as usize, p);
                        ranks[d].push(lo as u32);
                        if frac > 0.0 {
                            ranks[d].push(lo as u32 + 1);
                        }
                    }
                }
                let mine = &mut ranks[d][first..];
                mine.sort_unstable();
                let unique = dedup_sorted(mine);
                ranks[d].truncate(first + unique);
            }
            start[d].push(ranks[d].len());
        }
        // One walk in value order: a group's r-th value is the r-th item of
        // it seen. Per group: how many seen so far, and the next rank it
        // needs (u32::MAX once it has them all), side by side.
        let mut values: [Vec<u32>; D] = std::array::from_fn(|d| vec![0; ranks[d].len()]);
        let mut walk: [Vec<(u32, u32)>; D] = std::array::from_fn(|d| {
            (0..sizes[d])
                .map(|g| {
                    (
                        0,
                        ranks[d]
                            .get(start[d][g])
                            .copied()
                            .filter(|_| start[d][g] < start[d][g + 1])
                            .unwrap_or(u32::MAX),
                    )
                })
                .collect()
        });
        let mut next: [Vec<usize>; D] = std::array::from_fn(|d| start[d][..sizes[d]].to_vec());
        for &(value, groups) in &self.items {
            for d in 0..D {
                let g = usize::from(groups[d]);
                let Some(state) = walk[d].get_mut(g) else {
                    continue;
                };
                let r = state.0;
                state.0 = r + 1;
                if r == state.1 {
                    let k = next[d][g];
                    values[d][k] = value;
                    next[d][g] = k + 1;
                    state.1 = if k + 1 < start[d][g + 1] {
                        ranks[d][k + 1]
                    } else {
                        u32::MAX
                    };
                }
            }
        }
        std::array::from_fn(|d| {
            (0..sizes[d])
                .map(|g| {
                    let n = counts[d][g] as usize;
                    let (from, to) = (start[d][g], start[d][g + 1]);
                    let at = |rank: usize| {
                        let i = ranks[d][from..to].partition_point(|&r| (r as usize) < rank);
                        f64::from(values[d][from + i.min(to - from - 1)])
                    };
                    ps[d]
                        .iter()
                        .map(|&p| {
                            if n == 0 {
                                return None;
                            }
                            let (lo, frac) = position(n, p);
                            let x_lo = at(lo);
                            let v = if frac > 0.0 {
                                x_lo + frac * (at(lo + 1) - x_lo)
                            } else {
                                x_lo
                            };
                            Some(v.round() as i64)
                        })
                        .collect()
                })
                .collect()
        })
    }
}

/// Where the p-th percentile of n values lies: `(floor(h), h - floor(h))`.
fn position(n: usize, p: f64) -> (usize, f64) {
    let h = (n - 1) as f64 * p.clamp(0.0, 1.0);
    let lo = (h.floor() as usize).min(n - 1);
    (lo, h - lo as f64)
}

fn dedup_sorted(v: &mut [u32]) -> usize {
    let mut unique = 0;
    for i in 0..v.len() {
        if i == 0 || v[i] != v[unique - 1] {
            v[unique] = v[i];
            unique += 1;
        }
    }
    unique
}

/// Stable least-significant-digit radix sort on the `u32` key, 12 bits at
/// a time, only as many passes as the largest key needs (two for waits
/// under 4.6 hours); a digit that is the same in every key is skipped.
fn radix_sort<T: Copy>(items: &mut Vec<(u32, T)>) {
    const BITS: u32 = 12;
    const RADIX: usize = 1 << BITS;
    if items.len() < 2 {
        return;
    }
    let max = items.iter().map(|i| i.0).max().unwrap_or(0);
    let passes = (32 - max.leading_zeros()).div_ceil(BITS) as usize;
    let mut a = std::mem::take(items);
    // Every digit's counts in one pass over the keys.
    let mut counts = vec![[0usize; RADIX]; passes];
    for (key, _) in &a {
        for (pass, count) in counts.iter_mut().enumerate() {
            count[((key >> (BITS * pass as u32)) as usize) & (RADIX - 1)] += 1;
        }
    }
    let mut b = Vec::new();
    for (pass, count) in counts.iter().enumerate() {
        if count.contains(&a.len()) {
            continue;
        }
        if b.is_empty() {
            b = a.clone();
        }
        let shift = BITS * pass as u32;
        let mut pos = vec![0usize; RADIX];
        let mut total = 0;
        for (digit, c) in count.iter().enumerate() {
            pos[digit] = total;
            total += c;
        }
        for item in &a {
            let digit = ((item.0 >> shift) as usize) & (RADIX - 1);
            b[pos[digit]] = *item;
            pos[digit] += 1;
        }
        std::mem::swap(&mut a, &mut b);
    }
    *items = a;
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
    fn grouped_percentiles_match_one_group_at_a_time() {
        let mut x: u64 = 99;
        let mut grouped = Grouped::<3>::with_capacity(5_000);
        let mut by_hand: Vec<Vec<Samples>> = vec![
            vec![Samples::default()],
            vec![Samples::default(); 7],
            vec![Samples::default(); 40],
        ];
        for i in 0..5_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Values over the whole u32 range, and many repeats.
            let v = if i % 3 == 0 {
                (x >> 32) as u32
            } else {
                (x >> 50) as u32 % 500
            };
            let a = (x >> 20) as u16 % 7;
            // Dimension 2 leaves some values out of every group, and group 39 empty.
            let b = if i % 11 == 0 {
                NO_GROUP
            } else {
                (x >> 10) as u16 % 39
            };
            grouped.push(v, [0, a, b]);
            by_hand[0][0].push(v);
            by_hand[1][usize::from(a)].push(v);
            if b != NO_GROUP {
                by_hand[2][usize::from(b)].push(v);
            }
        }
        let ps0: &[f64] = &[0.5, 0.9, 0.95, 1.0];
        let ps1: &[f64] = &[0.0, 0.5];
        let ps2: &[f64] = &[0.25, 0.5, 0.9];
        let got = grouped.percentiles([1, 7, 40], [ps0, ps1, ps2]);
        for (d, ps) in [ps0, ps1, ps2].into_iter().enumerate() {
            for (g, samples) in by_hand[d].iter_mut().enumerate() {
                assert_eq!(
                    got[d][g],
                    samples.percentiles(ps),
                    "dimension {d} group {g}"
                );
            }
        }
        assert_eq!(got[2][39], vec![None, None, None]);
        let empty = Grouped::<1>::default().percentiles([2], [&[0.5]]);
        assert_eq!(empty, [vec![vec![None], vec![None]]]);
    }

    #[test]
    fn radix_sort_is_a_stable_sort() {
        let mut v: Vec<(u32, usize)> = [5u32, 1 << 24, 3, 5, 0, u32::MAX, 256, 3]
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i))
            .collect();
        let mut expected = v.clone();
        expected.sort_by_key(|&(k, _)| k);
        radix_sort(&mut v);
        assert_eq!(v, expected);
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
