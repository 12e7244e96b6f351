//! The Nomad driver: `render` (pure: revision → job JSON), `client` (the HTTP API), `exec` (the
//! allocation exec WebSocket), `shell` (owner shells through it), and `NomadRuntime`, which runs
//! apps on a Nomad cluster with the operations the local runtime has: deploy, scale, stop,
//! status, signal (the freeze tier), logs, owner shells, and waiting for readiness. `NomadRuntime` implements the autoscaler's `Runtime` (policies come
//! from Redis through `autoscaler::feed`, as `PolicySink`) and the gateway's `Resolver`
//! (`activator.rs`): the gateway in front of it is the activator Traefik sends apps at zero to.
//!
//! Only this module knows Nomad's vocabulary (Job, TaskGroup, Allocation, and Deployment in
//! Nomad's sense of a rollout); the rest of Slipway speaks of apps, revisions and instances. One
//! app is one job (ID = the app's name) with one group (`web`) and one task (`app`).
//!
//! An app's life on Nomad:
//!
//! ```text
//!   deploy ──► registered (Count 1, or the live count when re-registered: PreserveCounts)
//!                 │  scale(n) through the scale endpoint, never by re-registering
//!                 ▼
//!   running (n ≥ 1) ◄──► stopped (Count 0: no allocation, no service; Traefik falls back
//!     │     ▲             to the activator)
//!     │     │ signal SIGCONT (thaw)
//!     ▼     │
//!   frozen (SIGSTOP to every allocation; checks fail but never restart the task)
//!                 │ stop(purge)
//!                 ▼
//!               gone
//! ```
//!
//! Idempotence: `deploy` of an unchanged job is a registration Nomad treats as a no-op update;
//! `scale` to the current count sends nothing (a scale call would start a Nomad deployment and
//! block the next one); `stop` of a missing job succeeds.

pub mod activator;
pub mod build;
pub mod client;
pub mod exec;
pub mod render;
pub mod shell;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::watch;

pub use client::{NomadClient, NomadConfig, NomadError};
pub use exec::{ExecError, ExecEvent, ExecReader, ExecSession, ExecWriter};
pub use render::{register_body, render_job, scale_body, Artifact, Built, Deployment, Discovery, JobSettings, RenderError, SecretRef};
pub use shell::{ClusterShell, ShellError};

pub use activator::ActivatorConfig;
pub use build::{
    image_reference, render_build_job, render_image_build_job, BuildJob, BuildOutcome, ClusterBuildError, ImageBuildJob, IMAGE_BUILDER,
};

use crate::autoscaler::Policy;
use crate::runtime::{AppStatus, Tier};

/// What `deploy` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub eval_id: String,
    pub job_modify_index: u64,
    /// True when the job existed and kept its live count.
    pub preserved_counts: bool,
}

/// One allocation as the runtime cares about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub alloc_id: String,
    pub client_status: String,
    pub desired_status: String,
    /// `Some(true)` healthy, `Some(false)` unhealthy, `None` undecided or no Nomad deployment.
    pub healthy: Option<bool>,
    pub restarts: u64,
}

impl Instance {
    /// Ready to take traffic (hashistack.md §6): running, meant to run, and healthy; with
    /// deployments off (`DeploymentStatus` null) a running task counts.
    pub fn is_ready(&self) -> bool {
        self.client_status == "running" && self.desired_status == "run" && self.healthy == Some(true)
    }

    fn from_stub(stub: &Value) -> Self {
        let text = |key: &str| stub.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        let deployment = stub.get("DeploymentStatus").filter(|status| !status.is_null());
        let healthy = match deployment {
            // Without a Nomad deployment there is no health verdict; a running task is taken as
            // healthy (its checks still gate Consul and so Traefik's Consul provider).
            None => (text("ClientStatus") == "running").then_some(true),
            Some(status) => status.get("Healthy").and_then(Value::as_bool),
        };
        let restarts = stub
            .get("TaskStates")
            .and_then(Value::as_object)
            .map(|states| states.values().filter_map(|state| state.get("Restarts").and_then(Value::as_u64)).sum())
            .unwrap_or(0);
        Self { alloc_id: text("ID"), client_status: text("ClientStatus"), desired_status: text("DesiredStatus"), healthy, restarts }
    }
}

