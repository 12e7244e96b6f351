//! Deploying: an upload becomes an immutable revision. The ZIP is unpacked into a scratch folder
//! first (every hostile-archive rule of `orchestrator::artifact` applies), the template is
//! detected or checked and planned, and only then is the artifact stored (content-addressed) and
//! a revision queued. A refused upload changes nothing: the live revision keeps serving.
//!
//! Building and running the revision is the build worker's job (`build_worker`).

use std::path::PathBuf;

use orchestrator::artifact::{self, ArtifactError};
use orchestrator::template::{self, ProjectDir};

use crate::db::models::{Project, Revision, User};
use crate::db::{self, revisions::NewRevision};
use crate::error::AppError;
use crate::state::AppState;

pub fn artifact_error(error: ArtifactError) -> AppError {
    match error {
        ArtifactError::Io { .. } => AppError::Internal(anyhow::Error::new(error).context("artifact storage failed")),
        other => AppError::Rejected { code: other.code(), message: other.to_string() },
    }
}

/// Where a revision's folders live under the data dir.
pub fn scratch_dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("tmp")
}

/// Checks an upload and queues a revision of it. `source` is `upload`, `api`, `cli` or `git`.
pub async fn upload(state: &AppState, user: &User, project: &Project, zip_bytes: bytes::Bytes, source: &'static str) -> Result<Revision, AppError> {
    let limits = state.config.artifact_limits();
    if zip_bytes.len() as u64 > limits.max_upload_bytes {
        return Err(AppError::Rejected { code: "upload_too_large", message: format!("the upload has {} bytes; at most {} are accepted", zip_bytes.len(), limits.max_upload_bytes) });
    }
    let scratch = scratch_dir(state).join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
    let chosen = project.template.clone();
    let store = state.artifacts.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<(artifact::ArtifactId, template::BuildPlan), AppError> {
        let result = (|| {
            artifact::unpack_zip(&zip_bytes, &scratch, &limits).map_err(artifact_error)?;
            let files = ProjectDir::new(&scratch);
            let chosen_template = if chosen == "auto" {
                template::detect(&files).map_err(|e| AppError::Rejected { code: "no_template_matched", message: e.to_string() })?
            } else {
                template::get(&chosen).ok_or_else(|| AppError::Rejected { code: "unknown_template", message: format!("`{chosen}` is not a template") })?
            };
            let plan = template::plan(chosen_template, &files).map_err(|missing| AppError::Rejected {
                code: "template_requirements",
                message: missing.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "),
            })?;
            let artifact_id = store.put(&zip_bytes).map_err(artifact_error)?;
            Ok((artifact_id, plan))
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    })
    .await
    .map_err(|e| anyhow::anyhow!("upload check failed: {e}"))??;
    let (artifact_id, plan) = checked;
    let plan_json = serde_json::to_value(&plan).map_err(|e| anyhow::anyhow!("plan does not serialise: {e}"))?;
    let (project_id, user_id) = (project.id, user.id);
    let revision = state
        .db
        .run(move |conn| {
            let revision = db::revisions::insert_next(conn, &NewRevision { project_id, artifact_id: artifact_id.as_str(), template: &plan.template, source, created_by: Some(user_id), commit_sha: None, commit_message: None })?;
            db::revisions::finish_plan(conn, revision.id, plan_json)
        })
        .await?;
    state.builds.notify_one();
    Ok(revision)
}

pub async fn revisions(state: &AppState, project: &Project, limit: i64) -> Result<Vec<Revision>, AppError> {
    let project_id = project.id;
    Ok(state.db.run(move |conn| db::revisions::list(conn, project_id, limit)).await?)
}

pub fn revision_json(revision: &Revision) -> serde_json::Value {
    serde_json::json!({
        "id": revision.id,
        "number": revision.number,
        "status": revision.status,
        "template": revision.template,
        "artifact": revision.artifact_id,
        "error": revision.error,
        "source": revision.source,
        "commit_sha": revision.commit_sha,
        "commit_message": revision.commit_message,
        "created_at": revision.created_at,
        "build_started_at": revision.build_started_at,
        "build_finished_at": revision.build_finished_at,
    })
}
