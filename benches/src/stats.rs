//! Percentiles and averages over measured samples.

use std::time::Duration;

/// Latency samples of one run.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Nearest-rank percentile (`p` in 0–100): the smallest sample that at
    /// least `p`% of the samples do not exceed.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn median(&self) -> Duration {
        self.percentile(50.0)
    }
}

/// Outbound calls per request: the average over a run and the most any one
/// request made.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerRequest {
    total: u64,
    max: u64,
    requests: u64,
}

impl PerRequest {
    pub fn add(&mut self, calls: u64) {
        self.total += calls;
        self.max = self.max.max(calls);
        self.requests += 1;
    }

    pub fn average(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.total as f64 / self.requests as f64
        }
    }

    pub fn max(&self) -> u64 {
        self.max
    }
}

/// `1.23 ms` with a precision that suits the value.
pub fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1_000.0;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut samples = Latencies::default();
        for ms in 1..=100 {
            samples.push(Duration::from_millis(ms));
        }
        assert_eq!(samples.median(), Duration::from_millis(50));
        assert_eq!(samples.percentile(99.0), Duration::from_millis(99));
        assert_eq!(samples.percentile(100.0), Duration::from_millis(100));
        assert_eq!(samples.percentile(0.0), Duration::from_millis(1));
        let mut odd = Latencies::default();
        for ms in [5, 1, 3] {
            odd.push(Duration::from_millis(ms));
        }
        assert_eq!(odd.median(), Duration::from_millis(3));
    }

    #[test]
    fn per_request_average_and_max() {
        let mut calls = PerRequest::default();
        for n in [2, 2, 3, 2] {
            calls.add(n);
        }
        assert_eq!(calls.average(), 2.25);
        assert_eq!(calls.max(), 3);
    }
}
