//! Two scrapes → what the autoscaler needs per app: requests finished in the interval, average
//! concurrency over it, and the exact in-flight and held gauges when the source has them. The same
//! code reads real Traefik (`p42-web@nomad`) and the gateway (`p42@slipway`).
//!
//! Unknown is `None`, never 0: an app whose series are missing (a cold app under Traefik, a
//! service that vanished, no previous scrape yet) gets `None`, and the autoscaler decides what
//! that means. The one exception is deliberate: when the gateway reports `slipway_app_in_flight`
//! for an app, it knows the app, so missing request series there do mean zero requests.
//!
//! Pure: the scrape times are passed in (`Scrape::at`), nothing reads the clock. It deliberately
//! does not scrape, keep history beyond two scrapes, or decide anything about scaling.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::parse::Sample;
use super::registry::PROVIDER;

const REQUESTS: &str = "traefik_service_requests_total";
const DURATION_SUM: &str = "traefik_service_request_duration_seconds_sum";
const IN_FLIGHT: &str = "slipway_app_in_flight";
const HELD: &str = "slipway_app_held_requests";

/// One scrape: its samples and when it was taken, as a `Duration` from any fixed origin the caller
/// chooses (only differences matter).
#[derive(Debug, Clone, PartialEq)]
pub struct Scrape {
    pub at: Duration,
    pub samples: Vec<Sample>,
}

/// One app's traffic over the interval between two scrapes. `None` means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct AppTraffic {
    /// Requests that finished in the interval (`traefik_service_requests_total` increase). Traefik
    /// counts a request when it ends, so a request still running is not in here yet.
    pub requests: Option<f64>,
    /// Requests in flight on average over the interval, by Little's law (see `app_traffic`).
    pub average_concurrency: Option<f64>,
    /// `slipway_app_in_flight` at the current scrape: exact, but only the gateway has it.
    pub in_flight: Option<f64>,
    /// `slipway_app_held_requests` at the current scrape: requests waiting for the app to wake.
    pub held: Option<f64>,
}

impl AppTraffic {
    /// The concurrency to scale on, as `autoscaler::Snapshot::concurrency` defines it (held
    /// requests included): the exact in-flight gauge when there is one, else the Little's-law
    /// average, plus the held requests when known. The gauge is preferred because the average only
    /// sees a request when it ends: a WebSocket open for ten minutes adds nothing for ten minutes
    /// and then 600 s at once. `None` when neither is known.
    pub fn concurrency(&self) -> Option<f64> {
        let serving = self.in_flight.or(self.average_concurrency)?;
        Some(serving + self.held.unwrap_or(0.0))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("the current scrape (at {current:?}) is not after the previous one (at {previous:?})")]
    IntervalNotPositive { previous: Duration, current: Duration },
}

/// The app a `service` label belongs to, or `None` for services that are not apps:
///
/// - `p42@slipway` → `p42` (the gateway's own naming);
/// - `activator@…` (any provider) → `None`: the activator is not an app (and `activator` is a
///   reserved app name);
/// - `…@file` and `…@internal` → `None`: hand-written platform services and Traefik's own
///   (`api@internal`);
/// - no `@` → `None`: Traefik always qualifies service names;
/// - anything else (`p42-web@nomad`, `p7-chat@consulcatalog-teaching`) →
///   `map_foreign(name, provider)`, because only the caller knows how its jobs are named.
pub fn app_for_service(service: &str, map_foreign: impl Fn(&str, &str) -> Option<String>) -> Option<String> {
    let (name, provider) = service.rsplit_once('@')?;
    if name.is_empty() || name == "activator" {
        return None;
    }
    match provider {
        PROVIDER => Some(name.to_owned()),
        "file" | "internal" => None,
        _ => map_foreign(name, provider),
    }
}

