//! Queries on `audit_log`: insert and search. There is deliberately no update or delete here (and
//! the database refuses both).

use diesel::prelude::*;

use super::models::{AuditEntry, NewAuditEntry};
use super::schema::audit_log;
use super::DbError;
use crate::domain::audit::Search;

pub fn insert(conn: &mut PgConnection, entry: &NewAuditEntry) -> Result<i64, DbError> {
    Ok(diesel::insert_into(audit_log::table).values(entry).returning(audit_log::id).get_result(conn)?)
}

fn like_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

fn filtered(search: &Search) -> audit_log::BoxedQuery<'static, diesel::pg::Pg> {
    let mut query = audit_log::table.into_boxed();
    if let Some(actor) = &search.actor {
        match actor.parse::<i64>() {
            Ok(id) => query = query.filter(audit_log::actor_id.eq(id)),
            Err(_) => query = query.filter(audit_log::actor_email.ilike(like_pattern(actor))),
        }
    }
    if let Some(action) = &search.action {
        if let Some(prefix) = action.strip_suffix('.') {
            query = query.filter(audit_log::action.like(format!("{}.%", prefix.replace('_', "\\_"))));
        } else {
            query = query.filter(audit_log::action.eq(action.clone()));
        }
    }
    if let Some(target) = &search.target {
        let pattern = like_pattern(target);
        query = query.filter(audit_log::target_id.ilike(pattern.clone()).or(audit_log::target_kind.ilike(pattern)));
    }
    if let Some(from) = search.from {
        query = query.filter(audit_log::at.ge(from));
    }
    if let Some(to) = search.to {
        query = query.filter(audit_log::at.lt(to));
    }
    query
}

/// One page of matching entries, newest first, and the number of matches.
pub fn search(conn: &mut PgConnection, search: &Search, offset: i64, limit: i64) -> Result<(Vec<AuditEntry>, i64), DbError> {
    let total = filtered(search).count().get_result(conn)?;
    let entries = filtered(search)
        .order((audit_log::at.desc(), audit_log::id.desc()))
        .offset(offset)
        .limit(limit)
        .select(AuditEntry::as_select())
        .load(conn)?;
    Ok((entries, total))
}
