//! Private PostgreSQL and Redis for `slipway up`.
//!
//! [`PrivateServices`] starts a PostgreSQL cluster and a Redis server that
//! belong to one slipway data directory, using the binaries the system already
//! has (Debian's `postgresql` and `redis-server` packages). Everything lives
//! under that directory:
//!
//! ```text
//! DATA/postgres/        PGDATA (initdb runs once, when PG_VERSION is absent)
//! DATA/redis/           Redis working directory (append-only file)
//! DATA/run/             unix sockets, pid file and start locks, mode 0700
//! DATA/logs/            postgres.log and redis.log
//! ```
//!
//! Both servers listen only on unix sockets in `DATA/run/`, so they never
//! collide with a system PostgreSQL on port 5432 or a system Redis on 6379,
//! and only processes on this machine that may enter that directory can reach
//! them. PostgreSQL trusts every local connection for that reason.
//!
//! The URLs handed back are `postgres://slipway@%2Fabs%2Frun:5432/slipway`
//! (libpq reads a percent-encoded host starting with `/` as a socket
//! directory, and the `url` crate can parse it) and
//! `redis+unix:///abs/run/redis.sock` (the redis crate's unix-socket scheme).
//!
//! If a server is already running from the same data directory (started by
//! another `slipway` process), it is reused rather than started twice, and
//! [`PrivateServices::stop`] leaves it alone: a value only stops what it
//! started itself. Starting is serialised across processes with a `flock`
//! on a lock file in `DATA/run/`, so two `slipway up` at once cannot start two
//! servers on the same files.
//!
//! When slipway runs as root, PostgreSQL (which refuses to run as root) runs
//! as the `postgres` system user, and the PostgreSQL directories are handed to
//! that user. Redis runs as whoever runs slipway.
//!
//! Children are put in their own process group, so a Ctrl-C in the terminal
//! reaches only slipway, which then stops them in order; and they get
//! `PR_SET_PDEATHSIG` = SIGTERM, so a slipway killed with SIGKILL does not
//! leave them orphaned. Because Linux delivers that signal when the *thread*
//! that forked the child exits (not the process), children are forked from
//! one helper thread that lives as long as the process.
//!
//! What this module deliberately does not do: it does not install packages,
//! tune either server, take backups, upgrade a cluster across PostgreSQL
//! major versions, open any TCP port, or restart a server that crashes after
//! start-up (the caller notices failing connections and decides).

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout, Instant};
use tracing::{info, warn};

/// The port only names PostgreSQL's socket file (`.s.PGSQL.5432`); no TCP
/// port is opened, so the usual number cannot collide with a system server.
const PG_PORT: u16 = 5432;
/// The superuser that initdb creates, and the user slipway connects as.
const PG_USER: &str = "slipway";
/// The database slipway keeps its data in.
const PG_DATABASE: &str = "slipway";
const PG_START_TIMEOUT: Duration = Duration::from_secs(30);
const REDIS_START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for another process that is starting the same server:
/// long enough for an initdb plus a PostgreSQL start-up.
const START_LOCK_TIMEOUT: Duration = Duration::from_secs(120);
/// A bound on each psql call, so a wedged server cannot hang start-up.
const PSQL_TIMEOUT: Duration = Duration::from_secs(10);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// `sizeof(sockaddr_un.sun_path)` on Linux is 108, one of which is the NUL.
const MAX_SOCKET_PATH: usize = 107;

/// A private PostgreSQL and Redis under one data directory, and the record
/// of which of them this value started (and so must stop).
#[derive(Default)]
pub struct PrivateServices {
    postgres: Option<Owned>,
    redis: Option<Owned>,
}

impl Drop for PrivateServices {
    fn drop(&mut self) {
        // Dropping cannot wait for an orderly shutdown, so the servers keep
        // running until stop() or until this process exits (their death
        // signal); say so, because that is rarely intended.
        for owned in [&self.postgres, &self.redis].into_iter().flatten() {
            warn!(
                "PrivateServices dropped without stop(); private {} in {} runs until slipway exits",
                owned.name,
                owned.data_dir.display()
            );
        }
    }
}

/// A server process this value started and is responsible for stopping.
struct Owned {
    /// "PostgreSQL" or "Redis", for log lines.
    name: &'static str,
    /// The canonical data directory it serves, to refuse mixing two.
    data_dir: PathBuf,
    child: Child,
    /// SIGINT for PostgreSQL (fast shutdown), SIGTERM for Redis (save, exit).
    stop_signal: libc::c_int,
}

