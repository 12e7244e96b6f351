//! `NomadRuntime` as the autoscaler's `Runtime`, the gateway's `Resolver` (the activator) and the
//! policy feed's `PolicySink`.
//!
//! In a cluster Traefik routes an app's requests straight to its instances while Nomad has them
//! registered; when the app is at zero (or frozen, with Consul) its router is gone and Traefik's
//! catch-all sends the request to Slipway's gateway, whose resolver is this runtime. A request:
//!
//! ```text
//!   known app? ──no──▶ 404
//!      │ yes
//!   frozen? ──yes──▶ SIGCONT every instance, then as below
//!      │
//!   cached ready address (younger than address_ttl)? ──yes──▶ proxy to it
//!      │ no
//!   crawler / uptime checker? ──yes──▶ 503, nothing woken
//!      │
//!   hold (at most max_held) and wait on the app's one wake:
//!      count < 1 → scale to 1 (scale endpoint) → blocking queries until an allocation is
//!      healthy → its host address from `AllocatedResources` → every held request proxies there
//! ```
//!
//! A browser that waited `browser_wait` gets the self-reloading "starting" page, an API client a
//! 503 with Retry-After after `wake_timeout`, exactly as with the local runtime.
//!
//! Deliberately absent: scaling decisions (the autoscaler's), and any knowledge of the portal.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{addresses, cluster_policy, instances_of, view_of, NomadClient, NomadError, NomadRuntime, Tracked};
use crate::autoscaler::feed::PolicySink;
use crate::autoscaler::Policy;
use crate::gateway::{RequestHints, Resolution, Resolver, UnavailableReason, Upstream, UpstreamError};
use crate::runtime::{AppStatus, Observation, Runtime, Tier};

/// How the activator treats requests for apps that are not ready.
#[derive(Debug, Clone)]
pub struct ActivatorConfig {
    /// How long a held request waits for a waking app before it gets 503.
    pub wake_timeout: Duration,
    /// How long a browser waits before it gets the self-reloading "starting" page.
    pub browser_wait: Duration,
    /// Requests held per app while it wakes; more get 503 at once.
    pub max_held: u32,
    /// User-agent substrings (lowercase) that never wake an app.
    pub no_wake_agents: Vec<String>,
    /// How long looked-up instance addresses are reused before Nomad is asked again.
    pub address_ttl: Duration,
}

impl Default for ActivatorConfig {
    fn default() -> Self {
        Self {
            wake_timeout: Duration::from_secs(60),
            browser_wait: Duration::from_secs(1),
            max_held: 1000,
            no_wake_agents: vec!["slipway-health".to_owned()],
            address_ttl: Duration::from_secs(5),
        }
    }
}

impl PolicySink for NomadRuntime {
    fn replace_policies(&self, policies: HashMap<String, Policy>) {
        *self.policies.write().expect("the policy lock is never poisoned") = policies;
    }
}

impl Runtime for NomadRuntime {
    /// One allocation list per known app (concurrently). An app whose list cannot be read this
    /// tick is left out, so the autoscaler treats it as unknown rather than idle.
    async fn observe(&self) -> Vec<Observation> {
        let policies: Vec<(String, Policy)> =
            self.policies.read().expect("the policy lock is never poisoned").iter().map(|(app, p)| (app.clone(), p.clone())).collect();
        let known: std::collections::HashSet<String> = policies.iter().map(|(app, _)| app.clone()).collect();
        let mut lists = tokio::task::JoinSet::new();
        for (app, policy) in policies {
            let client = self.client.clone();
            lists.spawn(async move {
                let answer = client.allocations(&app, None).await;
                (app, policy, answer)
            });
        }
        let mut read = Vec::new();
        while let Some(joined) = lists.join_next().await {
            let Ok((app, policy, answer)) = joined else { continue };
            match answer {
                Ok(answer) => read.push((app, policy, instances_of(&answer.body))),
                Err(NomadError::NotFound(_)) => read.push((app, policy, Vec::new())),
                Err(error) => tracing::debug!(app, "cannot read the app's allocations this tick: {error}"),
            }
        }
        let now = Instant::now();
        let mut tracked = self.tracked();
        tracked.retain(|app, entry| known.contains(app) || entry.waking.is_some());
        let mut observations: Vec<Observation> = read
            .iter()
            .map(|(app, policy, instances)| {
                let entry = tracked.entry(app.clone()).or_insert_with(|| Tracked::new(now));
                let view = view_of(instances, entry.frozen_since.is_some(), entry.waking.is_some());
                entry.seen = Some(AppStatus {
                    state: match view.tier {
                        Tier::Running => "running",
                        Tier::Frozen => "frozen",
                        Tier::Stopped => "stopped",
                        Tier::Starting => "starting",
                        Tier::Crashed => "crashed",
                    },
                    revision: None,
                    instances: view.ready as usize,
                    restarts: instances
                        .iter()
                        .filter(|instance| instance.desired_status == "run")
                        .map(|instance| instance.restarts as u32)
                        .sum(),
                    last_exit: None,
                });
                if view.ready == 0 && view.tier != Tier::Starting {
                    // Nothing left to freeze or to route to (scaled down by someone else, or
                    // crashed): the flags describe instances that are gone.
                    entry.frozen_since = None;
                    entry.forget_upstreams();
                }
                Observation {
                    app: app.clone(),
                    policy: cluster_policy(policy, self.settings.discovery),
                    tier: view.tier,
                    ready: view.ready,
                    starting: view.starting,
                    held: entry.held,
                    last_request: entry.last_request,
                    frozen_since: entry.frozen_since,
                }
            })
            .collect();
        observations.sort_by(|a, b| a.app.cmp(&b.app));
        observations
    }

