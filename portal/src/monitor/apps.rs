//! Per-app traffic for the dashboard, pure: the gateway's cumulative counters (Traefik's metric
//! names, as `metrics::samples` or a Traefik scrape gives them) turned into per-interval rates:
//! requests per second, the share of 5xx answers, latency percentiles from the duration
//! histogram, and wakes.
//!
//! Percentiles are read from Traefik's buckets (0.1, 0.3, 1.2, 5 s) by linear interpolation
//! inside the bucket, as Prometheus' `histogram_quantile` does: coarse, but from the same numbers
//! an operator's Prometheus would show. A value above the last bound reads as that bound (5 s).

use std::collections::BTreeMap;

use orchestrator::metrics::Sample;

const REQUESTS_TOTAL: &str = "traefik_service_requests_total";
const DURATION_BUCKET: &str = "traefik_service_request_duration_seconds_bucket";
const WAKES_TOTAL: &str = "slipway_wakes_total";

/// One app's counters since the gateway started.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppCounters {
    pub requests: f64,
    /// Requests answered with a 5xx status.
    pub errors: f64,
    /// Cumulative duration buckets by upper bound in seconds (`+Inf` as `f64::INFINITY`), summed
    /// over every code, method and protocol.
    pub buckets: Vec<(f64, f64)>,
    pub wakes: f64,
}

