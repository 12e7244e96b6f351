//! Request plumbing shared by the pages: cookies, the logged-in viewer, CSRF, language and the
//! page context every template receives.
//!
//! Cookies are host-only (no `Domain` attribute), so the portal's session never reaches the apps'
//! domain. CSRF uses the double-submit pattern: a random token in an HttpOnly, SameSite=Strict
//! cookie must equal the `csrf_token` field of every form POST.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;

use actix_web::body::MessageBody;
use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest, HttpResponse, ResponseError};

use crate::crypto;
use crate::db::{self, models::User};
use crate::domain::{Language, Role};
use crate::error::AppError;
use crate::i18n::Tr;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "slipway_session";
pub const CSRF_COOKIE: &str = "slipway_csrf";
pub const LANG_COOKIE: &str = "slipway_lang";
pub const FLASH_COOKIE: &str = "slipway_flash";

pub fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr().map(|a| a.ip()).unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn base_cookie<'c>(name: &'c str, value: String, secure: bool) -> Cookie<'c> {
    Cookie::build(name, value).path("/").http_only(true).secure(secure).same_site(SameSite::Lax).finish()
}

pub fn session_cookie(token: String, state: &AppState) -> Cookie<'static> {
    let mut cookie = base_cookie(SESSION_COOKIE, token, state.config.secure_cookies);
    cookie.set_max_age(CookieDuration::seconds(state.config.accounts.session_ttl.as_secs() as i64));
    cookie
}

pub fn removal_cookie(name: &'static str) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, "").path("/").finish();
    cookie.make_removal();
    cookie
}

pub fn flash_cookie(key: &str, state: &AppState) -> Cookie<'static> {
    let mut cookie = base_cookie(FLASH_COOKIE, key.to_owned(), state.config.secure_cookies);
    cookie.set_max_age(CookieDuration::seconds(60));
    cookie
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header(("Location", location)).finish()
}

/// A local path to return to after login; anything that could leave the portal becomes `/dashboard`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.contains("://")
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/dashboard".to_owned(),
    }
}

/// The CSRF token of this request, put in place by `csrf_cookie`.
#[derive(Clone)]
pub struct CsrfToken(pub String);

/// Middleware for the pages: gives every visitor a CSRF cookie.
pub async fn csrf_cookie(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let existing = req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned()).filter(|v| v.len() == 43);
    let secure = req.app_data::<web::Data<AppState>>().is_some_and(|s| s.config.secure_cookies);
    let (token, fresh) = match existing {
        Some(token) => (token, false),
        None => (crypto::new_token(), true),
    };
    req.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.call(req).await?;
    if fresh {
        let mut cookie = base_cookie(CSRF_COOKIE, token, secure);
        cookie.set_same_site(SameSite::Strict);
        response.response_mut().add_cookie(&cookie).map_err(actix_web::error::ErrorInternalServerError)?;
    }
    Ok(response)
}

pub fn check_csrf(req: &HttpRequest, submitted: &str) -> Result<(), AppError> {
    let expected = req.cookie(CSRF_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    if expected.is_empty() || !crypto::constant_time_eq(&expected, submitted) {
        return Err(AppError::CsrfFailed);
    }
    Ok(())
}

/// Who is looking: the logged-in user, if any, and their session token.
pub struct Viewer {
    pub user: Option<User>,
    pub session_token: Option<String>,
    /// Redis could not be asked; pages still render for anonymous visitors, writes fail clearly.
    pub session_store_down: bool,
}

impl FromRequest for Viewer {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned()).filter(|v| !v.is_empty());
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.expect("AppState is registered on the app");
            let Some(token) = token else { return Ok(Viewer { user: None, session_token: None, session_store_down: false }) };
            let record = match state.cache.session(&token).await {
                Ok(record) => record,
                Err(e) => {
                    tracing::warn!("{e}");
                    return Ok(Viewer { user: None, session_token: None, session_store_down: true });
                }
            };
            let Some(record) = record else { return Ok(Viewer { user: None, session_token: None, session_store_down: false }) };
            let user = state.db.run(move |conn| db::users::find(conn, record.user_id)).await.map_err(AppError::from)?;
            let user = user.filter(|u| u.email_verified_at.is_some());
            if let Some(user) = &user {
                crate::audit::set_actor(user);
            }
            Ok(Viewer { session_token: user.as_ref().map(|_| token), user, session_store_down: false })
        })
    }
}

