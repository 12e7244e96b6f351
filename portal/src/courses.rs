//! Course flows shared by the pages and the API: courses and their staff, roster import (preview,
//! then confirm), assignments, submissions pinned as snapshots, grading, release and export.
//! Every function takes the acting user and checks the course role here, on the server
//! (`domain::coursework::course_allows`).
//!
//! **Snapshots.** Submitting copies the project's live built revision (and its data volume) to
//! `snapshots/a<assignment>/<submitter>/<uuid>/{app,data}` under the data dir and records
//! artifact, template, plan (start command, health check) and the environment (sealed with the
//! installation key). The copy runs as its own app, `NAME--a<assignment>`, registered with the
//! runtime in the stopped tier; project names cannot contain `--`, so no project can take it.
//! Redeploying or deleting the project touches neither the copy nor the row (`project_id` and
//! `revision_id` become NULL on deletion; the artifact id stays recorded). At the deadline,
//! `sweep` pins again the newest revision built before the deadline, and opens access as the
//! assignment's visibility says.
//!
//! Snapshot apps get access records like projects (`snapshot_record`): staff and submitters, and
//! after the deadline the class or everyone.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use orchestrator::gateway::access::{AccessRecord, Visibility};
use orchestrator::template::BuildPlan;

use crate::db;
use crate::db::courses::{AssignmentFields, RosterEntry};
use crate::db::models::{Assignment, Course, Submission, User};
use crate::domain::coursework::{self, course_allows, CourseAction, CourseRole, Deadline, RubricItem, SubmissionVisibility, Window};
use crate::domain::grade_export::{self, ExportAssignment, ExportFormat, ExportStudent};
use crate::domain::roster::{self, ClassifiedRow, ColumnMapping, Outcome, RosterFormat, TextEncoding};
use crate::domain::{Action, EmailAddress, Role, ValidationError};
use crate::error::AppError;
use crate::state::AppState;

fn text_field(raw: &str, field: &'static str, max: usize, required: bool) -> Result<String, AppError> {
    let value = raw.trim();
    if (required && value.is_empty()) || value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "invalid_field",
            field,
            format!("`{value}` is not a valid {field}: {} to {max} characters, no control characters", usize::from(required)),
        )
        .with("value", value)
        .into());
    }
    Ok(value.to_owned())
}

/// A description may span lines; other control characters and more than 10 000 bytes are refused.
fn check_description(raw: &str) -> Result<String, AppError> {
    let text = raw.trim();
    if text.len() > 10_000 || text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')) {
        return Err(ValidationError::new(
            "invalid_field",
            "description",
            format!("the description has {} bytes or control characters; at most 10000 bytes of text", text.len()),
        )
        .into());
    }
    Ok(text.to_owned())
}

/// Creates a course; only professors and admins may.
pub async fn create(state: &AppState, user: &User, code: &str, title: &str, term: &str, section: &str) -> Result<Course, AppError> {
    if user.role != Role::Professor.as_str() && user.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    let code = text_field(code, "code", 40, true)?;
    let title = text_field(title, "title", 200, true)?;
    let term = text_field(term, "term", 40, true)?;
    let section = text_field(section, "section", 40, false)?;
    let user_id = user.id;
    let (code_text, term_text) = (code.clone(), term.clone());
    match state.db.run(move |conn| db::courses::insert(conn, &code, &title, &term, &section, user_id)).await {
        Ok(course) => Ok(course),
        Err(e) if e.is_unique_violation() => Err(AppError::Conflict {
            code: "course_exists",
            message: format!("the course {code_text} of {term_text} with this section exists already"),
        }),
        Err(e) => Err(e.into()),
    }
}

pub async fn list(state: &AppState, user: &User) -> Result<Vec<(Course, String)>, AppError> {
    let user_id = user.id;
    Ok(state.db.run(move |conn| db::courses::for_user(conn, user_id)).await?)
}

fn role_of(conn: &mut diesel::PgConnection, user: &User, course_id: i64) -> Result<CourseRole, db::DbError> {
    if user.role == Role::Admin.as_str() {
        return Ok(CourseRole::Professor);
    }
    if let Some(role) = db::courses::staff_role(conn, course_id, user.id)?.and_then(|r| CourseRole::parse_staff(&r)) {
        return Ok(role);
    }
    Ok(if db::courses::is_enrolled(conn, course_id, user.id)? { CourseRole::Student } else { CourseRole::None })
}

/// The course and the user's role, if they may do `action` there: 404 for outsiders (a course's
/// existence is not told to them), 403 for members without the role.
pub async fn get(state: &AppState, user: &User, course_id: i64, action: CourseAction) -> Result<(Course, CourseRole), AppError> {
    let actor = user.clone();
    let (course, role) = state
        .db
        .run(move |conn| {
            let Some(course) = db::courses::find(conn, course_id)? else { return Ok(None) };
            let role = role_of(conn, &actor, course_id)?;
            Ok::<_, db::DbError>(Some((course, role)))
        })
        .await?
        .ok_or(AppError::NotFound("course"))?;
    if role == CourseRole::None {
        return Err(AppError::NotFound("course"));
    }
    if !course_allows(role, action) {
        return Err(AppError::Forbidden);
    }
    Ok((course, role))
}

/// The assignment, its course and the user's role there, checked against `action`.
pub async fn get_assignment(
    state: &AppState,
    user: &User,
    assignment_id: i64,
    action: CourseAction,
) -> Result<(Assignment, Course, CourseRole), AppError> {
    let assignment =
        state.db.run(move |conn| db::courses::find_assignment(conn, assignment_id)).await?.ok_or(AppError::NotFound("assignment"))?;
    let (course, role) = get(state, user, assignment.course_id, action).await.map_err(|e| match e {
        AppError::NotFound(_) => AppError::NotFound("assignment"),
        other => other,
    })?;
    Ok((assignment, course, role))
}

