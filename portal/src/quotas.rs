//! Limits admins set per user and per group: projects, running instances, memory, builds per
//! hour. A personal project counts against its owner's quota, a group's project against the
//! group's. No row (or a NULL limit) means no limit.
//!
//! Each check runs before anything is written, so reaching a quota leaves nothing half-created;
//! the error names the quota and its value (`quota_exceeded`, "the quota `projects` is 3 ...").

use diesel::prelude::*;

use crate::db;
use crate::db::models::{Project, QuotaRow, User};
use crate::db::schema::{projects, quotas, revisions};
use crate::domain::audit::{actions, Target};
use crate::error::AppError;
use crate::state::AppState;

/// The quota names as the API and the messages spell them.
pub const NAMES: [&str; 4] = ["projects", "instances", "memory_mb", "builds_per_hour"];

fn exceeded(quota: &str, value: i32, whose: &str) -> AppError {
    AppError::Rejected {
        code: "quota_exceeded",
        message: format!("the quota `{quota}` is {value} for {whose} and has been reached; ask an admin to raise it"),
    }
}

fn row_for(conn: &mut PgConnection, user_id: i64, group_id: Option<i64>) -> Result<Option<QuotaRow>, db::DbError> {
    let query = quotas::table.select(QuotaRow::as_select()).into_boxed();
    let query = match group_id {
        Some(group_id) => query.filter(quotas::group_id.eq(group_id)),
        None => query.filter(quotas::user_id.eq(user_id)),
    };
    Ok(query.first(conn).optional()?)
}

fn whose(group_id: Option<i64>) -> &'static str {
    if group_id.is_some() {
        "this group"
    } else {
        "your account"
    }
}

/// Before creating a project for `user` (in `group_id`, if given).
pub async fn check_project_create(state: &AppState, user: &User, group_id: Option<i64>) -> Result<(), AppError> {
    let user_id = user.id;
    let refusal = state
        .db
        .run(move |conn| {
            let Some(limit) = row_for(conn, user_id, group_id)?.and_then(|q| q.max_projects) else { return Ok(None) };
            let n_projects = db::projects::count_owned(conn, Some(user_id), group_id)?;
            Ok::<_, db::DbError>((n_projects >= i64::from(limit)).then_some(limit))
        })
        .await?;
    match refusal {
        Some(limit) => Err(exceeded("projects", limit, whose(group_id))),
        None => Ok(()),
    }
}

/// Before queueing a build of `project`: builds started in the last hour by the project's owner
/// (or group), across its projects.
pub async fn check_build(state: &AppState, project: &Project) -> Result<(), AppError> {
    let (owner_id, group_id) = (project.owner_id, project.group_id);
    let refusal = state
        .db
        .run(move |conn| {
            let Some(limit) = row_for(conn, owner_id, group_id)?.and_then(|q| q.max_builds_per_hour) else { return Ok(None) };
            let since = chrono::Utc::now() - chrono::Duration::hours(1);
            let owned = match group_id {
                Some(group_id) => projects::table.filter(projects::group_id.eq(group_id)).select(projects::id).into_boxed(),
                None => projects::table
                    .filter(projects::owner_id.eq(owner_id))
                    .filter(projects::group_id.is_null())
                    .select(projects::id)
                    .into_boxed(),
            };
            let n_builds: i64 = revisions::table
                .filter(revisions::project_id.eq_any(owned))
                .filter(revisions::created_at.gt(since))
                .count()
                .get_result(conn)?;
            Ok::<_, db::DbError>((n_builds >= i64::from(limit)).then_some(limit))
        })
        .await?;
    match refusal {
        Some(limit) => Err(exceeded("builds_per_hour", limit, whose(group_id))),
        None => Ok(()),
    }
}

/// For the scaling code: may `project` run up to `requested_max` instances? Refused when that is
/// above the owner's (or group's) `instances` quota.
pub async fn check_instances(state: &AppState, project: &Project, requested_max: u32) -> Result<(), AppError> {
    check_limit(state, project, "instances", i64::from(requested_max), |q| q.max_instances).await
}

/// The revision statuses whose plan runs or will run: their memory counts against the quota.
const RUNNING_STATUSES: [&str; 4] = ["queued", "building", "built", "live"];

/// One instance's memory limit in a stored plan (`BuildPlan::resources.memory_mb`); 0 when the
/// plan has none (a revision queued before its plan was written).
fn plan_memory_mb(plan: Option<&serde_json::Value>) -> u64 {
    plan.and_then(|p| p["resources"]["memory_mb"].as_u64()).unwrap_or(0)
}

/// What a change asks of the memory quota: the project's instance size (None: as its revisions
/// say) and its maximum instances after the change.
#[derive(Debug, Clone, Copy)]
pub struct MemoryAsk {
    pub memory_mb_per_instance: Option<u64>,
    pub max_instances: u32,
}

