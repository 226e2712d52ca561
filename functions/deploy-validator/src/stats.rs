//! The statistics of the canary check: is the new release worse than the old one?
//!
//! Both tests are one-sided (only worse fails a release) and use the normal distribution of
//! `statrs`. They are held to SciPy by `tests/canary_stats.rs`: the proportion test to
//! `scipy.stats.chi2_contingency(correction=False)` on the 2x2 table (its square root is the z
//! statistic), the rank test to `scipy.stats.mannwhitneyu(new, old, alternative="greater",
//! method="asymptotic")`.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

/// The chance of a standard normal variable above `z`.
fn upper_tail(z: f64) -> f64 {
    // Mean 0, deviation 1: always a valid distribution.
    Normal::new(0.0, 1.0).map(|n| n.sf(z)).unwrap_or(f64::NAN)
}

/// A one-sided test's outcome: the statistic and the p-value of "the new side is worse".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestOutcome {
    pub statistic: f64,
    pub p_value: f64,
}

/// Two-proportion z-test (pooled), one-sided: is the new side's rate (`errors_new` in `total_new`)
/// higher than the old side's? Counts are CloudWatch sums (floating point). `None` when a side
/// has nothing to divide by. Equal rates of 0 or 1 on both sides (no variance) give p = 1: no
/// evidence that the new side is worse.
pub fn proportion_greater(errors_new: f64, total_new: f64, errors_old: f64, total_old: f64) -> Option<TestOutcome> {
    if !(total_new > 0.0 && total_old > 0.0) {
        return None;
    }
    // A side reporting more errors than requests (metrics from different sources) counts every
    // request as an error, never a rate above 1.
    let (e1, e0) = (errors_new.clamp(0.0, total_new), errors_old.clamp(0.0, total_old));
    let (p1, p0) = (e1 / total_new, e0 / total_old);
    let pooled = (e1 + e0) / (total_new + total_old);
    let spread = (pooled * (1.0 - pooled) * (1.0 / total_new + 1.0 / total_old)).sqrt();
    if spread == 0.0 || !spread.is_finite() {
        return Some(TestOutcome { statistic: 0.0, p_value: 1.0 });
    }
    let z = (p1 - p0) / spread;
    Some(TestOutcome { statistic: z, p_value: upper_tail(z) })
}

/// Mann-Whitney U, one-sided: do the new side's values tend to be greater than the old side's?
/// The normal approximation with SciPy's tie and continuity corrections (`method="asymptotic"`);
/// the statistic is the new side's U. Values that are not finite are left out. `None` when a side
/// has no value; p = 1 when every value ties (no evidence either way).
pub fn mann_whitney_greater(new: &[f64], old: &[f64]) -> Option<TestOutcome> {
    let new: Vec<f64> = new.iter().copied().filter(|v| v.is_finite()).collect();
    let old: Vec<f64> = old.iter().copied().filter(|v| v.is_finite()).collect();
    if new.is_empty() || old.is_empty() {
        return None;
    }
    let (n1, n2) = (new.len() as f64, old.len() as f64);
    let mut all: Vec<(f64, bool)> = new.iter().map(|v| (*v, true)).chain(old.iter().map(|v| (*v, false))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum_new = 0.0;
    let mut ties = 0.0;
    let mut start = 0;
    while start < all.len() {
        let mut end = start + 1;
        while end < all.len() && all[end].0 == all[start].0 {
            end += 1;
        }
        // Ranks start at 1; a group of ties shares the mean of its ranks.
        let average_rank = (start + 1 + end) as f64 / 2.0;
        let count = (end - start) as f64;
        ties += count * count * count - count;
        rank_sum_new += average_rank * all[start..end].iter().filter(|(_, is_new)| *is_new).count() as f64;
        start = end;
    }
    let u = rank_sum_new - n1 * (n1 + 1.0) / 2.0;
    let n = n1 + n2;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance.is_nan() || variance <= 0.0 {
        return Some(TestOutcome { statistic: u, p_value: 1.0 });
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    Some(TestOutcome { statistic: u, p_value: upper_tail(z).clamp(0.0, 1.0) })
}

/// The median of the finite values; `None` for none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 0 { (sorted[middle - 1] + sorted[middle]) / 2.0 } else { sorted[middle] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_doubled_error_rate_on_enough_requests_is_significant_and_an_equal_one_is_not() {
        let worse = proportion_greater(40.0, 1000.0, 20.0, 1000.0).unwrap();
        assert!(worse.p_value < 0.01, "{worse:?}");
        let equal = proportion_greater(20.0, 1000.0, 20.0, 1000.0).unwrap();
        assert!((equal.p_value - 0.5).abs() < 1e-12, "{equal:?}");
        let better = proportion_greater(5.0, 1000.0, 20.0, 1000.0).unwrap();
        assert!(better.p_value > 0.99, "{better:?}");
        assert_eq!(proportion_greater(0.0, 10.0, 0.0, 10.0).unwrap().p_value, 1.0);
        assert_eq!(proportion_greater(1.0, 0.0, 0.0, 10.0), None);
    }

    #[test]
    fn rank_test_counts_ties_as_half_and_leaves_out_what_is_not_a_number() {
        // Every new value above every old one: U = n1 * n2.
        let higher = mann_whitney_greater(&[5.0, 6.0, 7.0], &[1.0, 2.0, 3.0]).unwrap();
        assert_eq!(higher.statistic, 9.0);
        let tied = mann_whitney_greater(&[1.0, f64::NAN], &[1.0]).unwrap();
        assert_eq!(tied, TestOutcome { statistic: 0.5, p_value: 1.0 });
        assert_eq!(mann_whitney_greater(&[], &[1.0]), None);
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::INFINITY]), None);
    }
}
