//! Account flows shared by the pages and the JSON API: sign-up, e-mail verification, login,
//! password reset and change, profile edits, API tokens and roles.
//!
//! Nothing here tells a stranger whether an address has an account: sign-up, resend and reset
//! answer the same either way (an existing account gets a mail saying so instead). Every
//! flow that accepts a guessable input is rate-limited in Redis.

use std::net::IpAddr;
use std::time::Duration;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::Utc;
use diesel::Connection;

use crate::audit::{self, Actor, Event};
use crate::crypto;
use crate::db::models::{ApiToken, NewUser, User};
use crate::db::{self, Db, DbError};
use crate::domain::audit::{actions, Target};
use crate::domain::{DisplayName, EmailAddress, Language, NewPassword, Role, StudentNumber, ValidationError};
use crate::error::AppError;
use crate::mail::{compose, MailKind};
use crate::state::AppState;

/// A hash of a random password, verified against when the account does not exist, so a login
/// for an unknown address takes as long as one for a known address.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2xpcHdheWR1bW15c2FsdA$5Qm8Xr0GdXQnW0Q4y1nJ3mZ3X0l7bXfJd6B1c3fZl2A";

pub struct SignUp {
    pub email: String,
    pub password: String,
    pub display_name: String,
    pub student_number: String,
    pub language: Language,
}

/// Argon2id with the crate's defaults (m = 19 MiB, t = 2, p = 1: OWASP's recommendation).
fn hash_password_sync(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

pub async fn hash_password(password: String) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || hash_password_sync(&password))
        .await
        .map_err(|e| anyhow::anyhow!("hashing task failed: {e}"))?
        .map_err(AppError::Internal)
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()).unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

fn rate_limited(what: &str, retry_after: Duration) -> AppError {
    let minutes = retry_after.as_secs().div_ceil(60).max(1);
    AppError::RateLimited {
        message: format!("too many {what}; try again in {minutes} minute{}", if minutes == 1 { "" } else { "s" }),
        retry_after,
    }
}

/// Counts one event for `bucket` and fails when the window already holds `limit` of them.
async fn limit(state: &AppState, bucket: &str, limit: u32, window: Duration, what: &str) -> Result<(), AppError> {
    let count = state.cache.hit(bucket, window).await?;
    if count > limit as u64 {
        let (_, retry_after) = state.cache.peek(bucket).await?;
        return Err(rate_limited(what, retry_after));
    }
    Ok(())
}

fn link(state: &AppState, path: &str, token: &str) -> String {
    let mut url = state.config.public_url.join(path).expect("a fixed path joins onto an http URL");
    url.query_pairs_mut().append_pair("token", token);
    url.to_string()
}

async fn issue_email_token(state: &AppState, user_id: i64, purpose: &'static str, ttl: Duration) -> Result<String, AppError> {
    let token = crypto::new_token();
    let token_hash = crypto::token_hash(&token);
    let expires_at = Utc::now() + chrono::Duration::from_std(ttl).map_err(|e| anyhow::anyhow!("ttl out of range: {e}"))?;
    state.db.run(move |conn| db::email_tokens::insert(conn, user_id, purpose, &token_hash, expires_at)).await?;
    Ok(token)
}

async fn send_verification(state: &AppState, user: &User) -> Result<(), AppError> {
    let token = issue_email_token(state, user.id, "verify", state.config.accounts.verification_ttl).await?;
    let kind = MailKind::Verify {
        link: link(state, "/verify", &token),
        valid_hours: state.config.accounts.verification_ttl.as_secs().div_ceil(3600),
    };
    let language = Language::parse(&user.language).unwrap_or_default();
    state.mail.enqueue(&user.email, compose(&kind, language, &user.display_name)).await?;
    Ok(())
}

/// A validated account about to be stored.
struct Account {
    email: EmailAddress,
    display_name: DisplayName,
    student_number: Option<StudentNumber>,
    language: Language,
    role: Role,
    verified: bool,
}

/// Inserts the account; a taken address comes back as the unique violation.
async fn insert_account(db: &Db, account: Account, password_hash: String) -> Result<User, DbError> {
    db.run(move |conn| {
        db::users::insert(
            conn,
            &NewUser {
                email: account.email.as_str(),
                password_hash: &password_hash,
                display_name: account.display_name.as_str(),
                student_number: account.student_number.as_ref().map(StudentNumber::as_str),
                language: account.language.code(),
                role: account.role.as_str(),
                email_verified_at: account.verified.then(Utc::now),
            },
        )
    })
    .await
}

