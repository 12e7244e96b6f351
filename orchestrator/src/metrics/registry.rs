//! The gateway's metric recorder: Traefik v3's service metrics plus Slipway's in-flight, held and
//! wake metrics, kept in atomics so recording costs a hash lookup under a read lock and a few
//! relaxed atomic adds.
//!
//! Layout: `Registry` → `RwLock<HashMap<service, Arc<ServiceMetrics>>>`; each `ServiceMetrics` →
//! `RwLock<HashMap<(code, method, protocol), RequestSeries>>` plus its gauges and wake histograms.
//! The write locks are taken only the first time a service or a label set is seen (and by
//! `remove_service`); everything after that takes read locks, which never wait for each other.
//!
//! **Allocation-free hot path:** for a service and label set already seen, `Registry::observe`
//! and `ServiceMetrics::observe` allocate nothing: the service is looked up by `&str`
//! (`Box<str>: Borrow<str>`), the method is mapped to a `&'static str`, the key is `Copy`, and a
//! series is a fixed set of atomics (no `Vec`, no `Box`). `enter`, `hold` and `open_connection`
//! clone an `Arc` (a reference count, not an allocation). The gateway can skip even the service
//! lookup by keeping the `Arc<ServiceMetrics>` from `Registry::service` next to its route, as
//! Traefik builds one metrics middleware per service.
//!
//! Consistency: a series is not read atomically as a whole. Buckets and `_count` are derived from
//! the same per-bucket counters, so they always agree with each other; `_sum` and the byte counters
//! may include or miss a request that is being recorded during the scrape, as with `client_golang`.
//!
//! It deliberately does not render text (`exposition`), serve HTTP, read the clock (durations are
//! measured by the caller) or forget series on its own (`remove_service` is the caller's call).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The provider suffix of the gateway's services: the app `p42` is the service `p42@slipway`.
pub const PROVIDER: &str = "slipway";

/// The `entrypoint` label of `traefik_open_connections`.
pub const ENTRYPOINT: &str = "web";

/// Traefik's default `metrics.prometheus.buckets` for request durations, in seconds.
pub const REQUEST_DURATION_BUCKETS: [f64; 4] = [0.1, 0.3, 1.2, 5.0];

/// Buckets for wake phases, in seconds: a thawed process answers in milliseconds, a cold start
/// that installs or pulls something takes tens of seconds.
pub const WAKE_DURATION_BUCKETS: [f64; 12] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

const REQUESTS_TOTAL: &str = "traefik_service_requests_total";
const REQUEST_DURATION: &str = "traefik_service_request_duration_seconds";
const REQUESTS_BYTES: &str = "traefik_service_requests_bytes_total";
const RESPONSES_BYTES: &str = "traefik_service_responses_bytes_total";
const OPEN_CONNECTIONS: &str = "traefik_open_connections";
const IN_FLIGHT: &str = "slipway_app_in_flight";
const HELD: &str = "slipway_app_held_requests";
const WAKE_DURATION: &str = "slipway_wake_duration_seconds";
const WAKES_TOTAL: &str = "slipway_wakes_total";
const AUTOSCALER_TICK: &str = "slipway_autoscaler_tick_seconds";

/// Buckets for one autoscaler tick, in seconds: the target is 5 ms with a thousand apps.
pub const AUTOSCALER_TICK_BUCKETS: [f64; 10] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// The service label for an app on this gateway: `p42` → `p42@slipway`.
pub fn service_for_app(app: &str) -> String {
    format!("{app}@{PROVIDER}")
}

/// Traefik's `getMethod`: the standard verbs as they are, anything else `EXTENSION_METHOD`, so a
/// client cannot grow the label set without bound. (`NON_UTF8_HTTP_METHOD` cannot happen: a `&str`
/// is UTF-8.)
pub fn method_label(method: &str) -> &'static str {
    match method {
        "HEAD" => "HEAD",
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "CONNECT" => "CONNECT",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "PATCH" => "PATCH",
        "PRI" => "PRI",
        _ => "EXTENSION_METHOD",
    }
}

