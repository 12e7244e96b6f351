//! Sign-up, verification, login and logout, password reset.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::MessagePage;
use crate::accounts::{self, SignUp, Verified};
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{
    check_csrf, client_ip, flash_cookie, removal_cookie, safe_next, see_other, session_cookie, PageCtx, PageError, PageResult, Viewer,
    CSRF_COOKIE, SESSION_COOKIE,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/signup", web::get().to(signup_form))
        .route("/signup", web::post().to(signup))
        .route("/verify", web::get().to(verify))
        .route("/verify/resend", web::get().to(resend_form))
        .route("/verify/resend", web::post().to(resend))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/logout/everywhere", web::post().to(logout_everywhere))
        .route("/password/forgot", web::get().to(forgot_form))
        .route("/password/forgot", web::post().to(forgot))
        .route("/password/reset", web::get().to(reset_form))
        .route("/password/reset", web::post().to(reset));
}

fn message(ctx: &PageCtx, status: StatusCode, title_key: &str, message: String, link: Option<(&str, &str)>) -> HttpResponse {
    ctx.render(status, &MessagePage { page: ctx, title: ctx.t(title_key), message, link })
}

fn message_for_error(ctx: &PageCtx, error: &AppError, title_key: &str, message: String, link: Option<(&str, &str)>) -> HttpResponse {
    ctx.render_error(error, &MessagePage { page: ctx, title: ctx.t(title_key), message, link })
}

#[derive(Template)]
#[template(path = "signup.html")]
struct SignupPage<'a> {
    page: &'a PageCtx,
    email: &'a str,
    display_name: &'a str,
    student_number: &'a str,
    domains: String,
    error: Option<String>,
    error_field: &'a str,
}

#[derive(Deserialize)]
struct SignupForm {
    csrf_token: String,
    email: String,
    password: String,
    display_name: String,
    #[serde(default)]
    student_number: String,
}

async fn signup_form(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    ctx.ok(&SignupPage {
        page: &ctx,
        email: "",
        display_name: "",
        student_number: "",
        domains: state.domains.domains().join(", "),
        error: None,
        error_field: "",
    })
}

async fn signup(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<SignupForm>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => {
            let request = SignUp {
                email: form.email.clone(),
                password: form.password.clone(),
                display_name: form.display_name.clone(),
                student_number: form.student_number.clone(),
                language: ctx.language,
            };
            accounts::sign_up(&state, request, client_ip(&req)).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            message(&ctx, StatusCode::OK, "signup.sent_title", ctx.tr.fill("signup.sent_body", &[("email", form.email.trim())]), None)
        }
        Err(error) => {
            let page = SignupPage {
                page: &ctx,
                email: &form.email,
                display_name: &form.display_name,
                student_number: &form.student_number,
                domains: state.domains.domains().join(", "),
                error: Some(ctx.error_message(&error)),
                error_field: error.field().unwrap_or(""),
            };
            ctx.render_error(&error, &page)
        }
    }
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Opening the mailed link verifies at once: the link itself proves the mailbox.
async fn verify(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<TokenQuery>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let token = query.token.clone().unwrap_or_default();
    match accounts::verify_email(&state, &token).await {
        Ok(Verified::Now) => {
            message(&ctx, StatusCode::OK, "verify.done_title", ctx.t("verify.done_body").to_owned(), Some(("/login", ctx.t("nav.login"))))
        }
        Ok(Verified::Already) => message(
            &ctx,
            StatusCode::OK,
            "verify.done_title",
            ctx.t("verify.already_body").to_owned(),
            Some(("/login", ctx.t("nav.login"))),
        ),
        Err(error) => message_for_error(
            &ctx,
            &error,
            "verify.failed_title",
            ctx.error_message(&error),
            Some(("/verify/resend", ctx.t("verify.resend_link"))),
        ),
    }
}

#[derive(Template)]
#[template(path = "resend.html")]
struct ResendPage<'a> {
    page: &'a PageCtx,
    email: &'a str,
    error: Option<String>,
}

#[derive(Deserialize)]
struct EmailForm {
    csrf_token: String,
    email: String,
}

async fn resend_form(req: HttpRequest, viewer: Viewer) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    ctx.ok(&ResendPage { page: &ctx, email: "", error: None })
}

async fn resend(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<EmailForm>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => accounts::resend_verification(&state, &form.email, client_ip(&req)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            message(&ctx, StatusCode::OK, "resend.sent_title", ctx.tr.fill("resend.sent_body", &[("email", form.email.trim())]), None)
        }
        Err(error) => ctx.render_error(&error, &ResendPage { page: &ctx, email: &form.email, error: Some(ctx.error_message(&error)) }),
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    page: &'a PageCtx,
    email: &'a str,
    next: &'a str,
    error: Option<String>,
    unverified: bool,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    csrf_token: String,
    email: String,
    password: String,
    next: Option<String>,
}

async fn login_form(req: HttpRequest, viewer: Viewer, query: web::Query<NextQuery>) -> HttpResponse {
    let next = safe_next(query.next.as_deref());
    if viewer.user.is_some() {
        return see_other(&next);
    }
    let ctx = PageCtx::new(&req, &viewer);
    ctx.ok(&LoginPage { page: &ctx, email: "", next: &next, error: None, unverified: false })
}

