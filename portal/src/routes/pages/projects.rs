//! Project pages: the list with the create form (name checked as you type), the project page
//! (URL, template, environment, delete with a confirmation that names the project).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use crate::db::models::Project;
use crate::domain::Action;
use crate::error::AppError;
use crate::projects::{self, EnvView};
use crate::routes::api::projects::app_url;
use crate::state::AppState;
use crate::web::{check_csrf, flash_cookie, see_other, PageCtx, PageResult, Viewer};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects", web::get().to(list))
        .route("/projects", web::post().to(create))
        .route("/projects/availability", web::get().to(availability))
        .route("/projects/{name}", web::get().to(show))
        .route("/projects/{name}/template", web::post().to(set_template))
        .route("/projects/{name}/visibility", web::post().to(set_visibility))
        .route("/projects/{name}/env", web::post().to(set_env))
        .route("/projects/{name}/scaling", web::post().to(set_scaling))
        .route("/projects/{name}/env/{key}/delete", web::post().to(unset_env))
        .route("/projects/{name}/domains", web::post().to(add_domain))
        .route("/projects/{name}/domains/{domain}/verify", web::post().to(verify_domain))
        .route("/projects/{name}/domains/{domain}/delete", web::post().to(remove_domain))
        .route("/projects/{name}/delete", web::post().to(delete))
        .route("/projects/{name}/upload", web::post().to(upload))
        .route("/projects/{name}/rollback", web::post().to(rollback))
        .route("/projects/{name}/source", web::post().to(set_source))
        .route("/projects/{name}/source/deploy", web::post().to(redeploy))
        .route("/projects/{name}/revisions/{number}", web::get().to(revision_page))
        .route("/projects/{name}/revisions/{number}/log.txt", web::get().to(build_log_text))
        .route("/projects/{name}/logs", web::get().to(logs_page))
        .route("/projects/{name}/logs.txt", web::get().to(logs_text));
}

/// The upload from the project page's script: the ZIP as the body, the CSRF token in a header.
/// Answers JSON (the revision, or the error) because a script reads it.
async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    let result = async {
        let user = viewer.user.as_ref().ok_or(AppError::Unauthorized)?;
        let submitted = req.headers().get("X-CSRF-Token").and_then(|v| v.to_str().ok()).unwrap_or("");
        check_csrf(&req, submitted)?;
        let project = projects::get(&state, user, &path, Action::Deploy).await?;
        let body = crate::routes::api::projects::read_limited(&mut payload, crate::routes::api::projects::upload_limit(&state)).await?;
        crate::deploys::upload(&state, user, &project, body, "upload").await
    }
    .await;
    match result {
        Ok(revision) => HttpResponse::Accepted().json(crate::deploys::revision_json(&revision)),
        Err(error) => json_error(&ctx, &error),
    }
}

#[derive(Deserialize)]
struct RollbackForm {
    csrf_token: String,
    revision: i32,
}

async fn rollback(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<RollbackForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let project = projects::get(&state, user, &path, Action::Deploy).await.map_err(|e| ctx.error_page(e))?;
    match crate::deploys::rollback(&state, &project, Some(form.revision)).await {
        Ok(_) => redirect_with_flash(&ctx, &state, &project.name, "flash.rolled_back"),
        Err(error) => project_page(&ctx, &state, &project, Some(&error)).await,
    }
}

#[derive(Template)]
#[template(path = "revision.html")]
struct RevisionPage<'a> {
    page: &'a PageCtx,
    project: &'a Project,
    revision: crate::db::models::Revision,
    finished: bool,
}

async fn revision_page(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<(String, i32)>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let (name, number) = path.into_inner();
    let project = projects::get(&state, user, &name, Action::View).await.map_err(|e| ctx.error_page(e))?;
    let project_id = project.id;
    let revision = state
        .db
        .run(move |conn| crate::db::revisions::find_number(conn, project_id, number))
        .await
        .map_err(|e| ctx.error_page(e.into()))?
        .ok_or_else(|| ctx.error_page(AppError::NotFound("revision")))?;
    let finished = !matches!(revision.status.as_str(), "queued" | "building" | "built");
    Ok(ctx.ok(&RevisionPage { page: &ctx, project: &project, revision, finished }))
}

#[derive(Deserialize)]
struct FollowQuery {
    #[serde(default)]
    follow: bool,
}

