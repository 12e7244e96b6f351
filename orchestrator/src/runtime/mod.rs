//! Where apps run. `AppSpec` is everything needed to start one revision of an app; `local` runs
//! it in sandboxes on this machine (the embedded shape). The Nomad driver arrives with the
//! cluster issue behind the same operations: deploy, stop, status, logs.

pub mod local;
pub mod nomad;

use std::path::PathBuf;

pub use local::{LocalConfig, LocalRuntime, WakeRecord};

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
    pub idle: IdlePolicy,
    /// Hosts the app may reach over HTTPS through an egress proxy in its namespace (subdomains
    /// included); empty means no outbound network at all.
    pub outbound: Vec<String>,
}

/// When an idle app gives back its resources: first frozen (memory kept, thawed in milliseconds),
/// then stopped (nothing kept, the next request is a cold start).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePolicy {
    /// Idle this long (no request, nothing in flight) and the app is frozen. `None`: never frozen.
    pub freeze_after: Option<std::time::Duration>,
    /// Idle this long and the app is stopped. `None`: it keeps running.
    pub stop_after: Option<std::time::Duration>,
    /// An open connection with no new request counts as activity only this long (WebSocket, SSE).
    pub max_connection_idle: std::time::Duration,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        Self {
            freeze_after: Some(std::time::Duration::from_secs(60)),
            stop_after: Some(std::time::Duration::from_secs(300)),
            max_connection_idle: std::time::Duration::from_secs(600),
        }
    }
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
}