/// Adds a teaching assistant (or another professor) by e-mail; the address needs an account.
pub async fn add_staff(state: &AppState, actor: &User, course_id: i64, raw_email: &str, raw_role: &str) -> Result<(), AppError> {
    get(state, actor, course_id, CourseAction::Manage).await?;
    let role = match raw_role.trim() {
        "ta" | "" => "ta",
        "professor" => "professor",
        other => {
            return Err(ValidationError::new(
                "unknown_role",
                "role",
                format!("`{other}` is not a course staff role; choose ta or professor"),
            )
            .with("value", other)
            .into())
        }
    };
    let email = EmailAddress::parse(raw_email)?;
    let text = email.as_str().to_owned();
    state
        .db
        .run(move |conn| {
            let Some(user) = db::users::find_by_email(conn, &text)?.filter(|u| u.email_verified_at.is_some()) else {
                return Ok(Err(AppError::NotFound("account")));
            };
            db::courses::add_staff(conn, course_id, user.id, role)?;
            Ok::<_, db::DbError>(Ok(()))
        })
        .await??;
    publish_course_snapshots(state, course_id).await
}

/// A roster file as it would be imported.
#[derive(Debug, serde::Serialize)]
pub struct RosterPreview {
    pub format: RosterFormat,
    pub encoding: TextEncoding,
    pub headers: Vec<String>,
    pub rows: Vec<ClassifiedRow>,
    pub n_matched: usize,
    pub n_invite: usize,
    pub n_invalid: usize,
}

fn roster_error(error: roster::RosterError) -> AppError {
    AppError::Rejected { code: error.code(), message: error.to_string() }
}

/// Reads and classifies a roster file; changes nothing.
pub async fn preview_roster(
    state: &AppState,
    actor: &User,
    course_id: i64,
    file: &[u8],
    mapping: Option<&ColumnMapping>,
) -> Result<RosterPreview, AppError> {
    get(state, actor, course_id, CourseAction::Manage).await?;
    let parsed = roster::parse(file, mapping).map_err(roster_error)?;
    let emails: Vec<String> =
        parsed.rows.iter().filter_map(|r| EmailAddress::parse(&r.email).ok()).map(|e| e.as_str().to_owned()).collect();
    let numbers: Vec<String> = parsed.rows.iter().map(|r| r.student_number.clone()).filter(|n| !n.is_empty()).collect();
    let accounts = state.db.run(move |conn| db::courses::known_accounts(conn, &emails, &numbers)).await?;
    let rows = roster::classify(&parsed.rows, &accounts, &state.domains);
    let count = |want: fn(&Outcome) -> bool| rows.iter().filter(|r| want(&r.outcome)).count();
    Ok(RosterPreview {
        format: parsed.format,
        encoding: parsed.encoding,
        headers: parsed.headers,
        n_matched: count(|o| matches!(o, Outcome::Matched { .. })),
        n_invite: count(|o| matches!(o, Outcome::Invite { .. })),
        n_invalid: count(|o| matches!(o, Outcome::Invalid { .. })),
        rows,
    })
}

/// What confirming an import did.
#[derive(Debug, Default, serde::Serialize)]
pub struct RosterImported {
    pub enrolled: usize,
    pub updated: usize,
    pub invited: usize,
    pub skipped: usize,
}

/// Imports the file: the same classification as the preview, applied. Re-importing updates the
/// roster fields of existing enrolments and invitations and mails only new invitations.
pub async fn import_roster(
    state: &AppState,
    actor: &User,
    course_id: i64,
    file: &[u8],
    mapping: Option<&ColumnMapping>,
) -> Result<RosterImported, AppError> {
    let preview = preview_roster(state, actor, course_id, file, mapping).await?;
    let (course, _) = get(state, actor, course_id, CourseAction::Manage).await?;
    let actor_id = actor.id;
    let rows = preview.rows;
    let (imported, new_invitations) = state
        .db
        .run(move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                let mut imported = RosterImported::default();
                let mut new_invitations = Vec::new();
                for row in &rows {
                    let entry = RosterEntry { name: &row.row.name, student_number: &row.row.student_number, section: &row.row.section };
                    match &row.outcome {
                        Outcome::Matched { user_id, .. } => {
                            if db::courses::upsert_enrolment(conn, course_id, *user_id, &entry)? {
                                imported.enrolled += 1;
                            } else {
                                imported.updated += 1;
                            }
                        }
                        Outcome::Invite { email } => {
                            if db::courses::upsert_invitation(conn, course_id, email, &entry, actor_id)? {
                                imported.invited += 1;
                                new_invitations.push(email.clone());
                            } else {
                                imported.updated += 1;
                            }
                        }
                        Outcome::Invalid { .. } => imported.skipped += 1,
                    }
                }
                Ok::<_, db::DbError>((imported, new_invitations))
            })
        })
        .await?;
    let link = state.config.public_url.join("/signup").map(|u| u.to_string()).unwrap_or_else(|_| state.config.public_url.to_string());
    let language = crate::domain::Language::parse(&actor.language).unwrap_or_default();
    let kind = crate::mail::MailKind::CourseInvitation {
        course: format!("{} {}", course.code, course.title),
        inviter: actor.display_name.clone(),
        link,
    };
    for email in new_invitations {
        // The durable queue: a mail server that is down delays the invitation, never loses it.
        state.mail.enqueue(&email, crate::mail::compose(&kind, language, "")).await?;
    }
    publish_course_snapshots(state, course_id).await?;
    Ok(imported)
}

