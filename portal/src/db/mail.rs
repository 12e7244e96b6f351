//! Queries on `outbound_mail`: the durable queue behind the mail worker.
//!
//! A message is claimed by setting a lease (`locked_until`) with `FOR UPDATE SKIP LOCKED`, so
//! several workers never send the same message at once, and a worker that crashes mid-send only
//! delays the message until the lease runs out (delivery is at least once, never lost).

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::models::OutboundMail;
use super::schema::outbound_mail;
use super::DbError;

pub fn enqueue(conn: &mut PgConnection, to_address: &str, subject: &str, sealed_body: &[u8]) -> Result<i64, DbError> {
    Ok(diesel::insert_into(outbound_mail::table)
        .values((outbound_mail::to_address.eq(to_address), outbound_mail::subject.eq(subject), outbound_mail::sealed_body.eq(sealed_body)))
        .returning(outbound_mail::id)
        .get_result(conn)?)
}

/// Claims the oldest due message for `lease`, counting the attempt.
pub fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>, lease_until: DateTime<Utc>) -> Result<Option<OutboundMail>, DbError> {
    conn.transaction(|conn| {
        let due: Option<i64> = outbound_mail::table
            .filter(outbound_mail::sent_at.is_null())
            .filter(outbound_mail::next_attempt_at.le(now))
            .filter(outbound_mail::locked_until.is_null().or(outbound_mail::locked_until.lt(now)))
            .order(outbound_mail::id.asc())
            .select(outbound_mail::id)
            .for_update()
            .skip_locked()
            .first(conn)
            .optional()?;
        let Some(mail_id) = due else { return Ok(None) };
        let claimed = diesel::update(outbound_mail::table.find(mail_id))
            .set((outbound_mail::locked_until.eq(lease_until), outbound_mail::attempts.eq(outbound_mail::attempts + 1)))
            .returning(OutboundMail::as_returning())
            .get_result(conn)?;
        Ok(Some(claimed))
    })
}

/// Marks a message delivered and wipes its body, which may hold a one-time link.
pub fn mark_sent(conn: &mut PgConnection, mail_id: i64) -> Result<(), DbError> {
    diesel::update(outbound_mail::table.find(mail_id))
        .set((
            outbound_mail::sent_at.eq(Utc::now()),
            outbound_mail::sealed_body.eq(None::<Vec<u8>>),
            outbound_mail::locked_until.eq(None::<DateTime<Utc>>),
            outbound_mail::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(conn: &mut PgConnection, mail_id: i64, error: &str, next_attempt_at: DateTime<Utc>) -> Result<(), DbError> {
    diesel::update(outbound_mail::table.find(mail_id))
        .set((
            outbound_mail::last_error.eq(error),
            outbound_mail::next_attempt_at.eq(next_attempt_at),
            outbound_mail::locked_until.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

/// When the next queued message falls due, so the worker can sleep exactly until then.
pub fn next_due_at(conn: &mut PgConnection) -> Result<Option<DateTime<Utc>>, DbError> {
    Ok(outbound_mail::table
        .filter(outbound_mail::sent_at.is_null())
        .select(diesel::dsl::min(outbound_mail::next_attempt_at))
        .first(conn)?)
}

pub fn count_pending(conn: &mut PgConnection) -> Result<i64, DbError> {
    Ok(outbound_mail::table.filter(outbound_mail::sent_at.is_null()).count().get_result(conn)?)
}
