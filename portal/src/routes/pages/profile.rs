//! The profile (name, student number, language, password) and personal API tokens.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use serde::Deserialize;

use super::accounts::passwords_differ;
use crate::accounts::{self, ProfileEdit};
use crate::db::{self, models::ApiToken};
use crate::domain::Language;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{check_csrf, flash_cookie, see_other, session_cookie, PageCtx, PageResult, Viewer, LANG_COOKIE};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/profile", web::get().to(profile_form))
        .route("/profile", web::post().to(save_profile))
        .route("/profile/password", web::post().to(change_password))
        .route("/tokens", web::get().to(tokens))
        .route("/tokens", web::post().to(create_token))
        .route("/tokens/{id}/revoke", web::post().to(revoke_token));
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage<'a> {
    page: &'a PageCtx,
    email: &'a str,
    role: &'a str,
    display_name: &'a str,
    student_number: &'a str,
    language: &'a str,
    languages: [(&'static str, &'static str); 2],
    error: Option<String>,
    password_error: Option<String>,
}

const LANGUAGES: [(&str, &str); 2] = [("en", "English"), ("ko", "한국어")];

async fn profile_form(req: HttpRequest, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    Ok(ctx.ok(&ProfilePage {
        page: &ctx,
        email: &user.email,
        role: &user.role,
        display_name: &user.display_name,
        student_number: user.student_number.as_deref().unwrap_or(""),
        language: &user.language,
        languages: LANGUAGES,
        error: None,
        password_error: None,
    }))
}

#[derive(Deserialize)]
struct ProfileForm {
    csrf_token: String,
    display_name: String,
    #[serde(default)]
    student_number: String,
    language: String,
}

async fn save_profile(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<ProfileForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => {
            accounts::update_profile(
                &state.db,
                user.id,
                ProfileEdit {
                    display_name: form.display_name.clone(),
                    student_number: form.student_number.clone(),
                    language: form.language.clone(),
                },
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(updated) => {
            let mut response = see_other("/profile");
            let lang = actix_web::cookie::Cookie::build(LANG_COOKIE, updated.language.clone())
                .path("/")
                .same_site(actix_web::cookie::SameSite::Lax)
                .secure(state.config.secure_cookies)
                .max_age(actix_web::cookie::time::Duration::days(365))
                .finish();
            for cookie in [flash_cookie("flash.profile_saved", &state), lang] {
                response.add_cookie(&cookie).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
            }
            Ok(response)
        }
        Err(error) => Ok(ctx.render_error(
            &error,
            &ProfilePage {
                page: &ctx,
                email: &user.email,
                role: &user.role,
                display_name: &form.display_name,
                student_number: &form.student_number,
                language: Language::parse(&form.language).map(Language::code).unwrap_or("en"),
                languages: LANGUAGES,
                error: Some(ctx.error_message(&error)),
                password_error: None,
            },
        )),
    }
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf_token: String,
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// Changing the password ends every session, then starts a new one for this browser only.
async fn change_password(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<PasswordForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) if form.new_password != form.new_password_confirm => Err(passwords_differ()),
        Ok(()) => accounts::change_password(&state, user, &form.current_password, &form.new_password).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            let token = state
                .cache
                .create_session(user.id, state.config.accounts.session_ttl, chrono::Utc::now().timestamp())
                .await
                .map_err(|e| ctx.error_page(e.into()))?;
            let mut response = see_other("/profile");
            for cookie in [session_cookie(token, &state), flash_cookie("flash.password_changed", &state)] {
                response.add_cookie(&cookie).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
            }
            Ok(response)
        }
        Err(error) => Ok(ctx.render_error(
            &error,
            &ProfilePage {
                page: &ctx,
                email: &user.email,
                role: &user.role,
                display_name: &user.display_name,
                student_number: user.student_number.as_deref().unwrap_or(""),
                language: &user.language,
                languages: LANGUAGES,
                error: None,
                password_error: Some(ctx.error_message(&error)),
            },
        )),
    }
}

#[derive(Template)]
#[template(path = "tokens.html")]
struct TokensPage<'a> {
    page: &'a PageCtx,
    tokens: Vec<ApiToken>,
    new_token: Option<String>,
    error: Option<String>,
}

async fn tokens_page(
    ctx: &PageCtx,
    state: &AppState,
    user_id: i64,
    status: StatusCode,
    new_token: Option<String>,
    error: Option<String>,
) -> PageResult {
    let tokens = state.db.run(move |conn| db::api_tokens::list_active(conn, user_id)).await.map_err(|e| ctx.error_page(e.into()))?;
    Ok(ctx.render(status, &TokensPage { page: ctx, tokens, new_token, error }))
}

async fn tokens(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    tokens_page(&ctx, &state, user.id, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
struct TokenForm {
    csrf_token: String,
    name: String,
}

async fn create_token(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<TokenForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match accounts::create_api_token(&state.db, user.id, &form.name).await {
        Ok((_, secret)) => tokens_page(&ctx, &state, user.id, StatusCode::OK, Some(secret), None).await,
        Err(error) => tokens_page(&ctx, &state, user.id, error.status_code(), None, Some(ctx.error_message(&error))).await,
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

async fn revoke_token(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let (user_id, token_id) = (user.id, path.into_inner());
    let revoked = accounts::revoke_api_token(&state.db, user_id, token_id).await.map_err(|e| ctx.error_page(e))?;
    if !revoked {
        return Err(ctx.error_page(AppError::NotFound("token")));
    }
    let mut response: HttpResponse = see_other("/tokens");
    response.add_cookie(&flash_cookie("flash.token_revoked", &state)).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(response)
}
