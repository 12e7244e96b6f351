//! Outgoing mail: composing the platform's messages in the user's language and putting them on
//! the durable queue (`outbound_mail`). `worker` delivers them.
//!
//! Bodies are sealed with the platform key before they are stored, because they carry one-time
//! links; the worker wipes a body once it is delivered.

pub mod worker;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::crypto::SecretBox;
use crate::db::{self, Db, DbError};
use crate::domain::Language;
use crate::i18n;

/// The messages the platform sends.
#[derive(Debug, Clone)]
pub enum MailKind {
    /// The link that proves the address belongs to the person signing up.
    Verify { link: String, valid_hours: u64 },
    /// The link that sets a new password.
    Reset { link: String, valid_minutes: u64 },
    /// Somebody tried to sign up with an address that already has an account.
    AlreadyRegistered { login_link: String, reset_link: String },
    /// Somebody added the address to a group: `member` when it has an account (it is a member
    /// now), otherwise the invitation waits and `link` is the sign-up page.
    GroupInvitation { group: String, role: String, inviter: String, link: String, member: bool },
    /// To admins: a monitor incident opened (a component down, disk or memory over its threshold).
    IncidentOpened { what: String, reason: String, at: String, link: String },
    /// To admins: that incident is over.
    IncidentCleared { what: String, reason: String, opened_at: String, at: String, link: String },
    /// A roster import named an address without an account: it joins the course `course` when it
    /// signs up (`link` is the sign-up page).
    CourseInvitation { course: String, inviter: String, link: String },
}

/// A composed message: subject and plain-text body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub body: String,
}

