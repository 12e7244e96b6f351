//! The local runtime: each app's current revision runs as one or more sandboxed instances on this
//! machine, and idle apps give their resources back in two tiers.
//!
//! Lifecycle of an app (one state per app, the instance behind it may change):
//!
//! ```text
//!   deploy ──► Starting ──healthy──► Running ──exits──► Crashed ──backoff──► (restart) ──healthy──► Running
//!                 │                   │  ▲                                        │
//!                 │   idle freeze_after│  │request: thaw (ms)                      └──unhealthy──┘
//!                 │                   ▼  │
//!                 │                   Frozen ──idle stop_after──► Stopped ──request: wake (cold start)──► Starting
//!                 └──unhealthy: the old instance keeps serving; the deploy fails
//!   stop ──► (removed)
//! ```
//!
//! The runtime is also the activator: `Resolver::resolve` holds a request for an app at zero
//! while one wake (single flight) starts it, probing readiness every few milliseconds, and
//! releases every held request when it is ready. Browsers that would wait longer than
//! `browser_wait` get the self-reloading waiting page instead; API clients wait up to
//! `wake_timeout`, then get 503 with Retry-After; at most `max_held` requests wait per app.
//!
//! A new revision starts beside the old one and takes traffic only after its health check passes;
//! then the old instance is stopped (no downtime). Every app listens on the same port inside its
//! own network namespace; the gateway connects into that namespace (`Resolver::resolve` returns
//! `Upstream::InNetns`). Output goes to a bounded ring per app, a follow channel, and a file per
//! revision (capped).
//!
//! Instances: an app has `desired` instances while awake (the autoscaler sets it through
//! `Runtime::scale`); each is its own sandbox with its own network namespace, and the resolver
//! spreads requests over the ready ones in turn. A deploy starts one instance of the new revision,
//! switches all traffic to it once healthy, retires the old instances, then starts the rest. An
//! instance that exits while others serve is replaced (with the crash backoff); when the last one
//! exits the app is `Crashed` until a restart is healthy.
//!
//! It deliberately does not decide when to scale, freeze or stop: the autoscaler does, through
//! the `Runtime` trait. The runtime only carries orders out, one wake per app at a time.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::{AppSpec, AppStatus, Observation, Runtime, RuntimeError, Tier};
use crate::gateway::{RequestHints, Resolution, Resolver, UnavailableReason, Upstream};
use crate::metrics::registry::{service_for_app, Registry, ServiceMetrics, WakePhase, WakeTier};
use crate::sandbox::{Bind, Cgroup, HostSupport, Limits, Netns, Network, Sandbox, SandboxSpec};
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
    /// How long a held request waits for a waking app before it gets 503.
    pub wake_timeout: Duration,
    /// How long a browser waits before it is shown the waiting page.
    pub browser_wait: Duration,
    /// Requests held per app while it wakes; more get 503 at once.
    pub max_held: usize,
    /// User agents (substrings, lower case) that never wake a stopped app: uptime checkers, crawlers.
    pub no_wake_agents: Vec<String>,
    /// How often a running app's health check is repeated after it went live.
    pub liveness_interval: Duration,
    /// Failed checks in a row after which a running app is restarted.
    pub liveness_failures: u32,
    /// CPU (thousandths of a core) an instance may use until it first answers its health check,
    /// when its own limit is lower: interpreters and JITs boot several times faster unthrottled,
    /// and a cold start is what a visitor waits for. The app's own limit applies from its first
    /// answer on; an app that never answers is stopped after its grace period.
    pub startup_cpu_millis: u32,
    /// Time and concurrency limits of console programs' terminal sessions.
    pub terminal_limits: crate::terminal::SessionLimits,
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
            wake_timeout: Duration::from_secs(30),
            browser_wait: Duration::from_secs(1),
            max_held: 1000,
            liveness_interval: Duration::from_secs(10),
            liveness_failures: 3,
            startup_cpu_millis: 1000,
            terminal_limits: crate::terminal::SessionLimits::default(),
            no_wake_agents: [
                "uptimerobot",
                "pingdom",
                "statuscake",
                "googlebot",
                "bingbot",
                "yandexbot",
                "baiduspider",
                "ahrefsbot",
                "semrushbot",
                "slipway-health",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
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

/// Orders for the task that owns an instance's sandbox.
enum Control {
    Freeze(oneshot::Sender<Result<(), String>>),
    Thaw(oneshot::Sender<Result<(), String>>),
    Kill,
}

struct Instance {
    id: u64,
    revision: i32,
    netns: Netns,
    netns_path: PathBuf,
    /// Host pid of the sandbox's init, for owner shells (`shell_target`).
    ns_pid: u32,
    /// For reading the instance's memory use (eviction of frozen apps); `None` without cgroups.
    cgroup: Option<Cgroup>,
    control: mpsc::UnboundedSender<Control>,
    exited: watch::Receiver<Option<String>>,
}

impl Instance {
    /// Stops the instance; dropping the last handle does the same.
    fn stop(&self) {
        let _ = self.control.send(Control::Kill);
    }

    /// Sends the order at once and returns the answer to await: orders to several instances made
    /// before any is awaited run concurrently.
    fn order(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> Control,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.control.send(make(reply)).is_ok();
        async move {
            if !sent {
                return Err("the instance has stopped".to_owned());
            }
            answer.await.unwrap_or_else(|_| Err("the instance has stopped".to_owned()))
        }
    }

    fn freeze(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.order(Control::Freeze)
    }

    fn thaw(&self) -> impl std::future::Future<Output = Result<(), String>> + Send + 'static {
        self.order(Control::Thaw)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Starting,
    Running,
    Frozen,
    Stopped,
    Crashed,
}

impl State {
    fn tier(self) -> Tier {
        match self {
            State::Starting => Tier::Starting,
            State::Running => Tier::Running,
            State::Frozen => Tier::Frozen,
            State::Stopped => Tier::Stopped,
            State::Crashed => Tier::Crashed,
        }
    }

    /// The name `slipway status` shows.
    fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Frozen => "frozen",
            State::Stopped => "stopped",
            State::Crashed => "crashed",
        }
    }
}