/// What the base layout shows of the logged-in user.
#[derive(Debug, Clone)]
pub struct UserView {
    pub id: i64,
    pub display_name: String,
    pub email: String,
    pub role: String,
    pub is_admin: bool,
}

/// Everything the base layout needs.
pub struct PageCtx {
    pub language: Language,
    pub tr: Tr,
    pub csrf: String,
    pub user: Option<UserView>,
    pub flash: Option<String>,
    /// The current path and query, for "return here" links.
    pub path: String,
    had_flash: bool,
}

impl PageCtx {
    pub fn new(req: &HttpRequest, viewer: &Viewer) -> Self {
        let from_cookie = req.cookie(LANG_COOKIE).and_then(|c| Language::parse(c.value()).ok());
        let from_user = viewer.user.as_ref().and_then(|u| Language::parse(&u.language).ok());
        let from_header =
            || Language::from_accept_language(req.headers().get("Accept-Language").and_then(|v| v.to_str().ok()).unwrap_or(""));
        let language = from_cookie.or(from_user).unwrap_or_else(from_header);
        let tr = Tr::new(language);
        let csrf = req.extensions().get::<CsrfToken>().map(|t| t.0.clone()).unwrap_or_default();
        let flash_key = req.cookie(FLASH_COOKIE).map(|c| c.value().to_owned());
        let flash = flash_key.as_deref().filter(|k| k.starts_with("flash.")).map(|k| tr.t(k).to_owned());
        let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
        let user = viewer.user.as_ref().map(|u| UserView {
            id: u.id,
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            role: u.role.clone(),
            is_admin: u.role == Role::Admin.as_str(),
        });
        Self { language, tr, csrf, user, flash, path, had_flash: flash_key.is_some() }
    }

    pub fn t<'a>(&self, key: &'a str) -> &'a str {
        self.tr.t(key)
    }

    /// A string with one placeholder filled, for templates.
    pub fn fill1(&self, key: &str, name: &str, value: &str) -> String {
        self.tr.fill(key, &[(name, value)])
    }

    /// The translated name of an app or revision state (`running`, `failed`, ...).
    pub fn state_label(&self, state: &str) -> String {
        let key = format!("state.{state}");
        let text = self.tr.t(&key);
        if text == key {
            state.to_owned()
        } else {
            text.to_owned()
        }
    }

    /// The translated name of a role (`student`, `professor`, `admin`).
    /// The translation of `PREFIX.VALUE` (a group role, a visibility level), or `value` itself
    /// when there is none.
    pub fn label(&self, prefix: &str, value: &str) -> String {
        let key = format!("{prefix}.{value}");
        let text = self.tr.t(&key);
        if text == key {
            value.to_owned()
        } else {
            text.to_owned()
        }
    }

    pub fn role_label(&self, role: &str) -> &'static str {
        match role {
            "admin" => self.tr.t("role.admin"),
            "professor" => self.tr.t("role.professor"),
            _ => self.tr.t("role.student"),
        }
    }

    pub fn lang(&self) -> &'static str {
        self.language.code()
    }

    pub fn render(&self, status: StatusCode, template: &impl askama::Template) -> HttpResponse {
        match template.render() {
            Ok(html) => {
                let mut response = HttpResponse::build(status);
                response.content_type("text/html; charset=utf-8").insert_header(("Cache-Control", "no-store"));
                if self.had_flash {
                    response.cookie(removal_cookie(FLASH_COOKIE));
                }
                response.body(html)
            }
            Err(e) => {
                tracing::error!("template failed to render: {e}");
                HttpResponse::InternalServerError().body("template error")
            }
        }
    }

    /// Renders a form again after `error`, with the error's status and `Retry-After` where it has one.
    pub fn render_error(&self, error: &AppError, template: &impl askama::Template) -> HttpResponse {
        let mut response = self.render(error.status_code(), template);
        let retry_after = match error {
            AppError::RateLimited { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            AppError::Unavailable(_) => Some(5),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, actix_web::http::header::HeaderValue::from(seconds));
        }
        response
    }

    pub fn ok(&self, template: &impl askama::Template) -> HttpResponse {
        self.render(StatusCode::OK, template)
    }

    /// The message of an error in this page's language: `error.<code>` from the locale file with
    /// the error's values filled in, or the error's own English message where no entry exists.
    pub fn error_message(&self, error: &AppError) -> String {
        let key = format!("error.{}", error.code());
        if self.tr.t(&key) == key {
            return error.public_message();
        }
        // A refused upload's own message names the entry or the missing file: keep it, in English
        // where no better words exist, behind the translated sentence.
        if let AppError::Rejected { message, .. } = error {
            return if self.language == Language::En { message.clone() } else { format!("{} ({message})", self.tr.t(&key)) };
        }
        let args: Vec<(&str, String)> = match error {
            AppError::Validation(e) => e.args.clone(),
            AppError::RateLimited { retry_after, .. } => vec![("minutes", retry_after.as_secs().div_ceil(60).max(1).to_string())],
            _ => Vec::new(),
        };
        let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.tr.fill(&key, &args)
    }

    /// An error page for failures a form cannot show inline.
    pub fn error_page(&self, error: AppError) -> PageError {
        let status = error.status_code();
        if status.is_server_error() {
            // Log the cause chain through the error's own mapping, which does so for 5xx only.
            let _ = error.error_response();
        }
        let template = crate::routes::pages::MessagePage {
            page: self,
            title: self.t("error.title"),
            message: self.error_message(&error),
            link: Some(("/", self.t("nav.home"))),
        };
        let html = askama::Template::render(&template).unwrap_or_else(|e| format!("error {status}: {e}"));
        PageError { status, html, location: None }
    }
}