/// Fills the message templates of `language`. Pure.
pub fn compose(kind: &MailKind, language: Language, display_name: &str) -> Composed {
    let tr = i18n::Tr::new(language);
    let (prefix, vars): (&str, Vec<(&str, String)>) = match kind {
        MailKind::Verify { link, valid_hours } => ("mail.verify", vec![("link", link.clone()), ("hours", valid_hours.to_string())]),
        MailKind::Reset { link, valid_minutes } => ("mail.reset", vec![("link", link.clone()), ("minutes", valid_minutes.to_string())]),
        MailKind::AlreadyRegistered { login_link, reset_link } => {
            ("mail.already_registered", vec![("login_link", login_link.clone()), ("reset_link", reset_link.clone())])
        }
        MailKind::GroupInvitation { group, role, inviter, link, member } => (
            if *member { "mail.group_added" } else { "mail.group_invited" },
            vec![("group", group.clone()), ("role", role.clone()), ("inviter", inviter.clone()), ("link", link.clone())],
        ),
        MailKind::IncidentOpened { what, reason, at, link } => {
            ("mail.incident_opened", vec![("what", what.clone()), ("reason", reason.clone()), ("at", at.clone()), ("link", link.clone())])
        }
        MailKind::IncidentCleared { what, reason, opened_at, at, link } => (
            "mail.incident_cleared",
            vec![
                ("what", what.clone()),
                ("reason", reason.clone()),
                ("opened_at", opened_at.clone()),
                ("at", at.clone()),
                ("link", link.clone()),
            ],
        ),
        MailKind::CourseInvitation { course, inviter, link } => {
            ("mail.course_invited", vec![("course", course.clone()), ("inviter", inviter.clone()), ("link", link.clone())])
        }
    };
    let mut all_vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all_vars.push(("name", display_name));
    Composed {
        subject: tr.fill(&format!("{prefix}.subject"), &all_vars),
        body: format!("{}\n\n-- \n{}\n", tr.fill(&format!("{prefix}.body"), &all_vars), tr.t("mail.footer")),
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SealedBody {
    text: String,
}

/// The queue's writing side, shared by request handlers. `notify` wakes the worker at once.
#[derive(Clone)]
pub struct MailQueue {
    db: Db,
    secrets: SecretBox,
    notify: Arc<Notify>,
}

impl MailQueue {
    pub fn new(db: Db, secrets: SecretBox) -> Self {
        Self { db, secrets, notify: Arc::new(Notify::new()) }
    }

    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    pub async fn enqueue(&self, to_address: &str, composed: Composed) -> Result<i64, DbError> {
        let sealed = self.secrets.seal(&serde_json::to_vec(&SealedBody { text: composed.body }).expect("a string always serialises"));
        let to_address = to_address.to_owned();
        let mail_id = self.db.run(move |conn| db::mail::enqueue(conn, &to_address, &composed.subject, &sealed)).await?;
        self.notify.notify_one();
        Ok(mail_id)
    }

    /// The subject and sealed body of `composed`, for `db::mail::enqueue` inside a caller's
    /// transaction (the monitor queues an incident's mails with the incident row). Call `wake`
    /// after the commit.
    pub fn seal(&self, composed: Composed) -> (String, Vec<u8>) {
        let sealed = self.secrets.seal(&serde_json::to_vec(&SealedBody { text: composed.body }).expect("a string always serialises"));
        (composed.subject, sealed)
    }

    /// Wakes the worker for mail queued with `seal`.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    pub(crate) fn open_body(&self, sealed: &[u8]) -> Result<String, crate::crypto::CryptoError> {
        let bytes = self.secrets.open(sealed)?;
        let body: SealedBody = serde_json::from_slice(&bytes).map_err(|_| crate::crypto::CryptoError::Unseal)?;
        Ok(body.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_mail_is_composed_in_both_languages() {
        let kind = MailKind::Verify { link: "http://p/verify?token=abc".into(), valid_hours: 24 };
        let en = compose(&kind, Language::En, "Kim");
        assert!(en.body.contains("http://p/verify?token=abc") && en.body.contains("24") && en.body.contains("Kim"), "{}", en.body);
        let ko = compose(&kind, Language::Ko, "김민수");
        assert!(ko.body.contains("http://p/verify?token=abc") && ko.body.contains("김민수"), "{}", ko.body);
        assert_ne!(en.subject, ko.subject);
        assert!(!ko.body.contains('{'), "every placeholder is filled: {}", ko.body);
    }

    #[test]
    fn incident_mails_name_the_problem_in_both_languages() {
        let opened = MailKind::IncidentOpened {
            what: "redis".into(),
            reason: "no answer".into(),
            at: "2026-12-05 10:00:00".into(),
            link: "L".into(),
        };
        let cleared = MailKind::IncidentCleared {
            what: "redis".into(),
            reason: "no answer".into(),
            opened_at: "2026-12-05 10:00:00".into(),
            at: "2026-12-05 10:07:00".into(),
            link: "L".into(),
        };
        for language in [Language::En, Language::Ko] {
            for kind in [&opened, &cleared] {
                let mail = compose(kind, language, "Admin");
                assert!(mail.subject.contains("redis") && mail.body.contains("no answer") && mail.body.contains('L'), "{mail:?}");
                assert!(!mail.body.contains('{') && !mail.subject.contains('{'), "every placeholder is filled: {mail:?}");
            }
        }
        assert!(compose(&cleared, Language::En, "A").body.contains("2026-12-05 10:07:00"));
    }

    #[test]
    fn reset_and_already_registered_mails_carry_their_links() {
        let reset = compose(&MailKind::Reset { link: "L1".into(), valid_minutes: 60 }, Language::En, "Kim");
        assert!(reset.body.contains("L1") && reset.body.contains("60"));
        let again = compose(&MailKind::AlreadyRegistered { login_link: "L2".into(), reset_link: "L3".into() }, Language::Ko, "Kim");
        assert!(again.body.contains("L2") && again.body.contains("L3"));
    }

    #[test]
    fn group_invitations_name_the_group_role_and_inviter_in_both_languages() {
        for member in [true, false] {
            let kind = MailKind::GroupInvitation {
                group: "quiz-club".into(),
                role: "viewer".into(),
                inviter: "Lee".into(),
                link: "http://p/signup".into(),
                member,
            };
            for language in [Language::En, Language::Ko] {
                let mail = compose(&kind, language, "kim@pusan.ac.kr");
                for part in ["quiz-club", "viewer", "Lee", "http://p/signup"] {
                    assert!(mail.body.contains(part), "{member} {language:?} lacks {part}: {}", mail.body);
                }
                assert!(mail.subject.contains("quiz-club") && !mail.body.contains('{'), "{mail:?}");
            }
        }
    }

    #[test]
    fn course_invitations_name_the_course_and_the_sign_up_link_in_both_languages() {
        let kind =
            MailKind::CourseInvitation { course: "CS101 웹프로그래밍".into(), inviter: "Lee".into(), link: "http://p/signup".into() };
        for language in [Language::En, Language::Ko] {
            let mail = compose(&kind, language, "");
            for part in ["CS101 웹프로그래밍", "Lee", "http://p/signup"] {
                assert!(mail.body.contains(part), "{language:?} lacks {part}: {}", mail.body);
            }
            assert!(mail.subject.contains("CS101") && !mail.body.contains('{'), "{mail:?}");
        }
    }
}
