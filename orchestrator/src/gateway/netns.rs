//! `NetnsConnector`: reaches apps that listen inside their own network namespace (a sandbox with
//! only a loopback interface), where the gateway's namespace cannot route to them.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole life.
//! So the connector creates the socket on a dedicated, short-lived `std::thread` that first joins
//! the app's namespace with `setns(CLONE_NEWNET)`, hands the unconnected socket back, and exits; the
//! connect itself then runs asynchronously on tokio like any other, so it is cancellable by the
//! gateway's connect timeout and never parks a thread on a slow handshake.
//!
//! Why a dedicated thread rather than a pooled `spawn_blocking` thread that switches back: a pooled
//! thread outlives the call, and if switching back ever failed (or a panic skipped it) every later
//! blocking job on that thread (file I/O, DNS lookups) would silently run in an app's sandbox. A
//! thread that exits after one `socket(2)` call cannot leak its namespace to anyone; it costs one
//! thread spawn per *new* upstream connection, and the proxy pools connections.
//!
//! It deliberately does not create, configure or delete namespaces: the runtime owns those. Joining
//! a network namespace needs `CAP_SYS_ADMIN` (root in practice).

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use tokio::net::{TcpSocket, TcpStream};

use super::route_table::Upstream;
use super::upstream::{connect_tcp, Connector};

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("cannot open the network namespace {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot join the network namespace {path} (needs CAP_SYS_ADMIN): {source}")]
    Join { path: PathBuf, source: io::Error },
    #[error("cannot create a socket in the network namespace {path}: {source}")]
    Socket { path: PathBuf, source: io::Error },
    #[error("refusing to connect through {path}: it is the gateway's own network namespace, not a sandbox's")]
    OwnNamespace { path: PathBuf },
    #[error("cannot start the thread that joins a network namespace: {0}")]
    Thread(#[source] io::Error),
    #[error("the thread that joins a network namespace ended without answering")]
    ThreadVanished,
}

impl From<NetnsError> for io::Error {
    fn from(error: NetnsError) -> Self {
        let kind = match &error {
            NetnsError::Open { source, .. } | NetnsError::Join { source, .. } | NetnsError::Socket { source, .. } => source.kind(),
            NetnsError::Thread(source) => source.kind(),
            NetnsError::OwnNamespace { .. } => io::ErrorKind::PermissionDenied,
            NetnsError::ThreadVanished => io::ErrorKind::Other,
        };
        io::Error::new(kind, error)
    }
}

/// Connects to `Upstream::Tcp` directly and to `Upstream::InNetns` from inside that namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetnsConnector;

impl NetnsConnector {
    pub fn new() -> Self {
        Self
    }
}

impl Connector for NetnsConnector {
    async fn connect(&self, upstream: &Upstream) -> io::Result<TcpStream> {
        match upstream {
            Upstream::Tcp(addr) => connect_tcp(*addr).await,
            Upstream::InNetns { netns, addr } => {
                let socket = socket_in_netns(netns.clone(), *addr).await?;
                let stream = socket.connect(*addr).await?;
                stream.set_nodelay(true)?;
                Ok(stream)
            }
        }
    }
}

/// Creates an unconnected TCP socket for `addr`'s family inside the namespace at `netns`.
pub async fn socket_in_netns(netns: PathBuf, addr: SocketAddr) -> Result<TcpSocket, NetnsError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("slipway-netns".to_owned())
        .spawn(move || {
            // The receiver may have given up (timeout); the socket is then simply closed on drop.
            let _ = reply.send(create_socket_in(&netns, addr));
        })
        .map_err(NetnsError::Thread)?;
    let fd = answer.await.map_err(|_| NetnsError::ThreadVanished)??;
    // tokio accepts an unconnected std stream here and makes it non-blocking.
    Ok(TcpSocket::from_std_stream(std::net::TcpStream::from(fd)))
}