/// The counters of every app in `samples`, by app name.
pub fn counters(samples: &[Sample]) -> BTreeMap<String, AppCounters> {
    let mut apps: BTreeMap<String, AppCounters> = BTreeMap::new();
    let mut buckets: BTreeMap<String, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for sample in samples {
        let Some(app) = sample.labels.get("service").and_then(|service| orchestrator::metrics::app_for_service(service, |_, _| None))
        else {
            continue;
        };
        match sample.name.as_str() {
            REQUESTS_TOTAL => {
                let counters = apps.entry(app).or_default();
                counters.requests += sample.value;
                if sample.labels.get("code").is_some_and(|code| code.starts_with('5')) {
                    counters.errors += sample.value;
                }
            }
            DURATION_BUCKET => {
                let bound = match sample.labels.get("le").map(String::as_str) {
                    Some("+Inf") => f64::INFINITY,
                    Some(text) => match text.parse::<f64>() {
                        Ok(bound) => bound,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                apps.entry(app.clone()).or_default();
                // Keyed by the bound's bits: bounds are positive, so their bit patterns sort as they do.
                let entry = buckets.entry(app).or_default().entry(bound.to_bits()).or_insert((bound, 0.0));
                entry.1 += sample.value;
            }
            WAKES_TOTAL => apps.entry(app).or_default().wakes += sample.value,
            _ => {}
        }
    }
    for (app, by_bound) in buckets {
        if let Some(counters) = apps.get_mut(&app) {
            counters.buckets = by_bound.into_values().collect();
        }
    }
    apps
}

/// One app over one interval.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppRates {
    pub requests_per_sec: f64,
    /// Percent of the interval's requests answered with 5xx; `None` without requests.
    pub error_percent: Option<f64>,
    /// Latency percentiles in milliseconds; `None` without requests.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub wakes: f64,
}

/// The rates between two readings `elapsed_secs` apart. An app new since `previous` counts from
/// zero; counters that went back (a restarted gateway) count from zero too.
pub fn rates(previous: Option<&AppCounters>, current: &AppCounters, elapsed_secs: f64) -> AppRates {
    let zero = AppCounters::default();
    let mut before = previous.unwrap_or(&zero);
    if current.requests < before.requests || current.wakes < before.wakes {
        before = &zero;
    }
    let requests = current.requests - before.requests;
    let errors = (current.errors - before.errors).max(0.0);
    let deltas: Vec<(f64, f64)> = current
        .buckets
        .iter()
        .map(|(bound, count)| {
            let earlier = before.buckets.iter().find(|(b, _)| b == bound).map_or(0.0, |(_, c)| *c);
            (*bound, (count - earlier).max(0.0))
        })
        .collect();
    let quantile_ms = |q: f64| (requests > 0.0).then(|| quantile(q, &deltas)).flatten().map(|secs| secs * 1000.0);
    AppRates {
        requests_per_sec: if elapsed_secs > 0.0 { requests / elapsed_secs } else { 0.0 },
        error_percent: (requests > 0.0).then(|| (errors / requests * 100.0).min(100.0)),
        p50_ms: quantile_ms(0.50),
        p95_ms: quantile_ms(0.95),
        p99_ms: quantile_ms(0.99),
        wakes: current.wakes - before.wakes,
    }
}

/// The `q` quantile of cumulative buckets (sorted by bound), interpolated linearly inside the
/// bucket that holds it. Example: 10 requests, 8 under 0.1 s and 10 under 0.3 s: the median is
/// 0.1 × 5/8 = 0.0625 s, the 95th percentile 0.1 + 0.2 × (9.5 - 8)/2 = 0.25 s.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    let mut last_finite = 0.0;
    for (bound, count) in buckets {
        if bound.is_infinite() {
            return Some(last_finite);
        }
        if *count >= rank {
            let in_bucket = count - lower_count;
            let fraction = if in_bucket > 0.0 { (rank - lower_count) / in_bucket } else { 1.0 };
            return Some(lower_bound + (bound - lower_bound) * fraction);
        }
        lower_bound = *bound;
        lower_count = *count;
        last_finite = *bound;
    }
    Some(last_finite)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buckets(counts: [f64; 5]) -> Vec<(f64, f64)> {
        [0.1, 0.3, 1.2, 5.0, f64::INFINITY].into_iter().zip(counts).collect()
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let b = buckets([8.0, 10.0, 10.0, 10.0, 10.0]);
        assert_eq!(quantile(0.5, &b), Some(0.0625));
        assert!((quantile(0.95, &b).expect("some") - 0.25).abs() < 1e-9);
        assert_eq!(quantile(0.99, &buckets([0.0, 0.0, 0.0, 0.0, 3.0])), Some(5.0), "beyond the last bound reads as it");
        assert_eq!(quantile(0.5, &buckets([0.0; 5])), None);
        assert_eq!(quantile(0.5, &[]), None);
    }

    #[test]
    fn counters_become_rates_per_interval() {
        let registry = orchestrator::metrics::Registry::new();
        let protocol = orchestrator::metrics::Protocol::Http;
        for _ in 0..9 {
            registry.observe("quiz@slipway", 200, "GET", protocol, 0.05, 10, 10);
        }
        registry.observe("quiz@slipway", 502, "GET", protocol, 2.0, 10, 10);
        registry.count_wake("quiz@slipway", orchestrator::metrics::WakeTier::Stopped);
        let first = counters(&orchestrator::metrics::samples(&registry.collect()));
        let quiz = first.get("quiz").expect("quiz is counted");
        assert_eq!((quiz.requests, quiz.errors, quiz.wakes), (10.0, 1.0, 1.0));
        let rates_now = rates(None, quiz, 10.0);
        assert_eq!((rates_now.requests_per_sec, rates_now.error_percent, rates_now.wakes), (1.0, Some(10.0), 1.0));
        assert!((rates_now.p50_ms.expect("p50") - 0.1 * 5.0 / 9.0 * 1000.0).abs() < 1e-6, "{rates_now:?}");
        assert!((rates_now.p99_ms.expect("p99") - (1.2 + 3.8 * 0.9) * 1000.0).abs() < 1e-6, "{rates_now:?}");
        let idle = rates(Some(quiz), quiz, 10.0);
        assert_eq!((idle.requests_per_sec, idle.error_percent, idle.p50_ms, idle.wakes), (0.0, None, None, 0.0));
        let restarted = AppCounters { requests: 1.0, ..AppCounters::default() };
        assert_eq!(rates(Some(quiz), &restarted, 1.0).requests_per_sec, 1.0, "a counter that went back counts from zero");
    }
}