/// Per-app traffic between `previous` and `current` (`previous` is `None` on the first scrape:
/// then only the gauges are known).
///
/// **Requests** are the increase of each `traefik_service_requests_total` series, summed over the
/// app's series. A series that went down restarted from zero (the gateway or Traefik restarted,
/// or Traefik dropped and re-created the service), so its increase is its new value; a series that
/// was not there before started from zero during the interval, so likewise. Whatever happened
/// between the last scrape and a restart is lost, as with Prometheus' `rate()`.
///
/// **Average concurrency** is Little's law, L = λ·W: the average number of requests in the system
/// equals their arrival rate times the average time each spends in it. λ·W over an interval Δt is
/// (requests finished / Δt) × (their total duration / requests finished) = total duration / Δt,
/// and the total duration of the requests that finished is the increase of
/// `traefik_service_request_duration_seconds_sum`. So L ≈ Δsum / Δt, which is Traefik's own advice
/// (`rate(…_sum[1m])`) for the per-service in-flight gauge v3 lacks. Worked example
/// (`littles_law_concurrency_equals_the_in_flight_gauge_under_constant_load`): 4 requests always in
/// flight, each taking 0.5 s, is 8 requests/s; in a 10 s interval 80 requests finish, their
/// durations add up to 80 × 0.5 s = 40 s, and 40 s / 10 s = 4, the in-flight gauge. It is an
/// approximation: a request is counted only when it ends, so long requests (WebSockets, event
/// streams) land all at once in the interval they end in. Hence `AppTraffic::concurrency` prefers
/// the exact gauge.
pub fn app_traffic(
    previous: Option<&Scrape>,
    current: &Scrape,
    map_foreign: impl Fn(&str, &str) -> Option<String>,
) -> Result<BTreeMap<String, AppTraffic>, SnapshotError> {
    let interval_secs = match previous {
        Some(previous) if current.at <= previous.at => {
            return Err(SnapshotError::IntervalNotPositive { previous: previous.at, current: current.at });
        }
        Some(previous) => Some((current.at - previous.at).as_secs_f64()),
        None => None,
    };
    let relevant = |sample: &Sample| matches!(sample.name.as_str(), REQUESTS | DURATION_SUM | IN_FLIGHT | HELD) && sample.value.is_finite();
    let app_of = |sample: &Sample| sample.labels.get("service").and_then(|service| app_for_service(service, &map_foreign));

    let mut counters_before: HashMap<(&str, &BTreeMap<String, String>), f64> = HashMap::new();
    let mut apps: BTreeMap<String, Tally> = BTreeMap::new();
    for sample in previous.map_or(&[][..], |previous| previous.samples.as_slice()).iter().filter(|sample| relevant(sample)) {
        if let Some(app) = app_of(sample) {
            // Listed so an app that disappeared shows up, as unknown.
            apps.entry(app).or_default();
            counters_before.insert((sample.name.as_str(), &sample.labels), sample.value);
        }
    }
    for sample in current.samples.iter().filter(|sample| relevant(sample)) {
        let Some(app) = app_of(sample) else { continue };
        let tally = apps.entry(app).or_default();
        let increase = || match counters_before.get(&(sample.name.as_str(), &sample.labels)) {
            Some(&before) if sample.value >= before => sample.value - before,
            // Smaller than before: the counter restarted. Not there before: a new series.
            _ => sample.value,
        };
        match sample.name.as_str() {
            IN_FLIGHT => add(&mut tally.in_flight, sample.value),
            HELD => add(&mut tally.held, sample.value),
            REQUESTS => add(&mut tally.requests, increase()),
            _ => add(&mut tally.busy_secs, increase()),
        }
    }

    let traffic = apps
        .into_iter()
        .map(|(app, tally)| {
            // The gateway reports the gauge for every app it has seen, so it knows the app, and
            // missing request series mean that no request has finished yet.
            let known_zero = if tally.in_flight.is_some() { Some(0.0) } else { None };
            let traffic = AppTraffic {
                requests: interval_secs.and(tally.requests.or(known_zero)),
                average_concurrency: interval_secs.and_then(|secs| tally.busy_secs.or(known_zero).map(|busy| busy / secs)),
                in_flight: tally.in_flight,
                held: tally.held,
            };
            (app, traffic)
        })
        .collect();
    Ok(traffic)
}

/// What one app's series add up to in the current scrape; `None` while no series was seen.
#[derive(Debug, Default)]
struct Tally {
    requests: Option<f64>,
    busy_secs: Option<f64>,
    in_flight: Option<f64>,
    held: Option<f64>,
}

