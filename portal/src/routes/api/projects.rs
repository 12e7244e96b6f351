//! Projects over the API: create, list, read, change the template, delete, environment, and the
//! name check the create page calls as a person types.

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::ApiUser;
use crate::db::models::Project;
use crate::domain::Action;
use crate::error::AppError;
use crate::projects;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/projects", web::get().to(list))
        .route("/projects", web::post().to(create))
        .route("/projects/availability", web::get().to(availability))
        .route("/projects/{name}", web::get().to(show))
        .route("/projects/{name}", web::patch().to(update))
        .route("/projects/{name}", web::delete().to(delete))
        .route("/projects/{name}/env", web::get().to(env))
        .route("/projects/{name}/env/{key}", web::put().to(set_env))
        .route("/projects/{name}/env/{key}", web::delete().to(unset_env))
        .route("/projects/{name}/deployments", web::post().to(deploy))
        .route("/projects/{name}/revisions", web::get().to(revisions))
        .route("/projects/{name}/revisions/{number}/log", web::get().to(build_log))
        .route("/projects/{name}/status", web::get().to(status))
        .route("/projects/{name}/logs", web::get().to(logs))
        .route("/projects/{name}/rollback", web::post().to(rollback))
        .route("/projects/{name}/sleep", web::post().to(sleep))
        .route("/projects/{name}/scaling", web::get().to(scaling))
        .route("/projects/{name}/scaling", web::patch().to(set_scaling))
        .route("/projects/{name}/metrics", web::get().to(metrics))
        .route("/projects/{name}/source", web::get().to(get_source))
        .route("/projects/{name}/source", web::put().to(put_source))
        .route("/projects/{name}/source", web::delete().to(delete_source))
        .route("/projects/{name}/source/deploy", web::post().to(redeploy))
        .route("/hooks/{name}", web::post().to(webhook));
}

#[derive(Deserialize)]
struct FollowQuery {
    #[serde(default)]
    follow: bool,
    lines: Option<usize>,
}

async fn build_log(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<(String, i32)>,
    query: web::Query<FollowQuery>,
) -> Result<HttpResponse, AppError> {
    let (name, number) = path.into_inner();
    crate::deploys::build_log_response(&state, &user, &name, number, query.follow).await
}

async fn status(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::View).await?;
    let live = crate::deploys::live_number(&state, &project).await?;
    Ok(HttpResponse::Ok().json(crate::deploys::status_json(&state, &project, live)))
}

async fn logs(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    query: web::Query<FollowQuery>,
) -> Result<HttpResponse, AppError> {
    crate::deploys::app_log_response(&state, &user, &path, query.lines.unwrap_or(200), query.follow).await
}

#[derive(Deserialize, Default)]
struct RollbackBody {
    revision: Option<i32>,
}

async fn rollback(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: Option<web::Json<RollbackBody>>,
) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::Deploy).await?;
    let revision = crate::deploys::rollback(&state, &project, body.and_then(|b| b.revision)).await?;
    Ok(HttpResponse::Ok().json(crate::deploys::revision_json(&revision)))
}

/// The upload's size cap for actix, a little above the configured maximum so that an oversized
/// upload reaches `deploys::upload` and gets its clear `upload_too_large` error.
pub fn upload_limit(state: &AppState) -> usize {
    (state.config.deploy.max_upload_bytes as usize).saturating_add(1)
}

#[derive(Deserialize)]
struct DeployQuery {
    #[serde(default)]
    source: Option<String>,
}

/// Body: the ZIP itself (`Content-Type: application/zip`).
async fn deploy(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    query: web::Query<DeployQuery>,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::Deploy).await?;
    let body = read_limited(&mut payload, upload_limit(&state)).await?;
    let _ = req;
    let source = match query.source.as_deref() {
        Some("cli") => "cli",
        _ => "api",
    };
    let revision = crate::deploys::upload(&state, &user, &project, body, source).await?;
    Ok(HttpResponse::Accepted().json(crate::deploys::revision_json(&revision)))
}

/// Reads a request body up to `limit` bytes; more is refused without reading it all.
pub async fn read_limited(payload: &mut web::Payload, limit: usize) -> Result<bytes::Bytes, AppError> {
    use futures_util::StreamExt;
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| AppError::BadRequest(format!("the upload broke off: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(AppError::Rejected {
                code: "upload_too_large",
                message: format!("the upload is larger than {} bytes", limit.saturating_sub(1)),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

async fn revisions(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::View).await?;
    let revisions = crate::deploys::revisions(&state, &project, 50).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "revisions": revisions.iter().map(crate::deploys::revision_json).collect::<Vec<_>>() })))
}