/// The phases of one wake from the stopped tier (or one thaw), for the project page and metrics.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WakeRecord {
    /// `stopped` (a cold start) or `frozen` (a thaw).
    pub tier: &'static str,
    /// From the request's arrival to the sandbox running.
    pub spawn_ms: f64,
    /// From the sandbox running to the app accepting connections.
    pub listening_ms: f64,
    /// From accepting connections to the first byte of its answer to the readiness probe.
    pub first_byte_ms: f64,
    pub total_ms: f64,
    /// Seconds since the Unix epoch.
    pub at_unix: u64,
}

/// Wakes and thaws kept per app.
const WAKE_HISTORY: usize = 50;

struct AppEntry {
    spec: Arc<AppSpec>,
    /// Ready instances of `spec`'s revision, oldest first; all frozen while `state` is `Frozen`.
    instances: Vec<Arc<Instance>>,
    /// Instances being started to reach `desired`, not ready yet.
    starting: u32,
    /// Instances the app should have while awake; the autoscaler sets it.
    desired: u32,
    /// The next instance the resolver hands a request to (round robin).
    next_pick: usize,
    state: State,
    restarts: u32,
    last_exit: Option<String>,
    /// Bumped by every deploy and stop, so a restart loop of an older deploy gives up.
    generation: u64,
    logs: Arc<LogRing>,
    /// The last request (or deploy, or wake); the idle loop measures from here.
    last_active: Instant,
    /// The wake in progress, shared by every request that waits for it.
    waking: Option<watch::Receiver<Option<Result<(), String>>>>,
    /// Requests held right now.
    held: usize,
    wakes: VecDeque<WakeRecord>,
    /// When the app entered the frozen tier, while it is there.
    frozen_since: Option<Instant>,
    /// The app's series in the gateway's metrics (held requests, wake phases).
    metrics: Arc<ServiceMetrics>,
}

impl AppEntry {
    /// The instance the next request goes to, in turn.
    fn pick(&mut self) -> Option<Arc<Instance>> {
        if self.instances.is_empty() {
            return None;
        }
        let instance = self.instances[self.next_pick % self.instances.len()].clone();
        self.next_pick = self.next_pick.wrapping_add(1);
        Some(instance)
    }

    fn has(&self, instance: &Instance) -> bool {
        self.instances.iter().any(|i| i.id == instance.id)
    }
}

pub struct LocalRuntime {
    host: HostSupport,
    config: LocalConfig,
    apps: Mutex<HashMap<String, AppEntry>>,
    /// Console programs by app name: nothing runs until a visitor opens the terminal.
    terminals: Mutex<HashMap<String, Arc<crate::terminal::Program>>>,
    next_id: std::sync::atomic::AtomicU64,
    /// The gateway's metrics: the runtime records held requests and wake phases per app there.
    metrics: Arc<Registry>,
    /// Itself, for the tasks `resolve` starts (the gateway holds the runtime behind an `Arc`).
    this: std::sync::Weak<LocalRuntime>,
}

impl LocalRuntime {
    pub fn new(host: HostSupport, config: LocalConfig, metrics: Arc<Registry>) -> Arc<Self> {
        Arc::new_cyclic(|this| Self {
            host,
            config,
            apps: Mutex::new(HashMap::new()),
            terminals: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
            metrics,
            this: this.clone(),
        })
    }

    fn new_entry(&self, spec: &Arc<AppSpec>, state: State) -> AppEntry {
        AppEntry {
            spec: spec.clone(),
            instances: Vec::new(),
            starting: 0,
            desired: 1,
            next_pick: 0,
            state,
            restarts: 0,
            last_exit: None,
            generation: 0,
            logs: Arc::new(LogRing::new(self.config.log_lines)),
            last_active: Instant::now(),
            waking: None,
            held: 0,
            wakes: VecDeque::new(),
            frozen_since: None,
            metrics: self.metrics.service(&service_for_app(&spec.app)),
        }
    }

    /// Knows `spec` as the app's revision without starting it: the app is in the stopped tier and
    /// the first request wakes it. `slipway up` restores live apps this way, so a restart with a
    /// thousand projects does not start a thousand sandboxes at once. An app that is already
    /// known is left alone.
    pub fn register_stopped(&self, spec: AppSpec) -> Result<(), RuntimeError> {
        if matches!(spec.start, Start::Image { .. }) {
            return Err(RuntimeError::NeedsCluster);
        }
        if matches!(spec.start, Start::Terminal { .. }) {
            self.set_terminal(&spec);
            return Ok(());
        }
        let spec = Arc::new(spec);
        let mut apps = self.apps();
        if !apps.contains_key(&spec.app) {
            let mut entry = self.new_entry(&spec, State::Stopped);
            entry.desired = 0;
            apps.insert(spec.app.clone(), entry);
        }
        Ok(())
    }

    /// Changes the app's scaling policy from now on (the next deploy brings its own).
    pub fn set_policy(&self, app: &str, policy: crate::autoscaler::Policy) -> bool {
        let mut apps = self.apps();
        let Some(entry) = apps.get_mut(app) else { return false };
        let mut spec = (*entry.spec).clone();
        spec.policy = policy;
        entry.spec = Arc::new(spec);
        true
    }

    /// The last wakes and thaws of an app, newest last.
    pub fn wakes(&self, app: &str) -> Vec<WakeRecord> {
        self.apps().get(app).map(|entry| entry.wakes.iter().cloned().collect()).unwrap_or_default()
    }

