//! Sandboxes for student code (builds and running apps) on the host.
//!
//! A sandbox is a bubblewrap (`bwrap`) process tree inside its own mount, pid,
//! ipc, uts and (for apps) network namespace, running as an unprivileged uid with
//! no capabilities and an environment that contains only what the spec lists, and
//! placed in a cgroup that limits memory, processes and cpu. The system is visible
//! read-only (`/usr` and a few pieces of `/etc`); the app's directory is at `/app`
//! (read-only for runs, writable for builds), an optional volume at `/data`, and a
//! private tmpfs at `/tmp`. Nothing else of the host exists inside: no `/home`,
//! `/root`, `/var`, `/run` (so no PostgreSQL or Redis sockets), no other app.
//!
//! An app's only network interface is its own loopback; the gateway reaches it by
//! connecting from inside its namespace ([`connect_in_netns`], [`Netns`]). Builds
//! join a namespace made for them beforehand ([`Network::Joined`],
//! [`Netns::create_with_listener`]) whose only reachable address is the egress
//! proxy's listener (`crate::egress`). [`Network::Host`] remains for operators who
//! choose it, and is weaker: such a sandbox can reach every service listening on the
//! host, including its loopback.
//!
//! Layout: [`bwrap`] builds the command line (pure), [`cgroup`] handles cgroup v1
//! and v2, [`netns`] connects into a sandbox, [`doctor`] probes the host. This file
//! holds the spec and the [`Sandbox`] handle, which does the thin I/O.
//!
//! Known rough edges. Bubblewrap reports failures of its own setup inside the
//! new namespaces (an unmountable path, a bad workdir) only as exit code 1 with a
//! `bwrap: ...` line on stderr, indistinguishable by status from the command
//! failing; `spawn` checks bind sources beforehand to make that rare. Bubblewrap
//! adds `PWD` (the workdir) to the environment. When a command exits normally,
//! bubblewrap's outer process exits before reaping the sandbox's init, which is
//! briefly a zombie of the host's PID 1 (systemd reaps it at once; it holds no
//! cgroup and no resources). The tests in `tests.rs` need root, bubblewrap and
//! cgroups; elsewhere they skip unless `SLIPWAY_REQUIRE_SANDBOX_TESTS` is set.
//!
//! What this module deliberately does not do: it does not prepare app directories
//! or choose uids (the caller owns that; with user namespaces every bound path
//! must be reachable by the sandbox uid, and writable ones owned by it), it does not
//! filter system calls (no seccomp policy yet), it does not limit disk usage or
//! disk I/O, and it does not filter traffic itself: the egress proxy decides what a
//! build may reach, and [`Network::Host`] is the host's network, documented as weaker.

pub mod bwrap;
pub mod cgroup;
pub mod doctor;
pub mod netns;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, Read, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, ChildStderr, ChildStdout};
use tokio::time::Instant;

pub use self::bwrap::{bwrap_argv, BwrapContext, SystemLayout};
pub use self::cgroup::{Cgroup, CgroupVersion, V1Hierarchies};
pub use self::doctor::{doctor_report, is_strong, missing_for_strong, probe, Check, HostSupport, IdentitySwitch};
pub use self::netns::{connect_in_netns, Netns};

/// Where the app's directory appears inside the sandbox.
pub const APP_MOUNT: &str = "/app";
/// Where the persistent volume appears inside the sandbox.
pub const DATA_MOUNT: &str = "/data";
/// The hostname inside every sandbox.
pub const SANDBOX_HOSTNAME: &str = "app";

/// Smallest limits accepted; below them bubblewrap itself cannot start.
const MIN_MEMORY_BYTES: u64 = 16 << 20;
const MIN_CPU_MILLIS: u32 = 10;
const MIN_PIDS: u32 = 8;

/// How long bubblewrap may take to report the sandbox's pid.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// An extra host path made visible inside the sandbox, e.g. a per-template npm
/// cache at `/cache/npm` (writable) or a toolchain at `/opt/node` (read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub dest: String,
    pub writable: bool,
}

/// The sandbox's network.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// Its own network namespace with only `lo`: the app cannot reach the host's
    /// loopback services, other apps or the internet; the gateway connects in.
    #[default]
    LoopbackOnly,
    /// A namespace made beforehand, e.g. by [`Netns::create_with_listener`]: the
    /// sandbox reaches exactly what was set up there (for builds: `lo` and the
    /// egress proxy's listener). Bubblewrap gets no `--unshare-net`; the child
    /// joins the namespace with `setns(2)` before it drops root, and the sandbox
    /// has no capability over it, so it cannot add interfaces or routes. Several
    /// sandboxes may join one namespace (a build's steps do).
    Joined(Netns),
    /// The host's network namespace. Weaker: it reaches everything the host can,
    /// including services on the host's 127.0.0.1 (PostgreSQL, Redis, the portal).
    /// Only for installations that choose it (`deploy.build_network = "host"`).
    Host,
}

