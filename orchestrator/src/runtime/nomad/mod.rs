//! The Nomad driver: `render` (pure: revision → job JSON), `client` (the HTTP API), and
//! `NomadRuntime`, which runs apps on a Nomad cluster with the operations the local runtime has:
//! deploy, scale, stop, status, signal (the freeze tier), logs, and waiting for readiness.
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

pub mod client;
pub mod render;

use std::time::Duration;

use serde_json::Value;

pub use client::{NomadClient, NomadConfig, NomadError};
pub use render::{register_body, render_job, scale_body, Artifact, Deployment, Discovery, JobSettings, RenderError, SecretRef};

use crate::runtime::AppStatus;

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
}

impl NomadRuntime {
    pub fn new(config: NomadConfig, settings: JobSettings) -> Result<Self, NomadError> {
        Ok(Self { client: NomadClient::new(config)?, settings })
    }

    pub fn client(&self) -> &NomadClient {
        &self.client
    }

    /// Registers the revision's job. An existing job keeps its live count (`PreserveCounts`), so
    /// a redeploy neither wakes a sleeping app nor shrinks a busy one; a stopped job starts again
    /// at the rendered count.
    pub async fn deploy(&self, deployment: &Deployment) -> Result<Registered, DeployError> {
        let job = render_job(deployment, &self.settings)?;
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
        let deadline = tokio::time::Instant::now() + timeout;
        let mut index = None;
        loop {
            let answer = match tokio::time::timeout_at(deadline, self.client.allocations(app, index)).await {
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