/// Runs apps as Nomad jobs. Construct once per cluster; cheap to share behind an `Arc`.
pub struct NomadRuntime {
    client: NomadClient,
    settings: JobSettings,
    activator: ActivatorConfig,
    /// What Nomad does not know about an app: held requests, the freeze, the activator's cached
    /// instance addresses. Never locked across an await.
    apps: Arc<Mutex<HashMap<String, Tracked>>>,
    /// The apps Slipway runs here and how each scales, as the portal published them.
    policies: RwLock<HashMap<String, Policy>>,
}

/// The runtime's own view of one app, beside Nomad's.
#[derive(Debug)]
struct Tracked {
    /// Requests the activator holds for this app right now.
    held: u32,
    /// When the activator last handed on a request for the app (or first saw it).
    last_request: Instant,
    /// Set by `freeze` (SIGSTOP sent to every instance), cleared by the thaw.
    frozen_since: Option<Instant>,
    /// The one wake (or address lookup) in progress; every held request waits on it.
    waking: Option<watch::Receiver<Option<Result<(), String>>>>,
    /// Ready instances' host addresses, as Nomad reported them at `fetched`.
    upstreams: Vec<SocketAddr>,
    fetched: Option<Instant>,
    next_upstream: usize,
    /// The app as the last observation saw it, for status pages that cannot wait on Nomad.
    seen: Option<AppStatus>,
}

impl Tracked {
    fn new(now: Instant) -> Self {
        Self {
            held: 0,
            last_request: now,
            frozen_since: None,
            waking: None,
            upstreams: Vec::new(),
            fetched: None,
            next_upstream: 0,
            seen: None,
        }
    }

    fn forget_upstreams(&mut self) {
        self.upstreams.clear();
        self.fetched = None;
    }
}

impl NomadRuntime {
    pub fn new(config: NomadConfig, settings: JobSettings) -> Result<Self, NomadError> {
        Ok(Self {
            client: NomadClient::new(config)?,
            settings,
            activator: ActivatorConfig::default(),
            apps: Arc::new(Mutex::new(HashMap::new())),
            policies: RwLock::new(HashMap::new()),
        })
    }

    /// The same runtime with the activator's settings (wake timeout, held requests, ...).
    pub fn with_activator(mut self, activator: ActivatorConfig) -> Self {
        self.activator = activator;
        self
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    /// Sets one app's scaling policy (the Redis feed replaces them all at once).
    pub fn set_policy(&self, app: &str, policy: Policy) {
        self.policies.write().expect("the policy lock is never poisoned").insert(app.to_owned(), policy);
    }

    /// Forgets an app: the autoscaler no longer observes it and the activator answers 404.
    pub fn forget(&self, app: &str) {
        self.policies.write().expect("the policy lock is never poisoned").remove(app);
        self.tracked().remove(app);
    }

    fn tracked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.apps.lock().expect("the app table lock is never poisoned")
    }

    /// The app as the autoscaler's last observation saw it (`None` before the first one).
    pub fn last_status(&self, app: &str) -> Option<AppStatus> {
        self.tracked().get(app).and_then(|entry| entry.seen.clone())
    }

    fn knows(&self, app: &str) -> bool {
        self.policies.read().expect("the policy lock is never poisoned").contains_key(app)
    }

    pub fn client(&self) -> &NomadClient {
        &self.client
    }

    /// Registers the revision's job. An existing job keeps its live count (`PreserveCounts`), so
    /// a redeploy neither wakes a sleeping app nor shrinks a busy one; a stopped job starts again
    /// at the rendered count.
    pub async fn deploy(&self, deployment: &Deployment) -> Result<Registered, DeployError> {
        self.deploy_with(deployment, &self.settings).await
    }

