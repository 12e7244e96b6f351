//! Downsampling of the monitor's series, pure: which tiers exist and how long each is kept,
//! rolling points up into coarser buckets, which buckets are due, what to prune, and which tier
//! a chart range reads.
//!
//! ```text
//! raw (every monitor.interval, 10 s) ──kept 1 h──┐
//!     └─ each whole minute, mean ──▶ 1 min rollups ──kept 24 h──┐
//!            └─ each whole 10 minutes, mean ──▶ 10 min rollups ──kept 7 d
//! ```
//! Storage stays bounded: with one sample every 10 s a series holds at most 360 + 1440 + 1008
//! rows. A rollup bucket is written once, when it is complete (`pending_window`), and stamped
//! at its start; rolling up twice yields the same rows, so a restart can repeat work safely.

use std::collections::BTreeMap;

/// One level of detail: points `resolution_secs` apart, kept `keep_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub resolution_secs: i64,
    pub keep_secs: i64,
}

/// Raw samples. Their label is 10 s whatever `monitor.interval` is; rollups do not depend on it.
pub const RAW: Tier = Tier { resolution_secs: 10, keep_secs: 3600 };
pub const MINUTES: Tier = Tier { resolution_secs: 60, keep_secs: 24 * 3600 };
pub const TEN_MINUTES: Tier = Tier { resolution_secs: 600, keep_secs: 7 * 24 * 3600 };
pub const TIERS: [Tier; 3] = [RAW, MINUTES, TEN_MINUTES];

/// One value of one metric of one series (`host` or an app) at `at` (Unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub series: String,
    pub metric: String,
    pub at: i64,
    pub value: f64,
}

/// Metrics that count events per interval (wakes): their rollups are sums, so a day's chart
/// still adds up to the day's wakes. Every other metric is a level or a rate, rolled up as a mean.
pub fn is_count(metric: &str) -> bool {
    metric == "wakes"
}

/// The mean (or for `is_count` metrics the sum) of each (series, metric, bucket) of
/// `resolution_secs`, stamped at the bucket's start, sorted by series, metric and time.
/// Example: raw points at 00:00:05 (2.0) and 00:00:55 (4.0) roll up into one minute point at
/// 00:00:00 (3.0); as wakes, into 6.0.
pub fn rollup(points: &[Point], resolution_secs: i64) -> Vec<Point> {
    let mut buckets: BTreeMap<(&str, &str, i64), (f64, u32)> = BTreeMap::new();
    for point in points.iter().filter(|p| p.value.is_finite()) {
        let bucket = point.at.div_euclid(resolution_secs) * resolution_secs;
        let entry = buckets.entry((&point.series, &point.metric, bucket)).or_insert((0.0, 0));
        entry.0 += point.value;
        entry.1 += 1;
    }
    buckets
        .into_iter()
        .map(|((series, metric, at), (sum, n))| Point {
            series: series.to_owned(),
            metric: metric.to_owned(),
            at,
            value: if is_count(metric) { sum } else { sum / f64::from(n) },
        })
        .collect()
}

/// The buckets of `target` to roll up from `source` now, as `[start, end)` in Unix seconds: from
/// the bucket after `last_done` (the newest `target` row) or the oldest whole bucket `source`
/// still holds, up to the last bucket that is complete at `now`. `None` when nothing is due.
pub fn pending_window(source: Tier, target: Tier, last_done: Option<i64>, now: i64) -> Option<(i64, i64)> {
    let resolution = target.resolution_secs;
    let end = now.div_euclid(resolution) * resolution;
    let oldest_kept = now - source.keep_secs;
    let earliest = (oldest_kept + resolution - 1).div_euclid(resolution) * resolution;
    let start = match last_done {
        Some(done) => (done + resolution).max(earliest),
        None => earliest,
    };
    (start < end).then_some((start, end))
}

/// For each tier, the time before which its rows are deleted.
pub fn prune_before(now: i64) -> [(Tier, i64); 3] {
    TIERS.map(|tier| (tier, now - tier.keep_secs))
}