    fn apps(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppEntry>> {
        self.apps.lock().expect("apps lock is never poisoned")
    }

    /// The app's log ring (created empty if the app has none yet).
    pub fn logs(&self, app: &str) -> Option<Arc<LogRing>> {
        self.apps().get(app).map(|entry| entry.logs.clone())
    }

    pub fn status(&self, app: &str) -> AppStatus {
        if let Some(program) = self.terminal_program(app) {
            // A console program is never "stopped": it starts per visitor; its instances are the
            // terminal sessions open now.
            return AppStatus {
                state: "console",
                revision: Some(program.revision()),
                instances: program.live_sessions(),
                restarts: 0,
                last_exit: None,
            };
        }
        match self.apps().get(app) {
            None => AppStatus { state: "stopped", revision: None, instances: 0, restarts: 0, last_exit: None },
            Some(entry) => AppStatus {
                state: entry.state.as_str(),
                revision: entry.instances.first().map(|i| i.revision).or(Some(entry.spec.revision)),
                instances: if matches!(entry.state, State::Running | State::Frozen) { entry.instances.len() } else { 0 },
                restarts: entry.restarts,
                last_exit: entry.last_exit.clone(),
            },
        }
    }

    /// Starts `spec` beside whatever runs now, waits for its health check, then switches traffic
    /// to it, retires the old instances and starts the rest of the app's count. On failure the old
    /// instances keep serving.
    pub async fn deploy(self: &Arc<Self>, spec: AppSpec) -> Result<(), RuntimeError> {
        if matches!(spec.start, Start::Image { .. }) {
            return Err(RuntimeError::NeedsCluster);
        }
        if matches!(spec.start, Start::Terminal { .. }) {
            // A console program has no server to start or check: it becomes the app's terminal
            // program, and a server the app had before (another template) stops.
            self.set_terminal(&spec);
            let removed = self.apps().remove(&spec.app);
            if let Some(entry) = removed {
                retire(entry.instances, Duration::ZERO);
            }
            return Ok(());
        }
        self.terminals().remove(&spec.app);
        let spec = Arc::new(spec);
        let logs = {
            let mut apps = self.apps();
            let entry = apps.entry(spec.app.clone()).or_insert_with(|| self.new_entry(&spec, State::Starting));
            entry.generation += 1;
            entry.logs.clone()
        };
        logs.push(format!("[slipway] starting revision {}", spec.revision));
        let instance = self.start_instance(&spec, &logs).await?;
        if let Err(error) = self.wait_healthy(&spec, &instance).await {
            instance.stop();
            let mut apps = self.apps();
            if let Some(entry) = apps.get_mut(&spec.app) {
                if entry.instances.is_empty() && entry.state == State::Starting {
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
            entry.frozen_since = None;
            entry.restarts = 0;
            entry.last_exit = None;
            entry.last_active = Instant::now();
            entry.desired = entry.desired.max(1);
            std::mem::replace(&mut entry.instances, vec![instance.clone()])
        };
        logs.push(format!("[slipway] revision {} is live", spec.revision));
        self.clone().watch_instance(spec.app.clone(), instance);
        // In-flight requests on the old instances get a moment to finish before they stop.
        retire(old, Duration::from_secs(2));
        self.reconcile(&spec.app);
        Ok(())
    }

    /// Makes `spec` (a `Start::Terminal` app) the program every new terminal session of its app
    /// starts; sessions already running keep their revision until they end. Its instances get the
    /// app's own cpu limit (no startup boost: a visitor waits on the program, not on a health
    /// check) and no network beyond their own loopback, whatever outbound hosts apps may have.
    fn set_terminal(&self, spec: &AppSpec) {
        let mut sandbox = self.sandbox_spec(spec, 0);
        sandbox.name = format!("term-{}-r{}-p{}", spec.app, spec.revision, std::process::id());
        sandbox.limits.cpu_millis = spec.resources.cpu_millicores.max(50);
        sandbox.limits.timeout = Some(self.config.terminal_limits.time_limit + Duration::from_secs(10));
        sandbox.env.push(("TERM".to_owned(), "xterm-256color".to_owned()));
        sandbox.env.push(("LC_ALL".to_owned(), "C.UTF-8".to_owned()));
        let program =
            crate::terminal::Program::new(spec.app.clone(), spec.revision, sandbox, self.host.clone(), self.config.terminal_limits);
        self.terminals().insert(spec.app.clone(), Arc::new(program));
    }

    fn terminals(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<crate::terminal::Program>>> {
        self.terminals.lock().expect("terminals lock is never poisoned")
    }

    /// The console program of `app`, if it is one.
    pub fn terminal_program(&self, app: &str) -> Option<Arc<crate::terminal::Program>> {
        self.terminals().get(app).cloned()
    }

    /// A running instance of `app` an owner shell can enter; a frozen app is thawed first. A
    /// stopped app (or a console program, whose instances belong to visitors) has none.
    pub async fn shell_target(&self, app: &str) -> Result<crate::terminal::shell::ShellTarget, RuntimeError> {
        let not_running = || RuntimeError::NotRunning { app: app.to_owned() };
        let (instance, spec, frozen) = {
            let apps = self.apps();
            let entry = apps.get(app).ok_or_else(not_running)?;
            if !matches!(entry.state, State::Running | State::Frozen) {
                return Err(not_running());
            }
            let instance = entry.instances.first().cloned().ok_or_else(not_running)?;
            (instance, entry.spec.clone(), entry.state == State::Frozen)
        };
        if frozen {
            // The same path a request takes: every instance thaws, the app is running again.
            let _ = self.resolve(app, &RequestHints { wants_html: false, user_agent: "slipway-shell" }).await;
        }
        Ok(crate::terminal::shell::ShellTarget {
            app: app.to_owned(),
            revision: instance.revision,
            ns_pid: instance.ns_pid,
            uid: spec.uid,
            gid: spec.gid,
            procs_files: instance.cgroup.as_ref().map(Cgroup::procs_files).unwrap_or_default(),
            user_namespace: self.host.identity_switch() == Some(crate::sandbox::IdentitySwitch::UserNamespace),
        })
    }

    /// Stops the app and forgets it.
    pub async fn stop(&self, app: &str) {
        self.terminals().remove(app);
        let removed = self.apps().remove(app);
        if let Some(entry) = removed {
            self.metrics.remove_service(&service_for_app(app));
            for instance in &entry.instances {
                let _ = instance.thaw().await;
                instance.stop();
            }
            for instance in entry.instances {
                let mut exited = instance.exited.clone();
                let _ = tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some)).await;
            }
        }
    }

    /// Starts or retires instances until a running app has `desired` of them. Instances already
    /// starting count; an app that is not running is left alone (a thaw or a wake calls this again).
    fn reconcile(self: &Arc<Self>, app: &str) {
        self.reconcile_after(app, Duration::ZERO);
    }

    fn reconcile_after(self: &Arc<Self>, app: &str, delay: Duration) {
        let (to_start, to_retire, spec, generation, logs) = {
            let mut apps = self.apps();
            let Some(entry) = apps.get_mut(app) else { return };
            if entry.state != State::Running {
                return;
            }
            let have = entry.instances.len() as u32 + entry.starting;
            let to_start = entry.desired.saturating_sub(have);
            entry.starting += to_start;
            let keep = entry.desired.max(1) as usize;
            let to_retire = if entry.starting == 0 && entry.instances.len() > keep { entry.instances.split_off(keep) } else { Vec::new() };
            (to_start, to_retire, entry.spec.clone(), entry.generation, entry.logs.clone())
        };
        if !to_retire.is_empty() {
            logs.push(format!("[slipway] scaled down to {} instance(s)", self.status(app).instances));
            retire(to_retire, Duration::from_secs(2));
        }
        for _ in 0..to_start {
            let this = self.clone();
            let (app, spec, logs) = (app.to_owned(), spec.clone(), logs.clone());
            tokio::spawn(async move { this.add_instance(app, spec, generation, logs, delay).await });
        }
    }

    /// Starts one more instance of `spec` and adds it to the app once healthy, unless the app was
    /// redeployed, stopped or frozen meanwhile (then the new instance is stopped again).
    async fn add_instance(self: Arc<Self>, app: String, spec: Arc<AppSpec>, generation: u64, logs: Arc<LogRing>, delay: Duration) {
        tokio::time::sleep(delay).await;
        let attempt = match self.start_instance(&spec, &logs).await {
            Ok(instance) => match self.wait_healthy(&spec, &instance).await {
                Ok(()) => Ok(instance),
                Err(error) => {
                    instance.stop();
                    Err(error.to_string())
                }
            },
            Err(error) => Err(error.to_string()),
        };
        let added = {
            let mut apps = self.apps();
            let Some(entry) = apps.get_mut(&app) else {
                if let Ok(instance) = attempt {
                    instance.stop();
                }
                return;
            };
            entry.starting = entry.starting.saturating_sub(1);
            match attempt {
                Ok(instance) if entry.generation == generation && entry.state == State::Running => {
                    entry.instances.push(instance.clone());
                    Some(instance)
                }
                Ok(instance) => {
                    instance.stop();
                    None
                }
                Err(reason) => {
                    logs.push(format!("[slipway] an extra instance did not start: {reason}"));
                    None
                }
            }
        };
        if let Some(instance) = added {
            logs.push(format!("[slipway] instance {} is serving ({} now)", instance.id, self.status(&app).instances));
            self.clone().watch_instance(app.clone(), instance);
            // Another order may have changed the count while this one started.
            self.reconcile(&app);
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
            // `deploy` and `register_stopped` refuse these before any instance is made.
            Start::Image { .. } => unreachable!("image apps are refused before an instance is started"),
        };
        SandboxSpec {
            // Cgroup names are host-wide: the process id keeps two runtimes on one host (tests, a
            // second installation) from ever choosing the same name.
            name: format!("app-{}-r{}-p{}-i{instance_id}", spec.app, spec.revision, std::process::id()),
            app_dir: spec.app_dir.clone(),
            app_writable: false,
            data_dir: Some(spec.data_dir.clone()),
            extra_binds,
            argv,
            env,
            workdir: "/app".to_owned(),
            limits: Limits {
                memory_bytes: u64::from(spec.resources.memory_mb.max(32)) * 1024 * 1024,
                // The startup boost; `wait_ready` lowers it to the app's own limit.
                cpu_millis: spec.resources.cpu_millicores.max(50).max(self.config.startup_cpu_millis),
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
        let mut sandbox_spec = self.sandbox_spec(spec, instance_id);
        // With outbound hosts, the app joins a namespace of its own that holds an egress proxy
        // (the builds' kind), and its tools are pointed at it; the proxy lives as long as the
        // instance. Without, it keeps bubblewrap's bare namespace: only `lo`.
        let egress = if spec.outbound.is_empty() {
            None
        } else {
            let refusals = logs.clone();
            let config = crate::egress::ProxyConfig {
                registries: spec.outbound.clone(),
                resolver: crate::egress::system_resolver(),
                on_refusal: Arc::new(move |line: &str| refusals.push(format!("[slipway] outbound: {line}"))),
            };
            let egress = crate::egress::BuildEgress::start(config).await.map_err(|e| RuntimeError::Unhealthy {
                reason: format!("the app's outbound network could not be set up: {e}"),
                log_tail: Vec::new(),
            })?;
            sandbox_spec.network = Network::Joined(egress.netns().clone());
            sandbox_spec.env.extend(egress.env());
            Some(egress)
        };
        let mut sandbox = Sandbox::spawn(&sandbox_spec, &self.host).await?;
        let netns_path = sandbox.netns_path();
        let ns_pid = sandbox.ns_pid();
        let netns = match sandbox.netns() {
            Some(netns) => netns.clone(),
            None => Netns::open(&netns_path).map_err(|e| RuntimeError::Unhealthy {
                reason: format!("cannot open the app's network namespace: {e}"),
                log_tail: Vec::new(),
            })?,
        };
        let cgroup = sandbox.cgroup().cloned();
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
        let (control, mut orders) = mpsc::unbounded_channel::<Control>();
        let (exit_sender, exit_receiver) = watch::channel(None);
        tokio::spawn(async move {
            // `Sandbox::wait` is cancel-safe, so waiting can pause while an order is carried out.
            let exit = loop {
                tokio::select! {
                    exit = sandbox.wait() => break exit.map(|e| e.to_string()).unwrap_or_else(|e| e.to_string()),
                    order = orders.recv() => match order {
                        Some(Control::Freeze(reply)) => {
                            let _ = reply.send(sandbox.freeze().await.map_err(|e| e.to_string()));
                        }
                        Some(Control::Thaw(reply)) => {
                            let _ = reply.send(sandbox.thaw().await.map_err(|e| e.to_string()));
                        }
                        Some(Control::Kill) | None => {
                            let _ = sandbox.kill().await;
                            break "stopped".to_owned();
                        }
                    },
                }
            };
            drop(egress);
            let _ = exit_sender.send(Some(exit));
        });
        Ok(Arc::new(Instance {
            id: instance_id,
            revision: spec.revision,
            netns,
            netns_path,
            ns_pid,
            cgroup,
            control,
            exited: exit_receiver,
        }))
    }

    /// Lowers an instance's CPU limit from the startup boost to the app's own.
    fn end_startup_boost(&self, spec: &AppSpec, instance: &Instance) {
        let own = spec.resources.cpu_millicores.max(50);
        if own >= self.config.startup_cpu_millis {
            return;
        }
        if let Some(cgroup) = &instance.cgroup {
            if let Err(error) = cgroup.set_cpu_millis(own) {
                tracing::warn!(app = spec.app, "could not lower the startup CPU boost: {error}");
            }
        }
    }

    async fn log_file(&self, spec: &AppSpec) -> Option<tokio::fs::File> {
        let dir = self.config.logs_dir.join(&spec.app);
        tokio::fs::create_dir_all(&dir).await.ok()?;
        tokio::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("r{}.log", spec.revision))).await.ok()
    }

    /// Polls the instance until its health check passes, it exits, or the grace period ends.
    async fn wait_healthy(&self, spec: &AppSpec, instance: &Instance) -> Result<(), RuntimeError> {
        self.wait_ready(spec, instance).await.map(drop)
    }

    /// Like `wait_healthy`, returning when the app first accepted a connection and when it answered.
    async fn wait_ready(&self, spec: &AppSpec, instance: &Instance) -> Result<(Instant, Instant), RuntimeError> {
        let (path, healthy_below, grace) = match &spec.health {
            Some(health) => (health.path.clone(), health.healthy_below, Duration::from_secs(u64::from(health.grace_secs.max(1)))),
            None => ("/".to_owned(), 500, Duration::from_secs(30)),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], self.config.app_port));
        let started = Instant::now();
        let logs = self.logs(&spec.app);
        let tail = || logs.as_ref().map(|l| l.tail(20)).unwrap_or_default();
        let mut listening_at = None;
        loop {
            if let Some(exit) = instance.exited.borrow().clone() {
                return Err(RuntimeError::Unhealthy { reason: format!("the app stopped before it answered: {exit}"), log_tail: tail() });
            }
            if let Ok((connected_at, status)) = probe(&instance.netns, addr, &path).await {
                let listening = *listening_at.get_or_insert(connected_at);
                if status < healthy_below {
                    let answered = Instant::now();
                    self.end_startup_boost(spec, instance);
                    return Ok((listening, answered));
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
            // Poll every few milliseconds at first: most apps are up within a few hundred, and every
            // millisecond of polling slack is added to a cold start.
            let pause = if started.elapsed() < Duration::from_secs(2) { 3 } else { 100 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    }

    /// Follows an instance until it exits. If others still serve, it is replaced (after the crash
    /// backoff); if it was the last one, the app is `Crashed` and restarts with backoff until an
    /// instance is healthy. Retired instances (scaled down, redeployed, stopped) are not in the
    /// app's list any more and are let go.
    fn watch_instance(self: Arc<Self>, app: String, instance: Arc<Instance>) {
        tokio::spawn(async move {
            let mut exited = instance.exited.clone();
            let _ = exited.wait_for(Option::is_some).await;
            let exit = exited.borrow().clone().unwrap_or_default();
            let (spec, generation, logs, others) = {
                let mut apps = self.apps();
                let Some(entry) = apps.get_mut(&app) else { return };
                if !entry.has(&instance) {
                    return;
                }
                entry.instances.retain(|i| i.id != instance.id);
                entry.last_exit = Some(exit.clone());
                entry.restarts += 1;
                let others = !entry.instances.is_empty();
                if !others {
                    entry.state = State::Crashed;
                    entry.frozen_since = None;
                }
                (entry.spec.clone(), entry.generation, entry.logs.clone(), others.then_some(entry.restarts))
            };
            if let Some(n_restarts) = others {
                logs.push(format!("[slipway] instance {} {exit}; replacing it", instance.id));
                self.reconcile_after(&app, restart_backoff(n_restarts.saturating_sub(1), self.config.max_restart_backoff));
                return;
            }
            logs.push(format!("[slipway] the app {exit}; restarting"));
            loop {
                let n_restarts = {
                    let apps = self.apps();
                    match apps.get(&app) {
                        Some(entry) if entry.generation == generation && entry.state == State::Crashed => entry.restarts,
                        _ => return,
                    }
                };
                tokio::time::sleep(restart_backoff(n_restarts.saturating_sub(1), self.config.max_restart_backoff)).await;
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
                if entry.generation != generation || entry.state != State::Crashed {
                    if let Ok(new) = attempt {
                        new.stop();
                    }
                    return;
                }
                match attempt {
                    Ok(new) => {
                        entry.instances = vec![new.clone()];
                        entry.state = State::Running;
                        drop(apps);
                        logs.push("[slipway] restarted".to_owned());
                        self.clone().watch_instance(app.clone(), new);
                        self.reconcile(&app);
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

/// Stops `instances` after `drain` (for requests still in flight on them), thawing frozen ones
/// first so that the kill reaches every process promptly.
fn retire(instances: Vec<Arc<Instance>>, drain: Duration) {
    if instances.is_empty() {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(drain).await;
        for instance in instances {
            let _ = instance.thaw().await;
            instance.stop();
        }
    });
}

/// One HTTP/1.1 GET inside the namespace; returns the status code.
async fn probe(netns: &Netns, addr: SocketAddr, path: &str) -> std::io::Result<(Instant, u16)> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), netns.connect_async(addr))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let connected_at = Instant::now();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: slipway-health\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut head = [0u8; 64];
    let n_read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut head))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let text = std::str::from_utf8(&head[..n_read]).unwrap_or("");
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP answer"))?;
    // Read the rest of the answer before closing, off the caller's path: closing with unread data
    // resets the connection, and many servers then print a traceback into the app's log on every
    // check. Bounded, for servers that ignore `Connection: close`.
    tokio::spawn(async move {
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(n_read) = stream.read(&mut sink).await {
                if n_read == 0 {
                    break;
                }
            }
        })
        .await;
    });
    Ok((connected_at, status))
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
    fn terminal(&self, app: &str) -> Option<Arc<crate::terminal::Program>> {
        self.terminal_program(app)
    }

    async fn resolve(&self, app: &str, hints: &RequestHints<'_>) -> Resolution {
        let arrived = Instant::now();
        let addr = SocketAddr::from(([127, 0, 0, 1], self.config.app_port));
        /// What to do once the lock is released (no lock may be held across an await).
        enum Next {
            Answer(Resolution),
            Thaw,
            Wait(watch::Receiver<Option<Result<(), String>>>, crate::metrics::registry::GaugeGuard),
        }
        loop {
            let next = {
                let mut apps = self.apps();
                match apps.get_mut(app) {
                    None => Next::Answer(Resolution::NotFound),
                    Some(entry) => match entry.state {
                        State::Running => match entry.pick() {
                            Some(instance) => {
                                entry.last_active = Instant::now();
                                Next::Answer(Resolution::Ready(Upstream::InNetns { netns: instance.netns_path.clone(), addr }))
                            }
                            None => Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Starting, retry_after_secs: 2 }),
                        },
                        State::Frozen => Next::Thaw,
                        State::Crashed => Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Crashed, retry_after_secs: 5 }),
                        State::Stopped if self.is_no_wake_agent(hints.user_agent) => {
                            Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Stopped, retry_after_secs: 60 })
                        }
                        State::Stopped | State::Starting if entry.waking.is_some() || entry.state == State::Stopped => {
                            // A stopped app wakes; one already waking is waited for.
                            if entry.held >= self.config.max_held {
                                Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Starting, retry_after_secs: 2 })
                            } else {
                                entry.held += 1;
                                let held = entry.metrics.hold();
                                let waking = match &entry.waking {
                                    Some(waking) => waking.clone(),
                                    None => self.start_wake(entry, app, arrived),
                                };
                                Next::Wait(waking, held)
                            }
                        }
                        State::Stopped | State::Starting => {
                            Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Starting, retry_after_secs: 2 })
                        }
                    },
                }
            };
            let (wake, held) = match next {
                Next::Answer(resolution) => return resolution,
                Next::Thaw => match self.thaw_app(app, Some(arrived)).await {
                    Ok(()) => continue,
                    Err(reason) => {
                        tracing::warn!(app, "thaw failed: {reason}");
                        return Resolution::Unavailable { reason: UnavailableReason::Crashed, retry_after_secs: 5 };
                    }
                },
                Next::Wait(wake, held) => (wake, held),
            };
            let patience = if hints.wants_html { self.config.browser_wait } else { self.config.wake_timeout };
            let outcome = wait_for_wake(wake, patience).await;
            drop(held);
            if let Some(entry) = self.apps().get_mut(app) {
                entry.held = entry.held.saturating_sub(1);
            }
            match outcome {
                Some(Ok(())) => continue,
                Some(Err(_)) => return Resolution::Unavailable { reason: UnavailableReason::WakeFailed, retry_after_secs: 5 },
                // Browsers get the waiting page (it reloads itself); API clients a 503 with Retry-After.
                None => {
                    return Resolution::Unavailable {
                        reason: UnavailableReason::Starting,
                        retry_after_secs: if hints.wants_html { 1 } else { 2 },
                    }
                }
            }
        }
    }
}

