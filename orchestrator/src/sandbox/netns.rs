//! Connecting from the host into a sandbox's private network namespace.
//!
//! An application sandbox has only its own loopback interface; it has no address
//! on the host at all. The gateway reaches it by creating a socket *inside* the
//! sandbox's network namespace and connecting to `127.0.0.1:PORT` there. A socket
//! stays bound to the namespace it was created in, so once connected it can be
//! used from any thread of the orchestrator like any other TCP stream.
//!
//! `setns(2)` changes the namespace of the calling thread only, and a thread that
//! has joined a sandbox's namespace must never go back to serving other work (it
//! would open later sockets in the wrong place). So every connection is made on a
//! short-lived thread of its own that exits afterwards. The cost is one thread
//! creation plus one `setns` per connection: about 30 µs on the development
//! machine, against about 14 µs for a plain loopback connect. That is negligible
//! next to an HTTP request, but the gateway should still keep connections alive
//! (HTTP/1.1 keep-alive or a small pool per sandbox) rather than reconnect per
//! request. Never call `setns` on a tokio blocking-pool thread: the pool reuses
//! threads, and later work on that thread would run inside the sandbox's network.
//!
//! What this module deliberately does not do: it does not create namespaces or
//! interfaces (bubblewrap does), it does not listen inside a sandbox, and it
//! refuses to "connect into" the caller's own namespace, which would silently turn
//! a sandbox address into a host address (for example after a pid was reused).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection attempt inside a namespace may take. Loopback answers
/// immediately (accept or refuse); the bound only matters for a stuck listener.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open handle on a network namespace. Holding it keeps the namespace alive
/// and pins it: unlike a `/proc/<pid>/ns/net` path it cannot start to mean a
/// different namespace when the pid is reused.
#[derive(Debug, Clone)]
pub struct Netns {
    file: Arc<File>,
    inode: u64,
}

impl Netns {
    /// Opens a namespace file such as `/proc/<pid>/ns/net`.
    pub fn open(path: &Path) -> io::Result<Netns> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Netns { file: Arc::new(file), inode })
    }

    /// The namespace's inode number, as `ls -l /proc/<pid>/ns/net` shows it.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// Connects to `addr` from inside this namespace (blocking; see the module
    /// documentation for the cost).
    pub fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let own = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
        if own == self.inode {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("refusing to connect to {addr}: network namespace {} is the caller's own", self.inode),
            ));
        }
        let file = Arc::clone(&self.file);
        std::thread::Builder::new()
            .name("netns-connect".into())
            .spawn(move || {
                // SAFETY: setns(2) only reads the descriptor, which `file` keeps open
                // for the duration of the call.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
            })?
            .join()
            .map_err(|_| io::Error::other("the netns connect thread panicked"))?
    }

    /// [`Netns::connect`] without blocking the async runtime: the dedicated thread
    /// reports back through a channel and the stream is handed to tokio.
    pub async fn connect_async(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let netns = self.clone();
        std::thread::Builder::new().name("netns-connect".into()).spawn(move || {
            // The receiver may be gone if the caller gave up; the stream is then dropped.
            let _ = tx.send(netns.connect(addr));
        })?;
        let stream = rx.await.map_err(|_| io::Error::other("the netns connect thread vanished"))??;
        stream.set_nonblocking(true)?;
        tokio::net::TcpStream::from_std(stream)
    }
}

/// Opens the namespace at `netns` (for example [`super::Sandbox::netns_path`]) and
/// connects to `addr` inside it, on a dedicated short-lived thread.
///
/// Needs CAP_SYS_ADMIN (the orchestrator runs as root). Prefer keeping a [`Netns`]
/// from [`super::Sandbox::netns`] when connecting repeatedly: it saves the open and
/// is immune to pid reuse.
pub fn connect_in_netns(netns: &Path, addr: SocketAddr) -> io::Result<TcpStream> {
    Netns::open(netns)?.connect(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connecting_into_the_callers_own_namespace_is_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback listener");
        let addr = listener.local_addr().expect("local addr");
        let err = connect_in_netns(Path::new("/proc/self/ns/net"), addr).expect_err("must refuse");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("caller's own"), "{err}");
    }

    #[test]
    fn a_missing_namespace_file_is_an_error_not_a_host_connection() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        let err = connect_in_netns(Path::new("/proc/999999999/ns/net"), addr).expect_err("no such pid");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