/// Logs in with a fresh session id (any session this browser had is ended first) and a fresh CSRF token.
async fn login(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<LoginForm>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let next = safe_next(form.next.as_deref());
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => accounts::log_in(&state, &form.email, &form.password, client_ip(&req)).await,
        Err(e) => Err(e),
    };
    let started = match result {
        Ok(user) => {
            if let Some(old) = req.cookie(SESSION_COOKIE) {
                if let Err(e) = state.cache.destroy_session(old.value()).await {
                    tracing::warn!("could not end the previous session: {e}");
                }
            }
            state
                .cache
                .create_session(user.id, state.config.accounts.session_ttl, chrono::Utc::now().timestamp())
                .await
                .map_err(AppError::from)
                .map(|token| (user, token))
        }
        Err(e) => Err(e),
    };
    match started {
        Ok((user, token)) => {
            let mut response = see_other(&next);
            let lang = actix_web::cookie::Cookie::build(crate::web::LANG_COOKIE, user.language.clone())
                .path("/")
                .same_site(actix_web::cookie::SameSite::Lax)
                .secure(state.config.secure_cookies)
                .max_age(actix_web::cookie::time::Duration::days(365))
                .finish();
            for cookie in [session_cookie(token, &state), removal_cookie(CSRF_COOKIE), lang] {
                if let Err(e) = response.add_cookie(&cookie) {
                    tracing::error!("cannot set cookie: {e}");
                }
            }
            response
        }
        Err(error) => {
            let unverified = matches!(error, AppError::EmailNotVerified);
            ctx.render_error(
                &error,
                &LoginPage { page: &ctx, email: &form.email, next: &next, error: Some(ctx.error_message(&error)), unverified },
            )
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

async fn logout(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<CsrfOnly>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    check_csrf(&req, &form.csrf_token).map_err(|e| ctx.error_page(e))?;
    if let Some(token) = &viewer.session_token {
        state.cache.destroy_session(token).await.map_err(|e| ctx.error_page(e.into()))?;
        crate::audit::record(&state.db, crate::audit::Event::new(crate::domain::audit::actions::LOGOUT)).await;
    }
    Ok(signed_out(&state, "flash.logged_out"))
}

async fn logout_everywhere(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<CsrfOnly>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    check_csrf(&req, &form.csrf_token).map_err(|e| ctx.error_page(e))?;
    let user = viewer.require(&ctx)?;
    state.cache.destroy_all_sessions(user.id).await.map_err(|e| ctx.error_page(e.into()))?;
    crate::audit::record(&state.db, crate::audit::Event::new(crate::domain::audit::actions::LOGOUT_EVERYWHERE)).await;
    Ok(signed_out(&state, "flash.logged_out_everywhere"))
}

fn signed_out(state: &AppState, flash: &str) -> HttpResponse {
    let mut response = see_other("/login");
    for cookie in [removal_cookie(SESSION_COOKIE), flash_cookie(flash, state)] {
        if let Err(e) = response.add_cookie(&cookie) {
            tracing::error!("cannot set cookie: {e}");
        }
    }
    response
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotPage<'a> {
    page: &'a PageCtx,
    email: &'a str,
    error: Option<String>,
}

async fn forgot_form(req: HttpRequest, viewer: Viewer) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    ctx.ok(&ForgotPage { page: &ctx, email: "", error: None })
}

async fn forgot(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<EmailForm>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => accounts::request_password_reset(&state, &form.email, client_ip(&req)).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            message(&ctx, StatusCode::OK, "forgot.sent_title", ctx.tr.fill("forgot.sent_body", &[("email", form.email.trim())]), None)
        }
        Err(error) => ctx.render_error(&error, &ForgotPage { page: &ctx, email: &form.email, error: Some(ctx.error_message(&error)) }),
    }
}

#[derive(Template)]
#[template(path = "reset.html")]
struct ResetPage<'a> {
    page: &'a PageCtx,
    token: &'a str,
    error: Option<String>,
}

async fn reset_form(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<TokenQuery>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let token = query.token.clone().unwrap_or_default();
    match accounts::check_reset_token(&state, &token).await {
        Ok(()) => ctx.ok(&ResetPage { page: &ctx, token: &token, error: None }),
        Err(error) => message_for_error(
            &ctx,
            &error,
            "reset.failed_title",
            ctx.error_message(&error),
            Some(("/password/forgot", ctx.t("reset.again_link"))),
        ),
    }
}

#[derive(Deserialize)]
struct ResetForm {
    csrf_token: String,
    token: String,
    password: String,
    password_confirm: String,
}

async fn reset(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    form: web::Form<ResetForm>,
) -> Result<HttpResponse, PageError> {
    let ctx = PageCtx::new(&req, &viewer);
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) if form.password != form.password_confirm => Err(passwords_differ()),
        Ok(()) => accounts::reset_password(&state, &form.token, &form.password).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            let mut response = see_other("/login");
            response
                .add_cookie(&flash_cookie("flash.password_reset", &state))
                .map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
            Ok(response)
        }
        Err(error @ (AppError::TokenExpired | AppError::TokenUsed | AppError::TokenInvalid)) => Ok(message_for_error(
            &ctx,
            &error,
            "reset.failed_title",
            ctx.error_message(&error),
            Some(("/password/forgot", ctx.t("reset.again_link"))),
        )),
        Err(error) => Ok(ctx.render_error(&error, &ResetPage { page: &ctx, token: &form.token, error: Some(ctx.error_message(&error)) })),
    }
}

pub(super) fn passwords_differ() -> AppError {
    AppError::Validation(crate::domain::ValidationError::new("passwords_differ", "password_confirm", "the two passwords differ"))
}