    /// `deploy` with settings of the caller's (the portal names a Vault role per project).
    pub async fn deploy_with(&self, deployment: &Deployment, settings: &JobSettings) -> Result<Registered, DeployError> {
        let job = render_job(deployment, settings)?;
        let existing = self.client.job(&deployment.app).await?;
        let preserve = existing.as_ref().is_some_and(|job| job.get("Stop").and_then(Value::as_bool) != Some(true));
        let answer = self.client.register(&register_body(job, preserve)).await?;
        Ok(Registered {
            eval_id: answer.body.get("EvalID").and_then(Value::as_str).unwrap_or_default().to_owned(),
            job_modify_index: answer.body.get("JobModifyIndex").and_then(Value::as_u64).unwrap_or(answer.index),
            preserved_counts: preserve,
        })
    }

    /// Sets the app's number of instances through the scale endpoint (never by re-registering).
    /// Asking for the current count sends nothing. A running Nomad deployment blocks scaling;
    /// the client retries with backoff until `scale_blocked_timeout`.
    pub async fn scale(&self, app: &str, n_instances: u32) -> Result<(), NomadError> {
        let status = self.client.scale_status(app).await?;
        let desired = status.pointer(&format!("/TaskGroups/{}/Desired", render::GROUP)).and_then(Value::as_u64);
        if desired == Some(u64::from(n_instances)) && status.get("JobStopped").and_then(Value::as_bool) != Some(true) {
            return Ok(());
        }
        let message = if n_instances == 0 { "slipway: scale to zero" } else { "slipway: autoscaler" };
        self.client.scale(app, &scale_body(n_instances, message)).await?;
        Ok(())
    }

    /// Stops the app's job; `purge` also removes it from Nomad's history. A missing job is fine.
    pub async fn stop(&self, app: &str, purge: bool) -> Result<(), NomadError> {
        self.client.stop(app, purge).await
    }

    /// The app's instances (allocations meant to run, or still running).
    pub async fn instances(&self, app: &str) -> Result<(Vec<Instance>, u64), NomadError> {
        let answer = self.client.allocations(app, None).await?;
        Ok((instances_of(&answer.body), answer.index))
    }

    /// The app as `slipway status` shows it.
    pub async fn status(&self, app: &str) -> Result<AppStatus, NomadError> {
        let Some(job) = self.client.job(app).await? else {
            return Ok(AppStatus { state: "stopped", revision: None, instances: 0, restarts: 0, last_exit: None });
        };
        let (instances, _) = self.instances(app).await?;
        Ok(status_of(&job, &instances))
    }

    /// Waits, with blocking queries on the job's allocations, until `n_instances` are ready, or
    /// `timeout` passes (then `Ok(false)`).
    pub async fn wait_ready(&self, app: &str, n_instances: usize, timeout: Duration) -> Result<bool, NomadError> {
        wait_ready(&self.client, app, n_instances, timeout).await
    }

    /// The host addresses of the app's ready instances (the allocation's `http` port as Nomad
    /// mapped it), whatever the service provider.
    pub async fn addresses(&self, app: &str) -> Result<Vec<SocketAddr>, NomadError> {
        addresses(&self.client, app).await
    }

    /// Sends `signal` (`SIGSTOP`, `SIGCONT`, `SIGHUP`, ...) to the app's task in every running
    /// instance; returns how many were signalled. The freeze tier is SIGSTOP, the thaw SIGCONT.
    pub async fn signal(&self, app: &str, signal: &str) -> Result<usize, NomadError> {
        let (instances, _) = self.instances(app).await?;
        let mut n_signalled = 0;
        for instance in instances.iter().filter(|instance| instance.client_status == "running" && instance.desired_status == "run") {
            self.client.signal(&instance.alloc_id, render::TASK, signal).await?;
            n_signalled += 1;
        }
        Ok(n_signalled)
    }

