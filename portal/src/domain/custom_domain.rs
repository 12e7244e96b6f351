//! Custom domains as values: `CustomDomainName` (a domain an owner may attach to a project), the
//! ownership proof's names, and when a certificate is due (`renew_at`, `certificate_action`).
//!
//! A domain's life:
//! ```text
//! pending ──(TXT or HTTP token found)──▶ verified ──(ACME issues)──▶ active ──(renewal due)──┐
//!    ▲                                       │                          ▲                      │
//!    └─(owner removes and re-adds)           └──(ACME fails)──▶ failed ─┴──(retry_after)───────┘
//! ```
//! Pure: no I/O, no clock (time is passed in).

use chrono::{DateTime, Duration, Utc};

use super::ValidationError;

/// The TXT record name that proves control: `_slipway-challenge.<domain>`.
pub const CHALLENGE_LABEL: &str = "_slipway-challenge";

/// A fully qualified domain name an owner may attach: lowercase, no trailing dot, at least two
/// labels, not an IP address, and not the installation's own apps domain or portal host (nor under
/// them: those names belong to the platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomDomainName(String);

impl CustomDomainName {
    pub fn parse(raw: &str, apps_domain: &str, portal_host: &str) -> Result<Self, ValidationError> {
        let refuse = |detail: &str| ValidationError::new("invalid_domain", "domain", detail).with("domain", raw.trim());
        let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 || !name.is_ascii() {
            return Err(refuse("a domain is 1 to 253 ASCII characters, such as shop.example.org"));
        }
        let labels: Vec<&str> = name.split('.').collect();
        if labels.len() < 2 {
            return Err(refuse("a custom domain needs at least two labels, such as shop.example.org"));
        }
        let label_ok = |label: &&str| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !labels.iter().all(label_ok) {
            return Err(refuse("each label is 1 to 63 of a-z, 0-9 and -, not starting or ending with -"));
        }
        if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
            return Err(refuse("an IP address is not a domain"));
        }
        for own in [apps_domain, portal_host] {
            let own = own.trim().trim_end_matches('.').to_ascii_lowercase();
            if !own.is_empty() && (name == own || name.ends_with(&format!(".{own}"))) {
                return Err(refuse("this name belongs to the platform itself"));
            }
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Where the owner publishes the proof token as a TXT record.
    pub fn challenge_record(&self) -> String {
        format!("{CHALLENGE_LABEL}.{}", self.0)
    }
}

/// When a certificate valid from `not_before` to `not_after` should be replaced: at two thirds of
/// its lifetime, but no later than 30 days before it expires, and never before half its lifetime
/// (so a short-lived certificate is not renewed in a loop).
///
/// Worked example: a 90-day certificate is renewed on day 60 (both rules agree); a 5-year one
/// (pebble's) at 40 months; a 6-day one on day 3. Covered by `renewal_time_follows_the_rules`.
pub fn renew_at(not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = not_after - not_before;
    let two_thirds = not_before + lifetime * 2 / 3;
    let month_before = not_after - Duration::days(30);
    two_thirds.min(month_before).max(not_before + lifetime / 2)
}

/// What the certificate worker does for one domain whose control is proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateAction {
    /// No certificate yet: order one.
    Issue,
    /// The certificate is due for renewal: order a new one (the old one keeps serving meanwhile).
    Renew,
    /// Nothing to do until then.
    WaitUntil(DateTime<Utc>),
}

/// The facts `certificate_action` needs about one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateState {
    pub validity: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// After a failed order, not before this time.
    pub retry_after: Option<DateTime<Utc>>,
}

pub fn certificate_action(state: CertificateState, now: DateTime<Utc>) -> CertificateAction {
    if let Some(retry) = state.retry_after.filter(|retry| *retry > now) {
        return CertificateAction::WaitUntil(retry);
    }
    match state.validity {
        None => CertificateAction::Issue,
        Some((not_before, not_after)) => {
            let due = renew_at(not_before, not_after);
            if now >= due {
                CertificateAction::Renew
            } else {
                CertificateAction::WaitUntil(due)
            }
        }
    }
}

