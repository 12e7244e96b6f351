//! Queries on `git_sources` (the repository a project follows) and `webhook_deliveries` (delivery
//! ids already received). The source's token and webhook secret are in the secret store.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{git_sources, webhook_deliveries};
use super::DbError;

#[derive(Debug, Clone, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = git_sources)]
pub struct GitSource {
    pub project_id: i64,
    pub repo_url: String,
    pub branch: String,
    pub has_token: bool,
    pub last_sha: Option<String>,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn find(conn: &mut PgConnection, project_id: i64) -> Result<Option<GitSource>, DbError> {
    Ok(git_sources::table.find(project_id).select(GitSource::as_select()).first(conn).optional()?)
}

pub fn all(conn: &mut PgConnection) -> Result<Vec<GitSource>, DbError> {
    Ok(git_sources::table.select(GitSource::as_select()).order(git_sources::project_id).load(conn)?)
}

/// Creates or replaces the project's source; `last_sha` starts over.
pub fn upsert(conn: &mut PgConnection, project_id: i64, repo_url: &str, branch: &str, has_token: bool) -> Result<GitSource, DbError> {
    Ok(diesel::insert_into(git_sources::table)
        .values((
            git_sources::project_id.eq(project_id),
            git_sources::repo_url.eq(repo_url),
            git_sources::branch.eq(branch),
            git_sources::has_token.eq(has_token),
        ))
        .on_conflict(git_sources::project_id)
        .do_update()
        .set((
            git_sources::repo_url.eq(repo_url),
            git_sources::branch.eq(branch),
            git_sources::has_token.eq(has_token),
            git_sources::last_sha.eq(None::<String>),
            git_sources::updated_at.eq(Utc::now()),
        ))
        .returning(GitSource::as_returning())
        .get_result(conn)?)
}

pub fn delete(conn: &mut PgConnection, project_id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(git_sources::table.find(project_id)).execute(conn)? > 0)
}

/// Records that `sha` was built (or queued) from the source, and when the source was last looked at.
pub fn set_last_sha(conn: &mut PgConnection, project_id: i64, sha: &str) -> Result<(), DbError> {
    diesel::update(git_sources::table.find(project_id))
        .set((git_sources::last_sha.eq(sha), git_sources::last_checked_at.eq(Utc::now())))
        .execute(conn)?;
    Ok(())
}

pub fn touch_checked(conn: &mut PgConnection, project_id: i64) -> Result<(), DbError> {
    diesel::update(git_sources::table.find(project_id)).set(git_sources::last_checked_at.eq(Utc::now())).execute(conn)?;
    Ok(())
}

pub fn delivery_seen(conn: &mut PgConnection, project_id: i64, delivery_id: &str) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(
        webhook_deliveries::table
            .filter(webhook_deliveries::project_id.eq(project_id))
            .filter(webhook_deliveries::delivery_id.eq(delivery_id)),
    ))
    .get_result(conn)?)
}

/// Records a delivery; `false` when it was recorded already (a replay racing the first).
pub fn record_delivery(conn: &mut PgConnection, project_id: i64, delivery_id: &str) -> Result<bool, DbError> {
    let inserted = diesel::insert_into(webhook_deliveries::table)
        .values((webhook_deliveries::project_id.eq(project_id), webhook_deliveries::delivery_id.eq(delivery_id)))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(inserted == 1)
}
