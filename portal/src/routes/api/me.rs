//! The caller's own account.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{user_json, ApiUser};
use crate::accounts::{self, ProfileEdit};
use crate::error::AppError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(show))
        .route("/me", web::patch().to(update))
        .route("/me/password", web::post().to(change_password))
        .route("/me/logout-everywhere", web::post().to(logout_everywhere));
}

async fn show(ApiUser(user): ApiUser) -> HttpResponse {
    HttpResponse::Ok().json(user_json(&user))
}

/// Fields left out keep their value; `student_number: ""` clears it.
#[derive(Deserialize)]
struct UpdateBody {
    display_name: Option<String>,
    student_number: Option<String>,
    language: Option<String>,
}

async fn update(state: web::Data<AppState>, ApiUser(user): ApiUser, body: web::Json<UpdateBody>) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let edit = ProfileEdit {
        display_name: body.display_name.unwrap_or(user.display_name),
        student_number: body.student_number.or(user.student_number).unwrap_or_default(),
        language: body.language.unwrap_or(user.language),
    };
    let updated = accounts::update_profile(&state.db, user.id, edit).await?;
    Ok(HttpResponse::Ok().json(user_json(&updated)))
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: String,
    new_password: String,
}

async fn change_password(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, AppError> {
    accounts::change_password(&state, &user, &body.current_password, &body.new_password).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn logout_everywhere(state: web::Data<AppState>, ApiUser(user): ApiUser) -> Result<HttpResponse, AppError> {
    let n_sessions = state.cache.destroy_all_sessions(user.id).await?;
    let event = crate::audit::Event::new(crate::domain::audit::actions::LOGOUT_EVERYWHERE)
        .details(serde_json::json!({ "sessions_ended": n_sessions }));
    crate::audit::record(&state.db, event).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "sessions_ended": n_sessions })))
}
