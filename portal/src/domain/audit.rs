//! The audit log's vocabulary and pure parts: the stable action names, targets, the scrubbing of
//! details (no secret value is ever written), the admin's search as parsed from a query string,
//! and the CSV export with cells escaped against formula injection.
//!
//! It deliberately does no I/O and reads no clock: `crate::audit` records entries, `db::audit`
//! stores and searches them.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::ValidationError;

/// Every action the platform records, as stored in `audit_log.action`. These names are a stable
/// interface (admins filter and export by them): add new ones, never rename.
pub mod actions {
    pub const SIGNUP: &str = "account.signup";
    pub const VERIFY: &str = "account.verify";
    pub const LOGIN: &str = "account.login";
    pub const LOGIN_FAILED: &str = "account.login_failed";
    pub const LOGOUT: &str = "account.logout";
    pub const LOGOUT_EVERYWHERE: &str = "account.logout_everywhere";
    pub const PASSWORD_RESET_REQUEST: &str = "account.password_reset_request";
    pub const PASSWORD_RESET: &str = "account.password_reset";
    pub const PASSWORD_CHANGE: &str = "account.password_change";
    pub const TOKEN_CREATE: &str = "token.create";
    pub const TOKEN_REVOKE: &str = "token.revoke";
    pub const ROLE_CHANGE: &str = "admin.role_change";
    pub const QUOTA_SET: &str = "admin.quota_set";
    pub const AUDIT_EXPORT: &str = "admin.audit_export";
    /// A verified account made without mail (`slipway admin create-user`).
    pub const USER_CREATE: &str = "admin.user_create";
    pub const PROJECT_CREATE: &str = "project.create";
    pub const PROJECT_DELETE: &str = "project.delete";
    pub const PROJECT_DEPLOY: &str = "project.deploy";
    pub const PROJECT_ROLLBACK: &str = "project.rollback";
    pub const PROJECT_VISIBILITY: &str = "project.visibility";
    pub const PROJECT_MOVE: &str = "project.move_to_group";
    pub const PROJECT_TEMPLATE: &str = "project.template";
    pub const PROJECT_SLEEP: &str = "project.sleep";
    pub const ENV_SET: &str = "project.env_set";
    pub const ENV_UNSET: &str = "project.env_unset";
    pub const SCALING_CHANGE: &str = "project.scaling";
    pub const GROUP_CREATE: &str = "group.create";
    pub const GROUP_INVITE: &str = "group.invite";
    pub const GROUP_MEMBER_REMOVE: &str = "group.member_remove";
    pub const GROUP_LEAVE: &str = "group.leave";
    pub const GROUP_TRANSFER: &str = "group.transfer";
    /// A grade set or changed (details: course, assignment, submitter, old and new grade).
    pub const GRADE_CHANGE: &str = "grade.change";
    /// An assignment's grades released to its students, or withdrawn.
    pub const GRADE_RELEASE: &str = "grade.release";
    /// An owner shell opened in a running app (who, which app and revision; never keystrokes).
    pub const SHELL_OPEN: &str = "shell.open";
    /// That shell closed (how long it was open and how it ended).
    pub const SHELL_CLOSE: &str = "shell.close";
}

/// What an action was done to: a kind (`user`, `project`, `group`, `token`, ...) and its id or name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
}

impl Target {
    pub fn user(id: i64) -> Self {
        Self { kind: "user", id: id.to_string() }
    }
    pub fn project(name: &str) -> Self {
        Self { kind: "project", id: name.to_owned() }
    }
    pub fn group(name: &str) -> Self {
        Self { kind: "group", id: name.to_owned() }
    }
    pub fn token(id: i64) -> Self {
        Self { kind: "token", id: id.to_string() }
    }
    pub fn other(kind: &'static str, id: impl Into<String>) -> Self {
        Self { kind, id: id.into() }
    }
}

/// Keys that never reach the log, at any depth of the details: whatever a caller puts there, a
/// value, password or token is dropped before the row is written.
pub const SCRUBBED_KEYS: &[&str] = &["value", "password", "current_password", "new_password", "token", "secret_value", "body"];

/// The details without any `SCRUBBED_KEYS` entry.
pub fn scrub(details: serde_json::Value) -> serde_json::Value {
    match details {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(key, _)| !SCRUBBED_KEYS.contains(&key.to_ascii_lowercase().as_str()))
                .map(|(key, value)| (key, scrub(value)))
                .collect(),
        ),
        serde_json::Value::Array(items) => serde_json::Value::Array(items.into_iter().map(scrub).collect()),
        other => other,
    }
}