pub async fn sign_up(state: &AppState, form: SignUp, client: IpAddr) -> Result<(), AppError> {
    let email = EmailAddress::parse(&form.email)?;
    state.domains.check(&email)?;
    let password = NewPassword::parse(&form.password, &email)?;
    let display_name = DisplayName::parse(&form.display_name)?;
    let student_number = StudentNumber::parse_optional(&form.student_number)?;
    limit(state, &format!("signup:ip:{client}"), 20, Duration::from_secs(3600), "sign-ups from this address").await?;

    let account =
        Account { email: email.clone(), display_name, student_number, language: form.language, role: Role::Student, verified: false };
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let inserted = insert_account(&state.db, account, password_hash).await;
    match inserted {
        Ok(user) => {
            audit::record(&state.db, Event::new(actions::SIGNUP).target(Target::user(user.id)).by(Actor::user(&user))).await;
            send_verification(state, &user).await
        }
        Err(e) if e.is_unique_violation() => {
            let details = serde_json::json!({ "outcome": "address_has_account" });
            audit::record(&state.db, Event::new(actions::SIGNUP).by(Actor::address(email.as_str())).details(details)).await;
            // The address has an account: tell its owner, not the visitor, and only once an hour.
            let address = email.as_str().to_owned();
            if state.cache.hit(&format!("already:{address}"), Duration::from_secs(3600)).await? == 1 {
                if let Some(user) = state.db.run(move |conn| db::users::find_by_email(conn, &address)).await? {
                    let kind = MailKind::AlreadyRegistered {
                        login_link: state.config.public_url.join("/login").expect("fixed path").to_string(),
                        reset_link: state.config.public_url.join("/password/forgot").expect("fixed path").to_string(),
                    };
                    let language = Language::parse(&user.language).unwrap_or_default();
                    state.mail.enqueue(&user.email, compose(&kind, language, &user.display_name)).await?;
                }
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// What a verification link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Now,
    Already,
}

/// Checks a one-time token inside a transaction that locks its row: used once, then never again.
fn consume_token(conn: &mut diesel::PgConnection, purpose: &str, token: &str) -> Result<Result<i64, (AppError, Option<i64>)>, DbError> {
    let Some(found) = db::email_tokens::find_for_update(conn, purpose, &crypto::token_hash(token))? else {
        return Ok(Err((AppError::TokenInvalid, None)));
    };
    if found.used_at.is_some() {
        return Ok(Err((AppError::TokenUsed, Some(found.user_id))));
    }
    if found.expires_at < Utc::now() {
        return Ok(Err((AppError::TokenExpired, Some(found.user_id))));
    }
    db::email_tokens::mark_used(conn, found.id)?;
    Ok(Ok(found.user_id))
}

pub async fn verify_email(state: &AppState, token: &str) -> Result<Verified, AppError> {
    let token = token.trim().to_owned();
    let outcome = state
        .db
        .run(move |conn| {
            conn.transaction(|conn| match consume_token(conn, "verify", &token)? {
                Ok(user_id) => {
                    db::users::mark_verified(conn, user_id)?;
                    // Invitations sent to this address before it had an account take effect now.
                    let email = db::users::find(conn, user_id)?.map(|u| u.email).unwrap_or_default();
                    let groups = db::groups::accept_invitations(conn, &email, user_id)?;
                    db::courses::accept_invitations(conn, &email, user_id)?;
                    Ok(Ok((Verified::Now, groups, Some(Actor { id: Some(user_id), email }))))
                }
                // A link used once already, for an account that is verified, is not worth an error:
                // mail scanners often open links before the person does.
                Err((AppError::TokenUsed, Some(user_id))) => match db::users::find(conn, user_id)? {
                    Some(user) if user.email_verified_at.is_some() => Ok(Ok((Verified::Already, Vec::new(), None))),
                    _ => Ok(Err(AppError::TokenUsed)),
                },
                Err((error, _)) => Ok(Err(error)),
            })
        })
        .await?;
    let (verified, groups, verified_now) = outcome?;
    if let Some(actor) = verified_now {
        let target = Target::user(actor.id.unwrap_or_default());
        let details = serde_json::json!({ "groups_joined": groups.len() });
        audit::record(&state.db, Event::new(actions::VERIFY).target(target).by(actor).details(details)).await;
    }
    for group_id in groups {
        crate::access::publish_group(state, group_id).await?;
    }
    Ok(verified)
}

pub async fn resend_verification(state: &AppState, email: &str, client: IpAddr) -> Result<(), AppError> {
    let email = EmailAddress::parse(email)?;
    limit(state, &format!("resend:ip:{client}"), 10, Duration::from_secs(3600), "requests from this address").await?;
    let interval = state.config.accounts.resend_interval;
    let bucket = format!("resend:{}", email.as_str());
    if state.cache.hit(&bucket, interval).await? > 1 {
        let (_, retry_after) = state.cache.peek(&bucket).await?;
        return Err(AppError::RateLimited {
            message: format!(
                "a verification mail was sent less than {} ago; wait a moment before asking again",
                orchestrator::duration::format(interval)
            ),
            retry_after,
        });
    }
    limit(state, &format!("resend:hour:{}", email.as_str()), 5, Duration::from_secs(3600), "verification mails for this address").await?;
    let address = email.as_str().to_owned();
    if let Some(user) = state.db.run(move |conn| db::users::find_by_email(conn, &address)).await? {
        if user.email_verified_at.is_none() {
            send_verification(state, &user).await?;
        }
    }
    Ok(())
}

/// Checks a login and records it in the audit log, as a login or a failed one (with the reason's
/// code: `invalid_credentials`, `email_not_verified`, `rate_limited`, ...).
pub async fn log_in(state: &AppState, email: &str, password: &str, client: IpAddr) -> Result<User, AppError> {
    let outcome = check_login(state, email, password, client).await;
    match &outcome {
        Ok(user) => {
            audit::set_actor(user);
            audit::record(&state.db, Event::new(actions::LOGIN).target(Target::user(user.id)).by(Actor::user(user))).await;
        }
        Err(error) => {
            let details = serde_json::json!({ "reason": error.code() });
            audit::record(&state.db, Event::new(actions::LOGIN_FAILED).by(Actor::address(email)).details(details)).await;
        }
    }
    outcome
}

async fn check_login(state: &AppState, email: &str, password: &str, client: IpAddr) -> Result<User, AppError> {
    let accounts = &state.config.accounts;
    limit(state, &format!("login:ip:{client}"), accounts.login_max_per_ip, accounts.login_window, "login attempts from this address")
        .await?;
    let email = EmailAddress::parse(email).map_err(|_| AppError::InvalidCredentials)?;
    let account_bucket = format!("login:fail:{}", email.as_str());
    let (failures, retry_after) = state.cache.peek(&account_bucket).await?;
    if failures >= accounts.login_max_failures as u64 {
        return Err(rate_limited("failed logins for this account", retry_after));
    }
    let address = email.as_str().to_owned();
    let user = state.db.run(move |conn| db::users::find_by_email(conn, &address)).await?;
    let hash = user.as_ref().map_or_else(|| DUMMY_HASH.to_owned(), |u| u.password_hash.clone());
    let password_ok = verify_password(password.to_owned(), hash).await;
    match user {
        Some(user) if password_ok => {
            state.cache.clear(&account_bucket).await?;
            if user.email_verified_at.is_none() {
                return Err(AppError::EmailNotVerified);
            }
            Ok(user)
        }
        _ => {
            state.cache.hit(&account_bucket, accounts.login_window).await?;
            Err(AppError::InvalidCredentials)
        }
    }
}

pub async fn request_password_reset(state: &AppState, email: &str, client: IpAddr) -> Result<(), AppError> {
    let email = EmailAddress::parse(email)?;
    limit(state, &format!("reset:ip:{client}"), 10, Duration::from_secs(3600), "reset requests from this address").await?;
    limit(state, &format!("reset:{}", email.as_str()), 3, Duration::from_secs(3600), "reset requests for this account").await?;
    audit::record(&state.db, Event::new(actions::PASSWORD_RESET_REQUEST).by(Actor::address(email.as_str()))).await;
    let address = email.as_str().to_owned();
    if let Some(user) = state.db.run(move |conn| db::users::find_by_email(conn, &address)).await? {
        let ttl = state.config.accounts.reset_ttl;
        let token = issue_email_token(state, user.id, "reset", ttl).await?;
        let kind = MailKind::Reset { link: link(state, "/password/reset", &token), valid_minutes: ttl.as_secs().div_ceil(60) };
        let language = Language::parse(&user.language).unwrap_or_default();
        state.mail.enqueue(&user.email, compose(&kind, language, &user.display_name)).await?;
    }
    Ok(())
}

/// Sets a new password from a reset link. Every session of the account ends, and since the
/// link proves the mailbox, an unverified account becomes verified. A refused password leaves
/// the link unspent, so the person can try again with the same mail.
pub async fn reset_password(state: &AppState, token: &str, new_password: &str) -> Result<(), AppError> {
    let token_hash = crypto::token_hash(token.trim());
    let new_password = new_password.to_owned();
    let outcome = state
        .db
        .run(move |conn| {
            conn.transaction(|conn| {
                let Some(found) = db::email_tokens::find_for_update(conn, "reset", &token_hash)? else {
                    return Ok(Err(AppError::TokenInvalid));
                };
                if found.used_at.is_some() {
                    return Ok(Err(AppError::TokenUsed));
                }
                if found.expires_at < Utc::now() {
                    return Ok(Err(AppError::TokenExpired));
                }
                let Some(user) = db::users::find(conn, found.user_id)? else { return Ok(Err(AppError::TokenInvalid)) };
                let checked = EmailAddress::parse(&user.email).and_then(|email| NewPassword::parse(&new_password, &email));
                let password = match checked {
                    Ok(password) => password,
                    Err(e) => return Ok(Err(e.into())),
                };
                let password_hash = match hash_password_sync(password.expose()) {
                    Ok(hash) => hash,
                    Err(e) => return Ok(Err(AppError::Internal(e))),
                };
                db::users::set_password_hash(conn, user.id, &password_hash)?;
                db::users::mark_verified(conn, user.id)?;
                db::email_tokens::retire_all(conn, user.id, "reset")?;
                Ok(Ok(user))
            })
        })
        .await?;
    let user = outcome?;
    state.cache.destroy_all_sessions(user.id).await?;
    state.cache.clear(&format!("login:fail:{}", user.email)).await?;
    audit::record(&state.db, Event::new(actions::PASSWORD_RESET).target(Target::user(user.id)).by(Actor::user(&user))).await;
    Ok(())
}

/// Checks a reset link without spending it, so the page can say at once when a link is stale.
pub async fn check_reset_token(state: &AppState, token: &str) -> Result<(), AppError> {
    let token_hash = crypto::token_hash(token.trim());
    let found = state.db.run(move |conn| conn.transaction(|conn| db::email_tokens::find_for_update(conn, "reset", &token_hash))).await?;
    match found {
        None => Err(AppError::TokenInvalid),
        Some(t) if t.used_at.is_some() => Err(AppError::TokenUsed),
        Some(t) if t.expires_at < Utc::now() => Err(AppError::TokenExpired),
        Some(_) => Ok(()),
    }
}

pub async fn change_password(state: &AppState, user: &User, current: &str, new_password: &str) -> Result<(), AppError> {
    limit(state, &format!("pwchange:{}", user.id), 10, Duration::from_secs(900), "password change attempts").await?;
    if !verify_password(current.to_owned(), user.password_hash.clone()).await {
        return Err(AppError::Validation(ValidationError::new("wrong_password", "current_password", "the current password is not right")));
    }
    let email = EmailAddress::parse(&user.email)?;
    let password = NewPassword::parse(new_password, &email)?;
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let user_id = user.id;
    state.db.run(move |conn| db::users::set_password_hash(conn, user_id, &password_hash)).await?;
    state.cache.destroy_all_sessions(user.id).await?;
    audit::record(&state.db, Event::new(actions::PASSWORD_CHANGE).target(Target::user(user.id)).by(Actor::user(user))).await;
    Ok(())
}

pub struct ProfileEdit {
    pub display_name: String,
    pub student_number: String,
    pub language: String,
}

pub async fn update_profile(db: &Db, user_id: i64, edit: ProfileEdit) -> Result<User, AppError> {
    let display_name = DisplayName::parse(&edit.display_name)?;
    let student_number = StudentNumber::parse_optional(&edit.student_number)?;
    let language = Language::parse(&edit.language)?;
    Ok(db
        .run(move |conn| {
            db::users::update_profile(
                conn,
                user_id,
                display_name.as_str(),
                student_number.as_ref().map(StudentNumber::as_str),
                language.code(),
            )
        })
        .await?)
}

/// A new personal API token; the plain token is returned once and never stored.
pub async fn create_api_token(db: &Db, user_id: i64, name: &str) -> Result<(ApiToken, String), AppError> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ValidationError::new("invalid_token_name", "name", "the token name needs 1 to 100 characters").into());
    }
    let secret = format!("slw_{}", crypto::new_token());
    let token_hash = crypto::token_hash(&secret);
    let prefix = secret[..12].to_owned();
    let token = db.run(move |conn| db::api_tokens::insert(conn, user_id, &name, &token_hash, &prefix)).await?;
    let details = serde_json::json!({ "name": token.name });
    audit::record(db, Event::new(actions::TOKEN_CREATE).target(Target::token(token.id)).details(details)).await;
    Ok((token, secret))
}

