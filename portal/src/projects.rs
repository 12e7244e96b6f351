//! Project flows shared by pages, API and CLI: create, list, read, delete, environment.
//! Every function takes the acting user and checks permission here, on the server.
//!
//! Permission: `get` resolves the acting user's role towards the project (`access::role_in`:
//! owner of a personal project, the group role for a group's project, admins as owners) and
//! checks it against the action with `domain::permissions::allows`. Staff of a course the project
//! was submitted to are viewers of it (`access::role_in`).

use orchestrator::model::AppName;

use crate::audit::{self, Event};
use crate::db;
use crate::db::models::{Project, User};
use crate::domain::audit::{actions, Target};
use crate::domain::permissions::allows;
use crate::domain::{check_env_value, scaling, Action, EnvVarName, GroupRole, ValidationError};
use crate::error::AppError;
use crate::secrets::{self, SecretValue};
use crate::state::AppState;

/// The template ids a project may name: `auto` (detect at each deploy), a framework template, or
/// `dockerfile` (the project's own Dockerfile, built on a cluster with a registry).
pub fn check_template(id: &str) -> Result<String, ValidationError> {
    let id = id.trim();
    if id == "auto" || id == orchestrator::template::DOCKERFILE || orchestrator::template::get(id).is_some() {
        return Ok(id.to_owned());
    }
    let known: Vec<&str> = std::iter::once("auto")
        .chain(orchestrator::template::all().iter().map(|t| t.id.as_str()))
        .chain(std::iter::once(orchestrator::template::DOCKERFILE))
        .collect();
    Err(ValidationError::new("unknown_template", "template", format!("`{id}` is not a template; choose one of {}", known.join(", ")))
        .with("value", id))
}

fn parse_name(raw: &str) -> Result<AppName, AppError> {
    AppName::parse(raw).map_err(|e| AppError::Validation(ValidationError::new(e.code(), "name", e.to_string()).with("value", raw.trim())))
}

/// What the name check says while a person types.
#[derive(Debug, serde::Serialize)]
pub struct Availability {
    pub name: String,
    pub available: bool,
    pub code: Option<&'static str>,
    pub message: Option<String>,
}

pub async fn availability(state: &AppState, raw: &str) -> Result<Availability, AppError> {
    let name = match AppName::parse(raw) {
        Ok(name) => name,
        Err(e) => {
            return Ok(Availability { name: raw.trim().to_owned(), available: false, code: Some(e.code()), message: Some(e.to_string()) })
        }
    };
    let text = name.as_str().to_owned();
    let taken = state.db.run(move |conn| db::projects::name_taken(conn, &text)).await?;
    Ok(Availability {
        name: name.as_str().to_owned(),
        available: !taken,
        code: taken.then_some("app_name_taken"),
        message: taken.then(|| format!("`{name}` is taken")),
    })
}

/// Creates a personal project, or with `group` one owned by that group (the creator must be at
/// least a maintainer there). Quotas are checked first, so a refusal creates nothing.
pub async fn create(state: &AppState, user: &User, raw_name: &str, template: &str, group: Option<&str>) -> Result<Project, AppError> {
    let name = parse_name(raw_name)?;
    let template = check_template(template)?;
    let group_id = match group.map(str::trim).filter(|g| !g.is_empty()) {
        None => None,
        Some(group_name) => {
            let (group, role) = crate::groups::get(state, user, group_name).await?;
            if !allows(role, Action::Deploy) {
                return Err(AppError::Forbidden);
            }
            Some(group.id)
        }
    };
    crate::quotas::check_project_create(state, user, group_id).await?;
    let owner_id = user.id;
    let text = name.as_str().to_owned();
    match state.db.run(move |conn| db::projects::insert(conn, &text, owner_id, &template, group_id)).await {
        Ok(project) => {
            crate::access::publish_project(state, &project).await?;
            let details = serde_json::json!({ "template": project.template, "group": group.map(str::trim).filter(|g| !g.is_empty()) });
            audit::record(&state.db, Event::new(actions::PROJECT_CREATE).target(Target::project(&project.name)).details(details)).await;
            Ok(project)
        }
        Err(e) if e.is_unique_violation() => {
            Err(AppError::Conflict { code: "app_name_taken", message: format!("`{name}` is taken; choose another name") })
        }
        Err(e) => Err(e.into()),
    }
}