async fn wait_for_wake(mut wake: watch::Receiver<Option<Result<(), String>>>, patience: Duration) -> Option<Result<(), String>> {
    let waited = tokio::time::timeout(patience, wake.wait_for(Option::is_some)).await;
    match waited {
        Ok(Ok(done)) => done.clone(),
        Ok(Err(_)) => Some(Err("the wake was abandoned".to_owned())),
        Err(_) => None,
    }
}

impl LocalRuntime {
    fn is_no_wake_agent(&self, user_agent: &str) -> bool {
        let agent = user_agent.to_ascii_lowercase();
        self.config.no_wake_agents.iter().any(|pattern| agent.contains(pattern.as_str()))
    }

    /// Starts the one wake of a stopped app; every request that arrives meanwhile waits on it.
    /// `arrived` is when the request that caused it arrived (or when the autoscaler asked).
    fn start_wake(&self, entry: &mut AppEntry, app: &str, arrived: Instant) -> watch::Receiver<Option<Result<(), String>>> {
        let (done, waiting) = watch::channel(None);
        entry.waking = Some(waiting.clone());
        entry.state = State::Starting;
        entry.metrics.count_wake(WakeTier::Stopped);
        let (spec, generation, logs) = (entry.spec.clone(), entry.generation, entry.logs.clone());
        let Some(this) = self.this.upgrade() else { return waiting };
        let app = app.to_owned();
        tokio::spawn(async move {
            logs.push(format!("[slipway] waking revision {}", spec.revision));
            let attempt = async {
                let instance = this.start_instance(&spec, &logs).await?;
                let spawned = Instant::now();
                match this.wait_ready(&spec, &instance).await {
                    Ok((listening, answered)) => Ok((instance, spawned, listening, answered)),
                    Err(error) => {
                        instance.stop();
                        Err(error)
                    }
                }
            }
            .await;
            let result = {
                let mut apps = this.apps();
                match apps.get_mut(&app) {
                    Some(entry) if entry.generation == generation => {
                        entry.waking = None;
                        match attempt {
                            Ok((instance, spawned, listening, answered)) => {
                                entry.instances = vec![instance.clone()];
                                entry.state = State::Running;
                                entry.desired = entry.desired.max(1);
                                entry.last_active = Instant::now();
                                let record = wake_record("stopped", arrived, spawned, listening, answered);
                                record_wake_metrics(&entry.metrics, &record);
                                push_wake(entry, record);
                                drop(apps);
                                this.clone().watch_instance(app.clone(), instance);
                                this.reconcile(&app);
                                Ok(())
                            }
                            Err(error) => {
                                // Back to stopped: nothing restarts it by itself, so the next
                                // request tries the wake again instead of seeing "crashed" forever.
                                entry.state = State::Stopped;
                                entry.desired = 0;
                                entry.last_exit = Some(error.to_string());
                                Err(error.to_string())
                            }
                        }
                    }
                    _ => {
                        if let Ok((instance, ..)) = attempt {
                            instance.stop();
                        }
                        Err("the app was redeployed or removed while waking".to_owned())
                    }
                }
            };
            if let Err(reason) = &result {
                logs.push(format!("[slipway] wake failed: {reason}"));
            }
            let _ = done.send(Some(result));
        });
        waiting
    }