fn add(total: &mut Option<f64>, value: f64) {
    *total = Some(total.unwrap_or(0.0) + value);
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::super::registry::{Protocol, Registry};
    use super::*;

    /// How the tests name foreign services: `p42-web@nomad` is the app `p42`.
    fn nomad_apps(name: &str, provider: &str) -> Option<String> {
        let app = name.strip_suffix("-web")?;
        (provider == "nomad" || provider.starts_with("consulcatalog")).then(|| app.to_owned())
    }

    fn scrape(at_secs: u64, text: &str) -> Scrape {
        Scrape { at: Duration::from_secs(at_secs), samples: parse(text).expect("test scrapes parse") }
    }

    /// `expected` lists every app as (name, requests, average concurrency, in flight, held).
    #[allow(clippy::type_complexity)]
    fn check(previous: Option<(u64, &str)>, current: (u64, &str), expected: &[(&str, Option<f64>, Option<f64>, Option<f64>, Option<f64>)]) {
        let previous = previous.map(|(at, text)| scrape(at, text));
        let actual = app_traffic(previous.as_ref(), &scrape(current.0, current.1), nomad_apps).expect("the interval is positive");
        let expected: BTreeMap<String, AppTraffic> = expected
            .iter()
            .map(|&(app, requests, average_concurrency, in_flight, held)| {
                (app.to_owned(), AppTraffic { requests, average_concurrency, in_flight, held })
            })
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn counts_requests_and_concurrency_under_steady_traffic() {
        check(
            Some((
                100,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42-web@nomad"} 1000
                traefik_service_requests_total{code="404",method="GET",protocol="http",service="p42-web@nomad"} 10
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42-web@nomad"} 50
                traefik_service_request_duration_seconds_sum{code="404",method="GET",protocol="http",service="p42-web@nomad"} 0.5
            "#,
            )),
            (
                130,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42-web@nomad"} 1600
                traefik_service_requests_total{code="404",method="GET",protocol="http",service="p42-web@nomad"} 10
                traefik_service_requests_total{code="500",method="GET",protocol="http",service="p42-web@nomad"} 5
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42-web@nomad"} 80
                traefik_service_request_duration_seconds_sum{code="404",method="GET",protocol="http",service="p42-web@nomad"} 0.5
                traefik_service_request_duration_seconds_sum{code="500",method="GET",protocol="http",service="p42-web@nomad"} 1.5
                traefik_service_request_duration_seconds_count{code="200",method="GET",protocol="http",service="p42-web@nomad"} 1600
            "#,
            ),
            // 600 + 0 + 5 (a new series counts from zero); (30 + 0 + 1.5) s busy over 30 s.
            &[("p42", Some(605.0), Some(1.05), None, None)],
        );
    }

    #[test]
    fn treats_a_smaller_counter_as_a_restart() {
        check(
            Some((
                0,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42@slipway"} 5000
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42@slipway"} 900
                slipway_app_in_flight{service="p42@slipway"} 7
            "#,
            )),
            (
                10,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42@slipway"} 40
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42@slipway"} 20
                slipway_app_in_flight{service="p42@slipway"} 2
            "#,
            ),
            &[("p42", Some(40.0), Some(2.0), Some(2.0), None)],
        );
    }

    #[test]
    fn a_service_that_disappears_is_unknown_not_zero() {
        check(
            Some((
                0,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42-web@nomad"} 10
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42-web@nomad"} 1
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p7-web@nomad"} 3
                slipway_app_in_flight{service="p9@slipway"} 0
            "#,
            )),
            (
                15,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p7-web@nomad"} 3
            "#,
            ),
            &[("p42", None, None, None, None), ("p7", Some(0.0), None, None, None), ("p9", None, None, None, None)],
        );
    }

    #[test]
    fn ignores_the_activator_and_other_platform_services() {
        check(
            Some((
                0,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="activator@file"} 20
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="api@internal"} 1
            "#,
            )),
            (
                10,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="activator@file"} 27
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="api@internal"} 2
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="activator@slipway"} 2
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="portal@file"} 2
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="unqualified"} 2
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42-api@nomad"} 2
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42-web@consulcatalog-teaching"} 4
                traefik_open_connections{entrypoint="websecure",protocol="TCP"} 57
            "#,
            ),
            &[("p42", Some(4.0), None, None, None)],
        );
    }

    #[test]
    fn littles_law_concurrency_equals_the_in_flight_gauge_under_constant_load() {
        // 4 requests always in flight, 0.5 s each: 8 requests/s, 80 in 10 s, 40 s of work.
        check(
            Some((
                60,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42@slipway"} 480
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42@slipway"} 240
                slipway_app_in_flight{service="p42@slipway"} 4
                slipway_app_held_requests{service="p42@slipway"} 0
            "#,
            )),
            (
                70,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42@slipway"} 560
                traefik_service_request_duration_seconds_sum{code="200",method="GET",protocol="http",service="p42@slipway"} 280
                slipway_app_in_flight{service="p42@slipway"} 4
                slipway_app_held_requests{service="p42@slipway"} 0
            "#,
            ),
            &[("p42", Some(80.0), Some(4.0), Some(4.0), Some(0.0))],
        );
    }

    #[test]
    fn without_a_previous_scrape_only_the_gauges_are_known() {
        check(
            None,
            (
                10,
                r#"
                traefik_service_requests_total{code="200",method="GET",protocol="http",service="p42@slipway"} 40
                slipway_app_in_flight{service="p42@slipway"} 3
                slipway_app_held_requests{service="p42@slipway"} 2
            "#,
            ),
            &[("p42", None, None, Some(3.0), Some(2.0))],
        );
    }

    #[test]
    fn an_app_the_gateway_tracks_without_finished_requests_has_zero_requests() {
        check(
            Some((0, r#"slipway_app_in_flight{service="p42@slipway"} 1"#)),
            (10, r#"slipway_app_in_flight{service="p42@slipway"} 1"#),
            &[("p42", Some(0.0), Some(0.0), Some(1.0), None)],
        );
    }

    #[test]
    fn skips_samples_that_are_not_numbers() {
        check(
            Some((0, r#"slipway_app_in_flight{service="p42@slipway"} NaN"#)),
            (10, r#"slipway_app_in_flight{service="p42@slipway"} NaN"#),
            &[],
        );
    }

    #[test]
    fn concurrency_prefers_the_gauge_and_adds_held_requests() {
        for (average_concurrency, in_flight, held, expected) in [
            (Some(2.5), Some(4.0), Some(1.0), Some(5.0)),
            (Some(2.5), None, None, Some(2.5)),
            (None, Some(0.0), Some(3.0), Some(3.0)),
            (Some(2.5), None, Some(1.0), Some(3.5)),
            (None, None, Some(3.0), None),
            (None, None, None, None),
        ] {
            let traffic = AppTraffic { requests: None, average_concurrency, in_flight, held };
            assert_eq!(traffic.concurrency(), expected, "{traffic:?}");
        }
    }

    #[test]
    fn refuses_a_current_scrape_that_is_not_after_the_previous_one() {
        let previous = scrape(10, "");
        let error = app_traffic(Some(&previous), &scrape(10, ""), nomad_apps).expect_err("a zero interval");
        assert_eq!(error.to_string(), "the current scrape (at 10s) is not after the previous one (at 10s)");
    }

    #[test]
    fn maps_service_names_to_apps() {
        for (service, expected) in [
            ("p42@slipway", Some("p42")),
            ("p42-web@nomad", Some("p42")),
            ("p42-web@nomad-teaching", None),
            ("p7-web@consulcatalog", Some("p7")),
            ("p42-api@nomad", None),
            ("activator@file", None),
            ("activator@slipway", None),
            ("activator@consulcatalog", None),
            ("api@internal", None),
            ("portal-auth@file", None),
            ("p42", None),
            ("@slipway", None),
            ("odd@name@slipway", Some("odd@name")),
        ] {
            assert_eq!(app_for_service(service, nomad_apps).as_deref(), expected, "service {service:?}");
        }
    }

    #[test]
    fn reads_the_gateways_own_exposition() {
        let registry = Registry::new();
        let p42 = registry.service("p42@slipway");
        p42.observe(200, "GET", Protocol::Http, 0.25, 100, 1_000);
        let before = Scrape { at: Duration::from_secs(0), samples: parse(&registry.render()).expect("our exposition parses") };
        for _ in 0..20 {
            p42.observe(200, "GET", Protocol::Http, 0.25, 100, 1_000);
        }
        p42.observe(503, "POST", Protocol::Http, 2.0, 100, 1_000);
        let _open = p42.enter();
        let _waiting = registry.hold("p7@slipway");
        let after = Scrape { at: Duration::from_secs(5), samples: parse(&registry.render()).expect("our exposition parses") };
        let traffic = app_traffic(Some(&before), &after, |_, _| None).expect("the interval is positive");
        assert_eq!(
            traffic,
            BTreeMap::from([
                (
                    "p42".to_owned(),
                    AppTraffic { requests: Some(21.0), average_concurrency: Some(1.4), in_flight: Some(1.0), held: Some(0.0) }
                ),
                (
                    "p7".to_owned(),
                    AppTraffic { requests: Some(0.0), average_concurrency: Some(0.0), in_flight: Some(0.0), held: Some(1.0) }
                ),
            ])
        );
    }
}