/// An assignment as typed in a form or an API body (times already in UTC).
#[derive(Debug, Clone)]
pub struct AssignmentInput {
    pub title: String,
    pub description: String,
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
    pub group: bool,
    pub template: Option<String>,
    pub visibility: String,
    pub idle_secs: Option<i32>,
    pub max_instances: Option<i32>,
    pub rubric: Option<Vec<RubricItem>>,
}

pub async fn create_assignment(state: &AppState, actor: &User, course_id: i64, input: AssignmentInput) -> Result<Assignment, AppError> {
    get(state, actor, course_id, CourseAction::Manage).await?;
    let deadline = Deadline::new(input.due_at, input.cutoff_at)?;
    let visibility = SubmissionVisibility::parse(&input.visibility)?;
    let template = match input.template.as_deref().map(str::trim).filter(|t| !t.is_empty() && *t != "auto") {
        None => None,
        Some(t) => Some(crate::projects::check_template(t)?),
    };
    let rubric = input.rubric.unwrap_or_else(|| vec![RubricItem { name: "Grade".to_owned(), points: 100.0 }]);
    coursework::check_rubric(&rubric)?;
    check_resources(state, input.idle_secs, input.max_instances)?;
    let fields = AssignmentFields {
        title: text_field(&input.title, "title", 200, true)?,
        description: check_description(&input.description)?,
        due_at: deadline.due_at,
        cutoff_at: deadline.cutoff_at,
        kind: if input.group { "group" } else { "individual" }.to_owned(),
        template,
        visibility: visibility.as_str().to_owned(),
        idle_secs: input.idle_secs,
        max_instances: input.max_instances,
        rubric: serde_json::to_value(&rubric).expect("a rubric serialises"),
    };
    Ok(state.db.run(move |conn| db::courses::insert_assignment(conn, course_id, &fields)).await?)
}

/// The resource policy of submitted apps, within the installation's caps.
fn check_resources(state: &AppState, idle_secs: Option<i32>, max_instances: Option<i32>) -> Result<(), AppError> {
    let limits = crate::projects::scaling_limits(&state.config);
    if let Some(max) = max_instances {
        if max < 1 || max as u32 > limits.max_instances_per_app {
            return Err(ValidationError::new(
                "invalid_max_instances",
                "max_instances",
                format!("max_instances = {max}; use 1 to {}", limits.max_instances_per_app),
            )
            .into());
        }
    }
    if let Some(idle) = idle_secs {
        if idle < 1 || idle as u64 > limits.max_idle.as_secs() {
            return Err(ValidationError::new(
                "invalid_idle",
                "idle_secs",
                format!("idle_secs = {idle}; use 1 to {}", limits.max_idle.as_secs()),
            )
            .into());
        }
    }
    Ok(())
}

/// Changes an assignment's title, description, deadline and resource policy (professors). A
/// deadline moved into the future is swept again when it passes; the snapshots' access and
/// scaling policies follow at once.
pub async fn edit_assignment(
    state: &AppState,
    actor: &User,
    assignment_id: i64,
    input: AssignmentEditInput,
    now: DateTime<Utc>,
) -> Result<Assignment, AppError> {
    get_assignment(state, actor, assignment_id, CourseAction::Manage).await?;
    let deadline = Deadline::new(input.due_at, input.cutoff_at)?;
    check_resources(state, input.idle_secs, input.max_instances)?;
    let edit = db::courses::AssignmentEdit {
        title: text_field(&input.title, "title", 200, true)?,
        description: check_description(&input.description)?,
        due_at: deadline.due_at,
        cutoff_at: deadline.cutoff_at,
        idle_secs: input.idle_secs,
        max_instances: input.max_instances,
    };
    let assignment = state.db.run(move |conn| db::courses::edit_assignment(conn, assignment_id, &edit, now)).await?;
    let submissions = state.db.run(move |conn| db::courses::submissions(conn, assignment_id)).await?;
    for submission in &submissions {
        if let Ok(spec) = snapshot_spec(state, submission, &assignment) {
            state.runtime.set_policy(&submission.app_name, spec.policy);
        }
    }
    publish_assignment_snapshots(state, assignment_id, now).await?;
    Ok(assignment)
}

/// The editable part of an assignment (times in UTC).
#[derive(Debug, Clone)]
pub struct AssignmentEditInput {
    pub title: String,
    pub description: String,
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
    pub idle_secs: Option<i32>,
    pub max_instances: Option<i32>,
}

pub async fn assignments(state: &AppState, user: &User, course_id: i64) -> Result<Vec<Assignment>, AppError> {
    get(state, user, course_id, CourseAction::View).await?;
    Ok(state.db.run(move |conn| db::courses::assignments(conn, course_id)).await?)
}

pub fn rubric_of(assignment: &Assignment) -> Vec<RubricItem> {
    serde_json::from_value(assignment.rubric.clone()).unwrap_or_default()
}

pub fn deadline_of(assignment: &Assignment) -> Deadline {
    Deadline { due_at: assignment.due_at, cutoff_at: assignment.cutoff_at }
}

fn snapshot_root(state: &AppState) -> Result<PathBuf, AppError> {
    Ok(std::path::absolute(&state.config.data_dir).map_err(anyhow::Error::from)?)
}

/// Copies a built revision and its project's data volume into a new snapshot folder; returns
/// the folder relative to the data dir.
async fn copy_snapshot(
    data_dir: &Path,
    assignment_id: i64,
    submitter_key: &str,
    revision_dir: PathBuf,
    volume: PathBuf,
) -> Result<String, AppError> {
    let relative = format!("snapshots/a{assignment_id}/{submitter_key}/{}", uuid::Uuid::new_v4().simple());
    let target = data_dir.join(&relative);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        std::fs::create_dir_all(&target)?;
        // `cp -a` keeps owners, modes and symbolic links (node_modules/.bin) as the build left them.
        for (from, to) in [(revision_dir, target.join("app")), (volume, target.join("data"))] {
            if !from.exists() {
                std::fs::create_dir_all(&to)?;
                continue;
            }
            let status = std::process::Command::new("cp").arg("-a").arg("--").arg(&from).arg(&to).status()?;
            anyhow::ensure!(status.success(), "cp -a {} failed", from.display());
        }
        Ok(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("snapshot copy failed: {e}"))??;
    Ok(relative)
}

