//! A project's custom domains over the API: list, add, verify, remove (`custom_domains`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::ApiUser;
use crate::custom_domains;
use crate::error::AppError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects/{name}/domains", web::get().to(list))
        .route("/projects/{name}/domains", web::post().to(add))
        .route("/projects/{name}/domains/{domain}", web::delete().to(remove))
        .route("/projects/{name}/domains/{domain}/verify", web::post().to(verify));
}

#[derive(Deserialize)]
struct AddBody {
    domain: String,
}

async fn list(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(custom_domains::list(&state, &user, &path).await?))
}

async fn add(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<AddBody>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Created().json(custom_domains::add(&state, &user, &path, &body.domain).await?))
}

async fn verify(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (name, domain) = path.into_inner();
    Ok(HttpResponse::Ok().json(custom_domains::verify(&state, &user, &name, &domain).await?))
}

async fn remove(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<(String, String)>) -> Result<HttpResponse, AppError> {
    let (name, domain) = path.into_inner();
    custom_domains::remove(&state, &user, &name, &domain).await?;
    Ok(HttpResponse::NoContent().finish())
}
