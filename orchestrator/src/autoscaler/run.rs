//! The autoscaler loop: every tick, scrape → `app_traffic` → `observe::snapshot` → `decide` →
//! `observe::order` → `Runtime`. The same loop drives the local runtime on one machine (scraping
//! the gateway's own registry) and, in a cluster, Nomad (scraping Traefik over HTTP).
//!
//! One tick, for every app the runtime reports:
//! 1. take one scrape (text in Prometheus format, parsed by `metrics::parse`, the Traefik parser);
//! 2. turn the last two scrapes into per-app traffic (`metrics::snapshot::app_traffic`);
//! 3. build the `Snapshot` with the runtime's own held-request count (the activator's direct
//!    demand signal, so a wake never waits for a scrape);
//! 4. `decide`, keep `next_state`, and send the one order `observe::order` names: the order is
//!    spawned, so a slow stop never delays the other apps' decisions;
//! 5. when the host's available memory is below `min_free_memory`, stop frozen apps oldest first
//!    (`evict::choose`);
//! 6. record the tick's duration in `slipway_autoscaler_tick_seconds`.
//!
//! It deliberately keeps no state beyond memory: after a restart every app starts from a fresh
//! `ScalerState`, which is safe because unknown load never scales down.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::decide::{decide, GlobalCaps, ScalerState};
use super::evict;
use super::observe::{self, Measured, Order};
use crate::metrics::parse::parse;
use crate::metrics::registry::Registry;
use crate::metrics::snapshot::{app_traffic, AppTraffic, Scrape};
use crate::runtime::{Runtime, Tier};

/// How the loop runs; the policy of each app comes from the runtime.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// Time between two ticks (and two scrapes).
    pub tick: Duration,
    /// Caps every app's policy, whatever it asks for.
    pub caps: GlobalCaps,
    /// An open connection with no new request keeps an app awake at most this long.
    pub max_connection_idle: Duration,
    /// Stop frozen apps (oldest first) while the host has less memory available than this. 0 turns
    /// eviction off.
    pub min_free_memory_bytes: u64,
    /// Read an app the runtime reports but a successful scrape has no request series for as idle
    /// (zero requests), instead of unknown. Right for Traefik in the cluster shape: it creates an
    /// app's series at its first request and drops them when the service goes, so an app woken
    /// through the activator has none until a request reaches it directly, and would otherwise never
    /// be known idle. Off for the gateway's own registry, which reports every app it knows.
    pub absent_series_mean_idle: bool,
}

/// Where the metrics text comes from.
pub trait MetricsSource: Send + Sync + 'static {
    fn scrape(&self) -> impl Future<Output = Result<String, String>> + Send;
}

/// The gateway's own registry, rendered in-process: the embedded shape. The text still goes through
/// the Prometheus parser, so the loop reads exactly what a scrape of `/metrics` would give.
pub struct RegistrySource(pub Arc<Registry>);

impl MetricsSource for RegistrySource {
    async fn scrape(&self) -> Result<String, String> {
        Ok(self.0.render())
    }
}

/// `GET http://addr/path` over plain HTTP/1.1: Traefik's metrics entrypoint, or another gateway's
/// `/metrics`. It answers within `timeout` or fails.
pub struct HttpSource {
    pub addr: SocketAddr,
    pub path: String,
    pub timeout: Duration,
}

impl MetricsSource for HttpSource {
    async fn scrape(&self) -> Result<String, String> {
        tokio::time::timeout(self.timeout, scrape_http(self.addr, &self.path))
            .await
            .map_err(|_| format!("scraping http://{}{} took longer than {:?}", self.addr, self.path, self.timeout))?
    }
}

