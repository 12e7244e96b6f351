//! PURE: one revision of an app (`Deployment`) plus the cluster's settings (`JobSettings`) →
//! the Nomad job JSON the HTTP API takes (`render_job`), and the register request around it
//! (`register_body`). The fixed part of every job is data, in `jobspecs/nomad/service.json`.
//!
//! The job, for app `quiz` (job ID `quiz`, one group `web`, one task `app`):
//!
//! - the group's `Count` is 1 and its `Scaling` block says `Min: 0` (without it Nomad takes the
//!   registered count as the minimum and scaling to zero fails) and `Max: max_instances`;
//! - bridge networking: the app listens on 8080 inside its namespace (`PORT=8080`), Nomad picks
//!   the host port, and the service registers that port for Traefik;
//! - the service (`Provider` `nomad` by default, `consul` as an option) carries the Traefik tags
//!   (``Host(`quiz.<apps domain>`)``, the entrypoint, the certificate resolver, the forwardAuth
//!   middleware) and an HTTP check on the template's health path. Checks never restart the task
//!   (no `CheckRestart`): a frozen app fails its check, and must not be killed for it;
//! - the docker task runs the template's runtime image; an `artifact` block fetches the built
//!   revision by its signed URL, checked against its SHA-256, and unpacks it into `local/app`.
//!   A revision built from the project's Dockerfile (`Built::Image`, `Start::Image`) runs the
//!   pushed image as it is instead: its own command, no `artifact` block;
//! - secrets are never in the job: a `template` block reads each one from Vault KV v2 with the
//!   task's workload identity and turns it into an environment variable; the task's own Vault
//!   token is kept from the app (`Env: false`, `DisableFile: true`).
//!
//! Re-registration keeps the live count: `register_body(job, true)` sets `PreserveCounts`, so a
//! redeploy neither wakes a sleeping app nor shrinks a busy one.
//!
//! Deliberately absent: no I/O, no clock, no HTTP; Nomad's answers are `client.rs`'s business.
//! Terminal programs (`Start::Terminal`) are not rendered: they run per visitor, not as a service.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::template::{BuildPlan, Start};

/// The fixed part of every app's job (see `jobspecs/nomad/README.md`).
pub const SERVICE_JOB_TEMPLATE: &str = include_str!("../../../../jobspecs/nomad/service.json");

/// The group and task names every app's job uses; the scale endpoint needs the group's.
pub const GROUP: &str = "web";
pub const TASK: &str = "app";
/// The port label and the port the app listens on inside its network namespace.
pub const PORT_LABEL: &str = "http";
pub const APP_PORT: u16 = 8080;

const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One revision of one app, as the cluster runs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Deployment {
    /// The app's name: its subdomain, and the Nomad job's ID.
    pub app: String,
    pub revision: i32,
    /// The revision's plan: start command, environment, health check, resources, runtime image.
    pub plan: BuildPlan,
    /// Where the client nodes get the built revision.
    pub built: Built,
    /// The app's secret variables, by name and place; their values stay in Vault.
    pub secrets: Vec<SecretRef>,
}

/// What a revision was built into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Built {
    /// Files for the template's runtime image, fetched by the task's `artifact` block.
    Archive(Artifact),
    /// An image in the cluster's registry (`REGISTRY/slipway/<app>:r<revision>`), built from the
    /// project's Dockerfile (`Start::Image`): the task runs it as it is, with no `artifact` block.
    Image(String),
}

/// A built revision in the platform's storage, reachable by a signed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// The signed URL. It is a capability: it appears in the job (Nomad needs it), never in logs.
    pub url: String,
    /// Hex SHA-256 of the archive; Nomad refuses a download that does not match.
    pub sha256: String,
    /// The archive's format as go-getter names it (`zip`, `tar.gz`), so a signed URL whose path
    /// has no extension still unpacks.
    pub archive: String,
}

/// One secret environment variable: its name, and the KV v2 API path (`secret/data/...`) whose
/// field `value` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub name: String,
    pub kv_path: String,
}

/// How apps register for routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Discovery {
    /// Nomad's own service discovery (`Provider: "nomad"`): no Consul needed; Traefik's Nomad
    /// provider reads it and ignores health.
    Nomad,
    /// Consul (`Provider: "consul"`): Traefik's Consul Catalog provider drops instances whose
    /// checks fail.
    Consul,
}