/// The `memory_mb` quota bounds the memory the owner's (or group's) apps may take at full scale:
/// for each project, one instance's limit (the largest among its revisions that run or will run)
/// times its maximum instances, summed. Called before a deploy is stored (with the new plan's
/// size) and before scaling settings change (with the new maximum); a refusal changes nothing.
///
/// Worked example: a quota of 512 and a Python app (256 MB) at 1 instance uses 256; raising its
/// maximum to 3 would need 768 and is refused; a second static app (32 MB × 3 = 96) still fits.
pub async fn check_memory(state: &AppState, project: &Project, ask: MemoryAsk) -> Result<(), AppError> {
    let (owner_id, group_id, project_id) = (project.owner_id, project.group_id, project.id);
    let limits = crate::projects::scaling_limits(&state.config);
    let refusal = state
        .db
        .run(move |conn| {
            let Some(limit) = row_for(conn, owner_id, group_id)?.and_then(|q| q.max_memory_mb) else { return Ok(None) };
            let owned: Vec<Project> = match group_id {
                Some(group_id) => projects::table.filter(projects::group_id.eq(group_id)).select(Project::as_select()).load(conn)?,
                None => projects::table
                    .filter(projects::owner_id.eq(owner_id))
                    .filter(projects::group_id.is_null())
                    .select(Project::as_select())
                    .load(conn)?,
            };
            let ids: Vec<i64> = owned.iter().map(|p| p.id).collect();
            let plans: Vec<(i64, Option<serde_json::Value>)> = revisions::table
                .filter(revisions::project_id.eq_any(&ids))
                .filter(revisions::status.eq_any(RUNNING_STATUSES))
                .select((revisions::project_id, revisions::plan))
                .load(conn)?;
            let size_of =
                |id: i64| plans.iter().filter(|(p, _)| *p == id).map(|(_, plan)| plan_memory_mb(plan.as_ref())).max().unwrap_or(0);
            let mut total_mb: u64 = 0;
            for other in owned.iter().filter(|p| p.id != project_id) {
                let max_instances = crate::domain::scaling::effective(&other.scaling(), &limits).max_instances;
                total_mb += size_of(other.id) * u64::from(max_instances);
            }
            let own_size = ask.memory_mb_per_instance.unwrap_or_else(|| size_of(project_id));
            total_mb += own_size * u64::from(ask.max_instances);
            Ok::<_, db::DbError>((total_mb > u64::try_from(limit).unwrap_or(0)).then_some((limit, total_mb)))
        })
        .await?;
    match refusal {
        Some((limit, total_mb)) => Err(AppError::Rejected {
            code: "quota_exceeded",
            message: format!(
                "the quota `memory_mb` is {limit} for {}; at full scale this would need {total_mb} MB; ask an admin to raise it",
                whose(group_id)
            ),
        }),
        None => Ok(()),
    }
}

async fn check_limit(
    state: &AppState,
    project: &Project,
    quota: &'static str,
    requested: i64,
    pick: fn(&QuotaRow) -> Option<i32>,
) -> Result<(), AppError> {
    let (owner_id, group_id) = (project.owner_id, project.group_id);
    let limit = state.db.run(move |conn| Ok::<_, db::DbError>(row_for(conn, owner_id, group_id)?.as_ref().and_then(pick))).await?;
    match limit {
        Some(limit) if requested > i64::from(limit) => Err(exceeded(quota, limit, whose(group_id))),
        _ => Ok(()),
    }
}

/// Admins: sets the limits of one user or one group (a `None` clears that limit).
pub async fn set(state: &AppState, user_id: Option<i64>, group_id: Option<i64>, limits: [Option<i32>; 4]) -> Result<QuotaRow, AppError> {
    if limits.iter().flatten().any(|value| *value < 0) {
        return Err(AppError::BadRequest("quotas are counts and cannot be negative".to_owned()));
    }
    let [max_projects, max_instances, max_memory_mb, max_builds_per_hour] = limits;
    let values = (
        quotas::max_projects.eq(max_projects),
        quotas::max_instances.eq(max_instances),
        quotas::max_memory_mb.eq(max_memory_mb),
        quotas::max_builds_per_hour.eq(max_builds_per_hour),
        quotas::updated_at.eq(chrono::Utc::now()),
    );
    let row = state
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                match (user_id, group_id) {
                    (Some(user_id), _) => diesel::delete(quotas::table.filter(quotas::user_id.eq(user_id))).execute(conn)?,
                    (None, Some(group_id)) => diesel::delete(quotas::table.filter(quotas::group_id.eq(group_id))).execute(conn)?,
                    (None, None) => 0,
                };
                Ok::<_, db::DbError>(
                    diesel::insert_into(quotas::table)
                        .values((quotas::user_id.eq(user_id), quotas::group_id.eq(group_id), values))
                        .returning(QuotaRow::as_returning())
                        .get_result(conn)?,
                )
            })
        })
        .await?;
    let target = match (user_id, group_id) {
        (Some(user_id), _) => Target::user(user_id),
        (None, Some(group_id)) => {
            // The quota is set by now: a failed name lookup only makes the entry name the id.
            let group = state.db.run(move |conn| db::groups::find_by_id(conn, group_id)).await.ok().flatten();
            Target::group(&group.map_or_else(|| group_id.to_string(), |g| g.name))
        }
        (None, None) => Target::other("installation", ""),
    };
    let details = serde_json::json!({
        "projects": max_projects, "instances": max_instances, "memory_mb": max_memory_mb, "builds_per_hour": max_builds_per_hour,
    });
    crate::audit::record(&state.db, crate::audit::Event::new(actions::QUOTA_SET).target(target).details(details)).await;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plans_memory_is_its_resources_limit_and_zero_without_a_plan() {
        let plan = serde_json::json!({"template": "python", "resources": {"memory_mb": 256, "cpu_millicores": 500}});
        assert_eq!(plan_memory_mb(Some(&plan)), 256);
        assert_eq!(plan_memory_mb(None), 0);
        assert_eq!(plan_memory_mb(Some(&serde_json::json!({}))), 0);
    }
}