async fn build_log_text(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<(String, i32)>,
    query: web::Query<FollowQuery>,
) -> Result<HttpResponse, AppError> {
    let user = viewer.user.as_ref().ok_or(AppError::Unauthorized)?;
    let (name, number) = path.into_inner();
    crate::deploys::build_log_response(&state, user, &name, number, query.follow).await
}

#[derive(Template)]
#[template(path = "logs.html")]
struct LogsPage<'a> {
    page: &'a PageCtx,
    project: &'a Project,
}

async fn logs_page(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<String>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let project = projects::get(&state, user, &path, Action::View).await.map_err(|e| ctx.error_page(e))?;
    Ok(ctx.ok(&LogsPage { page: &ctx, project: &project }))
}

async fn logs_text(
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    query: web::Query<FollowQuery>,
) -> Result<HttpResponse, AppError> {
    let user = viewer.user.as_ref().ok_or(AppError::Unauthorized)?;
    crate::deploys::app_log_response(&state, user, &path, 500, query.follow).await
}

pub struct ProjectRow {
    pub name: String,
    pub template: String,
    pub url: String,
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage<'a> {
    page: &'a PageCtx,
    projects: Vec<ProjectRow>,
    templates: Vec<(&'static str, &'static str)>,
    name: &'a str,
    template: &'a str,
    error: Option<String>,
    apps_domain: &'a str,
}

/// Template choices for forms: `auto` first, then each framework template, then the project's own
/// Dockerfile (built only on a cluster with a registry; elsewhere a deploy says so).
fn template_choices() -> Vec<(&'static str, &'static str)> {
    std::iter::once(("auto", "Auto"))
        .chain(orchestrator::template::all().iter().map(|t| (t.id.as_str(), t.name.as_str())))
        .chain(std::iter::once((orchestrator::template::DOCKERFILE, "Your own Dockerfile (cluster only)")))
        .collect()
}

