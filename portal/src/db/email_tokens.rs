//! Queries on `email_tokens`: one-time links for verification and password reset.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::EmailToken;
use super::schema::email_tokens;
use super::DbError;

pub fn insert(conn: &mut PgConnection, user_id: i64, purpose: &str, token_hash: &str, expires_at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::insert_into(email_tokens::table)
        .values((
            email_tokens::user_id.eq(user_id),
            email_tokens::purpose.eq(purpose),
            email_tokens::token_hash.eq(token_hash),
            email_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Finds a token by hash and purpose and locks the row, so two clicks cannot both use it.
pub fn find_for_update(conn: &mut PgConnection, purpose: &str, token_hash: &str) -> Result<Option<EmailToken>, DbError> {
    Ok(email_tokens::table
        .filter(email_tokens::token_hash.eq(token_hash))
        .filter(email_tokens::purpose.eq(purpose))
        .select(EmailToken::as_select())
        .for_update()
        .first(conn)
        .optional()?)
}

pub fn mark_used(conn: &mut PgConnection, token_id: i64) -> Result<(), DbError> {
    diesel::update(email_tokens::table.find(token_id)).set(email_tokens::used_at.eq(Utc::now())).execute(conn)?;
    Ok(())
}

/// Retires every unused token of one purpose for a user, e.g. all reset links once one was used.
pub fn retire_all(conn: &mut PgConnection, user_id: i64, purpose: &str) -> Result<(), DbError> {
    diesel::update(
        email_tokens::table
            .filter(email_tokens::user_id.eq(user_id))
            .filter(email_tokens::purpose.eq(purpose))
            .filter(email_tokens::used_at.is_null()),
    )
    .set(email_tokens::used_at.eq(Utc::now()))
    .execute(conn)?;
    Ok(())
}
