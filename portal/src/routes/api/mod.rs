//! The JSON API under `/api/v1`, authenticated by personal API tokens
//! (`Authorization: Bearer slw_...`). Cookies are ignored here, so the API needs no CSRF token.
//! Errors are `AppError` JSON bodies with a stable `code`. The OpenAPI document lists every route;
//! a test keeps the two in step.

mod accounts;
mod admin;
pub mod courses;
mod domains;
mod groups;
mod me;
pub mod projects;
mod tokens;

use std::future::Future;
use std::pin::Pin;

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::db::models::User;
use crate::error::AppError;
use crate::state::AppState;

/// Every API route as (method, path template), in the OpenAPI document's spelling.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/accounts"),
    ("post", "/api/v1/accounts/verify"),
    ("post", "/api/v1/accounts/resend-verification"),
    ("post", "/api/v1/password-reset"),
    ("post", "/api/v1/password-reset/confirm"),
    ("post", "/api/v1/tokens"),
    ("get", "/api/v1/tokens"),
    ("delete", "/api/v1/tokens/{id}"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("post", "/api/v1/me/password"),
    ("post", "/api/v1/me/logout-everywhere"),
    ("get", "/api/v1/admin/users"),
    ("patch", "/api/v1/admin/users/{id}"),
    ("put", "/api/v1/admin/users/{id}/quota"),
    ("put", "/api/v1/admin/groups/{group}/quota"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/api/v1/admin/audit/export"),
    ("get", "/api/v1/admin/monitor"),
    ("get", "/api/v1/groups"),
    ("post", "/api/v1/groups"),
    ("get", "/api/v1/groups/{group}"),
    ("post", "/api/v1/groups/{group}/members"),
    ("delete", "/api/v1/groups/{group}/members/{email}"),
    ("post", "/api/v1/groups/{group}/leave"),
    ("post", "/api/v1/groups/{group}/transfer"),
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/availability"),
    ("get", "/api/v1/projects/{name}"),
    ("patch", "/api/v1/projects/{name}"),
    ("delete", "/api/v1/projects/{name}"),
    ("get", "/api/v1/projects/{name}/env"),
    ("put", "/api/v1/projects/{name}/env/{key}"),
    ("delete", "/api/v1/projects/{name}/env/{key}"),
    ("post", "/api/v1/projects/{name}/deployments"),
    ("get", "/api/v1/projects/{name}/revisions"),
    ("get", "/api/v1/projects/{name}/revisions/{number}/log"),
    ("get", "/api/v1/projects/{name}/status"),
    ("get", "/api/v1/projects/{name}/logs"),
    ("post", "/api/v1/projects/{name}/rollback"),
    ("post", "/api/v1/projects/{name}/sleep"),
    ("get", "/api/v1/projects/{name}/scaling"),
    ("patch", "/api/v1/projects/{name}/scaling"),
    ("get", "/api/v1/projects/{name}/metrics"),
    ("get", "/api/v1/projects/{name}/domains"),
    ("post", "/api/v1/projects/{name}/domains"),
    ("delete", "/api/v1/projects/{name}/domains/{domain}"),
    ("post", "/api/v1/projects/{name}/domains/{domain}/verify"),
    ("get", "/api/v1/courses"),
    ("post", "/api/v1/courses"),
    ("get", "/api/v1/courses/{course}"),
    ("post", "/api/v1/courses/{course}/staff"),
    ("post", "/api/v1/courses/{course}/roster"),
    ("get", "/api/v1/courses/{course}/assignments"),
    ("post", "/api/v1/courses/{course}/assignments"),
    ("get", "/api/v1/courses/{course}/grades.csv"),
    ("get", "/api/v1/assignments/{assignment}"),
    ("patch", "/api/v1/assignments/{assignment}"),
    ("put", "/api/v1/assignments/{assignment}/access"),
    ("post", "/api/v1/assignments/{assignment}/release"),
    ("get", "/api/v1/assignments/{assignment}/submissions"),
    ("post", "/api/v1/assignments/{assignment}/submissions"),
    ("get", "/api/v1/submissions/{submission}"),
    ("put", "/api/v1/submissions/{submission}/grade"),
    ("post", "/api/v1/submissions/{submission}/prewarm"),
    ("get", "/api/v1/projects/{name}/source"),
    ("put", "/api/v1/projects/{name}/source"),
    ("delete", "/api/v1/projects/{name}/source"),
    ("post", "/api/v1/projects/{name}/source/deploy"),
    ("post", "/api/v1/hooks/{name}"),
];

pub const OPENAPI: &str = include_str!("openapi.json");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .app_data(web::JsonConfig::default().limit(64 * 1024).error_handler(|error, _| AppError::BadRequest(error.to_string()).into()))
            .app_data(web::PathConfig::default().error_handler(|error, _| AppError::BadRequest(error.to_string()).into()))
            .route("/openapi.json", web::get().to(openapi))
            .configure(accounts::configure)
            .configure(tokens::configure)
            .configure(me::configure)
            .configure(admin::configure)
            .configure(projects::configure)
            .configure(domains::configure)
            .configure(groups::configure)
            .configure(courses::configure)
            .default_service(web::to(|| async { Err::<HttpResponse, _>(AppError::NotFound("route")) })),
    );
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// The user behind the request's bearer token.
pub struct ApiUser(pub User);

impl FromRequest for ApiUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let header = req.headers().get("Authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let state = state.expect("AppState is registered on the app");
            let secret = header.as_deref().and_then(|h| h.strip_prefix("Bearer ")).map(str::trim).ok_or(AppError::Unauthorized)?;
            let user = crate::accounts::authenticate_token(&state.db, secret).await?;
            crate::audit::set_actor(&user);
            Ok(ApiUser(user))
        })
    }
}

/// A user as the API shows it: never the password hash.
pub fn user_json(user: &User) -> serde_json::Value {
    serde_json::json!({
        "id": user.id,
        "email": user.email,
        "display_name": user.display_name,
        "student_number": user.student_number,
        "language": user.language,
        "role": user.role,
        "email_verified": user.email_verified_at.is_some(),
        "created_at": user.created_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_exactly_the_routes() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert_eq!(document["openapi"].as_str().map(|v| v.starts_with("3.")), Some(true));
        let mut documented = Vec::new();
        for (path, operations) in document["paths"].as_object().expect("paths") {
            for method in operations.as_object().expect("operations").keys() {
                documented.push((method.clone(), path.clone()));
            }
        }
        let mut routes: Vec<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
    }
}
