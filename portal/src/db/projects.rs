//! Queries on `projects` and `project_env`.

use chrono::Utc;
use diesel::prelude::*;

use super::models::{EnvVar, Project, ScalingSettings};
use super::schema::{project_env, projects};
use super::DbError;

pub fn insert(conn: &mut PgConnection, name: &str, owner_id: i64, template: &str, group_id: Option<i64>) -> Result<Project, DbError> {
    Ok(diesel::insert_into(projects::table)
        .values((
            projects::name.eq(name),
            projects::owner_id.eq(owner_id),
            projects::template.eq(template),
            projects::group_id.eq(group_id),
        ))
        .returning(Project::as_returning())
        .get_result(conn)?)
}

pub fn find(conn: &mut PgConnection, project_id: i64) -> Result<Option<Project>, DbError> {
    Ok(projects::table.find(project_id).select(Project::as_select()).first(conn).optional()?)
}

pub fn find_by_name(conn: &mut PgConnection, name: &str) -> Result<Option<Project>, DbError> {
    Ok(projects::table.filter(projects::name.eq(name)).select(Project::as_select()).first(conn).optional()?)
}

pub fn name_taken(conn: &mut PgConnection, name: &str) -> Result<bool, DbError> {
    Ok(diesel::select(diesel::dsl::exists(projects::table.filter(projects::name.eq(name)))).get_result(conn)?)
}

pub fn list_for_owner(conn: &mut PgConnection, owner_id: i64) -> Result<Vec<Project>, DbError> {
    Ok(projects::table.filter(projects::owner_id.eq(owner_id)).order(projects::name.asc()).select(Project::as_select()).load(conn)?)
}

/// Personal projects of `user_id` and the projects of every group the user is a member of.
pub fn list_for_user(conn: &mut PgConnection, user_id: i64) -> Result<Vec<Project>, DbError> {
    use super::schema::group_members;
    let group_ids = group_members::table.filter(group_members::user_id.eq(user_id)).select(group_members::group_id);
    Ok(projects::table
        .filter(projects::owner_id.eq(user_id).and(projects::group_id.is_null()).or(projects::group_id.eq_any(group_ids.nullable())))
        .order(projects::name.asc())
        .select(Project::as_select())
        .load(conn)?)
}

/// Projects counted against a user's quota (personal ones) or a group's.
pub fn count_owned(conn: &mut PgConnection, user_id: Option<i64>, group_id: Option<i64>) -> Result<i64, DbError> {
    let query = projects::table.into_boxed();
    let query = match (user_id, group_id) {
        (_, Some(group_id)) => query.filter(projects::group_id.eq(group_id)),
        (Some(user_id), None) => query.filter(projects::owner_id.eq(user_id)).filter(projects::group_id.is_null()),
        (None, None) => return Ok(0),
    };
    Ok(query.count().get_result(conn)?)
}

pub fn set_visibility(conn: &mut PgConnection, project_id: i64, visibility: &str) -> Result<Project, DbError> {
    Ok(diesel::update(projects::table.find(project_id))
        .set((projects::visibility.eq(visibility), projects::updated_at.eq(Utc::now())))
        .returning(Project::as_returning())
        .get_result(conn)?)
}

pub fn set_group(conn: &mut PgConnection, project_id: i64, group_id: Option<i64>) -> Result<Project, DbError> {
    Ok(diesel::update(projects::table.find(project_id))
        .set((projects::group_id.eq(group_id), projects::updated_at.eq(Utc::now())))
        .returning(Project::as_returning())
        .get_result(conn)?)
}

pub fn list_all(conn: &mut PgConnection) -> Result<Vec<Project>, DbError> {
    Ok(projects::table.order(projects::name.asc()).select(Project::as_select()).load(conn)?)
}

pub fn set_template(conn: &mut PgConnection, project_id: i64, template: &str) -> Result<Project, DbError> {
    Ok(diesel::update(projects::table.find(project_id))
        .set((projects::template.eq(template), projects::updated_at.eq(Utc::now())))
        .returning(Project::as_returning())
        .get_result(conn)?)
}

pub fn set_scaling(conn: &mut PgConnection, project_id: i64, settings: &ScalingSettings) -> Result<Project, DbError> {
    Ok(diesel::update(projects::table.find(project_id))
        .set((settings, projects::updated_at.eq(Utc::now())))
        .returning(Project::as_returning())
        .get_result(conn)?)
}

pub fn set_live_revision(conn: &mut PgConnection, project_id: i64, revision_id: Option<i64>) -> Result<(), DbError> {
    diesel::update(projects::table.find(project_id))
        .set((projects::live_revision_id.eq(revision_id), projects::updated_at.eq(Utc::now())))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut PgConnection, project_id: i64) -> Result<(), DbError> {
    diesel::delete(projects::table.find(project_id)).execute(conn)?;
    Ok(())
}

pub fn env(conn: &mut PgConnection, project_id: i64) -> Result<Vec<EnvVar>, DbError> {
    Ok(project_env::table
        .filter(project_env::project_id.eq(project_id))
        .order(project_env::name.asc())
        .select(EnvVar::as_select())
        .load(conn)?)
}

/// Sets a variable; a secret keeps no value here (the secret store holds it).
pub fn upsert_env(conn: &mut PgConnection, project_id: i64, name: &str, value: Option<&str>) -> Result<(), DbError> {
    let secret = value.is_none();
    diesel::insert_into(project_env::table)
        .values((
            project_env::project_id.eq(project_id),
            project_env::name.eq(name),
            project_env::value.eq(value),
            project_env::secret.eq(secret),
        ))
        .on_conflict((project_env::project_id, project_env::name))
        .do_update()
        .set((project_env::value.eq(value), project_env::secret.eq(secret), project_env::updated_at.eq(Utc::now())))
        .execute(conn)?;
    Ok(())
}

pub fn delete_env(conn: &mut PgConnection, project_id: i64, name: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(project_env::table.find((project_id, name))).execute(conn)? == 1)
}

pub fn find_by_id(conn: &mut PgConnection, project_id: i64) -> Result<Option<Project>, DbError> {
    Ok(projects::table.find(project_id).select(Project::as_select()).first(conn).optional()?)
}
