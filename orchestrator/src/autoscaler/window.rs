//! Sliding windows over timed samples: the memory the autoscaler keeps between ticks.
//!
//! A `Window` holds `(t, value)` samples in time order. Time is **seconds as `f64`** on whatever
//! monotonic clock the caller uses (the orchestrator passes seconds since it started; a replayed
//! trace passes its `t` column). Every method takes `now`, so nothing here reads a clock.
//!
//! A window covering `span_s` seconds at `now` is the half-open interval `(now - span_s, now]`:
//! with a 2 s tick and a 6 s span it holds the samples at `now - 4`, `now - 2` and `now`.
//!
//! Gaps are unknown, not zero. `average` divides by the number of samples actually present, and a
//! window with no samples at all answers `None`. A scrape that failed therefore leaves no sample
//! rather than a zero that would pull the average down and scale a busy app in.
//!
//! Pure: no I/O, no clock. It deliberately does not interpolate, weight samples by the time between
//! them or know what the values mean; `decide` gives them meaning.

use std::collections::VecDeque;

/// One measurement: a value observed at time `t` (seconds).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub t: f64,
    pub value: f64,
}

/// Samples in time order, oldest first. Plain data: callers keep it between ticks, and it
/// serializes so an orchestrator could persist it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Window {
    samples: VecDeque<Sample>,
}

impl Window {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the sample `value` taken at `now`.
    ///
    /// Time must not go backwards: a sample older than the newest one held is dropped, because
    /// the windows assume order and a reordered scrape carries no new information. Non-finite
    /// values and times are dropped too, since one `NaN` would poison every average it enters.
    pub fn record(&mut self, now: f64, value: f64) {
        if !now.is_finite() || !value.is_finite() {
            return;
        }
        if self.samples.back().is_some_and(|newest| now < newest.t) {
            return;
        }
        self.samples.push_back(Sample { t: now, value });
    }

    /// Forgets samples that have left a window of `keep_s` seconds ending at `now`.
    pub fn prune(&mut self, now: f64, keep_s: f64) {
        let oldest_kept = now - keep_s;
        while self.samples.front().is_some_and(|oldest| oldest.t <= oldest_kept) {
            self.samples.pop_front();
        }
    }

    /// The samples in `(now - span_s, now]`, oldest first.
    pub fn samples(&self, now: f64, span_s: f64) -> impl Iterator<Item = Sample> + '_ {
        let oldest_excluded = now - span_s;
        self.samples.iter().copied().filter(move |sample| sample.t > oldest_excluded && sample.t <= now)
    }

    /// How many samples fall in `(now - span_s, now]`.
    pub fn count(&self, now: f64, span_s: f64) -> usize {
        self.samples(now, span_s).count()
    }

    /// The mean of the samples in `(now - span_s, now]`, or `None` when there are none.
    ///
    /// Worked example (test `the_average_skips_gaps_instead_of_counting_them_as_zero`): samples
    /// 30 at t = 0 and 30 at t = 4, none at t = 2, average over 6 s at t = 4 is
    /// (30 + 30) / 2 = 30, not (30 + 0 + 30) / 3 = 20.
    pub fn average(&self, now: f64, span_s: f64) -> Option<f64> {
        let (n_samples, total) = self.samples(now, span_s).fold((0usize, 0.0), |(n, sum), sample| (n + 1, sum + sample.value));
        (n_samples > 0).then(|| total / n_samples as f64)
    }

    /// The largest sample in `(now - span_s, now]`, or `None` when there are none.
    pub fn max(&self, now: f64, span_s: f64) -> Option<f64> {
        self.samples(now, span_s).map(|sample| sample.value).reduce(f64::max)
    }

    /// The newest sample at or before `now`.
    pub fn newest(&self, now: f64) -> Option<Sample> {
        self.samples.iter().rev().find(|sample| sample.t <= now).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a window answers at `now` over `span_s`, written compactly so tables stay readable.
    #[derive(Debug, PartialEq)]
    struct Answer {
        count: usize,
        average: Option<f64>,
        max: Option<f64>,
    }

    fn check(samples: &[(f64, f64)], now: f64, span_s: f64, expected: Answer) {
        let mut window = Window::new();
        for &(t, value) in samples {
            window.record(t, value);
        }
        let actual = Answer { count: window.count(now, span_s), average: window.average(now, span_s), max: window.max(now, span_s) };
        assert_eq!(actual, expected, "samples {samples:?} at now = {now} over {span_s} s");
    }

    fn answer(count: usize, average: Option<f64>, max: Option<f64>) -> Answer {
        Answer { count, average, max }
    }

    #[test]
    fn an_empty_window_is_unknown_not_zero() {
        check(&[], 10.0, 60.0, answer(0, None, None));
        check(&[(0.0, 5.0)], 100.0, 60.0, answer(0, None, None));
    }

    #[test]
    fn the_window_is_open_at_its_old_end_and_closed_at_now() {
        check(&[(0.0, 1.0), (2.0, 2.0), (4.0, 3.0), (6.0, 4.0)], 6.0, 6.0, answer(3, Some(3.0), Some(4.0)));
        check(&[(0.0, 1.0), (2.0, 2.0), (4.0, 3.0), (6.0, 4.0)], 5.0, 6.0, answer(3, Some(2.0), Some(3.0)));
        check(&[(0.0, 1.0), (2.0, 2.0), (4.0, 3.0), (6.0, 4.0)], 6.0, 60.0, answer(4, Some(2.5), Some(4.0)));
    }

    #[test]
    fn the_average_skips_gaps_instead_of_counting_them_as_zero() {
        check(&[(0.0, 30.0), (4.0, 30.0)], 4.0, 6.0, answer(2, Some(30.0), Some(30.0)));
        check(&[(0.0, 30.0), (40.0, 10.0)], 40.0, 60.0, answer(2, Some(20.0), Some(30.0)));
    }

    #[test]
    fn samples_from_the_past_and_non_finite_values_are_dropped() {
        check(&[(4.0, 10.0), (2.0, 99.0), (6.0, 20.0)], 6.0, 60.0, answer(2, Some(15.0), Some(20.0)));
        check(&[(2.0, f64::NAN), (4.0, f64::INFINITY), (f64::NAN, 1.0), (6.0, 8.0)], 6.0, 60.0, answer(1, Some(8.0), Some(8.0)));
    }

    #[test]
    fn samples_at_the_same_time_are_all_kept() {
        check(&[(2.0, 10.0), (2.0, 20.0)], 2.0, 6.0, answer(2, Some(15.0), Some(20.0)));
    }

    #[test]
    fn pruning_forgets_only_what_left_the_window() {
        let mut window = Window::new();
        for t in [0.0, 2.0, 4.0, 6.0, 8.0] {
            window.record(t, t);
        }
        window.prune(8.0, 6.0);
        assert_eq!(window.count(8.0, 1000.0), 3, "samples at 4, 6 and 8 stay: {window:?}");
        assert_eq!(window.newest(8.0), Some(Sample { t: 8.0, value: 8.0 }));
        assert_eq!(window.newest(7.0), Some(Sample { t: 6.0, value: 6.0 }));
    }
}
