//! Personal API tokens: created by logging in with e-mail and password (how `slipway login`
//! gets one), listed and revoked with a token.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::ApiUser;
use crate::accounts;
use crate::db;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::client_ip;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens", web::post().to(create)).route("/tokens", web::get().to(list)).route("/tokens/{id}", web::delete().to(revoke));
}

#[derive(Deserialize)]
struct CreateBody {
    email: String,
    password: String,
    name: String,
}

async fn create(req: HttpRequest, state: web::Data<AppState>, body: web::Json<CreateBody>) -> Result<HttpResponse, AppError> {
    let user = accounts::log_in(&state, &body.email, &body.password, client_ip(&req)).await?;
    let (token, secret) = accounts::create_api_token(&state.db, user.id, &body.name).await?;
    let mut json = serde_json::to_value(&token).map_err(anyhow::Error::from)?;
    json["token"] = secret.into();
    Ok(HttpResponse::Created().json(json))
}

async fn list(state: web::Data<AppState>, ApiUser(user): ApiUser) -> Result<HttpResponse, AppError> {
    let tokens = state.db.run(move |conn| db::api_tokens::list_active(conn, user.id)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "tokens": tokens })))
}

async fn revoke(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let token_id = path.into_inner();
    if !accounts::revoke_api_token(&state.db, user.id, token_id).await? {
        return Err(AppError::NotFound("token"));
    }
    Ok(HttpResponse::NoContent().finish())
}
