//! Admin pages: the user list, where admins promote professors (and other admins).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, ResponseError};
use askama::Template;
use serde::Deserialize;

use crate::accounts;
use crate::db::{self, models::User};
use crate::domain::Role;
use crate::error::AppError;
use crate::state::AppState;
use crate::web::{check_csrf, flash_cookie, see_other, PageCtx, PageResult, Viewer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/users", web::get().to(users)).route("/admin/users/{id}/role", web::post().to(set_role));
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
    let user = viewer.require(&ctx)?;
    check_csrf(&req, &form.csrf_token).map_err(|e| ctx.error_page(e))?;
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
