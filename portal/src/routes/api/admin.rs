//! Admin operations: users and their roles and quotas, the audit log (search and CSV export) and
//! the monitor.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::{user_json, ApiUser};
use crate::accounts;
use crate::db;
use crate::domain::audit::{parse_search, SearchQuery, PAGE_SIZE};
use crate::domain::Role;
use crate::error::AppError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(list))
        .route("/admin/users/{id}", web::patch().to(update))
        .route("/admin/users/{id}/quota", web::put().to(set_user_quota))
        .route("/admin/groups/{group}/quota", web::put().to(set_group_quota))
        .route("/admin/audit", web::get().to(audit))
        .route("/admin/audit/export", web::get().to(audit_export))
        .route("/admin/monitor", web::get().to(monitor));
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

/// Limits an admin sets; an absent field clears that limit.
#[derive(Deserialize)]
struct QuotaBody {
    projects: Option<i32>,
    instances: Option<i32>,
    memory_mb: Option<i32>,
    builds_per_hour: Option<i32>,
}

impl QuotaBody {
    fn limits(&self) -> [Option<i32>; 4] {
        [self.projects, self.instances, self.memory_mb, self.builds_per_hour]
    }
}

fn quota_json(row: &crate::db::models::QuotaRow) -> serde_json::Value {
    serde_json::json!({
        "projects": row.max_projects,
        "instances": row.max_instances,
        "memory_mb": row.max_memory_mb,
        "builds_per_hour": row.max_builds_per_hour,
    })
}

async fn set_user_quota(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<i64>,
    body: web::Json<QuotaBody>,
) -> Result<HttpResponse, AppError> {
    if user.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    let user_id = path.into_inner();
    state.db.run(move |conn| db::users::find(conn, user_id)).await?.ok_or(AppError::NotFound("user"))?;
    let row = crate::quotas::set(&state, Some(user_id), None, body.limits()).await?;
    Ok(HttpResponse::Ok().json(quota_json(&row)))
}

async fn set_group_quota(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<QuotaBody>,
) -> Result<HttpResponse, AppError> {
    if user.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    let name = path.into_inner();
    let group = state.db.run(move |conn| db::groups::find_by_name(conn, &name)).await?.ok_or(AppError::NotFound("group"))?;
    let row = crate::quotas::set(&state, None, Some(group.id), body.limits()).await?;
    Ok(HttpResponse::Ok().json(quota_json(&row)))
}

async fn audit(state: web::Data<AppState>, ApiUser(user): ApiUser, query: web::Query<SearchQuery>) -> Result<HttpResponse, AppError> {
    let (search, page) = parse_search(&query)?;
    let (entries, total) = crate::audit::search(&state.db, &user, search, page).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "entries": entries, "total": total, "page": page, "page_size": PAGE_SIZE })))
}

async fn audit_export(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, AppError> {
    let (search, _) = parse_search(&query)?;
    let csv = crate::audit::export_csv(&state.db, &user, search).await?;
    Ok(crate::routes::pages::admin::csv_response(csv))
}

async fn monitor(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    query: web::Query<crate::routes::pages::monitor::RangeQuery>,
) -> Result<HttpResponse, AppError> {
    if user.role != Role::Admin.as_str() {
        return Err(AppError::Forbidden);
    }
    let range = crate::monitor::series::Range::parse(query.range.as_deref());
    let series = crate::monitor::load(&state, range, Some(crate::monitor::HOST)).await?;
    let apps = crate::monitor::app_rows(&state, range).await?;
    let live = state.monitor.get();
    let alerts: Vec<serde_json::Value> = live
        .incidents
        .iter()
        .map(|i| serde_json::json!({ "key": i.key, "reason": i.reason, "opened_at": chrono::DateTime::<chrono::Utc>::from_timestamp(i.opened_at, 0) }))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "range": range.as_str(),
        "resolution_secs": series.step_secs,
        "components": live.components,
        "alerts": alerts,
        "apps": apps,
        "series": series.json(),
    })))
}
