//! The monitor: every `monitor.interval` the sampler reads the host (`host`), the gateway's
//! metrics registry and the runtime's app states (`apps`), and the components' health
//! (`health`); it stores the samples in PostgreSQL, rolls them up and prunes them (`series`),
//! and moves alert incidents (`alerts`), queueing one mail to every admin when an incident opens
//! and one when it clears. Pages draw charts from the stored series (`chart`).
//!
//! Only this file and `health` do I/O; `host::read` reads `/proc`. The pure parts are
//! `host` (parsing), `apps`, `series`, `alerts` and `chart`.
//!
//! Metric names (the `metric` column): `host` has `cpu`, `memory`, `disk` (percent), `net_rx`,
//! `net_tx` (KiB/s); each app has `requests` (per second), `errors` (percent of requests),
//! `p50`, `p95`, `p99` (milliseconds), `wakes` (per interval) and `instances`. An app gets rows
//! while it runs or has traffic; a sleeping app's chart shows a gap, not a line of zeros.

pub mod alerts;
pub mod apps;
pub mod chart;
pub mod health;
pub mod host;
pub mod series;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::db::models::MetricSample;
use crate::db::{self, DbError};
use crate::domain::Language;
use crate::error::AppError;
use crate::mail::{compose, MailKind};
use crate::state::AppState;
use alerts::{Check, Edge, Incidents, OpenIncident, Timing};
use health::ComponentStatus;
use series::{Range, Tier};

/// The series name of the host's metrics.
pub const HOST: &str = "host";

/// What the sampler saw last, for the pages: component health and open incidents.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    pub components: Vec<ComponentStatus>,
    pub incidents: Vec<OpenIncident>,
    pub checked_at: Option<DateTime<Utc>>,
}

/// Shared between the sampler (writer) and the pages (readers).
#[derive(Debug, Default)]
pub struct Live(RwLock<LiveView>);

impl Live {
    pub fn get(&self) -> LiveView {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn set(&self, view: LiveView) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = view;
    }
}

/// The previous round, for rates.
struct Previous {
    at: Instant,
    host: Option<host::HostReading>,
    apps: BTreeMap<String, apps::AppCounters>,
}

struct Sampler {
    state: AppState,
    metrics: Arc<orchestrator::metrics::Registry>,
    client: reqwest::Client,
    previous: Option<Previous>,
    incidents: Incidents,
}

fn time(unix_secs: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(unix_secs, 0).expect("monitor times are within chrono's range")
}