/// What is the same for every app in one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSettings {
    /// The Nomad namespace the jobs go into.
    pub namespace: String,
    pub datacenters: Vec<String>,
    /// Apps answer at `NAME.<apps_domain>`.
    pub apps_domain: String,
    /// Traefik's entrypoint for app traffic.
    pub entrypoint: String,
    /// Traefik's ACME resolver; `None` leaves TLS to whatever Traefik has.
    pub cert_resolver: Option<String>,
    /// Traefik middlewares on every app router, provider-qualified (`portal-auth@file`).
    pub middlewares: Vec<String>,
    pub discovery: Discovery,
    /// The `Scaling.Max` of every app.
    pub max_instances: u32,
    /// Nomad counts CPU in MHz; a template's millicores become `millicores × this / 1000`.
    pub cpu_mhz_per_core: u32,
    /// The Vault role tasks log in with through their workload identity; `{project}` is not
    /// expanded here: the caller passes the final name.
    pub vault_role: String,
    /// The audience of the task's `vault_default` identity; must equal the role's
    /// `bound_audiences`.
    pub vault_audience: String,
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            datacenters: vec!["dc1".to_owned()],
            apps_domain: "apps.example.edu".to_owned(),
            entrypoint: "websecure".to_owned(),
            cert_resolver: Some("le".to_owned()),
            middlewares: vec!["portal-auth@file".to_owned()],
            discovery: Discovery::Nomad,
            max_instances: 5,
            cpu_mhz_per_core: 2000,
            vault_role: "nomad-workloads".to_owned(),
            vault_audience: "vault.io".to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("terminal programs are started per visitor by the web terminal, not deployed as services")]
    NotAServer,
    #[error("the start command is empty")]
    EmptyCommand,
    #[error("max_instances = 0, must be at least 1")]
    NoInstances,
    #[error("artifact sha256 = {0:?}, must be 64 hex digits")]
    BadChecksum(String),
    #[error("secret name {0:?} is not an environment variable name")]
    BadSecretName(String),
    #[error("a revision built from a Dockerfile runs its image; it cannot be given an artifact for a template's image")]
    ImageWithArchive,
    #[error("image = {0:?}: only revisions built from a Dockerfile run a built image")]
    ImageWithoutDockerfile(String),
    #[error("dockerfile = {0:?}, must be Dockerfile or Containerfile at the top of the project")]
    BadDockerfile(String),
    #[error("image = {0:?}, must be a registry reference such as registry.service.consul:5000/slipway/quiz:r3")]
    BadImage(String),
}

/// The job for one revision. See the module doc for what it contains.
pub fn render_job(deployment: &Deployment, settings: &JobSettings) -> Result<Value, RenderError> {
    if settings.max_instances == 0 {
        return Err(RenderError::NoInstances);
    }
    let plan = &deployment.plan;
    match (&deployment.built, &plan.start) {
        (Built::Archive(_), Start::Image { .. }) => return Err(RenderError::ImageWithArchive),
        (Built::Image(image), start) if !matches!(start, Start::Image { .. }) => {
            return Err(RenderError::ImageWithoutDockerfile(image.clone()))
        }
        (Built::Image(image), _) if !is_image_reference(image) => return Err(RenderError::BadImage(image.clone())),
        (Built::Archive(artifact), _) if artifact.sha256.len() != 64 || !artifact.sha256.bytes().all(|b| b.is_ascii_hexdigit()) => {
            return Err(RenderError::BadChecksum(artifact.sha256.clone()))
        }
        _ => {}
    }
    if let Some(bad) = deployment.secrets.iter().find(|secret| !is_env_name(&secret.name)) {
        return Err(RenderError::BadSecretName(bad.name.clone()));
    }
    let mut job: Value = serde_json::from_str(SERVICE_JOB_TEMPLATE).expect("jobspecs/nomad/service.json is valid JSON (tested)");
    let app = deployment.app.as_str();

    job["ID"] = json!(app);
    job["Name"] = json!(app);
    job["Namespace"] = json!(settings.namespace);
    job["Datacenters"] = json!(settings.datacenters);
    job["Meta"] = json!({
        "slipway.app": app,
        "slipway.revision": deployment.revision.to_string(),
        "slipway.template": plan.template,
    });

    let group = &mut job["TaskGroups"][0];
    group["Count"] = json!(1);
    group["Scaling"] = json!({"Min": 0, "Max": settings.max_instances, "Enabled": true});
    group["Services"] = json!([service(app, plan, settings)]);

    let task = &mut group["Tasks"][0];
    let image = match &deployment.built {
        Built::Archive(_) => plan.runtime.image.as_str(),
        Built::Image(image) => image.as_str(),
    };
    let (config, mut templates) = task_config(&plan.start, image, plan.resources.max_processes)?;
    task["Config"] = config;
    task["Env"] = json!(environment(plan));
    let mut resources = json!({
        "CPU": (u64::from(plan.resources.cpu_millicores) * u64::from(settings.cpu_mhz_per_core) / 1000).max(1),
        "MemoryMB": plan.resources.memory_mb,
    });
    if plan.resources.memory_mb == 0 {
        resources["MemoryMB"] = json!(16);
    }
    task["Resources"] = resources;
    if let Built::Archive(artifact) = &deployment.built {
        task["Artifacts"] = json!([{
            "GetterSource": artifact.url,
            "GetterOptions": {"checksum": format!("sha256:{}", artifact.sha256.to_ascii_lowercase()), "archive": artifact.archive},
            "GetterMode": "dir",
            "RelativeDest": "local/app",
        }]);
    }
    if !deployment.secrets.is_empty() {
        task["Vault"] = json!({"Role": settings.vault_role, "ChangeMode": "restart", "Env": false, "DisableFile": true});
        task["Identities"] = json!([{"Name": "vault_default", "Audience": [settings.vault_audience], "TTL": 3600 * NANOS_PER_SEC}]);
        templates.push(json!({
            "EmbeddedTmpl": secrets_template(&deployment.secrets),
            "DestPath": "secrets/app.env",
            "Envvars": true,
            "ChangeMode": "restart",
            "ErrMissingKey": true,
        }));
    }
    if !templates.is_empty() {
        task["Templates"] = Value::Array(templates);
    }
    Ok(job)
}

