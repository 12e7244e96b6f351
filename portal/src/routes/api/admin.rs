//! Admin operations on users.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{user_json, ApiUser};
use crate::accounts;
use crate::db;
use crate::domain::Role;
use crate::error::AppError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(list)).route("/admin/users/{id}", web::patch().to(update));
}

async fn list(state: web::Data<AppState>, ApiUser(user): ApiUser) -> Result<HttpResponse, AppError> {
    if user.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    let users = state.db.run(|conn| db::users::list(conn, 10_000)).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "users": users.iter().map(user_json).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
struct UpdateBody {
    role: String,
}

async fn update(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, AppError> {
    let updated = accounts::set_role(&state.db, &user, path.into_inner(), &body.role).await?;
    Ok(HttpResponse::Ok().json(user_json(&updated)))
}
