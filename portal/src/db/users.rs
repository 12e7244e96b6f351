//! Queries on `users`.

use chrono::Utc;
use diesel::prelude::*;

use super::models::{NewUser, User};
use super::schema::users;
use super::DbError;

pub fn insert(conn: &mut PgConnection, new_user: &NewUser<'_>) -> Result<User, DbError> {
    Ok(diesel::insert_into(users::table).values(new_user).returning(User::as_returning()).get_result(conn)?)
}

pub fn find(conn: &mut PgConnection, user_id: i64) -> Result<Option<User>, DbError> {
    Ok(users::table.find(user_id).select(User::as_select()).first(conn).optional()?)
}

pub fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<User>, DbError> {
    Ok(users::table.filter(users::email.eq(email)).select(User::as_select()).first(conn).optional()?)
}

pub fn list(conn: &mut PgConnection, limit: i64) -> Result<Vec<User>, DbError> {
    Ok(users::table.order(users::id.asc()).limit(limit).select(User::as_select()).load(conn)?)
}

pub fn mark_verified(conn: &mut PgConnection, user_id: i64) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id).filter(users::email_verified_at.is_null()))
        .set((users::email_verified_at.eq(Utc::now()), users::updated_at.eq(Utc::now())))
        .execute(conn)?;
    Ok(())
}

pub fn update_profile(
    conn: &mut PgConnection,
    user_id: i64,
    display_name: &str,
    student_number: Option<&str>,
    language: &str,
) -> Result<User, DbError> {
    Ok(diesel::update(users::table.find(user_id))
        .set((
            users::display_name.eq(display_name),
            users::student_number.eq(student_number),
            users::language.eq(language),
            users::updated_at.eq(Utc::now()),
        ))
        .returning(User::as_returning())
        .get_result(conn)?)
}

pub fn set_language(conn: &mut PgConnection, user_id: i64, language: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id)).set((users::language.eq(language), users::updated_at.eq(Utc::now()))).execute(conn)?;
    Ok(())
}

pub fn set_password_hash(conn: &mut PgConnection, user_id: i64, password_hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id))
        .set((users::password_hash.eq(password_hash), users::updated_at.eq(Utc::now())))
        .execute(conn)?;
    Ok(())
}

pub fn set_role(conn: &mut PgConnection, user_id: i64, role: &str) -> Result<Option<User>, DbError> {
    Ok(diesel::update(users::table.find(user_id))
        .set((users::role.eq(role), users::updated_at.eq(Utc::now())))
        .returning(User::as_returning())
        .get_result(conn)
        .optional()?)
}

pub fn count_admins(conn: &mut PgConnection) -> Result<i64, DbError> {
    Ok(users::table.filter(users::role.eq("admin")).count().get_result(conn)?)
}

/// Every verified admin, for alert mail.
pub fn admins(conn: &mut PgConnection) -> Result<Vec<User>, DbError> {
    Ok(users::table
        .filter(users::role.eq("admin"))
        .filter(users::email_verified_at.is_not_null())
        .order(users::id.asc())
        .select(User::as_select())
        .load(conn)?)
}