    /// Thaws every instance of a frozen app; `arrived` (a request's arrival) records it as a wake
    /// of tier `frozen`. Concurrent thaws of one app are harmless: thawing a thawed cgroup is a no-op.
    async fn thaw_app(&self, app: &str, arrived: Option<Instant>) -> Result<(), String> {
        let instances = {
            let apps = self.apps();
            let Some(entry) = apps.get(app) else { return Ok(()) };
            if entry.state != State::Frozen {
                return Ok(());
            }
            entry.instances.clone()
        };
        let thaws = instances.iter().map(|instance| instance.thaw());
        for result in futures_join_all(thaws).await {
            result?;
        }
        let thawed = Instant::now();
        {
            let mut apps = self.apps();
            let Some(entry) = apps.get_mut(app) else { return Ok(()) };
            if entry.state == State::Frozen && entry.instances.iter().map(|i| i.id).eq(instances.iter().map(|i| i.id)) {
                entry.state = State::Running;
                entry.frozen_since = None;
                entry.last_active = Instant::now();
                if let Some(arrived) = arrived {
                    entry.metrics.count_wake(WakeTier::Frozen);
                    let record = wake_record("frozen", arrived, thawed, thawed, thawed);
                    record_wake_metrics(&entry.metrics, &record);
                    push_wake(entry, record);
                }
            }
        }
        if let Some(this) = self.this.upgrade() {
            this.reconcile(app);
        }
        Ok(())
    }

