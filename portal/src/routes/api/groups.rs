//! Groups over the API: create, list, show (members, invitations, projects), invite by e-mail,
//! change a role (inviting again), remove a member or invitation, leave, transfer ownership.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::ApiUser;
use crate::error::AppError;
use crate::groups;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(list))
        .route("/groups", web::post().to(create))
        .route("/groups/{group}", web::get().to(show))
        .route("/groups/{group}/members", web::post().to(invite))
        .route("/groups/{group}/members/{email}", web::delete().to(remove))
        .route("/groups/{group}/leave", web::post().to(leave))
        .route("/groups/{group}/transfer", web::post().to(transfer));
}

async fn list(state: web::Data<AppState>, ApiUser(user): ApiUser) -> Result<HttpResponse, AppError> {
    let groups = groups::list(&state, &user).await?;
    let groups: Vec<_> =
        groups.iter().map(|(g, role)| serde_json::json!({"name": g.name, "role": role, "created_at": g.created_at})).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "groups": groups })))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
}

async fn create(state: web::Data<AppState>, ApiUser(user): ApiUser, body: web::Json<CreateBody>) -> Result<HttpResponse, AppError> {
    let group = groups::create(&state, &user, &body.name).await?;
    Ok(HttpResponse::Created().json(groups::view(&state, &user, &group.name).await?))
}

async fn show(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(groups::view(&state, &user, &path).await?))
}

#[derive(Deserialize)]
struct InviteBody {
    email: String,
    #[serde(default = "viewer")]
    role: String,
}

fn viewer() -> String {
    "viewer".to_owned()
}

async fn invite(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<InviteBody>,
) -> Result<HttpResponse, AppError> {
    let role = crate::projects::parse_role(&body.role)?;
    Ok(HttpResponse::Ok().json(groups::invite(&state, &user, &path, &body.email, role).await?))
}

async fn remove(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (group, email) = path.into_inner();
    groups::remove(&state, &user, &group, &email).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn leave(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    groups::leave(&state, &user, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
struct TransferBody {
    email: String,
}

async fn transfer(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<TransferBody>,
) -> Result<HttpResponse, AppError> {
    groups::transfer(&state, &user, &path, &body.email).await?;
    Ok(HttpResponse::Ok().json(groups::view(&state, &user, &path).await?))
}