/// Runs the sampler until `shutdown` turns true.
pub async fn run(state: AppState, metrics: Arc<orchestrator::metrics::Registry>, mut shutdown: watch::Receiver<bool>) {
    let open = match state.db.run(db::monitor::open_incidents).await {
        Ok(rows) => {
            rows.into_iter().map(|row| OpenIncident { key: row.key, opened_at: row.opened_at.timestamp(), reason: row.reason }).collect()
        }
        Err(error) => {
            // An incident still open in the table is not mailed again: its row refuses a second
            // open one (`alert_incidents_one_open`).
            tracing::error!("the monitor cannot read open incidents: {error}");
            Vec::new()
        }
    };
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client without custom settings builds");
    let mut sampler = Sampler { state, metrics, client, previous: None, incidents: Incidents::restore(open) };
    let mut ticker = tokio::time::interval(sampler.state.config.monitor.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => sampler.tick().await,
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
}

fn sample(series: &str, metric: &str, at: DateTime<Utc>, value: f64) -> MetricSample {
    MetricSample { resolution_secs: series::RAW.resolution_secs as i32, series: series.to_owned(), metric: metric.to_owned(), at, value }
}

impl Sampler {
    async fn tick(&mut self) {
        let started = Instant::now();
        let now = Utc::now();
        let elapsed = self.previous.as_ref().map(|p| started.duration_since(p.at).as_secs_f64());
        let config = self.state.config.monitor.clone();
        let mut samples = Vec::new();
        let mut checks = Vec::new();

        let data_dir = self.state.config.data_dir.clone();
        let reading = match tokio::task::spawn_blocking(move || host::read(&data_dir)).await {
            Ok(Ok(reading)) => Some(reading),
            Ok(Err(error)) => {
                tracing::warn!("the monitor cannot read the host: {error}");
                None
            }
            Err(error) => {
                tracing::warn!("the monitor's host reading failed: {error}");
                None
            }
        };
        if let Some(reading) = &reading {
            let previous = self.previous.as_ref().and_then(|p| p.host.as_ref());
            let host_sample = host::sample(previous, reading, elapsed.unwrap_or(0.0));
            for (metric, value) in [
                ("cpu", host_sample.cpu_percent),
                ("memory", Some(host_sample.memory_percent)),
                ("disk", Some(host_sample.disk_percent)),
                ("net_rx", host_sample.net_rx_kbps),
                ("net_tx", host_sample.net_tx_kbps),
            ] {
                if let Some(value) = value {
                    samples.push(sample(HOST, metric, now, value));
                }
            }
            checks.push(Check {
                key: "host.disk".to_owned(),
                problem: (host_sample.disk_percent >= config.disk_alert_percent).then(|| {
                    format!(
                        "the disk of the data directory is {:.1}% full (alert at {}%)",
                        host_sample.disk_percent, config.disk_alert_percent
                    )
                }),
            });
            checks.push(Check {
                key: "host.memory".to_owned(),
                problem: (host_sample.memory_percent >= config.memory_alert_percent).then(|| {
                    format!("{:.1}% of the memory is in use (alert at {}%)", host_sample.memory_percent, config.memory_alert_percent)
                }),
            });
        }

        let counters = apps::counters(&orchestrator::metrics::samples(&self.metrics.collect()));
        let statuses: BTreeMap<String, orchestrator::runtime::AppStatus> = self.state.runtime.apps_status().into_iter().collect();
        if let (Some(previous), Some(elapsed)) = (&self.previous, elapsed) {
            let mut names: Vec<&String> = counters.keys().chain(statuses.keys()).collect();
            names.sort();
            names.dedup();
            for app in names {
                let current = counters.get(app).cloned().unwrap_or_default();
                let rates = apps::rates(previous.apps.get(app), &current, elapsed);
                let status = statuses.get(app);
                let awake = status.is_some_and(|s| matches!(s.state, "running" | "starting"));
                if !(awake || rates.requests_per_sec > 0.0 || rates.wakes > 0.0) {
                    continue;
                }
                samples.push(sample(app, "requests", now, rates.requests_per_sec));
                samples.push(sample(app, "wakes", now, rates.wakes));
                samples.push(sample(app, "instances", now, status.map_or(0, |s| s.instances) as f64));
                for (metric, value) in
                    [("errors", rates.error_percent), ("p50", rates.p50_ms), ("p95", rates.p95_ms), ("p99", rates.p99_ms)]
                {
                    if let Some(value) = value {
                        samples.push(sample(app, metric, now, value));
                    }
                }
            }
        }

        let components = health::check_all(&self.state, &self.client).await;
        for component in &components {
            checks.push(Check { key: format!("component.{}", component.name), problem: (!component.up).then(|| component.detail.clone()) });
        }

        let at = now.timestamp();
        let stored = self.state.db.run(move |conn| {
            db::monitor::insert(conn, &samples)?;
            maintain(conn, at)
        });
        if let Err(error) = stored.await {
            tracing::warn!("the monitor cannot store its samples: {error}");
        }

        let timing = Timing { alert_after: config.alert_after.as_secs() as i64, clear_after: config.clear_after.as_secs() as i64 };
        let edges = self.incidents.step(&checks, at, timing);
        for edge in edges {
            if let Err(error) = self.persist(&edge).await {
                // Put the state back so the edge is tried again next round.
                tracing::error!("the monitor cannot record an incident: {error}");
                self.incidents = Incidents::restore(match self.state.db.run(db::monitor::open_incidents).await {
                    Ok(rows) => rows
                        .into_iter()
                        .map(|r| OpenIncident { key: r.key, opened_at: r.opened_at.timestamp(), reason: r.reason })
                        .collect(),
                    Err(_) => self.incidents.open(),
                });
            }
        }
        self.state.monitor.set(LiveView { components, incidents: self.incidents.open(), checked_at: Some(now) });
        self.previous = Some(Previous { at: started, host: reading, apps: counters });
    }

    /// Writes an incident edge and queues its mail to every verified admin, in one transaction,
    /// so a crash between the two never sends twice or forgets. An incident already open in the
    /// table (the sampler restarted without reading it) sends nothing.
    async fn persist(&self, edge: &Edge) -> Result<(), DbError> {
        let edge = edge.clone();
        let mail = self.state.mail.clone();
        let link = self.state.config.public_url.join("/admin/monitor").expect("a fixed path joins onto an http URL").to_string();
        let queued = self
            .state
            .db
            .run(move |conn| {
                use diesel::Connection;
                conn.transaction(|conn| {
                    let (key, kind) = match &edge {
                        Edge::Opened { key, reason, at } => {
                            if db::monitor::is_open(conn, key)? {
                                return Ok(0);
                            }
                            db::monitor::open_incident(conn, key, time(*at), reason)?;
                            let kind = MailKind::IncidentOpened {
                                what: describe(key),
                                reason: reason.clone(),
                                at: stamp(*at),
                                link: link.clone(),
                            };
                            (key, kind)
                        }
                        Edge::Cleared { key, reason, opened_at, at } => {
                            if !db::monitor::clear_incident(conn, key, time(*at))? {
                                return Ok(0);
                            }
                            let kind = MailKind::IncidentCleared {
                                what: describe(key),
                                reason: reason.clone(),
                                opened_at: stamp(*opened_at),
                                at: stamp(*at),
                                link: link.clone(),
                            };
                            (key, kind)
                        }
                    };
                    let admins = db::users::admins(conn)?;
                    for admin in &admins {
                        let language = Language::parse(&admin.language).unwrap_or_default();
                        let (subject, sealed) = mail.seal(compose(&kind, language, &admin.display_name));
                        db::mail::enqueue(conn, &admin.email, &subject, &sealed)?;
                    }
                    tracing::warn!(
                        incident = key.as_str(),
                        n_admins = admins.len(),
                        "monitor incident {}",
                        if matches!(edge, Edge::Opened { .. }) { "opened" } else { "cleared" }
                    );
                    Ok::<usize, DbError>(admins.len())
                })
            })
            .await?;
        if queued > 0 {
            self.state.mail.wake();
        }
        Ok(())
    }
}

/// Rolls up whatever is due and prunes every tier (see `series`).
fn maintain(conn: &mut diesel::PgConnection, now: i64) -> Result<(), DbError> {
    for (source, target) in [(series::RAW, series::MINUTES), (series::MINUTES, series::TEN_MINUTES)] {
        let last_done = db::monitor::newest(conn, target.resolution_secs as i32)?.map(|t| t.timestamp());
        let Some((start, end)) = series::pending_window(source, target, last_done, now) else { continue };
        let rows = db::monitor::between(conn, source.resolution_secs as i32, None, time(start), time(end))?;
        let points: Vec<series::Point> =
            rows.into_iter().map(|r| series::Point { series: r.series, metric: r.metric, at: r.at.timestamp(), value: r.value }).collect();
        let rolled: Vec<MetricSample> = series::rollup(&points, target.resolution_secs)
            .into_iter()
            .map(|p| MetricSample {
                resolution_secs: target.resolution_secs as i32,
                series: p.series,
                metric: p.metric,
                at: time(p.at),
                value: p.value,
            })
            .collect();
        db::monitor::insert(conn, &rolled)?;
    }
    for (tier, before) in series::prune_before(now) {
        db::monitor::prune(conn, tier.resolution_secs as i32, time(before))?;
    }
    Ok(())
}

/// What an incident is about, for mail: `component.redis` → `redis`, `host.disk` → `disk`.
pub fn describe(key: &str) -> String {
    key.split_once('.').map_or(key, |(_, what)| what).to_owned()
}

fn stamp(at: i64) -> String {
    time(at).format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Stored points of one range, by (series, metric), oldest first.
#[derive(Debug, Clone)]
pub struct Series {
    pub range: Range,
    pub tier: Tier,
    /// Seconds between two points: the tier's resolution, or for raw samples the sampling
    /// interval when that is longer (charts break their lines at gaps of several steps).
    pub step_secs: i64,
    pub from: i64,
    pub to: i64,
    pub points: BTreeMap<(String, String), Vec<(i64, f64)>>,
}

impl Series {
    pub fn get(&self, series: &str, metric: &str) -> &[(i64, f64)] {
        self.points.get(&(series.to_owned(), metric.to_owned())).map_or(&[], Vec::as_slice)
    }

    /// The series as JSON: `{series: {metric: [[unix seconds, value], ...]}}`.
    pub fn json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for ((series, metric), points) in &self.points {
            let entry = out.entry(series.clone()).or_insert_with(|| serde_json::json!({}));
            entry[metric] = serde_json::json!(points.iter().map(|(at, value)| serde_json::json!([at, value])).collect::<Vec<_>>());
        }
        serde_json::Value::Object(out)
    }
}

/// The stored points of `range` up to now, of one series (an app, or `HOST`) or all of them.
pub async fn load(state: &AppState, range: Range, series: Option<&str>) -> Result<Series, AppError> {
    let to = Utc::now().timestamp();
    let from = to - range.secs();
    let tier = range.tier();
    let name = series.map(str::to_owned);
    let rows = state
        .db
        .run(move |conn| db::monitor::between(conn, tier.resolution_secs as i32, name.as_deref(), time(from), time(to + 1)))
        .await?;
    let mut points: BTreeMap<(String, String), Vec<(i64, f64)>> = BTreeMap::new();
    for row in rows {
        points.entry((row.series, row.metric)).or_default().push((row.at.timestamp(), row.value));
    }
    let step_secs =
        if tier == series::RAW { tier.resolution_secs.max(state.config.monitor.interval.as_secs() as i64) } else { tier.resolution_secs };
    Ok(Series { range, tier, step_secs, from, to, points })
}

/// One app's line in the admin's table: its tier now and its metrics over the range.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppRow {
    pub app: String,
    pub tier: String,
    pub instances: usize,
    pub requests_per_sec: Option<f64>,
    pub error_percent: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub wakes: f64,
}

