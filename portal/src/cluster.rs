//! The cluster shape in the portal (`runtime = "nomad"`, `slipway up --runtime nomad`): deploys
//! become Nomad jobs, the apps' scaling policies go to Redis for the autoscaler, and Nomad's client
//! nodes download each built revision from the portal by a signed URL.
//!
//! A deploy here: the revision is built on this host as in the embedded shape (or as a Nomad batch
//! job, `nomad.builds = "cluster"`), packed into a `tar.gz` kept under `DATA/builds/<sha256>.tar.gz`,
//! and registered through `render_job` with an `artifact` block whose URL carries an expiry and an
//! HMAC (`sign_artifact`) and whose checksum is the archive's SHA-256. Plain variables go into the
//! job's environment; secret variables never do: the job names their Vault paths and Nomad's
//! template reads them (so a project with secrets needs `[vault]`). A new job waits for a healthy
//! allocation before the revision is marked live; a job kept at zero (`PreserveCounts`) is live at
//! once and wakes on its first request.
//!
//! A project that brings its own Dockerfile (`Start::Image`, only with `nomad.registry` set) is
//! built by the rootless BuildKit batch job (`build_image`), which pushes
//! `REGISTRY/slipway/<app>:r<revision>`; its job then runs that image, with no archive or artifact
//! block. Rolling back to such a revision runs its image again (kept in the registry).
//!
//! Deliberately absent: anything the orchestrator decides (scaling, waking: `NomadRuntime`), and
//! secret values (only paths leave the portal).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use orchestrator::runtime::nomad::{Artifact, Built, Deployment, JobSettings, NomadConfig, NomadRuntime, SecretRef};
use orchestrator::template::BuildPlan;
use secrecy::ExposeSecret;

use crate::config::{Config, NomadSettings};
use crate::db;
use crate::db::models::Project;
use crate::error::AppError;
use crate::state::AppState;

/// The Nomad side of the portal, present when `runtime = "nomad"`.
pub struct Cluster {
    pub runtime: Arc<NomadRuntime>,
    settings: NomadSettings,
    job: JobSettings,
    builds_dir: PathBuf,
    /// KV v2 mount and prefix of the secrets (`[vault]`), for the paths jobs name.
    vault_paths: Option<(String, String)>,
    ready_timeout: Duration,
}

/// PURE: the signature of an artifact URL: hex HMAC-SHA256 over the file name and the expiry.
pub fn sign_artifact(key: &[u8; 32], file: &str, expires_unix: u64) -> String {
    hex::encode(orchestrator::gateway::access::token::hmac(key, b"slipway artifact url v1\0", format!("{file}\0{expires_unix}").as_bytes()))
}

/// PURE: whether `sig` signs `file` until `expires_unix`, and that moment is still ahead.
pub fn verify_artifact(key: &[u8; 32], file: &str, expires_unix: u64, sig: &str, now_unix: u64) -> bool {
    now_unix < expires_unix && crate::crypto::constant_time_eq(&sign_artifact(key, file, expires_unix), sig)
}

/// A file `GET /artifacts/{file}` may serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served<'a> {
    /// A built revision, `<sha256>.tar.gz` under `DATA/builds/`.
    Build(&'a str),
    /// An uploaded source ZIP, `<sha256>.zip` from the artifact store (for builds in the cluster).
    Source(&'a str),
}

/// PURE: what a requested file name is, or `None` for anything else.
pub fn served_file(file: &str) -> Option<Served<'_>> {
    let is_sha = |sha: &str| sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match (file.strip_suffix(".tar.gz"), file.strip_suffix(".zip")) {
        (Some(sha), _) if is_sha(sha) => Some(Served::Build(sha)),
        (_, Some(sha)) if is_sha(sha) => Some(Served::Source(sha)),
        _ => None,
    }
}

/// Where build archives are kept.
pub fn builds_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("builds")
}