/// The user's personal projects and those of every group they belong to.
pub async fn list(state: &AppState, user: &User) -> Result<Vec<Project>, AppError> {
    let user_id = user.id;
    Ok(state.db.run(move |conn| db::projects::list_for_user(conn, user_id)).await?)
}

/// The project by name, if `user` may do `action` with it: 404 when it does not exist, 403 otherwise.
/// Whether user `user_id` may do `action` on `project` (for showing links; every route still
/// checks through `get`).
pub async fn may(state: &AppState, user_id: i64, project: &Project, action: Action) -> Result<bool, AppError> {
    let project = project.clone();
    let role = state
        .db
        .run(move |conn| {
            let Some(user) = db::users::find(conn, user_id)? else { return Ok(crate::domain::ProjectRole::None) };
            crate::access::role_in(conn, &user, &project)
        })
        .await?;
    Ok(allows(role, action))
}

pub async fn get(state: &AppState, user: &User, raw_name: &str, action: Action) -> Result<Project, AppError> {
    let name = raw_name.trim().to_owned();
    let actor = user.clone();
    let (project, role) = state
        .db
        .run(move |conn| {
            let Some(project) = db::projects::find_by_name(conn, &name)? else { return Ok(None) };
            let role = crate::access::role_in(conn, &actor, &project)?;
            Ok::<_, db::DbError>(Some((project, role)))
        })
        .await?
        .ok_or(AppError::NotFound("project"))?;
    if !allows(role, action) {
        return Err(AppError::Forbidden);
    }
    Ok(project)
}

/// The installation's scaling defaults and the admin's caps.
pub fn scaling_limits(config: &crate::config::Config) -> scaling::Limits {
    let scaling = &config.scaling;
    scaling::Limits {
        target_concurrency: scaling.target_concurrency,
        freeze_after: scaling.freeze_after,
        idle: scaling.idle,
        max_instances_per_app: scaling.max_instances_per_app,
        max_min_instances: scaling.max_min_instances,
        max_idle: scaling.max_idle,
    }
}

/// The autoscaler policy of `project` as it stands.
pub fn scaling_policy(state: &AppState, project: &Project) -> orchestrator::autoscaler::Policy {
    scaling::policy(&project.scaling(), &scaling_limits(&state.config))
}

/// Changes a project's scaling settings within the caps and hands the new policy to the runtime,
/// which applies it from the autoscaler's next tick.
pub async fn set_scaling(state: &AppState, project: &Project, change: &scaling::ScalingChange) -> Result<Project, AppError> {
    let limits = scaling_limits(&state.config);
    let settings = scaling::apply(&project.scaling(), change, &limits)?;
    let max_instances = scaling::effective(&settings, &limits).max_instances;
    crate::quotas::check_instances(state, project, max_instances).await?;
    crate::quotas::check_memory(state, project, crate::quotas::MemoryAsk { memory_mb_per_instance: None, max_instances }).await?;
    let project_id = project.id;
    let updated = state.db.run(move |conn| db::projects::set_scaling(conn, project_id, &settings)).await?;
    state.runtime.set_policy(&updated.name, scaling::policy(&updated.scaling(), &limits));
    if let Some(cluster) = &state.cluster {
        cluster.runtime.set_policy(&updated.name, scaling::policy(&updated.scaling(), &limits));
        if updated.live_revision_id.is_some() {
            crate::cluster::publish_policy(state, &updated).await?;
        }
    }
    let details = serde_json::json!({ "from": scaling_json(&project.scaling()), "to": scaling_json(&updated.scaling()) });
    audit::record(&state.db, Event::new(actions::SCALING_CHANGE).target(Target::project(&updated.name)).details(details)).await;
    Ok(updated)
}