/// Submits `project_name` to the assignment at `now`: pins its live revision as the snapshot.
pub async fn submit(
    state: &AppState,
    user: &User,
    assignment_id: i64,
    project_name: &str,
    now: DateTime<Utc>,
) -> Result<Submission, AppError> {
    let (assignment, _course, _role) = get_assignment(state, user, assignment_id, CourseAction::View).await?;
    let late_by = match deadline_of(&assignment).window(now) {
        Window::OnTime => chrono::Duration::zero(),
        Window::Late { by } => by,
        Window::Closed => {
            return Err(AppError::Rejected {
                code: "submissions_closed",
                message: format!("submissions for `{}` closed at {}", assignment.title, assignment.cutoff_at.unwrap_or(assignment.due_at)),
            })
        }
    };
    let project = crate::projects::get(state, user, project_name, Action::Deploy).await?;
    let (submitter_key, group_id) = match (assignment.kind.as_str(), project.group_id) {
        ("group", Some(group_id)) => (format!("g{group_id}"), Some(group_id)),
        ("group", None) => {
            return Err(AppError::Rejected {
                code: "group_project_required",
                message: format!("`{}` is a group assignment; submit a project of your group", assignment.title),
            })
        }
        _ => (format!("u{}", user.id), None),
    };
    let revision = match project.live_revision_id {
        Some(revision_id) => state.db.run(move |conn| db::revisions::find(conn, revision_id)).await?,
        None => None,
    }
    .ok_or_else(|| AppError::Rejected {
        code: "nothing_deployed",
        message: format!("`{}` has no live revision; deploy it first, then submit", project.name),
    })?;
    if let Some(template) = &assignment.template {
        if &revision.template != template {
            return Err(AppError::Rejected {
                code: "wrong_template",
                message: format!("`{}` asks for the {template} template; `{}` uses {}", assignment.title, project.name, revision.template),
            });
        }
    }
    let plan = revision.plan.clone().ok_or_else(|| anyhow::anyhow!("live revision {} has no plan", revision.id))?;
    let data_dir = snapshot_root(state)?;
    let revision_dir = crate::build_worker::revision_dir(&data_dir, project.id, revision.number);
    if !revision_dir.exists() {
        return Err(AppError::Rejected {
            code: "revision_files_gone",
            message: format!("the built files of revision {} are no longer kept; deploy it again, then submit", revision.number),
        });
    }
    let snapshot_dir =
        copy_snapshot(&data_dir, assignment.id, &submitter_key, revision_dir, crate::build_worker::volume_dir(&data_dir, project.id))
            .await?;
    let copied_dir = snapshot_dir.clone();
    let sealed_env = match seal_env(state, project.id).await {
        Ok(sealed) => sealed,
        Err(e) => {
            remove_snapshot_files(state, &copied_dir).await;
            return Err(e);
        }
    };
    let app_name = format!("{}--a{}", project.name, assignment.id);
    let pin = db::courses::NewPin {
        assignment_id: assignment.id,
        submitter_key,
        user_id: user.id,
        group_id,
        project_id: project.id,
        project_name: project.name.clone(),
        app_name: app_name.clone(),
        revision_id: revision.id,
        revision_number: revision.number,
        artifact_id: revision.artifact_id.clone(),
        template: revision.template.clone(),
        plan,
        sealed_env,
        snapshot_dir,
        run_uid: crate::build_worker::project_uid(project.id) as i32,
        submitted_at: now,
        late_secs: late_by.num_seconds(),
    };
    let pinned = state.db.run(move |conn| db::courses::pin_submission(conn, &pin)).await;
    if pinned.is_err() {
        remove_snapshot_files(state, &copied_dir).await;
    }
    let (submission, earlier) = match pinned {
        Ok(pinned) => pinned,
        Err(e) if e.is_unique_violation() => {
            return Err(AppError::Conflict {
                code: "snapshot_name_taken",
                message: format!("another submission is served as `{app_name}`; submit under another project name"),
            })
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(earlier) = &earlier {
        if earlier.app_name != submission.app_name {
            state.runtime.stop(&earlier.app_name).await;
            crate::access::unpublish(state, &earlier.app_name).await?;
        }
    }
    activate(state, &submission, &assignment, true).await?;
    if let Some(earlier) = earlier {
        remove_snapshot_files(state, &earlier.snapshot_dir).await;
    }
    Ok(submission)
}

/// Removes a replaced snapshot's folder (its app was stopped or replaced before). A failure is
/// logged: it leaves files behind, never a broken snapshot.
async fn remove_snapshot_files(state: &AppState, relative: &str) {
    if !relative.starts_with("snapshots/") || relative.contains("..") {
        return;
    }
    let Ok(root) = snapshot_root(state) else { return };
    let dir = root.join(relative);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("could not remove the replaced snapshot {}: {e}", dir.display());
        }
    }
}

async fn seal_env(state: &AppState, project_id: i64) -> Result<Vec<u8>, AppError> {
    let env: Vec<(String, String)> = crate::projects::resolved_env(state, project_id).await?.into_iter().map(|(k, v)| (k, v.0)).collect();
    Ok(state.secrets.seal(&serde_json::to_vec(&env).expect("strings serialise")))
}

