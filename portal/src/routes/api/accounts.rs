//! Sign-up, verification and password reset over the API.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::accounts::{self, SignUp};
use crate::domain::Language;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::client_ip;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts", web::post().to(sign_up))
        .route("/accounts/verify", web::post().to(verify))
        .route("/accounts/resend-verification", web::post().to(resend))
        .route("/password-reset", web::post().to(request_reset))
        .route("/password-reset/confirm", web::post().to(confirm_reset));
}

#[derive(Deserialize)]
struct SignUpBody {
    email: String,
    password: String,
    display_name: String,
    #[serde(default)]
    student_number: Option<String>,
    #[serde(default)]
    language: Option<String>,
}

async fn sign_up(req: HttpRequest, state: web::Data<AppState>, body: web::Json<SignUpBody>) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let language = match body.language.as_deref() {
        Some(code) => Language::parse(code)?,
        None => Language::default(),
    };
    let request = SignUp {
        email: body.email,
        password: body.password,
        display_name: body.display_name,
        student_number: body.student_number.unwrap_or_default(),
        language,
    };
    accounts::sign_up(&state, request, client_ip(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "status": "verification_sent" })))
}

#[derive(Deserialize)]
struct TokenBody {
    token: String,
}

async fn verify(state: web::Data<AppState>, body: web::Json<TokenBody>) -> Result<HttpResponse, AppError> {
    let outcome = accounts::verify_email(&state, &body.token).await?;
    let status = match outcome {
        accounts::Verified::Now => "verified",
        accounts::Verified::Already => "already_verified",
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": status })))
}

#[derive(Deserialize)]
struct EmailBody {
    email: String,
}

async fn resend(req: HttpRequest, state: web::Data<AppState>, body: web::Json<EmailBody>) -> Result<HttpResponse, AppError> {
    accounts::resend_verification(&state, &body.email, client_ip(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "status": "sent_if_unverified" })))
}

async fn request_reset(req: HttpRequest, state: web::Data<AppState>, body: web::Json<EmailBody>) -> Result<HttpResponse, AppError> {
    accounts::request_password_reset(&state, &body.email, client_ip(&req)).await?;
    Ok(HttpResponse::Accepted().json(serde_json::json!({ "status": "sent_if_registered" })))
}

#[derive(Deserialize)]
struct ResetBody {
    token: String,
    password: String,
}

async fn confirm_reset(state: web::Data<AppState>, body: web::Json<ResetBody>) -> Result<HttpResponse, AppError> {
    accounts::reset_password(&state, &body.token, &body.password).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "password_reset" })))
}