pub fn project_json(state: &AppState, project: &Project) -> serde_json::Value {
    serde_json::json!({
        "name": project.name,
        "template": project.template,
        "visibility": project.visibility,
        "url": app_url(state, &project.name),
        "live_revision_id": project.live_revision_id,
        "created_at": project.created_at,
        "updated_at": project.updated_at,
    })
}

/// Where the app answers: `http://NAME.<apps_domain>:<gateway port>` in the embedded shape.
pub fn app_url(state: &AppState, name: &str) -> String {
    // With the apps domain's certificate configured, apps are reached over HTTPS.
    if let (Some(_), Some(https_port)) = (&state.config.tls.cert_file, state.config.tls.public_https_port) {
        return match https_port {
            443 => format!("https://{name}.{}", state.config.apps_domain),
            port => format!("https://{name}.{}:{port}", state.config.apps_domain),
        };
    }
    let port = state.config.gateway_addr.port();
    if port == 80 {
        format!("http://{name}.{}", state.config.apps_domain)
    } else {
        format!("http://{name}.{}:{port}", state.config.apps_domain)
    }
}

async fn list(state: web::Data<AppState>, ApiUser(user): ApiUser) -> Result<HttpResponse, AppError> {
    let projects = projects::list(&state, &user).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "projects": projects.iter().map(|p| project_json(&state, p)).collect::<Vec<_>>() })))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    #[serde(default = "auto")]
    template: String,
    /// Create the project in this group (the creator must be a maintainer or owner there).
    group: Option<String>,
}

fn auto() -> String {
    "auto".to_owned()
}

async fn create(state: web::Data<AppState>, ApiUser(user): ApiUser, body: web::Json<CreateBody>) -> Result<HttpResponse, AppError> {
    let project = projects::create(&state, &user, &body.name, &body.template, body.group.as_deref()).await?;
    Ok(HttpResponse::Created().json(project_json(&state, &project)))
}

#[derive(Deserialize)]
struct NameQuery {
    name: String,
}

async fn availability(state: web::Data<AppState>, _user: ApiUser, query: web::Query<NameQuery>) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(projects::availability(&state, &query.name).await?))
}

async fn show(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::View).await?;
    Ok(HttpResponse::Ok().json(project_json(&state, &project)))
}

#[derive(Deserialize)]
struct UpdateBody {
    template: Option<String>,
    visibility: Option<String>,
    group: Option<String>,
}

/// Each field is checked with its own permission: template (deploy), visibility (owners), group
/// (moving a personal project into a group: its owner, who is a maintainer or owner there).
async fn update(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, AppError> {
    let mut project = projects::get(&state, &user, &path, Action::View).await?;
    if let Some(group) = &body.group {
        project = projects::move_to_group(&state, &user, &path, group).await?;
    }
    if let Some(visibility) = &body.visibility {
        project = projects::set_visibility(&state, &user, &path, visibility).await?;
    }
    if let Some(template) = &body.template {
        project = projects::set_template(&state, &user, &path, template).await?;
    }
    let group = projects::group_name(&state, &project).await?;
    let mut json = project_json(&state, &project);
    json["group"] = serde_json::json!(group);
    Ok(HttpResponse::Ok().json(json))
}

async fn delete(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::Delete).await?;
    crate::deploys::delete_project(&state, &project).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn env(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::View).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "env": projects::env_view(&state, &project).await? })))
}

#[derive(Deserialize)]
struct EnvBody {
    value: String,
    #[serde(default)]
    secret: bool,
}

async fn set_env(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<(String, String)>,
    body: web::Json<EnvBody>,
) -> Result<HttpResponse, AppError> {
    let (name, key) = path.into_inner();
    let project = projects::get(&state, &user, &name, Action::ChangeEnv).await?;
    projects::set_env(&state, &project, &key, &body.value, body.secret).await?;
    Ok(HttpResponse::NoContent().finish())
}

async fn unset_env(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (name, key) = path.into_inner();
    let project = projects::get(&state, &user, &name, Action::ChangeEnv).await?;
    projects::unset_env(&state, &project, &key).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, Default)]
struct SleepBody {
    #[serde(default)]
    freeze: bool,
}