/// Resource limits, enforced by the cgroup (and the timeout by [`Sandbox::wait`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// Thousandths of a core: 1000 is one full core.
    pub cpu_millis: u32,
    /// Processes and threads, including bubblewrap's own two.
    pub max_pids: u32,
    /// Wall-clock limit from spawn, for builds; the whole sandbox is killed.
    pub timeout: Option<Duration>,
}

/// Everything that defines one sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    /// Unique among live sandboxes; names the cgroup, e.g. `app-quiz-r3-i0`.
    pub name: String,
    /// Host directory mounted at `/app`.
    pub app_dir: PathBuf,
    /// Writable for builds, read-only for runs.
    pub app_writable: bool,
    /// Persistent volume mounted read-write at `/data`.
    pub data_dir: Option<PathBuf>,
    pub extra_binds: Vec<Bind>,
    /// The command, e.g. `["/bin/sh", "-c", "npm start"]`.
    pub argv: Vec<String>,
    /// The only environment the command sees.
    pub env: Vec<(String, String)>,
    /// Working directory inside the sandbox, usually `/app`.
    pub workdir: String,
    pub limits: Limits,
    pub network: Network,
    /// Unprivileged ids the command runs as; 0 is refused.
    pub uid: u32,
    pub gid: u32,
}

/// Why a sandbox could not be created or controlled.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox spec {name:?}: {reason}")]
    InvalidSpec { name: String, reason: String },
    #[error("bubblewrap (bwrap) is not installed on this host")]
    BwrapMissing,
    #[error("sandbox {name:?} cannot run as uid {uid}: this host has neither unprivileged user namespaces nor setpriv with root")]
    NoIdentitySwitch { name: String, uid: u32 },
    #[error("bind source {path} for sandbox {name:?} is not usable: {source}")]
    BindSource {
        name: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup file {path}: {source}")]
    CgroupIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cgroup {path} still has processes after repeated kills")]
    CgroupBusy { path: PathBuf },
    #[error("freezing through {path} did not complete within {waited_ms} ms")]
    FreezeTimeout { path: PathBuf, waited_ms: u64 },
    #[error("sandbox {name:?} has no cgroup to freeze or thaw")]
    FreezeUnsupported { name: String },
    #[error("could not start bubblewrap at {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("bubblewrap for sandbox {name:?} failed before starting the command ({status}): {stderr}")]
    Setup { name: String, status: String, stderr: String },
    #[error("sandbox {name:?}: {what}: {source}")]
    Io {
        name: String,
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// How a sandbox ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SandboxExit {
    /// The command exited with this code. Bubblewrap reports a command killed by
    /// signal N as 128 + N, like a shell.
    Exited { code: i32 },
    /// Bubblewrap itself was killed by this signal.
    Signaled { signal: i32 },
    /// The kernel's OOM killer killed at least one process of the sandbox and the
    /// command did not succeed: "killed: out of memory".
    OutOfMemory { oom_kills: u64, code: Option<i32> },
    /// The wall-clock limit passed and the sandbox was killed.
    TimedOut { after: Duration },
    /// [`Sandbox::kill`] was called.
    Killed,
}

impl SandboxExit {
    /// Whether the command exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, SandboxExit::Exited { code: 0 })
    }
}

impl std::fmt::Display for SandboxExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxExit::Exited { code } => write!(f, "exited with code {code}"),
            SandboxExit::Signaled { signal } => write!(f, "killed by signal {signal}"),
            SandboxExit::OutOfMemory { oom_kills, .. } => write!(f, "killed: out of memory ({oom_kills} OOM kills)"),
            SandboxExit::TimedOut { after } => write!(f, "timed out after {} s", after.as_secs_f64()),
            SandboxExit::Killed => write!(f, "killed"),
        }
    }
}

/// Classifies bubblewrap's exit status, given the cgroup's OOM-kill count.
pub fn classify_exit(status: ExitStatus, oom_kills: u64) -> SandboxExit {
    if oom_kills > 0 && !status.success() {
        return SandboxExit::OutOfMemory { oom_kills, code: status.code() };
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => SandboxExit::Exited { code },
        (None, Some(signal)) => SandboxExit::Signaled { signal },
        (None, None) => SandboxExit::Exited { code: -1 },
    }
}