    /// Follows the app's output: the last `tail_bytes` of each running instance's stdout and
    /// stderr, then new lines as Nomad streams them. The receiver ends when every stream has
    /// ended; dropping it stops them.
    pub async fn follow_logs(&self, app: &str, tail_bytes: u64) -> Result<tokio::sync::mpsc::Receiver<String>, NomadError> {
        let (instances, _) = self.instances(app).await?;
        let (lines, receiver) = tokio::sync::mpsc::channel(256);
        for instance in instances.iter().filter(|instance| instance.client_status == "running" && instance.desired_status == "run") {
            for stream in ["stdout", "stderr"] {
                let (client, lines, alloc_id) = (self.client.clone(), lines.clone(), instance.alloc_id.clone());
                tokio::spawn(async move {
                    let (chunks, mut arriving) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
                    let follow = tokio::spawn(async move { client.follow_logs(&alloc_id, render::TASK, stream, tail_bytes, chunks).await });
                    let mut partial = String::new();
                    while let Some(chunk) = arriving.recv().await {
                        partial.push_str(&String::from_utf8_lossy(&chunk));
                        while let Some(end) = partial.find('\n') {
                            let line: String = partial.drain(..=end).collect();
                            if lines.send(line.trim_end_matches('\n').to_owned()).await.is_err() {
                                follow.abort();
                                return;
                            }
                        }
                    }
                    if !partial.is_empty() {
                        let _ = lines.send(partial).await;
                    }
                    if let Ok(Err(error)) = follow.await {
                        let _ = lines.send(format!("[slipway] the log stream from nomad ended: {error}")).await;
                    }
                });
            }
        }
        Ok(receiver)
    }

    /// The last lines of the app's output (stdout and stderr of each running instance, the
    /// instances in order), at most `lines` in all.
    pub async fn logs(&self, app: &str, lines: usize) -> Result<Vec<String>, NomadError> {
        let (instances, _) = self.instances(app).await?;
        let mut out = Vec::new();
        for instance in instances.iter().filter(|instance| instance.desired_status == "run") {
            for stream in ["stdout", "stderr"] {
                let bytes = self.client.logs(&instance.alloc_id, render::TASK, stream, 64 * 1024).await?;
                out.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
            }
        }
        let skip = out.len().saturating_sub(lines);
        Ok(out.split_off(skip))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Nomad(#[from] NomadError),
}

async fn wait_ready(client: &NomadClient, app: &str, n_instances: usize, timeout: Duration) -> Result<bool, NomadError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut index = None;
    loop {
        let answer = match tokio::time::timeout_at(deadline, client.allocations(app, index)).await {
            Ok(answer) => answer?,
            Err(_) => return Ok(false),
        };
        let ready = instances_of(&answer.body).iter().filter(|instance| instance.is_ready()).count();
        if ready >= n_instances {
            return Ok(true);
        }
        // Always resend the last index seen, so the query blocks until something changes.
        index = Some(answer.index.max(index.unwrap_or(0)));
    }
}

async fn addresses(client: &NomadClient, app: &str) -> Result<Vec<SocketAddr>, NomadError> {
    let answer = client.allocations(app, None).await?;
    let mut out = Vec::new();
    for instance in instances_of(&answer.body).iter().filter(|instance| instance.is_ready()) {
        let allocation = client.allocation(&instance.alloc_id).await?;
        out.extend(port_address(&allocation, render::PORT_LABEL));
    }
    Ok(out)
}

/// PURE: where an allocation's port `label` is reachable from other hosts:
/// `AllocatedResources.Shared.Ports[] {Label, Value (host port), To, HostIP}`.
pub fn port_address(allocation: &Value, label: &str) -> Option<SocketAddr> {
    let ports = allocation.pointer("/AllocatedResources/Shared/Ports")?.as_array()?;
    let port = ports.iter().find(|port| port.get("Label").and_then(Value::as_str) == Some(label))?;
    let host_port = u16::try_from(port.get("Value")?.as_u64()?).ok().filter(|value| *value > 0)?;
    let ip: IpAddr = port.get("HostIP")?.as_str()?.parse().ok()?;
    Some(SocketAddr::new(ip, host_port))
}

/// What the autoscaler sees of one app: its tier, ready instances and instances starting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppView {
    pub tier: Tier,
    pub ready: u32,
    pub starting: u32,
}