/// A chart's time range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    Day,
    Week,
}

impl Range {
    pub const ALL: [Range; 3] = [Range::Hour, Range::Day, Range::Week];

    /// `1h`, `24h` or `7d`; anything else (or nothing) is the hour.
    pub fn parse(text: Option<&str>) -> Range {
        match text {
            Some("24h") => Range::Day,
            Some("7d") => Range::Week,
            _ => Range::Hour,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Week => "7d",
        }
    }

    pub fn secs(self) -> i64 {
        match self {
            Range::Hour => 3600,
            Range::Day => 24 * 3600,
            Range::Week => 7 * 24 * 3600,
        }
    }

    /// The tier a chart of this range reads: the finest one that covers it.
    pub fn tier(self) -> Tier {
        match self {
            Range::Hour => RAW,
            Range::Day => MINUTES,
            Range::Week => TEN_MINUTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(series: &str, metric: &str, at: i64, value: f64) -> Point {
        Point { series: series.into(), metric: metric.into(), at, value }
    }

    #[test]
    fn rollups_average_each_bucket_of_each_series() {
        let raw = [
            point("host", "cpu", 5, 2.0),
            point("host", "cpu", 55, 4.0),
            point("host", "cpu", 65, 10.0),
            point("quiz", "requests", 30, 1.0),
            point("quiz", "wakes", 10, 2.0),
            point("quiz", "wakes", 20, 1.0),
            point("host", "cpu", 70, f64::NAN),
        ];
        assert_eq!(
            rollup(&raw, 60),
            vec![
                point("host", "cpu", 0, 3.0),
                point("host", "cpu", 60, 10.0),
                point("quiz", "requests", 0, 1.0),
                point("quiz", "wakes", 0, 3.0)
            ]
        );
        assert_eq!(
            rollup(&rollup(&raw, 60), 600),
            vec![point("host", "cpu", 0, 6.5), point("quiz", "requests", 0, 1.0), point("quiz", "wakes", 0, 3.0)]
        );
        assert_eq!(rollup(&[], 60), vec![]);
    }

    #[test]
    fn only_complete_buckets_not_done_yet_are_due() {
        let check = |source, target, last_done, now, expected| {
            assert_eq!(pending_window(source, target, last_done, now), expected, "{last_done:?} at {now}")
        };
        // At 10:00:59 the minute 10:00 is not complete; at 10:01:00 it is.
        let ten = 36_000;
        check(RAW, MINUTES, Some(ten - 60), ten + 59, None);
        check(RAW, MINUTES, Some(ten - 60), ten + 60, Some((ten, ten + 60)));
        // Done up to 09:58: 09:59 and 10:00 are due.
        check(RAW, MINUTES, Some(ten - 120), ten + 61, Some((ten - 60, ten + 60)));
        // Nothing done yet: start at the oldest whole minute raw still holds (1 h back).
        check(RAW, MINUTES, None, ten + 61, Some((ten + 120 - 3600, ten + 60)));
        // Long down: never ask for what the source no longer has.
        check(MINUTES, TEN_MINUTES, Some(0), ten * 10, Some((ten * 10 - 24 * 3600, ten * 10)));
        check(MINUTES, TEN_MINUTES, Some(ten), ten + 599, None);
    }

    #[test]
    fn each_tier_is_pruned_after_its_keep_time_and_ranges_pick_a_tier() {
        assert_eq!(prune_before(1_000_000), [(RAW, 1_000_000 - 3600), (MINUTES, 1_000_000 - 86_400), (TEN_MINUTES, 1_000_000 - 604_800)]);
        for range in Range::ALL {
            assert_eq!(Range::parse(Some(range.as_str())), range);
            assert!(range.tier().keep_secs >= range.secs(), "{range:?} is covered by its tier");
            assert!(range.secs() / range.tier().resolution_secs <= 1440, "{range:?} draws at most 1440 points");
        }
        assert_eq!(Range::parse(Some("1y")), Range::Hour);
    }
}
