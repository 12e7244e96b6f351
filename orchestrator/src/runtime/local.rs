//! The local runtime: each app's current revision runs as one sandboxed instance on this machine.
//!
//! Lifecycle of an app (one state per app, the instance behind it may change):
//!
//! ```text
//!   deploy ──► Starting ──healthy──► Running ──exits──► Crashed ──backoff──► (restart) ──healthy──► Running
//!                 │                     │                   ▲                     │
//!                 └──unhealthy: the old instance keeps serving; the deploy fails  └──unhealthy──┘
//!   stop ──► (removed)
//! ```
//!
//! A new revision starts beside the old one and takes traffic only after its health check passes;
//! then the old instance is stopped (no downtime). Every app listens on the same port inside its
//! own network namespace; the gateway connects into that namespace (`Resolver::resolve` returns
//! `Upstream::InNetns`). Output goes to a bounded ring per app, a follow channel, and a file per
//! revision (capped).
//!
//! It does not scale past one instance or to zero (the scale-to-zero issue adds that).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, oneshot, watch};

use super::{AppSpec, AppStatus, RuntimeError};
use crate::gateway::{Resolution, Resolver, UnavailableReason, Upstream};
use crate::sandbox::{Bind, HostSupport, Limits, Netns, Network, Sandbox, SandboxSpec};
use crate::template::Start;

/// Where the platform's binary is mounted inside sandboxes (for `serve-static`).
const STATIC_SERVER_MOUNT: &str = "/opt/slipway/slipway";

#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// The port every app listens on inside its own network namespace.
    pub app_port: u16,
    /// The `slipway` binary, run as `serve-static` for static apps.
    pub static_server: PathBuf,
    /// Per-revision log files go to `logs_dir/<app>/r<revision>.log`.
    pub logs_dir: PathBuf,
    /// Lines kept in memory per app.
    pub log_lines: usize,
    /// Bytes written to one revision's log file before it is cut.
    pub log_file_bytes: u64,
    /// Longest wait between two restarts of a crashing app.
    pub max_restart_backoff: Duration,
}

impl LocalConfig {
    pub fn new(static_server: PathBuf, logs_dir: PathBuf) -> Self {
        Self {
            app_port: 8080,
            static_server,
            logs_dir,
            log_lines: 2000,
            log_file_bytes: 10 * 1024 * 1024,
            max_restart_backoff: Duration::from_secs(60),
        }
    }
}

/// Delay before restart number `n_restarts + 1`: 1 s, 2 s, 4 s, … capped.
pub fn restart_backoff(n_restarts: u32, max: Duration) -> Duration {
    Duration::from_secs(1u64 << n_restarts.min(16)).min(max)
}

/// Bounded lines of output with a follow channel.
pub struct LogRing {
    lines: Mutex<VecDeque<String>>,
    capacity: usize,
    follow: broadcast::Sender<String>,
}

impl LogRing {
    fn new(capacity: usize) -> Self {
        Self { lines: Mutex::new(VecDeque::with_capacity(capacity.min(256))), capacity, follow: broadcast::channel(1024).0 }
    }

    fn push(&self, line: String) {
        let mut lines = self.lines.lock().expect("log ring lock is never poisoned");
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        let _ = self.follow.send(line);
    }

    pub fn tail(&self, n_lines: usize) -> Vec<String> {
        let lines = self.lines.lock().expect("log ring lock is never poisoned");
        lines.iter().skip(lines.len().saturating_sub(n_lines)).cloned().collect()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.follow.subscribe()
    }
}

struct Instance {
    id: u64,
    revision: i32,
    netns: Netns,
    netns_path: PathBuf,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    exited: watch::Receiver<Option<String>>,
}