impl PrivateServices {
    /// Starts (or reuses, if already running from this data dir by another process) PostgreSQL.
    /// Returns the database URL for database `slipway` (created if missing), connecting over a unix socket.
    pub async fn start_postgres(&mut self, data_dir: &Path) -> Result<String> {
        let layout = Layout::prepare(data_dir).await?;
        let socket = layout.run.join(format!(".s.PGSQL.{PG_PORT}"));
        check_socket_path(&socket)?;
        let url = postgres_url(&layout.run);
        let log = layout.logs.join("postgres.log");

        if self.already_owned(Service::Postgres, &layout)? {
            let bins = find_postgres_binaries(&layout.pgdata).await?;
            ensure_database(&bins, &layout.run).await?;
            return Ok(url);
        }

        let bins = find_postgres_binaries(&layout.pgdata).await?;
        let run_as = postgres_identity().await?;
        if let Some(who) = run_as {
            check_traversable(&layout.data, who).await?;
        }

        // Hold the start lock until the server answers, so that a second
        // slipway process sees either no server or a ready one.
        let _lock = StartLock::acquire(&layout.run.join("postgres-start.lock"), "PostgreSQL").await?;

        let pid_file = layout.pgdata.join("postmaster.pid");
        match server_pid(&pid_file, &layout.pgdata, "postgres").await {
            PidState::Running(pid) => {
                wait_for_postgres(&bins, &layout.run, &socket, None, PG_START_TIMEOUT).await.map_err(|e| {
                    anyhow!(
                        "PostgreSQL (pid {pid}) is running from {} but does not answer on {}: {e}",
                        layout.pgdata.display(),
                        socket.display()
                    )
                })?;
                ensure_database(&bins, &layout.run).await?;
                info!("reusing private PostgreSQL in {} (pid {pid}, started by another process)", layout.pgdata.display());
                return Ok(url);
            }
            PidState::Stale(pid) => {
                // PostgreSQL itself refuses to start while the pid in its
                // lock file belongs to any live process, even an unrelated
                // one that inherited the number (typical after a container
                // restart), so a pid file pointing at a non-PostgreSQL
                // process has to go.
                warn!("removing stale {} (pid {pid} is not this PostgreSQL)", pid_file.display());
                tokio::fs::remove_file(&pid_file).await.with_context(|| format!("removing stale {}", pid_file.display()))?;
            }
            PidState::Absent => {
                // A pid file naming a dead process is fine: PostgreSQL
                // recognises it as stale and replaces it.
            }
        }

        prepare_postgres_dirs(&layout, &log, run_as).await?;
        if !tokio::fs::try_exists(layout.pgdata.join("PG_VERSION")).await.unwrap_or(false) {
            initdb(&bins, &layout.pgdata, &log, run_as).await?;
        }

        let log_file = open_log(&log, run_as).await?;
        let mut cmd = Command::new(&bins.postgres);
        cmd.arg("-D")
            .arg(&layout.pgdata)
            .arg("-k")
            .arg(quote_socket_dir(&layout.run))
            .args(["-c", "listen_addresses="])
            .args(["-c", &format!("port={PG_PORT}")])
            .args(["-c", "unix_socket_permissions=0700"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().with_context(|| format!("duplicating the handle of {}", log.display()))?)
            .stderr(log_file);
        postgres_child(&mut cmd, run_as);
        supervised(&mut cmd);
        let child = spawn_supervised(cmd).await.with_context(|| format!("starting {}", bins.postgres.display()))?;
        let mut owned = Owned { name: "PostgreSQL", data_dir: layout.data.clone(), child, stop_signal: libc::SIGINT };

        if let Err(e) = wait_for_postgres(&bins, &layout.run, &socket, Some(&mut owned.child), PG_START_TIMEOUT).await {
            // Do not leave a half-started server behind: stop it before
            // reporting, then show the log, which says why it failed.
            stop_owned(Some(owned)).await;
            bail!("PostgreSQL in {} did not start: {e}\n{}", layout.pgdata.display(), log_tail(&log).await);
        }
        let pid = owned.child.id().unwrap_or_default();
        // Owned from here on, so that stop() cleans up even if creating the
        // database fails.
        self.postgres = Some(owned);
        ensure_database(&bins, &layout.run).await?;
        info!("started private PostgreSQL in {} (pid {pid})", layout.pgdata.display());
        Ok(url)
    }

    /// Same for Redis; returns a URL the `redis` crate accepts for a unix socket:
    /// `redis+unix:///abs/path/redis.sock`.
    pub async fn start_redis(&mut self, data_dir: &Path) -> Result<String> {
        let layout = Layout::prepare(data_dir).await?;
        let socket = layout.run.join("redis.sock");
        check_socket_path(&socket)?;
        let url = format!("redis+unix://{}", percent_encode_path(&socket, true));
        let log = layout.logs.join("redis.log");

        if self.already_owned(Service::Redis, &layout)? {
            return Ok(url);
        }

        let redis_server = find_redis_server().await?;
        create_private_dir(&layout.redis).await?;

        let _lock = StartLock::acquire(&layout.run.join("redis-start.lock"), "Redis").await?;

        let pid_file = layout.run.join("redis.pid");
        match server_pid(&pid_file, &layout.redis, "redis").await {
            PidState::Running(pid) => {
                wait_for_redis(&socket, None, REDIS_START_TIMEOUT).await.map_err(|e| {
                    anyhow!("Redis (pid {pid}) is running from {} but does not answer on {}: {e}", layout.redis.display(), socket.display())
                })?;
                info!("reusing private Redis in {} (pid {pid}, started by another process)", layout.redis.display());
                return Ok(url);
            }
            // Redis overwrites its pid file and unlinks a leftover socket
            // when it starts, so neither a dead nor a foreign pid matters.
            PidState::Stale(_) | PidState::Absent => {}
        }

        let log_file = open_log(&log, None).await?;
        let mut cmd = Command::new(&redis_server);
        cmd.arg("--port")
            .arg("0")
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--unixsocketperm")
            .arg("700")
            .arg("--dir")
            .arg(&layout.redis)
            .arg("--appendonly")
            .arg("yes")
            .arg("--save")
            .arg("")
            .arg("--pidfile")
            .arg(&pid_file)
            .arg("--logfile")
            .arg(&log)
            .arg("--daemonize")
            .arg("no")
            .current_dir(&layout.redis)
            .stdin(Stdio::null())
            // Redis writes to its log file itself; this catches what it
            // prints before it has parsed its options.
            .stdout(log_file.try_clone().with_context(|| format!("duplicating the handle of {}", log.display()))?)
            .stderr(log_file);
        supervised(&mut cmd);
        let child = spawn_supervised(cmd).await.with_context(|| format!("starting {}", redis_server.display()))?;
        let mut owned = Owned { name: "Redis", data_dir: layout.data.clone(), child, stop_signal: libc::SIGTERM };

        if let Err(e) = wait_for_redis(&socket, Some(&mut owned.child), REDIS_START_TIMEOUT).await {
            stop_owned(Some(owned)).await;
            bail!("Redis in {} did not start: {e}\n{}", layout.redis.display(), log_tail(&log).await);
        }
        let pid = owned.child.id().unwrap_or_default();
        self.redis = Some(owned);
        info!("started private Redis in {} (pid {pid})", layout.redis.display());
        Ok(url)
    }

    /// Stops whatever this value started (not what it merely reused), cleanly: PostgreSQL with SIGINT
    /// (fast shutdown) then wait up to 30 s, Redis with SIGTERM (it saves) then wait; SIGKILL after the timeout.
    pub async fn stop(&mut self) {
        let postgres = self.postgres.take();
        let redis = self.redis.take();
        // The two are independent, so waiting for them together halves the
        // worst case.
        tokio::join!(stop_owned(postgres), stop_owned(redis));
    }

    /// Whether this value already runs the service, alive, for this data
    /// directory; `false` means the caller should go on to reuse or start
    /// one, and an error means this value runs it for another directory.
    fn already_owned(&mut self, service: Service, layout: &Layout) -> Result<bool> {
        let slot = match service {
            Service::Postgres => &mut self.postgres,
            Service::Redis => &mut self.redis,
        };
        let Some(owned) = slot else {
            return Ok(false);
        };
        if owned.data_dir != layout.data {
            bail!(
                "this PrivateServices already runs {} for {}; it cannot also run one for {}",
                owned.name,
                owned.data_dir.display(),
                layout.data.display()
            );
        }
        match owned.child.try_wait() {
            Ok(None) => Ok(true),
            Ok(Some(status)) => {
                warn!("private {} in {} had exited ({status}); starting it again", owned.name, owned.data_dir.display());
                *slot = None;
                Ok(false)
            }
            Err(e) => Err(e).context("checking on a server this process started"),
        }
    }
}

#[derive(Clone, Copy)]
enum Service {
    Postgres,
    Redis,
}

/// The directories under one data directory, all absolute.
struct Layout {
    data: PathBuf,
    pgdata: PathBuf,
    redis: PathBuf,
    run: PathBuf,
    logs: PathBuf,
}

impl Layout {
    /// Creates the data, run and log directories and returns canonical paths,
    /// because the servers get absolute paths and the URLs must be absolute.
    async fn prepare(data_dir: &Path) -> Result<Layout> {
        tokio::fs::create_dir_all(data_dir).await.with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let data =
            tokio::fs::canonicalize(data_dir).await.with_context(|| format!("resolving the data directory {}", data_dir.display()))?;
        let layout =
            Layout { pgdata: data.join("postgres"), redis: data.join("redis"), run: data.join("run"), logs: data.join("logs"), data };
        create_private_dir(&layout.run).await?;
        tokio::fs::create_dir_all(&layout.logs).await.with_context(|| format!("creating {}", layout.logs.display()))?;
        Ok(layout)
    }
}

/// Creates a directory with mode 0700, or tightens an existing one to 0700,
/// because the sockets in it are the only access control of both servers.
async fn create_private_dir(dir: &Path) -> Result<()> {
    match tokio::fs::create_dir(dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .with_context(|| format!("setting mode 0700 on {}", dir.display()))
}

/// The uid and gid PostgreSQL runs as when slipway runs as root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// `None` when slipway is not root (PostgreSQL runs as the current user);
/// otherwise the `postgres` system user, since PostgreSQL refuses root.
async fn postgres_identity() -> Result<Option<RunAs>> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = tokio::fs::read_to_string("/etc/passwd").await.context("reading /etc/passwd to find the `postgres` user")?;
    parse_passwd_user(&passwd, "postgres").map(Some).ok_or_else(|| {
        anyhow!(
            "slipway runs as root and PostgreSQL refuses to run as root, so it must run as the \
             `postgres` system user, but /etc/passwd has no such user; install the Debian package \
             `postgresql` (it creates the user) or run slipway as an unprivileged user"
        )
    })
}

/// Finds `name`'s uid and gid in the text of /etc/passwd.
fn parse_passwd_user(passwd: &str, name: &str) -> Option<RunAs> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(RunAs { uid, gid })
    })
}

