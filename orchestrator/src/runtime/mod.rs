//! Where apps run. `AppSpec` is everything needed to start one revision of an app; `local` runs
//! it in sandboxes on this machine (the embedded shape). The Nomad driver arrives with the
//! cluster issue behind the same operations.
//!
//! `Runtime` is the seam the autoscaler drives: it observes every app (tier, ready instances,
//! held requests, policy) and asks for a count, a freeze or a stop. Deploying, logs and status
//! stay inherent methods of each driver until the portal needs to choose between drivers.

pub mod local;
pub mod nomad;

use std::path::PathBuf;

pub use local::{LocalConfig, LocalRuntime, WakeRecord};

use std::future::Future;
use std::time::Instant;

use crate::autoscaler::Policy;
use crate::template::{HealthCheck, Resources, Start};

/// One revision of one app, ready to start: built files, how to start, environment, limits.
#[derive(Debug, Clone)]
pub struct AppSpec {
    pub app: String,
    pub revision: i32,
    /// The built project, mounted read-only at `/app`.
    pub app_dir: PathBuf,
    /// The app's persistent volume, mounted at `/data`; it survives deploys.
    pub data_dir: PathBuf,
    pub start: Start,
    /// The app's environment without the platform's variables (PORT, HOME, PATH are added).
    /// Holds secrets: never log it.
    pub env: Vec<(String, String)>,
    pub port_env: Option<String>,
    pub health: Option<HealthCheck>,
    pub resources: Resources,
    pub uid: u32,
    pub gid: u32,
    /// How the app scales: instances, target concurrency, the freeze and stop tiers.
    pub policy: Policy,
    /// Hosts the app may reach over HTTPS through an egress proxy in its namespace (subdomains
    /// included); empty means no outbound network at all.
    pub outbound: Vec<String>,
}

/// An app as `slipway status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AppStatus {
    /// `running`, `frozen`, `stopped`, `starting`, `crashed`.
    pub state: &'static str,
    pub revision: Option<i32>,
    pub instances: usize,
    pub restarts: u32,
    pub last_exit: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("the app's sandbox could not start: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("{reason}")]
    Unhealthy { reason: String, log_tail: Vec<String> },
    #[error("terminal programs are started per visitor by the web terminal, not deployed as servers")]
    NotAServer,
    #[error("apps built from a Dockerfile run only on the cluster (an image from its registry), not in this machine's sandboxes")]
    NeedsCluster,
    #[error("app {app:?} has no running instance")]
    NotRunning { app: String },
}

/// Where an app is, as the autoscaler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// At least one instance is ready and serving.
    Running,
    /// Every instance is frozen: memory kept, the next request thaws them.
    Frozen,
    /// No instance; the next request is a cold start.
    Stopped,
    /// The first instance is starting (a wake or a deploy).
    Starting,
    /// The last instance exited; a restart is pending.
    Crashed,
}

/// One app as the runtime reports it to the autoscaler each tick.
#[derive(Debug, Clone)]
pub struct Observation {
    pub app: String,
    pub policy: Policy,
    pub tier: Tier,
    /// Instances ready to serve (frozen ones count: they are kept, and thaw on a request).
    pub ready: u32,
    /// Instances being started.
    pub starting: u32,
    /// Requests the activator holds for this app right now.
    pub held: u32,
    /// When the app last had a request handed to it (or was deployed or woken).
    pub last_request: Instant,
    /// When the app was frozen, while it is.
    pub frozen_since: Option<Instant>,
}

/// What the autoscaler needs from wherever apps run. Every operation is idempotent: asking for the
/// count an app already has, freezing a frozen app or stopping a stopped one changes nothing.
pub trait Runtime: Send + Sync + 'static {
    /// Every app the runtime knows.
    fn observe(&self) -> impl Future<Output = Vec<Observation>> + Send;
    /// Runs `instances` instances of the app (at least 1; use `stop_instances` for zero). A stopped
    /// app is started; a frozen one keeps the count for when it thaws.
    fn scale(&self, app: &str, instances: u32) -> impl Future<Output = Result<(), String>> + Send;
    /// Freezes every instance of the app (the frozen tier).
    fn freeze(&self, app: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Stops every instance of the app (the stopped tier); the next request wakes it.
    fn stop_instances(&self, app: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Memory used by each frozen app's instances, in bytes (`None` where unknown), for evicting
    /// frozen apps under memory pressure.
    fn frozen_memory(&self) -> impl Future<Output = Vec<(String, Option<u64>)>> + Send;
}
