//! The gateway's access check: whether a request may reach its app, decided locally from the
//! table the portal publishes to Redis, before the app is resolved (so a refused visitor never
//! wakes an app at zero).
//!
//! ```text
//! browser ── GET quiz.apps/page ──▶ gateway: no valid slipway_access cookie
//!    ◀── 302 portal/access?app=quiz&next=/page
//! browser ── GET portal/access ──▶ portal: log in if needed, `decide` on the same table data
//!    ◀── 303 quiz.apps/.slipway/auth?token=T        (T: hand-off token, 60 s, this app only)
//! browser ── GET quiz.apps/.slipway/auth?token=T ──▶ gateway: verify T, once per nonce
//!    ◀── 303 /page + Set-Cookie slipway_access=C; host-only, HttpOnly
//! browser ── GET quiz.apps/page (cookie C) ──▶ gateway: verify C (HMAC), `decide`, strip C ──▶ app
//! ```
//!
//! - `token`: signing and verifying hand-off tokens and cookies (pure).
//! - `decide`: visibility, `AccessRecord`, `AccessTable`, `decide` (pure).
//! - `feed`: the Redis adapter that keeps the `Gate`'s table current.
//!
//! `Gate` holds the table and the used hand-off nonces; `Gate::check` is the one call the proxy
//! (and the portal's forwardAuth endpoint) makes per request. It takes the time as an argument and
//! does no I/O. It deliberately does not render pages or build HTTP responses: callers do.

pub mod decide;
pub mod feed;
pub mod http;
pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

pub use decide::{decide, AccessRecord, AccessTable, Decision, Visibility, Visitor};
pub use token::{Claims, Kind, TokenError};

/// The gateway's own cookie, one per app host. Its `slipway_` prefix means the proxy's
/// portal-cookie stripping removes it before any request reaches an app.
pub const ACCESS_COOKIE: &str = "slipway_access";
/// The path on every app host where a hand-off token is exchanged for the cookie.
pub const HANDOFF_PATH: &str = "/.slipway/auth";
/// How long a hand-off token is valid.
pub const HANDOFF_TTL_SECS: u64 = 60;

/// What the access check needs to know; fixed for the gateway's life.
#[derive(Clone)]
pub struct AccessConfig {
    /// The signing key shared with the portal (derived from the installation key).
    pub key: [u8; 32],
    /// The portal's public base URL, without a trailing slash; refused visitors are sent there.
    pub portal_url: String,
    /// How long the gateway's cookie lives (revocation and membership changes still apply at once).
    pub cookie_ttl_secs: u64,
    /// Add `Secure` to the cookie (when apps are served over HTTPS).
    pub secure_cookies: bool,
    /// A table not refreshed from Redis for this long is not trusted for non-public apps.
    pub max_staleness_secs: u64,
}

impl std::fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessConfig")
            .field("key", &"<hidden>")
            .field("portal_url", &self.portal_url)
            .field("cookie_ttl_secs", &self.cookie_ttl_secs)
            .field("secure_cookies", &self.secure_cookies)
            .field("max_staleness_secs", &self.max_staleness_secs)
            .finish()
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Forward it to the app (after stripping platform credentials). `user_id` is who asked.
    Pass { user_id: Option<i64> },
    /// Send a browser to the portal: 302 to `location`.
    Login { location: String },
    /// Not a page navigation (API call, WebSocket, POST): 401, with the portal link in the page.
    LoginRequired { location: String },
    /// Logged in, not allowed: 403.
    Denied,
    /// No such app: 404.
    Unknown,
    /// The access table is stale: 503.
    Unavailable,
    /// A hand-off token was accepted: 303 to `location`, setting `set_cookie`.
    Enter { set_cookie: String, location: String },
    /// A hand-off token was refused (expired, tampered, used, for another app): 400.
    BadHandoff(&'static str),
}

/// The request facts the check looks at.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub app: &'a str,
    /// `/path?query` as received.
    pub path_and_query: &'a str,
    /// The value of the `slipway_access` cookie, if the request carried one.
    pub cookie: Option<&'a str>,
    /// A GET or HEAD that is not an upgrade: a redirect to the portal makes sense.
    pub navigation: bool,
}

pub struct Gate {
    config: AccessConfig,
    table: RwLock<Loaded>,
    /// Hand-off nonces already exchanged, with their expiry; pruned as new ones arrive.
    used_nonces: Mutex<HashMap<String, u64>>,
    /// Wakes the feed early: a portal in the same process has just published a change.
    changed: tokio::sync::Notify,
}

struct Loaded {
    table: Arc<AccessTable>,
    /// Unix seconds of the last successful read from Redis (0: never).
    refreshed_at: u64,
}

impl Gate {
    pub fn new(config: AccessConfig) -> Arc<Self> {
        Arc::new(Self {
            config,
            table: RwLock::new(Loaded { table: Arc::new(AccessTable::default()), refreshed_at: 0 }),
            used_nonces: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
        })
    }

    /// Asks the feed to re-read Redis now rather than at its next tick (the embedded shape, where
    /// the portal publishing the change shares this `Gate`).
    pub fn poke(&self) {
        self.changed.notify_one();
    }

    /// Resolves when `poke` was called (for the feed).
    pub async fn poked(&self) {
        self.changed.notified().await
    }

    pub fn config(&self) -> &AccessConfig {
        &self.config
    }

    /// Replaces the table (the feed read it at `now_unix`).
    pub fn replace(&self, table: AccessTable, now_unix: u64) {
        let mut loaded = self.table.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *loaded = Loaded { table: Arc::new(table), refreshed_at: now_unix };
    }