/// Checks that `who` may enter `dir` and each of its parents, because
/// PostgreSQL running as that user must reach its data directory. A child
/// that changes uid from root loses its supplementary groups, so owner,
/// primary group and others are exactly the classes that apply.
async fn check_traversable(dir: &Path, who: RunAs) -> Result<()> {
    for ancestor in dir.ancestors() {
        let meta = tokio::fs::metadata(ancestor).await.with_context(|| format!("inspecting {}", ancestor.display()))?;
        let mode = meta.mode();
        let needed = if meta.uid() == who.uid {
            0o100
        } else if meta.gid() == who.gid {
            0o010
        } else {
            0o001
        };
        if mode & needed == 0 {
            bail!(
                "PostgreSQL runs as the `postgres` user (uid {}), which cannot enter {} \
                 (mode {:o}, owner uid {}, gid {}), so it could not reach its data under {}; \
                 make that directory traversable (e.g. `chmod o+x {}`) or choose a data \
                 directory elsewhere",
                who.uid,
                ancestor.display(),
                mode & 0o7777,
                meta.uid(),
                meta.gid(),
                dir.display(),
                ancestor.display()
            );
        }
    }
    Ok(())
}

async fn chown(path: &Path, who: RunAs) -> Result<()> {
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::os::unix::fs::chown(&owned, Some(who.uid), Some(who.gid)))
        .await
        .context("the chown task panicked")?
        .with_context(|| format!("giving {} to uid {}", path.display(), who.uid))
}

/// Creates PGDATA with the mode PostgreSQL demands and, as root, hands
/// PGDATA, the socket directory and the log file to the `postgres` user.
async fn prepare_postgres_dirs(layout: &Layout, log: &Path, run_as: Option<RunAs>) -> Result<()> {
    create_private_dir(&layout.pgdata).await?;
    if let Some(who) = run_as {
        chown(&layout.pgdata, who).await?;
        chown(&layout.run, who).await?;
        // The log file is opened by slipway and inherited, but owning it
        // lets the postgres user (and an operator acting as it) manage it.
        open_log(log, Some(who)).await?;
    }
    Ok(())
}