/// A page-level failure: an error page in the viewer's language, or a redirect (to log in).
pub struct PageError {
    status: StatusCode,
    html: String,
    location: Option<String>,
}

impl PageError {
    pub fn redirect(location: String) -> Self {
        Self { status: StatusCode::SEE_OTHER, html: String::new(), location: Some(location) }
    }
}

impl std::fmt::Debug for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageError({})", self.status)
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "page error {}", self.status)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(location) = &self.location {
            return response.insert_header(("Location", location.as_str())).finish();
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.insert_header(("Retry-After", "5"));
        }
        response.content_type("text/html; charset=utf-8").insert_header(("Cache-Control", "no-store")).body(self.html.clone())
    }
}

pub type PageResult = Result<HttpResponse, PageError>;

impl Viewer {
    /// The logged-in user, or a redirect to the login page that comes back here.
    /// `require` for a form post: the logged-in user, whose form carries the right CSRF token
    /// (checked after the login, so a visitor who is not logged in is sent to log in first).
    pub fn require_form(&self, ctx: &PageCtx, req: &HttpRequest, csrf_token: &str) -> Result<&User, PageError> {
        let user = self.require(ctx)?;
        check_csrf(req, csrf_token).map_err(|e| ctx.error_page(e))?;
        Ok(user)
    }

    pub fn require(&self, ctx: &PageCtx) -> Result<&User, PageError> {
        match &self.user {
            Some(user) => Ok(user),
            None if self.session_store_down => {
                Err(ctx.error_page(AppError::Unavailable("the session store is unavailable; try again in a moment".to_owned())))
            }
            None => {
                let next: String = url::form_urlencoded::byte_serialize(ctx.path.as_bytes()).collect();
                Err(PageError::redirect(format!("/login?next={next}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_paths_never_leave_the_portal() {
        assert_eq!(safe_next(Some("/profile?tab=1")), "/profile?tab=1");
        for hostile in ["//evil.example", "https://evil.example", "/\\evil.example", "evil", "/x\r\nSet-Cookie: a=b"] {
            assert_eq!(safe_next(Some(hostile)), "/dashboard", "{hostile}");
        }
        assert_eq!(safe_next(None), "/dashboard");
    }
}