/// PURE: the app's allocations (and what only Slipway knows: frozen, a wake in progress) → its
/// tier. Ready instances are running and healthy; starting ones are meant to run but not ready
/// yet (or the activator's wake, before Nomad placed anything). A frozen app with instances is
/// `Frozen`; no live instance after a failed one is `Crashed`; nothing at all is `Stopped`.
pub fn view_of(instances: &[Instance], frozen: bool, waking: bool) -> AppView {
    let live: Vec<&Instance> = instances
        .iter()
        .filter(|instance| instance.desired_status == "run" && matches!(instance.client_status.as_str(), "pending" | "running"))
        .collect();
    let ready = live.iter().filter(|instance| instance.is_ready()).count() as u32;
    let starting = live.len() as u32 - ready + u32::from(waking && ready == 0 && live.is_empty());
    let failed = instances.iter().any(|instance| instance.desired_status == "run" && instance.client_status == "failed");
    let tier = match () {
        _ if ready > 0 && frozen => Tier::Frozen,
        _ if ready > 0 => Tier::Running,
        _ if starting > 0 => Tier::Starting,
        _ if failed => Tier::Crashed,
        _ => Tier::Stopped,
    };
    AppView { tier, ready, starting }
}

/// The policy the autoscaler applies on this cluster. With Nomad's own service discovery the
/// freeze tier is off: Traefik's Nomad provider ignores health, so a frozen instance would keep
/// its router and its requests would hang instead of reaching the activator. Idle apps go straight
/// to zero there. With Consul, a frozen instance fails its check and Traefik drops it (`strictChecks`).
pub fn cluster_policy(policy: &Policy, discovery: Discovery) -> Policy {
    match discovery {
        Discovery::Consul => policy.clone(),
        Discovery::Nomad => Policy { freeze_after_s: None, ..policy.clone() },
    }
}

fn instances_of(allocations: &Value) -> Vec<Instance> {
    allocations.as_array().map(|stubs| stubs.iter().map(Instance::from_stub).collect()).unwrap_or_default()
}