/// The `POST /v1/jobs` body. `preserve_counts` keeps each group's live count: always true when
/// the job already exists, or a redeploy would wake (or shrink) the app.
pub fn register_body(job: Value, preserve_counts: bool) -> Value {
    json!({"Job": job, "PreserveCounts": preserve_counts})
}

/// The `POST /v1/job/:id/scale` body for the app's group.
pub fn scale_body(n_instances: u32, message: &str) -> Value {
    json!({"Count": n_instances, "Target": {"Group": GROUP}, "Message": message})
}

/// The Traefik router (and Nomad service) name of an app: the job ID itself, so Traefik's
/// metrics say `quiz@nomad` and `snapshot::app_for_service` maps it back by name.
pub fn service_name(app: &str) -> String {
    app.to_owned()
}

fn service(app: &str, plan: &BuildPlan, settings: &JobSettings) -> Value {
    let router = service_name(app);
    let mut tags = vec![
        "traefik.enable=true".to_owned(),
        format!("traefik.http.routers.{router}.rule=Host(`{app}.{}`)", settings.apps_domain),
        format!("traefik.http.routers.{router}.entrypoints={}", settings.entrypoint),
        // Served over TLS: with a resolver Traefik obtains the host's certificate, without one
        // it uses its default certificate (or one from the file provider).
        format!("traefik.http.routers.{router}.tls=true"),
    ];
    if let Some(resolver) = &settings.cert_resolver {
        tags.push(format!("traefik.http.routers.{router}.tls.certresolver={resolver}"));
    }
    if !settings.middlewares.is_empty() {
        tags.push(format!("traefik.http.routers.{router}.middlewares={}", settings.middlewares.join(",")));
    }
    let mut service = json!({
        "Name": router,
        "Provider": match settings.discovery { Discovery::Nomad => "nomad", Discovery::Consul => "consul" },
        "PortLabel": PORT_LABEL,
        "Tags": tags,
        "Meta": {"slipway_app": app},
    });
    // Nomad's HTTP check passes on 2xx only (429 is a warning): a template's `healthy_below`
    // cannot be expressed, so a 404 at the health path reads as failing here.
    let health = plan.health.clone().unwrap_or(crate::template::HealthCheck {
        path: "/".to_owned(),
        healthy_below: 500,
        interval_secs: 10,
        timeout_secs: 2,
        grace_secs: 30,
    });
    service["Checks"] = json!([{
        "Name": "alive",
        "Type": "http",
        "Path": health.path,
        "PortLabel": PORT_LABEL,
        "Interval": u64::from(health.interval_secs.max(1)) * NANOS_PER_SEC,
        "Timeout": u64::from(health.timeout_secs.max(1)) * NANOS_PER_SEC,
    }]);
    service
}