    /// Freezes (`freeze = true`) or stops an app now; `slipway sleep` and the autoscaler use it.
    pub async fn sleep(&self, app: &str, freeze: bool) -> Result<(), String> {
        let instances = {
            let apps = self.apps();
            let entry = apps.get(app).ok_or("the app is not running")?;
            match entry.state {
                State::Running | State::Frozen if !entry.instances.is_empty() => entry.instances.clone(),
                State::Frozen if freeze => return Ok(()),
                State::Stopped if !freeze => return Ok(()),
                _ => return Err(format!("the app is {}", entry.state.as_str())),
            }
        };
        if freeze {
            for result in futures_join_all(instances.iter().map(|instance| instance.freeze())).await {
                result?;
            }
            if let Some(entry) = self.apps().get_mut(app) {
                if entry.instances.iter().map(|i| i.id).eq(instances.iter().map(|i| i.id)) && entry.state == State::Running {
                    entry.state = State::Frozen;
                    entry.frozen_since = Some(Instant::now());
                }
            }
        } else {
            {
                let mut apps = self.apps();
                if let Some(entry) = apps.get_mut(app) {
                    if entry.instances.iter().map(|i| i.id).eq(instances.iter().map(|i| i.id)) {
                        entry.instances.clear();
                        entry.state = State::Stopped;
                        entry.frozen_since = None;
                        entry.desired = 0;
                    }
                }
            }
            for instance in &instances {
                // Thaw first where it is frozen, so the kill reaches every process promptly.
                let _ = instance.thaw().await;
                instance.stop();
            }
            for instance in instances {
                let mut exited = instance.exited.clone();
                let _ = tokio::time::timeout(Duration::from_secs(10), exited.wait_for(Option::is_some)).await;
            }
        }
        if let Some(logs) = self.logs(app) {
            logs.push(format!("[slipway] {}", if freeze { "frozen" } else { "stopped (scaled to zero)" }));
        }
        Ok(())
    }