/// PURE: a job and its instances → the app's status. A job at count 0 shows `Status: "dead"`
/// with `Stop: false` (the recorded scaling0 fixture): that is an app asleep, `stopped`.
pub fn status_of(job: &Value, instances: &[Instance]) -> AppStatus {
    let revision = job.pointer("/Meta/slipway.revision").and_then(Value::as_str).and_then(|text| text.parse().ok());
    let desired = job.pointer("/TaskGroups/0/Count").and_then(Value::as_u64).unwrap_or(0);
    let live: Vec<&Instance> = instances.iter().filter(|instance| instance.desired_status == "run").collect();
    let ready = live.iter().filter(|instance| instance.is_ready()).count();
    let failed = live.iter().any(|instance| instance.client_status == "failed" || instance.healthy == Some(false));
    let stopped = job.get("Stop").and_then(Value::as_bool) == Some(true) || desired == 0;
    let state = match () {
        _ if stopped => "stopped",
        _ if failed => "crashed",
        _ if ready > 0 => "running",
        _ => "starting",
    };
    AppStatus { state, revision, instances: ready, restarts: live.iter().map(|instance| instance.restarts as u32).sum(), last_exit: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nomad").join(name);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn reads_instances_from_the_recorded_allocation_list() {
        let instances = instances_of(&fixture("job-allocations-list-response.json"));
        assert!(!instances.is_empty());
        assert!(instances.iter().all(|instance| !instance.alloc_id.is_empty() && !instance.client_status.is_empty()));
    }

    #[test]
    fn a_job_at_count_zero_is_stopped_and_a_running_one_counts_ready_instances() {
        let check = |job: Value, instances: &[Instance], expected_state: &str, expected_ready: usize| {
            let status = status_of(&job, instances);
            assert_eq!((status.state, status.instances), (expected_state, expected_ready));
        };
        check(fixture("job-read-service-scaling0-traefik.json"), &[], "stopped", 0);
        check(fixture("job-read-stopped-scaling-enabled-traefik.json"), &[], "stopped", 0);
        let ready = Instance {
            alloc_id: "a".into(),
            client_status: "running".into(),
            desired_status: "run".into(),
            healthy: Some(true),
            restarts: 1,
        };
        let undecided = Instance { healthy: None, ..ready.clone() };
        let unhealthy = Instance { healthy: Some(false), ..ready.clone() };
        check(fixture("job-read-service-scaling1-traefik.json"), std::slice::from_ref(&ready), "running", 1);
        check(fixture("job-read-service-scaling1-traefik.json"), &[undecided], "starting", 0);
        check(fixture("job-read-service-scaling1-traefik.json"), &[unhealthy], "crashed", 0);
    }

    #[test]
    fn an_apps_tier_comes_from_its_allocations_and_what_slipway_knows() {
        let instance = |client: &str, desired: &str, healthy: Option<bool>| Instance {
            alloc_id: "a".into(),
            client_status: client.into(),
            desired_status: desired.into(),
            healthy,
            restarts: 0,
        };
        let ready = instance("running", "run", Some(true));
        let check = |instances: &[Instance], frozen: bool, waking: bool, expected: (Tier, u32, u32)| {
            let view = view_of(instances, frozen, waking);
            assert_eq!((view.tier, view.ready, view.starting), expected, "{instances:?} frozen={frozen} waking={waking}");
        };
        check(&[], false, false, (Tier::Stopped, 0, 0));
        check(&[], false, true, (Tier::Starting, 0, 1));
        check(&[instance("complete", "stop", None)], false, false, (Tier::Stopped, 0, 0));
        check(&[instance("pending", "run", None)], false, false, (Tier::Starting, 0, 1));
        check(&[ready.clone(), instance("running", "run", None)], false, false, (Tier::Running, 1, 1));
        check(std::slice::from_ref(&ready), true, false, (Tier::Frozen, 1, 0));
        check(&[instance("failed", "run", None)], false, false, (Tier::Crashed, 0, 0));
        check(&[ready.clone(), instance("failed", "run", None)], false, false, (Tier::Running, 1, 0));
    }

    #[test]
    fn an_instances_address_is_its_host_ip_and_mapped_port() {
        let allocation = serde_json::json!({"AllocatedResources": {"Shared": {"Ports": [
            {"Label": "metrics", "Value": 9102, "To": 9102, "HostIP": "10.0.3.12"},
            {"Label": "http", "Value": 28473, "To": 8080, "HostIP": "10.0.3.12"}
        ]}}});
        assert_eq!(port_address(&allocation, "http"), Some("10.0.3.12:28473".parse().unwrap()));
        assert_eq!(port_address(&allocation, "grpc"), None);
        assert_eq!(port_address(&serde_json::json!({"AllocatedResources": null}), "http"), None);
        let unmapped =
            serde_json::json!({"AllocatedResources": {"Shared": {"Ports": [{"Label": "http", "Value": 0, "HostIP": "10.0.3.12"}]}}});
        assert_eq!(port_address(&unmapped, "http"), None);
    }

    #[test]
    fn nomads_own_discovery_turns_the_freeze_tier_off() {
        let policy = Policy { freeze_after_s: Some(60.0), ..Policy::default() };
        assert_eq!(cluster_policy(&policy, Discovery::Nomad).freeze_after_s, None);
        assert_eq!(cluster_policy(&policy, Discovery::Nomad).idle_to_zero_s, policy.idle_to_zero_s);
        assert_eq!(cluster_policy(&policy, Discovery::Consul), policy);
    }

    #[test]
    fn readiness_needs_running_run_and_a_healthy_verdict() {
        let stub = |client: &str, desired: &str, deployment: Value| {
            Instance::from_stub(
                &serde_json::json!({"ID": "x", "ClientStatus": client, "DesiredStatus": desired, "DeploymentStatus": deployment}),
            )
        };
        assert!(stub("running", "run", serde_json::json!({"Healthy": true})).is_ready());
        assert!(!stub("running", "run", serde_json::json!({"Healthy": null})).is_ready(), "null is undecided");
        assert!(!stub("running", "stop", serde_json::json!({"Healthy": true})).is_ready());
        assert!(!stub("pending", "run", Value::Null).is_ready());
        assert!(stub("running", "run", Value::Null).is_ready(), "deployments off: a running task counts");
    }
}