/// The docker driver's config and any templates the start kind needs (the static server's).
fn task_config(start: &Start, image: &str, max_processes: u32) -> Result<(Value, Vec<Value>), RenderError> {
    match start {
        Start::Terminal { .. } => Err(RenderError::NotAServer),
        Start::Image { .. } => {
            // The image's own ENTRYPOINT/CMD and working directory: the Dockerfile said them.
            let config = json!({"image": image, "ports": [PORT_LABEL], "pids_limit": max_processes});
            Ok((config, Vec::new()))
        }
        Start::Server { argv } => {
            let argv: Vec<String> = argv.iter().map(|arg| task_path(arg)).collect();
            let (command, args) = argv.split_first().ok_or(RenderError::EmptyCommand)?;
            let config = json!({
                "image": image,
                "command": command,
                "args": args,
                "work_dir": "/local/app",
                "ports": [PORT_LABEL],
                "pids_limit": max_processes,
            });
            Ok((config, Vec::new()))
        }
        Start::Static { root, spa_fallback } => {
            // The platform's static server is not in the cluster: the template's image (nginx)
            // serves the files with the same rules (no dotfiles; index.html only as the SPA
            // fallback). A relative volume is inside the task directory, so it needs no
            // `volumes.enabled` on the client.
            let root = root.trim_matches('/');
            let root = if root.is_empty() || root == "." { "/local/app".to_owned() } else { format!("/local/app/{root}") };
            let fallback = if *spa_fallback { "/index.html" } else { "=404" };
            let nginx = format!(
                "server {{\n  listen {APP_PORT};\n  root {root};\n  location ~ /\\. {{ return 404; }}\n  location / {{ try_files $uri $uri/ {fallback}; }}\n}}\n"
            );
            let config = json!({
                "image": image,
                "ports": [PORT_LABEL],
                "volumes": ["local/nginx.conf:/etc/nginx/conf.d/default.conf"],
                "pids_limit": max_processes.max(16),
            });
            let template = json!({"EmbeddedTmpl": nginx, "DestPath": "local/nginx.conf", "ChangeMode": "restart"});
            Ok((config, vec![template]))
        }
    }
}

/// The templates' paths name the project at `/app`, where the local sandbox mounts it; a Nomad
/// task has it at `/local/app` (the artifact's `RelativeDest` inside the task directory). `/app`
/// and `/app/...` move there; anything else (`/application`, relative paths) is left alone.
/// Worked example (`template_paths_follow_the_task_directory`): `/app/.slipway/cache` →
/// `/local/app/.slipway/cache`.
pub fn task_path(value: &str) -> String {
    match value.strip_prefix("/app") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => format!("/local/app{rest}"),
        _ => value.to_owned(),
    }
}

fn environment(plan: &BuildPlan) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = plan.env.iter().map(|(key, value)| (key.clone(), task_path(value))).collect();
    env.insert("HOST".to_owned(), "0.0.0.0".to_owned());
    env.insert(plan.port_env.clone().unwrap_or_else(|| "PORT".to_owned()), APP_PORT.to_string());
    env
}

/// One `KEY=value` line per secret, read from KV v2 (`.Data.data.value`), quoted by `toJSON` so
/// go-envparse reads any value back unchanged.
fn secrets_template(secrets: &[SecretRef]) -> String {
    let mut text = String::new();
    for secret in secrets {
        text.push_str(&format!(
            "{{{{ with secret {:?} }}}}{}={{{{ .Data.data.value | toJSON }}}}\n{{{{ end }}}}",
            secret.kv_path, secret.name
        ));
    }
    text
}

/// PURE: whether `image` is a plain `host[:port]/path:tag` reference as the image builder pushes
/// it: lower-case path parts, a tag, nothing a shell or JSON could read differently.
pub fn is_image_reference(image: &str) -> bool {
    let Some((name, tag)) = image.rsplit_once(':') else { return false };
    let Some((host, path)) = name.split_once('/') else { return false };
    let tag_ok = !tag.is_empty() && tag.len() <= 128 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    let host_ok = is_registry(host);
    let path_ok = !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
    tag_ok && host_ok && path_ok && !tag.contains('/')
}

/// PURE: whether `registry` is `host` or `host:port` (letters, digits, dots, dashes).
pub fn is_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let host_ok =
        !host.is_empty() && host.split('.').all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    let port_ok = port.is_none_or(|port| port.parse::<u16>().is_ok_and(|port| port > 0));
    host_ok && port_ok
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'_')) && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A JSON object with keys in order, for tests and the CLI.
pub fn to_pretty(job: &Value) -> String {
    let mut text = serde_json::to_string_pretty(job).expect("a JSON value serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