/// How long to wait after the `n_failures`-th failed order in a row: 5 minutes doubling to a day.
pub fn retry_delay(n_failures: u32) -> Duration {
    let minutes = 5i64.saturating_mul(1i64 << n_failures.saturating_sub(1).min(10));
    Duration::minutes(minutes.min(24 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parse(raw: &str, expected: Result<&str, &str>) {
        let got = CustomDomainName::parse(raw, "apps.example.ac.kr", "portal.example.ac.kr");
        match (got, expected) {
            (Ok(name), Ok(want)) => assert_eq!(name.as_str(), want, "{raw}"),
            (Err(error), Err(fragment)) => {
                assert_eq!(error.code, "invalid_domain");
                assert!(error.detail.contains(fragment), "{raw}: {} should mention {fragment}", error.detail);
            }
            (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn domains_are_normalised_and_checked() {
        check_parse("Shop.Example.org.", Ok("shop.example.org"));
        check_parse("  xn--9n2bp8q.kr ", Ok("xn--9n2bp8q.kr"));
        check_parse("localhost", Err("two labels"));
        check_parse("", Err("1 to 253"));
        check_parse("shop..example.org", Err("each label"));
        check_parse("-shop.example.org", Err("each label"));
        check_parse("shop_1.example.org", Err("each label"));
        check_parse("상점.kr", Err("1 to 253"));
        check_parse("10.0.0.1", Err("IP address"));
        check_parse("quiz.apps.example.ac.kr", Err("platform"));
        check_parse("apps.example.ac.kr", Err("platform"));
        check_parse("portal.example.ac.kr", Err("platform"));
        check_parse(&format!("{}.org", "a".repeat(64)), Err("each label"));
    }

    #[test]
    fn the_challenge_record_is_under_the_domain() {
        let name = CustomDomainName::parse("shop.example.org", "apps.test", "portal.test").expect("valid");
        assert_eq!(name.challenge_record(), "_slipway-challenge.shop.example.org");
    }

    fn at(day: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid") + Duration::days(day)
    }

    #[test]
    fn renewal_time_follows_the_rules() {
        assert_eq!(renew_at(at(0), at(90)), at(60));
        // 1825 days: two thirds is day 1216 and 16 hours, well before 30 days ahead of expiry.
        assert_eq!(renew_at(at(0), at(5 * 365)), at(1216) + Duration::hours(16));
        // 6 days: 30 days before expiry is before issuance, so half the lifetime wins.
        assert_eq!(renew_at(at(0), at(6)), at(3));
        // 60 days: two thirds (day 40) is later than 30 days before expiry (day 30), which is half.
        assert_eq!(renew_at(at(0), at(60)), at(30));
        // 40 days: 30 days before expiry (day 10) is earlier than half (day 20): half wins.
        assert_eq!(renew_at(at(0), at(40)), at(20));
    }

    fn check_action(validity: Option<(i64, i64)>, retry_after: Option<i64>, now: i64, expected: CertificateAction) {
        let state = CertificateState { validity: validity.map(|(from, to)| (at(from), at(to))), retry_after: retry_after.map(at) };
        assert_eq!(certificate_action(state, at(now)), expected, "{validity:?} {retry_after:?} day {now}");
    }

    #[test]
    fn the_worker_issues_renews_waits_and_backs_off() {
        check_action(None, None, 0, CertificateAction::Issue);
        check_action(None, Some(1), 0, CertificateAction::WaitUntil(at(1)));
        check_action(None, Some(1), 2, CertificateAction::Issue);
        check_action(Some((0, 90)), None, 10, CertificateAction::WaitUntil(at(60)));
        check_action(Some((0, 90)), None, 60, CertificateAction::Renew);
        check_action(Some((0, 90)), None, 95, CertificateAction::Renew);
        check_action(Some((0, 90)), Some(70), 65, CertificateAction::WaitUntil(at(70)));
    }

    #[test]
    fn retries_back_off_from_five_minutes_to_a_day() {
        assert_eq!(retry_delay(1), Duration::minutes(5));
        assert_eq!(retry_delay(2), Duration::minutes(10));
        assert_eq!(retry_delay(4), Duration::minutes(40));
        assert_eq!(retry_delay(30), Duration::minutes(24 * 60));
    }
}
