//! Queries on `api_tokens`: personal tokens for the API and the CLI.

use chrono::Utc;
use diesel::prelude::*;

use super::models::{ApiToken, User};
use super::schema::{api_tokens, users};
use super::DbError;

pub fn insert(conn: &mut PgConnection, user_id: i64, name: &str, token_hash: &str, token_prefix: &str) -> Result<ApiToken, DbError> {
    Ok(diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(token_hash),
            api_tokens::token_prefix.eq(token_prefix),
        ))
        .returning(ApiToken::as_returning())
        .get_result(conn)?)
}

pub fn list_active(conn: &mut PgConnection, user_id: i64) -> Result<Vec<ApiToken>, DbError> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .filter(api_tokens::revoked_at.is_null())
        .order(api_tokens::id.desc())
        .select(ApiToken::as_select())
        .load(conn)?)
}

/// Revokes one of the user's own tokens; false when there is no such active token of theirs.
pub fn revoke(conn: &mut PgConnection, user_id: i64, token_id: i64) -> Result<bool, DbError> {
    let n_rows =
        diesel::update(api_tokens::table.find(token_id).filter(api_tokens::user_id.eq(user_id)).filter(api_tokens::revoked_at.is_null()))
            .set(api_tokens::revoked_at.eq(Utc::now()))
            .execute(conn)?;
    Ok(n_rows == 1)
}

/// The user behind an active token, recording the use.
pub fn authenticate(conn: &mut PgConnection, token_hash: &str) -> Result<Option<User>, DbError> {
    let found: Option<(i64, User)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::revoked_at.is_null())
        .select((api_tokens::id, User::as_select()))
        .first(conn)
        .optional()?;
    let Some((token_id, user)) = found else { return Ok(None) };
    diesel::update(api_tokens::table.find(token_id)).set(api_tokens::last_used_at.eq(Utc::now())).execute(conn)?;
    Ok(Some(user))
}