impl Instance {
    fn stop(&self) {
        if let Some(kill) = self.kill.lock().expect("kill lock is never poisoned").take() {
            let _ = kill.send(());
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Starting,
    Running,
    Crashed,
}

struct AppEntry {
    spec: Arc<AppSpec>,
    current: Option<Arc<Instance>>,
    state: State,
    restarts: u32,
    last_exit: Option<String>,
    /// Bumped by every deploy and stop, so a restart loop of an older deploy gives up.
    generation: u64,
    logs: Arc<LogRing>,
}

pub struct LocalRuntime {
    host: HostSupport,
    config: LocalConfig,
    apps: Mutex<HashMap<String, AppEntry>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl LocalRuntime {
    pub fn new(host: HostSupport, config: LocalConfig) -> Arc<Self> {
        Arc::new(Self { host, config, apps: Mutex::new(HashMap::new()), next_id: std::sync::atomic::AtomicU64::new(1) })
    }

    fn apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppEntry>> {
        self.apps.lock().expect("apps lock is never poisoned")
    }

    /// The app's log ring (created empty if the app has none yet).
    pub fn logs(&self, app: &str) -> Option<Arc<LogRing>> {
        self.apps().get(app).map(|entry| entry.logs.clone())
    }

    pub fn status(&self, app: &str) -> AppStatus {
        match self.apps().get(app) {
            None => AppStatus { state: "stopped", revision: None, instances: 0, restarts: 0, last_exit: None },
            Some(entry) => AppStatus {
                state: match entry.state {
                    State::Starting => "starting",
                    State::Running => "running",
                    State::Crashed => "crashed",
                },
                revision: entry.current.as_ref().map(|i| i.revision).or(Some(entry.spec.revision)),
                instances: usize::from(entry.current.is_some() && entry.state == State::Running),
                restarts: entry.restarts,
                last_exit: entry.last_exit.clone(),
            },
        }
    }

    /// Starts `spec` beside whatever runs now, waits for its health check, then switches traffic
    /// and stops the old instance. On failure the old instance keeps serving.
    pub async fn deploy(self: &Arc<Self>, spec: AppSpec) -> Result<(), RuntimeError> {
        if matches!(spec.start, Start::Terminal { .. }) {
            return Err(RuntimeError::NotAServer);
        }
        let spec = Arc::new(spec);
        let logs = {
            let mut apps = self.apps();
            let entry = apps.entry(spec.app.clone()).or_insert_with(|| AppEntry {
                spec: spec.clone(),
                current: None,
                state: State::Starting,
                restarts: 0,
                last_exit: None,
                generation: 0,
                logs: Arc::new(LogRing::new(self.config.log_lines)),
            });
            entry.generation += 1;
            entry.logs.clone()
        };
        logs.push(format!("[slipway] starting revision {}", spec.revision));
        let instance = self.start_instance(&spec, &logs).await?;
        if let Err(error) = self.wait_healthy(&spec, &instance).await {
            instance.stop();
            let mut apps = self.apps();
            if let Some(entry) = apps.get_mut(&spec.app) {
                if entry.current.is_none() {
                    apps.remove(&spec.app);
                }
            }
            return Err(error);
        }
        let old = {
            let mut apps = self.apps();
            let entry = apps.get_mut(&spec.app).expect("the entry was created above and only stop removes it");
            entry.spec = spec.clone();
            entry.state = State::Running;
            entry.restarts = 0;
            entry.last_exit = None;
            entry.current.replace(instance.clone())
        };
        logs.push(format!("[slipway] revision {} is live", spec.revision));
        self.clone().watch_instance(spec.app.clone(), instance);
        if let Some(old) = old {
            // In-flight requests on the old instance get a moment to finish before it stops.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                old.stop();
            });
        }
        Ok(())
    }

    /// Stops the app and forgets it.
    pub async fn stop(&self, app: &str) {
        let removed = self.apps().remove(app);
        if let Some(entry) = removed {
            if let Some(instance) = entry.current {
                instance.stop();
                let mut exited = instance.exited.clone();
                let _ = tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some)).await;
            }
        }
    }

    /// Every app's name and status, for `slipway status` and the admin view.
    pub fn apps_status(&self) -> Vec<(String, AppStatus)> {
        let names: Vec<String> = self.apps().keys().cloned().collect();
        names
            .into_iter()
            .map(|name| {
                let status = self.status(&name);
                (name, status)
            })
            .collect()
    }

    fn sandbox_spec(&self, spec: &AppSpec, instance_id: u64) -> SandboxSpec {
        let port = self.config.app_port;
        let mut env: Vec<(String, String)> = vec![
            ("HOME".to_owned(), "/tmp".to_owned()),
            ("PATH".to_owned(), "/app/.venv/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("HOST".to_owned(), "0.0.0.0".to_owned()),
        ];
        if let Some(port_env) = &spec.port_env {
            env.push((port_env.clone(), port.to_string()));
        }
        env.extend(spec.env.iter().cloned());
        let mut extra_binds = Vec::new();
        let argv = match &spec.start {
            Start::Server { argv } => argv.clone(),
            Start::Static { root, spa_fallback } => {
                extra_binds.push(Bind { source: self.config.static_server.clone(), dest: STATIC_SERVER_MOUNT.to_owned(), writable: false });
                let mut argv = vec![
                    STATIC_SERVER_MOUNT.to_owned(),
                    "serve-static".to_owned(),
                    "--root".to_owned(),
                    format!("/app/{}", root.trim_start_matches('/')),
                    "--port".to_owned(),
                    port.to_string(),
                ];
                if *spa_fallback {
                    argv.push("--spa".to_owned());
                }
                argv
            }
            Start::Terminal { argv } => argv.clone(),
        };
        SandboxSpec {
            name: format!("app-{}-r{}-i{instance_id}", spec.app, spec.revision),
            app_dir: spec.app_dir.clone(),
            app_writable: false,
            data_dir: Some(spec.data_dir.clone()),
            extra_binds,
            argv,
            env,
            workdir: "/app".to_owned(),
            limits: Limits {
                memory_bytes: u64::from(spec.resources.memory_mb.max(32)) * 1024 * 1024,
                cpu_millis: spec.resources.cpu_millicores.max(50),
                max_pids: spec.resources.max_processes.max(16),
                timeout: None,
            },
            network: Network::LoopbackOnly,
            uid: spec.uid,
            gid: spec.gid,
        }
    }

    async fn start_instance(&self, spec: &Arc<AppSpec>, logs: &Arc<LogRing>) -> Result<Arc<Instance>, RuntimeError> {
        let instance_id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let sandbox_spec = self.sandbox_spec(spec, instance_id);
        let mut sandbox = Sandbox::spawn(&sandbox_spec, &self.host).await?;
        let netns_path = sandbox.netns_path();
        let netns = match sandbox.netns() {
            Some(netns) => netns.clone(),
            None => Netns::open(&netns_path).map_err(|e| RuntimeError::Unhealthy {
                reason: format!("cannot open the app's network namespace: {e}"),
                log_tail: Vec::new(),
            })?,
        };
        let file = self.log_file(spec).await;
        let file = Arc::new(tokio::sync::Mutex::new(file));
        for stream in [
            sandbox.take_stdout().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            sandbox.take_stderr().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        ]
        .into_iter()
        .flatten()
        {
            tokio::spawn(pump_lines(stream, logs.clone(), file.clone(), self.config.log_file_bytes));
        }
        let (kill_sender, kill_receiver) = oneshot::channel::<()>();
        let (exit_sender, exit_receiver) = watch::channel(None);
        tokio::spawn(async move {
            let exit = tokio::select! {
                exit = sandbox.wait() => exit.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string()),
                _ = kill_receiver => {
                    let _ = sandbox.kill().await;
                    "stopped".to_owned()
                }
            };
            let _ = exit_sender.send(Some(exit));
        });
        Ok(Arc::new(Instance {
            id: instance_id,
            revision: spec.revision,
            netns,
            netns_path,
            kill: Mutex::new(Some(kill_sender)),
            exited: exit_receiver,
        }))
    }

    async fn log_file(&self, spec: &AppSpec) -> Option<tokio::fs::File> {
        let dir = self.config.logs_dir.join(&spec.app);
        tokio::fs::create_dir_all(&dir).await.ok()?;
        tokio::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("r{}.log", spec.revision))).await.ok()
    }

    /// Polls the instance until its health check passes, it exits, or the grace period ends.
    async fn wait_healthy(&self, spec: &AppSpec, instance: &Instance) -> Result<(), RuntimeError> {
        let (path, healthy_below, grace) = match &spec.health {
            Some(health) => (health.path.clone(), health.healthy_below, Duration::from_secs(u64::from(health.grace_secs.max(1)))),
            None => ("/".to_owned(), 500, Duration::from_secs(30)),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], self.config.app_port));
        let started = Instant::now();
        let logs = self.logs(&spec.app);
        let tail = || logs.as_ref().map(|l| l.tail(20)).unwrap_or_default();
        loop {
            if let Some(exit) = instance.exited.borrow().clone() {
                return Err(RuntimeError::Unhealthy { reason: format!("the app stopped before it answered: {exit}"), log_tail: tail() });
            }
            if let Ok(status) = probe(&instance.netns, addr, &path).await {
                if status < healthy_below {
                    return Ok(());
                }
            }
            if started.elapsed() > grace {
                return Err(RuntimeError::Unhealthy {
                    reason: format!(
                        "the app did not answer on port {} within {} s (it must listen on 0.0.0.0 and the port in ${})",
                        self.config.app_port,
                        grace.as_secs(),
                        spec.port_env.as_deref().unwrap_or("PORT")
                    ),
                    log_tail: tail(),
                });
            }
            // Poll fast at first: most apps are up within a few hundred milliseconds.
            let pause = if started.elapsed() < Duration::from_secs(2) { 20 } else { 200 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Restarts the app with backoff when its current instance exits.
    fn watch_instance(self: Arc<Self>, app: String, instance: Arc<Instance>) {
        tokio::spawn(async move {
            let mut exited = instance.exited.clone();
            let _ = exited.wait_for(Option::is_some).await;
            let exit = exited.borrow().clone().unwrap_or_default();
            let (spec, generation, logs) = {
                let mut apps = self.apps();
                let Some(entry) = apps.get_mut(&app) else { return };
                if entry.current.as_ref().map(|c| c.id) != Some(instance.id) {
                    return;
                }
                entry.state = State::Crashed;
                entry.last_exit = Some(exit.clone());
                (entry.spec.clone(), entry.generation, entry.logs.clone())
            };
            logs.push(format!("[slipway] the app {exit}; restarting"));
            loop {
                let n_restarts = {
                    let apps = self.apps();
                    match apps.get(&app) {
                        Some(entry) if entry.generation == generation => entry.restarts,
                        _ => return,
                    }
                };
                tokio::time::sleep(restart_backoff(n_restarts, self.config.max_restart_backoff)).await;
                let attempt = match self.start_instance(&spec, &logs).await {
                    Ok(new) => match self.wait_healthy(&spec, &new).await {
                        Ok(()) => Ok(new),
                        Err(e) => {
                            new.stop();
                            Err(e.to_string())
                        }
                    },
                    Err(e) => Err(e.to_string()),
                };
                let mut apps = self.apps();
                let Some(entry) = apps.get_mut(&app) else { return };
                if entry.generation != generation {
                    if let Ok(new) = attempt {
                        new.stop();
                    }
                    return;
                }
                match attempt {
                    Ok(new) => {
                        entry.current = Some(new.clone());
                        entry.state = State::Running;
                        entry.restarts += 1;
                        drop(apps);
                        logs.push("[slipway] restarted".to_owned());
                        self.clone().watch_instance(app, new);
                        return;
                    }
                    Err(reason) => {
                        entry.restarts += 1;
                        entry.last_exit = Some(reason.clone());
                        logs.push(format!("[slipway] restart failed: {reason}"));
                    }
                }
            }
        });
    }
}

/// One HTTP/1.1 GET inside the namespace; returns the status code.
async fn probe(netns: &Netns, addr: SocketAddr, path: &str) -> std::io::Result<u16> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), netns.connect_async(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slipway-health\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let n_read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let text = std::str::from_utf8(&head[..n_read]).unwrap_or("");
    text.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))
}