    async fn scale(&self, app: &str, instances: u32) -> Result<(), String> {
        if self.is_frozen(app) {
            self.thaw(app).await.map_err(|e| e.to_string())?;
        }
        NomadRuntime::scale(self, app, instances.max(1)).await.map_err(|e| e.to_string())?;
        if let Some(entry) = self.tracked().get_mut(app) {
            entry.forget_upstreams();
        }
        Ok(())
    }

    /// SIGSTOP to every running instance. Nomad's checks then fail, but the rendered checks never
    /// restart a task (no `CheckRestart`), so the frozen app is kept.
    async fn freeze(&self, app: &str) -> Result<(), String> {
        if self.is_frozen(app) {
            return Ok(());
        }
        let n_signalled = self.signal(app, "SIGSTOP").await.map_err(|e| e.to_string())?;
        if n_signalled == 0 {
            return Err(format!("app {app} has no running instance to freeze"));
        }
        let mut tracked = self.tracked();
        let entry = tracked.entry(app.to_owned()).or_insert_with(|| Tracked::new(Instant::now()));
        entry.frozen_since = Some(Instant::now());
        entry.forget_upstreams();
        Ok(())
    }

    /// Scales the job to 0 through the scale endpoint. A frozen app is thawed first, so its
    /// processes get Nomad's SIGTERM and the kill timeout instead of dying stopped.
    async fn stop_instances(&self, app: &str) -> Result<(), String> {
        if self.is_frozen(app) {
            self.thaw(app).await.map_err(|e| e.to_string())?;
        }
        NomadRuntime::scale(self, app, 0).await.map_err(|e| e.to_string())?;
        if let Some(entry) = self.tracked().get_mut(app) {
            entry.frozen_since = None;
            entry.forget_upstreams();
        }
        Ok(())
    }

    /// Unknown for every frozen app: the memory that matters is the client nodes', which Nomad's
    /// scheduler manages; the autoscaler's eviction (which reads this host's `/proc/meminfo`) is
    /// off in the cluster shape.
    async fn frozen_memory(&self) -> Vec<(String, Option<u64>)> {
        self.tracked().iter().filter(|(_, entry)| entry.frozen_since.is_some()).map(|(app, _)| (app.clone(), None)).collect()
    }
}

impl NomadRuntime {
    pub(super) fn is_frozen(&self, app: &str) -> bool {
        self.tracked().get(app).is_some_and(|entry| entry.frozen_since.is_some())
    }

    /// SIGCONT to every running instance; the app is no longer frozen even if some signal failed
    /// (an instance that cannot be signalled is not running, so it is not frozen either).
    pub async fn thaw(&self, app: &str) -> Result<usize, NomadError> {
        let result = self.signal(app, "SIGCONT").await;
        if let Some(entry) = self.tracked().get_mut(app) {
            entry.frozen_since = None;
        }
        result
    }

    fn is_no_wake_agent(&self, user_agent: &str) -> bool {
        let agent = user_agent.to_ascii_lowercase();
        self.activator.no_wake_agents.iter().any(|pattern| agent.contains(pattern.as_str()))
    }

    /// Starts the app's one wake: at least one instance, ready, and its address looked up.
    fn start_wake(&self, entry: &mut Tracked, app: &str) -> watch::Receiver<Option<Result<(), String>>> {
        let (done, waiting) = watch::channel(None);
        entry.waking = Some(waiting.clone());
        let (client, apps, timeout) = (self.client.clone(), self.apps.clone(), self.activator.wake_timeout);
        let app = app.to_owned();
        tokio::spawn(async move {
            let outcome = wake(&client, &app, timeout).await;
            let result = {
                let mut tracked = apps.lock().expect("the app table lock is never poisoned");
                let entry = tracked.entry(app.clone()).or_insert_with(|| Tracked::new(Instant::now()));
                entry.waking = None;
                match outcome {
                    Ok(upstreams) => {
                        entry.upstreams = upstreams;
                        entry.fetched = Some(Instant::now());
                        Ok(())
                    }
                    Err(reason) => {
                        entry.forget_upstreams();
                        Err(reason)
                    }
                }
            };
            if let Err(reason) = &result {
                tracing::warn!(app, "wake failed: {reason}");
            }
            let _ = done.send(Some(result));
        });
        waiting
    }
}

