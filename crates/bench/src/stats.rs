//! Percentiles of a set of samples.

use std::time::Duration;

/// Sorted samples in seconds.
#[derive(Debug, Clone)]
pub(crate) struct Samples {
    sorted: Vec<f64>,
}

impl Samples {
    pub(crate) fn from_secs(mut v: Vec<f64>) -> Samples {
        v.sort_by(f64::total_cmp);
        Samples { sorted: v }
    }

    pub(crate) fn from_durations(v: &[Duration]) -> Samples {
        Samples::from_secs(v.iter().map(Duration::as_secs_f64).collect())
    }

    pub(crate) fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Nearest-rank percentile, `p` in 0..=100 (`0` when there are no samples).
    pub(crate) fn pct(&self, p: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    pub(crate) fn p50(&self) -> f64 {
        self.pct(50.0)
    }

    pub(crate) fn p90(&self) -> f64 {
        self.pct(90.0)
    }

    pub(crate) fn p99(&self) -> f64 {
        self.pct(99.0)
    }

    pub(crate) fn max(&self) -> f64 {
        self.sorted.last().copied().unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let s = Samples::from_secs((1..=100).rev().map(f64::from).collect());
        assert_eq!(s.p50(), 50.0);
        assert_eq!(s.p99(), 99.0);
        assert_eq!(s.max(), 100.0);
        assert_eq!(s.pct(0.0), 1.0);
        assert_eq!(Samples::from_secs(vec![]).p50(), 0.0);
    }
}