/// The `protocol` label. Traefik also has `grpc` and `grpc-web`; the gateway proxies HTTP/1.1 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Websocket,
    Sse,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Websocket => "websocket",
            Protocol::Sse => "sse",
        }
    }

    /// Traefik's `getRequestProtocol`, from the first value of each request header (`None` when
    /// absent): a WebSocket handshake needs both `Connection: upgrade` and `Upgrade: websocket`; an
    /// event stream is `Accept: text/event-stream`. Each header is a comma-separated list whose items
    /// are compared trimmed and case-insensitively, and must match exactly, so
    /// `Accept: text/event-stream;q=0.9` is plain `http`, as in Traefik.
    pub fn classify(connection: Option<&str>, upgrade: Option<&str>, accept: Option<&str>) -> Protocol {
        if lists(connection, "upgrade") && lists(upgrade, "websocket") {
            Protocol::Websocket
        } else if lists(accept, "text/event-stream") {
            Protocol::Sse
        } else {
            Protocol::Http
        }
    }
}

fn lists(header_value: Option<&str>, wanted: &str) -> bool {
    header_value.is_some_and(|value| value.split(',').any(|item| item.trim().eq_ignore_ascii_case(wanted)))
}

/// A step of waking an app, each timed on its own (they add up to about `Total`):
/// `Spawn`: wake decided → process or allocation started; `Listening`: started → its port accepts;
/// `FirstByte`: port accepts → first response byte of the first held request; `Total`: wake
/// decided → that first byte reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WakePhase {
    Spawn,
    Listening,
    FirstByte,
    Total,
}

impl WakePhase {
    pub const ALL: [WakePhase; 4] = [WakePhase::Spawn, WakePhase::Listening, WakePhase::FirstByte, WakePhase::Total];

    pub fn as_str(self) -> &'static str {
        match self {
            WakePhase::Spawn => "spawn",
            WakePhase::Listening => "listening",
            WakePhase::FirstByte => "first_byte",
            WakePhase::Total => "total",
        }
    }
}

/// Where a wake started from: a stopped app is started afresh, a frozen one is thawed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WakeTier {
    Stopped,
    Frozen,
}

impl WakeTier {
    pub const ALL: [WakeTier; 2] = [WakeTier::Stopped, WakeTier::Frozen];

    pub fn as_str(self) -> &'static str {
        match self {
            WakeTier::Stopped => "stopped",
            WakeTier::Frozen => "frozen",
        }
    }
}

/// What `Registry::collect` returns: one family per metric name, series sorted as `client_golang`
/// sorts them (by label values, labels in name order), families sorted by name.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricFamily {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: MetricKind,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One label set of a family. Labels are sorted by name, as `client_golang` writes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A counter or gauge.
    Scalar(f64),
    Histogram(HistogramValue),
}

/// A histogram as exposed: `cumulative_counts[i]` observations were `<= bounds[i]`; `count`
/// (the `+Inf` bucket) also holds the larger ones.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramValue {
    pub bounds: &'static [f64],
    pub cumulative_counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

/// A fixed-bucket histogram in atomics. Buckets are stored per bucket (not cumulative) so an
/// observation is one add; `_sum` is kept in whole microseconds, so it is an integer add too and
/// renders without float drift (96 410 000 µs is exactly `96.41`).
#[derive(Debug)]
struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    counts: [AtomicU64; N],
    above_last_bound: AtomicU64,
    sum_micros: AtomicU64,
}

