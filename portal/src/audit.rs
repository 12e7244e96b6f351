//! The audit log's adapter: `record` writes one entry; `context` (middleware on every request)
//! remembers where the request came from and, once an extractor has found them, who sent it.
//!
//! Who, when, from where: the actor is the logged-in user or the token's owner (`Viewer` and
//! `ApiUser` call `set_actor`), or the one an event names (a login names the account it logs
//! into; a failed login the address tried). The client address is the TCP peer: the portal has no
//! trusted-proxy setting yet, so `X-Forwarded-For` is not believed. Outside a request (workers,
//! the command line) there is no origin, and the actor is whoever the event names.
//!
//! Entries are written after the action succeeded. A failure to write one is logged as an error
//! and does not undo or fail the action (the action has happened; the log line says so).
//! Details go through `domain::audit::scrub`, so a value, password or token never reaches the
//! table, whatever a caller passes. Future callers (grades, shell sessions) use the same `record`
//! with their action from `domain::audit::actions`.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use chrono::{DateTime, Utc};

use crate::db::models::{AuditEntry, NewAuditEntry, User};
use crate::db::{self, Db};
use crate::domain::audit::{actions, scrub, to_csv, truncate, Search, Target, MAX_EXPORT_ROWS, PAGE_SIZE};
use crate::domain::Role;
use crate::error::AppError;

/// Who did something: an account (id and address at the time), or only an address (a failed login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: Option<i64>,
    pub email: String,
}

impl Actor {
    pub fn user(user: &User) -> Self {
        Self { id: Some(user.id), email: user.email.clone() }
    }

    /// An address someone typed, with no account behind it (or none we admit to).
    pub fn address(email: &str) -> Self {
        Self { id: None, email: truncate(&email.trim().to_lowercase(), 254) }
    }
}

/// Where the current request came from, and who it turned out to be.
struct RequestContext {
    client_ip: String,
    user_agent: Option<String>,
    actor: Mutex<Option<Actor>>,
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Middleware (on the whole app): runs the request inside its `RequestContext`.
pub async fn context(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let client_ip = req.peer_addr().map(|address| address.ip().to_string()).unwrap_or_else(|| "unknown".to_owned());
    let user_agent = req.headers().get("User-Agent").and_then(|v| v.to_str().ok()).map(|agent| truncate(agent, 300));
    let context = Arc::new(RequestContext { client_ip, user_agent, actor: Mutex::new(None) });
    REQUEST.scope(context, async move { next.call(req).await }).await
}

/// Remembers that the current request is `user`'s (called by the authenticating extractors).
pub fn set_actor(user: &User) {
    let _ = REQUEST.try_with(|context| {
        *context.actor.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Actor::user(user));
    });
}

/// One thing to record.
#[derive(Debug, Clone)]
pub struct Event {
    pub action: &'static str,
    pub target: Option<Target>,
    pub details: serde_json::Value,
    /// Who did it, when the request's own actor is not the one (a login, a failed login).
    pub actor: Option<Actor>,
}

impl Event {
    pub fn new(action: &'static str) -> Self {
        Self { action, target: None, details: serde_json::json!({}), actor: None }
    }

    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }

    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    pub fn by(mut self, actor: Actor) -> Self {
        self.actor = Some(actor);
        self
    }
}

/// The row for `event`, given the request's origin and actor (if any) and the time. Pure.
pub fn entry(event: Event, origin: Option<(String, Option<String>, Option<Actor>)>, now: DateTime<Utc>) -> NewAuditEntry {
    let (client_ip, user_agent, request_actor) = match origin {
        Some((ip, agent, actor)) => (Some(ip), agent, actor),
        None => (None, None, None),
    };
    let actor = event.actor.or(request_actor);
    NewAuditEntry {
        at: now,
        actor_id: actor.as_ref().and_then(|a| a.id),
        actor_email: actor.map(|a| a.email),
        client_ip,
        user_agent,
        action: event.action.to_owned(),
        target_kind: event.target.as_ref().map(|t| t.kind.to_owned()),
        target_id: event.target.map(|t| truncate(&t.id, 300)),
        details: scrub(event.details),
    }
}

