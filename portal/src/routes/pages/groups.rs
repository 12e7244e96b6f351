//! Group pages: the list with the create form, and one page per group (members with roles,
//! pending invitations, projects; invite, remove and transfer for its owners; leave for everyone
//! in it). Every form carries the CSRF token; `groups::*` checks permission on the server.

use actix_web::{web, HttpRequest};
use askama::Template;
use serde::Deserialize;

use crate::domain::GroupRole;
use crate::error::AppError;
use crate::groups::{self, Details};
use crate::state::AppState;
use crate::web::{check_csrf, flash_cookie, see_other, PageCtx, PageResult, Viewer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/groups", web::get().to(list))
        .route("/groups", web::post().to(create))
        .route("/groups/{group}", web::get().to(show))
        .route("/groups/{group}/invite", web::post().to(invite))
        .route("/groups/{group}/remove", web::post().to(remove))
        .route("/groups/{group}/transfer", web::post().to(transfer))
        .route("/groups/{group}/leave", web::post().to(leave));
}

#[derive(Template)]
#[template(path = "groups.html")]
struct GroupsPage<'a> {
    page: &'a PageCtx,
    /// (name, your role)
    groups: Vec<(String, String)>,
    name: String,
    error: Option<String>,
}

async fn list_page(ctx: &PageCtx, state: &AppState, user: &crate::db::models::User, name: &str, error: Option<&AppError>) -> PageResult {
    let groups = groups::list(state, user).await.map_err(|e| ctx.error_page(e))?;
    let page = GroupsPage {
        page: ctx,
        groups: groups.into_iter().map(|(group, role)| (group.name, role)).collect(),
        name: name.to_owned(),
        error: error.map(|e| ctx.error_message(e)),
    };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn list(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    list_page(&ctx, &state, user, "", None).await
}

#[derive(Deserialize)]
struct CreateForm {
    csrf_token: String,
    name: String,
}

async fn create(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<CreateForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => groups::create(&state, user, &form.name).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(group) => Ok(see_other(&format!("/groups/{}", group.name))),
        Err(error) => list_page(&ctx, &state, user, &form.name, Some(&error)).await,
    }
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage<'a> {
    page: &'a PageCtx,
    group: Details,
    roles: [GroupRole; 3],
    error: Option<String>,
}

async fn group_page(ctx: &PageCtx, state: &AppState, user: &crate::db::models::User, name: &str, error: Option<&AppError>) -> PageResult {
    let group = groups::details(state, user, name).await.map_err(|e| ctx.error_page(e))?;
    let page = GroupPage { page: ctx, group, roles: GroupRole::ALL, error: error.map(|e| ctx.error_message(e)) };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn show(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<String>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    group_page(&ctx, &state, user, &path, None).await
}

#[derive(Deserialize)]
struct MemberForm {
    csrf_token: String,
    email: String,
    #[serde(default)]
    role: Option<String>,
}

/// What a member form does once the CSRF token is checked.
enum Change {
    Invite,
    Remove,
    Transfer,
}

async fn change_member(req: HttpRequest, state: &AppState, viewer: &Viewer, name: &str, form: &MemberForm, change: Change) -> PageResult {
    let ctx = PageCtx::new(&req, viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let result = match change {
        Change::Invite => match crate::projects::parse_role(form.role.as_deref().unwrap_or("viewer")) {
            Ok(role) => groups::invite(state, user, name, &form.email, role).await.map(|_| "flash.member_invited"),
            Err(e) => Err(e),
        },
        Change::Remove => groups::remove(state, user, name, &form.email).await.map(|()| "flash.member_removed"),
        Change::Transfer => groups::transfer(state, user, name, &form.email).await.map(|()| "flash.group_transferred"),
    };
    match result {
        Ok(flash) => redirect_with_flash(&ctx, state, &format!("/groups/{name}"), flash),
        // A refusal of the page itself (not a member, not an owner) is an error page, not a form error.
        Err(error @ (AppError::NotFound("group") | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => group_page(&ctx, state, user, name, Some(&error)).await,
    }
}

async fn invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<MemberForm>,
) -> PageResult {
    change_member(req, &state, &viewer, &path, &form, Change::Invite).await
}

async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<MemberForm>,
) -> PageResult {
    change_member(req, &state, &viewer, &path, &form, Change::Remove).await
}

async fn transfer(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<MemberForm>,
) -> PageResult {
    change_member(req, &state, &viewer, &path, &form, Change::Transfer).await
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

async fn leave(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match groups::leave(&state, user, &path).await {
        Ok(()) => redirect_with_flash(&ctx, &state, "/groups", "flash.group_left"),
        Err(error @ AppError::NotFound(_)) => Err(ctx.error_page(error)),
        Err(error) => group_page(&ctx, &state, user, &path, Some(&error)).await,
    }
}

fn redirect_with_flash(ctx: &PageCtx, state: &AppState, to: &str, flash: &str) -> PageResult {
    let mut response = see_other(to);
    response.add_cookie(&flash_cookie(flash, state)).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(response)
}