/// The runtime's spec for a snapshot.
fn snapshot_spec(state: &AppState, submission: &Submission, assignment: &Assignment) -> Result<orchestrator::runtime::AppSpec, AppError> {
    let plan: BuildPlan = serde_json::from_value(submission.plan.clone()).map_err(|e| anyhow::anyhow!("snapshot plan: {e}"))?;
    let sealed = state.secrets.open(&submission.sealed_env).map_err(|_| anyhow::anyhow!("snapshot {} env does not open", submission.id))?;
    let user_env: Vec<(String, String)> = serde_json::from_slice(&sealed).map_err(|e| anyhow::anyhow!("snapshot env: {e}"))?;
    let mut env: Vec<(String, String)> = plan.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.extend(user_env);
    let dir = snapshot_root(state)?.join(&submission.snapshot_dir);
    let limits = crate::projects::scaling_limits(&state.config);
    let settings = db::models::ScalingSettings {
        min_instances: Some(0),
        max_instances: assignment.max_instances,
        idle_secs: assignment.idle_secs,
        freeze_after_secs: None,
        target_concurrency: None,
    };
    let uid = submission.run_uid as u32;
    Ok(orchestrator::runtime::AppSpec {
        app: submission.app_name.clone(),
        revision: submission.revision_number,
        app_dir: dir.join("app"),
        data_dir: dir.join("data"),
        start: plan.start.clone(),
        env,
        port_env: plan.port_env.clone(),
        health: plan.health.clone(),
        resources: plan.resources.clone(),
        uid,
        gid: uid,
        policy: crate::domain::scaling::policy(&settings, &limits),
        outbound: state.config.deploy.app_outbound_hosts.clone(),
    })
}

/// Registers the snapshot with the runtime (stopped: the first request wakes it) and publishes
/// its access record. `replace` stops a running older pin first.
async fn activate(state: &AppState, submission: &Submission, assignment: &Assignment, replace: bool) -> Result<(), AppError> {
    let spec = snapshot_spec(state, submission, assignment)?;
    if replace {
        state.runtime.stop(&submission.app_name).await;
    }
    if let Err(e) = state.runtime.register_stopped(spec) {
        tracing::warn!(app = submission.app_name, "cannot register the snapshot: {e}");
    }
    publish_assignment_snapshots(state, assignment.id, Utc::now()).await
}

/// Every snapshot's access record as of `now`, for `access::publish_all`.
pub fn snapshot_records(conn: &mut diesel::PgConnection, now: DateTime<Utc>) -> Result<Vec<(String, AccessRecord)>, db::DbError> {
    let mut out = Vec::new();
    for submission in db::courses::all_submissions(conn)? {
        if let Some(record) = snapshot_record(conn, &submission, now)? {
            out.push((submission.app_name.clone(), record));
        }
    }
    Ok(out)
}

/// Who may open one snapshot (see `coursework::snapshot_viewers`).
pub fn snapshot_record(
    conn: &mut diesel::PgConnection,
    submission: &Submission,
    now: DateTime<Utc>,
) -> Result<Option<AccessRecord>, db::DbError> {
    let Some(assignment) = db::courses::find_assignment(conn, submission.assignment_id)? else { return Ok(None) };
    let staff = db::courses::staff_ids(conn, assignment.course_id)?;
    let class = db::courses::student_ids(conn, assignment.course_id)?;
    let submitters = submitter_ids(conn, submission)?;
    let visibility = SubmissionVisibility::parse(&assignment.visibility).unwrap_or(SubmissionVisibility::Staff);
    Ok(Some(match coursework::snapshot_viewers(visibility, deadline_of(&assignment).passed(now), &staff, &submitters, &class) {
        None => AccessRecord { visibility: Visibility::Public, users: Vec::new() },
        Some(users) => AccessRecord { visibility: Visibility::Members, users },
    }))
}

fn submitter_ids(conn: &mut diesel::PgConnection, submission: &Submission) -> Result<Vec<i64>, db::DbError> {
    Ok(match submission.group_id {
        Some(group_id) => db::groups::member_ids(conn, group_id, None)?,
        None => submission.user_id.into_iter().collect(),
    })
}

async fn publish_assignment_snapshots(state: &AppState, assignment_id: i64, now: DateTime<Utc>) -> Result<(), AppError> {
    let records = state
        .db
        .run(move |conn| {
            let mut out = Vec::new();
            for submission in db::courses::submissions(conn, assignment_id)? {
                if let Some(record) = snapshot_record(conn, &submission, now)? {
                    out.push((submission.app_name.clone(), Some(serde_json::to_string(&record).expect("a record serialises"))));
                }
            }
            Ok::<_, db::DbError>(out)
        })
        .await?;
    state.cache.publish_access(&records, false).await?;
    state.access.poke();
    Ok(())
}

async fn publish_course_snapshots(state: &AppState, course_id: i64) -> Result<(), AppError> {
    let ids: Vec<i64> = state.db.run(move |conn| db::courses::assignments(conn, course_id)).await?.into_iter().map(|a| a.id).collect();
    for id in ids {
        publish_assignment_snapshots(state, id, Utc::now()).await?;
    }
    Ok(())
}

/// Bulk access: sets who may open every submission of the assignment.
pub async fn set_access(state: &AppState, actor: &User, assignment_id: i64, raw_visibility: &str) -> Result<Assignment, AppError> {
    get_assignment(state, actor, assignment_id, CourseAction::Manage).await?;
    let visibility = SubmissionVisibility::parse(raw_visibility)?;
    let assignment = state.db.run(move |conn| db::courses::set_visibility(conn, assignment_id, visibility.as_str())).await?;
    publish_assignment_snapshots(state, assignment_id, Utc::now()).await?;
    Ok(assignment)
}

