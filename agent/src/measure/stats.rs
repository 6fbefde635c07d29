//! Summary statistics of a measurement run (pure). Every sample is kept and shown;
//! the trimmed mean drops the stated fraction at each end *for that statistic only*.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Values the statistics were computed over (samples where the figure was measured).
    pub count: usize,
    pub trimmed_mean: f64,
    /// How many values were left out at each end for `trimmed_mean`.
    pub trimmed_each_end: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Population standard deviation of all values.
    pub stddev: f64,
}

/// `trim` is the fraction dropped at each end (0 ≤ trim < 0.5), rounded down to whole
/// samples as in `scipy.stats.trim_mean`. `None` for no values.
pub fn summarize(values: &[f64], trim: f64) -> Option<Summary> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let cut = ((n as f64) * trim.clamp(0.0, 0.499_999)).floor() as usize;
    let kept = &sorted[cut..n - cut];
    let mean_of = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
    let mean = mean_of(&sorted);
    let variance = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(Summary {
        count: n,
        trimmed_mean: mean_of(kept),
        trimmed_each_end: cut,
        median,
        min: sorted[0],
        max: sorted[n - 1],
        stddev: variance.sqrt(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn trimmed_mean_drops_the_extremes() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 1000.0];
        let s = summarize(&values, 0.1).unwrap();
        assert_eq!(s.trimmed_each_end, 1);
        assert_eq!(s.trimmed_mean, 5.5);
        assert_eq!(s.median, 5.5);
        assert_eq!((s.min, s.max), (1.0, 1000.0));
        assert_eq!(s.count, 10);
    }

    #[test]
    fn twenty_samples_at_ten_percent_drop_two_each_end() {
        let values: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = summarize(&values, 0.1).unwrap();
        assert_eq!(s.trimmed_each_end, 2);
        assert_eq!(s.trimmed_mean, 10.5);
        assert!((s.stddev - 5.766_281_297_335_398).abs() < 1e-12);
    }

    #[test]
    fn odd_count_median_and_no_values() {
        assert_eq!(summarize(&[3.0, 1.0, 2.0], 0.0).unwrap().median, 2.0);
        assert_eq!(summarize(&[], 0.1), None);
        assert_eq!(summarize(&[f64::NAN], 0.1), None);
    }

    proptest! {
        #[test]
        fn statistics_stay_within_the_range(values in proptest::collection::vec(-1e9f64..1e9, 1..60), trim in 0.0f64..0.5) {
            let s = summarize(&values, trim).unwrap();
            prop_assert!(s.min <= s.trimmed_mean + 1e-6 && s.trimmed_mean <= s.max + 1e-6);
            prop_assert!(s.min <= s.median && s.median <= s.max);
            prop_assert!(s.stddev >= 0.0);
            prop_assert!(2 * s.trimmed_each_end < s.count);
        }
    }
}