impl Cluster {
    pub fn new(config: &Config, data_dir: &Path) -> anyhow::Result<Self> {
        let settings = config.nomad.clone().ok_or_else(|| anyhow::anyhow!("runtime = \"nomad\" without [nomad] settings"))?;
        let mut nomad = NomadConfig::new(settings.address.as_str().trim_end_matches('/'));
        nomad.token = settings.token.as_ref().map(|token| token.expose_secret().to_owned());
        nomad.namespace = settings.namespace.clone();
        nomad.region = settings.region.clone();
        if let Some(file) = &settings.ca_file {
            nomad.ca_pem = Some(std::fs::read(file).map_err(|e| anyhow::anyhow!("cannot read nomad.ca_file {}: {e}", file.display()))?);
        }
        let job = JobSettings {
            namespace: settings.namespace.clone(),
            datacenters: settings.datacenters.clone(),
            apps_domain: config.apps_domain.clone(),
            entrypoint: settings.entrypoint.clone(),
            cert_resolver: settings.cert_resolver.clone(),
            middlewares: settings.middlewares.clone(),
            discovery: settings.discovery,
            max_instances: config.scaling.max_instances_per_app,
            cpu_mhz_per_core: settings.cpu_mhz_per_core,
            vault_role: settings.vault_role.clone(),
            vault_audience: "vault.io".to_owned(),
        };
        let activator = orchestrator::runtime::nomad::ActivatorConfig {
            wake_timeout: config.scaling.wake_timeout,
            browser_wait: config.scaling.browser_wait,
            max_held: u32::try_from(config.scaling.max_held_requests).unwrap_or(u32::MAX),
            no_wake_agents: config
                .scaling
                .no_wake_user_agents
                .iter()
                .map(|agent| agent.to_lowercase())
                .chain(["slipway-health".to_owned()])
                .collect(),
            ..Default::default()
        };
        let runtime = NomadRuntime::new(nomad, job.clone()).map_err(|e| anyhow::anyhow!("nomad client: {e}"))?.with_activator(activator);
        Ok(Self {
            runtime: Arc::new(runtime),
            settings,
            job,
            builds_dir: builds_dir(data_dir),
            vault_paths: config.vault.as_ref().map(|vault| (vault.kv_mount.clone(), vault.prefix.trim_matches('/').to_owned())),
            ready_timeout: config.deploy.build_timeout,
        })
    }

    /// Whether revisions are built as Nomad batch jobs (`nomad.builds = "cluster"`).
    pub fn builds_in_cluster(&self) -> bool {
        self.settings.builds_in_cluster
    }

    /// Whether projects that bring their own Dockerfile can be built and run (`nomad.registry`).
    pub fn builds_images(&self) -> bool {
        self.settings.registry.is_some()
    }

    /// The image a Dockerfile revision is pushed as and run from.
    fn image_of(&self, app: &str, number: i32) -> Result<String, String> {
        let registry = self.settings.registry.as_deref().ok_or(
            "this revision was built from a Dockerfile, and nomad.registry is no longer set: Dockerfile projects need the cluster's registry",
        )?;
        Ok(orchestrator::runtime::nomad::image_reference(registry, app, number))
    }

