//! Gateway metrics that look exactly like Traefik v3's, so the autoscaler reads the one-machine
//! gateway and a real Traefik in a cluster with the same code.
//!
//! - `registry`: `Registry`, the lock-light recorder on the gateway's hot path (atomics), and the
//!   label vocabulary (`Protocol`, `method_label`, `WakePhase`, `WakeTier`).
//! - `exposition`: `render`, the Prometheus text format 0.0.4 byte for byte as Traefik (Go's
//!   `client_golang`) writes it, and `samples`, the same data without the text.
//! - `parse`: `parse`, a reader for that text format (real Traefik's and ours) into flat `Sample`s.
//! - `snapshot`: `app_traffic`, two scrapes → per-app requests, concurrency and in-flight counts.
//! - `testdata/`: a real Traefik v3.7.15 scrape; the tests parse it and re-render it byte for byte.
//!
//! The contract, shared with Traefik v3 (`pkg/observability/metrics/prometheus.go`):
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `traefik_service_requests_total` | counter | `code, method, protocol, service` |
//! | `traefik_service_request_duration_seconds` | histogram, `le` 0.1 0.3 1.2 5 +Inf | `code, method, protocol, service` |
//! | `traefik_service_requests_bytes_total`, `traefik_service_responses_bytes_total` | counter | `code, method, protocol, service` |
//! | `traefik_open_connections` | gauge | `entrypoint, protocol` (`TCP`) |
//!
//! Slipway's own, which Traefik does not have:
//!
//! | Metric | Type | Labels |
//! |---|---|---|
//! | `slipway_app_in_flight` | gauge | `service` |
//! | `slipway_app_held_requests` | gauge | `service` |
//! | `slipway_wake_duration_seconds` | histogram, `le` 0.005 … 30 +Inf | `phase, service` |
//! | `slipway_wakes_total` | counter | `service, tier` |
//! | `slipway_autoscaler_tick_seconds` | histogram, `le` 0.0001 … 0.1 +Inf | none |
//!
//! The gateway's services are named `<app>@slipway`, as Traefik names `p42-web@nomad`.
//!
//! Everything here is pure: no I/O, no clock, no tokio. Serving `/metrics` over HTTP, scraping
//! Traefik and deciding what to do with the numbers belong to the gateway and the autoscaler.

pub mod exposition;
pub mod parse;
pub mod registry;
pub mod snapshot;

pub use exposition::{render, samples, CONTENT_TYPE};
pub use parse::{parse, ParseError, ParseProblem, Sample};
pub use registry::{
    method_label, service_for_app, GaugeGuard, HistogramValue, MetricFamily, MetricKind, Protocol, Registry, Series, ServiceMetrics, Value,
    WakePhase, WakeTier, ENTRYPOINT, PROVIDER, REQUEST_DURATION_BUCKETS, WAKE_DURATION_BUCKETS,
};
pub use snapshot::{app_for_service, app_traffic, AppTraffic, Scrape, SnapshotError};
