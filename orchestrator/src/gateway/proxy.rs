//! The app gateway's HTTP/1.1 reverse proxy: `NAME.<apps domain>` → the app's upstream.
//!
//! For each request it maps `Host` to an app (`route_table`), asks the `Resolver` where the app
//! answers, and forwards the request over a pooled keep-alive HTTP/1.1 connection opened by the
//! `Connector`, streaming bodies both ways frame by frame (uploads, downloads and server-sent events
//! are never collected in memory). `Upgrade` requests (WebSocket) are forwarded and, on
//! `101 Switching Protocols`, both upgraded connections are spliced byte for byte. When the app
//! cannot answer, the visitor gets one of the small pages in `pages`.
//!
//! Connection pool: hyper's low-level client (`client::conn::http1::handshake`) over the
//! connector's stream, with a small pool keyed by `Upstream`. hyper-util's legacy `Client` was not
//! used because its connectors must be `tower::Service<Uri>` (tower is not a dependency here) and
//! its pool is keyed by URI authority, which cannot tell two namespaces with the same address apart.
//! A connection goes back to the pool when the app's response body has been read to the end; a
//! body dropped early (the visitor left) closes the connection instead, because HTTP/1.1 cannot
//! reuse a connection with an unread response on it.
//!
//! TLS: `serve_tls` runs the same service behind a rustls handshake (certificates by SNI from
//! `tls::CertStore`); before routing, `domains` answers ACME and ownership challenges, redirects
//! plain HTTP to HTTPS where configured, and maps verified custom domains to their apps.
//!
//! It deliberately does not: speak HTTP/2 to clients or apps, cache, compress, rate-limit, authenticate, or restart apps (it
//! reports upstream failures to the resolver, and the runtime decides).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Full, LengthLimitError, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1 as client_http1;
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1 as server_http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::domains::{self, Domains};
use super::headers;
use super::pages::{self, Page};
use super::route_table::{self, app_for_host, HostMatch, Resolution, UnavailableReason, Upstream};
use super::upstream::{Connector, RequestHints, Resolver, UpstreamError};
use crate::metrics::registry::{service_for_app, GaugeGuard, Protocol, Registry, ServiceMetrics};

/// How the gateway behaves; `GatewayConfig::new(apps_domain)` gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Apps answer at `NAME.<apps_domain>`.
    pub apps_domain: String,
    /// Larger request bodies get 413; `None` accepts any size.
    pub max_request_body: Option<u64>,
    /// How long opening a connection to an app may take before the visitor gets 504.
    pub upstream_connect_timeout: Duration,
    /// How long an app may take to send its response headers, counted from when the request
    /// starts going out (so it includes uploading the request body), before the visitor gets 504.
    pub upstream_response_timeout: Duration,
    /// How long a client may take to send request headers; stops idle or slow-loris connections.
    pub header_read_timeout: Duration,
    /// Idle upstream connections older than this are closed instead of reused.
    pub pool_idle_timeout: Duration,
    /// At most this many idle connections are kept per upstream.
    pub pool_max_idle_per_upstream: usize,
    /// After shutdown is signalled, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    /// Direct peers whose `X-Forwarded-*` headers are believed (a front proxy). Empty when the
    /// gateway is the edge, as it is in the embedded shape.
    pub trusted_proxies: Vec<IpAddr>,
    /// Send plain-HTTP requests for hosts that have a certificate to `https://` (308). ACME and
    /// ownership challenges are never redirected.
    pub https_redirect: bool,
    /// The port the HTTPS listener is reached on, for redirect locations (443 is left out).
    pub https_port: u16,
    /// How long a client may take to finish the TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// Where the web terminal's browser files are: the `node_modules` folder that `npm ci` in
    /// `web/terminal/` fills (`@xterm/xterm/lib/xterm.js` below it, and so on). `None` serves
    /// console apps a page saying the terminal is not installed.
    pub terminal_assets: Option<PathBuf>,
}

