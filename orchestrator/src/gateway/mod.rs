//! The app gateway: the HTTP/1.1 reverse proxy that answers at `NAME.<apps domain>` (by default
//! `http://NAME.localhost:8000`) and forwards each request to that app's server.
//!
//! - `access`: who may see an app (visibility, signed hand-off tokens and cookies, the table fed
//!   from Redis); checked before an app is resolved.
//! - `route_table`: `Host` → app name, and the plain app → route map (pure).
//! - `upstream`: the `Resolver` and `Connector` seams the rest of Slipway plugs into, with
//!   `TableResolver` and `TcpConnector`.
//! - `netns`: `NetnsConnector`, for apps listening inside their own network namespace.
//! - `headers`: hop-by-hop, portal-cookie and `X-Forwarded-*` rewriting (pure).
//! - `pages`: the HTML pages for unknown, crashed, starting and unreachable apps (pure).
//! - `proxy`: `Gateway` and `serve`: the server, the upstream pool, upgrades and graceful shutdown;
//!   it records every proxied request into `metrics::Registry` (Traefik's names).
//! - `metrics_endpoint`: `serve_metrics`, `GET /metrics` on a listener of its own.
//! - `tls`: `CertStore` (certificates by SNI: the apps domain's wildcard, custom domains'),
//!   `server_config`, certificate validity from DER (pure), key sealing for the Redis hand-over.
//! - `domains`: custom domains (pure `DomainTable`, challenge answers, redirect locations) and the
//!   Redis `feed` that keeps `Domains` and the wildcard certificate current.
//!
//! It deliberately does not start, stop or restart apps, wake them from zero, obtain certificates
//! or decide who owns a domain: those belong to the runtime, the activator and the portal. It reads
//! Redis only in the feeds, never per request.

pub mod access;
pub mod domains;
pub mod headers;
pub mod metrics_endpoint;
pub mod netns;
pub mod pages;
pub mod proxy;
pub mod route_table;
pub mod tls;
pub mod upstream;

pub use metrics_endpoint::serve_metrics;
pub use netns::{NetnsConnector, NetnsError};
pub use proxy::{serve, Gateway, GatewayConfig};
pub use route_table::{app_for_host, HostMatch, Resolution, Route, RouteTable, UnavailableReason, Upstream};
pub use upstream::{Connector, RequestHints, Resolver, TableResolver, TcpConnector, UpstreamError};