async fn pump_lines(
    stream: Box<dyn tokio::io::AsyncRead + Send + Unpin>,
    logs: Arc<LogRing>,
    file: Arc<tokio::sync::Mutex<Option<tokio::fs::File>>>,
    max_file_bytes: u64,
) {
    let mut reader = tokio::io::BufReader::new(stream);
    let mut buffer = Vec::new();
    while let Some(line) = crate::build::next_line(&mut reader, &mut buffer).await {
        let mut guard = file.lock().await;
        if let Some(file) = guard.as_mut() {
            let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
            if size < max_file_bytes {
                let _ = file.write_all(format!("{line}\n").as_bytes()).await;
            }
        }
        drop(guard);
        logs.push(line);
    }
}

impl Resolver for LocalRuntime {
    async fn resolve(&self, app: &str) -> Resolution {
        let apps = self.apps();
        let Some(entry) = apps.get(app) else { return Resolution::NotFound };
        match (entry.state, &entry.current) {
            (State::Running, Some(instance)) => Resolution::Ready(Upstream::InNetns {
                netns: instance.netns_path.clone(),
                addr: SocketAddr::from(([127, 0, 0, 1], self.config.app_port)),
            }),
            (State::Crashed, _) => Resolution::Unavailable { reason: UnavailableReason::Crashed, retry_after_secs: 5 },
            _ => Resolution::Unavailable { reason: UnavailableReason::Starting, retry_after_secs: 2 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_up_to_the_cap() {
        let max = Duration::from_secs(60);
        let got: Vec<u64> = (0..8).map(|n| restart_backoff(n, max).as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn the_log_ring_keeps_the_newest_lines() {
        let ring = LogRing::new(3);
        for n in 0..5 {
            ring.push(format!("line {n}"));
        }
        assert_eq!(ring.tail(10), vec!["line 2", "line 3", "line 4"]);
        assert_eq!(ring.tail(1), vec!["line 4"]);
    }
}
