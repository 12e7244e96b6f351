//! The admin's monitor page (host charts, components, open alerts, every app's traffic) and the
//! app charts the project page shows its owners. Charts are inline SVG from `monitor::chart`.

use actix_web::{web, HttpRequest};
use askama::Template;
use serde::Deserialize;

use crate::domain::Role;
use crate::error::AppError;
use crate::monitor::chart::{line_chart, Chart, Line};
use crate::monitor::series::Range;
use crate::monitor::{self, AppRow, LiveView, Series};
use crate::state::AppState;
use crate::web::{PageCtx, PageResult, Viewer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/monitor", web::get().to(monitor_page));
}

#[derive(Deserialize)]
pub struct RangeQuery {
    pub range: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_monitor.html")]
struct MonitorPage<'a> {
    page: &'a PageCtx,
    range: Range,
    ranges: [Range; 3],
    charts: Vec<String>,
    live: LiveView,
    apps: Vec<AppRow>,
}

impl MonitorPage<'_> {
    fn range_label(&self, range: &Range) -> &'static str {
        match range {
            Range::Hour => self.page.t("monitor.range_1h"),
            Range::Day => self.page.t("monitor.range_24h"),
            Range::Week => self.page.t("monitor.range_7d"),
        }
    }

    fn what(&self, key: &str) -> String {
        monitor::describe(key)
    }

    fn num(&self, value: &Option<f64>) -> String {
        value.map_or_else(|| "–".to_owned(), |v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") })
    }

    fn since(&self, unix_secs: &i64) -> String {
        chrono::DateTime::<chrono::Utc>::from_timestamp(*unix_secs, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    }
}

fn chart(ctx: &PageCtx, series: &Series, name: &str, title_key: &str, lines: Vec<Line<'_>>) -> String {
    line_chart(&Chart {
        title: ctx.t(title_key),
        name,
        from: series.from,
        to: series.to,
        resolution_secs: series.step_secs,
        lines,
        empty_text: ctx.t("monitor.no_data"),
    })
}

/// The host's charts: CPU, memory, disk and network.
fn host_charts(ctx: &PageCtx, series: &Series) -> Vec<String> {
    let host = monitor::HOST;
    let one = |metric| vec![Line { label: metric, points: series.get(host, metric) }];
    vec![
        chart(ctx, series, "host-cpu", "monitor.cpu", one("cpu")),
        chart(ctx, series, "host-memory", "monitor.memory", one("memory")),
        chart(ctx, series, "host-disk", "monitor.disk", one("disk")),
        chart(ctx, series, "host-net-rx", "monitor.net_rx", one("net_rx")),
        chart(ctx, series, "host-net-tx", "monitor.net_tx", one("net_tx")),
    ]
}

/// One app's charts: requests, errors, latency percentiles and wakes.
pub fn app_charts(ctx: &PageCtx, series: &Series, app: &str) -> Vec<String> {
    let one = |metric| vec![Line { label: metric, points: series.get(app, metric) }];
    let latency = vec![
        Line { label: "p50", points: series.get(app, "p50") },
        Line { label: "p95", points: series.get(app, "p95") },
        Line { label: "p99", points: series.get(app, "p99") },
    ];
    vec![
        chart(ctx, series, "app-requests", "monitor.requests", one("requests")),
        chart(ctx, series, "app-errors", "monitor.errors", one("errors")),
        chart(ctx, series, "app-latency", "monitor.latency", latency),
        chart(ctx, series, "app-wakes", "monitor.wakes", one("wakes")),
    ]
}

async fn monitor_page(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<RangeQuery>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    if user.role != Role::Admin.as_str() {
        return Err(ctx.error_page(AppError::Forbidden));
    }
    let range = Range::parse(query.range.as_deref());
    let series = monitor::load(&state, range, Some(monitor::HOST)).await.map_err(|e| ctx.error_page(e))?;
    let apps = monitor::app_rows(&state, range).await.map_err(|e| ctx.error_page(e))?;
    let charts = host_charts(&ctx, &series);
    Ok(ctx.ok(&MonitorPage { page: &ctx, range, ranges: Range::ALL, charts, live: state.monitor.get(), apps }))
}