/// The cluster shape's scrape: Traefik's metrics (the requests it routed straight to instances)
/// followed by the activator's request counters (the requests it held and proxied after a wake,
/// which Traefik counts under `activator@file`, not under the app). The activator's in-flight and
/// held gauges are left out: they see only the activator's share, and `AppTraffic::concurrency`
/// prefers a gauge to the Little's-law average that covers both; held requests come from the
/// runtime's observation anyway. A failed Traefik scrape fails the whole scrape (load unknown).
pub struct ClusterSource {
    pub traefik: HttpSource,
    pub activator: Arc<Registry>,
}

impl MetricsSource for ClusterSource {
    async fn scrape(&self) -> Result<String, String> {
        let mut text = self.traefik.scrape().await?;
        text.push('\n');
        text.push_str(&activator_counters(&self.activator.render()));
        Ok(text)
    }
}

/// PURE: the activator's exposition without its gauges (`slipway_app_in_flight`,
/// `slipway_app_held_requests`) and without comment lines (Traefik's text declared the families).
pub fn activator_counters(exposition: &str) -> String {
    exposition
        .lines()
        .filter(|line| {
            !line.starts_with('#') && !line.starts_with("slipway_app_in_flight") && !line.starts_with("slipway_app_held_requests")
        })
        .flat_map(|line| [line, "\n"])
        .collect()
}

async fn scrape_http(addr: SocketAddr, path: &str) -> Result<String, String> {
    use http_body_util::{BodyExt, Empty};
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr} failed: {e}"))?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("bad metrics path {path}: {e}"))?;
    let response = sender.send_request(request).await.map_err(|e| format!("GET {path} failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {path} answered {}", response.status()));
    }
    let body = response.into_body().collect().await.map_err(|e| format!("reading {path} failed: {e}"))?.to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| format!("{path} is not UTF-8"))
}

/// The app of a Traefik service in the cluster shape: `quiz@nomad` (or `quiz@nomad-<namespace>`,
/// `quiz@consulcatalog`) is app `quiz`, since `render::service_name` is the app's name. Anything
/// else (`activator@file`, Traefik's internal services) is no app.
pub fn cluster_service_app(name: &str, provider: &str) -> Option<String> {
    let cluster =
        provider == "nomad" || provider.starts_with("nomad-") || provider == "consulcatalog" || provider.starts_with("consulcatalog-");
    cluster.then(|| name.to_owned())
}

/// Runs ticks until `shutdown`. `map_foreign` names the app of a non-gateway service label
/// (`p42-web@nomad` → `p42`); the gateway's own `NAME@slipway` needs none.
pub async fn run<R: Runtime, M: MetricsSource>(
    runtime: Arc<R>,
    source: M,
    config: LoopConfig,
    metrics: Arc<Registry>,
    map_foreign: fn(&str, &str) -> Option<String>,
    mut shutdown: watch::Receiver<bool>,
) {
    let origin = Instant::now();
    let mut scaler = Scaler::new(config);
    let mut ticks = tokio::time::interval(scaler.config.tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.changed() => return,
        }
        let started = Instant::now();
        let text = source.scrape().await;
        let meminfo = if scaler.config.min_free_memory_bytes > 0 { std::fs::read_to_string("/proc/meminfo").ok() } else { None };
        let orders = scaler.tick(&*runtime, text, started.duration_since(origin), meminfo.as_deref(), map_foreign).await;
        for (app, order) in orders {
            let runtime = runtime.clone();
            tokio::spawn(async move {
                let result = match order {
                    Order::Scale(instances) => runtime.scale(&app, instances).await,
                    Order::Freeze => runtime.freeze(&app).await,
                    Order::Stop => runtime.stop_instances(&app).await,
                    Order::Nothing => Ok(()),
                };
                if let Err(reason) = result {
                    tracing::debug!(app, ?order, "autoscaler order not carried out: {reason}");
                }
            });
        }
        metrics.observe_autoscaler_tick(started.elapsed().as_secs_f64());
    }
}

/// The loop's memory between ticks: the last scrape and each app's `ScalerState`.
pub struct Scaler {
    config: LoopConfig,
    previous: Option<Scrape>,
    states: HashMap<String, ScalerState>,
}

