//! Queries on `custom_domains` and `acme_accounts`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::CustomDomain;
use super::schema::{acme_accounts, custom_domains, projects};
use super::DbError;

pub fn insert(conn: &mut PgConnection, project_id: i64, domain: &str, proof_token: &str) -> Result<CustomDomain, DbError> {
    Ok(diesel::insert_into(custom_domains::table)
        .values((custom_domains::project_id.eq(project_id), custom_domains::domain.eq(domain), custom_domains::proof_token.eq(proof_token)))
        .returning(CustomDomain::as_returning())
        .get_result(conn)?)
}

pub fn list_for_project(conn: &mut PgConnection, project_id: i64) -> Result<Vec<CustomDomain>, DbError> {
    Ok(custom_domains::table
        .filter(custom_domains::project_id.eq(project_id))
        .order(custom_domains::domain.asc())
        .select(CustomDomain::as_select())
        .load(conn)?)
}

pub fn find(conn: &mut PgConnection, project_id: i64, domain: &str) -> Result<Option<CustomDomain>, DbError> {
    Ok(custom_domains::table
        .filter(custom_domains::project_id.eq(project_id).and(custom_domains::domain.eq(domain)))
        .select(CustomDomain::as_select())
        .first(conn)
        .optional()?)
}

pub fn get(conn: &mut PgConnection, id: i64) -> Result<Option<CustomDomain>, DbError> {
    Ok(custom_domains::table.find(id).select(CustomDomain::as_select()).first(conn).optional()?)
}

/// Every domain with its project's name (the app it routes to), for publishing.
pub fn all_with_app(conn: &mut PgConnection) -> Result<Vec<(CustomDomain, String)>, DbError> {
    Ok(custom_domains::table
        .inner_join(projects::table)
        .select((CustomDomain::as_select(), projects::name))
        .order(custom_domains::id.asc())
        .load(conn)?)
}

/// Domains whose control is proven (verified, active or failed), for the certificate worker.
pub fn proven(conn: &mut PgConnection) -> Result<Vec<CustomDomain>, DbError> {
    Ok(custom_domains::table
        .filter(custom_domains::verified_at.is_not_null())
        .order(custom_domains::id.asc())
        .select(CustomDomain::as_select())
        .load(conn)?)
}

pub fn mark_verified(conn: &mut PgConnection, id: i64, now: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(custom_domains::table.find(id))
        .set((
            custom_domains::status.eq("verified"),
            custom_domains::verified_at.eq(now),
            custom_domains::last_error.eq(None::<String>),
            custom_domains::retry_after.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// Records a failed certificate order: the domain keeps its certificate (if any) and its status
/// unless it had none (then `failed`), and is not tried again before `retry_after`.
pub fn record_failure(conn: &mut PgConnection, id: i64, message: &str, retry_after: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(custom_domains::table.find(id))
        .set((
            custom_domains::last_error.eq(message),
            custom_domains::n_failures.eq(custom_domains::n_failures + 1),
            custom_domains::retry_after.eq(retry_after),
        ))
        .execute(conn)?;
    diesel::update(custom_domains::table.find(id).filter(custom_domains::cert_chain_pem.is_null()))
        .set(custom_domains::status.eq("failed"))
        .execute(conn)?;
    Ok(())
}

/// Records a failed ownership check (the domain stays `pending`).
pub fn record_check_error(conn: &mut PgConnection, id: i64, message: &str) -> Result<(), DbError> {
    diesel::update(custom_domains::table.find(id)).set(custom_domains::last_error.eq(message)).execute(conn)?;
    Ok(())
}

/// Stores a newly issued certificate; the domain turns `active`.
pub fn store_certificate(
    conn: &mut PgConnection,
    id: i64,
    chain_pem: &str,
    key_sealed: &[u8],
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> Result<(), DbError> {
    diesel::update(custom_domains::table.find(id))
        .set((
            custom_domains::status.eq("active"),
            custom_domains::cert_chain_pem.eq(chain_pem),
            custom_domains::cert_key_sealed.eq(key_sealed),
            custom_domains::cert_not_before.eq(not_before),
            custom_domains::cert_not_after.eq(not_after),
            custom_domains::last_error.eq(None::<String>),
            custom_domains::n_failures.eq(0),
            custom_domains::retry_after.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn delete(conn: &mut PgConnection, id: i64) -> Result<bool, DbError> {
    Ok(diesel::delete(custom_domains::table.find(id)).execute(conn)? > 0)
}

pub fn acme_account(conn: &mut PgConnection, directory_url: &str) -> Result<Option<Vec<u8>>, DbError> {
    Ok(acme_accounts::table.find(directory_url).select(acme_accounts::credentials_sealed).first(conn).optional()?)
}

pub fn save_acme_account(conn: &mut PgConnection, directory_url: &str, credentials_sealed: &[u8]) -> Result<(), DbError> {
    diesel::insert_into(acme_accounts::table)
        .values((acme_accounts::directory_url.eq(directory_url), acme_accounts::credentials_sealed.eq(credentials_sealed)))
        .on_conflict(acme_accounts::directory_url)
        .do_update()
        .set(acme_accounts::credentials_sealed.eq(credentials_sealed))
        .execute(conn)?;
    Ok(())
}
