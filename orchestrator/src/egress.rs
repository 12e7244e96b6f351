//! The build egress proxy: the one way out of a build's network namespace.
//!
//! A build's steps run in a network namespace of their own with only `lo` (see
//! `sandbox::netns`). [`BuildEgress::start`] creates that namespace with a listener on
//! `127.0.0.1:`[`PROXY_PORT`] inside it and serves the listener from the orchestrator's own
//! tasks, which live in the host's namespace. The steps are told about it through
//! `HTTPS_PROXY` and friends ([`rules::proxy_env`]). For each connection the proxy:
//!
//! 1. reads the request head (at most [`rules::MAX_HEAD_BYTES`], within [`HEAD_TIMEOUT`]);
//! 2. applies [`rules::check_request`]: only `CONNECT host:443` to an allowed registry;
//! 3. resolves the host on the host ([`Resolver`], injectable for tests) and applies
//!    [`rules::check_addresses`]: every address must be public;
//! 4. connects to one of exactly those addresses (never resolving again, so a second DNS answer
//!    cannot swap in 127.0.0.1), answers `200 Connection Established` and copies bytes both ways
//!    until either side closes.
//!
//! Every refusal is a short HTTP answer whose body starts with `slipway:` and says why, and the
//! same sentence goes to the build log through the `on_refusal` callback.
//!
//! What this module deliberately does not do: it never looks inside a tunnel (no TLS
//! interception, no caching), it does not forward plain HTTP, it puts no idle limit on an open
//! tunnel (a tunnel lives at most as long as its build, whose timeout bounds it: dropping the
//! [`BuildEgress`] ends the server and every tunnel), and it does not count bytes.

pub mod rules;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use crate::sandbox::Netns;

pub use self::rules::{Refusal, Target, DEFAULT_REGISTRIES};

/// The port the proxy listens on inside a build's namespace. Any port would do (the namespace
/// is fresh); a fixed one keeps build logs and tests readable.
pub const PROXY_PORT: u16 = 3128;
/// How long a client may take to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long resolving a registry name may take.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to one of its addresses may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per build; more wait in the listener's backlog. npm opens at most
/// 15 sockets per host by default (`maxsockets`), pip a handful.
pub const MAX_CONNECTIONS: usize = 64;

/// A boxed future, as the [`Resolver`] returns.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Resolves a host name to addresses: [`system_resolver`] in production, a fixed answer in tests.
pub type Resolver = Arc<dyn Fn(String) -> BoxFuture<io::Result<Vec<IpAddr>>> + Send + Sync>;

/// Receives every refusal as one line, for the build log.
pub type OnRefusal = Arc<dyn Fn(&str) + Send + Sync>;

/// The host's own resolver (`getaddrinfo`, on tokio's blocking pool, in the host's namespace).
pub fn system_resolver() -> Resolver {
    Arc::new(|host: String| {
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), rules::ALLOWED_PORT)).await?.map(|a| a.ip()).collect()) })
    })
}

/// What one proxy allows and where its refusals go.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Normalised allow-list entries ([`rules::normalize_registry`]); subdomains are allowed too.
    pub registries: Vec<String>,
    pub resolver: Resolver,
    pub on_refusal: OnRefusal,
}