/// Releases (or withdraws) the assignment's grades to its students.
pub async fn set_released(
    state: &AppState,
    actor: &User,
    assignment_id: i64,
    released: bool,
    now: DateTime<Utc>,
) -> Result<Assignment, AppError> {
    get_assignment(state, actor, assignment_id, CourseAction::Manage).await?;
    let assignment = state.db.run(move |conn| db::courses::set_released(conn, assignment_id, released.then_some(now))).await?;
    let event = crate::audit::Event::new(crate::domain::audit::actions::GRADE_RELEASE)
        .target(crate::domain::audit::Target::other("assignment", assignment_id.to_string()))
        .details(serde_json::json!({ "course": assignment.course_id, "released": released }));
    crate::audit::record(&state.db, event).await;
    Ok(assignment)
}

/// A submission as the grading page and the API show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SubmissionView {
    pub id: i64,
    pub assignment_id: i64,
    /// Who submitted: display name and e-mail (the group's name for group work).
    pub submitter: String,
    pub email: String,
    pub project: String,
    pub snapshot_url: String,
    pub revision: i32,
    pub artifact: String,
    pub template: String,
    pub pinned_reason: String,
    pub pinned_at: DateTime<Utc>,
    pub submitted_at: DateTime<Utc>,
    pub late_secs: i64,
    /// "2 h 5 min", or empty when on time.
    pub late_by: String,
    pub scores: Option<Vec<Option<f64>>>,
    pub grade: Option<f64>,
    pub feedback: String,
}

fn view_of(state: &AppState, submission: &Submission, submitter: (String, String), show_grade: bool) -> SubmissionView {
    SubmissionView {
        id: submission.id,
        assignment_id: submission.assignment_id,
        submitter: submitter.0,
        email: submitter.1,
        project: submission.project_name.clone(),
        snapshot_url: crate::routes::api::projects::app_url(state, &submission.app_name),
        revision: submission.revision_number,
        artifact: submission.artifact_id.clone(),
        template: submission.template.clone(),
        pinned_reason: submission.pinned_reason.clone(),
        pinned_at: submission.pinned_at,
        submitted_at: submission.submitted_at,
        late_secs: submission.late_secs,
        late_by: if submission.late_secs > 0 {
            coursework::format_lateness(chrono::Duration::seconds(submission.late_secs))
        } else {
            String::new()
        },
        scores: if show_grade { submission.scores.clone().and_then(|s| serde_json::from_value(s).ok()) } else { None },
        grade: if show_grade { submission.grade } else { None },
        feedback: if show_grade { submission.feedback.clone() } else { String::new() },
    }
}

fn submitter_of(conn: &mut diesel::PgConnection, submission: &Submission) -> Result<(String, String), db::DbError> {
    if let Some(group) = submission.group_id.map(|g| db::groups::find_by_id(conn, g)).transpose()?.flatten() {
        return Ok((group.name, String::new()));
    }
    Ok(match submission.user_id.map(|u| db::users::find(conn, u)).transpose()?.flatten() {
        Some(user) => (user.display_name, user.email),
        None => ("(deleted account)".to_owned(), String::new()),
    })
}

/// Every submission of the assignment, for its staff.
pub async fn submissions(state: &AppState, actor: &User, assignment_id: i64) -> Result<(Assignment, Vec<SubmissionView>), AppError> {
    let (assignment, _, _) = get_assignment(state, actor, assignment_id, CourseAction::Grade).await?;
    let rows = state
        .db
        .run(move |conn| {
            let mut out = Vec::new();
            for submission in db::courses::submissions(conn, assignment_id)? {
                let who = submitter_of(conn, &submission)?;
                out.push((submission, who));
            }
            Ok::<_, db::DbError>(out)
        })
        .await?;
    Ok((assignment, rows.iter().map(|(s, who)| view_of(state, s, who.clone(), true)).collect()))
}

/// The user's own submission (theirs or their group's); the grade only once released.
pub async fn my_submission(state: &AppState, user: &User, assignment: &Assignment) -> Result<Option<SubmissionView>, AppError> {
    let (assignment_id, user_id) = (assignment.id, user.id);
    let found = state
        .db
        .run(move |conn| {
            let mut keys = vec![format!("u{user_id}")];
            keys.extend(db::groups::for_user(conn, user_id)?.into_iter().map(|(g, _)| format!("g{}", g.id)));
            let Some(submission) = db::courses::submission_for(conn, assignment_id, &keys)? else { return Ok(None) };
            let who = submitter_of(conn, &submission)?;
            Ok::<_, db::DbError>(Some((submission, who)))
        })
        .await?;
    let released = assignment.grades_released_at.is_some();
    Ok(found.map(|(s, who)| view_of(state, &s, who, released)))
}

/// One submission: staff see everything; a submitter sees theirs, graded only once released;
/// anyone else gets 404.
pub async fn submission(state: &AppState, user: &User, submission_id: i64) -> Result<(Assignment, SubmissionView, bool), AppError> {
    let submission =
        state.db.run(move |conn| db::courses::find_submission(conn, submission_id)).await?.ok_or(AppError::NotFound("submission"))?;
    let (assignment, _, role) = get_assignment(state, user, submission.assignment_id, CourseAction::View).await.map_err(|e| match e {
        AppError::NotFound(_) => AppError::NotFound("submission"),
        other => other,
    })?;
    let staff = course_allows(role, CourseAction::Grade);
    let (submission_for_db, user_id) = (submission.clone(), user.id);
    let (who, is_submitter) = state
        .db
        .run(move |conn| {
            Ok::<_, db::DbError>((submitter_of(conn, &submission_for_db)?, submitter_ids(conn, &submission_for_db)?.contains(&user_id)))
        })
        .await?;
    if !staff && !is_submitter {
        return Err(AppError::NotFound("submission"));
    }
    let show_grade = staff || assignment.grades_released_at.is_some();
    Ok((assignment, view_of(state, &submission, who, show_grade), staff))
}