/// Every app the runtime knows or the range has samples of, with its means over the range.
pub async fn app_rows(state: &AppState, range: Range) -> Result<Vec<AppRow>, AppError> {
    let from = time(Utc::now().timestamp() - range.secs());
    let resolution = range.tier().resolution_secs as i32;
    let summaries = state.db.run(move |conn| db::monitor::app_summaries(conn, resolution, from)).await?;
    let mut rows: BTreeMap<String, AppRow> = BTreeMap::new();
    let blank = |app: &str| AppRow {
        app: app.to_owned(),
        tier: "stopped".to_owned(),
        instances: 0,
        requests_per_sec: None,
        error_percent: None,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
        wakes: 0.0,
    };
    for (app, status) in state.runtime.apps_status() {
        let mut row = blank(&app);
        row.tier = status.state.to_owned();
        row.instances = status.instances;
        rows.insert(app, row);
    }
    for summary in summaries {
        let row = rows.entry(summary.series.clone()).or_insert_with(|| blank(&summary.series));
        match summary.metric.as_str() {
            "requests" => row.requests_per_sec = Some(summary.mean),
            "errors" => row.error_percent = Some(summary.mean),
            "p50" => row.p50_ms = Some(summary.mean),
            "p95" => row.p95_ms = Some(summary.mean),
            "p99" => row.p99_ms = Some(summary.mean),
            "wakes" => row.wakes = summary.total,
            _ => {}
        }
    }
    Ok(rows.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_described_by_what_they_are_about() {
        assert_eq!(describe("component.postgresql"), "postgresql");
        assert_eq!(describe("host.disk"), "disk");
        assert_eq!(describe("odd"), "odd");
    }
}