impl SandboxSpec {
    /// Checks the spec before anything is created. Names end up in cgroup paths,
    /// so they are restricted to a safe alphabet.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let fail = |reason: String| Err(SandboxError::InvalidSpec { name: self.name.clone(), reason });
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 100
            && !self.name.starts_with('.')
            && self.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return fail("the name must be 1-100 characters of [A-Za-z0-9._-] not starting with a dot".into());
        }
        if self.argv.is_empty() {
            return fail("argv is empty".into());
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return fail("argv contains a NUL byte".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (key, value) in &self.env {
            let key_ok = !key.is_empty()
                && !key.starts_with(|c: char| c.is_ascii_digit())
                && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !key_ok {
                return fail(format!("environment variable name {key:?} is not a valid name"));
            }
            if value.contains('\0') {
                return fail(format!("environment variable {key} contains a NUL byte"));
            }
            if !seen.insert(key) {
                return fail(format!("environment variable {key} is given twice"));
            }
        }
        if !self.workdir.starts_with('/') || self.workdir.contains('\0') {
            return fail(format!("workdir {:?} is not an absolute path", self.workdir));
        }
        if self.uid == 0 || self.gid == 0 {
            return fail(format!("uid {} / gid {} must not be root", self.uid, self.gid));
        }
        let host_paths = std::iter::once(&self.app_dir).chain(self.data_dir.iter()).chain(self.extra_binds.iter().map(|b| &b.source));
        for path in host_paths {
            if !path.is_absolute() || path.to_str().is_none() || path.as_os_str().as_bytes().contains(&0) {
                return fail(format!("host path {} must be absolute UTF-8", path.display()));
            }
        }
        for bind in &self.extra_binds {
            if let Err(reason) = check_bind_dest(&bind.dest) {
                return fail(format!("bind destination {:?} {reason}", bind.dest));
            }
        }
        let l = &self.limits;
        if l.memory_bytes < MIN_MEMORY_BYTES || l.cpu_millis < MIN_CPU_MILLIS || l.max_pids < MIN_PIDS {
            return fail(format!(
                "limits too small: memory {} bytes (min {MIN_MEMORY_BYTES}), cpu {} millis (min {MIN_CPU_MILLIS}), pids {} (min {MIN_PIDS})",
                l.memory_bytes, l.cpu_millis, l.max_pids
            ));
        }
        Ok(())
    }
}

/// Extra binds may not cover the system, the kernel file systems or the fixed
/// mounts, and may not use `..` to get there.
fn check_bind_dest(dest: &str) -> Result<(), &'static str> {
    if !dest.starts_with('/') || dest.contains('\0') {
        return Err("is not an absolute path");
    }
    if dest.split('/').any(|part| part == ".." || part == ".") {
        return Err("contains . or .. components");
    }
    let dest = dest.trim_end_matches('/');
    let exact = ["", APP_MOUNT, DATA_MOUNT, "/tmp"];
    let covered = ["/proc", "/dev", "/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/sys"];
    if exact.contains(&dest) {
        return Err("replaces a mount every sandbox has");
    }
    if covered.iter().any(|c| dest == *c || dest.starts_with(&format!("{c}/"))) {
        return Err("lies inside the read-only system or a kernel file system");
    }
    Ok(())
}

/// A running (or finished) sandbox.
///
/// Spawn it from a thread that outlives it (any tokio worker thread, or the
/// thread running a current-thread runtime): bubblewrap's `--die-with-parent` is
/// tied to the spawning *thread*, and a tokio blocking-pool thread that retires
/// would take the sandbox with it. Dropping a `Sandbox` kills it.
///
/// To stop a sandbox while waiting for it, select over [`Sandbox::wait`] (which is
/// cancel-safe) and a stop signal, then call [`Sandbox::kill`].
#[derive(Debug)]
pub struct Sandbox {
    name: String,
    child: Child,
    /// Host pid of bubblewrap, our direct child.
    pid: u32,
    /// Host pid of the sandbox's init (pid 1 inside), which lives in the sandbox's
    /// namespaces for as long as the sandbox does.
    ns_pid: u32,
    netns: Option<Netns>,
    cgroup: Option<Cgroup>,
    started: Instant,
    timeout: Option<Duration>,
    exit: Option<SandboxExit>,
}

/// Whether `uid`/`gid` (with no supplementary groups) may search a directory with
/// this owner and mode. Only the classic mode bits are considered: an ACL that
/// grants more is not seen, so such a path is refused rather than risked.
pub fn may_search(mode: u32, owner: u32, group: u32, uid: u32, gid: u32) -> bool {
    if owner == uid {
        mode & 0o100 != 0
    } else if group == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// The first directory above `path` (from the root down) that the app uid cannot
/// search, if any.
fn first_unsearchable_ancestor(path: &Path, uid: u32, gid: u32) -> Option<PathBuf> {
    let ancestors: Vec<&Path> = path.ancestors().skip(1).collect();
    for dir in ancestors.into_iter().rev() {
        let meta = std::fs::metadata(dir).ok()?;
        if !may_search(meta.mode(), meta.uid(), meta.gid(), uid, gid) {
            return Some(dir.to_path_buf());
        }
    }
    None
}

/// A pipe whose both ends are close-on-exec.
fn cloexec_pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A pipe already holding `contents`, writer closed: bubblewrap reads it to EOF.
/// The contents must fit in the pipe buffer (64 KiB on Linux) so that writing
/// never blocks before bubblewrap runs.
fn data_pipe(contents: &[u8]) -> io::Result<OwnedFd> {
    if contents.len() > 60 * 1024 {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "synthetic file larger than a pipe buffer"));
    }
    let (read, write) = cloexec_pipe()?;
    File::from(write).write_all(contents)?;
    Ok(read)
}

