//! Builds in the cluster: one revision's build as a Nomad batch job (`render_build_job`, pure) and
//! running it (`NomadRuntime::run_build`): register, follow the allocation with blocking queries
//! until it completes or fails, read its log, fetch the packed result from the allocation's shared
//! `alloc/data` folder (`GET /v1/client/fs/cat/:alloc`), purge the job.
//!
//! The job: one group `build`, one docker task `build` on the template's build image (or its run
//! image), the uploaded source fetched by an `artifact` block (signed URL, SHA-256, `zip`) into
//! `local/src` and copied to `/app` (where the sandbox builds, and the templates' steps expect it),
//! each plan step run with `sh -c` there in order (stopping at the first failure, as in the
//! sandbox), then `tar -czf /alloc/data/build.tar.gz .`; no restarts, no rescheduling.
//!
//! A project that brings its own Dockerfile (`Start::Image`) is built by another batch job
//! (`render_image_build_job`, pure): the same group and artifact block, and one docker task on
//! BuildKit's rootless image running `buildctl-daemonless.sh` (a BuildKit daemon for the one build,
//! as an unprivileged user, no Docker socket), which builds the Dockerfile and pushes
//! `REGISTRY/slipway/<app>:r<revision>` (`image_reference`) to the cluster's registry
//! (`nomad.registry`); the app's service job then runs that image (`render::Built::Image`).
//! BuildKit rather than kaniko: kaniko's repository was archived by Google in 2025, and kaniko
//! runs as root in its container, where rootless BuildKit runs as uid 1000 and needs only
//! seccomp and AppArmor unconfined (for its user namespaces), not `privileged`.
//!
//! Deliberately absent: the egress proxy of the embedded shape (a cluster build reaches what the
//! client node's network allows: restrict it there), build caches between builds, and registry
//! credentials (the registry is the cluster's own, reached on its private network).

use std::time::Duration;

use serde_json::{json, Value};

use super::render::{is_image_reference, JobSettings, RenderError};
use super::{instances_of, Artifact, NomadError, NomadRuntime};
use crate::template::BuildPlan;

/// The image builder's image: BuildKit, rootless variant (its `buildctl-daemonless.sh` starts a
/// daemon for one build and stops it).
pub const IMAGE_BUILDER: &str = "moby/buildkit:rootless";

/// Where the build leaves its result, inside the allocation directory every task shares.
pub const RESULT_PATH: &str = "alloc/data/build.tar.gz";

/// One build of one revision.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildJob {
    pub app: String,
    pub revision: i32,
    pub plan: BuildPlan,
    /// The uploaded source (a ZIP) as the client nodes download it.
    pub source: Artifact,
    pub memory_mb: u64,
    pub cpu_millicores: u32,
}

/// The batch job's ID: apart from the app's service job, one per revision.
pub fn build_job_id(app: &str, revision: i32) -> String {
    format!("{app}-build-r{revision}")
}

/// One image build of one revision: the project's Dockerfile, built and pushed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageBuildJob {
    pub app: String,
    pub revision: i32,
    /// The Dockerfile's name at the top of the project (`Start::Image`'s `dockerfile`).
    pub dockerfile: String,
    /// The uploaded source (a ZIP) as the client nodes download it.
    pub source: Artifact,
    /// Where the image goes (`image_reference`).
    pub image: String,
    /// The registry speaks plain HTTP (`nomad.registry_insecure`).
    pub insecure_registry: bool,
    pub memory_mb: u64,
    pub cpu_millicores: u32,
}

/// PURE: the image a Dockerfile revision is pushed as and run from:
/// `registry.service.consul:5000` + `quiz` + 3 → `registry.service.consul:5000/slipway/quiz:r3`.
pub fn image_reference(registry: &str, app: &str, revision: i32) -> String {
    format!("{registry}/slipway/{app}:r{revision}")
}