async fn list_page(
    ctx: &PageCtx,
    state: &AppState,
    user: &crate::db::models::User,
    name: &str,
    template: &str,
    error: Option<&AppError>,
) -> PageResult {
    let projects = projects::list(state, user).await.map_err(|e| ctx.error_page(e))?;
    let rows =
        projects.iter().map(|p| ProjectRow { name: p.name.clone(), template: p.template.clone(), url: app_url(state, &p.name) }).collect();
    let page = ProjectsPage {
        page: ctx,
        projects: rows,
        templates: template_choices(),
        name,
        template,
        error: error.map(|e| ctx.error_message(e)),
        apps_domain: &state.config.apps_domain,
    };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn list(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    list_page(&ctx, &state, user, "", "auto", None).await
}

#[derive(Deserialize)]
struct CreateForm {
    csrf_token: String,
    name: String,
    template: String,
}

async fn create(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, form: web::Form<CreateForm>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let result = match check_csrf(&req, &form.csrf_token) {
        Ok(()) => projects::create(&state, user, &form.name, &form.template, None).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(project) => Ok(see_other(&format!("/projects/{}", project.name))),
        Err(error) => list_page(&ctx, &state, user, &form.name, &form.template, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct NameQuery {
    name: String,
}

/// JSON for the create form's as-you-type check (session-authenticated, read-only), with the
/// message in the viewer's language.
async fn availability(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, query: web::Query<NameQuery>) -> HttpResponse {
    let ctx = PageCtx::new(&req, &viewer);
    if viewer.user.is_none() {
        return json_error(&ctx, &AppError::Unauthorized);
    }
    match projects::availability(&state, &query.name).await {
        Ok(mut availability) => {
            if let Some(code) = availability.code {
                let error = AppError::Validation(
                    crate::domain::ValidationError::new(code, "name", availability.message.clone().unwrap_or_default())
                        .with("value", availability.name.clone()),
                );
                availability.message = Some(ctx.error_message(&error));
            }
            HttpResponse::Ok().json(availability)
        }
        Err(error) => json_error(&ctx, &error),
    }
}

/// An error as JSON for the pages' scripts: the API's shape, the message in the viewer's language.
fn json_error(ctx: &PageCtx, error: &AppError) -> HttpResponse {
    use actix_web::ResponseError;
    if error.status_code().is_server_error() {
        let _ = error.error_response();
    }
    HttpResponse::build(error.status_code())
        .json(serde_json::json!({ "error": { "code": error.code(), "message": ctx.error_message(error) } }))
}

#[derive(Template)]
#[template(path = "project.html")]
struct ProjectPage<'a> {
    page: &'a PageCtx,
    project: &'a Project,
    url: String,
    env: Vec<EnvView>,
    templates: Vec<(&'static str, &'static str)>,
    error: Option<String>,
    status: orchestrator::runtime::AppStatus,
    live: Option<i32>,
    revisions: Vec<crate::db::models::Revision>,
    max_upload_mb: u64,
    scaling: crate::domain::scaling::Effective,
    caps: crate::domain::scaling::Limits,
    wakes: Vec<orchestrator::runtime::WakeRecord>,
    wake_summary: crate::domain::scaling::WakeSummary,
    visibility_levels: [&'static str; 4],
    /// The group owning the project, if any.
    group: Option<String>,
    range: crate::monitor::series::Range,
    ranges: [crate::monitor::series::Range; 3],
    /// The app's traffic charts (inline SVG).
    charts: Vec<String>,
    domains: Vec<crate::custom_domains::DomainView>,
    /// Whether the viewer may open the owner shell.
    can_shell: bool,
    /// The Git repository the project follows, and its webhook address.
    source: Option<crate::db::git_sources::GitSource>,
    webhook_url: String,
    /// A webhook secret just made, shown once.
    new_webhook_secret: Option<String>,
}

impl ProjectPage<'_> {
    /// `300` seconds as `5m` for a form field; 0 (never) as `0`.
    fn input_period(&self, secs: &u64) -> String {
        if *secs == 0 {
            "0".to_owned()
        } else {
            orchestrator::duration::format(std::time::Duration::from_secs(*secs))
        }
    }

    fn range_label(&self, range: &crate::monitor::series::Range) -> &'static str {
        match range {
            crate::monitor::series::Range::Hour => self.page.t("monitor.range_1h"),
            crate::monitor::series::Range::Day => self.page.t("monitor.range_24h"),
            crate::monitor::series::Range::Week => self.page.t("monitor.range_7d"),
        }
    }

    /// A domain's state in the viewer's language (`projects.domain_status_*`).
    fn domain_status(&self, status: &str) -> &'static str {
        let key = match status {
            "pending" => "projects.domain_status_pending",
            "verified" => "projects.domain_status_verified",
            "active" => "projects.domain_status_active",
            _ => "projects.domain_status_failed",
        };
        self.page.t(key)
    }

    fn ms(&self, value: &Option<f64>) -> String {
        value.map_or_else(|| "–".to_owned(), |ms| format!("{ms:.0} ms"))
    }
}

async fn project_page(ctx: &PageCtx, state: &AppState, project: &Project, error: Option<&AppError>) -> PageResult {
    project_page_with(ctx, state, project, error, None).await
}

async fn project_page_with(
    ctx: &PageCtx,
    state: &AppState,
    project: &Project,
    error: Option<&AppError>,
    new_webhook_secret: Option<String>,
) -> PageResult {
    let source = crate::git_sources::get_source(state, project).await.map_err(|e| ctx.error_page(e))?;
    let env = projects::env_view(state, project).await.map_err(|e| ctx.error_page(e))?;
    let revisions = crate::deploys::revisions(state, project, 20).await.map_err(|e| ctx.error_page(e))?;
    let live = revisions.iter().find(|r| Some(r.id) == project.live_revision_id).map(|r| r.number);
    let group = projects::group_name(state, project).await.map_err(|e| ctx.error_page(e))?;
    // The chart range comes from this page's own query string (`?range=24h`).
    let range_text = ctx.path.split_once('?').and_then(|(_, query)| {
        url::form_urlencoded::parse(query.as_bytes()).find(|(name, _)| name == "range").map(|(_, value)| value.into_owned())
    });
    let range = crate::monitor::series::Range::parse(range_text.as_deref());
    let series = crate::monitor::load(state, range, Some(&project.name)).await.map_err(|e| ctx.error_page(e))?;
    let charts = super::monitor::app_charts(ctx, &series, &project.name);
    let domains = crate::custom_domains::views(state, project).await.map_err(|e| ctx.error_page(e))?;
    let can_shell = match ctx.user.as_ref() {
        Some(viewer) => projects::may(state, viewer.id, project, Action::OpenShell).await.map_err(|e| ctx.error_page(e))?,
        None => false,
    };
    let page = ProjectPage {
        page: ctx,
        project,
        url: app_url(state, &project.name),
        env,
        templates: template_choices(),
        error: error.map(|e| ctx.error_message(e)),
        status: match &state.cluster {
            Some(cluster) => cluster.status(&project.name),
            None => state.runtime.status(&project.name),
        },
        live,
        revisions,
        max_upload_mb: state.config.deploy.max_upload_bytes / (1024 * 1024),
        scaling: crate::domain::scaling::effective(&project.scaling(), &projects::scaling_limits(&state.config)),
        caps: projects::scaling_limits(&state.config),
        wakes: state.runtime.wakes(&project.name).into_iter().rev().take(10).collect(),
        wake_summary: crate::domain::scaling::wake_summary(state.runtime.wakes(&project.name).iter().map(|w| (w.tier, w.total_ms))),
        visibility_levels: ["public", "campus", "members", "private"],
        group,
        range,
        ranges: crate::monitor::series::Range::ALL,
        charts,
        domains,
        can_shell,
        source,
        webhook_url: crate::git_sources::webhook_url(state, project),
        new_webhook_secret,
    };
    Ok(match error {
        Some(error) => ctx.render_error(error, &page),
        None => ctx.ok(&page),
    })
}

async fn show(req: HttpRequest, state: web::Data<AppState>, viewer: Viewer, path: web::Path<String>) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require(&ctx)?;
    let project = projects::get(&state, user, &path, Action::View).await.map_err(|e| ctx.error_page(e))?;
    project_page(&ctx, &state, &project, None).await
}

