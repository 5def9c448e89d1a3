//! Percentiles of measured samples, with one convention for every report of the crate (the
//! simulator's proofs, the benchmarks and the membership tests), so that a "p99" means the same
//! figure everywhere.
//!
//! The convention is the nearest rank: the `p`-th percentile of `n` sorted samples is the
//! sample of rank `ceil(p/100 · n)` (1-based, at least 1). It is always one of the samples (no
//! interpolation); p100 is the maximum and p0 the minimum.

/// The `p`-th percentile (`p` in percent, 0-100) of samples sorted in ascending order, by the
/// nearest rank; `None` when there are no samples.
pub fn nearest_rank<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    if sorted.is_empty() {
        return None;
    }
    // p·n first, then /100: exact for whole percents (p/100 is not, e.g. 0.07·100 > 7).
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Sorts `samples` (a copy) and takes their nearest-rank `p`-th percentile (in percent).
pub fn of_unsorted(samples: &[f64], p: f64) -> Option<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    nearest_rank(&v, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 50.0), Some(50));
        assert_eq!(nearest_rank(&v, 99.0), Some(99));
        assert_eq!(nearest_rank(&v, 7.0), Some(7));
        assert_eq!(nearest_rank(&v, 0.0), Some(1));
        assert_eq!(nearest_rank(&v, 100.0), Some(100));
        assert_eq!(nearest_rank(&[7], 99.0), Some(7));
        assert_eq!(nearest_rank(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(nearest_rank::<u64>(&[], 50.0), None);
        assert_eq!(of_unsorted(&[3.0, 1.0, 2.0], 100.0), Some(3.0));
    }
}