impl GatewayConfig {
    pub fn new(apps_domain: impl Into<String>) -> Self {
        Self {
            apps_domain: apps_domain.into(),
            max_request_body: Some(100 * 1024 * 1024),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_response_timeout: Duration::from_secs(300),
            header_read_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(60),
            pool_max_idle_per_upstream: 16,
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: Vec::new(),
            https_redirect: false,
            https_port: 443,
            tls_handshake_timeout: Duration::from_secs(10),
            terminal_assets: None,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self::new("localhost")
    }
}

/// Serves the gateway on `listener` until `shutdown` becomes `true` (or its sender is dropped).
/// Use `Gateway::new` + `Gateway::serve` instead to keep a handle for reading in-flight counts.
pub async fn serve<R: Resolver, C: Connector>(
    listener: TcpListener,
    config: GatewayConfig,
    resolver: R,
    connector: C,
    shutdown: watch::Receiver<bool>,
) {
    Gateway::new(config, resolver, connector).serve(listener, shutdown).await
}

/// The gateway: configuration, the pluggable resolver and connector, the upstream connection pool
/// and the metrics it records (Traefik's names: `crate::metrics`).
pub struct Gateway<R, C> {
    config: GatewayConfig,
    resolver: R,
    connector: C,
    pool: Arc<Pool>,
    metrics: Arc<Registry>,
    /// Who may see which app; `None` lets every request through (tests of the proxy alone).
    access: Option<Arc<super::access::Gate>>,
    /// Custom domains, challenge answers and certificates; `None` serves the apps domain only.
    domains: Option<Arc<Domains>>,
}

impl<R: Resolver, C: Connector> Gateway<R, C> {
    /// A gateway with a registry of its own.
    pub fn new(config: GatewayConfig, resolver: R, connector: C) -> Arc<Self> {
        Self::with_metrics(config, resolver, connector, Arc::new(Registry::new()))
    }

    /// A gateway recording into `metrics`, which the runtime (held requests, wakes) and the
    /// `/metrics` listener share.
    pub fn with_metrics(config: GatewayConfig, resolver: R, connector: C, metrics: Arc<Registry>) -> Arc<Self> {
        let pool = Arc::new(Pool::new(config.pool_max_idle_per_upstream, config.pool_idle_timeout));
        Arc::new(Self { config, resolver, connector, pool, metrics, access: None, domains: None })
    }

    /// A gateway that records into `metrics` and checks every request against `gate` before
    /// resolving its app.
    pub fn with_access(
        config: GatewayConfig,
        resolver: R,
        connector: C,
        metrics: Arc<Registry>,
        gate: Arc<super::access::Gate>,
    ) -> Arc<Self> {
        let pool = Arc::new(Pool::new(config.pool_max_idle_per_upstream, config.pool_idle_timeout));
        Arc::new(Self { config, resolver, connector, pool, metrics, access: Some(gate), domains: None })
    }

    /// `with_access`, plus custom domains: their routes, the challenge answers the gateway serves
    /// itself, and the certificates `serve_tls` presents.
    pub fn with_domains(
        config: GatewayConfig,
        resolver: R,
        connector: C,
        metrics: Arc<Registry>,
        gate: Arc<super::access::Gate>,
        domains: Arc<Domains>,
    ) -> Arc<Self> {
        let pool = Arc::new(Pool::new(config.pool_max_idle_per_upstream, config.pool_idle_timeout));
        Arc::new(Self { config, resolver, connector, pool, metrics, access: Some(gate), domains: Some(domains) })
    }

    pub fn metrics(&self) -> &Arc<Registry> {
        &self.metrics
    }

    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    pub fn resolver(&self) -> &R {
        &self.resolver
    }

    /// Requests to `app` that have been handed to its upstream and not finished yet: a response
    /// still streaming counts, and so does a spliced WebSocket until it closes.
    pub fn in_flight(&self, app: &str) -> usize {
        usize::try_from(self.metrics.service(&service_for_app(app)).in_flight()).unwrap_or(0)
    }

    /// Every app the metrics know, with its current in-flight count (possibly zero).
    pub fn in_flight_by_app(&self) -> BTreeMap<String, usize> {
        self.metrics
            .services()
            .into_iter()
            .filter_map(|(service, metrics)| {
                let app = service.strip_suffix(&format!("@{}", crate::metrics::registry::PROVIDER))?.to_owned();
                Some((app, usize::try_from(metrics.in_flight()).unwrap_or(0)))
            })
            .collect()
    }