    /// Asks for `instances` instances (see `Runtime::scale`).
    pub async fn scale_to(&self, app: &str, instances: u32) -> Result<(), String> {
        if instances == 0 {
            return self.sleep(app, false).await;
        }
        let Some(this) = self.this.upgrade() else { return Ok(()) };
        let waking = {
            let mut apps = self.apps();
            let entry = apps.get_mut(app).ok_or("the app is not deployed")?;
            entry.desired = instances.min(entry.spec.policy.max_instances.max(1));
            match entry.state {
                State::Stopped if entry.waking.is_none() => Some(self.start_wake(entry, app, Instant::now())),
                _ => None,
            }
        };
        if waking.is_none() {
            this.reconcile(app);
        }
        Ok(())
    }
}

impl Runtime for LocalRuntime {
    async fn observe(&self) -> Vec<Observation> {
        self.apps()
            .iter()
            .map(|(name, entry)| Observation {
                app: name.clone(),
                policy: entry.spec.policy.clone(),
                tier: entry.state.tier(),
                ready: if matches!(entry.state, State::Running | State::Frozen) { entry.instances.len() as u32 } else { 0 },
                starting: entry.starting + u32::from(entry.waking.is_some()),
                held: entry.held as u32,
                last_request: entry.last_active,
                frozen_since: entry.frozen_since,
            })
            .collect()
    }