/// Serves the proxy on `listener` until the returned future is dropped; dropping it also ends
/// every connection it is serving.
pub async fn serve(listener: TcpListener, config: ProxyConfig) {
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        match listener.accept().await {
            Ok((client, _)) => {
                let config = config.clone();
                connections.spawn(async move {
                    handle(client, &config).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of descriptors, most likely: back off instead of spinning.
                tracing::warn!(error = %e, "egress proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Serves one client: a refusal, or a tunnel until either side closes.
async fn handle(mut client: TcpStream, config: &ProxyConfig) {
    match open_tunnel(&mut client, config).await {
        Ok((mut upstream, target, early_bytes)) => {
            tracing::debug!(%target, "egress proxy: tunnel open");
            if client.write_all(rules::ESTABLISHED).await.is_err() {
                return;
            }
            if !early_bytes.is_empty() && upstream.write_all(&early_bytes).await.is_err() {
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
        Err(None) => {}
        Err(Some(refusal)) => {
            let message = refusal.message();
            tracing::debug!(%message, "egress proxy: refused");
            (config.on_refusal)(&message);
            let _ = client.write_all(&refusal.response()).await;
            let _ = client.shutdown().await;
        }
    }
}

/// Reads and checks the request, resolves and connects. `Err(None)` means the client went away
/// before sending a request, which needs no answer.
async fn open_tunnel(client: &mut TcpStream, config: &ProxyConfig) -> Result<(TcpStream, Target, Vec<u8>), Option<Refusal>> {
    let (head, early_bytes) = match tokio::time::timeout(HEAD_TIMEOUT, read_head(client)).await {
        Ok(read) => read?,
        Err(_) => {
            let reason = format!("no complete request within {} s", HEAD_TIMEOUT.as_secs());
            return Err(Some(Refusal::Malformed { reason }));
        }
    };
    let (method, target) = rules::parse_request_line(&head)?;
    let target = rules::check_request(&method, &target, &config.registries)?;
    let unreachable = |reason: String| Refusal::Unreachable { target: target.to_string(), reason };
    let addresses = match tokio::time::timeout(RESOLVE_TIMEOUT, (config.resolver)(target.host.clone())).await {
        Ok(Ok(addresses)) => addresses,
        Ok(Err(e)) => return Err(Some(unreachable(format!("the name does not resolve ({e})")))),
        Err(_) => return Err(Some(unreachable(format!("the name did not resolve within {} s", RESOLVE_TIMEOUT.as_secs())))),
    };
    rules::check_addresses(&target, &addresses)?;
    let mut last_error = String::new();
    for address in addresses {
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(SocketAddr::new(address, target.port))).await {
            Ok(Ok(upstream)) => return Ok((upstream, target, early_bytes)),
            Ok(Err(e)) => last_error = format!("{address}: {e}"),
            Err(_) => last_error = format!("{address}: no answer within {} s", CONNECT_TIMEOUT.as_secs()),
        }
    }
    Err(Some(unreachable(last_error)))
}

/// Reads up to the end of the request head; returns the head and whatever the client sent after
/// it (a client may start its TLS handshake without waiting for the answer).
async fn read_head(client: &mut TcpStream) -> Result<(Vec<u8>, Vec<u8>), Option<Refusal>> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = client.read(&mut chunk).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = rules::head_end(&buffer) {
            if end > rules::MAX_HEAD_BYTES {
                return Err(Some(Refusal::HeadTooLarge));
            }
            let rest = buffer.split_off(end);
            return Ok((buffer, rest));
        }
        if buffer.len() > rules::MAX_HEAD_BYTES {
            return Err(Some(Refusal::HeadTooLarge));
        }
    }
}

/// One build's network: a namespace with only `lo` and the proxy listening inside it, served from
/// the host's namespace. Dropping it stops the proxy and closes every tunnel; the namespace
/// itself goes once no sandbox is left in it.
pub struct BuildEgress {
    netns: Netns,
    port: u16,
    server: JoinHandle<()>,
}

impl BuildEgress {
    /// Creates the namespace and starts serving. Needs root (CAP_SYS_ADMIN) for the namespace.
    pub async fn start(config: ProxyConfig) -> io::Result<BuildEgress> {
        // The namespace is made on a thread of its own (see `Netns::create_with_listener`); the
        // blocking pool only waits for it.
        let (netns, listener) = tokio::task::spawn_blocking(|| Netns::create_with_listener(PROXY_PORT))
            .await
            .map_err(|e| io::Error::other(format!("the namespace task failed: {e}")))??;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let server = tokio::spawn(serve(listener, config));
        Ok(BuildEgress { netns, port, server })
    }

    /// The namespace the build's sandboxes join.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The proxy's port on `127.0.0.1` inside the namespace.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The variables that point the build's tools at the proxy.
    pub fn env(&self) -> Vec<(String, String)> {
        rules::proxy_env(self.port)
    }
}

impl Drop for BuildEgress {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A proxy on the host's loopback (no namespace needed) with a fixed resolver; returns its
    /// address and the refusals it logged.
    async fn proxy_with(resolver: Resolver) -> (SocketAddr, Arc<Mutex<Vec<String>>>, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let log = refusals.clone();
        let config = ProxyConfig {
            registries: DEFAULT_REGISTRIES.iter().map(|s| s.to_string()).collect(),
            resolver,
            on_refusal: Arc::new(move |line: &str| log.lock().expect("lock").push(line.to_owned())),
        };
        (address, refusals, tokio::spawn(serve(listener, config)))
    }

    fn resolving_to(addresses: &'static [&'static str]) -> Resolver {
        Arc::new(move |_host: String| Box::pin(async move { Ok(addresses.iter().map(|a| a.parse().expect("an address")).collect()) }))
    }

    /// Sends `request` and reads until the proxy closes (or 10 s pass).
    async fn ask(proxy: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(proxy).await.expect("connect to the proxy");
        stream.write_all(request).await.expect("send");
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await.expect("answered in time").expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_connect_to_a_host_that_is_not_a_registry_gets_403_saying_why() {
        let (proxy, refusals, _server) = proxy_with(resolving_to(&["203.0.113.9"])).await;
        let answer = ask(proxy, b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nslipway: builds may only reach package registries; `evil.example:443` is not one\n"), "{answer}");
        assert_eq!(*refusals.lock().expect("lock"), ["builds may only reach package registries; `evil.example:443` is not one"]);
    }

    #[tokio::test]
    async fn plain_http_proxying_gets_403_saying_https_only() {
        let (proxy, _refusals, _server) = proxy_with(resolving_to(&["203.0.113.9"])).await;
        let answer = ask(proxy, b"GET http://registry.npmjs.org/express HTTP/1.1\r\nHost: registry.npmjs.org\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
        assert!(answer.contains("over HTTPS; `GET http://registry.npmjs.org/express` is a plain HTTP request"), "{answer}");
    }

    #[tokio::test]
    async fn an_allowed_name_that_resolves_to_the_host_or_a_local_network_is_refused() {
        for addresses in [&["127.0.0.1"][..], &["104.16.1.34", "::ffff:127.0.0.1"], &["10.0.0.5"], &["169.254.169.254"], &["fd00::1"]] {
            let (proxy, refusals, _server) = proxy_with(resolving_to(addresses)).await;
            let answer = ask(proxy, b"CONNECT registry.npmjs.org:443 HTTP/1.1\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{addresses:?}: {answer}");
            assert!(answer.contains("`registry.npmjs.org:443` resolves to "), "{answer}");
            assert!(answer.contains("builds may not reach the host's or a local network's services"), "{answer}");
            assert_eq!(refusals.lock().expect("lock").len(), 1);
        }
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_gets_502() {
        let failing: Resolver = Arc::new(|_host: String| Box::pin(async { Err(io::Error::other("no such host")) }));
        let (proxy, _refusals, _server) = proxy_with(failing).await;
        let answer = ask(proxy, b"CONNECT pypi.org:443 HTTP/1.1\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{answer}");
        assert!(answer.contains("could not reach `pypi.org:443`: the name does not resolve (no such host)"), "{answer}");
    }

    #[tokio::test]
    async fn an_endless_request_head_is_cut_off_at_the_limit() {
        let (proxy, _refusals, _server) = proxy_with(resolving_to(&["203.0.113.9"])).await;
        let mut request = b"CONNECT pypi.org:443 HTTP/1.1\r\n".to_vec();
        while request.len() <= rules::MAX_HEAD_BYTES {
            request.extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let answer = ask(proxy, &request).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }

    #[tokio::test]
    async fn a_connect_to_a_registry_is_tunnelled_for_real() {
        // The one test that leaves the machine: registry.npmjs.org is reachable here and is what
        // every Node build needs. npm and pip then speak TLS through the tunnel, which the
        // template tests of the portal cover.
        let (proxy, refusals, _server) = proxy_with(system_resolver()).await;
        let mut stream = TcpStream::connect(proxy).await.expect("connect to the proxy");
        stream.write_all(b"CONNECT registry.npmjs.org:443 HTTP/1.1\r\nHost: registry.npmjs.org:443\r\n\r\n").await.expect("send");
        let mut answer = vec![0u8; rules::ESTABLISHED.len()];
        tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut answer)).await.expect("answered in time").expect("read");
        assert_eq!(String::from_utf8_lossy(&answer), String::from_utf8_lossy(rules::ESTABLISHED), "{:?}", refusals.lock().expect("lock"));
        assert!(refusals.lock().expect("lock").is_empty());
    }

    #[tokio::test]
    async fn a_build_namespace_reaches_the_proxy_on_its_loopback_and_the_proxy_refuses_for_it() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert!(std::env::var_os("SLIPWAY_REQUIRE_SANDBOX_TESTS").is_none(), "creating a namespace needs root");
            eprintln!("skipping: creating a network namespace needs root");
            return;
        }
        let refusals = Arc::new(Mutex::new(Vec::new()));
        let log = refusals.clone();
        let egress = BuildEgress::start(ProxyConfig {
            registries: vec!["pypi.org".to_owned()],
            resolver: resolving_to(&["203.0.113.9"]),
            on_refusal: Arc::new(move |line: &str| log.lock().expect("lock").push(line.to_owned())),
        })
        .await
        .expect("start the build's egress");
        assert_eq!(egress.port(), PROXY_PORT);
        assert!(egress.env().contains(&("HTTPS_PROXY".to_owned(), format!("http://127.0.0.1:{PROXY_PORT}"))));
        let mut stream = egress.netns().connect_async(([127, 0, 0, 1], PROXY_PORT).into()).await.expect("connect inside the namespace");
        stream.write_all(b"CONNECT evil.example:443 HTTP/1.1\r\n\r\n").await.expect("send");
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer)).await.expect("in time").expect("read");
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
        assert_eq!(refusals.lock().expect("lock").len(), 1);
        // Dropping the BuildEgress stops the server (the task is cancelled on the runtime's next
        // turn) and with it the listener: the namespace then refuses connections.
        let netns = egress.netns().clone();
        drop(egress);
        let mut refused = false;
        for _ in 0..100 {
            match netns.connect_async(([127, 0, 0, 1], PROXY_PORT).into()).await {
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    refused = true;
                    break;
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        assert!(refused, "the proxy still listens after its BuildEgress was dropped");
    }
}
