//! The seams between the gateway and the rest of Slipway: a `Resolver` says where an app answers
//! (and hears when it did not), a `Connector` opens the TCP stream to it.
//!
//! Today the local runtime plugs in through `TableResolver`; activation (wake from zero) and a
//! Redis-fed route table plug in later by implementing `Resolver` themselves. This module does not
//! decide anything about restarts: `on_upstream_error` only reports, and the runtime decides.

use std::future::Future;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::TcpStream;

use super::route_table::{Resolution, Route, RouteTable, Upstream};

/// Why the gateway could not get an answer from an app's upstream.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("could not connect to the app: {0}")]
    Connect(#[source] io::Error),
    #[error("connecting to the app took longer than {0:?}")]
    ConnectTimeout(Duration),
    #[error("the HTTP/1.1 handshake with the app failed: {0}")]
    Handshake(#[source] hyper::Error),
    #[error("the app closed or broke the connection before answering: {0}")]
    Request(#[source] hyper::Error),
    #[error("the app did not answer within {0:?}")]
    ResponseTimeout(Duration),
}

impl UpstreamError {
    /// Timeouts become 504 Gateway Timeout; everything else is a 502 Bad Gateway.
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::ConnectTimeout(_) | UpstreamError::ResponseTimeout(_))
    }
}

/// Tells the gateway where an app answers, and hears back when that upstream failed.
///
/// Implementations must be cheap to call: `resolve` runs once per request.
/// What a resolver may want to know about the request it resolves for: whether a browser asks
/// (it can be shown a waiting page instead of being held long) and who asks (uptime checkers and
/// crawlers should not wake a stopped app).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestHints<'a> {
    pub wants_html: bool,
    pub user_agent: &'a str,
}

pub trait Resolver: Send + Sync + 'static {
    /// The upstream for `app`. A resolver may take its time: an app at zero is woken here, and the
    /// request waits (is held) until it is ready or the resolver gives up.
    fn resolve(&self, app: &str, hints: &RequestHints<'_>) -> impl Future<Output = Resolution> + Send;

    /// Called when connecting to or talking with `upstream` failed for `app`, so that the runtime
    /// can check on the app and restart it. It must not block: spawn work rather than doing it here.
    /// The default ignores the report.
    fn on_upstream_error(&self, app: &str, upstream: &Upstream, error: &UpstreamError) {
        let _ = (app, upstream, error);
    }

    /// The console program `app` is, if it is one: the gateway then serves the web terminal and
    /// starts one instance per WebSocket. Asked only when `resolve` found no app of that name
    /// (console programs have no upstream). The default knows none.
    fn terminal(&self, app: &str) -> Option<Arc<crate::terminal::Program>> {
        let _ = app;
        None
    }
}

/// Lets a caller keep an `Arc` to its resolver (to update routes) while the gateway holds another.
impl<T: Resolver> Resolver for Arc<T> {
    fn resolve(&self, app: &str, hints: &RequestHints<'_>) -> impl Future<Output = Resolution> + Send {
        (**self).resolve(app, hints)
    }

    fn on_upstream_error(&self, app: &str, upstream: &Upstream, error: &UpstreamError) {
        (**self).on_upstream_error(app, upstream, error)
    }

    fn terminal(&self, app: &str) -> Option<Arc<crate::terminal::Program>> {
        (**self).terminal(app)
    }
}

/// Opens the TCP stream to an upstream. The gateway applies its own connect timeout around it.
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, upstream: &Upstream) -> impl Future<Output = io::Result<TcpStream>> + Send;
}

impl<T: Connector> Connector for Arc<T> {
    fn connect(&self, upstream: &Upstream) -> impl Future<Output = io::Result<TcpStream>> + Send {
        (**self).connect(upstream)
    }
}

/// Connects to `Upstream::Tcp` in the gateway's own network namespace and refuses `InNetns`
/// (use `NetnsConnector` for those).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    async fn connect(&self, upstream: &Upstream) -> io::Result<TcpStream> {
        match upstream {
            Upstream::Tcp(addr) => connect_tcp(*addr).await,
            Upstream::InNetns { .. } => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("TcpConnector cannot enter network namespaces (upstream {upstream})"),
            )),
        }
    }
}

/// A plain connect with Nagle off: proxied requests are small writes that should leave at once.
pub(crate) async fn connect_tcp(addr: std::net::SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A `Resolver` over a `RouteTable` behind a lock: the local runtime sets routes as apps start,
/// crash and stop. Errors are ignored here; wrap it to act on them.
#[derive(Debug, Default)]
pub struct TableResolver {
    table: RwLock<RouteTable>,
}

impl TableResolver {
    pub fn new(table: RouteTable) -> Self {
        Self { table: RwLock::new(table) }
    }

    pub fn insert(&self, app: impl Into<String>, route: Route) -> Option<Route> {
        self.write().insert(app, route)
    }

    pub fn remove(&self, app: &str) -> Option<Route> {
        self.write().remove(app)
    }

    /// Swaps in a whole new table at once, as a full refresh from a route store would.
    pub fn replace(&self, table: RouteTable) -> RouteTable {
        std::mem::replace(&mut *self.write(), table)
    }

    pub fn snapshot(&self) -> RouteTable {
        self.read().clone()
    }

    /// A panic while holding the lock cannot leave a plain map half-updated in a way that matters
    /// more than losing all routing, so a poisoned lock is used as it is.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, RouteTable> {
        self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, RouteTable> {
        self.table.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Resolver for TableResolver {
    fn resolve(&self, app: &str, _hints: &RequestHints<'_>) -> impl Future<Output = Resolution> + Send {
        // Resolve before building the future so that no lock guard is held across an await.
        let resolution = self.read().resolve(app);
        std::future::ready(resolution)
    }
}
