//! Who may see which app, from the portal's side: a user's role towards a project, the access
//! record each app publishes for the gateways, and the hand-off token that sends a signed-in
//! visitor back to an app.
//!
//! The decision itself is `orchestrator::gateway::access::decide`, the same function the gateway
//! and the forwardAuth endpoint use; this module only computes its inputs from the database and
//! publishes them to Redis (`Cache::publish_access`). It deliberately does not answer HTTP.

use orchestrator::gateway::access::{token, AccessRecord, AccessTable, Claims, Decision, Kind, Visibility, Visitor};

use crate::db;
use crate::db::models::{Project, User};
use crate::domain::{GroupRole, ProjectRole, Role};
use crate::error::AppError;
use crate::state::AppState;

/// How long a gateway cookie lives; revocation lists keep an ended session this long.
pub const COOKIE_TTL_SECS: u64 = 12 * 3600;

/// `user`'s standing towards `project` (see `domain::permissions`).
pub fn role_in(conn: &mut diesel::PgConnection, user: &User, project: &Project) -> Result<ProjectRole, db::DbError> {
    if user.role == Role::Admin.as_str() {
        return Ok(ProjectRole::Owner);
    }
    match project.group_id {
        Some(group_id) => Ok(db::groups::role_of(conn, group_id, user.id)?
            .and_then(|role| GroupRole::parse(&role).ok())
            .map_or(ProjectRole::None, GroupRole::project_role)),
        None if project.owner_id == user.id => Ok(ProjectRole::Owner),
        None => Ok(ProjectRole::None),
    }
    .and_then(|role| {
        // Staff of a course the project was submitted to may look at it (never change it).
        if role == ProjectRole::None && db::courses::staff_of_submitted_project(conn, project.id)?.contains(&user.id) {
            return Ok(ProjectRole::Viewer);
        }
        Ok(role)
    })
}

/// The record the gateways get for `project`: `members` lets in every member of the owning group
/// (or the owner), `private` only the owner (or the group's owners).
pub fn record_for(conn: &mut diesel::PgConnection, project: &Project) -> Result<AccessRecord, db::DbError> {
    let visibility = Visibility::parse(&project.visibility).unwrap_or(Visibility::Private);
    let users = match (visibility, project.group_id) {
        (Visibility::Public | Visibility::Campus, _) => Vec::new(),
        (Visibility::Members, Some(group_id)) => db::groups::member_ids(conn, group_id, None)?,
        (Visibility::Private, Some(group_id)) => db::groups::member_ids(conn, group_id, Some("owner"))?,
        (Visibility::Members | Visibility::Private, None) => vec![project.owner_id],
    };
    let mut users = users;
    if visibility == Visibility::Members {
        // Course staff count as members of the projects submitted to their courses.
        users.extend(db::courses::staff_of_submitted_project(conn, project.id)?);
        users.sort_unstable();
        users.dedup();
    }
    Ok(AccessRecord { visibility, users })
}

fn record_json(record: &AccessRecord) -> String {
    serde_json::to_string(record).expect("an access record always serialises")
}

/// Publishes the records of these projects (by id); a project that no longer exists is removed
/// by name via `unpublish`.
pub async fn publish_projects(state: &AppState, project_ids: Vec<i64>) -> Result<(), AppError> {
    let records = state
        .db
        .run(move |conn| {
            let mut out = Vec::new();
            for id in project_ids {
                if let Some(project) = db::projects::find_by_id(conn, id)? {
                    let record = record_for(conn, &project)?;
                    out.push((project.name, Some(record_json(&record))));
                }
            }
            Ok::<_, db::DbError>(out)
        })
        .await?;
    state.cache.publish_access(&records, false).await?;
    state.access.poke();
    Ok(())
}

pub async fn publish_project(state: &AppState, project: &Project) -> Result<(), AppError> {
    publish_projects(state, vec![project.id]).await
}

/// After a membership change: every project of the group.
pub async fn publish_group(state: &AppState, group_id: i64) -> Result<(), AppError> {
    let ids = state.db.run(move |conn| db::groups::projects(conn, group_id)).await?.into_iter().map(|p| p.id).collect();
    publish_projects(state, ids).await
}

pub async fn unpublish(state: &AppState, name: &str) -> Result<(), AppError> {
    state.cache.publish_access(&[(name.to_owned(), None)], false).await?;
    state.access.poke();
    Ok(())
}

/// Replaces every published record with the database's view (at start).
pub async fn publish_all(state: &AppState) -> Result<usize, AppError> {
    let records = state
        .db
        .run(|conn| {
            let mut out = Vec::new();
            for project in db::projects::list_all(conn)? {
                let record = record_for(conn, &project)?;
                out.push((project.name, Some(record_json(&record))));
            }
            // Submission snapshots are apps too (`NAME--a<assignment>`).
            for (app, record) in crate::courses::snapshot_records(conn, chrono::Utc::now())? {
                out.push((app, Some(record_json(&record))));
            }
            Ok::<_, db::DbError>(out)
        })
        .await?;
    state.cache.publish_access(&records, true).await?;
    state.access.poke();
    Ok(records.len())
}

/// What `/access` does for a signed-in visitor: the same decision the gateway makes.
pub enum Handoff {
    /// Go here: the app's hand-off URL with a fresh token.
    Redirect(String),
    Denied,
}

/// Decides for `user` (signed in with session `session_token`) and, when allowed, mints a
/// hand-off token for `app` that returns to `next` on the app's own host, or on `custom_host` when
/// that is a verified custom domain of the app (anything else is refused as not found, so the
/// portal never sends a token to a host the app does not own).
pub async fn handoff(
    state: &AppState,
    user: &User,
    session_token: &str,
    app: &str,
    next: &str,
    custom_host: Option<&str>,
) -> Result<Handoff, AppError> {
    let name = app.trim().to_owned();
    let project = state.db.run(move |conn| db::projects::find_by_name(conn, &name)).await?.ok_or(AppError::NotFound("project"))?;
    let record = {
        let project = project.clone();
        state.db.run(move |conn| record_for(conn, &project)).await?
    };
    let sid = token::session_id(&crate::crypto::token_hash(session_token));
    let table = AccessTable::new([(project.name.clone(), record)], []);
    match orchestrator::gateway::access::decide(&table, true, &project.name, Visitor::User { user_id: user.id, sid: &sid }) {
        Decision::Allow => {}
        Decision::Deny | Decision::Login | Decision::Unavailable => return Ok(Handoff::Denied),
        Decision::Unknown => return Err(AppError::NotFound("project")),
    }
    let claims = Claims {
        user_id: user.id,
        sid,
        expires_at: chrono::Utc::now().timestamp() as u64 + orchestrator::gateway::access::HANDOFF_TTL_SECS,
        nonce: crate::crypto::new_token(),
        app: project.name.clone(),
        next: if next.starts_with('/') && !next.starts_with("//") { next.to_owned() } else { "/".to_owned() },
    };
    let token = token::sign(&state.secrets.access_key(), Kind::Handoff, &claims);
    let base = match custom_host {
        None => crate::routes::api::projects::app_url(state, &project.name),
        Some(host) => crate::custom_domains::handoff_base(state, project.id, host).await?.ok_or(AppError::NotFound("domain"))?,
    };
    Ok(Handoff::Redirect(format!("{base}{}?token={token}", orchestrator::gateway::access::HANDOFF_PATH)))
}