fn scaling_json(settings: &crate::db::models::ScalingSettings) -> serde_json::Value {
    serde_json::json!({
        "min_instances": settings.min_instances,
        "max_instances": settings.max_instances,
        "idle_secs": settings.idle_secs,
        "freeze_after_secs": settings.freeze_after_secs,
        "target_concurrency": settings.target_concurrency,
    })
}

/// Sets who may see the app; the gateways follow within seconds.
pub async fn set_visibility(state: &AppState, user: &User, raw_name: &str, raw_visibility: &str) -> Result<Project, AppError> {
    let visibility = orchestrator::gateway::access::Visibility::parse(raw_visibility).ok_or_else(|| {
        AppError::Validation(
            ValidationError::new(
                "unknown_visibility",
                "visibility",
                format!("`{}` is not a visibility; choose public, campus, members or private", raw_visibility.trim()),
            )
            .with("value", raw_visibility.trim()),
        )
    })?;
    let project = get(state, user, raw_name, Action::ChangeVisibility).await?;
    let before = project.visibility.clone();
    let project = state.db.run(move |conn| db::projects::set_visibility(conn, project.id, visibility.as_str())).await?;
    crate::access::publish_project(state, &project).await?;
    let details = serde_json::json!({ "from": before, "to": project.visibility });
    audit::record(&state.db, Event::new(actions::PROJECT_VISIBILITY).target(Target::project(&project.name)).details(details)).await;
    Ok(project)
}

/// Moves a personal project into a group the user owns (or is a maintainer of).
pub async fn move_to_group(state: &AppState, user: &User, raw_name: &str, group_name: &str) -> Result<Project, AppError> {
    let project = get(state, user, raw_name, Action::Delete).await?;
    let (group, role) = crate::groups::get(state, user, group_name).await?;
    if !allows(role, Action::Deploy) {
        return Err(AppError::Forbidden);
    }
    let group_id = group.id;
    let project = state.db.run(move |conn| db::projects::set_group(conn, project.id, Some(group_id))).await?;
    crate::access::publish_project(state, &project).await?;
    let details = serde_json::json!({ "group": group.name });
    audit::record(&state.db, Event::new(actions::PROJECT_MOVE).target(Target::project(&project.name)).details(details)).await;
    Ok(project)
}

/// The name of the group owning `project`, if any.
pub async fn group_name(state: &AppState, project: &Project) -> Result<Option<String>, AppError> {
    let Some(group_id) = project.group_id else { return Ok(None) };
    Ok(state.db.run(move |conn| db::groups::find_by_id(conn, group_id)).await?.map(|g| g.name))
}

/// Parses a role from a form or API body.
pub fn parse_role(text: &str) -> Result<GroupRole, AppError> {
    Ok(GroupRole::parse(text)?)
}

pub async fn set_template(state: &AppState, user: &User, raw_name: &str, template: &str) -> Result<Project, AppError> {
    let project = get(state, user, raw_name, Action::Deploy).await?;
    let template = check_template(template)?;
    let before = project.template.clone();
    let project = state.db.run(move |conn| db::projects::set_template(conn, project.id, &template)).await?;
    let details = serde_json::json!({ "from": before, "to": project.template });
    audit::record(&state.db, Event::new(actions::PROJECT_TEMPLATE).target(Target::project(&project.name)).details(details)).await;
    Ok(project)
}

/// An environment variable as pages and the API show it: a secret's value never appears.
#[derive(Debug, serde::Serialize)]
pub struct EnvView {
    pub name: String,
    pub value: Option<String>,
    pub secret: bool,
}

pub async fn env_view(state: &AppState, project: &Project) -> Result<Vec<EnvView>, AppError> {
    let project_id = project.id;
    let vars = state.db.run(move |conn| db::projects::env(conn, project_id)).await?;
    Ok(vars.into_iter().map(|v| EnvView { name: v.name, value: if v.secret { None } else { v.value }, secret: v.secret }).collect())
}

