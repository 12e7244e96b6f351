//! The build worker: takes queued revisions (at most `deploy.max_concurrent_builds` at once),
//! unpacks the artifact, runs the plan's build steps in sandboxes, and hands the result to the
//! runtime, which switches traffic only once the new revision is healthy. Every outcome is
//! written to the revision (`failed` with the reason, or `live`), and the build's output to its
//! log file, which the portal and the CLI stream.
//!
//! A failed build or an unhealthy start leaves the previous revision live. The build's network is
//! the installation's `deploy.build_network` (by default: package registries only, through the
//! per-build egress proxy that `build::run` starts).
//!
//! Folders under the data dir: `apps/<project id>/r<n>` (built revisions), `volumes/<project id>`
//! (the app's `/data`), `cache/<project id>/<cache>` (dependency caches, per project so one
//! project cannot poison another's), `logs/builds/<revision id>.log`, `logs/apps/<name>/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use orchestrator::build::{self, BuildLog, BuildSpec};
use orchestrator::runtime::{AppSpec, LocalRuntime};
use orchestrator::sandbox::HostSupport;
use orchestrator::template::BuildPlan;
use tokio::sync::{watch, Semaphore};

use crate::db::{self, models::Revision};
use crate::state::AppState;

/// Sandbox uids: each project runs as its own unprivileged uid, far above normal users.
const UID_BASE: u32 = 200_000;

pub fn project_uid(project_id: i64) -> u32 {
    UID_BASE + (project_id.rem_euclid(1_000_000) as u32)
}

pub fn revision_dir(data_dir: &Path, project_id: i64, number: i32) -> PathBuf {
    data_dir.join("apps").join(project_id.to_string()).join(format!("r{number}"))
}

pub fn volume_dir(data_dir: &Path, project_id: i64) -> PathBuf {
    data_dir.join("volumes").join(project_id.to_string())
}

pub fn build_log_path(data_dir: &Path, revision_id: i64) -> PathBuf {
    data_dir.join("logs").join("builds").join(format!("{revision_id}.log"))
}

/// A build log written to a file as lines arrive.
struct FileLog {
    file: Mutex<std::fs::File>,
}

impl BuildLog for FileLog {
    fn line(&self, line: &str) {
        let mut file = self.file.lock().expect("log lock is never poisoned");
        let _ = writeln!(file, "{line}");
    }
}