fn current_origin() -> Option<(String, Option<String>, Option<Actor>)> {
    REQUEST
        .try_with(|context| {
            let actor = context.actor.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            (context.client_ip.clone(), context.user_agent.clone(), actor)
        })
        .ok()
}

/// Writes `event` to the audit log. Never fails the caller: an entry that cannot be written is
/// logged as an error with its action and target (never its details).
pub async fn record(db: &Db, event: Event) {
    let row = entry(event, current_origin(), Utc::now());
    let (action, target) = (row.action.clone(), row.target_id.clone());
    if let Err(error) = db.run(move |conn| db::audit::insert(conn, &row)).await {
        tracing::error!(action, target, "the audit log entry could not be written: {error}");
    }
}

/// Admins only: one page of entries matching `search`, newest first, and how many match.
pub async fn search(db: &Db, actor: &User, search: Search, page: i64) -> Result<(Vec<AuditEntry>, i64), AppError> {
    require_admin(actor)?;
    let offset = (page - 1) * PAGE_SIZE;
    Ok(db.run(move |conn| db::audit::search(conn, &search, offset, PAGE_SIZE)).await?)
}

/// Admins only: every entry matching `search` (up to `MAX_EXPORT_ROWS`, newest first) as CSV.
/// The export itself is recorded, with the search that made it.
pub async fn export_csv(db: &Db, actor: &User, search: Search) -> Result<Vec<u8>, AppError> {
    require_admin(actor)?;
    let filter = search.clone();
    let (entries, total) = db.run(move |conn| db::audit::search(conn, &filter, 0, MAX_EXPORT_ROWS)).await?;
    let rows = entries.iter().map(|entry| {
        [
            Cow::Owned(entry.id.to_string()),
            Cow::Owned(entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            Cow::Owned(entry.actor_id.map(|id| id.to_string()).unwrap_or_default()),
            Cow::Borrowed(entry.actor_email.as_deref().unwrap_or("")),
            Cow::Borrowed(entry.client_ip.as_deref().unwrap_or("")),
            Cow::Borrowed(entry.user_agent.as_deref().unwrap_or("")),
            Cow::Borrowed(entry.action.as_str()),
            Cow::Borrowed(entry.target_kind.as_deref().unwrap_or("")),
            Cow::Borrowed(entry.target_id.as_deref().unwrap_or("")),
            Cow::Owned(entry.details.to_string()),
        ]
    });
    let csv = to_csv(rows).map_err(|e| anyhow::anyhow!("writing the audit CSV: {e}"))?;
    let details = serde_json::json!({
        "rows": entries.len(), "matches": total, "actor": search.actor, "action": search.action, "target": search.target,
        "from": search.from, "to": search.to,
    });
    record(db, Event::new(actions::AUDIT_EXPORT).details(details)).await;
    Ok(csv)
}

fn require_admin(user: &User) -> Result<(), AppError> {
    if user.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-05T10:00:00Z").expect("time").with_timezone(&Utc)
    }

    #[test]
    fn the_event_actor_wins_over_the_request_actor() {
        let request_actor = Actor { id: Some(1), email: "admin@pusan.ac.kr".into() };
        let origin = Some(("10.0.0.1".to_owned(), Some("curl/8".to_owned()), Some(request_actor.clone())));
        let row = entry(Event::new("account.login_failed").by(Actor::address(" Kim@Pusan.ac.kr ")), origin.clone(), at());
        assert_eq!((row.actor_id, row.actor_email.as_deref()), (None, Some("kim@pusan.ac.kr")));
        let row = entry(Event::new("project.delete").target(Target::project("quiz")), origin, at());
        assert_eq!(
            (row.actor_id, row.actor_email.as_deref(), row.client_ip.as_deref()),
            (Some(1), Some("admin@pusan.ac.kr"), Some("10.0.0.1"))
        );
        assert_eq!((row.target_kind.as_deref(), row.target_id.as_deref()), (Some("project"), Some("quiz")));
    }

    #[test]
    fn outside_a_request_there_is_no_origin_and_details_are_scrubbed() {
        let row = entry(Event::new("project.env_set").details(serde_json::json!({"name": "K", "value": "v"})), None, at());
        assert_eq!((row.client_ip, row.user_agent, row.actor_id), (None, None, None));
        assert_eq!(row.details, serde_json::json!({"name": "K"}));
    }
}