impl Scaler {
    pub fn new(config: LoopConfig) -> Self {
        Self { config, previous: None, states: HashMap::new() }
    }

    /// One tick at `at` (from any fixed origin): the orders to send, in app order. The runtime is
    /// only observed here; the orders are the caller's to carry out.
    pub async fn tick<R: Runtime>(
        &mut self,
        runtime: &R,
        text: Result<String, String>,
        at: Duration,
        meminfo: Option<&str>,
        map_foreign: fn(&str, &str) -> Option<String>,
    ) -> Vec<(String, Order)> {
        let now = at.as_secs_f64();
        let had_previous = self.previous.is_some();
        let traffic: Option<std::collections::BTreeMap<String, AppTraffic>> =
            match text.and_then(|text| parse(&text).map_err(|e| e.to_string())) {
                Ok(samples) => {
                    let current = Scrape { at, samples };
                    let traffic = app_traffic(self.previous.as_ref(), &current, map_foreign).ok();
                    self.previous = Some(current);
                    traffic
                }
                Err(reason) => {
                    tracing::debug!("metrics scrape failed, load is unknown this tick: {reason}");
                    None
                }
            };
        let metrics_age_s = self.previous.as_ref().map(|previous| now - previous.at.as_secs_f64());
        let observations = runtime.observe().await;
        let wall = Instant::now();
        let mut orders = Vec::new();
        for observation in &observations {
            let policy = observation.policy.clamp(&self.config.caps);
            let state = self.states.entry(observation.app.clone()).or_default();
            // A stopped app has no instances, whatever an earlier decision asked for (an operator
            // may have put it to sleep): start the count from zero.
            if observation.tier == Tier::Stopped && observation.starting == 0 {
                state.desired = Some(0);
            }
            let measured = Measured {
                traffic: traffic.as_ref().and_then(|traffic| {
                    let known = traffic.get(&observation.app).copied().filter(|app| app.requests.is_some() || app.in_flight.is_some());
                    match known {
                        None if self.config.absent_series_mean_idle && had_previous => {
                            Some(AppTraffic { requests: Some(0.0), average_concurrency: Some(0.0), ..AppTraffic::default() })
                        }
                        None => traffic.get(&observation.app).copied(),
                        known => known,
                    }
                }),
                metrics_age_s: if traffic.is_some() { metrics_age_s } else { None },
                ready: observation.ready,
                held: observation.held,
                since_last_request_s: wall.saturating_duration_since(observation.last_request).as_secs_f64(),
                max_connection_idle_s: self.config.max_connection_idle.as_secs_f64(),
            };
            let decision = decide(&policy, &observe::snapshot(&measured), state, now);
            let order = observe::order(&decision, observation.tier, observation.ready, observation.starting, policy.min_instances);
            if order != Order::Nothing {
                tracing::debug!(app = observation.app, mode = %decision.mode, desired = decision.desired, "{}", decision.reason);
                orders.push((observation.app.clone(), order));
            }
            *state = decision.next_state;
        }
        // Forget apps the runtime no longer knows (a set, so a tick stays linear in the apps).
        let observed: std::collections::HashSet<&str> = observations.iter().map(|observation| observation.app.as_str()).collect();
        self.states.retain(|app, _| observed.contains(app.as_str()));

        // Sizes are read from the cgroups only when memory is short and something is frozen.
        let short = meminfo.and_then(evict::mem_available).filter(|available| *available < self.config.min_free_memory_bytes);
        let any_frozen = observations.iter().any(|observation| observation.tier == Tier::Frozen);
        if let Some(available) = short.filter(|_| any_frozen) {
            let sizes: HashMap<String, Option<u64>> = runtime.frozen_memory().await.into_iter().collect();
            let frozen: Vec<evict::Frozen> = observations
                .iter()
                .filter(|observation| observation.tier == Tier::Frozen)
                .map(|observation| evict::Frozen {
                    app: observation.app.clone(),
                    frozen_for_s: observation.frozen_since.map_or(0.0, |since| wall.saturating_duration_since(since).as_secs_f64()),
                    bytes: sizes.get(&observation.app).copied().flatten(),
                })
                .collect();
            for app in evict::choose(&frozen, available, self.config.min_free_memory_bytes) {
                tracing::info!(app, "memory is short ({available} bytes available): stopping a frozen app");
                orders.retain(|(ordered, _)| ordered != &app);
                orders.push((app, Order::Stop));
            }
        }
        orders
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Observation;

    /// One running app that had its last request long ago; records nothing (orders are returned).
    struct OneIdleApp(Instant);

    impl Runtime for OneIdleApp {
        async fn observe(&self) -> Vec<Observation> {
            let policy = super::super::Policy { idle_to_zero_s: Some(1.0), freeze_after_s: None, ..Default::default() };
            vec![Observation {
                app: "quiz".to_owned(),
                policy,
                tier: Tier::Running,
                ready: 1,
                starting: 0,
                held: 0,
                last_request: self.0,
                frozen_since: None,
            }]
        }
        async fn scale(&self, _: &str, _: u32) -> Result<(), String> {
            Ok(())
        }
        async fn freeze(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        async fn stop_instances(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
        async fn frozen_memory(&self) -> Vec<(String, Option<u64>)> {
            Vec::new()
        }
    }

    async fn orders_after_idle_scrapes(absent_series_mean_idle: bool) -> Vec<(String, Order)> {
        let config = LoopConfig {
            tick: Duration::from_secs(1),
            caps: GlobalCaps { max_instances_per_app: 5 },
            max_connection_idle: Duration::from_secs(1),
            min_free_memory_bytes: 0,
            absent_series_mean_idle,
        };
        let runtime = OneIdleApp(Instant::now() - Duration::from_secs(600));
        let mut scaler = Scaler::new(config);
        // Traefik answers, but has no series for the app (it was woken through the activator).
        let text = "traefik_service_requests_total{code=\"200\",method=\"GET\",protocol=\"http\",service=\"activator@file\"} 3\n";
        let mut orders = Vec::new();
        for second in 0..5 {
            orders = scaler.tick(&runtime, Ok(text.to_owned()), Duration::from_secs(second), None, cluster_service_app).await;
        }
        orders
    }

    #[tokio::test]
    async fn an_app_without_traefik_series_is_idle_only_when_the_source_says_absence_means_idle() {
        assert_eq!(orders_after_idle_scrapes(true).await, vec![("quiz".to_owned(), Order::Stop)]);
        assert_eq!(orders_after_idle_scrapes(false).await, Vec::new(), "unknown load never scales down");
    }

    #[test]
    fn the_activator_adds_its_counters_but_not_its_partial_gauges() {
        let registry = Registry::new();
        let quiz = registry.service(&crate::metrics::registry::service_for_app("quiz"));
        quiz.observe(200, "GET", crate::metrics::registry::Protocol::Http, 0.2, 10, 20);
        let _open = quiz.enter();
        let counters = activator_counters(&registry.render());
        assert!(counters.contains("traefik_service_requests_total{"), "{counters}");
        assert!(!counters.contains("slipway_app_in_flight") && !counters.contains("slipway_app_held_requests"), "{counters}");
        assert!(crate::metrics::parse::parse(&counters).is_ok());
    }

    #[test]
    fn cluster_services_name_their_app() {
        let check = |name: &str, provider: &str, expected: Option<&str>| {
            assert_eq!(cluster_service_app(name, provider).as_deref(), expected, "{name}@{provider}");
        };
        check("quiz", "nomad", Some("quiz"));
        check("quiz", "nomad-students", Some("quiz"));
        check("quiz", "consulcatalog", Some("quiz"));
        check("activator", "file", None);
        check("api", "internal", None);
    }
}
