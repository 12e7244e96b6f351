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
use crate::domain::audit::{actions, Target};
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

/// Checks an upload and queues a revision of it. `source` is `upload`, `api` or `cli`.
pub async fn upload(
    state: &AppState,
    user: &User,
    project: &Project,
    zip_bytes: bytes::Bytes,
    source: &'static str,
) -> Result<Revision, AppError> {
    upload_commit(state, user, project, zip_bytes, source, None).await
}

/// `upload`, for a revision made from a commit (`source` `git`): its SHA and subject line are kept
/// with the revision.
pub async fn upload_commit(
    state: &AppState,
    user: &User,
    project: &Project,
    zip_bytes: bytes::Bytes,
    source: &'static str,
    commit: Option<(String, String)>,
) -> Result<Revision, AppError> {
    crate::quotas::check_build(state, project).await?;
    let limits = state.config.artifact_limits();
    if zip_bytes.len() as u64 > limits.max_upload_bytes {
        return Err(AppError::Rejected {
            code: "upload_too_large",
            message: format!("the upload has {} bytes; at most {} are accepted", zip_bytes.len(), limits.max_upload_bytes),
        });
    }
    let scratch = scratch_dir(state).join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
    let chosen = project.template.clone();
    let store = state.artifacts.clone();
    // Builds on the cluster use the template's images, not this host's programs.
    let builds_here = !state.cluster.as_ref().is_some_and(|cluster| cluster.builds_in_cluster());
    let terminals_here = state.cluster.is_none();
    let images_here = state.cluster.as_ref().is_some_and(|cluster| cluster.builds_images());
    let zip_to_check = zip_bytes.clone();
    let checked = tokio::task::spawn_blocking(move || -> Result<template::BuildPlan, AppError> {
        let result = (|| {
            artifact::unpack_zip(&zip_to_check, &scratch, &limits).map_err(artifact_error)?;
            let files = ProjectDir::new(&scratch);
            let unmet = |missing: Vec<template::Requirement>| AppError::Rejected {
                code: "template_requirements",
                message: missing.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "),
            };
            let plan = if chosen == template::DOCKERFILE {
                if !images_here {
                    return Err(dockerfile_refused());
                }
                template::dockerfile_plan(&files).map_err(unmet)?
            } else if chosen == "auto" {
                match template::detect(&files) {
                    Ok(found) => template::plan(found, &files).map_err(unmet)?,
                    // A project with only a Dockerfile: built as an image where the cluster can.
                    Err(error) if error.has_dockerfile && images_here => template::dockerfile_plan(&files).map_err(unmet)?,
                    Err(error) => return Err(AppError::Rejected { code: "no_template_matched", message: error.to_string() }),
                }
            } else {
                let found = template::get(&chosen)
                    .ok_or_else(|| AppError::Rejected { code: "unknown_template", message: format!("`{chosen}` is not a template") })?;
                template::plan(found, &files).map_err(unmet)?
            };
            check_runnable(&plan, builds_here, terminals_here)?;
            Ok(plan)
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    })
    .await
    .map_err(|e| anyhow::anyhow!("upload check failed: {e}"))??;
    let plan = checked;
    // The memory quota is checked with the new plan's instance size before the artifact is kept,
    // so a refusal leaves neither an artifact nor a revision.
    let limits = crate::projects::scaling_limits(&state.config);
    let ask = crate::quotas::MemoryAsk {
        memory_mb_per_instance: Some(u64::from(plan.resources.memory_mb)),
        max_instances: crate::domain::scaling::effective(&project.scaling(), &limits).max_instances,
    };
    crate::quotas::check_memory(state, project, ask).await?;
    let artifact_id = tokio::task::spawn_blocking(move || store.put(&zip_bytes).map_err(artifact_error))
        .await
        .map_err(|e| anyhow::anyhow!("storing the upload failed: {e}"))??;
    let plan_json = serde_json::to_value(&plan).map_err(|e| anyhow::anyhow!("plan does not serialise: {e}"))?;
    let (project_id, user_id) = (project.id, user.id);
    let revision = state
        .db
        .run(move |conn| {
            // One transaction: the build worker must never see the queued revision without its plan.
            diesel::Connection::transaction(conn, |conn| {
                let revision = db::revisions::insert_next(
                    conn,
                    &NewRevision {
                        project_id,
                        artifact_id: artifact_id.as_str(),
                        template: &plan.template,
                        source,
                        created_by: Some(user_id),
                        commit_sha: commit.as_ref().map(|(sha, _)| sha.as_str()),
                        commit_message: commit.as_ref().map(|(_, message)| message.as_str()),
                    },
                )?;
                db::revisions::finish_plan(conn, revision.id, plan_json)
            })
        })
        .await?;
    state.builds.notify_one();
    let details = serde_json::json!({ "revision": revision.number, "source": source, "template": revision.template });
    crate::audit::record(
        &state.db,
        crate::audit::Event::new(actions::PROJECT_DEPLOY).target(Target::project(&project.name)).details(details),
    )
    .await;
    Ok(revision)
}

/// A project that chose the `dockerfile` template where no image can be built.
fn dockerfile_refused() -> AppError {
    AppError::Rejected {
        code: "dockerfile_needs_cluster",
        message: "Dockerfile projects are built and run only on a Slipway cluster with an image registry (docs/cluster.md), and this installation is not one; choose a template instead".to_owned(),
    }
}

/// Where the sandbox finds programs: the host's `/usr` is all it sees of the system.
const TOOLCHAIN_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin"];

/// Refuses, before anything is built, what this installation cannot run: a template whose
/// toolchain is not installed (when builds run on this host), or a terminal program where the
/// web terminal does not run (the cluster shape: it needs Nomad's allocation exec, not built yet).
fn check_runnable(plan: &orchestrator::template::BuildPlan, builds_here: bool, terminals_here: bool) -> Result<(), AppError> {
    if !terminals_here && matches!(plan.start, orchestrator::template::Start::Terminal { .. }) {
        return Err(AppError::Rejected {
            code: "console_not_supported",
            message:
                "console programs run in the web terminal, which this installation's cluster shape does not offer yet; deploy a web app"
                    .to_owned(),
        });
    }
    let missing: Vec<&str> = plan
        .runtime
        .embedded
        .iter()
        .map(String::as_str)
        .filter(|_| builds_here)
        .filter(|program| !TOOLCHAIN_DIRS.iter().any(|dir| std::path::Path::new(dir).join(program).exists()))
        .collect();
    if !missing.is_empty() {
        return Err(AppError::Rejected {
            code: "toolchain_missing",
            message: format!(
                "the {} template needs {} on the server, which this installation does not have; ask its administrators",
                plan.template,
                missing.join(" and ")
            ),
        });
    }
    Ok(())
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

/// The project's status as the API, the CLI and the project page show it.
pub fn status_json(state: &AppState, project: &Project, live_number: Option<i32>) -> serde_json::Value {
    let status = match &state.cluster {
        Some(cluster) => cluster.status(&project.name),
        None => state.runtime.status(&project.name),
    };
    serde_json::json!({
        "name": project.name,
        "state": status.state,
        "revision": live_number,
        "running_revision": status.revision,
        "instances": status.instances,
        "restarts": status.restarts,
        "last_exit": status.last_exit,
        "url": crate::routes::api::projects::app_url(state, &project.name),
        "wakes": state.runtime.wakes(&project.name).iter().rev().take(10).collect::<Vec<_>>(),
        "scaling": crate::domain::scaling::effective(&project.scaling(), &crate::projects::scaling_limits(&state.config)),
    })
}

pub async fn live_number(state: &AppState, project: &Project) -> Result<Option<i32>, AppError> {
    let Some(revision_id) = project.live_revision_id else { return Ok(None) };
    Ok(state.db.run(move |conn| db::revisions::find(conn, revision_id)).await?.map(|r| r.number))
}

/// Puts an earlier revision back: the given number, or the newest built one before the live one.
/// It starts beside the live revision and takes over once healthy, like any deploy.
pub async fn rollback(state: &AppState, project: &Project, number: Option<i32>) -> Result<Revision, AppError> {
    let project_id = project.id;
    let live = live_number(state, project).await?;
    let candidates = state.db.run(move |conn| db::revisions::list(conn, project_id, 1000)).await?;
    let target = match number {
        Some(number) => candidates.into_iter().find(|r| r.number == number).ok_or(AppError::NotFound("revision"))?,
        None => candidates.into_iter().find(|r| r.status == "retired" && live.is_none_or(|live| r.number < live)).ok_or_else(|| {
            AppError::Rejected { code: "nothing_to_roll_back_to", message: "there is no earlier working revision to go back to".to_owned() }
        })?,
    };
    if !matches!(target.status.as_str(), "retired" | "live" | "built") {
        return Err(AppError::Rejected {
            code: "revision_not_built",
            message: format!("revision {} is {}; only revisions that built can go live", target.number, target.status),
        });
    }
    let plan: orchestrator::template::BuildPlan = target
        .plan
        .clone()
        .and_then(|p| serde_json::from_value(p).ok())
        .ok_or_else(|| anyhow::anyhow!("revision {} has no plan", target.number))?;
    let data_dir = std::path::absolute(&state.config.data_dir).map_err(anyhow::Error::from)?;
    let app_dir = crate::build_worker::revision_dir(&data_dir, project.id, target.number);
    // An image revision's files are its image in the cluster's registry, not a folder here.
    let is_image = matches!(plan.start, orchestrator::template::Start::Image { .. });
    if !is_image && !app_dir.exists() {
        return Err(AppError::Rejected {
            code: "revision_files_gone",
            message: format!("the built files of revision {} are no longer kept; deploy it again", target.number),
        });
    }
    if let Some(cluster) = &state.cluster {
        cluster
            .deploy(state, project, target.number, &plan, &app_dir)
            .await
            .map_err(|message| AppError::Rejected { code: "rollback_unhealthy", message })?;
    } else {
        let spec = crate::build_worker::app_spec(state, project, target.number, &plan, app_dir, &data_dir)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        state.runtime.deploy(spec).await.map_err(|e| AppError::Rejected { code: "rollback_unhealthy", message: e.to_string() })?;
    }
    let revision_id = target.id;
    state.db.run(move |conn| db::revisions::make_live(conn, project_id, revision_id)).await?;
    let details = serde_json::json!({ "revision": target.number, "from": live });
    crate::audit::record(
        &state.db,
        crate::audit::Event::new(actions::PROJECT_ROLLBACK).target(Target::project(&project.name)).details(details),
    )
    .await;
    Ok(state.db.run(move |conn| db::revisions::find(conn, revision_id)).await?.unwrap_or(target))
}

/// Stops the app, removes its files, data, caches and logs, then the project itself. Artifacts
/// are kept: submissions pin them (`submissions.artifact_id`), and their snapshots have their own
/// copies of the built files under `snapshots/`, which this never touches.
pub async fn delete_project(state: &AppState, project: &Project) -> Result<(), AppError> {
    state.runtime.stop(&project.name).await;
    if let Some(cluster) = &state.cluster {
        cluster.remove(state, &project.name).await?;
    }
    let data_dir = std::path::absolute(&state.config.data_dir).map_err(anyhow::Error::from)?;
    let project_key = project.id.to_string();
    let dirs = [
        data_dir.join("apps").join(&project_key),
        data_dir.join("volumes").join(&project_key),
        data_dir.join("cache").join(&project_key),
        data_dir.join("logs").join("apps").join(&project.name),
    ];
    tokio::task::spawn_blocking(move || {
        for dir in dirs {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("could not remove {}: {e}", dir.display());
                }
            }
        }
    })
    .await
    .map_err(|e| anyhow::anyhow!("cleanup failed: {e}"))?;
    crate::projects::delete(state, project).await?;
    crate::audit::record(&state.db, crate::audit::Event::new(actions::PROJECT_DELETE).target(Target::project(&project.name))).await;
    Ok(())
}

/// A text stream of a revision's build log, following it while the build runs.
pub fn build_log_stream(
    state: AppState,
    revision_id: i64,
    follow: bool,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let path = crate::build_worker::build_log_path(
        &std::path::absolute(&state.config.data_dir).unwrap_or_else(|_| state.config.data_dir.clone()),
        revision_id,
    );
    futures_util::stream::unfold((state, path, 0u64, false), move |(state, path, offset, finished)| async move {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        loop {
            let mut chunk = Vec::new();
            if let Ok(mut file) = tokio::fs::File::open(&path).await {
                if file.seek(std::io::SeekFrom::Start(offset)).await.is_ok() {
                    let _ = file.take(64 * 1024).read_to_end(&mut chunk).await;
                }
            }
            if !chunk.is_empty() {
                let next = offset + chunk.len() as u64;
                return Some((Ok(bytes::Bytes::from(chunk)), (state, path, next, finished)));
            }
            if finished || !follow || *state.stopping.borrow() {
                return None;
            }
            let status = state.db.run(move |conn| db::revisions::find(conn, revision_id)).await.ok().flatten().map(|r| r.status);
            let still_running = matches!(status.as_deref(), Some("queued" | "building" | "built"));
            if !still_running {
                // One more read catches lines written just before the status changed.
                return Some((Ok(bytes::Bytes::new()), (state, path, offset, true)));
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    })
}

/// The app's recent output, then (with `follow`) new lines as they come.
pub fn app_log_stream(
    state: &AppState,
    app: &str,
    n_lines: usize,
    follow: bool,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let ring = state.runtime.logs(app);
    let tail: Vec<String> = ring.as_ref().map(|r| r.tail(n_lines)).unwrap_or_default();
    let receiver = if follow { ring.map(|r| (r.subscribe(), state.stopping.clone())) } else { None };
    let head = futures_util::stream::iter(tail.into_iter().map(|line| Ok(bytes::Bytes::from(format!("{line}\n")))));
    let rest = futures_util::stream::unfold(receiver, |receiver| async move {
        let (mut receiver, mut stopping) = receiver?;
        // A follower ends when the server stops, so it never holds a shutdown up.
        let next = tokio::select! {
            next = receiver.recv() => next,
            _ = stopping.wait_for(|stop| *stop) => return None,
        };
        match next {
            Ok(line) => Some((Ok(bytes::Bytes::from(format!("{line}\n"))), Some((receiver, stopping)))),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n_missed)) => {
                Some((Ok(bytes::Bytes::from(format!("[slipway] {n_missed} lines skipped\n"))), Some((receiver, stopping))))
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
        }
    });
    // On the cluster the lines come from Nomad: the last ones once, or followed until the
    // allocations' streams end (or the server stops).
    let cluster = state.cluster.clone().map(|cluster| (cluster, app.to_owned(), state.stopping.clone()));
    let from_cluster = futures_util::StreamExt::flatten(futures_util::StreamExt::then(
        futures_util::stream::iter(cluster),
        move |(cluster, app, stopping)| async move {
            let lines: futures_util::stream::BoxStream<'static, Result<bytes::Bytes, std::io::Error>> = if follow {
                match cluster.runtime.follow_logs(&app, (n_lines as u64).saturating_mul(200)).await {
                    Ok(receiver) => {
                        Box::pin(futures_util::stream::unfold((receiver, stopping), |(mut receiver, mut stopping)| async move {
                            let line = tokio::select! {
                                line = receiver.recv() => line?,
                                _ = stopping.wait_for(|stop| *stop) => return None,
                            };
                            Some((Ok(bytes::Bytes::from(line + "\n")), (receiver, stopping)))
                        }))
                    }
                    Err(e) => Box::pin(futures_util::stream::once(async move {
                        Ok(bytes::Bytes::from(format!("[slipway] cannot follow the app's logs on nomad: {e}\n")))
                    })),
                }
            } else {
                let lines = cluster
                    .runtime
                    .logs(&app, n_lines)
                    .await
                    .unwrap_or_else(|e| vec![format!("[slipway] cannot read the app's logs from nomad: {e}")]);
                Box::pin(futures_util::stream::once(async move {
                    Ok(bytes::Bytes::from(lines.into_iter().map(|line| line + "\n").collect::<String>()))
                }))
            };
            lines
        },
    ));
    futures_util::StreamExt::chain(futures_util::StreamExt::chain(head, rest), from_cluster)
}

/// The answer to "show me the build log of revision `number`": a followed text stream. Shared by
/// the API and the pages, which differ only in how they authenticate.
pub async fn build_log_response(
    state: &AppState,
    user: &User,
    name: &str,
    number: i32,
    follow: bool,
) -> Result<actix_web::HttpResponse, AppError> {
    let project = crate::projects::get(state, user, name, crate::domain::Action::View).await?;
    let project_id = project.id;
    let revision =
        state.db.run(move |conn| db::revisions::find_number(conn, project_id, number)).await?.ok_or(AppError::NotFound("revision"))?;
    Ok(text_stream(build_log_stream(state.clone(), revision.id, follow)))
}

/// The answer to "show me the app's output".
pub async fn app_log_response(
    state: &AppState,
    user: &User,
    name: &str,
    n_lines: usize,
    follow: bool,
) -> Result<actix_web::HttpResponse, AppError> {
    let project = crate::projects::get(state, user, name, crate::domain::Action::View).await?;
    Ok(text_stream(app_log_stream(state, &project.name, n_lines.min(2000), follow)))
}

fn text_stream(stream: impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + 'static) -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream)
}
