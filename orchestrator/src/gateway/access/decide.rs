//! Who may see an app: the published access records, the in-memory table built from them, and the
//! per-request decision.
//!
//! The portal publishes one `AccessRecord` per app (its visibility and the user ids that count as
//! members, or as owners for a private app) and the ids of revoked sessions; the gateway keeps
//! them in an `AccessTable` and asks `decide` on every request. The same function answers the
//! portal's `/access` page and Traefik's forwardAuth, so the three can never disagree.
//!
//! ```text
//!               public   campus   members          private
//! anonymous     Allow    Login    Login            Login
//! logged in     Allow    Allow    Allow if listed  Allow if listed
//!                                 else Deny        else Deny
//! ```
//! A revoked session counts as anonymous. An app with no record is `Unknown` (never woken).
//! A table older than the freshness bound refuses every non-public app (`Unavailable`), so a
//! logout or a removal is never ignored for long because Redis went away.
//!
//! Pure: no I/O, no clock (freshness is passed in). It deliberately does not parse cookies or
//! verify signatures: `token` does, and `Gate` glues them.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

/// How widely a project's app may be seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Anyone on the internet.
    Public,
    /// Anyone logged in to the portal.
    Campus,
    /// The owner and the owning group's members (and, with courses, the course's staff).
    Members,
    /// The owner only (for a group's project: the group's owners).
    Private,
}

impl Visibility {
    pub const ALL: [Visibility; 4] = [Visibility::Public, Visibility::Campus, Visibility::Members, Visibility::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Campus => "campus",
            Visibility::Members => "members",
            Visibility::Private => "private",
        }
    }

    pub fn parse(text: &str) -> Option<Visibility> {
        Visibility::ALL.into_iter().find(|v| v.as_str() == text.trim())
    }
}

/// One app's published access record (the JSON value of `PREFIX access:apps` field `APP`).
/// **Boundary:** the portal writes it, the gateway reads it; `testdata/access-record.json` is the
/// recorded example both sides test against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub visibility: Visibility,
    /// The users a `members` or `private` app lets in (for `public` and `campus`, may be empty).
    #[serde(default)]
    pub users: Vec<i64>,
}

/// The gateway's view of every app's access record and every revoked session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessTable {
    apps: HashMap<String, AccessRecord>,
    revoked: HashSet<String>,
}

impl AccessTable {
    /// `users` lists are sorted here so that lookups are binary searches.
    pub fn new(apps: impl IntoIterator<Item = (String, AccessRecord)>, revoked: impl IntoIterator<Item = String>) -> Self {
        let apps = apps
            .into_iter()
            .map(|(app, mut record)| {
                record.users.sort_unstable();
                record.users.dedup();
                (app, record)
            })
            .collect();
        Self { apps, revoked: revoked.into_iter().collect() }
    }

    pub fn record(&self, app: &str) -> Option<&AccessRecord> {
        self.apps.get(app)
    }

    pub fn is_revoked(&self, sid: &str) -> bool {
        self.revoked.contains(sid)
    }

    pub fn n_apps(&self) -> usize {
        self.apps.len()
    }
}

/// Who is asking, as far as a verified credential says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visitor<'a> {
    Anonymous,
    /// A user with a valid, unexpired credential for this app, from session `sid`.
    User {
        user_id: i64,
        sid: &'a str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Forward the request.
    Allow,
    /// Send the visitor to the portal to log in (or answer 401 where a redirect makes no sense).
    Login,
    /// Logged in, but not allowed: 403, and the app is not woken.
    Deny,
    /// No app of that name has a record.
    Unknown,
    /// The table is too old to trust for a non-public app.
    Unavailable,
}

/// The decision for one request; see the table in the module doc. Covered by
/// `every_visibility_and_visitor_kind_gets_the_documented_decision`.
pub fn decide(table: &AccessTable, table_is_fresh: bool, app: &str, visitor: Visitor<'_>) -> Decision {
    let Some(record) = table.record(app) else { return Decision::Unknown };
    if record.visibility == Visibility::Public {
        return Decision::Allow;
    }
    if !table_is_fresh {
        return Decision::Unavailable;
    }
    let user_id = match visitor {
        Visitor::User { user_id, sid } if !table.is_revoked(sid) => user_id,
        _ => return Decision::Login,
    };
    match record.visibility {
        Visibility::Public | Visibility::Campus => Decision::Allow,
        Visibility::Members | Visibility::Private if record.users.binary_search(&user_id).is_ok() => Decision::Allow,
        Visibility::Members | Visibility::Private => Decision::Deny,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: i64 = 1;
    const MEMBER: i64 = 2;
    const OTHER: i64 = 3;

    fn table() -> AccessTable {
        let record = |visibility, users: &[i64]| AccessRecord { visibility, users: users.to_vec() };
        AccessTable::new(
            [
                ("pub".to_owned(), record(Visibility::Public, &[])),
                ("camp".to_owned(), record(Visibility::Campus, &[])),
                ("memb".to_owned(), record(Visibility::Members, &[MEMBER, OWNER])),
                ("priv".to_owned(), record(Visibility::Private, &[OWNER])),
            ],
            ["revoked-sid".to_owned()],
        )
    }

    fn check(app: &str, visitor: Visitor<'_>, fresh: bool, expected: Decision) {
        assert_eq!(decide(&table(), fresh, app, visitor), expected, "{app} for {visitor:?} (fresh: {fresh})");
    }

    fn user(user_id: i64) -> Visitor<'static> {
        Visitor::User { user_id, sid: "live-sid" }
    }

    #[test]
    fn every_visibility_and_visitor_kind_gets_the_documented_decision() {
        use Decision::*;
        let rows: &[(&str, [Decision; 4])] = &[
            //        anonymous, other student, member, owner
            ("pub", [Allow, Allow, Allow, Allow]),
            ("camp", [Login, Allow, Allow, Allow]),
            ("memb", [Login, Deny, Allow, Allow]),
            ("priv", [Login, Deny, Deny, Allow]),
        ];
        for (app, expected) in rows {
            let visitors = [Visitor::Anonymous, user(OTHER), user(MEMBER), user(OWNER)];
            for (visitor, decision) in visitors.into_iter().zip(expected) {
                check(app, visitor, true, *decision);
            }
        }
    }

    #[test]
    fn a_revoked_session_counts_as_anonymous() {
        let revoked = Visitor::User { user_id: OWNER, sid: "revoked-sid" };
        check("priv", revoked, true, Decision::Login);
        check("camp", revoked, true, Decision::Login);
        check("pub", revoked, true, Decision::Allow);
    }

    #[test]
    fn unknown_apps_and_stale_tables_let_nothing_through_except_public_apps() {
        check("nope", user(OWNER), true, Decision::Unknown);
        check("pub", Visitor::Anonymous, false, Decision::Allow);
        check("camp", user(OWNER), false, Decision::Unavailable);
        check("priv", user(OWNER), false, Decision::Unavailable);
    }

    #[test]
    fn the_recorded_record_parses_and_unknown_visibilities_are_refused() {
        let recorded = include_str!("testdata/access-record.json");
        let record: AccessRecord = serde_json::from_str(recorded).expect("the recorded example parses");
        assert_eq!(record, AccessRecord { visibility: Visibility::Members, users: vec![7, 12] });
        assert!(serde_json::from_str::<AccessRecord>(r#"{"visibility":"secret","users":[]}"#).is_err());
        assert_eq!(Visibility::parse(" campus "), Some(Visibility::Campus));
        assert_eq!(Visibility::parse("Campus"), None);
    }
}