/// PURE: the image build job (see the module doc). The job ID is `build_job_id`'s, as for a
/// template build: one build per revision, whichever kind.
pub fn render_image_build_job(build: &ImageBuildJob, settings: &JobSettings) -> Result<Value, RenderError> {
    if !is_image_reference(&build.image) {
        return Err(RenderError::BadImage(build.image.clone()));
    }
    let sha = &build.source.sha256;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RenderError::BadChecksum(sha.clone()));
    }
    if !crate::template::DOCKERFILE_NAMES.contains(&build.dockerfile.as_str()) {
        return Err(RenderError::BadDockerfile(build.dockerfile.clone()));
    }
    let mut output = format!("type=image,name={},push=true", build.image);
    if build.insecure_registry {
        output.push_str(",registry.insecure=true");
    }
    let id = build_job_id(&build.app, build.revision);
    Ok(json!({
        "ID": id,
        "Name": id,
        "Type": "batch",
        "Namespace": settings.namespace,
        "Datacenters": settings.datacenters,
        "Meta": {"slipway.app": build.app, "slipway.revision": build.revision.to_string(), "slipway.kind": "image-build"},
        "TaskGroups": [{
            "Name": "build",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Interval": 600_000_000_000u64, "Delay": 15_000_000_000u64, "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "EphemeralDisk": {"SizeMB": 4000},
            "Tasks": [{
                "Name": "build",
                "Driver": "docker",
                "Config": {
                    "image": IMAGE_BUILDER,
                    "entrypoint": ["buildctl-daemonless.sh"],
                    "args": [
                        "build",
                        "--frontend", "dockerfile.v0",
                        "--local", "context=/local/src",
                        "--local", "dockerfile=/local/src",
                        "--opt", format!("filename={}", build.dockerfile),
                        "--output", output,
                    ],
                    // Rootless BuildKit makes user namespaces: the default seccomp and AppArmor
                    // profiles forbid that. Not `privileged`.
                    "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
                },
                // Inside an unprivileged container BuildKit cannot make its own process sandbox
                // (a new /proc); the container is the sandbox.
                "Env": {"BUILDKITD_FLAGS": "--oci-worker-no-process-sandbox"},
                "Artifacts": [{
                    "GetterSource": build.source.url,
                    "GetterOptions": {"checksum": format!("sha256:{}", sha.to_ascii_lowercase()), "archive": build.source.archive},
                    "GetterMode": "dir",
                    "RelativeDest": "local/src",
                }],
                "Resources": {
                    "CPU": (u64::from(build.cpu_millicores) * u64::from(settings.cpu_mhz_per_core) / 1000).max(1),
                    "MemoryMB": build.memory_mb.max(16),
                },
                "KillTimeout": 5_000_000_000u64,
                "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 10},
            }],
        }],
    }))
}

/// PURE: a word for `sh`, single-quoted (`it's` → `'it'\''s'`).
pub fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// PURE: the build job (see the module doc).
pub fn render_build_job(build: &BuildJob, settings: &JobSettings) -> Value {
    let plan = &build.plan;
    // The steps run in /app, as in the sandbox, since templates name paths there.
    let mut script = vec!["mkdir -p /app".to_owned(), "cp -a /local/src/. /app/".to_owned(), "cd /app".to_owned()];
    script.extend(plan.build.iter().map(|step| format!("sh -c {}", shell_quote(step))));
    script.push(format!("tar -czf /{RESULT_PATH} ."));
    let image = plan.runtime.build_image.clone().unwrap_or_else(|| plan.runtime.image.clone());
    // The build runs in /app (above), so its environment's paths stay as the template wrote them.
    let env = &plan.build_env;
    let id = build_job_id(&build.app, build.revision);
    json!({
        "ID": id,
        "Name": id,
        "Type": "batch",
        "Namespace": settings.namespace,
        "Datacenters": settings.datacenters,
        "Meta": {"slipway.app": build.app, "slipway.revision": build.revision.to_string(), "slipway.kind": "build"},
        "TaskGroups": [{
            "Name": "build",
            "Count": 1,
            "RestartPolicy": {"Attempts": 0, "Interval": 600_000_000_000u64, "Delay": 15_000_000_000u64, "Mode": "fail"},
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": false},
            "EphemeralDisk": {"SizeMB": 2000},
            "Tasks": [{
                "Name": "build",
                "Driver": "docker",
                "Config": {"image": image, "command": "/bin/sh", "args": ["-c", script.join(" && ")], "work_dir": "/local/src"},
                "Env": env,
                "Artifacts": [{
                    "GetterSource": build.source.url,
                    "GetterOptions": {"checksum": format!("sha256:{}", build.source.sha256.to_ascii_lowercase()), "archive": build.source.archive},
                    "GetterMode": "dir",
                    "RelativeDest": "local/src",
                }],
                "Resources": {
                    "CPU": (u64::from(build.cpu_millicores) * u64::from(settings.cpu_mhz_per_core) / 1000).max(1),
                    "MemoryMB": build.memory_mb.max(16),
                },
                "KillTimeout": 5_000_000_000u64,
                "LogConfig": {"MaxFiles": 2, "MaxFileSizeMB": 10},
            }],
        }],
    })
}