/// Puts the app in the frozen or stopped tier now (operators, tests and benchmarks use it).
async fn sleep(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: Option<web::Json<SleepBody>>,
) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::Deploy).await?;
    let freeze = body.map(|b| b.freeze).unwrap_or(false);
    let slept = match &state.cluster {
        Some(cluster) if freeze => orchestrator::runtime::Runtime::freeze(&*cluster.runtime, &project.name).await,
        Some(cluster) => orchestrator::runtime::Runtime::stop_instances(&*cluster.runtime, &project.name).await,
        None => state.runtime.sleep(&project.name, freeze).await,
    };
    slept.map_err(|reason| AppError::Rejected { code: "cannot_sleep", message: reason })?;
    let event = crate::audit::Event::new(crate::domain::audit::actions::PROJECT_SLEEP)
        .target(crate::domain::audit::Target::project(&project.name))
        .details(serde_json::json!({ "freeze": freeze }));
    crate::audit::record(&state.db, event).await;
    let live = crate::deploys::live_number(&state, &project).await?;
    Ok(HttpResponse::Ok().json(crate::deploys::status_json(&state, &project, live)))
}

fn scaling_json(state: &AppState, project: &Project) -> serde_json::Value {
    let limits = projects::scaling_limits(&state.config);
    serde_json::json!({
        "name": project.name,
        "scaling": crate::domain::scaling::effective(&project.scaling(), &limits),
        "caps": {
            "max_instances": limits.max_instances_per_app,
            "max_min_instances": limits.max_min_instances,
            "max_idle_secs": limits.max_idle.as_secs(),
        },
    })
}

/// The project's scaling settings in effect, and the caps they must stay within.
/// The app's traffic series over `?range=` (1h, 24h or 7d), for anyone who may view the project.
async fn metrics(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    query: web::Query<crate::routes::pages::monitor::RangeQuery>,
) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::View).await?;
    let range = crate::monitor::series::Range::parse(query.range.as_deref());
    let series = crate::monitor::load(&state, range, Some(&project.name)).await?;
    let by_metric = series.json().get(&project.name).cloned().unwrap_or_else(|| serde_json::json!({}));
    Ok(HttpResponse::Ok().json(serde_json::json!({ "range": range.as_str(), "resolution_secs": series.step_secs, "series": by_metric })))
}

async fn scaling(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, crate::domain::Action::View).await?;
    Ok(HttpResponse::Ok().json(scaling_json(&state, &project)))
}

/// Changes the scaling settings (absent fields stay; `reset` returns to the defaults).
async fn set_scaling(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<crate::domain::scaling::ScalingChange>,
) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, crate::domain::Action::Deploy).await?;
    let project = projects::set_scaling(&state, &project, &body).await?;
    Ok(HttpResponse::Ok().json(scaling_json(&state, &project)))
}

#[derive(serde::Deserialize)]
struct SourceBody {
    repo_url: String,
    #[serde(default = "default_branch")]
    branch: String,
    /// A deploy token for private repositories; absent keeps the current one, "" removes it.
    #[serde(default)]
    token: Option<String>,
}

fn default_branch() -> String {
    "main".to_owned()
}

async fn get_source(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let project = projects::get(&state, &user, &path, Action::View).await?;
    let source = crate::git_sources::get_source(&state, &project).await?.ok_or(AppError::NotFound("git source"))?;
    Ok(HttpResponse::Ok().json(crate::git_sources::source_json(&state, &project, &source)))
}

/// Sets the followed repository; the answer carries the webhook secret, shown only here.
async fn put_source(
    state: web::Data<AppState>,
    ApiUser(user): ApiUser,
    path: web::Path<String>,
    body: web::Json<SourceBody>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let (project, source, secret) =
        crate::git_sources::set_source(&state, &user, &path, &body.repo_url, &body.branch, body.token.as_deref()).await?;
    let mut json = crate::git_sources::source_json(&state, &project, &source);
    json["webhook_secret"] = serde_json::Value::String(secret);
    Ok(HttpResponse::Ok().json(json))
}

async fn delete_source(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    crate::git_sources::remove_source(&state, &user, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The manual redeploy: clones the branch's tip now and queues it.
async fn redeploy(state: web::Data<AppState>, ApiUser(user): ApiUser, path: web::Path<String>) -> Result<HttpResponse, AppError> {
    let revision = crate::git_sources::redeploy(&state, &user, &path).await?;
    Ok(HttpResponse::Accepted().json(crate::deploys::revision_json(&revision)))
}

/// A forge's push webhook: no token; the signature (or GitLab's token) is the authentication.
async fn webhook(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let body = read_limited(&mut payload, 1024 * 1024).await?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match crate::git_sources::handle_webhook(&state, &path, header, &body).await? {
        crate::git_sources::HookOutcome::Building { commit_sha } => {
            Ok(HttpResponse::Accepted().json(serde_json::json!({"status": "building", "commit_sha": commit_sha})))
        }
        crate::git_sources::HookOutcome::Ignored(reason) => {
            Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ignored", "reason": reason})))
        }
    }
}
