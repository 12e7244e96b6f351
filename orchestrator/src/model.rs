//! Plain data shared by every part of the orchestrator and by the portal: the names of things.
//! Pure: no I/O.

use std::fmt;

/// An app's name, which is also its subdomain: `NAME.<apps domain>`.
///
/// Rules: 1 to 40 characters of `a-z`, `0-9` and `-`; starts with a letter; does not end with
/// `-`; no `--` (kept for platform-made names such as submission snapshots, `NAME--a12`); not a
/// reserved name (platform hosts such as `www`, `api`, `admin`, `portal`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AppName(String);

pub const MAX_APP_NAME_LEN: usize = 40;

/// Names that would collide with platform hosts or confuse visitors.
pub const RESERVED_APP_NAMES: &[&str] = &[
    "www",
    "api",
    "admin",
    "portal",
    "app",
    "apps",
    "auth",
    "login",
    "logout",
    "signup",
    "account",
    "accounts",
    "static",
    "assets",
    "cdn",
    "mail",
    "smtp",
    "imap",
    "pop",
    "ftp",
    "ssh",
    "git",
    "status",
    "metrics",
    "health",
    "healthz",
    "dashboard",
    "console",
    "terminal",
    "gateway",
    "activator",
    "traefik",
    "nomad",
    "consul",
    "vault",
    "grafana",
    "prometheus",
    "slipway",
    "help",
    "docs",
    "support",
    "security",
    "root",
    "system",
    "localhost",
    "test",
    "dev",
    "staging",
    "internal",
    "ns",
    "ns1",
    "ns2",
    "dns",
    "mx",
    "webmail",
    "autoconfig",
    "autodiscover",
    "acme",
    "well-known",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppNameError {
    #[error("the name is empty")]
    Empty,
    #[error("`{0}` is longer than 40 characters")]
    TooLong(String),
    #[error("`{0}` may only use lowercase letters, digits and -")]
    BadCharacter(String),
    #[error("`{0}` must start with a letter")]
    BadStart(String),
    #[error("`{0}` must not end with -")]
    BadEnd(String),
    #[error("`{0}` must not contain -- (kept for platform names)")]
    DoubleHyphen(String),
    #[error("`{0}` is reserved for the platform")]
    Reserved(String),
}

impl AppNameError {
    pub fn code(&self) -> &'static str {
        match self {
            AppNameError::Reserved(_) => "app_name_reserved",
            _ => "invalid_app_name",
        }
    }
}

impl AppName {
    pub fn parse(raw: &str) -> Result<Self, AppNameError> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(AppNameError::Empty);
        }
        if name.chars().count() > MAX_APP_NAME_LEN {
            return Err(AppNameError::TooLong(name.to_owned()));
        }
        if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(AppNameError::BadCharacter(name.to_owned()));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(AppNameError::BadStart(name.to_owned()));
        }
        if name.ends_with('-') {
            return Err(AppNameError::BadEnd(name.to_owned()));
        }
        if name.contains("--") {
            return Err(AppNameError::DoubleHyphen(name.to_owned()));
        }
        if RESERVED_APP_NAMES.contains(&name) {
            return Err(AppNameError::Reserved(name.to_owned()));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for AppName {
    type Error = AppNameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        AppName::parse(&value)
    }
}

impl From<AppName> for String {
    fn from(name: AppName) -> String {
        name.0
    }
}

/// Whether `name` is a DNS name: dot-separated labels of ASCII letters, digits and inner hyphens,
/// each 1 to 63 long, at most 253 in all. Used for the apps domain and for egress host lists.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for query values and path
/// segments alike: `a b/c` → `a%20b%2Fc`. Pure.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(raw: &str, expected: Result<&str, &str>) {
        let got =
            AppName::parse(raw).map(|n| n.as_str().to_owned()).map_err(|e| format!("{e:?}").split('(').next().unwrap_or("").to_owned());
        assert_eq!(got, expected.map(str::to_owned).map_err(str::to_owned), "input {raw:?}");
    }

    #[test]
    fn app_names_follow_dns_label_rules() {
        check("my-app", Ok("my-app"));
        check(" quiz2 ", Ok("quiz2"));
        check("a", Ok("a"));
        check("", Err("Empty"));
        check("My-App", Err("BadCharacter"));
        check("my_app", Err("BadCharacter"));
        check("my.app", Err("BadCharacter"));
        check("2048", Err("BadStart"));
        check("-app", Err("BadStart"));
        check("app-", Err("BadEnd"));
        check("my--app", Err("DoubleHyphen"));
        check(&"a".repeat(41), Err("TooLong"));
        check(&"a".repeat(40), Ok(&"a".repeat(40)));
        check("한글", Err("BadCharacter"));
    }

    #[test]
    fn dns_names_are_labels_of_letters_digits_and_inner_hyphens() {
        for good in ["localhost", "apps.pusan.ac.kr", "a-b.c", "x1.y2"] {
            assert!(is_dns_name(good), "{good}");
        }
        for bad in ["", "a..b", "-a.b", "a-.b", "a b", "a_b.c", "한국.kr", &"a".repeat(64)] {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn reserved_names_are_refused() {
        for name in ["www", "api", "admin", "portal", "slipway"] {
            assert_eq!(AppName::parse(name).map_err(|e| e.code()), Err("app_name_reserved"), "{name}");
        }
    }
}