/// Opens a log file for appending, creating it if needed.
async fn open_log(path: &Path, owner: Option<RunAs>) -> Result<std::fs::File> {
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
        .with_context(|| format!("opening the log {}", path.display()))?;
    if let Some(who) = owner {
        chown(path, who).await?;
    }
    Ok(file.into_std().await)
}

/// The last lines of a log, for error messages: the reason a server did not
/// start is almost always there.
async fn log_tail(path: &Path) -> String {
    const TAIL_BYTES: u64 = 8 * 1024;
    const TAIL_LINES: usize = 25;
    let read = async {
        let mut file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        file.seek(io::SeekFrom::Start(len.saturating_sub(TAIL_BYTES))).await?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).await?;
        io::Result::Ok(bytes)
    };
    match read.await {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(TAIL_LINES);
            format!("last lines of {}:\n{}", path.display(), lines[start..].join("\n"))
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// Appends a command's output to a log, best effort: losing initdb's chatter
/// must not fail the start.
async fn append_to_log(path: &Path, chunks: &[&[u8]]) {
    let result = async {
        let mut file = tokio::fs::OpenOptions::new().create(true).append(true).open(path).await?;
        for chunk in chunks {
            file.write_all(chunk).await?;
        }
        file.flush().await
    }
    .await;
    if let Err(e) = result {
        warn!("could not append to {}: {e}", path.display());
    }
}

/// Unix socket paths have a hard length limit; a deep data directory would
/// otherwise fail with an obscure error from the server.
fn check_socket_path(socket: &Path) -> Result<()> {
    let len = socket.as_os_str().as_bytes().len();
    if len > MAX_SOCKET_PATH {
        bail!(
            "the socket path {} is {len} bytes long, over the {MAX_SOCKET_PATH}-byte limit of unix \
             sockets; choose a data directory with a shorter path",
            socket.display()
        );
    }
    Ok(())
}

/// Percent-encodes a path for a URL, keeping the unreserved characters (and
/// `/` when `keep_slash`), so that spaces, `%`, `&`, `?`, `#` or `:` in a data
/// directory cannot change how libpq or redis-rs split the URL.
fn percent_encode_path(path: &Path, keep_slash: bool) -> String {
    let mut out = String::new();
    for &byte in path.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || (keep_slash && byte == b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A libpq URL for the `slipway` database over the socket in `run_dir`,
/// e.g. `postgres://slipway@%2Fsrv%2Fslipway%2Frun:5432/slipway`. libpq
/// takes a percent-decoded host that starts with `/` as a socket directory.
/// This spelling is chosen over `postgres://slipway@/slipway?host=/srv/...`,
/// which libpq accepts too, because the `url` crate rejects an empty host
/// with a user (`EmptyHost`) but parses this one; and the explicit port keeps
/// a `PGPORT` in the environment from sending libpq to another socket name.
fn postgres_url(run_dir: &Path) -> String {
    format!("postgres://{PG_USER}@{}:{PG_PORT}/{PG_DATABASE}", percent_encode_path(run_dir, false))
}

/// `unix_socket_directories` is a comma-separated list in which double
/// quotes protect a path containing commas or spaces.
fn quote_socket_dir(dir: &Path) -> String {
    format!("\"{}\"", dir.to_string_lossy().replace('"', "\"\""))
}

/// The PostgreSQL programs slipway runs, taken from one installation so
/// that initdb and postgres always match.
struct PgBinaries {
    initdb: PathBuf,
    postgres: PathBuf,
    psql: PathBuf,
}

async fn is_executable(path: &Path) -> bool {
    match tokio::fs::metadata(path).await {
        Ok(meta) => meta.is_file() && meta.mode() & 0o111 != 0,
        Err(_) => false,
    }
}

/// Looks `name` up in PATH, then in `extra` directories.
async fn find_program(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    let extra_dirs = extra.iter().map(PathBuf::from);
    for dir in path_dirs.into_iter().chain(extra_dirs) {
        let candidate = dir.join(name);
        if candidate.is_absolute() && is_executable(&candidate).await {
            return Some(candidate);
        }
    }
    None
}

/// Parses a Debian PostgreSQL version directory name ("15", "9.6").
fn parse_pg_version(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// Debian installs each major version in `/usr/lib/postgresql/<N>/bin` and
/// puts only client wrappers on PATH, so that tree is searched first, newest
/// version first, except that an existing cluster needs its own version.
async fn find_postgres_binaries(pgdata: &Path) -> Result<PgBinaries> {
    const ROOT: &str = "/usr/lib/postgresql";
    let cluster_version = tokio::fs::read_to_string(pgdata.join("PG_VERSION")).await.ok().map(|v| v.trim().to_string());

    let mut versions: Vec<(Vec<u32>, PathBuf)> = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(ROOT).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(version) = parse_pg_version(&name) {
                versions.push((version, entry.path().join("bin")));
            }
        }
    }
    versions.sort_by(|a, b| b.0.cmp(&a.0));

    if let Some(wanted) = &cluster_version {
        if let Some(wanted_version) = parse_pg_version(wanted) {
            if let Some(pos) = versions.iter().position(|(v, _)| *v == wanted_version) {
                let entry = versions.remove(pos);
                versions.insert(0, entry);
            } else if !versions.is_empty() {
                bail!(
                    "{} holds a PostgreSQL {wanted} cluster, but only other PostgreSQL versions are \
                     installed under {ROOT}; install the Debian package `postgresql-{wanted}`",
                    pgdata.display()
                );
            }
        }
    }

    for (_, bin) in &versions {
        let initdb = bin.join("initdb");
        let postgres = bin.join("postgres");
        if is_executable(&initdb).await && is_executable(&postgres).await {
            let psql = bin.join("psql");
            let psql =
                if is_executable(&psql).await { psql } else { find_program("psql", &[]).await.ok_or_else(|| missing_pg_binary("psql"))? };
            return Ok(PgBinaries { initdb, postgres, psql });
        }
    }

    Ok(PgBinaries {
        initdb: find_program("initdb", &[]).await.ok_or_else(|| missing_pg_binary("initdb"))?,
        postgres: find_program("postgres", &[]).await.ok_or_else(|| missing_pg_binary("postgres"))?,
        psql: find_program("psql", &[]).await.ok_or_else(|| missing_pg_binary("psql"))?,
    })
}

fn missing_pg_binary(name: &str) -> anyhow::Error {
    anyhow!(
        "PostgreSQL's `{name}` was found neither in /usr/lib/postgresql/<version>/bin nor on PATH; \
         install the Debian package `postgresql` (apt-get install postgresql)"
    )
}

async fn find_redis_server() -> Result<PathBuf> {
    find_program("redis-server", &["/usr/bin", "/usr/sbin", "/usr/local/bin"]).await.ok_or_else(|| {
        anyhow!(
            "`redis-server` was found neither on PATH nor in /usr/bin or /usr/sbin; install the \
                 Debian package `redis-server` (apt-get install redis-server)"
        )
    })
}

/// Settings every PostgreSQL program gets: the right user, a working
/// directory that user can always enter (slipway's own may be /root), and no
/// PG* variables, which could point libpq or initdb elsewhere (PGHOSTADDR,
/// for one, overrides the socket given on the command line).
fn postgres_child(cmd: &mut Command, run_as: Option<RunAs>) {
    cmd.current_dir("/");
    for (key, _) in std::env::vars_os() {
        if key.as_bytes().starts_with(b"PG") {
            cmd.env_remove(key);
        }
    }
    if let Some(who) = run_as {
        cmd.uid(who.uid).gid(who.gid);
    }
}

/// Makes a long-lived server child: its own process group, so a terminal's
/// Ctrl-C reaches only slipway, which stops it in order; not killed when the
/// handle drops, because stop() does that properly; and sent SIGTERM by the
/// kernel if slipway dies without stopping it.
fn supervised(cmd: &mut Command) {
    let parent = libc::pid_t::try_from(std::process::id()).expect("Linux pids fit in pid_t");
    cmd.kill_on_drop(false).process_group(0);
    // SAFETY: the closure runs between fork and exec, so it may only make
    // async-signal-safe calls and must not allocate: prctl and getppid are
    // plain system calls, and the errors are built from raw errno values.
    // Rust runs it after the uid and gid changes, which matters because a
    // credential change would clear the death signal again.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) == -1
            {
                return Err(io::Error::last_os_error());
            }
            // If slipway died between fork and prctl, no signal will come:
            // refuse to run orphaned from the start.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

type SpawnJob = Box<dyn FnOnce() + Send + 'static>;

/// One thread that lives as long as the process and forks every server.
/// PR_SET_PDEATHSIG fires when the forking *thread* exits, and runtime
/// threads can come and go (blocking-pool threads, block_in_place), which
/// would kill a server for no reason.
fn spawner() -> &'static std::sync::mpsc::Sender<SpawnJob> {
    static SPAWNER: OnceLock<std::sync::mpsc::Sender<SpawnJob>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("slipway-spawner".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("the OS must let slipway start one helper thread");
        tx
    })
}

/// Spawns `cmd` on the spawner thread, registered with the caller's runtime
/// so that the child can be awaited as usual.
async fn spawn_supervised(mut cmd: Command) -> io::Result<Child> {
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawner()
        .send(Box::new(move || {
            let _runtime = handle.enter();
            // The receiver only goes away if the caller was cancelled; the
            // child then runs unowned until slipway exits, as documented.
            let _ = tx.send(cmd.spawn());
        }))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    rx.await.map_err(|_| io::Error::other("the spawner thread dropped the request"))?
}

/// Stops a server this value started: the polite signal, up to 30 s, then
/// SIGKILL.
async fn stop_owned(owned: Option<Owned>) {
    let Some(mut owned) = owned else {
        return;
    };
    let dir = owned.data_dir.display().to_string();
    match owned.child.try_wait() {
        Ok(Some(status)) => {
            warn!("private {} in {dir} had already exited ({status})", owned.name);
            return;
        }
        Ok(None) => {}
        Err(e) => warn!("could not check on private {} in {dir}: {e}", owned.name),
    }
    if let Some(pid) = owned.child.id() {
        let pid = libc::pid_t::try_from(pid).expect("Linux pids fit in pid_t");
        // SAFETY: kill has no memory-safety preconditions; the child is not
        // reaped yet (we hold its handle), so the pid is still ours.
        unsafe { libc::kill(pid, owned.stop_signal) };
    }
    match timeout(STOP_TIMEOUT, owned.child.wait()).await {
        Ok(Ok(status)) => info!("stopped private {} in {dir} ({status})", owned.name),
        Ok(Err(e)) => warn!("waiting for private {} in {dir} failed: {e}", owned.name),
        Err(_) => {
            warn!("private {} in {dir} did not stop within {} s; killing it", owned.name, STOP_TIMEOUT.as_secs());
            if let Err(e) = owned.child.kill().await {
                warn!("killing private {} in {dir} failed: {e}", owned.name);
            }
        }
    }
}

/// What a server's pid file says.
enum PidState {
    /// No pid file, or it names a process that no longer exists.
    Absent,
    /// The pid is alive and is this server, running from `expected_cwd`.
    Running(i32),
    /// The pid is alive but is some other process that inherited the number.
    Stale(i32),
}

/// Reads a pid file and decides whether its server is running. Both servers
/// change into their data directory, so a live pid whose working directory
/// is that directory is the server; where /proc does not say, its command
/// name is the next best evidence.
async fn server_pid(pid_file: &Path, expected_cwd: &Path, comm_hint: &str) -> PidState {
    let Ok(text) = tokio::fs::read_to_string(pid_file).await else {
        return PidState::Absent;
    };
    let Some(pid) = text.lines().next().and_then(|line| line.trim().parse::<i32>().ok()).filter(|pid| *pid > 0) else {
        return PidState::Absent;
    };
    if !pid_alive(pid) {
        return PidState::Absent;
    }
    if let Ok(cwd) = tokio::fs::read_link(format!("/proc/{pid}/cwd")).await {
        // /proc shows the resolved path, so a symlinked directory must be
        // resolved too before comparing, or a live server would look stale.
        let expected = tokio::fs::canonicalize(expected_cwd).await.unwrap_or_else(|_| expected_cwd.to_path_buf());
        return if cwd == expected { PidState::Running(pid) } else { PidState::Stale(pid) };
    }
    match tokio::fs::read_to_string(format!("/proc/{pid}/comm")).await {
        Ok(comm) if !comm.contains(comm_hint) => PidState::Stale(pid),
        _ => PidState::Running(pid),
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return true;
    }
    // EPERM means it exists but belongs to someone else.
    io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A `flock` on a file in the run directory, held while starting a server,
/// so that concurrent slipway processes start it once.
struct StartLock {
    _file: std::fs::File,
}

impl StartLock {
    async fn acquire(path: &Path, what: &str) -> Result<StartLock> {
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .await
            .with_context(|| format!("opening the lock file {}", path.display()))?
            .into_std()
            .await;
        let deadline = Instant::now() + START_LOCK_TIMEOUT;
        loop {
            // SAFETY: the descriptor belongs to `file`, which outlives the call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Ok(StartLock { _file: file });
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => {}
                _ => return Err(err).with_context(|| format!("locking {}", path.display())),
            }
            if Instant::now() >= deadline {
                bail!("another process has been starting {what} with {} for over {} s", path.display(), START_LOCK_TIMEOUT.as_secs());
            }
            sleep(POLL_INTERVAL).await;
        }
    }
}

/// Runs one SQL statement through psql over the socket and returns its
/// unaligned, tuples-only output.
async fn psql(bins: &PgBinaries, run_dir: &Path, database: &str, sql: &str) -> Result<String> {
    let mut cmd = Command::new(&bins.psql);
    cmd.args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(run_dir)
        .args(["-p", &PG_PORT.to_string(), "-U", PG_USER, "-d", database, "-c", sql])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    postgres_child(&mut cmd, None);
    let output = timeout(PSQL_TIMEOUT, cmd.output())
        .await
        .map_err(|_| anyhow!("psql did not finish within {} s", PSQL_TIMEOUT.as_secs()))?
        .with_context(|| format!("running {}", bins.psql.display()))?;
    if !output.status.success() {
        bail!("psql failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Waits until PostgreSQL accepts a query: the socket file appears early,
/// but connections are refused until recovery is over, so only a real query
/// proves it is ready.
async fn wait_for_postgres(bins: &PgBinaries, run_dir: &Path, socket: &Path, mut child: Option<&mut Child>, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    let mut last_error = String::from("its socket never appeared");
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Some(status) = child.try_wait().context("checking on PostgreSQL")? {
                bail!("PostgreSQL exited during start-up ({status})");
            }
        }
        if tokio::fs::try_exists(socket).await.unwrap_or(false) {
            match psql(bins, run_dir, "postgres", "select 1").await {
                Ok(out) if out == "1" => return Ok(()),
                Ok(out) => last_error = format!("`select 1` returned {out:?}"),
                Err(e) => last_error = format!("{e:#}"),
            }
        }
        if Instant::now() >= deadline {
            bail!("it did not accept connections within {} s (last error: {last_error})", limit.as_secs());
        }
        sleep(POLL_INTERVAL).await;
    }
}

/// Creates the `slipway` database unless it exists.
async fn ensure_database(bins: &PgBinaries, run_dir: &Path) -> Result<()> {
    let exists_sql = format!("select 1 from pg_database where datname = '{PG_DATABASE}'");
    if psql(bins, run_dir, "postgres", &exists_sql).await? == "1" {
        return Ok(());
    }
    if let Err(e) = psql(bins, run_dir, "postgres", &format!("create database {PG_DATABASE}")).await {
        // Another process may have created it between the check and here.
        if psql(bins, run_dir, "postgres", &exists_sql).await? != "1" {
            return Err(e).context(format!("creating the database `{PG_DATABASE}`"));
        }
    }
    info!("created database `{PG_DATABASE}` in private PostgreSQL");
    Ok(())
}

/// Creates the cluster. `C.UTF-8` gives UTF-8 text with byte-order sorting
/// everywhere Debian runs; older systems lack it, so the environment's
/// locale and finally plain C are the fallbacks.
async fn initdb(bins: &PgBinaries, pgdata: &Path, log: &Path, run_as: Option<RunAs>) -> Result<()> {
    let attempts: [&[&str]; 3] = [&["--locale=C.UTF-8"], &[], &["--no-locale"]];
    let mut failures = Vec::new();
    for extra in attempts {
        let mut cmd = Command::new(&bins.initdb);
        cmd.arg("-D").arg(pgdata).args(["-U", PG_USER, "--auth=trust", "-E", "UTF8"]).args(extra).stdin(Stdio::null()).kill_on_drop(true);
        postgres_child(&mut cmd, run_as);
        let output = cmd.output().await.with_context(|| format!("running {}", bins.initdb.display()))?;
        append_to_log(log, &[&output.stdout, &output.stderr]).await;
        if output.status.success() {
            info!("initialised a PostgreSQL cluster in {}", pgdata.display());
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().take(3).collect::<Vec<_>>();
        failures.push(format!(
            "initdb {} ({}): {}",
            if extra.is_empty() { "(environment locale)".to_string() } else { extra.join(" ") },
            output.status,
            last.into_iter().rev().collect::<Vec<_>>().join(" / ")
        ));
    }
    bail!("initdb could not create a cluster in {}:\n{}", pgdata.display(), failures.join("\n"))
}

/// Sends PING and expects +PONG. Redis answers -LOADING while it replays its
/// append-only file, which counts as not ready.
async fn redis_ping(socket: &Path) -> Result<()> {
    let exchange = async {
        let mut stream = UnixStream::connect(socket).await?;
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").await?;
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        while !reply.ends_with(b"\r\n") && reply.len() < 4096 {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            reply.extend_from_slice(&buf[..n]);
        }
        io::Result::Ok(reply)
    };
    let reply = timeout(Duration::from_secs(2), exchange).await.map_err(|_| anyhow!("no reply to PING within 2 s"))??;
    if reply.starts_with(b"+PONG") {
        Ok(())
    } else {
        bail!("PING got {:?}", String::from_utf8_lossy(&reply).trim())
    }
}

async fn wait_for_redis(socket: &Path, mut child: Option<&mut Child>, limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(child) = child.as_deref_mut() {
            if let Some(status) = child.try_wait().context("checking on Redis")? {
                bail!("Redis exited during start-up ({status})");
            }
        }
        let last_error = match redis_ping(socket).await {
            Ok(()) => return Ok(()),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("it did not answer PING within {} s (last error: {last_error})", limit.as_secs());
        }
        sleep(POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir that is removed, with any
    /// server still running from it, when the test ends, even by panic.
    struct TempDataDir {
        root: PathBuf,
    }

    impl TempDataDir {
        fn new(tag: &str) -> TempDataDir {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            // The space checks that paths are quoted and URL-encoded.
            let root = std::env::temp_dir().join(format!("slipway svc-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).unwrap();
            TempDataDir { root }
        }

        fn data(&self) -> PathBuf {
            self.root.join("data")
        }
    }

    impl Drop for TempDataDir {
        fn drop(&mut self) {
            // A failed test may leave servers behind; stop them hard so the
            // directory can go.
            for (pid_file, signal) in
                [(self.data().join("postgres/postmaster.pid"), libc::SIGQUIT), (self.data().join("run/redis.pid"), libc::SIGKILL)]
            {
                if let Some(pid) =
                    std::fs::read_to_string(&pid_file).ok().and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
                {
                    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
                    if cwd.starts_with(&self.root) {
                        unsafe { libc::kill(pid, signal) };
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    async fn psql_url(url: &str, sql: &str) -> String {
        let bins = find_postgres_binaries(Path::new("/nonexistent")).await.unwrap();
        let mut cmd = Command::new(&bins.psql);
        cmd.args(["-X", "-w", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]).arg(url).args(["-c", sql]);
        postgres_child(&mut cmd, None);
        let out = cmd.output().await.unwrap();
        assert!(out.status.success(), "psql {url} -c {sql:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The socket path of a `redis+unix://` URL, decoded the way redis-rs
    /// does (url::Url::to_file_path percent-decodes).
    fn redis_socket(url: &str) -> PathBuf {
        let encoded = url.strip_prefix("redis+unix://").expect("a redis+unix URL");
        let bytes = encoded.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        PathBuf::from(std::ffi::OsStr::from_bytes(&out))
    }

    /// Sends one command and returns the raw reply.
    async fn redis_command(socket: &Path, args: &[&str]) -> String {
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        let mut stream = UnixStream::connect(socket).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "Redis closed the connection");
            reply.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&reply).to_string();
            let complete = match text.as_bytes()[0] {
                b'$' => {
                    let header_end = text.find("\r\n");
                    match header_end {
                        Some(end) => {
                            let len: i64 = text[1..end].parse().unwrap();
                            len < 0 || text.len() >= end + 2 + len as usize + 2
                        }
                        None => false,
                    }
                }
                _ => text.ends_with("\r\n"),
            };
            if complete {
                return text;
            }
        }
    }

    fn uid_of(pid: u32) -> u32 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn starts_postgres_and_redis_then_reuses_them_and_keeps_data_across_restarts() {
        let dir = TempDataDir::new("lifecycle");
        let data = dir.data();

        // First start: this value owns both servers.
        let mut first = PrivateServices::default();
        let pg_url = first.start_postgres(&data).await.unwrap();
        let redis_url = first.start_redis(&data).await.unwrap();
        println!("postgres url: {pg_url}\nredis url: {redis_url}");
        assert!(pg_url.starts_with("postgres://slipway@%2F"), "{pg_url}");
        assert!(pg_url.ends_with(":5432/slipway"), "{pg_url}");
        assert!(pg_url.contains("%20"), "the space in the path is encoded: {pg_url}");
        assert!(redis_url.starts_with("redis+unix:///"));
        let pg_pid = first.postgres.as_ref().unwrap().child.id().unwrap();
        let redis_pid = first.redis.as_ref().unwrap().child.id().unwrap();

        // The layout is as documented, with a private socket directory.
        let canonical = std::fs::canonicalize(&data).unwrap();
        assert!(canonical.join("postgres/PG_VERSION").exists());
        assert!(canonical.join("logs/postgres.log").exists());
        assert!(canonical.join("logs/redis.log").exists());
        assert!(canonical.join("redis").is_dir());
        let run_mode = std::fs::metadata(canonical.join("run")).unwrap().mode() & 0o777;
        assert_eq!(run_mode, 0o700);
        if unsafe { libc::geteuid() } == 0 {
            let postgres = postgres_identity().await.unwrap().unwrap();
            assert_eq!(uid_of(pg_pid), postgres.uid, "PostgreSQL does not run as root");
        }

        // The URL works for libpq, reaches the `slipway` database, and TCP is off.
        assert_eq!(psql_url(&pg_url, "select current_database()").await, "slipway");
        assert_eq!(psql_url(&pg_url, "show listen_addresses").await, "");
        psql_url(&pg_url, "create table survives (x int); insert into survives values (42)").await;

        // The Redis socket answers, and a key is written for the restart check.
        let socket = redis_socket(&redis_url);
        assert_eq!(socket, canonical.join("run/redis.sock"));
        redis_ping(&socket).await.unwrap();
        assert_eq!(redis_command(&socket, &["SET", "mark", "hello"]).await, "+OK\r\n");

        // A second value on the same directory reuses both and owns neither.
        let mut second = PrivateServices::default();
        assert_eq!(second.start_postgres(&data).await.unwrap(), pg_url);
        assert_eq!(second.start_redis(&data).await.unwrap(), redis_url);
        assert!(second.postgres.is_none() && second.redis.is_none());
        second.stop().await;
        assert!(pid_alive(pg_pid as i32) && pid_alive(redis_pid as i32));
        assert_eq!(psql_url(&pg_url, "select x from survives").await, "42");
        redis_ping(&socket).await.unwrap();

        // Starting again on the owning value is harmless.
        assert_eq!(first.start_postgres(&data).await.unwrap(), pg_url);
        assert_eq!(first.postgres.as_ref().unwrap().child.id(), Some(pg_pid));

        // Stopping the owner ends both processes and their pid files.
        first.stop().await;
        assert!(!pid_alive(pg_pid as i32), "PostgreSQL is gone");
        assert!(!pid_alive(redis_pid as i32), "Redis is gone");
        assert!(!canonical.join("postgres/postmaster.pid").exists());
        assert!(!canonical.join("run/redis.pid").exists());
        assert!(redis_ping(&socket).await.is_err());

        // Stale pid files must not block a restart: one naming a live
        // process that is not PostgreSQL (this test), one naming no process.
        std::fs::write(
            canonical.join("postgres/postmaster.pid"),
            format!("{}\n{}\n", std::process::id(), canonical.join("postgres").display()),
        )
        .unwrap();
        let dead_pid = (1_000_000..1_100_000).find(|p| !pid_alive(*p)).unwrap();
        std::fs::write(canonical.join("run/redis.pid"), format!("{dead_pid}\n")).unwrap();

        // A restart finds the old data: no initdb, the table and key survive.
        let mut third = PrivateServices::default();
        assert_eq!(third.start_postgres(&data).await.unwrap(), pg_url);
        assert_eq!(third.start_redis(&data).await.unwrap(), redis_url);
        assert!(third.postgres.is_some() && third.redis.is_some());
        assert_eq!(psql_url(&pg_url, "select x from survives").await, "42");
        assert_eq!(redis_command(&socket, &["GET", "mark"]).await, "$5\r\nhello\r\n");
        third.stop().await;
    }

    #[tokio::test]
    async fn refuses_a_data_dir_the_postgres_user_cannot_reach() {
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: only root hands PostgreSQL to the postgres user");
            return;
        }
        let dir = TempDataDir::new("private-parent");
        std::fs::set_permissions(&dir.root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = PrivateServices::default().start_postgres(&dir.data()).await.unwrap_err().to_string();
        let root = std::fs::canonicalize(&dir.root).unwrap();
        assert!(err.contains(&format!("cannot enter {} ", root.display())), "the error names the blocking directory: {err}");
        assert!(!dir.data().join("postgres/PG_VERSION").exists());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_the_log_tail_when_postgres_cannot_start() {
        let dir = TempDataDir::new("broken");
        let data = dir.data();
        let mut services = PrivateServices::default();
        services.start_postgres(&data).await.unwrap();
        services.stop().await;

        // A syntax error in the configuration makes the server exit at once.
        let conf = data.join("postgres/postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str("\nthis line is not valid\n");
        std::fs::write(&conf, text).unwrap();

        let err = format!("{:#}", services.start_postgres(&data).await.unwrap_err());
        assert!(err.contains("exited during start-up"), "{err}");
        assert!(err.contains("postgres.log"), "the error shows the log: {err}");
        assert!(err.contains("syntax error"), "the log explains why: {err}");
        assert!(services.postgres.is_none(), "a failed start is not owned");
    }

    #[test]
    fn encodes_paths_so_urls_keep_their_shape() {
        assert_eq!(percent_encode_path(Path::new("/srv/my data/a&b?c#d%e:f"), true), "/srv/my%20data/a%26b%3Fc%23d%25e%3Af");
        assert_eq!(postgres_url(Path::new("/srv/slipway/run")), "postgres://slipway@%2Fsrv%2Fslipway%2Frun:5432/slipway");
        assert_eq!(quote_socket_dir(Path::new("/a b/run")), "\"/a b/run\"");
    }

    #[test]
    fn reads_uid_and_gid_from_passwd_lines() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(parse_passwd_user(passwd, "postgres"), Some(RunAs { uid: 101, gid: 104 }));
        assert_eq!(parse_passwd_user(passwd, "post"), None);
    }

    #[test]
    fn sorts_postgres_versions_numerically() {
        let mut versions = vec![parse_pg_version("9.6"), parse_pg_version("15"), parse_pg_version("10")];
        versions.sort();
        assert_eq!(versions, vec![Some(vec![9, 6]), Some(vec![10]), Some(vec![15])]);
        assert_eq!(parse_pg_version("main"), None);
    }

    #[test]
    fn rejects_socket_paths_longer_than_the_unix_limit() {
        let long = PathBuf::from(format!("/{}/redis.sock", "d".repeat(120)));
        let err = check_socket_path(&long).unwrap_err().to_string();
        assert!(err.contains("107-byte limit"), "{err}");
        assert!(check_socket_path(Path::new("/srv/slipway/run/redis.sock")).is_ok());
    }
}
