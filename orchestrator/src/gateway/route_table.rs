//! Which app a request is for, and where that app answers.
//!
//! `app_for_host` turns a `Host` header into an app name (`quiz.localhost:8000` is the app `quiz`);
//! `RouteTable` is the plain map from app name to `Route` that a resolver reads. The data types the
//! proxy acts on (`Upstream`, `Resolution`) live here too because they are plain values.
//!
//! Pure: no I/O, no clock, no async. It deliberately does not check that a name is a valid *app*
//! name (reserved words, `--`); it only checks that it is one well-formed DNS label, and the
//! resolver answers `NotFound` for labels that name no app.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// A DNS label is at most 63 bytes; anything longer cannot be a subdomain at all.
const MAX_LABEL_LEN: usize = 63;
/// A DNS name is at most 253 characters when written without the trailing dot.
const MAX_HOST_LEN: usize = 253;

/// What a `Host` header points at, relative to the apps domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `NAME.<apps domain>`: the lowercase app name, one DNS label.
    App(String),
    /// The apps domain itself, with no app label in front of it.
    Apex,
    /// Anything else: another domain, a nested name, an IP literal or a malformed host.
    Foreign,
}

/// Maps a `Host` header (or the authority of an absolute-form request target) to an app.
///
/// Matching ignores ASCII case, one trailing dot and a port. Only a single label in front of the
/// apps domain names an app: `a.b.localhost` is foreign rather than app `a.b`, because app names are
/// single labels and a nested name is either a typo or a probe.
pub fn app_for_host(host_header: &str, apps_domain: &str) -> HostMatch {
    let Some(host) = normalise_host(host_header) else {
        return HostMatch::Foreign;
    };
    let Some(domain) = normalise_domain(apps_domain) else {
        return HostMatch::Foreign;
    };
    // An IP literal never names an app, even if someone configured a numeric "domain".
    if host.parse::<IpAddr>().is_ok() {
        return HostMatch::Foreign;
    }
    if host == domain {
        return HostMatch::Apex;
    }
    let Some(label) = host.strip_suffix(domain.as_str()).and_then(|rest| rest.strip_suffix('.')) else {
        return HostMatch::Foreign;
    };
    if is_dns_label(label) {
        HostMatch::App(label.to_owned())
    } else {
        HostMatch::Foreign
    }
}

/// Lowercases the host, drops the port and one trailing dot; `None` when it cannot be a DNS name.
pub fn normalise_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    // Bracketed IPv6 literals (`[::1]:8000`) never name an app.
    if raw.starts_with('[') {
        return None;
    }
    let host = match raw.split_once(':') {
        None => raw,
        Some((host, port)) => {
            // RFC 9110 allows an empty port after the colon; anything but digits is malformed.
            if port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            host
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN || !host.is_ascii() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// The configured apps domain, normalised the same way as hosts so that `Localhost.` still matches.
fn normalise_domain(raw: &str) -> Option<String> {
    let domain = raw.trim();
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() || !domain.is_ascii() {
        return None;
    }
    Some(domain.to_ascii_lowercase())
}

/// One lowercase DNS label: 1 to 63 of `a-z`, `0-9`, `-`, not starting or ending with `-`.
fn is_dns_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL_LEN
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Where an app's HTTP server listens.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Upstream {
    /// A socket reachable from the gateway's own network namespace.
    Tcp(SocketAddr),
    /// A socket inside another network namespace (the app's sandbox), named by a namespace file
    /// such as `/proc/PID/ns/net` or `/run/netns/NAME`; `addr` is as seen from inside it.
    InNetns { netns: PathBuf, addr: SocketAddr },
}

impl std::fmt::Display for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Upstream::Tcp(addr) => write!(f, "{addr}"),
            Upstream::InNetns { netns, addr } => write!(f, "{addr} in {}", netns.display()),
        }
    }
}

/// Why an app that exists cannot take requests right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnavailableReason {
    /// It exited unexpectedly and the runtime is restarting it.
    Crashed,
    /// It is being started (first deploy, or waking from zero).
    Starting,
    /// It was stopped on purpose and nothing will start it by itself.
    Stopped,
    /// A wake from zero failed (the app did not become healthy); the next request tries again.
    WakeFailed,
}

/// The resolver's answer for one app name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Send the request here.
    Ready(Upstream),
    /// No app has this name.
    NotFound,
    /// The app exists but cannot answer; the visitor should retry after `retry_after_secs`.
    Unavailable { reason: UnavailableReason, retry_after_secs: u32 },
}

/// What the route table knows about one app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Running and answering at this upstream.
    Ready(Upstream),
    /// Known but not answering.
    Unavailable { reason: UnavailableReason, retry_after_secs: u32 },
}