/// Cuts `text` to at most `max_chars` characters (user agents can be long).
pub fn truncate(text: &str, max_chars: usize) -> String {
    text.chars().take(max_chars).collect()
}

/// What an admin searches by; every field is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// A part of the actor's e-mail address (case-insensitive), or their id when it is a number.
    pub actor: Option<String>,
    /// An action, or the start of one ending in a dot (`project.` finds every project action).
    pub action: Option<String>,
    /// A part of the target's kind or id (case-insensitive).
    pub target: Option<String>,
    /// Entries at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this time.
    pub to: Option<DateTime<Utc>>,
}

/// The query string of the audit page and API, as received.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct SearchQuery {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub page: Option<String>,
}

/// Entries per page.
pub const PAGE_SIZE: i64 = 50;
/// The most rows one CSV export holds; narrow the search for more.
pub const MAX_EXPORT_ROWS: i64 = 100_000;

fn text_field(raw: &Option<String>, field: &'static str) -> Result<Option<String>, ValidationError> {
    let Some(text) = raw.as_deref().map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    if text.chars().count() > 200 || text.chars().any(char::is_control) {
        return Err(ValidationError::new(
            "invalid_search",
            field,
            format!("{field} = `{}` is not a search term (at most 200 characters)", truncate(text, 40)),
        ));
    }
    Ok(Some(text.to_owned()))
}

/// A time as `2026-12-05`, `2026-12-05T14:30` (a browser's `datetime-local`), or RFC 3339; all
/// without an offset are UTC. A bare date as `to` means the end of that day.
fn time_field(raw: &Option<String>, field: &'static str, end_of_day: bool) -> Result<Option<DateTime<Utc>>, ValidationError> {
    let Some(text) = raw.as_deref().map(str::trim).filter(|t| !t.is_empty()) else { return Ok(None) };
    let invalid = || {
        ValidationError::new(
            "invalid_time",
            field,
            format!("{field} = `{}` is not a time (use 2026-12-05, 2026-12-05T14:30 or RFC 3339)", truncate(text, 40)),
        )
    };
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let date = if end_of_day { date.succ_opt().ok_or_else(invalid)? } else { date };
        return Ok(Some(Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(local) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(Some(Utc.from_utc_datetime(&local)));
        }
    }
    DateTime::parse_from_rfc3339(text).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| invalid())
}

/// The search and the 1-based page a query asks for.
pub fn parse_search(query: &SearchQuery) -> Result<(Search, i64), ValidationError> {
    let action = text_field(&query.action, "action")?;
    if let Some(action) = &action {
        if !action.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.') {
            return Err(ValidationError::new(
                "invalid_search",
                "action",
                format!("action = `{action}` is not an action name (like project.deploy)"),
            ));
        }
    }
    let search = Search {
        actor: text_field(&query.actor, "actor")?,
        action,
        target: text_field(&query.target, "target")?,
        from: time_field(&query.from, "from", false)?,
        to: time_field(&query.to, "to", true)?,
    };
    if let (Some(from), Some(to)) = (search.from, search.to) {
        if from >= to {
            return Err(ValidationError::new("invalid_time", "to", "the end of the time range is not after its start"));
        }
    }
    let page = match query.page.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
        None => 1,
        Some(text) => match text.parse::<i64>() {
            Ok(page) if (1..=100_000).contains(&page) => page,
            _ => {
                return Err(ValidationError::new("invalid_search", "page", format!("page = `{}` is not a page number", truncate(text, 20))))
            }
        },
    };
    Ok((search, page))
}

/// A cell that a spreadsheet will not run: text starting with `=`, `+`, `-`, `@`, a tab or a
/// carriage return gets a leading `'` (OWASP's advice for CSV injection).
pub fn csv_cell(text: &str) -> Cow<'_, str> {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => Cow::Owned(format!("'{text}")),
        _ => Cow::Borrowed(text),
    }
}

/// The header of the CSV export.
pub const CSV_HEADER: [&str; 10] =
    ["id", "at", "actor_id", "actor_email", "client_ip", "user_agent", "action", "target_kind", "target_id", "details"];