/// Writes `pid` in decimal into `buf` without allocating (for use after fork).
pub(crate) fn format_pid(mut pid: u32, buf: &mut [u8; 16]) -> usize {
    let mut digits = [0u8; 16];
    let mut n = 0;
    loop {
        digits[n] = b'0' + (pid % 10) as u8;
        n += 1;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    buf[n] = b'\n';
    n + 1
}

/// The part of bubblewrap's `--info-fd` report we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwrapInfo {
    pub child_pid: u32,
    pub net_namespace: Option<u64>,
}

/// Parses `{"child-pid": 123, "net-namespace": 4026532180, ...}`.
pub fn parse_info(text: &str) -> Option<BwrapInfo> {
    let value: serde_json::Value = serde_json::from_str(text).ok()?;
    let child_pid = u32::try_from(value.get("child-pid")?.as_u64()?).ok()?;
    let net_namespace = value.get("net-namespace").and_then(|v| v.as_u64());
    Some(BwrapInfo { child_pid, net_namespace })
}

impl Sandbox {
    /// Creates the cgroup, starts bubblewrap inside it and waits until bubblewrap
    /// reports the sandbox's pid. Stdout and stderr are piped (take them with
    /// [`Sandbox::take_stdout`]/[`Sandbox::take_stderr`] and keep reading them,
    /// or a chatty command blocks); stdin is `/dev/null`.
    pub async fn spawn(spec: &SandboxSpec, host: &HostSupport) -> Result<Sandbox, SandboxError> {
        Self::spawn_with(spec, host, None).await
    }

    /// Like [`Sandbox::spawn`], but the command's stdin, stdout and stderr are `terminal` (the
    /// slave side of a pseudo-terminal), which becomes the controlling terminal of a new session
    /// that bubblewrap and the command share: Ctrl-C reaches the command, and programs see a
    /// terminal. Bubblewrap gets no `--new-session` here; the `TIOCSTI` injection it guards
    /// against could only type into this sandbox's own terminal. Nothing is piped, so
    /// [`Sandbox::take_stdout`] gives `None`; bubblewrap's own setup errors go to the terminal.
    pub async fn spawn_on_terminal(spec: &SandboxSpec, host: &HostSupport, terminal: &OwnedFd) -> Result<Sandbox, SandboxError> {
        Self::spawn_with(spec, host, Some(terminal)).await
    }

    async fn spawn_with(spec: &SandboxSpec, host: &HostSupport, terminal: Option<&OwnedFd>) -> Result<Sandbox, SandboxError> {
        spec.validate()?;
        let bwrap_path = host.bwrap.clone().ok_or(SandboxError::BwrapMissing)?;
        let identity = host.identity_switch().ok_or_else(|| SandboxError::NoIdentitySwitch { name: spec.name.clone(), uid: spec.uid })?;
        // A missing source would otherwise only surface as bubblewrap's exit code 1,
        // indistinguishable from the command failing.
        let sources = std::iter::once(&spec.app_dir).chain(spec.data_dir.iter()).chain(spec.extra_binds.iter().map(|b| &b.source));
        for path in sources {
            std::fs::metadata(path).map_err(|source| SandboxError::BindSource { name: spec.name.clone(), path: path.clone(), source })?;
            // Under user namespaces bubblewrap resolves bind sources as the app
            // uid; an unreachable one would only show up as exit code 1.
            if identity == IdentitySwitch::UserNamespace {
                if let Some(blocker) = first_unsearchable_ancestor(path, spec.uid, spec.gid) {
                    return Err(SandboxError::BindSource {
                        name: spec.name.clone(),
                        path: path.clone(),
                        source: io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            format!("uid {} cannot search {} (the sandbox resolves paths as that uid)", spec.uid, blocker.display()),
                        ),
                    });
                }
            }
        }