impl<const N: usize> Histogram<N> {
    fn new(bounds: &'static [f64; N]) -> Self {
        Self {
            bounds,
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            above_last_bound: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Negative, NaN and infinite durations count as zero: they come from clock trouble, and a
    /// poisoned `_sum` would break every rate computed from it.
    fn observe(&self, duration_secs: f64) {
        let secs = if duration_secs.is_finite() && duration_secs > 0.0 { duration_secs } else { 0.0 };
        // `le` is inclusive: 0.1 s lands in the `le="0.1"` bucket.
        match self.bounds.iter().position(|bound| secs <= *bound) {
            Some(bucket_idx) => self.counts[bucket_idx].fetch_add(1, Ordering::Relaxed),
            None => self.above_last_bound.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_micros.fetch_add((secs * 1e6).round() as u64, Ordering::Relaxed);
    }

    fn value(&self) -> HistogramValue {
        let mut running = 0u64;
        let cumulative_counts = self
            .counts
            .iter()
            .map(|count| {
                running += count.load(Ordering::Relaxed);
                running
            })
            .collect();
        let count = running + self.above_last_bound.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        HistogramValue { bounds: self.bounds, cumulative_counts, count, sum }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RequestKey {
    code: u16,
    method: &'static str,
    protocol: Protocol,
}

/// One (code, method, protocol) label set of a service. `traefik_service_requests_total` is the
/// duration histogram's count: both go up by one per request, so one counter serves both.
#[derive(Debug)]
struct RequestSeries {
    duration: Histogram<4>,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
}

impl RequestSeries {
    fn new() -> Self {
        Self { duration: Histogram::new(&REQUEST_DURATION_BUCKETS), request_bytes: AtomicU64::new(0), response_bytes: AtomicU64::new(0) }
    }

    fn record(&self, duration_secs: f64, request_bytes: u64, response_bytes: u64) {
        self.duration.observe(duration_secs);
        self.request_bytes.fetch_add(request_bytes, Ordering::Relaxed);
        self.response_bytes.fetch_add(response_bytes, Ordering::Relaxed);
    }
}

/// Everything recorded for one service. Get it from `Registry::service` and keep it to record
/// without looking the service up again.
#[derive(Debug)]
pub struct ServiceMetrics {
    requests: RwLock<HashMap<RequestKey, RequestSeries>>,
    in_flight: Arc<AtomicI64>,
    held: Arc<AtomicI64>,
    wake_durations: [Histogram<12>; 4],
    wakes: [AtomicU64; 2],
}

impl ServiceMetrics {
    fn new() -> Self {
        Self {
            requests: RwLock::new(HashMap::new()),
            in_flight: Arc::new(AtomicI64::new(0)),
            held: Arc::new(AtomicI64::new(0)),
            wake_durations: std::array::from_fn(|_| Histogram::new(&WAKE_DURATION_BUCKETS)),
            wakes: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Records one finished request, as Traefik's metrics middleware does after `ServeHTTP`
    /// returns: the request counter, the duration histogram and both byte counters. `method` is
    /// mapped by `method_label`. Allocation-free once this label set has been seen.
    pub fn observe(&self, code: u16, method: &str, protocol: Protocol, duration_secs: f64, request_bytes: u64, response_bytes: u64) {
        let key = RequestKey { code, method: method_label(method), protocol };
        if let Some(series) = read(&self.requests).get(&key) {
            series.record(duration_secs, request_bytes, response_bytes);
            return;
        }
        write(&self.requests).entry(key).or_insert_with(RequestSeries::new).record(duration_secs, request_bytes, response_bytes);
    }

    /// Counts one request in `slipway_app_in_flight` until the guard is dropped. Hold it for as
    /// long as the upstream is busy with the request: a streamed body or an open WebSocket counts.
    pub fn enter(&self) -> GaugeGuard {
        GaugeGuard::raise(&self.in_flight)
    }

    /// Counts one request in `slipway_app_held_requests` until the guard is dropped: the
    /// activator holds it while the app wakes.
    pub fn hold(&self) -> GaugeGuard {
        GaugeGuard::raise(&self.held)
    }

    /// Counts one wake in `slipway_wakes_total`, when the wake starts.
    pub fn count_wake(&self, tier: WakeTier) {
        self.wakes[tier as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Records how long one phase of a wake took (see `WakePhase` for where each one starts).
    pub fn observe_wake_phase(&self, phase: WakePhase, duration_secs: f64) {
        self.wake_durations[phase as usize].observe(duration_secs);
    }

    pub fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn held(&self) -> i64 {
        self.held.load(Ordering::Relaxed)
    }
}

/// Raises a gauge by one while it lives.
#[derive(Debug)]
#[must_use = "the gauge goes back down as soon as the guard is dropped"]
pub struct GaugeGuard(Arc<AtomicI64>);

impl GaugeGuard {
    fn raise(gauge: &Arc<AtomicI64>) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(gauge))
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The gateway's metrics. Share it as `Arc<Registry>`; every method takes `&self`.
#[derive(Debug)]
pub struct Registry {
    services: RwLock<HashMap<Box<str>, Arc<ServiceMetrics>>>,
    open_connections: Arc<AtomicI64>,
    autoscaler_tick: Histogram<10>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self {
            services: RwLock::new(HashMap::new()),
            open_connections: Arc::new(AtomicI64::new(0)),
            autoscaler_tick: Histogram::new(&AUTOSCALER_TICK_BUCKETS),
        }
    }

    /// The metrics of `service` (`p42@slipway`), created on first use.
    pub fn service(&self, service: &str) -> Arc<ServiceMetrics> {
        self.with_service(service, Arc::clone)
    }

    /// `ServiceMetrics::observe` for `service`. The arguments mirror Traefik's label set and
    /// measurements one to one, which is why there are so many.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &self,
        service: &str,
        code: u16,
        method: &str,
        protocol: Protocol,
        duration_secs: f64,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        self.with_service(service, |metrics| metrics.observe(code, method, protocol, duration_secs, request_bytes, response_bytes));
    }

    /// `ServiceMetrics::enter` for `service`.
    pub fn enter(&self, service: &str) -> GaugeGuard {
        self.with_service(service, |metrics| metrics.enter())
    }

    /// `ServiceMetrics::hold` for `service`.
    pub fn hold(&self, service: &str) -> GaugeGuard {
        self.with_service(service, |metrics| metrics.hold())
    }

    /// `ServiceMetrics::count_wake` for `service`.
    pub fn count_wake(&self, service: &str, tier: WakeTier) {
        self.with_service(service, |metrics| metrics.count_wake(tier));
    }

    /// `ServiceMetrics::observe_wake_phase` for `service`.
    pub fn observe_wake_phase(&self, service: &str, phase: WakePhase, duration_secs: f64) {
        self.with_service(service, |metrics| metrics.observe_wake_phase(phase, duration_secs));
    }

    /// Counts one client connection in `traefik_open_connections{entrypoint="web",protocol="TCP"}`
    /// until the guard is dropped.
    pub fn open_connection(&self) -> GaugeGuard {
        GaugeGuard::raise(&self.open_connections)
    }

    /// Records how long one autoscaler tick took (scrape, decide and dispatch for every app).
    pub fn observe_autoscaler_tick(&self, duration_secs: f64) {
        self.autoscaler_tick.observe(duration_secs);
    }

    /// Every known service with its metrics, for readers that want the gauges without text.
    pub fn services(&self) -> Vec<(String, Arc<ServiceMetrics>)> {
        read(&self.services).iter().map(|(name, metrics)| (name.to_string(), Arc::clone(metrics))).collect()
    }

    /// Forgets `service` (its app was deleted), as Traefik drops the series of a service that left
    /// its configuration. Guards still alive keep counting into the forgotten gauges, harmlessly.
    /// Returns whether the service was known.
    pub fn remove_service(&self, service: &str) -> bool {
        write(&self.services).remove(service).is_some()
    }

    /// Everything recorded, sorted as `client_golang` gathers it. A service's in-flight and held
    /// gauges appear as soon as the service is known; request, wake-phase and wake-count series
    /// appear once something was recorded in them, as Traefik's do.
    pub fn collect(&self) -> Vec<MetricFamily> {
        // Copy the service list and let go of the lock, so a long scrape never delays a new app.
        let mut services: Vec<(Box<str>, Arc<ServiceMetrics>)> =
            read(&self.services).iter().map(|(name, metrics)| (name.clone(), Arc::clone(metrics))).collect();
        services.sort_by(|a, b| a.0.cmp(&b.0));

        let family = |name, help, kind| MetricFamily { name, help, kind, series: Vec::new() };
        let mut in_flight =
            family(IN_FLIGHT, "Requests an app is serving right now, open WebSockets and event streams included.", MetricKind::Gauge);
        let mut held = family(HELD, "Requests the activator is holding while their app wakes.", MetricKind::Gauge);
        let mut wake_durations = family(
            WAKE_DURATION,
            "How long each phase of waking an app took: spawn, listening, first_byte, and the total.",
            MetricKind::Histogram,
        );
        let mut wakes =
            family(WAKES_TOTAL, "How many times an app was woken, partitioned by the tier it was woken from.", MetricKind::Counter);
        let mut requests_total = family(
            REQUESTS_TOTAL,
            "How many HTTP requests processed on a service, partitioned by status code, protocol, and method.",
            MetricKind::Counter,
        );
        let mut request_duration = family(
            REQUEST_DURATION,
            "How long it took to process the request on a service, partitioned by status code, protocol, and method.",
            MetricKind::Histogram,
        );
        let mut requests_bytes = family(
            REQUESTS_BYTES,
            "The total size of requests in bytes received by a service, partitioned by status code, protocol, and method.",
            MetricKind::Counter,
        );
        let mut responses_bytes = family(
            RESPONSES_BYTES,
            "The total size of responses in bytes returned by a service, partitioned by status code, protocol, and method.",
            MetricKind::Counter,
        );
        let mut open_connections =
            family(OPEN_CONNECTIONS, "How many open connections exist, by entryPoint and protocol", MetricKind::Gauge);
        let mut autoscaler_tick =
            family(AUTOSCALER_TICK, "How long one autoscaler tick took: scrape, decide and dispatch for every app.", MetricKind::Histogram);
        let tick = self.autoscaler_tick.value();
        if tick.count > 0 {
            autoscaler_tick.series.push(Series { labels: Vec::new(), value: Value::Histogram(tick) });
        }
        open_connections.series.push(Series {
            labels: vec![("entrypoint", ENTRYPOINT.to_owned()), ("protocol", "TCP".to_owned())],
            value: Value::Scalar(self.open_connections.load(Ordering::Relaxed) as f64),
        });

        for (service, metrics) in &services {
            let service = service.to_string();
            in_flight.series.push(Series { labels: vec![("service", service.clone())], value: Value::Scalar(metrics.in_flight() as f64) });
            held.series.push(Series { labels: vec![("service", service.clone())], value: Value::Scalar(metrics.held() as f64) });
            for phase in WakePhase::ALL {
                let histogram = metrics.wake_durations[phase as usize].value();
                if histogram.count > 0 {
                    let labels = vec![("phase", phase.as_str().to_owned()), ("service", service.clone())];
                    wake_durations.series.push(Series { labels, value: Value::Histogram(histogram) });
                }
            }
            for tier in WakeTier::ALL {
                let n_wakes = metrics.wakes[tier as usize].load(Ordering::Relaxed);
                if n_wakes > 0 {
                    let labels = vec![("service", service.clone()), ("tier", tier.as_str().to_owned())];
                    wakes.series.push(Series { labels, value: Value::Scalar(n_wakes as f64) });
                }
            }
            for (key, series) in read(&metrics.requests).iter() {
                let labels = vec![
                    ("code", key.code.to_string()),
                    ("method", key.method.to_owned()),
                    ("protocol", key.protocol.as_str().to_owned()),
                    ("service", service.clone()),
                ];
                let duration = series.duration.value();
                let scalar = |value: f64| Series { labels: labels.clone(), value: Value::Scalar(value) };
                requests_total.series.push(scalar(duration.count as f64));
                requests_bytes.series.push(scalar(series.request_bytes.load(Ordering::Relaxed) as f64));
                responses_bytes.series.push(scalar(series.response_bytes.load(Ordering::Relaxed) as f64));
                request_duration.series.push(Series { labels, value: Value::Histogram(duration) });
            }
        }

        let mut families = vec![
            in_flight,
            held,
            wake_durations,
            wakes,
            requests_total,
            request_duration,
            requests_bytes,
            responses_bytes,
            open_connections,
            autoscaler_tick,
        ];
        // `client_golang` leaves out families without series and sorts the rest.
        families.retain(|family| !family.series.is_empty());
        for family in &mut families {
            sort_series(&mut family.series);
        }
        families.sort_by_key(|family| family.name);
        families
    }

    /// The Prometheus text exposition of everything recorded (`exposition::render`).
    pub fn render(&self) -> String {
        super::exposition::render(&self.collect())
    }

    fn with_service<R>(&self, service: &str, f: impl FnOnce(&Arc<ServiceMetrics>) -> R) -> R {
        // Lock order is always services → a service's requests, and nothing takes the services
        // lock while holding a requests lock, so holding this read lock through `f` cannot deadlock.
        if let Some(metrics) = read(&self.services).get(service) {
            return f(metrics);
        }
        let mut services = write(&self.services);
        let metrics = match services.get(service) {
            Some(metrics) => metrics,
            None => services.entry(Box::from(service)).or_insert_with(|| Arc::new(ServiceMetrics::new())),
        };
        f(metrics)
    }
}

/// `client_golang`'s metric sorter: by label values, labels taken in name order (all series of a
/// family have the same label names). `code="200"` sorts before `code="502"` whatever the service.
pub(super) fn sort_series(series: &mut [Series]) {
    series.sort_by(|a, b| a.labels.iter().map(|(_, value)| value).cmp(b.labels.iter().map(|(_, value)| value)));
}

// The maps are only inserted into and removed from, and every value is atomics, so a panic while a
// lock was held cannot have left anything half-written: poison is safe to ignore.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sums up a registry as `name{label values} value` lines, histograms as their buckets.
    fn summary(registry: &Registry) -> Vec<String> {
        let mut lines = Vec::new();
        for family in registry.collect() {
            for series in family.series {
                let labels: Vec<String> = series.labels.iter().map(|(name, value)| format!("{name}={value}")).collect();
                let value = match series.value {
                    Value::Scalar(value) => value.to_string(),
                    Value::Histogram(h) => format!("{:?} count={} sum={}", h.cumulative_counts, h.count, h.sum),
                };
                lines.push(format!("{}{{{}}} {value}", family.name, labels.join(",")));
            }
        }
        lines
    }

    /// Runs `record` on a fresh registry and compares the summary, taken while whatever `record`
    /// returned (guards) is still alive.
    fn check<Alive>(record: impl FnOnce(&Registry) -> Alive, expected: &[&str]) {
        let registry = Registry::new();
        let alive = record(&registry);
        let actual = summary(&registry);
        drop(alive);
        let wanted: Vec<String> = expected.iter().map(|line| line.to_string()).collect();
        assert_eq!(actual, wanted, "\nactual:\n{}", actual.join("\n"));
    }

    #[test]
    fn maps_methods_like_traefik() {
        for (method, expected) in [
            ("GET", "GET"),
            ("HEAD", "HEAD"),
            ("PATCH", "PATCH"),
            ("PRI", "PRI"),
            ("get", "EXTENSION_METHOD"),
            ("PROPFIND", "EXTENSION_METHOD"),
            ("", "EXTENSION_METHOD"),
        ] {
            assert_eq!(method_label(method), expected, "method {method:?}");
        }
    }

    #[test]
    fn classifies_protocols_like_traefik() {
        for (connection, upgrade, accept, expected) in [
            (None, None, None, Protocol::Http),
            (Some("Upgrade"), Some("websocket"), None, Protocol::Websocket),
            (Some("keep-alive, Upgrade"), Some("WebSocket"), Some("text/event-stream"), Protocol::Websocket),
            (None, Some("websocket"), None, Protocol::Http),
            (Some("upgrade"), Some("h2c"), None, Protocol::Http),
            (None, None, Some("text/event-stream"), Protocol::Sse),
            (None, None, Some("text/html, Text/Event-Stream "), Protocol::Sse),
            (None, None, Some("text/event-stream;q=0.9"), Protocol::Http),
            (Some("upgrade"), None, Some("text/event-stream"), Protocol::Sse),
        ] {
            assert_eq!(Protocol::classify(connection, upgrade, accept), expected, "{connection:?} {upgrade:?} {accept:?}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_le_is_inclusive() {
        check(
            |registry| {
                for secs in [0.05, 0.1, 0.2, 1.2, 7.0, -3.0, f64::NAN] {
                    registry.observe("a@slipway", 200, "GET", Protocol::Http, secs, 10, 100);
                }
            },
            &[
                "slipway_app_held_requests{service=a@slipway} 0",
                "slipway_app_in_flight{service=a@slipway} 0",
                "traefik_open_connections{entrypoint=web,protocol=TCP} 0",
                "traefik_service_request_duration_seconds{code=200,method=GET,protocol=http,service=a@slipway} [4, 5, 6, 6] count=7 sum=8.55",
                "traefik_service_requests_bytes_total{code=200,method=GET,protocol=http,service=a@slipway} 70",
                "traefik_service_requests_total{code=200,method=GET,protocol=http,service=a@slipway} 7",
                "traefik_service_responses_bytes_total{code=200,method=GET,protocol=http,service=a@slipway} 700",
            ],
        );
    }

    #[test]
    fn gauges_go_back_down_when_their_guards_drop() {
        check(
            |registry| {
                let connection = registry.open_connection();
                let first = registry.enter("a@slipway");
                let second = registry.enter("a@slipway");
                let held = registry.hold("b@slipway");
                drop(second);
                let finished = registry.hold("a@slipway");
                drop(finished);
                (connection, first, held)
            },
            &[
                "slipway_app_held_requests{service=a@slipway} 0",
                "slipway_app_held_requests{service=b@slipway} 1",
                "slipway_app_in_flight{service=a@slipway} 1",
                "slipway_app_in_flight{service=b@slipway} 0",
                "traefik_open_connections{entrypoint=web,protocol=TCP} 1",
            ],
        );
    }

    #[test]
    fn series_are_sorted_by_label_values_in_label_name_order() {
        check(
            |registry| {
                registry.observe("b@slipway", 200, "GET", Protocol::Http, 0.0, 0, 0);
                registry.observe("a@slipway", 502, "GET", Protocol::Http, 0.0, 0, 0);
                registry.observe("a@slipway", 200, "POST", Protocol::Http, 0.0, 0, 0);
                registry.observe("a@slipway", 200, "GET", Protocol::Websocket, 0.0, 0, 0);
                registry.observe("a@slipway", 200, "GET", Protocol::Http, 0.0, 0, 0);
            },
            &[
                "slipway_app_held_requests{service=a@slipway} 0",
                "slipway_app_held_requests{service=b@slipway} 0",
                "slipway_app_in_flight{service=a@slipway} 0",
                "slipway_app_in_flight{service=b@slipway} 0",
                "traefik_open_connections{entrypoint=web,protocol=TCP} 0",
                "traefik_service_request_duration_seconds{code=200,method=GET,protocol=http,service=a@slipway} [1, 1, 1, 1] count=1 sum=0",
                "traefik_service_request_duration_seconds{code=200,method=GET,protocol=http,service=b@slipway} [1, 1, 1, 1] count=1 sum=0",
                "traefik_service_request_duration_seconds{code=200,method=GET,protocol=websocket,service=a@slipway} [1, 1, 1, 1] count=1 sum=0",
                "traefik_service_request_duration_seconds{code=200,method=POST,protocol=http,service=a@slipway} [1, 1, 1, 1] count=1 sum=0",
                "traefik_service_request_duration_seconds{code=502,method=GET,protocol=http,service=a@slipway} [1, 1, 1, 1] count=1 sum=0",
                "traefik_service_requests_bytes_total{code=200,method=GET,protocol=http,service=a@slipway} 0",
                "traefik_service_requests_bytes_total{code=200,method=GET,protocol=http,service=b@slipway} 0",
                "traefik_service_requests_bytes_total{code=200,method=GET,protocol=websocket,service=a@slipway} 0",
                "traefik_service_requests_bytes_total{code=200,method=POST,protocol=http,service=a@slipway} 0",
                "traefik_service_requests_bytes_total{code=502,method=GET,protocol=http,service=a@slipway} 0",
                "traefik_service_requests_total{code=200,method=GET,protocol=http,service=a@slipway} 1",
                "traefik_service_requests_total{code=200,method=GET,protocol=http,service=b@slipway} 1",
                "traefik_service_requests_total{code=200,method=GET,protocol=websocket,service=a@slipway} 1",
                "traefik_service_requests_total{code=200,method=POST,protocol=http,service=a@slipway} 1",
                "traefik_service_requests_total{code=502,method=GET,protocol=http,service=a@slipway} 1",
                "traefik_service_responses_bytes_total{code=200,method=GET,protocol=http,service=a@slipway} 0",
                "traefik_service_responses_bytes_total{code=200,method=GET,protocol=http,service=b@slipway} 0",
                "traefik_service_responses_bytes_total{code=200,method=GET,protocol=websocket,service=a@slipway} 0",
                "traefik_service_responses_bytes_total{code=200,method=POST,protocol=http,service=a@slipway} 0",
                "traefik_service_responses_bytes_total{code=502,method=GET,protocol=http,service=a@slipway} 0",
            ],
        );
    }

    #[test]
    fn wakes_are_counted_per_tier_and_timed_per_phase() {
        check(
            |registry| {
                registry.count_wake("a@slipway", WakeTier::Frozen);
                registry.count_wake("a@slipway", WakeTier::Frozen);
                registry.observe_wake_phase("a@slipway", WakePhase::Total, 0.004);
                registry.observe_wake_phase("a@slipway", WakePhase::Total, 45.0);
                registry.observe_wake_phase("a@slipway", WakePhase::FirstByte, 0.01);
            },
            &[
                "slipway_app_held_requests{service=a@slipway} 0",
                "slipway_app_in_flight{service=a@slipway} 0",
                "slipway_wake_duration_seconds{phase=first_byte,service=a@slipway} [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] count=1 sum=0.01",
                "slipway_wake_duration_seconds{phase=total,service=a@slipway} [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1] count=2 sum=45.004",
                "slipway_wakes_total{service=a@slipway,tier=frozen} 2",
                "traefik_open_connections{entrypoint=web,protocol=TCP} 0",
            ],
        );
    }

    #[test]
    fn removing_a_service_drops_its_series() {
        check(
            |registry| {
                registry.observe("gone@slipway", 200, "GET", Protocol::Http, 0.2, 1, 2);
                let guard = registry.enter("gone@slipway");
                assert!(registry.remove_service("gone@slipway"));
                assert!(!registry.remove_service("gone@slipway"));
                drop(guard);
            },
            &["traefik_open_connections{entrypoint=web,protocol=TCP} 0"],
        );
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let registry = Registry::new();
        let handle = registry.service("a@slipway");
        std::thread::scope(|scope| {
            for thread_idx in 0..4u16 {
                let (registry, handle) = (&registry, &handle);
                scope.spawn(move || {
                    for request_idx in 0..2_000u16 {
                        // Half through the handle, half by name; a few label sets, created concurrently.
                        if request_idx % 2 == 0 {
                            handle.observe(200 + thread_idx % 2, "GET", Protocol::Http, 0.5, 1, 1);
                        } else {
                            registry.observe("a@slipway", 200 + thread_idx % 2, "GET", Protocol::Http, 0.5, 1, 1);
                        }
                        let _in_flight = registry.enter("a@slipway");
                    }
                });
            }
        });
        let families = registry.collect();
        let totals: Vec<f64> = families
            .iter()
            .filter(|family| family.name == REQUESTS_TOTAL)
            .flat_map(|family| family.series.iter())
            .map(|series| match series.value {
                Value::Scalar(value) => value,
                Value::Histogram(_) => unreachable!("a counter"),
            })
            .collect();
        assert_eq!(totals, vec![4_000.0, 4_000.0]);
        assert_eq!(handle.in_flight(), 0);
    }
}