    /// Builds the project's own Dockerfile on the cluster (the rootless BuildKit batch job fetching
    /// the upload by signed URL) and pushes the revision's image to `nomad.registry`.
    pub async fn build_image(
        &self,
        state: &AppState,
        revision: &db::models::Revision,
        dockerfile: &str,
        log: &dyn orchestrator::build::BuildLog,
    ) -> Result<(), String> {
        let project_id = revision.project_id;
        let project = state
            .db
            .run(move |conn| db::projects::find_by_id(conn, project_id))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the project was deleted")?;
        let image = self.image_of(&project.name, revision.number)?;
        let source = format!("{}.zip", revision.artifact_id);
        let build = orchestrator::runtime::nomad::ImageBuildJob {
            app: project.name.clone(),
            revision: revision.number,
            dockerfile: dockerfile.to_owned(),
            source: Artifact { url: self.signed_url(state, &source), sha256: revision.artifact_id.clone(), archive: "zip".to_owned() },
            image: image.clone(),
            insecure_registry: self.settings.registry_insecure,
            memory_mb: state.config.deploy.build_memory_mb,
            cpu_millicores: 1000,
        };
        log.line(&format!("[slipway] building {dockerfile} on the cluster (rootless BuildKit, a Nomad batch job) into {image}"));
        match self.runtime.run_image_build(&build, state.config.deploy.build_timeout).await {
            Ok(lines) => {
                lines.iter().for_each(|line| log.line(line));
                log.line(&format!("[slipway] pushed {image}"));
                Ok(())
            }
            Err(orchestrator::runtime::nomad::ClusterBuildError::Failed { status, log: lines }) => {
                lines.iter().for_each(|line| log.line(line));
                Err(format!("the image build failed on the cluster ({status})"))
            }
            Err(other) => Err(other.to_string()),
        }
    }