#[derive(Deserialize)]
struct TemplateForm {
    csrf_token: String,
    template: String,
}

async fn set_template(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<TemplateForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match projects::set_template(&state, user, &path, &form.template).await {
        Ok(project) => redirect_with_flash(&ctx, &state, &project.name, "flash.project_saved"),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => {
            let project = projects::get(&state, user, &path, Action::View).await.map_err(|e| ctx.error_page(e))?;
            project_page(&ctx, &state, &project, Some(&error)).await
        }
    }
}

#[derive(Deserialize)]
struct VisibilityForm {
    csrf_token: String,
    visibility: String,
}

/// Owners only (`projects::set_visibility` checks); the gateways follow within seconds.
async fn set_visibility(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<VisibilityForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match projects::set_visibility(&state, user, &path, &form.visibility).await {
        Ok(project) => redirect_with_flash(&ctx, &state, &project.name, "flash.visibility_saved"),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => {
            let project = projects::get(&state, user, &path, Action::View).await.map_err(|e| ctx.error_page(e))?;
            project_page(&ctx, &state, &project, Some(&error)).await
        }
    }
}

#[derive(Deserialize)]
struct EnvForm {
    csrf_token: String,
    key: String,
    value: String,
    #[serde(default)]
    secret: Option<String>,
}