/// What a finished build left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildOutcome {
    /// The packed result (`tar.gz`): what the service job's `artifact` block then downloads.
    pub archive: Vec<u8>,
    pub log: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterBuildError {
    #[error(transparent)]
    Nomad(#[from] NomadError),
    #[error("the build failed on the cluster ({status}); its log ends:\n{}", .log.join("\n"))]
    Failed { status: String, log: Vec<String> },
    #[error("the build did not finish within {0:?} and was stopped")]
    TimedOut(Duration),
    #[error(transparent)]
    Render(#[from] RenderError),
}

impl NomadRuntime {
    /// Runs the build job to its end and returns the packed result. The job is purged afterwards
    /// whatever happened (its log is in the outcome or the error).
    pub async fn run_build(&self, build: &BuildJob, timeout: Duration) -> Result<BuildOutcome, ClusterBuildError> {
        let id = build_job_id(&build.app, build.revision);
        let job = render_build_job(build, self.settings());
        self.client().register(&super::register_body(job, false)).await?;
        let result = match self.follow_build(&id, timeout).await {
            Ok((alloc_id, log)) => match self.client().fs_cat(&alloc_id, RESULT_PATH).await {
                Ok(archive) => Ok(BuildOutcome { archive, log }),
                Err(error) => Err(error.into()),
            },
            Err(error) => Err(error),
        };
        if let Err(error) = self.client().stop(&id, true).await {
            tracing::warn!(job = id, "could not purge the finished build job: {error}");
        }
        result
    }

    /// Runs the image build job to its end; the image is then in the registry. Returns the build's
    /// log. The job is purged afterwards whatever happened.
    pub async fn run_image_build(&self, build: &ImageBuildJob, timeout: Duration) -> Result<Vec<String>, ClusterBuildError> {
        let id = build_job_id(&build.app, build.revision);
        let job = render_image_build_job(build, self.settings())?;
        self.client().register(&super::register_body(job, false)).await?;
        let result = self.follow_build(&id, timeout).await.map(|(_, log)| log);
        if let Err(error) = self.client().stop(&id, true).await {
            tracing::warn!(job = id, "could not purge the finished image build job: {error}");
        }
        result
    }

    /// Follows the build job's allocation until it ends; its id and log when it completed.
    async fn follow_build(&self, id: &str, timeout: Duration) -> Result<(String, Vec<String>), ClusterBuildError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut index = None;
        let (alloc_id, status) = loop {
            let answer = match tokio::time::timeout_at(deadline, self.client().allocations(id, index)).await {
                Ok(answer) => answer?,
                Err(_) => return Err(ClusterBuildError::TimedOut(timeout)),
            };
            let finished = instances_of(&answer.body)
                .into_iter()
                .find(|instance| matches!(instance.client_status.as_str(), "complete" | "failed" | "lost"));
            if let Some(instance) = finished {
                break (instance.alloc_id, instance.client_status);
            }
            index = Some(answer.index.max(index.unwrap_or(0)));
        };
        let mut log = Vec::new();
        for stream in ["stdout", "stderr"] {
            let bytes = self.client().logs(&alloc_id, "build", stream, 256 * 1024).await?;
            log.extend(String::from_utf8_lossy(&bytes).lines().map(str::to_owned));
        }
        if status != "complete" {
            let skip = log.len().saturating_sub(40);
            return Err(ClusterBuildError::Failed { status, log: log.split_off(skip) });
        }
        Ok((alloc_id, log))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_for(example: &str) -> BuildJob {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(example);
        let files = crate::template::ProjectDir::new(dir);
        let plan = crate::template::plan(crate::template::detect(&files).unwrap(), &files).unwrap();
        BuildJob {
            app: "quiz".to_owned(),
            revision: 3,
            plan,
            source: Artifact {
                url: "https://portal.example.edu/artifacts/source.zip?expires=1&sig=ab".to_owned(),
                sha256: "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08".to_owned(),
                archive: "zip".to_owned(),
            },
            memory_mb: 2048,
            cpu_millicores: 1000,
        }
    }

    #[test]
    fn quoting_survives_quotes() {
        assert_eq!(shell_quote("npm ci"), "'npm ci'");
        assert_eq!(shell_quote("echo 'hi'"), r"'echo '\''hi'\'''");
    }

    #[test]
    fn a_build_job_runs_every_step_on_the_build_image_and_packs_the_result() {
        let build = build_for("go-hello");
        let job = render_build_job(&build, &JobSettings::default());
        assert_eq!(job["ID"], "quiz-build-r3");
        assert_eq!(job["Type"], "batch");
        let task = &job["TaskGroups"][0]["Tasks"][0];
        assert_eq!(task["Config"]["image"], "golang:1.23", "the template's build image");
        let script = task["Config"]["args"][1].as_str().unwrap();
        assert_eq!(script.matches("sh -c ").count(), build.plan.build.len());
        assert!(script.ends_with("tar -czf /alloc/data/build.tar.gz ."), "{script}");
        assert_eq!(task["Artifacts"][0]["GetterOptions"]["checksum"], format!("sha256:{}", build.source.sha256.to_lowercase()));
        assert_eq!(task["Artifacts"][0]["RelativeDest"], "local/src");
        assert_eq!(job["TaskGroups"][0]["RestartPolicy"]["Attempts"], 0);
        let node = render_build_job(&build_for("node-hello"), &JobSettings::default());
        assert_eq!(node["TaskGroups"][0]["Tasks"][0]["Config"]["image"], "node:22-slim", "no build image: the run image");
    }
}