/// Revokes one of the user's tokens; `false` when they have no such live token.
pub async fn revoke_api_token(db: &Db, user_id: i64, token_id: i64) -> Result<bool, AppError> {
    let revoked = db.run(move |conn| db::api_tokens::revoke(conn, user_id, token_id)).await?;
    if revoked {
        audit::record(db, Event::new(actions::TOKEN_REVOKE).target(Target::token(token_id))).await;
    }
    Ok(revoked)
}

/// The verified user behind a bearer token.
pub async fn authenticate_token(db: &Db, secret: &str) -> Result<User, AppError> {
    if !secret.starts_with("slw_") {
        return Err(AppError::Unauthorized);
    }
    let token_hash = crypto::token_hash(secret);
    let user = db.run(move |conn| db::api_tokens::authenticate(conn, &token_hash)).await?.ok_or(AppError::Unauthorized)?;
    if user.email_verified_at.is_none() {
        return Err(AppError::EmailNotVerified);
    }
    Ok(user)
}

/// An admin changes someone's role. The last admin cannot demote themself out of the platform.
pub async fn set_role(db: &Db, actor: &User, target_id: i64, role: &str) -> Result<User, AppError> {
    if actor.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    let role = Role::parse(role)?;
    let outcome = db
        .run(move |conn| {
            conn.transaction(|conn| {
                let Some(target) = db::users::find(conn, target_id)? else { return Ok(Err(AppError::NotFound("user"))) };
                if target.role == Role::Admin.as_str() && role != Role::Admin && db::users::count_admins(conn)? <= 1 {
                    return Ok(Err(AppError::Conflict {
                        code: "last_admin",
                        message: "this is the only admin; promote another admin first".to_owned(),
                    }));
                }
                let before = target.role.clone();
                Ok(db::users::set_role(conn, target_id, role.as_str())?.map(|user| (user, before)).ok_or(AppError::NotFound("user")))
            })
        })
        .await?;
    let (user, before) = outcome?;
    let details = serde_json::json!({ "email": user.email, "from": before, "to": user.role });
    audit::record(db, Event::new(actions::ROLE_CHANGE).target(Target::user(user.id)).by(Actor::user(actor)).details(details)).await;
    Ok(user)
}

/// Creates a verified account directly (the `slipway admin create-user` bootstrap); no mail, no domain rule.
pub async fn create_verified_user(db: &Db, email: &str, password: &str, display_name: &str, role: Role) -> Result<User, AppError> {
    let email = EmailAddress::parse(email)?;
    let password = NewPassword::parse(password, &email)?;
    let display_name = DisplayName::parse(display_name)?;
    let account = Account { email: email.clone(), display_name, student_number: None, language: Language::En, role, verified: true };
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let inserted = insert_account(db, account, password_hash).await;
    match inserted {
        Ok(user) => {
            let details = serde_json::json!({ "email": user.email, "role": user.role });
            audit::record(db, Event::new(actions::USER_CREATE).target(Target::user(user.id)).details(details)).await;
            Ok(user)
        }
        Err(e) if e.is_unique_violation() => {
            Err(AppError::Conflict { code: "email_taken", message: format!("an account for {email} already exists") })
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dummy_hash_is_a_valid_argon2id_hash() {
        let parsed = PasswordHash::new(DUMMY_HASH).expect("parses");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(Argon2::default().verify_password(b"anything", &parsed).is_err());
    }
}