    /// Records that Redis answered at `now_unix` and nothing changed.
    pub fn touch(&self, now_unix: u64) {
        self.table.write().unwrap_or_else(|poisoned| poisoned.into_inner()).refreshed_at = now_unix;
    }

    /// The current table and whether it is fresh at `now_unix`.
    pub fn table(&self, now_unix: u64) -> (Arc<AccessTable>, bool) {
        let loaded = self.table.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = loaded.refreshed_at > 0 && now_unix.saturating_sub(loaded.refreshed_at) <= self.config.max_staleness_secs;
        (Arc::clone(&loaded.table), fresh)
    }

    /// The one per-request call. Cheap on the common path: one table read, one HMAC.
    pub fn check(&self, request: &AccessRequest<'_>, now_unix: u64) -> Answer {
        let (table, fresh) = self.table(now_unix);
        if let Some(query) = handoff_query(request.path_and_query) {
            return self.exchange(&table, fresh, request.app, query, now_unix);
        }
        let claims = request.cookie.and_then(|cookie| token::verify(&self.config.key, Kind::Cookie, cookie, request.app, now_unix).ok());
        let visitor = match &claims {
            Some(claims) => Visitor::User { user_id: claims.user_id, sid: &claims.sid },
            None => Visitor::Anonymous,
        };
        match decide(&table, fresh, request.app, visitor) {
            Decision::Allow => Answer::Pass { user_id: claims.map(|c| c.user_id) },
            Decision::Deny => Answer::Denied,
            Decision::Unknown => Answer::Unknown,
            Decision::Unavailable => Answer::Unavailable,
            Decision::Login => {
                let location = self.login_url(request.app, request.path_and_query);
                if request.navigation {
                    Answer::Login { location }
                } else {
                    Answer::LoginRequired { location }
                }
            }
        }
    }

    /// Where the portal checks a visitor for `app`: `PORTAL/access?app=APP&next=PATH`.
    pub fn login_url(&self, app: &str, path_and_query: &str) -> String {
        format!("{}/access?app={}&next={}", self.config.portal_url, percent_encode(app), percent_encode(path_and_query))
    }

    fn exchange(&self, table: &AccessTable, fresh: bool, app: &str, query: &str, now_unix: u64) -> Answer {
        let Some(text) = query.split('&').find_map(|pair| pair.strip_prefix("token=")) else {
            return Answer::BadHandoff("the sign-in link has no token");
        };
        let claims = match token::verify(&self.config.key, Kind::Handoff, text, app, now_unix) {
            Ok(claims) => claims,
            Err(TokenError::Expired) => return Answer::BadHandoff("the sign-in link has expired; open the app again"),
            Err(TokenError::WrongApp) => return Answer::BadHandoff("the sign-in link is for another app"),
            Err(TokenError::Malformed | TokenError::BadSignature) => return Answer::BadHandoff("the sign-in link is not valid"),
        };
        if !self.first_use(&claims.nonce, claims.expires_at, now_unix) {
            return Answer::BadHandoff("the sign-in link was already used; open the app again");
        }
        match decide(table, fresh, app, Visitor::User { user_id: claims.user_id, sid: &claims.sid }) {
            Decision::Allow => {}
            Decision::Deny => return Answer::Denied,
            Decision::Unknown => return Answer::Unknown,
            Decision::Unavailable => return Answer::Unavailable,
            Decision::Login => return Answer::Login { location: self.login_url(app, &claims.next) },
        }
        let cookie_claims = Claims {
            user_id: claims.user_id,
            sid: claims.sid.clone(),
            expires_at: now_unix + self.config.cookie_ttl_secs,
            nonce: String::new(),
            app: app.to_owned(),
            next: String::new(),
        };
        let value = token::sign(&self.config.key, Kind::Cookie, &cookie_claims);
        let secure = if self.config.secure_cookies { "; Secure" } else { "" };
        let set_cookie =
            format!("{ACCESS_COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}", self.config.cookie_ttl_secs);
        Answer::Enter { set_cookie, location: safe_path(&claims.next).to_owned() }
    }

    fn first_use(&self, nonce: &str, expires_at: u64, now_unix: u64) -> bool {
        let mut used = self.used_nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        used.retain(|_, expiry| *expiry > now_unix);
        if nonce.is_empty() || used.contains_key(nonce) {
            return false;
        }
        used.insert(nonce.to_owned(), expires_at);
        true
    }
}

/// The query of a hand-off request (`/.slipway/auth?...`), if this is one.
fn handoff_query(path_and_query: &str) -> Option<&str> {
    let rest = path_and_query.strip_prefix(HANDOFF_PATH)?;
    match rest.strip_prefix('?') {
        Some(query) => Some(query),
        None if rest.is_empty() => Some(""),
        None => None,
    }
}

/// A path on the same host: anything else (another host, a scheme) becomes `/`.
fn safe_path(next: &str) -> &str {
    if next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.chars().any(char::is_control) {
        next
    } else {
        "/"
    }
}

/// Finds a cookie's value among `Cookie` header values, without allocating.
pub fn find_cookie<'a>(cookie_headers: impl IntoIterator<Item = &'a [u8]>, name: &str) -> Option<&'a str> {
    for header in cookie_headers {
        let Ok(text) = std::str::from_utf8(header) else { continue };
        for pair in text.split(';') {
            if let Some((key, value)) = pair.trim().split_once('=') {
                if key == name && !value.is_empty() {
                    return Some(value);
                }
            }
        }
    }
    None
}

pub use crate::model::percent_encode;

#[cfg(test)]
mod tests;
