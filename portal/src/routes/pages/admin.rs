//! Admin pages: the user list, where admins promote professors (and other admins), the audit log
//! (search, pages, CSV export) and the monitor (`monitor` module).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, ResponseError};
use askama::Template;
use serde::Deserialize;

use crate::accounts;
use crate::audit;
use crate::db::{self, models::AuditEntry, models::User};
use crate::domain::audit::{parse_search, SearchQuery, PAGE_SIZE};
use crate::domain::Role;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{flash_cookie, see_other, PageCtx, PageResult, Viewer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(users))
        .route("/admin/users/{id}/role", web::post().to(set_role))
        .route("/admin/audit", web::get().to(audit_page))
        .route("/admin/audit.csv", web::get().to(audit_csv));
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct AdminUsersPage<'a> {
    page: &'a PageCtx,
    users: Vec<User>,
    roles: [Role; 3],
    error: Option<String>,
}

async fn users_page(ctx: &PageCtx, state: &AppState, status: StatusCode, error: Option<String>) -> PageResult {
    let users = state.db.run(|conn| db::users::list(conn, 1000)).await.map_err(|e| ctx.error_page(e.into()))?;
    Ok(ctx.render(status, &AdminUsersPage { page: ctx, users, roles: Role::ALL, error }))
}

async fn users(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    if user.role != Role::Admin.as_str() {
        return Err(ctx.error_page(AppError::Forbidden));
    }
    users_page(&ctx, &state, StatusCode::OK, None).await
}

#[derive(Deserialize)]
struct RoleForm {
    csrf_token: String,
    role: String,
}

async fn set_role(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<i64>,
    form: web::Form<RoleForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match accounts::set_role(&state.db, user, path.into_inner(), &form.role).await {
        Ok(_) => {
            let mut response = see_other("/admin/users");
            response
                .add_cookie(&flash_cookie("flash.role_changed", &state))
                .map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
            Ok(response)
        }
        Err(AppError::Forbidden) => Err(ctx.error_page(AppError::Forbidden)),
        Err(error) => users_page(&ctx, &state, error.status_code(), Some(ctx.error_message(&error))).await,
    }
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    page: &'a PageCtx,
    query: SearchQuery,
    entries: Vec<AuditEntry>,
    total: i64,
    page_number: i64,
    prev_page: i64,
    next_page: i64,
    n_pages: i64,
    error: Option<String>,
}

impl AuditPage<'_> {
    /// This search's query string with another page number (or none), for links.
    fn link(&self, page: Option<i64>) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("actor", &self.query.actor),
            ("action", &self.query.action),
            ("target", &self.query.target),
            ("from", &self.query.from),
            ("to", &self.query.to),
        ] {
            if let Some(value) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                query.append_pair(name, value);
            }
        }
        if let Some(page) = page {
            query.append_pair("page", &page.to_string());
        }
        query.finish()
    }

    fn export_link(&self) -> String {
        self.link(None)
    }

    fn page_link(&self, page: &i64) -> String {
        self.link(Some(*page))
    }

    fn q<'b>(&self, value: &'b Option<String>) -> &'b str {
        value.as_deref().unwrap_or("")
    }
}

fn admin_of<'v>(ctx: &PageCtx, viewer: &'v Viewer) -> Result<&'v User, crate::web::PageError> {
    let user = viewer.require(ctx)?;
    if user.role != Role::Admin.as_str() {
        return Err(ctx.error_page(AppError::Forbidden));
    }
    Ok(user)
}

async fn audit_page(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<SearchQuery>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = admin_of(&ctx, &viewer)?;
    let query = query.into_inner();
    let mut page = AuditPage {
        page: &ctx,
        query: query.clone(),
        entries: Vec::new(),
        total: 0,
        page_number: 1,
        prev_page: 0,
        next_page: 2,
        n_pages: 1,
        error: None,
    };
    match parse_search(&query) {
        Ok((search, page_number)) => {
            let (entries, total) = audit::search(&state.db, user, search, page_number).await.map_err(|e| ctx.error_page(e))?;
            page.entries = entries;
            page.total = total;
            page.page_number = page_number;
            page.prev_page = page_number - 1;
            page.next_page = page_number + 1;
            page.n_pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
            Ok(ctx.ok(&page))
        }
        Err(error) => {
            let error = AppError::from(error);
            page.error = Some(ctx.error_message(&error));
            Ok(ctx.render(error.status_code(), &page))
        }
    }
}

async fn audit_csv(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<SearchQuery>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = admin_of(&ctx, &viewer)?;
    let (search, _) = parse_search(&query).map_err(|e| ctx.error_page(e.into()))?;
    let csv = audit::export_csv(&state.db, user, search).await.map_err(|e| ctx.error_page(e))?;
    Ok(csv_response(csv))
}

/// A CSV download named after today's date.
pub fn csv_response(csv: Vec<u8>) -> actix_web::HttpResponse {
    let name = format!("slipway-audit-{}.csv", chrono::Utc::now().format("%Y-%m-%d"));
    actix_web::HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(("Content-Disposition", format!("attachment; filename=\"{name}\"")))
        .insert_header(("Cache-Control", "no-store"))
        .body(csv)
}