/// At least one instance (scaling from zero when needed), ready within `timeout`, and the ready
/// instances' addresses.
async fn wake(client: &NomadClient, app: &str, timeout: Duration) -> Result<Vec<SocketAddr>, String> {
    let status = client.scale_status(app).await.map_err(|e| e.to_string())?;
    let desired = status.pointer(&format!("/TaskGroups/{}/Desired", super::render::GROUP)).and_then(serde_json::Value::as_u64);
    if desired.unwrap_or(0) == 0 || status.get("JobStopped").and_then(serde_json::Value::as_bool) == Some(true) {
        tracing::info!(app, "waking from zero");
        client.scale(app, &super::scale_body(1, "slipway: wake on request")).await.map_err(|e| e.to_string())?;
    }
    if !super::wait_ready(client, app, 1, timeout).await.map_err(|e| e.to_string())? {
        return Err(format!("no instance of {app} became ready within {timeout:?}"));
    }
    let upstreams = addresses(client, app).await.map_err(|e| e.to_string())?;
    if upstreams.is_empty() {
        return Err(format!("nomad reported no address for the ready instances of {app}"));
    }
    Ok(upstreams)
}

async fn wait_for_wake(mut wake: watch::Receiver<Option<Result<(), String>>>, patience: Duration) -> Option<Result<(), String>> {
    match tokio::time::timeout(patience, wake.wait_for(Option::is_some)).await {
        Ok(Ok(done)) => done.clone(),
        Ok(Err(_)) => Some(Err("the wake was abandoned".to_owned())),
        Err(_) => None,
    }
}

impl Resolver for NomadRuntime {
    async fn resolve(&self, app: &str, hints: &RequestHints<'_>) -> Resolution {
        /// What to do once the lock is released (no lock is held across an await).
        enum Next {
            Answer(Resolution),
            Thaw,
            Wait(watch::Receiver<Option<Result<(), String>>>),
        }
        if !self.knows(app) {
            return Resolution::NotFound;
        }
        let mut woken = false;
        loop {
            let next = {
                let now = Instant::now();
                let mut tracked = self.tracked();
                let entry = tracked.entry(app.to_owned()).or_insert_with(|| Tracked::new(now));
                entry.last_request = now;
                let fresh = entry.fetched.is_some_and(|at| now.duration_since(at) < self.activator.address_ttl);
                if entry.frozen_since.is_some() {
                    Next::Thaw
                } else if (fresh || woken) && !entry.upstreams.is_empty() {
                    let upstream = entry.upstreams[entry.next_upstream % entry.upstreams.len()];
                    entry.next_upstream = entry.next_upstream.wrapping_add(1);
                    Next::Answer(Resolution::Ready(Upstream::Tcp(upstream)))
                } else if woken {
                    Next::Answer(Resolution::Unavailable { reason: UnavailableReason::WakeFailed, retry_after_secs: 5 })
                } else if entry.waking.is_none() && self.is_no_wake_agent(hints.user_agent) {
                    Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Stopped, retry_after_secs: 60 })
                } else if entry.held >= self.activator.max_held {
                    Next::Answer(Resolution::Unavailable { reason: UnavailableReason::Starting, retry_after_secs: 2 })
                } else {
                    entry.held += 1;
                    Next::Wait(match &entry.waking {
                        Some(waking) => waking.clone(),
                        None => self.start_wake(entry, app),
                    })
                }
            };
            let wake = match next {
                Next::Answer(resolution) => return resolution,
                Next::Thaw => match self.thaw(app).await {
                    Ok(_) => continue,
                    Err(error) => {
                        tracing::warn!(app, "thaw failed: {error}");
                        return Resolution::Unavailable { reason: UnavailableReason::Crashed, retry_after_secs: 5 };
                    }
                },
                Next::Wait(wake) => wake,
            };
            let patience = if hints.wants_html { self.activator.browser_wait } else { self.activator.wake_timeout };
            let outcome = wait_for_wake(wake, patience).await;
            if let Some(entry) = self.tracked().get_mut(app) {
                entry.held = entry.held.saturating_sub(1);
            }
            match outcome {
                Some(Ok(())) => woken = true,
                Some(Err(_)) => return Resolution::Unavailable { reason: UnavailableReason::WakeFailed, retry_after_secs: 5 },
                None => {
                    return Resolution::Unavailable {
                        reason: UnavailableReason::Starting,
                        retry_after_secs: if hints.wants_html { 1 } else { 2 },
                    }
                }
            }
        }
    }

    /// The cached addresses may be stale (an instance moved or stopped): the next request asks
    /// Nomad again.
    fn on_upstream_error(&self, app: &str, upstream: &Upstream, error: &UpstreamError) {
        tracing::debug!(app, %upstream, "upstream failed, forgetting the app's cached addresses: {error}");
        if let Some(entry) = self.tracked().get_mut(app) {
            entry.forget_upstreams();
        }
    }
}