fn chown_tree(root: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(root, Some(uid), Some(gid))?;
    if root.is_dir() && !root.is_symlink() {
        for entry in std::fs::read_dir(root)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

fn ensure_owned_dir(dir: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
}

pub struct BuildWorker {
    pub state: AppState,
    pub runtime: Arc<LocalRuntime>,
    pub host: HostSupport,
}

impl BuildWorker {
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.state.config.deploy.max_concurrent_builds));
        loop {
            if *shutdown.borrow() {
                return;
            }
            let permit = tokio::select! {
                permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                _ = shutdown.changed() => return,
            };
            let lease = chrono::Duration::from_std(self.state.config.deploy.build_timeout + Duration::from_secs(300)).expect("lease fits");
            let now = Utc::now();
            match self.state.db.run(move |conn| db::revisions::claim_queued(conn, now, now + lease)).await {
                Ok(Some(revision)) => {
                    let worker = self.clone();
                    tokio::spawn(async move {
                        let revision_id = revision.id;
                        if let Err(e) = worker.build_and_deploy(revision).await {
                            tracing::error!(revision_id, "build worker: {e:#}");
                        }
                        drop(permit);
                    });
                    continue;
                }
                Ok(None) => drop(permit),
                Err(e) => {
                    drop(permit);
                    tracing::warn!("build worker cannot read the queue: {e}");
                }
            }
            tokio::select! {
                _ = self.state.builds.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    async fn build_and_deploy(&self, revision: Revision) -> anyhow::Result<()> {
        let data_dir = std::path::absolute(&self.state.config.data_dir)?;
        let log_path = build_log_path(&data_dir, revision.id);
        std::fs::create_dir_all(log_path.parent().expect("log path has a parent"))?;
        let log = FileLog { file: Mutex::new(std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&log_path)?) };
        log.line(&format!("[slipway] building revision {} ({})", revision.number, revision.template));
        let outcome = self.build(&revision, &data_dir, &log).await;
        let revision_id = revision.id;
        match outcome {
            Err(reason) => {
                log.line(&format!("[slipway] build failed: {reason}"));
                self.state.db.run(move |conn| db::revisions::finish_build(conn, revision_id, "failed", None, Some(&reason))).await?;
            }
            Ok((plan, app_dir)) => {
                let plan_json = serde_json::to_value(&plan)?;
                self.state.db.run(move |conn| db::revisions::finish_build(conn, revision_id, "built", Some(plan_json), None)).await?;
                log.line("[slipway] starting the new revision");
                if let Err(reason) = self.deploy(&revision, &plan, app_dir, &data_dir, &log).await {
                    log.line(&format!("[slipway] the new revision did not start: {reason}"));
                    self.state.db.run(move |conn| db::revisions::set_status(conn, revision_id, "failed", Some(&reason))).await?;
                }
            }
        }
        Ok(())
    }

    /// Unpacks and builds; the error is a sentence for the student.
    async fn build(&self, revision: &Revision, data_dir: &Path, log: &FileLog) -> Result<(BuildPlan, PathBuf), String> {
        let plan: BuildPlan = revision.plan.clone().and_then(|p| serde_json::from_value(p).ok()).ok_or("the revision has no build plan")?;
        let uid = project_uid(revision.project_id);
        let app_dir = revision_dir(data_dir, revision.project_id, revision.number);
        if let orchestrator::template::Start::Image { dockerfile } = &plan.start {
            let Some(cluster) = self.state.cluster.as_ref() else {
                return Err("Dockerfile projects are built and run only on a Slipway cluster with an image registry, and this installation is not one".to_owned());
            };
            cluster.build_image(&self.state, revision, dockerfile, log).await?;
            return Ok((plan, app_dir));
        }
        if let Some(cluster) = self.state.cluster.as_ref().filter(|cluster| cluster.builds_in_cluster()) {
            cluster.build(&self.state, revision, &plan, &app_dir, log).await?;
            return Ok((plan, app_dir));
        }
        let artifacts = self.state.artifacts.clone();
        let artifact_id = orchestrator::artifact::ArtifactId::parse(&revision.artifact_id).map_err(|e| e.to_string())?;
        let limits = self.state.config.artifact_limits();
        let unpack_dir = app_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            if unpack_dir.exists() {
                std::fs::remove_dir_all(&unpack_dir).map_err(|e| format!("cannot clear an old build folder: {e}"))?;
            }
            artifacts.unpack(&artifact_id, &unpack_dir, &limits).map_err(|e| e.to_string())?;
            chown_tree(&unpack_dir, uid, uid).map_err(|e| format!("cannot hand the build folder to the sandbox user: {e}"))
        })
        .await
        .map_err(|e| format!("unpacking failed: {e}"))??;
        let mut cache_dirs = Vec::new();
        for cache in &plan.caches {
            let dir = data_dir.join("cache").join(revision.project_id.to_string()).join(&cache.name);
            ensure_owned_dir(&dir, uid, uid).map_err(|e| format!("cannot prepare the {} cache: {e}", cache.name))?;
            cache_dirs.push((cache.name.clone(), dir));
        }
        let deploy = &self.state.config.deploy;
        let spec = BuildSpec {
            // Cgroup names are host-wide; the revision's own id is not (every database counts from 1).
            name: format!("build-{}-r{}-{}", revision.project_id, revision.number, &uuid::Uuid::new_v4().simple().to_string()[..12]),
            app_dir: app_dir.clone(),
            cache_dirs,
            plan: &plan,
            uid,
            gid: uid,
            memory_bytes: deploy.build_memory_mb * 1024 * 1024,
            cpu_millis: 1000,
            max_pids: 512,
            timeout: deploy.build_timeout,
            network: deploy.build_network.clone(),
        };
        build::run(&spec, &self.host, log).await.map_err(|e| e.to_string())?;
        Ok((plan, app_dir))
    }

    /// Starts the revision and makes it live. The log line comes before the status change: the
    /// log stream ends once it sees the final status, and must already hold the last line.
    async fn deploy(&self, revision: &Revision, plan: &BuildPlan, app_dir: PathBuf, data_dir: &Path, log: &FileLog) -> Result<(), String> {
        let project_id = revision.project_id;
        let project = self
            .state
            .db
            .run(move |conn| db::projects::find_by_id(conn, project_id))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the project was deleted")?;
        if let Some(cluster) = &self.state.cluster {
            cluster.deploy(&self.state, &project, revision.number, plan, &app_dir).await?;
            let revision_id = revision.id;
            log.line("[slipway] the new revision is live on the cluster");
            self.state.db.run(move |conn| db::revisions::make_live(conn, project_id, revision_id)).await.map_err(|e| e.to_string())?;
            return Ok(());
        }
        let spec = app_spec(&self.state, &project, revision.number, plan, app_dir, data_dir).await?;
        self.runtime.deploy(spec).await.map_err(|e| match e {
            orchestrator::runtime::RuntimeError::Unhealthy { reason, log_tail } if !log_tail.is_empty() => {
                format!("{reason}; the app printed:\n{}", log_tail.join("\n"))
            }
            other => other.to_string(),
        })?;
        let revision_id = revision.id;
        log.line("[slipway] the new revision is live");
        self.state.db.run(move |conn| db::revisions::make_live(conn, project_id, revision_id)).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// Everything the runtime needs to start a built revision of `project`.
pub async fn app_spec(
    state: &AppState,
    project: &db::models::Project,
    number: i32,
    plan: &BuildPlan,
    app_dir: PathBuf,
    data_dir: &Path,
) -> Result<AppSpec, String> {
    let uid = project_uid(project.id);
    let volume = volume_dir(data_dir, project.id);
    ensure_owned_dir(&volume, uid, uid).map_err(|e| format!("cannot prepare the data volume: {e}"))?;
    let mut env: Vec<(String, String)> = plan.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let user_env = crate::projects::resolved_env(state, project.id).await.map_err(|e| e.to_string())?;
    env.extend(user_env.into_iter().map(|(k, v)| (k, v.0)));
    Ok(AppSpec {
        app: project.name.clone(),
        revision: number,
        app_dir,
        data_dir: volume,
        start: plan.start.clone(),
        env,
        port_env: plan.port_env.clone(),
        health: plan.health.clone(),
        resources: plan.resources.clone(),
        uid,
        gid: uid,
        policy: crate::projects::scaling_policy(state, project),
        outbound: state.config.deploy.app_outbound_hosts.clone(),
    })
}

/// Registers every project's live revision with the runtime after a restart of `slipway up`, in
/// the stopped tier: each wakes on its first request (or at once where `min_instances` asks), so
/// an installation with a thousand projects does not start a thousand sandboxes at once.
pub async fn restore_live_apps(state: AppState, runtime: Arc<LocalRuntime>) {
    let Ok(data_dir) = std::path::absolute(&state.config.data_dir) else { return };
    let live = match state.db.run(db::revisions::live_revisions).await {
        Ok(live) => live,
        Err(e) => return tracing::warn!("cannot list live revisions: {e}"),
    };
    for (project, revision) in live {
        let Some(plan) = revision.plan.clone().and_then(|p| serde_json::from_value::<BuildPlan>(p).ok()) else { continue };
        let app_dir = revision_dir(&data_dir, project.id, revision.number);
        match app_spec(&state, &project, revision.number, &plan, app_dir, &data_dir).await {
            Ok(spec) => {
                if let Err(e) = runtime.register_stopped(spec) {
                    tracing::warn!(app = project.name, "could not restore the live revision: {e}");
                }
            }
            Err(e) => tracing::warn!(app = project.name, "could not prepare the live revision: {e}"),
        }
    }
}
