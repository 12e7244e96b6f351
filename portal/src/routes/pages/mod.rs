//! Server-rendered pages (askama). Each handler builds a `PageCtx` for the layout, checks the
//! CSRF token on every POST, and re-renders forms with the error in the viewer's language.

mod access;
mod accounts;
pub mod admin;
mod courses;
mod groups;
pub mod monitor;
mod profile;
mod projects;
mod shell;

use actix_web::middleware::from_fn;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::db;
use crate::domain::Language;
use crate::state::AppState;
use crate::web::{check_csrf, csrf_cookie, safe_next, see_other, PageCtx, PageResult, Viewer, LANG_COOKIE};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap(from_fn(csrf_cookie))
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .route("/", web::get().to(home))
            .route("/dashboard", web::get().to(dashboard))
            .route("/language", web::post().to(switch_language))
            .route("/static/app.css", web::get().to(stylesheet))
            .route("/static/app.js", web::get().to(script))
            .route("/healthz", web::get().to(health))
            .route("/artifacts/{file}", web::get().to(build_artifact))
            .configure(accounts::configure)
            .configure(access::configure)
            .configure(profile::configure)
            .configure(admin::configure)
            .configure(monitor::configure)
            .configure(projects::configure)
            .configure(shell::configure)
            .configure(groups::configure)
            .configure(courses::configure),
    );
}

/// A page with a title, one message and an optional link onwards.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub page: &'a PageCtx,
    pub title: &'a str,
    pub message: String,
    pub link: Option<(&'a str, &'a str)>,
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    page: &'a PageCtx,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage<'a> {
    page: &'a PageCtx,
}

async fn home(req: HttpRequest, viewer: Viewer) -> HttpResponse {
    if viewer.user.is_some() {
        return see_other("/dashboard");
    }
    let ctx = PageCtx::new(&req, &viewer);
    ctx.ok(&HomePage { page: &ctx })
}

async fn dashboard(req: HttpRequest, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    viewer.require(&ctx)?;
    Ok(ctx.ok(&DashboardPage { page: &ctx }))
}

#[derive(Deserialize)]
struct LanguageForm {
    csrf_token: String,
    language: String,
    next: Option<String>,
}

/// Switches the language, remembered in a cookie and, for a logged-in user, in their profile.
async fn switch_language(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<LanguageForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    check_csrf(&req, &form.csrf_token).map_err(|e| ctx.error_page(e))?;
    let language = Language::parse(&form.language).map_err(|e| ctx.error_page(e.into()))?;
    if let Some(user) = &viewer.user {
        let user_id = user.id;
        state.db.run(move |conn| db::users::set_language(conn, user_id, language.code())).await.map_err(|e| ctx.error_page(e.into()))?;
    }
    let mut cookie = actix_web::cookie::Cookie::build(LANG_COOKIE, language.code())
        .path("/")
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(state.config.secure_cookies)
        .finish();
    cookie.set_max_age(actix_web::cookie::time::Duration::days(365));
    let mut response = see_other(&safe_next(form.next.as_deref()));
    response.add_cookie(&cookie).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(response)
}

async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../static/app.css"))
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(include_str!("../../../static/app.js"))
}

/// Liveness and dependencies, for load balancers and `make up` smoke checks.
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (database, redis) = tokio::join!(state.db.ping(), state.cache.ping());
    let body = serde_json::json!({ "status": if database && redis { "ok" } else { "degraded" }, "database": database, "redis": redis });
    if database && redis {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[derive(Deserialize)]
struct ArtifactQuery {
    expires: u64,
    sig: String,
}

/// A built revision (or, for builds in the cluster, an uploaded source) for Nomad's `artifact`
/// block: served only with a valid, unexpired signature from `cluster::sign_artifact`; anything
/// else is 404, telling nothing.
async fn build_artifact(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: Option<web::Query<ArtifactQuery>>,
) -> Result<HttpResponse, actix_web::Error> {
    let file = path.into_inner();
    let now = chrono::Utc::now().timestamp() as u64;
    let signed = query.is_some_and(|q| crate::cluster::verify_artifact(&state.secrets.artifact_key(), &file, q.expires, &q.sig, now));
    let (Some(served), true, true) = (crate::cluster::served_file(&file), signed, state.cluster.is_some()) else {
        return Ok(HttpResponse::NotFound().finish());
    };
    let data_dir = std::path::absolute(&state.config.data_dir).map_err(actix_web::error::ErrorInternalServerError)?;
    let (path, content_type) = match served {
        crate::cluster::Served::Build(_) => (crate::cluster::builds_dir(&data_dir).join(&file), "application/gzip"),
        crate::cluster::Served::Source(sha) => match orchestrator::artifact::ArtifactId::parse(sha) {
            Ok(id) => (state.artifacts.path(&id), "application/zip"),
            Err(_) => return Ok(HttpResponse::NotFound().finish()),
        },
    };
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(HttpResponse::Ok().content_type(content_type).body(bytes)),
        Err(_) => Ok(HttpResponse::NotFound().finish()),
    }
}
