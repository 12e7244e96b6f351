//! Queries on `revisions`, including the build queue (claimed with a lease, like the mail queue).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::Revision;
use super::schema::revisions;
use super::DbError;

pub struct NewRevision<'a> {
    pub project_id: i64,
    pub artifact_id: &'a str,
    pub template: &'a str,
    pub source: &'a str,
    pub created_by: Option<i64>,
    pub commit_sha: Option<&'a str>,
    pub commit_message: Option<&'a str>,
}

/// Inserts the project's next revision number; the project row lock serialises concurrent uploads.
pub fn insert_next(conn: &mut PgConnection, new: &NewRevision<'_>) -> Result<Revision, DbError> {
    conn.transaction(|conn| {
        use super::schema::projects;
        projects::table.find(new.project_id).select(projects::id).for_update().first::<i64>(conn)?;
        let last: Option<i32> =
            revisions::table.filter(revisions::project_id.eq(new.project_id)).select(diesel::dsl::max(revisions::number)).first(conn)?;
        Ok(diesel::insert_into(revisions::table)
            .values((
                revisions::project_id.eq(new.project_id),
                revisions::number.eq(last.unwrap_or(0) + 1),
                revisions::artifact_id.eq(new.artifact_id),
                revisions::template.eq(new.template),
                revisions::source.eq(new.source),
                revisions::created_by.eq(new.created_by),
                revisions::commit_sha.eq(new.commit_sha),
                revisions::commit_message.eq(new.commit_message),
            ))
            .returning(Revision::as_returning())
            .get_result(conn)?)
    })
}

pub fn find(conn: &mut PgConnection, revision_id: i64) -> Result<Option<Revision>, DbError> {
    Ok(revisions::table.find(revision_id).select(Revision::as_select()).first(conn).optional()?)
}

pub fn find_number(conn: &mut PgConnection, project_id: i64, number: i32) -> Result<Option<Revision>, DbError> {
    Ok(revisions::table
        .filter(revisions::project_id.eq(project_id))
        .filter(revisions::number.eq(number))
        .select(Revision::as_select())
        .first(conn)
        .optional()?)
}

pub fn list(conn: &mut PgConnection, project_id: i64, limit: i64) -> Result<Vec<Revision>, DbError> {
    Ok(revisions::table
        .filter(revisions::project_id.eq(project_id))
        .order(revisions::number.desc())
        .limit(limit)
        .select(Revision::as_select())
        .load(conn)?)
}

/// Claims the oldest queued revision for building.
pub fn claim_queued(conn: &mut PgConnection, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> Result<Option<Revision>, DbError> {
    conn.transaction(|conn| {
        let due: Option<i64> = revisions::table
            .filter(revisions::status.eq("queued").or(revisions::status.eq("building").and(revisions::locked_until.lt(now))))
            .order(revisions::id.asc())
            .select(revisions::id)
            .for_update()
            .skip_locked()
            .first(conn)
            .optional()?;
        let Some(revision_id) = due else { return Ok(None) };
        Ok(Some(
            diesel::update(revisions::table.find(revision_id))
                .set((revisions::status.eq("building"), revisions::build_started_at.eq(now), revisions::locked_until.eq(lease_until)))
                .returning(Revision::as_returning())
                .get_result(conn)?,
        ))
    })
}

pub fn extend_lease(conn: &mut PgConnection, revision_id: i64, lease_until: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(revisions::table.find(revision_id)).set(revisions::locked_until.eq(lease_until)).execute(conn)?;
    Ok(())
}

pub fn finish_build(
    conn: &mut PgConnection,
    revision_id: i64,
    status: &str,
    plan: Option<serde_json::Value>,
    error: Option<&str>,
) -> Result<Revision, DbError> {
    Ok(diesel::update(revisions::table.find(revision_id))
        .set((
            revisions::status.eq(status),
            revisions::plan.eq(plan),
            revisions::error.eq(error),
            revisions::build_finished_at.eq(Utc::now()),
            revisions::locked_until.eq(None::<DateTime<Utc>>),
        ))
        .returning(Revision::as_returning())
        .get_result(conn)?)
}

pub fn set_status(conn: &mut PgConnection, revision_id: i64, status: &str, error: Option<&str>) -> Result<(), DbError> {
    diesel::update(revisions::table.find(revision_id)).set((revisions::status.eq(status), revisions::error.eq(error))).execute(conn)?;
    Ok(())
}

/// Stores the plan made at upload time, which the build follows.
pub fn finish_plan(conn: &mut PgConnection, revision_id: i64, plan: serde_json::Value) -> Result<Revision, DbError> {
    Ok(diesel::update(revisions::table.find(revision_id))
        .set(revisions::plan.eq(plan))
        .returning(Revision::as_returning())
        .get_result(conn)?)
}

/// Makes a revision the project's live one; the previous live revision becomes `retired`.
pub fn make_live(conn: &mut PgConnection, project_id: i64, revision_id: i64) -> Result<(), DbError> {
    conn.transaction(|conn| {
        diesel::update(
            revisions::table
                .filter(revisions::project_id.eq(project_id))
                .filter(revisions::status.eq("live"))
                .filter(revisions::id.ne(revision_id)),
        )
        .set(revisions::status.eq("retired"))
        .execute(conn)?;
        diesel::update(revisions::table.find(revision_id))
            .set((revisions::status.eq("live"), revisions::error.eq(None::<String>)))
            .execute(conn)?;
        super::projects::set_live_revision(conn, project_id, Some(revision_id))
    })
}

/// Every project with its live revision.
pub fn live_revisions(conn: &mut PgConnection) -> Result<Vec<(super::models::Project, Revision)>, DbError> {
    use super::models::Project;
    use super::schema::projects;
    Ok(projects::table
        .inner_join(revisions::table.on(projects::live_revision_id.eq(revisions::id.nullable())))
        .select((Project::as_select(), Revision::as_select()))
        .load(conn)?)
}