async fn set_env(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<EnvForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let project = projects::get(&state, user, &path, Action::ChangeEnv).await.map_err(|e| ctx.error_page(e))?;
    match projects::set_env(&state, &project, &form.key, &form.value, form.secret.is_some()).await {
        Ok(()) => redirect_with_flash(&ctx, &state, &project.name, "flash.env_saved"),
        Err(error) => project_page(&ctx, &state, &project, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct ScalingForm {
    csrf_token: String,
    min_instances: u32,
    max_instances: u32,
    idle: String,
    freeze_after: String,
    target_concurrency: u32,
}

async fn set_scaling(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<ScalingForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let project = projects::get(&state, user, &path, crate::domain::Action::Deploy).await.map_err(|e| ctx.error_page(e))?;
    let change = crate::domain::scaling::ScalingChange {
        min_instances: Some(form.min_instances),
        max_instances: Some(form.max_instances),
        idle: Some(form.idle.clone()),
        freeze_after: Some(form.freeze_after.clone()),
        target_concurrency: Some(form.target_concurrency),
        reset: false,
    };
    match projects::set_scaling(&state, &project, &change).await {
        Ok(project) => redirect_with_flash(&ctx, &state, &project.name, "flash.scaling_saved"),
        Err(error) => project_page(&ctx, &state, &project, Some(&error)).await,
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf_token: String,
}

async fn unset_env(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let (name, key) = path.into_inner();
    let project = projects::get(&state, user, &name, Action::ChangeEnv).await.map_err(|e| ctx.error_page(e))?;
    projects::unset_env(&state, &project, &key).await.map_err(|e| ctx.error_page(e))?;
    redirect_with_flash(&ctx, &state, &project.name, "flash.env_removed")
}

#[derive(Deserialize)]
struct DomainForm {
    csrf_token: String,
    domain: String,
}

/// The project page after a domain action: the error inline (the form keeps its place), or a flash.
async fn after_domain_action(
    ctx: &PageCtx,
    state: &AppState,
    user: &crate::db::models::User,
    name: &str,
    result: Result<(), AppError>,
    flash: &str,
) -> PageResult {
    match result {
        Ok(()) => redirect_with_flash(ctx, state, name, flash),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => {
            let project = projects::get(state, user, name, Action::View).await.map_err(|e| ctx.error_page(e))?;
            project_page(ctx, state, &project, Some(&error)).await
        }
    }
}

async fn add_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<DomainForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let result = crate::custom_domains::add(&state, user, &path, &form.domain).await.map(|_| ());
    after_domain_action(&ctx, &state, user, &path, result, "flash.domain_added").await
}

async fn verify_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let (name, domain) = path.into_inner();
    let result = crate::custom_domains::verify(&state, user, &name, &domain).await.map(|_| ());
    after_domain_action(&ctx, &state, user, &name, result, "flash.domain_verified").await
}

async fn remove_domain(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let (name, domain) = path.into_inner();
    let result = crate::custom_domains::remove(&state, user, &name, &domain).await;
    after_domain_action(&ctx, &state, user, &name, result, "flash.domain_removed").await
}

#[derive(Deserialize)]
struct DeleteForm {
    csrf_token: String,
    confirm_name: String,
}

/// Deleting needs the project's name typed again, so a stray click cannot do it.
async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<DeleteForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    let project = projects::get(&state, user, &path, Action::Delete).await.map_err(|e| ctx.error_page(e))?;
    if form.confirm_name.trim() != project.name {
        let error = AppError::Validation(
            crate::domain::ValidationError::new("confirm_name_mismatch", "confirm_name", format!("type `{}` to confirm", project.name))
                .with("value", project.name.clone()),
        );
        return project_page(&ctx, &state, &project, Some(&error)).await;
    }
    crate::deploys::delete_project(&state, &project).await.map_err(|e| ctx.error_page(e))?;
    let mut response = see_other("/projects");
    response
        .add_cookie(&flash_cookie("flash.project_deleted", &state))
        .map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(response)
}

fn redirect_with_flash(ctx: &PageCtx, state: &AppState, name: &str, flash: &str) -> PageResult {
    let mut response = see_other(&format!("/projects/{name}"));
    response.add_cookie(&flash_cookie(flash, state)).map_err(|e| ctx.error_page(anyhow::anyhow!("cookie: {e}").into()))?;
    Ok(response)
}

#[derive(Deserialize)]
struct SourceForm {
    csrf_token: String,
    repo_url: String,
    branch: String,
    #[serde(default)]
    token: String,
}

/// Follows a Git repository; the page then shows the webhook secret once.
async fn set_source(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<SourceForm>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    // An empty token field keeps the current token.
    let token = Some(form.token.as_str()).filter(|t| !t.trim().is_empty());
    match crate::git_sources::set_source(&state, user, &path, &form.repo_url, &form.branch, token).await {
        Ok((project, _, secret)) => project_page_with(&ctx, &state, &project, None, Some(secret)).await,
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => {
            let project = projects::get(&state, user, &path, Action::View).await.map_err(|e| ctx.error_page(e))?;
            project_page(&ctx, &state, &project, Some(&error)).await
        }
    }
}

/// The redeploy button: builds the followed branch's newest commit.
async fn redeploy(
    req: HttpRequest,
    state: web::Data<AppState>,
    viewer: Viewer,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> PageResult {
    let ctx = PageCtx::new(&req, &viewer);
    let user = viewer.require_form(&ctx, &req, &form.csrf_token)?;
    match crate::git_sources::redeploy(&state, user, &path).await {
        Ok(_) => redirect_with_flash(&ctx, &state, &path, "flash.redeploy_queued"),
        Err(error @ (AppError::NotFound(_) | AppError::Forbidden)) => Err(ctx.error_page(error)),
        Err(error) => {
            let project = projects::get(&state, user, &path, Action::View).await.map_err(|e| ctx.error_page(e))?;
            project_page(&ctx, &state, &project, Some(&error)).await
        }
    }
}