/// Runs on the dedicated thread: join the namespace, then create the socket there.
fn create_socket_in(netns: &Path, addr: SocketAddr) -> Result<OwnedFd, NetnsError> {
    let path = || netns.to_path_buf();
    let namespace = File::open(netns).map_err(|source| NetnsError::Open { path: path(), source })?;
    // A `/proc/PID/ns/net` path whose pid was reused by a host process would name the gateway's own
    // namespace, silently turning a sandbox address into a host address: refuse that outright.
    let target = namespace.metadata().map_err(|source| NetnsError::Open { path: path(), source })?;
    let own = std::fs::metadata("/proc/thread-self/ns/net").map_err(|source| NetnsError::Open { path: path(), source })?;
    if (target.dev(), target.ino()) == (own.dev(), own.ino()) {
        return Err(NetnsError::OwnNamespace { path: path() });
    }
    // SAFETY: `setns` only reads the descriptor, which `namespace` keeps open for the call, and it
    // changes the namespace of this thread alone, which exits right after creating the socket.
    if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::Join { path: path(), source: io::Error::last_os_error() });
    }
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: a plain socket(2) call; the descriptor it returns is owned by nothing else yet.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(NetnsError::Socket { path: path(), source: io::Error::last_os_error() });
    }
    // SAFETY: `fd` is a fresh, valid descriptor and ownership moves into the `OwnedFd` here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A throwaway network namespace for tests: `unshare --net` runs `sleep` in a new namespace with
    //! its loopback up; the namespace lives as long as that process, which `Drop` kills.

    use std::io::{BufRead, BufReader};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};

    pub struct TestNetns {
        holder: Child,
        pub path: PathBuf,
    }

    impl TestNetns {
        /// `None` when not running as root, because only root can create namespaces here.
        pub fn create() -> Option<Self> {
            // SAFETY: geteuid has no preconditions.
            if unsafe { libc::geteuid() } != 0 {
                eprintln!("network namespace tests need root; not running them as uid {}", unsafe { libc::geteuid() });
                return None;
            }
            let mut holder = Command::new("unshare")
                .args(["--net", "sh", "-c", "ip link set lo up && echo ready && exec sleep 600"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .spawn()
                .expect("unshare and ip (util-linux, iproute2) are installed");
            let mut line = String::new();
            BufReader::new(holder.stdout.take().expect("stdout was piped")).read_line(&mut line).expect("read the holder's readiness line");
            assert_eq!(line.trim(), "ready", "the namespace holder did not bring loopback up");
            let path = PathBuf::from(format!("/proc/{}/ns/net", holder.id()));
            Some(Self { holder, path })
        }

        /// Binds a listener inside the namespace, from a thread that joins it and then exits.
        pub fn bind_loopback(&self) -> tokio::net::TcpListener {
            let path = self.path.clone();
            let listener = std::thread::spawn(move || {
                let namespace = std::fs::File::open(&path).expect("open the test namespace");
                // SAFETY: see create_socket_in; this thread exits right after binding.
                let joined = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&namespace), libc::CLONE_NEWNET) };
                assert_eq!(joined, 0, "setns into the test namespace: {}", std::io::Error::last_os_error());
                std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback inside the namespace")
            })
            .join()
            .expect("the binding thread does not panic");
            listener.set_nonblocking(true).expect("make the listener non-blocking");
            tokio::net::TcpListener::from_std(listener).expect("hand the listener to tokio")
        }
    }

    impl Drop for TestNetns {
        fn drop(&mut self) {
            // Killing the only process in the namespace frees the namespace itself.
            let _ = self.holder.kill();
            let _ = self.holder.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::TestNetns;
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP/1.0 responder: enough to prove which namespace answered.
    async fn answer_once(listener: tokio::net::TcpListener, body: &'static str) {
        let (mut stream, _) = listener.accept().await.expect("accept inside the namespace");
        let mut request = vec![0u8; 1024];
        let _ = stream.read(&mut request).await.expect("read the request");
        let response = format!("HTTP/1.0 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        stream.write_all(response.as_bytes()).await.expect("write the response");
    }

    #[tokio::test]
    async fn the_netns_connector_reaches_a_server_that_the_host_cannot() {
        let Some(netns) = TestNetns::create() else { return };
        let listener = netns.bind_loopback();
        let addr = listener.local_addr().expect("listener address");
        let server = tokio::spawn(answer_once(listener, "hello from inside"));

        // The host's own loopback has nothing on that port: the server is only inside the namespace.
        let from_host = TcpStream::connect(addr).await;
        assert!(from_host.is_err(), "the host reached {addr}, which should exist only inside the namespace");

        let upstream = Upstream::InNetns { netns: netns.path.clone(), addr };
        let mut stream = NetnsConnector::new().connect(&upstream).await.expect("connect inside the namespace");
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await.expect("send a request");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read the response");
        assert!(response.ends_with("hello from inside"), "response: {response:?}");
        server.await.expect("the server task ends cleanly");

        // The runtime's threads are still in the host namespace: the connector did not move them.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn the_netns_connector_reports_a_missing_namespace() {
        let upstream = Upstream::InNetns {
            netns: PathBuf::from("/nonexistent/slipway-test-netns"),
            addr: "127.0.0.1:9".parse().expect("literal address"),
        };
        let error = NetnsConnector::new().connect(&upstream).await.expect_err("no such namespace");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(error.to_string().contains("/nonexistent/slipway-test-netns"), "{error}");
    }

    #[tokio::test]
    async fn the_netns_connector_refuses_the_gateways_own_namespace() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a host loopback listener");
        let addr = listener.local_addr().expect("listener address");
        let upstream = Upstream::InNetns { netns: PathBuf::from("/proc/self/ns/net"), addr };
        let error = NetnsConnector::new().connect(&upstream).await.expect_err("the host namespace is not a sandbox");
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(error.to_string().contains("own network namespace"), "{error}");
    }

    #[tokio::test]
    async fn the_tcp_connector_refuses_namespaced_upstreams() {
        let upstream =
            Upstream::InNetns { netns: PathBuf::from("/proc/self/ns/net"), addr: "127.0.0.1:9".parse().expect("literal address") };
        let error = super::super::upstream::TcpConnector.connect(&upstream).await.expect_err("unsupported");
        assert_eq!(error.kind(), io::ErrorKind::Unsupported);
    }
}