/// App name → route. A plain map on purpose: the local runtime fills it today, and a Redis-fed
/// adapter will fill it later, so it holds no policy of its own. Keys are lowercase app names, the
/// form `app_for_host` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    routes: HashMap<String, Route>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an app's route, returning the one it replaced.
    pub fn insert(&mut self, app: impl Into<String>, route: Route) -> Option<Route> {
        self.routes.insert(app.into(), route)
    }

    pub fn remove(&mut self, app: &str) -> Option<Route> {
        self.routes.remove(app)
    }

    pub fn get(&self, app: &str) -> Option<&Route> {
        self.routes.get(app)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Route)> {
        self.routes.iter().map(|(name, route)| (name.as_str(), route))
    }

    /// What the proxy should do for `app`: an absent app is `NotFound`.
    pub fn resolve(&self, app: &str) -> Resolution {
        match self.routes.get(app) {
            None => Resolution::NotFound,
            Some(Route::Ready(upstream)) => Resolution::Ready(upstream.clone()),
            Some(Route::Unavailable { reason, retry_after_secs }) => {
                Resolution::Unavailable { reason: *reason, retry_after_secs: *retry_after_secs }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(host: &str, domain: &str, expected: HostMatch) {
        assert_eq!(app_for_host(host, domain), expected, "host {host:?} under {domain:?}");
    }

    fn app(name: &str) -> HostMatch {
        HostMatch::App(name.to_owned())
    }

    #[test]
    fn a_single_label_under_the_apps_domain_names_an_app() {
        check("quiz.localhost", "localhost", app("quiz"));
        check("quiz.localhost:8000", "localhost", app("quiz"));
        check("QUIZ.Localhost.", "localhost", app("quiz"));
        check("quiz.localhost.:8000", "localhost", app("quiz"));
        check("quiz.localhost:", "localhost", app("quiz"));
        check("  quiz.localhost  ", "localhost", app("quiz"));
        check("my-app2.apps.pusan.ac.kr", "apps.pusan.ac.kr", app("my-app2"));
        check("My-App2.APPS.pusan.ac.kr:443", "Apps.Pusan.AC.KR.", app("my-app2"));
        check("9lives.localhost", "localhost", app("9lives"));
        check(&format!("{}.localhost", "a".repeat(63)), "localhost", app(&"a".repeat(63)));
    }

    #[test]
    fn the_apps_domain_itself_is_the_apex() {
        check("localhost", "localhost", HostMatch::Apex);
        check("localhost:8000", "localhost", HostMatch::Apex);
        check("LOCALHOST.", "localhost", HostMatch::Apex);
        check("apps.pusan.ac.kr", "apps.pusan.ac.kr.", HostMatch::Apex);
    }

    #[test]
    fn everything_else_is_foreign() {
        check("", "localhost", HostMatch::Foreign);
        check(":8000", "localhost", HostMatch::Foreign);
        check(".localhost", "localhost", HostMatch::Foreign);
        check("a.b.localhost", "localhost", HostMatch::Foreign);
        check("a..localhost", "localhost", HostMatch::Foreign);
        check("quiz.localhost..", "localhost", HostMatch::Foreign);
        check("quizlocalhost", "localhost", HostMatch::Foreign);
        check("quiz.example.com", "localhost", HostMatch::Foreign);
        check("quiz.localhost.example.com", "localhost", HostMatch::Foreign);
        check("-quiz.localhost", "localhost", HostMatch::Foreign);
        check("quiz-.localhost", "localhost", HostMatch::Foreign);
        check("qu_iz.localhost", "localhost", HostMatch::Foreign);
        check("qu iz.localhost", "localhost", HostMatch::Foreign);
        check("quïz.localhost", "localhost", HostMatch::Foreign);
        check(&format!("{}.localhost", "a".repeat(64)), "localhost", HostMatch::Foreign);
        check(&format!("{}.localhost", "a.".repeat(130)), "localhost", HostMatch::Foreign);
        check("quiz.localhost:80:80", "localhost", HostMatch::Foreign);
        check("quiz.localhost:http", "localhost", HostMatch::Foreign);
        check("quiz.localhost:123456", "localhost", HostMatch::Foreign);
        check("user@quiz.localhost", "localhost", HostMatch::Foreign);
    }

    #[test]
    fn ip_literals_are_foreign_even_under_a_numeric_domain() {
        check("127.0.0.1", "localhost", HostMatch::Foreign);
        check("127.0.0.1:8000", "localhost", HostMatch::Foreign);
        check("[::1]:8000", "localhost", HostMatch::Foreign);
        check("[::1]", "localhost", HostMatch::Foreign);
        check("::1", "localhost", HostMatch::Foreign);
        check("10.0.0.1", "0.1", HostMatch::Foreign);
        check("127.0.0.1", "127.0.0.1", HostMatch::Foreign);
    }

    #[test]
    fn an_empty_apps_domain_matches_nothing() {
        check("quiz", "", HostMatch::Foreign);
        check("quiz.", ".", HostMatch::Foreign);
    }

    #[test]
    fn the_route_table_resolves_known_apps_and_reports_missing_ones() {
        let upstream = Upstream::Tcp("127.0.0.1:4000".parse().expect("literal address"));
        let mut table = RouteTable::new();
        assert!(table.is_empty());
        assert_eq!(table.insert("quiz", Route::Ready(upstream.clone())), None);
        table.insert("blog", Route::Unavailable { reason: UnavailableReason::Crashed, retry_after_secs: 5 });
        assert_eq!(table.len(), 2);
        assert_eq!(table.get("quiz"), Some(&Route::Ready(upstream.clone())));
        assert_eq!(table.resolve("quiz"), Resolution::Ready(upstream.clone()));
        assert_eq!(table.resolve("blog"), Resolution::Unavailable { reason: UnavailableReason::Crashed, retry_after_secs: 5 });
        assert_eq!(table.resolve("ghost"), Resolution::NotFound);
        assert_eq!(table.remove("quiz"), Some(Route::Ready(upstream)));
        assert_eq!(table.resolve("quiz"), Resolution::NotFound);
        assert_eq!(table.iter().map(|(name, _)| name).collect::<Vec<_>>(), vec!["blog"]);
    }
}
