//! Connecting from the host into a sandbox's private network namespace, and creating a namespace
//! up front for sandboxes to join.
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
//! Builds work the other way round: [`Netns::create_with_listener`] makes a namespace
//! before any sandbox exists, with only `lo` (brought up) and one TCP listener on
//! `127.0.0.1:PORT` inside it, which the egress proxy serves from the host's
//! namespace. The build's sandboxes then join it ([`super::Network::Joined`]), so
//! the only thing they can connect to is that listener. The namespace is created on
//! a dedicated thread for the same reason as above: `unshare(CLONE_NEWNET)` moves
//! the calling thread, which must not serve other work afterwards. It lives as long
//! as something holds it: the [`Netns`] handle, the listener, or a process inside.
//!
//! What this module deliberately does not do: it creates no interfaces but `lo`
//! (no veth, no routes, no NAT: nothing leads out of a created namespace), it does
//! not listen inside an app's sandbox, and it refuses to "connect into" the
//! caller's own namespace, which would silently turn a sandbox address into a host
//! address (for example after a pid was reused).

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a connection attempt inside a namespace may take. Loopback answers
/// immediately (accept or refuse); the bound only matters for a stuck listener.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An open handle on a network namespace. Holding it keeps the namespace alive
/// and pins it: unlike a `/proc/<pid>/ns/net` path it cannot start to mean a
/// different namespace when the pid is reused. Two handles are equal when they
/// name the same namespace.
#[derive(Debug, Clone)]
pub struct Netns {
    file: Arc<File>,
    inode: u64,
}

impl PartialEq for Netns {
    fn eq(&self, other: &Netns) -> bool {
        self.inode == other.inode
    }
}

impl Eq for Netns {}

impl Netns {
    /// Opens a namespace file such as `/proc/<pid>/ns/net`.
    pub fn open(path: &Path) -> io::Result<Netns> {
        let file = File::open(path)?;
        let inode = file.metadata()?.ino();
        Ok(Netns { file: Arc::new(file), inode })
    }

    /// Creates a new network namespace holding only `lo`, up, and a TCP listener
    /// on `127.0.0.1:port` inside it (port 0 picks one). The listener's socket
    /// stays in that namespace whichever thread later accepts on it, so the
    /// caller can serve it from the host's namespace (see the module docs).
    ///
    /// Needs CAP_SYS_ADMIN (the orchestrator runs as root). Blocks for the
    /// lifetime of a short thread (well under a millisecond).
    pub fn create_with_listener(port: u16) -> io::Result<(Netns, TcpListener)> {
        let host_inode = std::fs::metadata("/proc/self/ns/net")?.ino();
        let (netns, listener) = std::thread::Builder::new()
            .name("netns-create".into())
            .spawn(move || -> io::Result<(Netns, TcpListener)> {
                // SAFETY: unshare(2) takes no pointers; it moves only this thread,
                // which exits right after setting the namespace up.
                if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                    return Err(io::Error::last_os_error());
                }
                let netns = Netns::open(Path::new("/proc/thread-self/ns/net"))?;
                bring_loopback_up()?;
                let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
                Ok((netns, listener))
            })?
            .join()
            .map_err(|_| io::Error::other("the netns create thread panicked"))??;
        if netns.inode == host_inode {
            return Err(io::Error::other(format!("unshare left the thread in the host's network namespace {host_inode}")));
        }
        Ok((netns, listener))
    }

    /// The namespace's inode number, as `ls -l /proc/<pid>/ns/net` shows it.
    pub fn inode(&self) -> u64 {
        self.inode
    }

    /// The open namespace file, for `setns(2)` in a child before it executes
    /// (see `Sandbox::spawn`). Valid while this handle lives.
    pub(crate) fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
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

/// Sets the `IFF_UP` flag of `lo` in the calling thread's network namespace, the
/// equivalent of `ip link set lo up`: a new namespace starts with `lo` down, and
/// then even 127.0.0.1 is unreachable.
fn bring_loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) takes no pointers; the descriptor is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` was just created and belongs to nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data, valid when zeroed.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: both ioctls read and write only the ifreq they are given, which
    // names the interface in `ifr_name` and carries the flags in the union.
    unsafe {
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) != 0 {
            return Err(io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
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