/// Writes rows (already as text, in `CSV_HEADER`'s order) as CSV, every cell escaped by `csv_cell`.
pub fn to_csv<'a>(rows: impl IntoIterator<Item = [Cow<'a, str>; 10]>) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER)?;
    for row in rows {
        writer.write_record(row.iter().map(|cell| csv_cell(cell).into_owned()))?;
    }
    writer.into_inner().map_err(|e| csv::Error::from(e.into_error()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> SearchQuery {
        let get = |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        SearchQuery {
            actor: get("actor"),
            action: get("action"),
            target: get("target"),
            from: get("from"),
            to: get("to"),
            page: get("page"),
        }
    }

    fn check(pairs: &[(&str, &str)], expected: Result<(Search, i64), &str>) {
        let parsed = parse_search(&query(pairs));
        match expected {
            Ok(wanted) => assert_eq!(parsed, Ok(wanted), "{pairs:?}"),
            Err(code) => assert_eq!(parsed.map_err(|e| e.code), Err(code), "{pairs:?}"),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("test time").with_timezone(&Utc)
    }

    #[test]
    fn searches_parse_from_the_query_string() {
        check(&[], Ok((Search::default(), 1)));
        check(&[("actor", "  "), ("page", "")], Ok((Search::default(), 1)));
        check(
            &[("actor", "kim@pusan.ac.kr"), ("action", "project."), ("target", "quiz"), ("page", "3")],
            Ok((
                Search {
                    actor: Some("kim@pusan.ac.kr".into()),
                    action: Some("project.".into()),
                    target: Some("quiz".into()),
                    ..Search::default()
                },
                3,
            )),
        );
        check(
            &[("from", "2026-12-01"), ("to", "2026-12-05")],
            Ok((Search { from: Some(at("2026-12-01T00:00:00Z")), to: Some(at("2026-12-06T00:00:00Z")), ..Search::default() }, 1)),
        );
        check(
            &[("from", "2026-12-01T14:30"), ("to", "2026-12-02T15:00:00+09:00")],
            Ok((Search { from: Some(at("2026-12-01T14:30:00Z")), to: Some(at("2026-12-02T06:00:00Z")), ..Search::default() }, 1)),
        );
        check(&[("from", "2026-12-01T14:30"), ("to", "2026-12-01T15:00:00+09:00")], Err("invalid_time"));
        check(&[("from", "yesterday")], Err("invalid_time"));
        check(&[("from", "2026-12-05"), ("to", "2026-12-04")], Err("invalid_time"));
        check(&[("action", "DROP TABLE")], Err("invalid_search"));
        check(&[("page", "0")], Err("invalid_search"));
        check(&[("page", "x")], Err("invalid_search"));
        check(&[("actor", &"a".repeat(201))], Err("invalid_search"));
    }

    #[test]
    fn secret_values_never_survive_scrubbing() {
        let details = serde_json::json!({
            "name": "API_KEY", "secret": true, "value": "hunter2",
            "nested": {"password": "p", "Token": "t", "kept": 1}, "list": [{"value": "v"}],
        });
        assert_eq!(scrub(details), serde_json::json!({"name": "API_KEY", "secret": true, "nested": {"kept": 1}, "list": [{}]}));
    }

    #[test]
    fn cells_that_a_spreadsheet_would_run_are_escaped() {
        for (cell, expected) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+1", "'+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("kim@pusan.ac.kr", "kim@pusan.ac.kr"),
            ("", ""),
        ] {
            assert_eq!(csv_cell(cell), expected, "{cell:?}");
        }
        let csv = to_csv([[
            Cow::Borrowed("1"),
            "2026-12-05T00:00:00Z".into(),
            "".into(),
            "=cmd|' /C calc'!A0".into(),
            "127.0.0.1".into(),
            "a \"quoted\", agent".into(),
            "account.login_failed".into(),
            "".into(),
            "".into(),
            "{}".into(),
        ]])
        .expect("csv");
        let text = String::from_utf8(csv).expect("utf-8");
        assert_eq!(
            text,
            "id,at,actor_id,actor_email,client_ip,user_agent,action,target_kind,target_id,details\n\
             1,2026-12-05T00:00:00Z,,'=cmd|' /C calc'!A0,127.0.0.1,\"a \"\"quoted\"\", agent\",account.login_failed,,,{}\n"
        );
    }
}