pub async fn set_env(state: &AppState, project: &Project, raw_name: &str, value: &str, secret: bool) -> Result<(), AppError> {
    let name = EnvVarName::parse(raw_name)?;
    check_env_value(value)?;
    let project_id = project.id;
    let path = secrets::env_path(project.id, name.as_str());
    if secret {
        state.secret_store.put(&path, &SecretValue(value.to_owned())).await.map_err(secret_error)?;
        let text = name.as_str().to_owned();
        state.db.run(move |conn| db::projects::upsert_env(conn, project_id, &text, None)).await?;
    } else {
        let text = name.as_str().to_owned();
        let value = value.to_owned();
        state.db.run(move |conn| db::projects::upsert_env(conn, project_id, &text, Some(&value))).await?;
        // A variable that was secret before no longer is: drop its sealed copy.
        state.secret_store.delete(&path).await.map_err(secret_error)?;
    }
    // The name and whether it is secret; never the value, secret or not.
    let details = serde_json::json!({ "name": name.as_str(), "secret": secret });
    audit::record(&state.db, Event::new(actions::ENV_SET).target(Target::project(&project.name)).details(details)).await;
    Ok(())
}

pub async fn unset_env(state: &AppState, project: &Project, raw_name: &str) -> Result<(), AppError> {
    let name = EnvVarName::parse(raw_name)?;
    let project_id = project.id;
    let text = name.as_str().to_owned();
    let removed = state.db.run(move |conn| db::projects::delete_env(conn, project_id, &text)).await?;
    state.secret_store.delete(&secrets::env_path(project.id, name.as_str())).await.map_err(secret_error)?;
    if !removed {
        return Err(AppError::NotFound("variable"));
    }
    let details = serde_json::json!({ "name": name.as_str() });
    audit::record(&state.db, Event::new(actions::ENV_UNSET).target(Target::project(&project.name)).details(details)).await;
    Ok(())
}

/// Every variable with its real value, secrets included, for starting the app. Never log this.
pub async fn resolved_env(state: &AppState, project_id: i64) -> Result<Vec<(String, SecretValue)>, AppError> {
    let vars = state.db.run(move |conn| db::projects::env(conn, project_id)).await?;
    let mut out = Vec::with_capacity(vars.len());
    for var in vars {
        let value = match var.value {
            Some(value) => SecretValue(value),
            None => state
                .secret_store
                .get(&secrets::env_path(project_id, &var.name))
                .await
                .map_err(secret_error)?
                .unwrap_or_else(|| SecretValue(String::new())),
        };
        out.push((var.name, value));
    }
    Ok(out)
}

/// Deletes the project row and its secrets. Stopping instances and removing data is the caller's
/// job, done first, so a failure leaves the project visible rather than half-gone.
pub async fn delete(state: &AppState, project: &Project) -> Result<(), AppError> {
    state.secret_store.delete_prefix(&secrets::project_prefix(project.id)).await.map_err(secret_error)?;
    let project_id = project.id;
    let domains = state.db.run(move |conn| db::custom_domains::list_for_project(conn, project_id)).await?;
    state.db.run(move |conn| db::projects::delete(conn, project_id)).await?;
    crate::access::unpublish(state, &project.name).await?;
    // The rows went with the project (ON DELETE CASCADE); the gateway must forget them too.
    if !domains.is_empty() {
        let gone: Vec<(String, Option<String>)> = domains.into_iter().map(|row| (row.domain, None)).collect();
        state.cache.publish_domains(&gone, false).await?;
        state.custom_domains.poke();
    }
    Ok(())
}

fn secret_error(error: secrets::SecretError) -> AppError {
    tracing::error!("{error}");
    AppError::Unavailable("the secret store is unavailable; try again in a moment".to_owned())
}
