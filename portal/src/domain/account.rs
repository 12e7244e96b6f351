//! Account fields: e-mail address (and the university-domain rule), password rules, display name,
//! student or staff number, role and language. Each `parse` returns a `ValidationError` whose
//! `code` is stable (the API returns it) and whose message names the bad value.

use std::fmt;

/// Why a submitted value was refused. `code` is machine-readable and stable; `detail` is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ValidationError {
    pub code: &'static str,
    pub field: &'static str,
    pub detail: String,
    /// Values for the translated message's placeholders (`error.<code>` in the locale files).
    pub args: Vec<(&'static str, String)>,
}

impl ValidationError {
    pub fn new(code: &'static str, field: &'static str, detail: impl Into<String>) -> Self {
        Self { code, field, detail: detail.into(), args: Vec::new() }
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.args.push((name, value.into()));
        self
    }
}

/// A syntactically valid e-mail address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let candidate = raw.trim().to_lowercase();
        let invalid = || {
            ValidationError::new("invalid_email", "email", format!("`{}` is not an e-mail address", raw.trim())).with("value", raw.trim())
        };
        if candidate.len() > 254 || candidate.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = candidate.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || local.len() > 64
            || local.contains('@')
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(invalid());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if labels.len() < 2 || !labels.iter().all(label_ok) {
            return Err(invalid());
        }
        let local_ok = local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        if !local_ok {
            return Err(invalid());
        }
        Ok(Self(candidate))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, domain)| domain).expect("parse guarantees an @")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The university-domain rule for sign-up. An address is allowed when its domain is one of the
/// listed domains or a subdomain of one (`cs.pusan.ac.kr` under `pusan.ac.kr`), because
/// departments often hand out addresses on their own subdomain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainPolicy {
    domains: Vec<String>,
}

impl DomainPolicy {
    pub fn new(domains: &[String]) -> Self {
        Self { domains: domains.iter().map(|d| d.trim().trim_start_matches('@').to_lowercase()).collect() }
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    pub fn check(&self, email: &EmailAddress) -> Result<(), ValidationError> {
        let domain = email.domain();
        let allowed = self.domains.iter().any(|allowed| {
            domain == allowed
                || (domain.len() > allowed.len()
                    && domain.ends_with(allowed.as_str())
                    && domain[..domain.len() - allowed.len()].ends_with('.'))
        });
        if allowed {
            Ok(())
        } else {
            Err(ValidationError::new(
                "email_domain_not_allowed",
                "email",
                format!("`{}` is not a university address; sign-up needs an address at {}", email, self.domains.join(", ")),
            )
            .with("domains", self.domains.join(", ")))
        }
    }
}

/// A password chosen by a user, checked against the length rules. It is never displayed.
pub struct NewPassword(String);

impl NewPassword {
    pub const MIN_CHARS: usize = 10;
    pub const MAX_CHARS: usize = 256;