/// Saves rubric scores and feedback (the grading page autosaves through this).
pub async fn grade(
    state: &AppState,
    actor: &User,
    submission_id: i64,
    scores: Vec<Option<f64>>,
    feedback: &str,
    now: DateTime<Utc>,
) -> Result<SubmissionView, AppError> {
    let (assignment, before, staff) = submission(state, actor, submission_id).await?;
    if !staff {
        return Err(AppError::Forbidden);
    }
    let total = coursework::total(&rubric_of(&assignment), &scores)?;
    if feedback.len() > 20_000 {
        return Err(ValidationError::new("invalid_feedback", "feedback", "feedback is at most 20000 bytes").into());
    }
    let (feedback, actor_id) = (feedback.to_owned(), actor.id);
    let scores_json = serde_json::to_value(&scores).expect("scores serialise");
    state.db.run(move |conn| db::courses::set_grade(conn, submission_id, scores_json, total, &feedback, actor_id, now)).await?;
    let after = submission(state, actor, submission_id).await?.1;
    // The page autosaves as the grader types: one entry per change of the grade itself, not per
    // keystroke in the feedback.
    if before.grade != after.grade {
        let details = serde_json::json!({
            "course": assignment.course_id, "assignment": assignment.id, "submitter": after.email,
            "from": before.grade, "to": after.grade,
        });
        let event = crate::audit::Event::new(crate::domain::audit::actions::GRADE_CHANGE)
            .target(crate::domain::audit::Target::other("submission", submission_id.to_string()))
            .details(details);
        crate::audit::record(&state.db, event).await;
    }
    Ok(after)
}

/// Wakes the snapshots of the `n_next` submissions after `submission_id` (in the grading list's
/// order), so the grader never waits on a cold start; returns the apps asked to wake.
pub async fn prewarm(state: &AppState, actor: &User, submission_id: i64, n_next: usize) -> Result<Vec<String>, AppError> {
    let (assignment, _, staff) = submission(state, actor, submission_id).await?;
    if !staff {
        return Err(AppError::Forbidden);
    }
    let assignment_id = assignment.id;
    let all = state.db.run(move |conn| db::courses::submissions(conn, assignment_id)).await?;
    let position = all.iter().position(|s| s.id == submission_id).unwrap_or(0);
    let mut woken = Vec::new();
    for submission in all.iter().skip(position).take(n_next + 1) {
        if state.runtime.scale_to(&submission.app_name, 1).await.is_ok() {
            woken.push(submission.app_name.clone());
        }
    }
    Ok(woken)
}

/// The course's grades as CSV. Only released or not, every graded submission is exported: the
/// export is for staff, who upload it to the LMS themselves.
pub async fn export(state: &AppState, actor: &User, course_id: i64, format: ExportFormat, bom: bool) -> Result<Vec<u8>, AppError> {
    get(state, actor, course_id, CourseAction::Grade).await?;
    let (assignments, students, submissions, memberships) = state
        .db
        .run(move |conn| {
            let assignments = db::courses::assignments(conn, course_id)?;
            let students = db::courses::students(conn, course_id)?;
            let mut submissions = Vec::new();
            for assignment in &assignments {
                submissions.extend(db::courses::submissions(conn, assignment.id)?);
            }
            let mut memberships = std::collections::HashMap::new();
            for group_id in submissions.iter().filter_map(|s| s.group_id) {
                memberships.insert(group_id, db::groups::member_ids(conn, group_id, None)?);
            }
            Ok::<_, db::DbError>((assignments, students, submissions, memberships))
        })
        .await?;
    let columns: Vec<ExportAssignment> = assignments.iter().map(|a| ExportAssignment { id: a.id, title: a.title.clone() }).collect();
    let rows: Vec<ExportStudent> = students
        .iter()
        .map(|(enrolment, user)| {
            let grades = assignments
                .iter()
                .map(|assignment| {
                    submissions
                        .iter()
                        .filter(|s| s.assignment_id == assignment.id)
                        .find(|s| match s.group_id {
                            Some(group_id) => memberships.get(&group_id).is_some_and(|m| m.contains(&user.id)),
                            None => s.user_id == Some(user.id),
                        })
                        .and_then(|s| s.grade.map(|g| (g, s.feedback.clone())))
                })
                .collect();
            ExportStudent {
                name: if enrolment.roster_name.is_empty() { user.display_name.clone() } else { enrolment.roster_name.clone() },
                email: user.email.clone(),
                student_number: if enrolment.student_number.is_empty() {
                    user.student_number.clone().unwrap_or_default()
                } else {
                    enrolment.student_number.clone()
                },
                section: enrolment.section.clone(),
                grades,
            }
        })
        .collect();
    Ok(grade_export::export(format, &columns, &rows, bom))
}

/// At each deadline (run every few seconds with the time passed in): pins again, for every
/// on-time submission, the newest revision of its project that was deployed by the deadline,
/// and republishes the snapshots' access (the class or the public may see them now). Returns how
/// many snapshots were pinned again.
pub async fn sweep(state: &AppState, now: DateTime<Utc>) -> Result<usize, AppError> {
    let due = state.db.run(move |conn| db::courses::unswept(conn, now)).await?;
    let mut n_repinned = 0;
    for assignment in due {
        let assignment_id = assignment.id;
        let submissions = state.db.run(move |conn| db::courses::submissions(conn, assignment_id)).await?;
        for submission in submissions.into_iter().filter(|s| s.late_secs == 0) {
            match repin(state, &assignment, &submission, now).await {
                Ok(true) => n_repinned += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(submission = submission.id, "could not pin at the deadline: {e}"),
            }
        }
        state.db.run(move |conn| db::courses::mark_swept(conn, assignment_id, now)).await?;
        publish_assignment_snapshots(state, assignment_id, now).await?;
    }
    Ok(n_repinned)
}