    async fn scale(&self, app: &str, instances: u32) -> Result<(), String> {
        self.scale_to(app, instances.max(1)).await
    }

    async fn freeze(&self, app: &str) -> Result<(), String> {
        self.sleep(app, true).await
    }

    async fn stop_instances(&self, app: &str) -> Result<(), String> {
        self.sleep(app, false).await
    }

    async fn frozen_memory(&self) -> Vec<(String, Option<u64>)> {
        self.apps()
            .iter()
            .filter(|(_, entry)| entry.state == State::Frozen)
            .map(|(name, entry)| {
                let bytes: Option<u64> =
                    entry.instances.iter().map(|i| i.cgroup.as_ref().and_then(Cgroup::memory_usage)).sum::<Option<u64>>();
                (name.clone(), bytes)
            })
            .collect()
    }
}

/// Runs futures at once and collects their outputs in order (a tiny `join_all`, to keep the
/// `futures` crate out of the dependency tree).
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut outputs = Vec::new();
    // Instance orders are sent when their future is made (`Instance::order`) and carried out by
    // each instance's own task, so awaiting the answers in turn still runs the orders concurrently.
    let pending: Vec<F> = futures.into_iter().collect();
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = pending.into_iter().map(Box::pin).collect();
    for future in &mut pinned {
        outputs.push(future.as_mut().await);
    }
    outputs
}

fn record_wake_metrics(metrics: &ServiceMetrics, record: &WakeRecord) {
    let phases = [
        (WakePhase::Spawn, record.spawn_ms),
        (WakePhase::Listening, record.listening_ms),
        (WakePhase::FirstByte, record.first_byte_ms),
        (WakePhase::Total, record.total_ms),
    ];
    for (phase, ms) in phases {
        metrics.observe_wake_phase(phase, ms / 1000.0);
    }
}

/// A running app the liveness loop checks: name, instance, spec, logs.
type LivenessTarget = (String, Arc<Instance>, Arc<AppSpec>, Arc<LogRing>);

impl LocalRuntime {
    /// Runs until `shutdown`: repeats every running app's health check each `liveness_interval`,
    /// and restarts an app that failed `liveness_failures` checks in a row (a wedged app, such as
    /// one whose fork bomb filled its process limit, otherwise stays routed and answers nothing).
    /// Frozen and stopped apps are not checked.
    pub async fn liveness_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.config.app_port));
        let mut failures: HashMap<u64, u32> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.config.liveness_interval) => {}
                _ = shutdown.changed() => return,
            }
            let running: Vec<LivenessTarget> = self
                .apps()
                .iter()
                .filter(|(_, entry)| entry.state == State::Running)
                .flat_map(|(name, entry)| {
                    entry.instances.iter().map(|instance| (name.clone(), instance.clone(), entry.spec.clone(), entry.logs.clone()))
                })
                .collect();
            let mut checks = tokio::task::JoinSet::new();
            for (idx, (_, instance, spec, _)) in running.iter().enumerate() {
                let (instance, spec) = (instance.clone(), spec.clone());
                checks.spawn(async move {
                    let (path, healthy_below) = spec.health.as_ref().map_or(("/", 500), |h| (h.path.as_str(), h.healthy_below));
                    let answer = tokio::time::timeout(Duration::from_secs(3), probe(&instance.netns, addr, path)).await;
                    (idx, matches!(answer, Ok(Ok((_, status))) if status < healthy_below))
                });
            }
            let mut results = vec![true; running.len()];
            while let Some(Ok((idx, healthy))) = checks.join_next().await {
                results[idx] = healthy;
            }
            failures.retain(|id, _| running.iter().any(|(_, instance, _, _)| instance.id == *id));
            for ((name, instance, _, logs), healthy) in running.iter().zip(results) {
                if healthy {
                    failures.remove(&instance.id);
                    continue;
                }
                let n_failed = failures.entry(instance.id).or_insert(0);
                *n_failed += 1;
                if *n_failed >= self.config.liveness_failures {
                    logs.push(format!("[slipway] the app failed {n_failed} health checks in a row; restarting it"));
                    tracing::warn!(app = name, "failed its health check {n_failed} times; restarting");
                    failures.remove(&instance.id);
                    instance.stop();
                }
            }
        }
    }
}

fn wake_record(tier: &'static str, arrived: Instant, spawned: Instant, listening: Instant, answered: Instant) -> WakeRecord {
    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1000.0;
    WakeRecord {
        tier,
        spawn_ms: ms(arrived, spawned),
        listening_ms: ms(spawned, listening),
        first_byte_ms: ms(listening, answered),
        total_ms: ms(arrived, answered),
        at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
    }
}

fn push_wake(entry: &mut AppEntry, record: WakeRecord) {
    if entry.wakes.len() == WAKE_HISTORY {
        entry.wakes.pop_front();
    }
    entry.wakes.push_back(record);
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