    pub fn parse(raw: &str, email: &EmailAddress) -> Result<Self, ValidationError> {
        let n_chars = raw.chars().count();
        if n_chars < Self::MIN_CHARS {
            return Err(ValidationError::new(
                "weak_password",
                "password",
                format!("the password has {n_chars} characters; it needs at least {}", Self::MIN_CHARS),
            )
            .with("min", Self::MIN_CHARS.to_string()));
        }
        if n_chars > Self::MAX_CHARS {
            return Err(ValidationError::new(
                "weak_password",
                "password",
                format!("the password has {n_chars} characters; at most {} are allowed", Self::MAX_CHARS),
            )
            .with("min", Self::MIN_CHARS.to_string()));
        }
        if raw.trim().eq_ignore_ascii_case(email.as_str()) {
            return Err(ValidationError::new("weak_password", "password", "the password must not be the e-mail address"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// The name shown to other users: trimmed, 1 to 100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let trimmed = raw.trim();
        let n_chars = trimmed.chars().count();
        if n_chars == 0 || n_chars > 100 || trimmed.chars().any(char::is_control) {
            return Err(ValidationError::new(
                "invalid_display_name",
                "display_name",
                "the display name needs 1 to 100 printable characters",
            ));
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A student or staff number as the university issues it: letters, digits and `-`, up to 32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudentNumber(String);

impl StudentNumber {
    /// An empty field means "no number", hence the `Option`.
    pub fn parse_optional(raw: &str) -> Result<Option<Self>, ValidationError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        if trimmed.len() > 32 || !trimmed.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(ValidationError::new(
                "invalid_student_number",
                "student_number",
                format!("`{trimmed}` is not a student or staff number (letters, digits and -, at most 32)"),
            ));
        }
        Ok(Some(Self(trimmed.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a user is allowed to do platform-wide. Professors create courses; admins run the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Student,
    Professor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Student, Role::Professor, Role::Admin];

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.trim() {
            "student" => Ok(Role::Student),
            "professor" => Ok(Role::Professor),
            "admin" => Ok(Role::Admin),
            other => Err(ValidationError::new("invalid_role", "role", format!("`{other}` is not a role; use student, professor or admin"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Student => "student",
            Role::Professor => "professor",
            Role::Admin => "admin",
        }
    }
}

/// The languages the portal and its mail speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    #[default]
    En,
    Ko,
}

impl Language {
    pub const ALL: [Language; 2] = [Language::En, Language::Ko];

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "en" => Ok(Language::En),
            "ko" => Ok(Language::Ko),
            other => {
                Err(ValidationError::new("invalid_language", "language", format!("`{other}` is not a supported language; use en or ko")))
            }
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Ko => "ko",
        }
    }

    /// Picks the first supported language from an `Accept-Language` header, honouring q-values
    /// (`ko-KR,ko;q=0.9,en;q=0.8` gives Korean; `fr, en;q=0.5` gives English). Unsupported or
    /// missing preferences fall back to English.
    pub fn from_accept_language(header: &str) -> Self {
        let mut best: Option<(f32, usize, Language)> = None;
        for (position, part) in header.split(',').enumerate() {
            let mut pieces = part.trim().split(';');
            let tag = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = pieces.filter_map(|p| p.trim().strip_prefix("q=")).filter_map(|q| q.parse::<f32>().ok()).next().unwrap_or(1.0);
            let primary = tag.split('-').next().unwrap_or("");
            let Ok(language) = Language::parse(primary) else { continue };
            if quality <= 0.0 {
                continue;
            }
            let better = match best {
                None => true,
                Some((best_quality, best_position, _)) => quality > best_quality || (quality == best_quality && position < best_position),
            };
            if better {
                best = Some((quality, position, language));
            }
        }
        best.map(|(_, _, language)| language).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_email(raw: &str, expected: Result<&str, &str>) {
        let got = EmailAddress::parse(raw).map(|e| e.as_str().to_owned()).map_err(|e| e.code);
        assert_eq!(got, expected.map(str::to_owned), "input {raw:?}");
    }

    #[test]
    fn email_addresses_are_trimmed_lowercased_and_checked() {
        check_email(" Kim@Pusan.AC.kr ", Ok("kim@pusan.ac.kr"));
        check_email("a.b+tag@cs.pusan.ac.kr", Ok("a.b+tag@cs.pusan.ac.kr"));
        for bad in [
            "",
            "kim",
            "@pusan.ac.kr",
            "kim@",
            "kim@localhost",
            "kim@@pusan.ac.kr",
            "ki m@pusan.ac.kr",
            "kim@-x.kr",
            "kim@x..kr",
            ".kim@x.kr",
            "k\u{0}@x.kr",
        ] {
            check_email(bad, Err("invalid_email"));
        }
    }

    fn check_domain(allowed: &[&str], email: &str, expected_ok: bool) {
        let policy = DomainPolicy::new(&allowed.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let email = EmailAddress::parse(email).expect("test address is valid");
        assert_eq!(policy.check(&email).is_ok(), expected_ok, "{email} against {allowed:?}");
    }

    #[test]
    fn sign_up_accepts_listed_domains_and_their_subdomains_only() {
        check_domain(&["pusan.ac.kr"], "kim@pusan.ac.kr", true);
        check_domain(&["pusan.ac.kr"], "kim@cs.pusan.ac.kr", true);
        check_domain(&["@Pusan.ac.kr"], "kim@pusan.ac.kr", true);
        check_domain(&["pusan.ac.kr"], "kim@notpusan.ac.kr", false);
        check_domain(&["pusan.ac.kr"], "kim@pusan.ac.kr.evil.com", false);
        check_domain(&["pusan.ac.kr"], "kim@gmail.com", false);
        check_domain(&[], "kim@pusan.ac.kr", false);
        check_domain(&["pusan.ac.kr", "snu.ac.kr"], "lee@snu.ac.kr", true);
    }

    #[test]
    fn wrong_domain_message_names_the_allowed_domains() {
        let policy = DomainPolicy::new(&["pusan.ac.kr".to_owned(), "snu.ac.kr".to_owned()]);
        let err = policy.check(&EmailAddress::parse("x@gmail.com").expect("valid")).expect_err("gmail is not allowed");
        assert_eq!(err.code, "email_domain_not_allowed");
        assert!(err.detail.contains("pusan.ac.kr, snu.ac.kr"), "{}", err.detail);
    }

    #[test]
    fn passwords_need_ten_characters_and_must_differ_from_the_address() {
        let email = EmailAddress::parse("kim@pusan.ac.kr").expect("valid");
        assert!(NewPassword::parse("short", &email).is_err());
        assert!(NewPassword::parse("kim@pusan.ac.kr", &email).is_err());
        assert!(NewPassword::parse(&"x".repeat(257), &email).is_err());
        assert!(NewPassword::parse("비밀번호는열자이상입니다", &email).is_ok());
        assert_eq!(format!("{:?}", NewPassword::parse("correct horse", &email).expect("ok")), "NewPassword(..)");
    }

    #[test]
    fn display_names_and_student_numbers_are_validated() {
        assert_eq!(DisplayName::parse("  김민수 ").expect("ok").as_str(), "김민수");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"a".repeat(101)).is_err());
        assert_eq!(StudentNumber::parse_optional(" 202312345 ").expect("ok").map(|s| s.as_str().to_owned()), Some("202312345".to_owned()));
        assert_eq!(StudentNumber::parse_optional("").expect("ok"), None);
        assert!(StudentNumber::parse_optional("12 34").is_err());
    }

    fn check_accept_language(header: &str, expected: Language) {
        assert_eq!(Language::from_accept_language(header), expected, "header {header:?}");
    }

    #[test]
    fn accept_language_picks_the_best_supported_language() {
        check_accept_language("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", Language::Ko);
        check_accept_language("en-US,en;q=0.9,ko;q=0.8", Language::En);
        check_accept_language("fr-FR, ko;q=0.5, en;q=0.4", Language::Ko);
        check_accept_language("fr", Language::En);
        check_accept_language("", Language::En);
        check_accept_language("ko;q=0, en;q=0.1", Language::En);
        check_accept_language("en;q=0.5, ko;q=0.8", Language::Ko);
    }

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Ok(role));
        }
        assert_eq!(Role::parse("root").map_err(|e| e.code), Err("invalid_role"));
    }
}