    /// Idle keep-alive connections to upstreams, for tests and metrics.
    pub fn idle_upstream_connections(&self) -> usize {
        self.pool.idle_count()
    }

    /// Accepts connections until `shutdown` becomes `true` or its sender is dropped, then stops
    /// accepting, lets in-flight requests finish for up to `shutdown_grace`, closes the rest, and
    /// closes idle upstream connections. Upgraded connections (WebSockets) are closed as soon as
    /// shutdown starts: they have no request to finish, and clients reconnect.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, shutdown: watch::Receiver<bool>) {
        self.serve_with(listener, None, shutdown).await
    }

    /// `serve` over TLS: each connection's handshake picks its certificate by SNI from the
    /// configuration's resolver (normally `tls::CertStore`), then the same requests are served,
    /// marked `X-Forwarded-Proto: https`. A failed or slow handshake closes only that connection.
    pub async fn serve_tls(self: Arc<Self>, listener: TcpListener, tls: Arc<rustls::ServerConfig>, shutdown: watch::Receiver<bool>) {
        self.serve_with(listener, Some(TlsAcceptor::from(tls)), shutdown).await
    }

    async fn serve_with(self: Arc<Self>, listener: TcpListener, tls: Option<TlsAcceptor>, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let (force_tx, force_rx) = watch::channel(false);
        let tasks = Tasks { _done: done_tx, shutdown: shutdown.clone(), force: force_rx };
        let mut sweep = tokio::time::interval(self.config.pool_idle_timeout.max(Duration::from_secs(1)));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Ok(addr) = listener.local_addr() {
            info!(%addr, apps_domain = %self.config.apps_domain, tls = tls.is_some(), "app gateway listening");
        }
        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => Arc::clone(&self).spawn_connection(stream, peer, tls.clone(), tasks.clone()),
                    Err(error) => {
                        // Running out of file descriptors makes accept fail in a tight loop; a short
                        // pause lets in-flight connections finish and free some.
                        warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = sweep.tick() => self.pool.sweep(),
            }
        }
        drop(listener);
        // Every connection and splice task holds a clone of the `done` sender; when the last one
        // ends, `recv` returns `None`.
        drop(tasks);
        info!(grace = ?self.config.shutdown_grace, "app gateway stopped accepting; letting in-flight requests finish");
        if tokio::time::timeout(self.config.shutdown_grace, done_rx.recv()).await.is_err() {
            warn!("in-flight requests did not finish within the shutdown grace; closing them");
            // The receiver lives as long as `force_tx`, so this cannot fail.
            let _ = force_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(1), done_rx.recv()).await;
        }
        self.pool.clear();
        info!("app gateway stopped");
    }

    fn spawn_connection(self: Arc<Self>, stream: TcpStream, peer: SocketAddr, tls: Option<TlsAcceptor>, tasks: Tasks) {
        let open = self.metrics.open_connection();
        tokio::spawn(async move {
            let _open = open;
            // Small proxied writes should not wait for Nagle; failure only costs latency.
            let _ = stream.set_nodelay(true);
            let Some(acceptor) = tls else {
                return self.run_connection(stream, peer, false, tasks).await;
            };
            match tokio::time::timeout(self.config.tls_handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => self.run_connection(stream, peer, true, tasks).await,
                Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        });
    }

    /// Serves HTTP/1.1 requests on one accepted (and, for HTTPS, handshaken) connection.
    async fn run_connection<I>(self: Arc<Self>, io: I, peer: SocketAddr, secure: bool, tasks: Tasks)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        {
            let service_tasks = tasks.clone();
            let gateway = Arc::clone(&self);
            let service = service_fn(move |request| {
                let gateway = Arc::clone(&gateway);
                let tasks = service_tasks.clone();
                async move { Ok::<_, Infallible>(gateway.handle(request, peer, secure, &tasks).await) }
            });
            let mut builder = server_http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(self.config.header_read_timeout).keep_alive(true);
            let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let (mut shutdown, mut force) = (tasks.shutdown.clone(), tasks.force.clone());
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown_requested(&mut shutdown) => {
                    // Finish the request in progress (if any), then close instead of keeping alive.
                    connection.as_mut().graceful_shutdown();
                    tokio::select! {
                        result = connection.as_mut() => result,
                        () = shutdown_requested(&mut force) => return,
                    }
                }
            };
            if let Err(error) = result {
                debug!(%peer, %error, "client connection ended with an error");
            }
        }
    }

    /// Answers one request: a page, or the app's response.
    async fn handle(
        self: &Arc<Self>,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        secure: bool,
        tasks: &Tasks,
    ) -> Response<ProxyBody> {
        let arrived = Instant::now();
        if request.method() == Method::CONNECT {
            return page_response(pages::bad_request("This server does not tunnel CONNECT requests."));
        }
        let host = match request_host(&request) {
            Ok(host) => host,
            Err(reason) => return page_response(pages::bad_request(reason)),
        };
        let host_text = String::from_utf8_lossy(host.as_bytes()).into_owned();
        let domain_table = self.domains.as_ref().map(|domains| domains.table());
        if let Some(table) = &domain_table {
            if let Some(answer) = domains::well_known(table, &host_text, request.uri().path()) {
                return match answer {
                    Some(body) => text_response(body),
                    None => page_response(pages::not_found_challenge()),
                };
            }
        }
        let redirect =
            !secure && self.config.https_redirect && self.domains.as_ref().is_some_and(|domains| domains.certs().covers(&host_text));
        if redirect {
            let path_and_query = request.uri().path_and_query().map_or("/", |p| p.as_str());
            if let Some(location) = domains::https_location(&host_text, path_and_query, self.config.https_port) {
                return redirect_response(&location);
            }
        }
        let (app, custom_host) = match app_for_host(&host_text, &self.config.apps_domain) {
            HostMatch::App(app) => (app, None),
            HostMatch::Apex => return page_response(pages::apex(&self.config.apps_domain)),
            HostMatch::Foreign => match domain_table.as_ref().and_then(|table| table.app_for(&host_text)) {
                Some(app) => (app.to_owned(), route_table::normalise_host(&host_text)),
                None => return page_response(pages::foreign_host(&host_text, &self.config.apps_domain)),
            },
        };
        // Before resolving: a refused visitor must never wake an app at zero.
        if let Some(gate) = &self.access {
            if let Err(refusal) = super::access::http::admit(gate, &mut request, &app, &self.config.apps_domain, custom_host.as_deref()) {
                return refusal_response(refusal);
            }
        }
        let wants_html =
            request.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/html"));
        // Borrowed from the request: resolving ends before the request moves on to the app.
        let user_agent = request.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
        let hints = RequestHints { wants_html, user_agent };
        let upstream = match self.resolver.resolve(&app, &hints).await {
            Resolution::Ready(upstream) => upstream,
            // A console program is no upstream: it gets the terminal page and its WebSocket. It is
            // asked for only here, so a web app's request pays for no second lookup.
            Resolution::NotFound => {
                return match self.resolver.terminal(&app) {
                    Some(program) => terminal::serve(self, request, program, &host, tasks).await,
                    None => page_response(pages::unknown_app(&app, &self.config.apps_domain)),
                };
            }
            Resolution::Unavailable { reason, retry_after_secs } => {
                let page = match reason {
                    UnavailableReason::Crashed => pages::crashed(&app, retry_after_secs),
                    UnavailableReason::Starting => pages::starting(&app, retry_after_secs),
                    UnavailableReason::Stopped => pages::stopped(&app, retry_after_secs),
                    UnavailableReason::WakeFailed => pages::wake_failed(&app, retry_after_secs),
                };
                return page_response(page);
            }
        };
        if let Some(limit) = self.config.max_request_body {
            if declared_length(&request).is_some_and(|length| length > limit) {
                return page_response(pages::too_large(&app, limit));
            }
        }
        let tracked = Tracked::start(self.metrics.service(&service_for_app(&app)), &request, arrived);
        let failure = match self.forward(request, host, Peer { addr: peer, secure }, &upstream, tracked, tasks).await {
            Ok(response) => return response,
            Err((error, tracked)) => (error, tracked),
        };
        let (error, mut tracked) = failure;
        let response = match error {
            ForwardError::Upstream(error) => {
                warn!(%app, %upstream, %error, "app upstream failed");
                self.resolver.on_upstream_error(&app, &upstream, &error);
                page_response(if error.is_timeout() { pages::timed_out(&app) } else { pages::not_answering(&app) })
            }
            ForwardError::TooLarge => {
                page_response(pages::too_large(&app, self.config.max_request_body.expect("only a configured limit can be exceeded")))
            }
            ForwardError::ClientBody(error) => {
                debug!(%app, %error, "the client's request body failed while forwarding it");
                page_response(pages::bad_request("The request body could not be read."))
            }
            ForwardError::UnexpectedSwitch => {
                warn!(%app, %upstream, "the app switched protocols without being asked to");
                page_response(pages::not_answering(&app))
            }
        };
        tracked.code = response.status().as_u16();
        tracked.response_bytes = response.body().size_hint().exact().unwrap_or(0);
        response
    }

    /// Rewrites the request for the app, sends it, and prepares the app's response for the visitor.
    async fn forward(
        self: &Arc<Self>,
        mut request: Request<Incoming>,
        host: HeaderValue,
        peer: Peer,
        upstream: &Upstream,
        mut tracked: Tracked,
        tasks: &Tasks,
    ) -> Result<Response<ProxyBody>, (ForwardError, Tracked)> {
        let upgrade = headers::is_upgrade_request(request.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let (peer_ip, secure) = (peer.addr.ip().to_canonical(), peer.secure);
        headers::strip_hop_by_hop(&mut parts.headers, upgrade);
        headers::strip_portal_cookies(&mut parts.headers);
        // hyper's server answers `Expect: 100-continue` itself when the body is first read, which
        // happens as the upstream connection starts sending it; the app must not answer it again.
        parts.headers.remove(header::EXPECT);
        let peer_is_trusted = self.config.trusted_proxies.contains(&peer_ip);
        headers::set_forwarded(&mut parts.headers, peer_ip, &host, peer_is_trusted);
        if secure && !peer_is_trusted {
            parts.headers.insert(headers::X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        }
        parts.headers.insert(header::HOST, host);
        parts.uri = origin_form(&parts.uri);
        parts.version = Version::HTTP_11;
        parts.extensions = hyper::http::Extensions::new();
        let limit = self.config.max_request_body.map_or(usize::MAX, |limit| usize::try_from(limit).unwrap_or(usize::MAX));
        let outgoing = Request::from_parts(parts, Limited::new(body, limit));

        let (mut response, sender) = match self.send(upstream, outgoing).await {
            Ok(sent) => sent,
            Err(error) => return Err((error, tracked)),
        };
        tracked.code = response.status().as_u16();

        if response.status() == StatusCode::SWITCHING_PROTOCOLS {
            let Some(client_upgrade) = client_upgrade else {
                return Err((ForwardError::UnexpectedSwitch, tracked));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut response);
            let (mut parts, _empty) = response.into_parts();
            headers::strip_hop_by_hop(&mut parts.headers, true);
            headers::strip_portal_set_cookies(&mut parts.headers);
            // The connection now belongs to the upgrade; it can never carry another request.
            drop(sender);
            splice(client_upgrade, upstream_upgrade, tracked, tasks.clone());
            return Ok(Response::from_parts(parts, ProxyBody::empty()));
        }

        let (mut parts, body) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers, false);
        headers::strip_portal_set_cookies(&mut parts.headers);
        let release = Release { pool: Arc::clone(&self.pool), upstream: upstream.clone(), sender };
        Ok(Response::from_parts(parts, ProxyBody::upstream(body, tracked, release)))
    }

    /// Sends on a pooled connection, or a new one. A pooled connection may have been closed by the
    /// app since it went idle; hyper hands the request back untouched when it never reached the
    /// wire, and a fresh connection then gets it. Requests that did reach the wire are never
    /// retried, because they may not be idempotent.
    async fn send(
        &self,
        upstream: &Upstream,
        mut request: Request<UpstreamBody>,
    ) -> Result<(Response<Incoming>, UpstreamSender), ForwardError> {
        loop {
            let (mut sender, reused) = match self.pool.checkout(upstream, self.config.upstream_connect_timeout).await {
                Some(sender) => (sender, true),
                None => (self.connect(upstream).await?, false),
            };
            let timeout = self.config.upstream_response_timeout;
            match tokio::time::timeout(timeout, sender.try_send_request(request)).await {
                Err(_elapsed) => return Err(ForwardError::Upstream(UpstreamError::ResponseTimeout(timeout))),
                Ok(Ok(response)) => return Ok((response, sender)),
                Ok(Err(mut error)) => match error.take_message() {
                    Some(unsent) if reused => {
                        debug!(%upstream, error = %error.error(), "pooled connection was closed; retrying on a new one");
                        request = unsent;
                    }
                    _ => return Err(classify_send_error(error.into_error())),
                },
            }
        }
    }

    async fn connect(&self, upstream: &Upstream) -> Result<UpstreamSender, ForwardError> {
        let timeout = self.config.upstream_connect_timeout;
        let stream = match tokio::time::timeout(timeout, self.connector.connect(upstream)).await {
            Err(_elapsed) => return Err(ForwardError::Upstream(UpstreamError::ConnectTimeout(timeout))),
            Ok(Err(error)) => return Err(ForwardError::Upstream(UpstreamError::Connect(error))),
            Ok(Ok(stream)) => stream,
        };
        let (sender, connection) =
            client_http1::handshake(TokioIo::new(stream)).await.map_err(|error| ForwardError::Upstream(UpstreamError::Handshake(error)))?;
        let upstream = upstream.clone();
        tokio::spawn(async move {
            // Upgrades must be allowed on every connection: any request may turn into a WebSocket.
            if let Err(error) = connection.with_upgrades().await {
                debug!(%upstream, %error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// Who sent a request, and whether over TLS.
#[derive(Debug, Clone, Copy)]
struct Peer {
    addr: SocketAddr,
    secure: bool,
}

/// Tells request-body failures (the visitor's side, or our size limit) from the app's failures.
fn classify_send_error(error: hyper::Error) -> ForwardError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
    while let Some(current) = source {
        if current.is::<LengthLimitError>() {
            return ForwardError::TooLarge;
        }
        source = current.source();
    }
    if error.is_user() {
        ForwardError::ClientBody(error)
    } else {
        ForwardError::Upstream(UpstreamError::Request(error))
    }
}

#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error(transparent)]
    Upstream(UpstreamError),
    #[error("the request body is larger than the configured limit")]
    TooLarge,
    #[error("reading the client's request body failed: {0}")]
    ClientBody(#[source] hyper::Error),
    #[error("the app answered 101 Switching Protocols to a request that did not ask to upgrade")]
    UnexpectedSwitch,
}

/// The host the request is for: the authority of an absolute-form target wins over `Host`
/// (RFC 9112 §3.2.2); otherwise exactly one `Host` header is required, since two could route the
/// same request differently at different hops.
fn request_host(request: &Request<Incoming>) -> Result<HeaderValue, &'static str> {
    if let Some(authority) = request.uri().authority() {
        return HeaderValue::from_str(authority.as_str()).map_err(|_| "The request target's host is not valid.");
    }
    let mut hosts = request.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(host), None) => Ok(host.clone()),
        (None, _) => Err("The request has no Host header, so it cannot be matched to an app."),
        (Some(_), Some(_)) => Err("The request has more than one Host header."),
    }
}

/// The request body's declared `Content-Length`, if there is one and it parses.
fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// `/path?query` as apps expect it, whatever form the client used.
fn origin_form(uri: &Uri) -> Uri {
    match uri.path_and_query() {
        Some(path_and_query) if !path_and_query.as_str().is_empty() => Uri::from(path_and_query.clone()),
        _ => Uri::from_static("/"),
    }
}

fn page_response(page: Page) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::from(page.html)));
    *response.status_mut() = StatusCode::from_u16(page.status).expect("pages use valid status codes");
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'"),
    );
    if let Some(secs) = page.retry_after_secs {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// A challenge answer: the exact text, never cached, never sniffed.
fn text_response(body: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::full(Bytes::copy_from_slice(body.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// 308 keeps the method and body, so a form posted over plain HTTP arrives intact over HTTPS.
fn redirect_response(location: &str) -> Response<ProxyBody> {
    let mut response = Response::new(ProxyBody::empty());
    *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

fn refusal_response(refusal: super::access::http::Refusal) -> Response<ProxyBody> {
    let mut response = page_response(refusal.page);
    let headers = response.headers_mut();
    for (name, value) in [(header::LOCATION, refusal.location), (header::SET_COOKIE, refusal.set_cookie)] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}

/// Resolves when shutdown is requested: the flag turns `true`, or its sender is gone (nobody could
/// ever ask for shutdown any more, which in practice means the owner is exiting).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// What a connection or splice task needs to take part in graceful shutdown. Each clone holds the
/// `done` sender, so `serve` knows when the last task has ended.
#[derive(Clone)]
struct Tasks {
    _done: mpsc::Sender<()>,
    shutdown: watch::Receiver<bool>,
    /// Turns `true` when the grace period is over and remaining connections must close.
    force: watch::Receiver<bool>,
}

/// Joins the visitor's and the app's upgraded connections and copies bytes both ways until either
/// side closes or shutdown starts. The in-flight guard lives as long as the splice, so an open
/// WebSocket keeps its app counted as busy.
fn splice(client: OnUpgrade, upstream: OnUpgrade, tracked: Tracked, tasks: Tasks) {
    tokio::spawn(async move {
        let _tracked = tracked;
        let mut shutdown = tasks.shutdown.clone();
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                debug!(%error, "an upgrade did not complete");
                return;
            }
        };
        let (mut client, mut upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match result {
                Ok((to_app, to_client)) => debug!(to_app, to_client, "upgraded connection closed"),
                Err(error) => debug!(%error, "upgraded connection ended with an error"),
            },
            () = shutdown_requested(&mut shutdown) => debug!("closing an upgraded connection for shutdown"),
        }
        drop(tasks);
    });
}

type UpstreamBody = Limited<Incoming>;
type UpstreamSender = client_http1::SendRequest<UpstreamBody>;

/// Idle keep-alive connections to upstreams, most recently used last (and reused first, since it
/// is the least likely to have been closed by the app's idle timeout).
struct Pool {
    idle: Mutex<HashMap<Upstream, Vec<IdleConnection>>>,
    max_idle_per_upstream: usize,
    idle_timeout: Duration,
}

struct IdleConnection {
    sender: UpstreamSender,
    since: Instant,
}

impl IdleConnection {
    fn is_usable(&self, idle_timeout: Duration) -> bool {
        !self.sender.is_closed() && self.since.elapsed() < idle_timeout
    }
}

impl Pool {
    fn new(max_idle_per_upstream: usize, idle_timeout: Duration) -> Self {
        Self { idle: Mutex::new(HashMap::new()), max_idle_per_upstream, idle_timeout }
    }

    /// The map stays consistent under any panic (each operation is a single insert or removal), so
    /// a poisoned lock is used as it is rather than taking the gateway down.
    fn lock(&self) -> MutexGuard<'_, HashMap<Upstream, Vec<IdleConnection>>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle connection ready for a request, if there is one. Waiting for readiness is normally
    /// instant; the bound only keeps a wedged connection from holding up the request.
    async fn checkout(&self, upstream: &Upstream, ready_timeout: Duration) -> Option<UpstreamSender> {
        loop {
            let candidate = {
                let mut idle = self.lock();
                let list = idle.get_mut(upstream)?;
                let candidate = list.pop();
                if list.is_empty() {
                    idle.remove(upstream);
                }
                candidate?
            };
            if !candidate.is_usable(self.idle_timeout) {
                continue;
            }
            let mut sender = candidate.sender;
            if let Ok(Ok(())) = tokio::time::timeout(ready_timeout, sender.ready()).await {
                return Some(sender);
            }
        }
    }

    fn checkin(&self, upstream: Upstream, sender: UpstreamSender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.lock();
        let list = idle.entry(upstream).or_default();
        if list.len() < self.max_idle_per_upstream {
            list.push(IdleConnection { sender, since: Instant::now() });
        }
    }

    /// Drops closed and expired connections, so that apps nobody visits stop holding sockets.
    fn sweep(&self) {
        let mut idle = self.lock();
        idle.retain(|_, list| {
            list.retain(|connection| connection.is_usable(self.idle_timeout));
            !list.is_empty()
        });
    }

    fn clear(&self) {
        self.lock().clear();
    }

    fn idle_count(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }
}

/// One proxied request, from its arrival until its response has been sent (or its upgraded
/// connection closed): it counts in `slipway_app_in_flight` while alive and records Traefik's
/// request series (count, duration, bytes) when dropped, so a response the visitor abandons is
/// still counted, as Traefik counts it.
struct Tracked {
    metrics: Arc<ServiceMetrics>,
    _in_flight: GaugeGuard,
    arrived: Instant,
    method: &'static str,
    protocol: Protocol,
    request_bytes: u64,
    code: u16,
    response_bytes: u64,
}

impl Tracked {
    fn start<B>(metrics: Arc<ServiceMetrics>, request: &Request<B>, arrived: Instant) -> Self {
        let header = |name| request.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
        let protocol = Protocol::classify(header(header::CONNECTION), header(header::UPGRADE), header(header::ACCEPT));
        Self {
            _in_flight: metrics.enter(),
            metrics,
            arrived,
            method: crate::metrics::registry::method_label(request.method().as_str()),
            protocol,
            request_bytes: declared_length(request).unwrap_or(0),
            // Until an answer is known, the request counts as a gateway failure.
            code: 502,
            response_bytes: 0,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let duration = self.arrived.elapsed().as_secs_f64();
        self.metrics.observe(self.code, self.method, self.protocol, duration, self.request_bytes, self.response_bytes);
    }
}

/// Hands an upstream connection back to the pool once its response has been read to the end.
struct Release {
    pool: Arc<Pool>,
    upstream: Upstream,
    sender: UpstreamSender,
}

/// The body of every response the gateway sends: a page, or the app's body streamed frame by frame.
struct ProxyBody(BodyKind);

enum BodyKind {
    Full(Full<Bytes>),
    Upstream(UpstreamResponse),
}

struct UpstreamResponse {
    inner: Incoming,
    release: Option<Release>,
    tracked: Tracked,
}

impl UpstreamResponse {
    fn release(&mut self) {
        if let Some(Release { pool, upstream, sender }) = self.release.take() {
            pool.checkin(upstream, sender);
        }
    }
}

impl Drop for UpstreamResponse {
    /// hyper stops polling a body with a known length after its last byte, so the end may only be
    /// visible here; a body dropped before its end drops the sender, which closes the connection.
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

impl ProxyBody {
    fn full(bytes: Bytes) -> Self {
        Self(BodyKind::Full(Full::new(bytes)))
    }

    fn empty() -> Self {
        Self::full(Bytes::new())
    }

    fn upstream(inner: Incoming, tracked: Tracked, release: Release) -> Self {
        Self(BodyKind::Upstream(UpstreamResponse { inner, release: Some(release), tracked }))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match &mut self.get_mut().0 {
            BodyKind::Full(full) => Pin::new(full).poll_frame(cx).map_err(|never| match never {}),
            BodyKind::Upstream(response) => {
                let polled = Pin::new(&mut response.inner).poll_frame(cx);
                if let Poll::Ready(Some(Ok(frame))) = &polled {
                    if let Some(data) = frame.data_ref() {
                        response.tracked.response_bytes += data.len() as u64;
                    }
                }
                match &polled {
                    Poll::Ready(None) => response.release(),
                    Poll::Ready(Some(Ok(_))) if response.inner.is_end_stream() => response.release(),
                    // A broken body means a broken connection: never pool it.
                    Poll::Ready(Some(Err(_))) => response.release = None,
                    _ => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Full(full) => full.is_end_stream(),
            BodyKind::Upstream(response) => response.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Full(full) => full.size_hint(),
            BodyKind::Upstream(response) => response.inner.size_hint(),
        }
    }
}

mod terminal;
#[cfg(test)]
mod tests;