        let cgroup = Cgroup::create(&host.cgroup, &host.cgroup_parent, &spec.name, &spec.limits)?;
        match Self::start(spec, host, &bwrap_path, &identity, cgroup.as_ref(), terminal).await {
            Ok((child, pid, info)) => {
                let mut sandbox = Sandbox {
                    name: spec.name.clone(),
                    child,
                    pid,
                    ns_pid: info.child_pid,
                    netns: None,
                    cgroup,
                    started: Instant::now(),
                    timeout: spec.limits.timeout,
                    exit: None,
                };
                let pinned = match &spec.network {
                    Network::LoopbackOnly => sandbox.pin_netns(&info),
                    Network::Joined(netns) => sandbox.check_joined(netns),
                    Network::Host => Ok(()),
                };
                if let Err(e) = pinned {
                    let _ = sandbox.kill().await;
                    return Err(e);
                }
                tracing::debug!(name = %spec.name, pid, ns_pid = info.child_pid, "sandbox started");
                Ok(sandbox)
            }
            Err(e) => {
                if let Some(cg) = &cgroup {
                    if let Err(cleanup) = cg.remove().await {
                        tracing::warn!(name = %spec.name, error = %cleanup, "could not remove the cgroup of a failed sandbox");
                    }
                }
                Err(e)
            }
        }
    }

    /// Opens the sandbox's network namespace right away and checks it is the one
    /// bubblewrap reported, so that a later pid reuse cannot redirect the gateway.
    /// A command that already finished has no namespace left; that is not an error.
    fn pin_netns(&mut self, info: &BwrapInfo) -> Result<(), SandboxError> {
        let netns = match Netns::open(&self.netns_path()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(SandboxError::Io { name: self.name.clone(), what: "opening the network namespace", source }),
        };
        let own = std::fs::metadata("/proc/self/ns/net")
            .map_err(|source| SandboxError::Io { name: self.name.clone(), what: "reading our own network namespace", source })?
            .ino();
        let expected = info.net_namespace.unwrap_or(netns.inode());
        if netns.inode() != expected || netns.inode() == own {
            return Err(SandboxError::Io {
                name: self.name.clone(),
                what: "pinning the network namespace",
                source: io::Error::other(format!(
                    "pid {} has network namespace {} but bubblewrap reported {expected} (host is {own})",
                    self.ns_pid,
                    netns.inode()
                )),
            });
        }
        self.netns = Some(netns);
        Ok(())
    }

    /// Checks that the sandbox's init really is in the namespace it was asked to
    /// join, and keeps a handle on it for [`Sandbox::netns`]. A command that
    /// already finished has nothing left to check; that is not an error.
    fn check_joined(&mut self, joined: &Netns) -> Result<(), SandboxError> {
        let inode = match std::fs::metadata(self.netns_path()) {
            Ok(meta) => meta.ino(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(SandboxError::Io { name: self.name.clone(), what: "reading the network namespace", source }),
        };
        if inode != joined.inode() {
            return Err(SandboxError::Io {
                name: self.name.clone(),
                what: "joining the network namespace",
                source: io::Error::other(format!("pid {} has network namespace {inode}, not {}", self.ns_pid, joined.inode())),
            });
        }
        self.netns = Some(joined.clone());
        Ok(())
    }

    async fn start(
        spec: &SandboxSpec,
        host: &HostSupport,
        bwrap_path: &Path,
        identity: &IdentitySwitch,
        cgroup: Option<&Cgroup>,
        terminal: Option<&OwnedFd>,
    ) -> Result<(Child, u32, BwrapInfo), SandboxError> {
        let io_err = |what: &'static str| move |source: io::Error| SandboxError::Io { name: spec.name.clone(), what, source };

        // Descriptors for the cgroup membership are opened now, as root, so that
        // the forked child only has to write(2) its pid: no path lookups and no
        // allocation between fork and exec.
        let mut procs_files = Vec::new();
        if let Some(cg) = cgroup {
            for path in cg.procs_files() {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| SandboxError::CgroupIo { path: path.clone(), source })?;
                procs_files.push(file);
            }
        }
        let synthetic = bwrap::synthetic_files(spec);
        let synthetic_fds: Vec<OwnedFd> = synthetic
            .iter()
            .map(|f| data_pipe(f.contents.as_bytes()))
            .collect::<io::Result<_>>()
            .map_err(io_err("preparing synthetic /etc files"))?;
        let (info_read, info_write) = cloexec_pipe().map_err(io_err("creating the info pipe"))?;

        let synthetic_raw: Vec<RawFd> = synthetic_fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let ctx = BwrapContext {
            identity,
            disable_nested_userns: host.bwrap_disable_userns,
            layout: &host.layout,
            info_fd: info_write.as_raw_fd(),
            synthetic_fds: &synthetic_raw,
            terminal: terminal.is_some(),
        };
        let args = bwrap_argv(spec, &ctx);
        tracing::debug!(name = %spec.name, ?args, "starting bubblewrap");

        let mut cmd = tokio::process::Command::new(bwrap_path);
        cmd.args(&args).env_clear().current_dir("/");
        match terminal {
            Some(terminal) => {
                let stdio = |what| terminal.try_clone().map(Stdio::from).map_err(io_err(what));
                cmd.stdin(stdio("sharing the terminal as stdin")?)
                    .stdout(stdio("sharing the terminal as stdout")?)
                    .stderr(stdio("sharing the terminal as stderr")?);
            }
            None => {
                cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            }
        }
        let on_terminal = terminal.is_some();

        let procs_raw: Vec<RawFd> = procs_files.iter().map(|f| f.as_raw_fd()).collect();
        let mut inherit: Vec<RawFd> = synthetic_raw.clone();
        inherit.push(info_write.as_raw_fd());
        let switch_to = match identity {
            IdentitySwitch::UserNamespace => Some((spec.uid, spec.gid)),
            IdentitySwitch::Setpriv(_) => None,
        };
        // The namespace file stays open (close-on-exec, so bubblewrap never holds
        // it) for as long as `spec` is borrowed, which outlasts the spawn.
        let join_netns: Option<RawFd> = match &spec.network {
            Network::Joined(netns) => Some(netns.raw_fd()),
            Network::LoopbackOnly | Network::Host => None,
        };
        // SAFETY: the closure runs in the forked child before exec and only makes
        // async-signal-safe system calls (setsid, ioctl, getpid, write, setns, fcntl,
        // setgroups, setgid, setuid) on memory allocated before the fork.
        unsafe {
            cmd.pre_exec(move || {
                // On a terminal: a session of its own with the terminal (already on
                // stdin) as its controlling terminal, taken while still root.
                if on_terminal && (libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0) {
                    return Err(io::Error::last_os_error());
                }
                // Join the cgroup first, while still root: everything bubblewrap
                // and the student's command start afterwards inherits it.
                let mut buf = [0u8; 16];
                let len = format_pid(libc::getpid() as u32, &mut buf);
                for &fd in &procs_raw {
                    if libc::write(fd, buf.as_ptr().cast(), len) != len as isize {
                        return Err(io::Error::last_os_error());
                    }
                }
                // Then the prepared network namespace, also while still root:
                // setns needs CAP_SYS_ADMIN, which the uid switch below drops.
                // Bubblewrap and everything it starts inherit the namespace.
                if let Some(fd) = join_netns {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // Bubblewrap must inherit the info and data pipes across exec.
                for &fd in &inherit {
                    let flags = libc::fcntl(fd, libc::F_GETFD);
                    if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                if let Some((uid, gid)) = switch_to {
                    if libc::setgroups(0, std::ptr::null()) != 0 || libc::setgid(gid) != 0 || libc::setuid(uid) != 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|source| SandboxError::Spawn { path: bwrap_path.to_path_buf(), source })?;
        let pid = child.id().expect("a just-spawned child has not been reaped yet");
        // Our copies must go, or the info pipe would never reach end-of-file.
        drop(info_write);
        drop(synthetic_fds);
        drop(procs_files);

        let read_info = tokio::task::spawn_blocking(move || {
            let mut text = String::new();
            File::from(info_read).read_to_string(&mut text).map(|_| text)
        });
        let text = match tokio::time::timeout(SETUP_TIMEOUT, read_info).await {
            Ok(joined) => joined.expect("the info reader does not panic").map_err(io_err("reading bubblewrap's info"))?,
            Err(_) => {
                // Killing bubblewrap closes the pipe, which also ends the reader.
                let _ = child.start_kill();
                String::new()
            }
        };
        match parse_info(&text) {
            Some(info) => Ok((child, pid, info)),
            None => {
                let status = child.wait().await.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = err.read_to_string(&mut stderr).await;
                }
                Err(SandboxError::Setup { name: spec.name.clone(), status, stderr: stderr.trim().to_string() })
            }
        }
    }

    /// The sandbox's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Host pid of bubblewrap (the orchestrator's direct child).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Host pid of the sandbox's init process (pid 1 inside its pid namespace).
    pub fn ns_pid(&self) -> u32 {
        self.ns_pid
    }

    /// `/proc/<pid>/ns/net` of the sandbox's init, which is inside the sandbox's
    /// namespaces; bubblewrap's own pid stays in the host's (or, for
    /// [`Network::Joined`], is in the joined one too). Valid while the sandbox
    /// runs; prefer [`Sandbox::netns`], which cannot go stale. For a
    /// [`Network::Host`] sandbox this is the host's own namespace.
    pub fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.ns_pid))
    }

    /// A pinned handle on the sandbox's network namespace (for [`Network::LoopbackOnly`]
    /// and [`Network::Joined`] sandboxes that were still running right after spawn).
    pub fn netns(&self) -> Option<&Netns> {
        self.netns.as_ref()
    }

    /// The sandbox's cgroup, while it exists.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    pub fn take_stderr(&mut self) -> Option<ChildStderr> {
        self.child.stderr.take()
    }

    /// Bytes of memory charged to the sandbox now.
    pub fn memory_usage(&self) -> Option<u64> {
        self.cgroup.as_ref()?.memory_usage()
    }

    /// Stops every process of the sandbox (the kernel freezer; SIGSTOP where there
    /// is none) and returns once they are stopped.
    pub async fn freeze(&self) -> Result<(), SandboxError> {
        match &self.cgroup {
            Some(cg) => cg.freeze().await,
            None => Err(SandboxError::FreezeUnsupported { name: self.name.clone() }),
        }
    }

    /// Resumes a frozen sandbox.
    pub async fn thaw(&self) -> Result<(), SandboxError> {
        match &self.cgroup {
            Some(cg) => cg.thaw().await,
            None => Err(SandboxError::FreezeUnsupported { name: self.name.clone() }),
        }
    }

    /// Waits for the sandbox to end, enforcing the wall-clock limit, and removes
    /// its cgroup. Calling it again returns the same result.
    pub async fn wait(&mut self) -> Result<SandboxExit, SandboxError> {
        if let Some(exit) = &self.exit {
            return Ok(exit.clone());
        }
        let status = match self.timeout {
            Some(limit) => tokio::select! {
                status = self.child.wait() => Some(status),
                _ = tokio::time::sleep_until(self.started + limit) => None,
            },
            None => Some(self.child.wait().await),
        };
        let exit = match status {
            None => {
                self.terminate().await?;
                SandboxExit::TimedOut { after: self.timeout.expect("only a sandbox with a timeout can time out") }
            }
            Some(status) => {
                let status =
                    status.map_err(|source| SandboxError::Io { name: self.name.clone(), what: "waiting for bubblewrap", source })?;
                let oom_kills = self.cgroup.as_ref().and_then(Cgroup::oom_kills).unwrap_or(0);
                self.remove_cgroup().await?;
                classify_exit(status, oom_kills)
            }
        };
        self.exit = Some(exit.clone());
        Ok(exit)
    }

    /// Kills every process of the sandbox (also ones that left its process group
    /// or session), reaps bubblewrap and removes the cgroup.
    pub async fn kill(&mut self) -> Result<(), SandboxError> {
        if self.exit.is_none() {
            self.terminate().await?;
            self.exit = Some(SandboxExit::Killed);
        }
        self.remove_cgroup().await
    }

    async fn terminate(&mut self) -> Result<(), SandboxError> {
        let reap_error = |name: &str| {
            let name = name.to_string();
            move |source| SandboxError::Io { name, what: "reaping bubblewrap", source }
        };
        if let Some(cg) = &self.cgroup {
            // Everything but bubblewrap's outer process dies first; that process
            // then reaps the sandbox's init and exits on its own. Killing it too
            // would orphan init to the host's PID 1, which may be slow to reap.
            cg.kill_all_sparing(Some(self.pid as i32)).await?;
            match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
                Ok(status) => {
                    status.map_err(reap_error(&self.name))?;
                }
                Err(_) => {
                    let _ = self.child.start_kill();
                    self.child.wait().await.map_err(reap_error(&self.name))?;
                }
            }
        } else {
            // Without a cgroup, killing bubblewrap is enough: its init dies with it
            // (--die-with-parent) and the kernel kills the rest of the pid namespace.
            let _ = self.child.start_kill();
            self.child.wait().await.map_err(reap_error(&self.name))?;
        }
        self.remove_cgroup().await
    }

    async fn remove_cgroup(&mut self) -> Result<(), SandboxError> {
        if let Some(cg) = &self.cgroup {
            cg.remove().await?;
        }
        self.cgroup = None;
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Killing and removing the cgroup needs the processes to be gone, which may
        // take a moment, so it happens on a helper thread; the dropped child handle
        // lets tokio reap bubblewrap once it has exited. Without a cgroup, killing
        // bubblewrap takes the whole pid namespace down with it.
        match self.cgroup.take() {
            Some(cg) => {
                let _ = cg.kill_pass_sparing(Some(self.pid as i32));
                let spare = (self.exit.is_none()).then_some(self.pid as i32);
                let name = self.name.clone();
                let spawned = std::thread::Builder::new().name("sandbox-cleanup".into()).spawn(move || cg.remove_blocking(spare));
                if let Err(e) = spawned {
                    tracing::warn!(name = %name, error = %e, "could not start cgroup cleanup");
                }
            }
            None => {
                if self.exit.is_none() {
                    let _ = self.child.start_kill();
                }
            }
        }
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    fn spec() -> SandboxSpec {
        SandboxSpec {
            name: "app-quiz-r3-i0".into(),
            app_dir: "/srv/apps/quiz".into(),
            app_writable: false,
            data_dir: None,
            extra_binds: vec![],
            argv: vec!["/bin/true".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
            workdir: "/app".into(),
            limits: Limits { memory_bytes: 256 << 20, cpu_millis: 1000, max_pids: 64, timeout: None },
            network: Network::LoopbackOnly,
            uid: 20001,
            gid: 20001,
        }
    }

    fn reason(spec: &SandboxSpec) -> String {
        match spec.validate() {
            Err(SandboxError::InvalidSpec { reason, .. }) => reason,
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    #[test]
    fn a_reasonable_spec_is_valid() {
        spec().validate().expect("valid");
    }

    #[test]
    fn names_that_could_escape_the_cgroup_directory_are_rejected() {
        for name in ["", "../etc", "a/b", ".hidden", "x y"] {
            let s = SandboxSpec { name: name.into(), ..spec() };
            assert!(reason(&s).contains("name"), "{name:?} accepted");
        }
    }

    #[test]
    fn root_ids_are_rejected() {
        assert!(reason(&SandboxSpec { uid: 0, ..spec() }).contains("must not be root"));
        assert!(reason(&SandboxSpec { gid: 0, ..spec() }).contains("must not be root"));
    }

    #[test]
    fn bad_environment_names_and_duplicates_are_rejected() {
        let bad = SandboxSpec { env: vec![("A=B".into(), "x".into())], ..spec() };
        assert!(reason(&bad).contains("not a valid name"));
        let dup = SandboxSpec { env: vec![("A".into(), "1".into()), ("A".into(), "2".into())], ..spec() };
        assert!(reason(&dup).contains("given twice"));
    }

    #[test]
    fn extra_binds_may_not_cover_the_system_or_use_dot_dot() {
        for dest in ["/usr/local/x", "/etc", "/proc/x", "/cache/../usr", "relative", "/app", "/"] {
            let s = SandboxSpec { extra_binds: vec![Bind { source: "/var/cache/x".into(), dest: dest.into(), writable: false }], ..spec() };
            assert!(reason(&s).contains("bind destination"), "{dest:?} accepted");
        }
        let ok =
            SandboxSpec { extra_binds: vec![Bind { source: "/var/cache/x".into(), dest: "/cache/npm".into(), writable: true }], ..spec() };
        ok.validate().expect("/cache/npm is fine");
    }

    #[test]
    fn limits_below_what_bubblewrap_needs_are_rejected() {
        let s = SandboxSpec { limits: Limits { max_pids: 2, ..spec().limits }, ..spec() };
        assert!(reason(&s).contains("limits too small"));
    }

    #[test]
    fn relative_workdirs_and_empty_commands_are_rejected() {
        assert!(reason(&SandboxSpec { workdir: "app".into(), ..spec() }).contains("workdir"));
        assert!(reason(&SandboxSpec { argv: vec![], ..spec() }).contains("argv"));
    }

    #[test]
    fn a_sandbox_can_be_moved_into_a_spawned_task() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Sandbox>();
        assert_send::<Netns>();
        assert_send::<SandboxError>();
    }

    #[test]
    fn search_permission_follows_owner_then_group_then_others() {
        assert!(may_search(0o700, 20001, 0, 20001, 20001));
        assert!(!may_search(0o700, 0, 0, 20001, 20001));
        assert!(may_search(0o710, 0, 20001, 20001, 20001));
        assert!(!may_search(0o701, 0, 20001, 20001, 20001), "group bits win over others for a group member");
        assert!(may_search(0o755, 0, 0, 20001, 20001));
    }

    #[test]
    fn pids_are_formatted_without_allocation() {
        let mut buf = [0u8; 16];
        let n = format_pid(4_194_304, &mut buf);
        assert_eq!(&buf[..n], b"4194304\n");
        let n = format_pid(0, &mut buf);
        assert_eq!(&buf[..n], b"0\n");
    }

    #[test]
    fn bubblewrap_info_yields_the_child_pid_and_its_network_namespace() {
        let text = "{\n    \"child-pid\": 8419,\n    \"mnt-namespace\": 4026532178,\n    \"net-namespace\": 4026532180\n}\n";
        assert_eq!(parse_info(text), Some(BwrapInfo { child_pid: 8419, net_namespace: Some(4026532180) }));
        assert_eq!(parse_info(""), None);
    }

    #[test]
    fn an_oom_kill_with_a_failed_command_is_reported_as_out_of_memory() {
        let killed = ExitStatus::from_raw(137 << 8);
        assert_eq!(classify_exit(killed, 1), SandboxExit::OutOfMemory { oom_kills: 1, code: Some(137) });
        assert_eq!(classify_exit(killed, 0), SandboxExit::Exited { code: 137 });
        // A child that was OOM-killed while the command itself recovered and
        // succeeded is a success, not an OOM death.
        assert_eq!(classify_exit(ExitStatus::from_raw(0), 2), SandboxExit::Exited { code: 0 });
        assert_eq!(classify_exit(ExitStatus::from_raw(libc::SIGKILL), 0), SandboxExit::Signaled { signal: 9 });
    }
}