    /// Builds the uploaded source on the cluster (a batch job fetching it by signed URL) and
    /// unpacks the result into `app_dir`, where a local build would have left it.
    pub async fn build(
        &self,
        state: &AppState,
        revision: &db::models::Revision,
        plan: &BuildPlan,
        app_dir: &Path,
        log: &dyn orchestrator::build::BuildLog,
    ) -> Result<(), String> {
        let project_id = revision.project_id;
        let project = state
            .db
            .run(move |conn| db::projects::find_by_id(conn, project_id))
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the project was deleted")?;
        let source = format!("{}.zip", revision.artifact_id);
        let build = orchestrator::runtime::nomad::BuildJob {
            app: project.name.clone(),
            revision: revision.number,
            plan: plan.clone(),
            source: Artifact { url: self.signed_url(state, &source), sha256: revision.artifact_id.clone(), archive: "zip".to_owned() },
            memory_mb: state.config.deploy.build_memory_mb,
            cpu_millicores: 1000,
        };
        log.line("[slipway] building on the cluster (a Nomad batch job)");
        let outcome = match self.runtime.run_build(&build, state.config.deploy.build_timeout).await {
            Ok(outcome) => outcome,
            Err(orchestrator::runtime::nomad::ClusterBuildError::Failed { status, log: lines }) => {
                lines.iter().for_each(|line| log.line(line));
                return Err(format!("the build failed on the cluster ({status})"));
            }
            Err(other) => return Err(other.to_string()),
        };
        outcome.log.iter().for_each(|line| log.line(line));
        if app_dir.exists() {
            std::fs::remove_dir_all(app_dir).map_err(|e| format!("cannot clear an old build folder: {e}"))?;
        }
        std::fs::create_dir_all(app_dir).map_err(|e| format!("cannot create the build folder: {e}"))?;
        let mut child = tokio::process::Command::new("tar")
            .args(["--no-same-owner", "--no-same-permissions", "-xzf", "-", "-C"])
            .arg(app_dir)
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run tar: {e}"))?;
        {
            use tokio::io::AsyncWriteExt;
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin.write_all(&outcome.archive).await.map_err(|e| format!("unpacking the cluster's build failed: {e}"))?;
        }
        let output = child.wait_with_output().await.map_err(|e| format!("unpacking the cluster's build failed: {e}"))?;
        if !output.status.success() {
            return Err(format!("unpacking the cluster's build failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(())
    }

    fn signed_url(&self, state: &AppState, file: &str) -> String {
        let expires = chrono::Utc::now().timestamp() as u64 + self.settings.artifact_url_ttl.as_secs();
        let signature = sign_artifact(&state.secrets.artifact_key(), file, expires);
        let base = self.settings.artifact_url.as_ref().unwrap_or(&state.config.public_url);
        format!("{}/artifacts/{file}?expires={expires}&sig={signature}", base.as_str().trim_end_matches('/'))
    }

    /// Registers a built revision as the app's job and waits until it serves (see the module doc).
    pub async fn deploy(&self, state: &AppState, project: &Project, number: i32, plan: &BuildPlan, app_dir: &Path) -> Result<(), String> {
        let (mut plan, secrets) = (plan.clone(), self.secret_refs(state, project).await?);
        for var in state
            .db
            .run({
                let project_id = project.id;
                move |conn| db::projects::env(conn, project_id)
            })
            .await
            .map_err(|e| e.to_string())?
        {
            if let Some(value) = var.value {
                plan.env.insert(var.name, value);
            }
        }
        let built = if matches!(plan.start, orchestrator::template::Start::Image { .. }) {
            // Built from the project's Dockerfile: the image in the registry is the revision.
            Built::Image(self.image_of(&project.name, number)?)
        } else {
            let sha = self.pack(app_dir).await?;
            let url = self.signed_url(state, &format!("{sha}.tar.gz"));
            Built::Archive(Artifact { url, sha256: sha, archive: "tar.gz".to_owned() })
        };
        let deployment = Deployment { app: project.name.clone(), revision: number, plan, built, secrets };
        let settings = JobSettings { vault_role: self.job.vault_role.replace("{project}", &project.id.to_string()), ..self.job.clone() };
        self.runtime.deploy_with(&deployment, &settings).await.map_err(|e| e.to_string())?;
        self.runtime.set_policy(&project.name, crate::projects::scaling_policy(state, project));
        publish_policy(state, project).await.map_err(|e| e.to_string())?;
        let status = self.runtime.client().scale_status(&project.name).await.map_err(|e| e.to_string())?;
        let desired = status.pointer("/TaskGroups/web/Desired").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if desired > 0 && !self.runtime.wait_ready(&project.name, 1, self.ready_timeout).await.map_err(|e| e.to_string())? {
            let logs = self.runtime.logs(&project.name, 20).await.unwrap_or_default();
            return Err(format!(
                "no instance became healthy on the cluster within {}; the app printed:\n{}",
                orchestrator::duration::format(self.ready_timeout),
                logs.join("\n")
            ));
        }
        Ok(())
    }

    async fn secret_refs(&self, state: &AppState, project: &Project) -> Result<Vec<SecretRef>, String> {
        let project_id = project.id;
        let vars = state.db.run(move |conn| db::projects::env(conn, project_id)).await.map_err(|e| e.to_string())?;
        let secret_names: Vec<String> = vars.into_iter().filter(|var| var.value.is_none()).map(|var| var.name).collect();
        if secret_names.is_empty() {
            return Ok(Vec::new());
        }
        let Some((kv_mount, prefix)) = &self.vault_paths else {
            return Err(format!(
                "this project has secret variables ({}); on the cluster Nomad reads them from Vault, and no [vault] is configured",
                secret_names.join(", ")
            ));
        };
        Ok(secret_names
            .into_iter()
            .map(|name| SecretRef {
                kv_path: crate::secrets::vault::kv_api_path(kv_mount, prefix, &crate::secrets::env_path(project_id, &name)),
                name,
            })
            .collect())
    }

    /// Packs the built folder with the system's `tar` (names sorted, owner and times fixed, so the
    /// same build gives the same archive) and keeps it by its SHA-256.
    async fn pack(&self, app_dir: &Path) -> Result<String, String> {
        std::fs::create_dir_all(&self.builds_dir).map_err(|e| format!("cannot create {}: {e}", self.builds_dir.display()))?;
        let partial = self.builds_dir.join(format!(".partial-{}.tar.gz", uuid::Uuid::new_v4().simple()));
        let output = tokio::process::Command::new("tar")
            .args(["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-czf"])
            .arg(&partial)
            .arg("-C")
            .arg(app_dir)
            .arg(".")
            .output()
            .await
            .map_err(|e| format!("cannot run tar: {e}"))?;
        if !output.status.success() {
            let _ = std::fs::remove_file(&partial);
            return Err(format!("packing the build failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        let bytes = tokio::fs::read(&partial).await.map_err(|e| format!("cannot read the packed build: {e}"))?;
        let sha = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(&bytes))
        };
        std::fs::rename(&partial, self.builds_dir.join(format!("{sha}.tar.gz")))
            .map_err(|e| format!("cannot keep the packed build: {e}"))?;
        Ok(sha)
    }

    /// The app's status from the autoscaler's last look at Nomad.
    pub fn status(&self, app: &str) -> orchestrator::runtime::AppStatus {
        self.runtime.last_status(app).unwrap_or(orchestrator::runtime::AppStatus {
            state: "stopped",
            revision: None,
            instances: 0,
            restarts: 0,
            last_exit: None,
        })
    }

    /// Stops and purges the app's job and forgets it.
    pub async fn remove(&self, state: &AppState, app: &str) -> Result<(), AppError> {
        self.runtime.stop(app, true).await.map_err(|e| anyhow::anyhow!("stopping the app on nomad: {e}"))?;
        self.runtime.forget(app);
        state.cache.publish_policies(&[(app.to_owned(), None)], false).await?;
        Ok(())
    }
}

fn policy_json(state: &AppState, project: &Project) -> String {
    serde_json::to_string(&crate::projects::scaling_policy(state, project)).expect("a policy always serialises")
}

/// Publishes one project's scaling policy for the cluster's autoscaler.
pub async fn publish_policy(state: &AppState, project: &Project) -> Result<(), AppError> {
    state.cache.publish_policies(&[(project.name.clone(), Some(policy_json(state, project)))], false).await?;
    Ok(())
}

/// Replaces every published policy with those of the projects that have a live revision (at start).
pub async fn publish_all_policies(state: &AppState) -> Result<usize, AppError> {
    let live = state.db.run(db::revisions::live_revisions).await?;
    let records: Vec<(String, Option<String>)> =
        live.iter().map(|(project, _)| (project.name.clone(), Some(policy_json(state, project)))).collect();
    state.cache.publish_policies(&records, true).await?;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_urls_verify_only_unexpired_and_unaltered() {
        let key = [7u8; 32];
        let file = format!("{}.tar.gz", "a".repeat(64));
        let sig = sign_artifact(&key, &file, 1000);
        assert!(verify_artifact(&key, &file, 1000, &sig, 999));
        assert!(!verify_artifact(&key, &file, 1000, &sig, 1000), "expired");
        assert!(!verify_artifact(&key, &file, 2000, &sig, 999), "another expiry");
        assert!(!verify_artifact(&key, &format!("{}.tar.gz", "b".repeat(64)), 1000, &sig, 999), "another file");
        assert!(!verify_artifact(&[8u8; 32], &file, 1000, &sig, 999), "another key");
    }

    #[test]
    fn the_published_policy_is_the_recorded_record() {
        // The contract with `orchestrator::autoscaler::feed` (which parses the same file).
        let recorded: serde_json::Value =
            serde_json::from_str(include_str!("../../orchestrator/src/autoscaler/testdata/policy-record.json")).expect("recorded JSON");
        assert_eq!(serde_json::to_value(orchestrator::autoscaler::Policy::default()).expect("serialises"), recorded);
    }

    #[test]
    fn only_build_archives_and_sources_are_served() {
        let sha = "0123456789abcdef".repeat(4);
        assert_eq!(served_file(&format!("{sha}.tar.gz")), Some(Served::Build(&sha)));
        assert_eq!(served_file(&format!("{sha}.zip")), Some(Served::Source(&sha)));
        assert_eq!(served_file("../secret.key"), None);
        assert_eq!(served_file(&format!("{sha}.tar.gz").to_uppercase()), None);
        assert_eq!(served_file(&format!("{}.tar.gz", "a".repeat(63))), None);
    }
}