async fn repin(state: &AppState, assignment: &Assignment, submission: &Submission, now: DateTime<Utc>) -> Result<bool, AppError> {
    let Some(project_id) = submission.project_id else { return Ok(false) };
    let due_at = assignment.due_at;
    let newest = state
        .db
        .run(move |conn| db::revisions::list(conn, project_id, 1000))
        .await?
        .into_iter()
        .filter(|r| r.created_at <= due_at && matches!(r.status.as_str(), "live" | "retired") && r.plan.is_some())
        .max_by_key(|r| r.number);
    let Some(revision) = newest.filter(|r| Some(r.id) != submission.revision_id && r.number > submission.revision_number) else {
        return Ok(false);
    };
    if let Some(template) = &assignment.template {
        if &revision.template != template {
            return Ok(false);
        }
    }
    let data_dir = snapshot_root(state)?;
    let revision_dir = crate::build_worker::revision_dir(&data_dir, project_id, revision.number);
    if !revision_dir.exists() {
        return Ok(false);
    }
    let snapshot_dir = copy_snapshot(
        &data_dir,
        assignment.id,
        &submission.submitter_key,
        revision_dir,
        crate::build_worker::volume_dir(&data_dir, project_id),
    )
    .await?;
    let sealed_env = seal_env(state, project_id).await?;
    let (submission_id, plan) = (submission.id, revision.plan.clone().expect("filtered on a plan"));
    let earlier_dir = submission.snapshot_dir.clone();
    let updated = state
        .db
        .run(move |conn| db::courses::repin_at_deadline(conn, submission_id, &revision, plan, sealed_env, &snapshot_dir, now))
        .await?;
    activate(state, &updated, assignment, true).await?;
    remove_snapshot_files(state, &earlier_dir).await;
    Ok(true)
}

/// Registers every snapshot with the runtime after a restart (stopped; each wakes on demand).
pub async fn restore_snapshots(state: AppState) {
    let rows = match state
        .db
        .run(|conn| {
            let mut out = Vec::new();
            for submission in db::courses::all_submissions(conn)? {
                if let Some(assignment) = db::courses::find_assignment(conn, submission.assignment_id)? {
                    out.push((submission, assignment));
                }
            }
            Ok::<_, db::DbError>(out)
        })
        .await
    {
        Ok(rows) => rows,
        Err(e) => return tracing::warn!("cannot list snapshots: {e}"),
    };
    for (submission, assignment) in rows {
        match snapshot_spec(&state, &submission, &assignment) {
            Ok(spec) => {
                if let Err(e) = state.runtime.register_stopped(spec) {
                    tracing::warn!(app = submission.app_name, "could not restore the snapshot: {e}");
                }
            }
            Err(e) => tracing::warn!(app = submission.app_name, "could not prepare the snapshot: {e}"),
        }
    }
}

/// The sweep, every `every`, until shutdown.
pub async fn sweep_loop(state: AppState, every: std::time::Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    loop {
        if let Err(e) = sweep(&state, Utc::now()).await {
            tracing::warn!("deadline sweep: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A course as its page and the API show it.
#[derive(Debug, serde::Serialize)]
pub struct Details {
    pub course: Course,
    pub your_role: CourseRole,
    /// (role, display name, e-mail); empty for students.
    pub staff: Vec<(String, String, String)>,
    /// Enrolled students (staff only).
    pub students: Vec<StudentView>,
    pub invitations: Vec<db::models::CourseInvitation>,
    pub assignments: Vec<AssignmentView>,
}

#[derive(Debug, serde::Serialize)]
pub struct StudentView {
    pub email: String,
    pub display_name: String,
    pub roster_name: String,
    pub student_number: String,
    pub section: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AssignmentView {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub due_at: DateTime<Utc>,
    pub cutoff_at: Option<DateTime<Utc>>,
    pub kind: String,
    pub template: Option<String>,
    pub visibility: String,
    pub idle_secs: Option<i32>,
    pub max_instances: Option<i32>,
    pub rubric: Vec<RubricItem>,
    pub grades_released: bool,
}

pub fn assignment_view(assignment: &Assignment) -> AssignmentView {
    AssignmentView {
        id: assignment.id,
        title: assignment.title.clone(),
        description: assignment.description.clone(),
        due_at: assignment.due_at,
        cutoff_at: assignment.cutoff_at,
        kind: assignment.kind.clone(),
        template: assignment.template.clone(),
        visibility: assignment.visibility.clone(),
        idle_secs: assignment.idle_secs,
        max_instances: assignment.max_instances,
        rubric: rubric_of(assignment),
        grades_released: assignment.grades_released_at.is_some(),
    }
}

pub async fn details(state: &AppState, user: &User, course_id: i64) -> Result<Details, AppError> {
    let (course, role) = get(state, user, course_id, CourseAction::View).await?;
    let staff_view = course_allows(role, CourseAction::Grade);
    let (staff, students, invitations, assignments) = state
        .db
        .run(move |conn| {
            let staff = db::courses::staff(conn, course_id)?;
            let (students, invitations) = if staff_view {
                (db::courses::students(conn, course_id)?, db::courses::invitations(conn, course_id)?)
            } else {
                Default::default()
            };
            Ok::<_, db::DbError>((staff, students, invitations, db::courses::assignments(conn, course_id)?))
        })
        .await?;
    Ok(Details {
        course,
        your_role: role,
        staff: staff.into_iter().map(|(role, u)| (role, u.display_name, u.email)).collect(),
        students: students
            .into_iter()
            .map(|(e, u)| StudentView {
                email: u.email,
                display_name: u.display_name,
                roster_name: e.roster_name,
                student_number: e.student_number,
                section: e.section,
            })
            .collect(),
        invitations,
        assignments: assignments.iter().map(assignment_view).collect(),
    })
}
