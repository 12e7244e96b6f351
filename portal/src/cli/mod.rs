//! The `slipway` command line: `up` runs the embedded shape; `admin`, `config` act on the local
//! installation; `login`, `logout`, `whoami` talk to a portal over its API.
//!
//! Client credentials live in `$XDG_CONFIG_HOME/slipway/credentials.toml` (mode 0600);
//! `SLIPWAY_PORTAL` and `SLIPWAY_TOKEN` take precedence, for CI.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio::sync::watch;

mod client;

use client::{api_error, http_client, segment, ApiClient};

use crate::config::{Config, Overrides};
use crate::domain::Role;
use crate::services::PrivateServices;
use crate::startup::Application;

#[derive(Parser, Debug)]
#[command(name = "slipway", version, about = "A self-hosted serverless platform for universities")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run Slipway on this machine: portal, workers, and a private PostgreSQL and Redis when none are configured.
    Up(ServerArgs),
    /// Administer the local installation.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Log in to a portal and store an API token for this user.
    Login {
        /// The portal's URL, e.g. https://slipway.pusan.ac.kr
        #[arg(long)]
        portal: String,
        #[arg(long)]
        email: String,
        /// Read the password from standard input (the only way: it never appears in the process list).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// The token's name, shown on the portal's token page.
        #[arg(long)]
        token_name: Option<String>,
    },
    /// Revoke the stored token and forget it.
    Logout,
    /// Show who the stored token (or SLIPWAY_TOKEN) belongs to.
    Whoami,
    /// Create, list, update and delete projects.
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Groups: create, invite by e-mail, list members, remove, leave, transfer ownership.
    #[command(subcommand)]
    Groups(GroupsCommand),
    /// Set, unset and list a project's environment variables.
    #[command(subcommand)]
    Env(EnvCommand),
    /// Attach, verify, list and detach a project's custom domains (HTTPS follows verification).
    #[command(subcommand)]
    Domains(DomainsCommand),
    /// Deploy a folder or a .zip to a project: upload, follow the build, print the URL or the error.
    Deploy {
        name: String,
        path: PathBuf,
        /// Return once the upload is queued instead of following the build.
        #[arg(long)]
        no_wait: bool,
    },
    /// Show a project's state, live revision, instances and URL.
    Status {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Show the app's output; -f keeps following it.
    Logs {
        name: String,
        #[arg(short, long)]
        follow: bool,
        #[arg(long, default_value_t = 200)]
        lines: usize,
    },
    /// Put an earlier revision back live (default: the one before the live one).
    Rollback { name: String, revision: Option<i32> },
    /// Put a project in the stopped tier now (or the frozen tier with --freeze).
    Sleep {
        name: String,
        #[arg(long)]
        freeze: bool,
    },
    /// Show or set a project's scaling: instances, idle periods, target concurrency (within the
    /// administrator's caps). With no option it shows the settings in effect.
    Scale {
        name: String,
        /// Instances kept even when idle (0 lets the project scale to zero).
        #[arg(long)]
        min: Option<u32>,
        /// Instances never exceeded.
        #[arg(long)]
        max: Option<u32>,
        /// Idle this long (e.g. 5m, 1h) and the app is stopped; its next request is a cold start.
        #[arg(long)]
        idle: Option<String>,
        /// Idle this long (e.g. 60s; 0 never) and the app is frozen; it thaws in milliseconds.
        #[arg(long = "freeze-after")]
        freeze_after: Option<String>,
        /// Requests in flight one instance should carry before another starts.
        #[arg(long = "target-concurrency")]
        target_concurrency: Option<u32>,
        /// Return every setting to the installation's default (before applying the others).
        #[arg(long)]
        reset: bool,
        #[arg(long)]
        json: bool,
    },
    /// Report what isolation this host gives apps and builds, and what is degraded.
    Doctor {
        /// Configuration file whose build network to report (default: ./slipway.toml when present).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Tools for the autoscaler.
    #[command(subcommand)]
    Autoscaler(AutoscalerCommand),
    /// Nomad job specs for the cluster shape.
    #[command(subcommand)]
    Jobspec(JobspecCommand),
    /// Serve a folder of static files (what a static app runs inside its sandbox).
    #[command(hide = true)]
    ServeStatic {
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        spa: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ProjectsCommand {
    /// Create a project; NAME becomes its subdomain.
    Create {
        name: String,
        /// auto (detect at each deploy) or a template id: static, node, vite, python, java, go, console.
        #[arg(long, default_value = "auto")]
        template: String,
    },
    /// List your projects.
    List,
    /// Change who may open the app (owners), its template (maintainers) or move it into a group.
    Update {
        name: String,
        /// public (anyone), campus (anyone logged in), members (owner and group members) or private (owner only).
        #[arg(long)]
        visibility: Option<String>,
        /// auto or a template id.
        #[arg(long)]
        template: Option<String>,
        /// Move a personal project into this group (you must be a maintainer or owner there).
        #[arg(long)]
        group: Option<String>,
    },
    /// Delete a project, its instances, data, revisions and secrets.
    Delete {
        name: String,
        /// Confirm without a prompt (required when standard input is not a terminal).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// Create a group; you become its owner.
    Create { name: String },
    /// List your groups and your role in each.
    List,
    /// Show a group's members (with roles), pending invitations and projects.
    Members { group: String },
    /// Invite an e-mail address (an address without an account joins when it signs up), or change a member's role.
    Invite {
        group: String,
        email: String,
        /// owner, maintainer or viewer.
        #[arg(long, default_value = "viewer")]
        role: String,
    },
    /// Remove a member or a pending invitation.
    Remove { group: String, email: String },
    /// Leave a group (its last owner cannot).
    Leave { group: String },
    /// Make a member the owner; you become a maintainer.
    Transfer { group: String, email: String },
}

#[derive(Subcommand, Debug)]
pub enum AutoscalerCommand {
    /// Replay a recorded trace (one JSON object per line: t, concurrency, requests, ready) through a
    /// policy and print one decision per tick as JSON (t, desired, mode, reason).
    Replay {
        trace: PathBuf,
        /// A policy as JSON (fields of the autoscaler's Policy; missing ones take their defaults).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum JobspecCommand {
    /// Print the Nomad job (JSON, as POST /v1/jobs takes it inside {"Job": ...}) that the app NAME
    /// gets for the project folder at --path. Nothing is contacted; the artifact URL and checksum
    /// are placeholders unless given.
    Render {
        name: String,
        /// The project folder to plan (default: the current folder).
        #[arg(long, default_value = ".")]
        path: PathBuf,
        /// A template id; default: detected from the folder.
        #[arg(long)]
        template: Option<String>,
        #[arg(long, default_value_t = 1)]
        revision: i32,
        #[arg(long, default_value = "apps.example.edu")]
        apps_domain: String,
        #[arg(long)]
        artifact_url: Option<String>,
        /// Hex SHA-256 of the artifact.
        #[arg(long)]
        artifact_sha256: Option<String>,
        /// Register the service in Consul instead of Nomad's own service discovery.
        #[arg(long)]
        consul: bool,
        /// Names of secret variables (read from Vault by the task, never in the job).
        #[arg(long = "secret")]
        secrets: Vec<String>,
        /// The project's id, which names its secrets' Vault paths.
        #[arg(long, default_value_t = 1)]
        project_id: i64,
        /// The cluster's registry (`host:port`, as `nomad.registry`): a folder that brings only a
        /// Dockerfile (or `--template dockerfile`) then renders as the job running
        /// `REGISTRY/slipway/NAME:rREVISION`.
        #[arg(long)]
        registry: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Set a variable: `slipway env set NAME KEY=VALUE [--secret]`.
    Set {
        name: String,
        assignment: String,
        /// Keep the value in the secret store; it is never shown again.
        #[arg(long)]
        secret: bool,
    },
    /// Remove a variable.
    Unset { name: String, key: String },
    /// List variables (secrets without their values).
    List { name: String },
}

#[derive(Subcommand, Debug)]
pub enum DomainsCommand {
    /// Attach DOMAIN to project NAME and print how to prove control of it.
    Add { name: String, domain: String },
    /// List NAME's custom domains with their state and certificate expiry.
    List { name: String },
    /// Check the proof of control of DOMAIN now (DNS TXT, then the HTTP token).
    Verify { name: String, domain: String },
    /// Detach DOMAIN from NAME.
    Remove { name: String, domain: String },
}

#[derive(Args, Debug, Clone)]
pub struct ServerArgs {
    /// Configuration file (default: ./slipway.toml when present).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where Slipway keeps its state (default ./.slipway).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Address of the portal (default 127.0.0.1:8080).
    #[arg(long)]
    pub portal: Option<String>,
    /// Address of the app gateway (default 127.0.0.1:8000).
    #[arg(long)]
    pub gateway: Option<String>,
    /// Address of the gateway's Prometheus metrics, GET /metrics (default 127.0.0.1:9100).
    #[arg(long)]
    pub metrics: Option<String>,
    /// Apps answer at NAME.<apps-domain> (default localhost).
    #[arg(long)]
    pub apps_domain: Option<String>,
    /// Where apps run: local (sandboxes on this machine, the default) or nomad (a cluster).
    #[arg(long)]
    pub runtime: Option<String>,
    /// Nomad's HTTP API for --runtime nomad, e.g. http://127.0.0.1:4646.
    #[arg(long)]
    pub nomad_addr: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum AdminCommand {
    /// Create a verified account without mail (the bootstrap for the first admin).
    CreateUser {
        email: String,
        #[arg(long, default_value = "student")]
        role: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Display name (default: the part of the address before @).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Load and validate the configuration, then print the effective values (secrets hidden).
    Check(ServerArgs),
}

/// The process environment, read once in `main`.
pub struct Env {
    pub vars: BTreeMap<String, String>,
}

impl Env {
    fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn credentials_path(&self) -> anyhow::Result<PathBuf> {
        let base = match (self.get("XDG_CONFIG_HOME"), self.get("HOME")) {
            (Some(xdg), _) => PathBuf::from(xdg),
            (None, Some(home)) => PathBuf::from(home).join(".config"),
            (None, None) => bail!("neither XDG_CONFIG_HOME nor HOME is set; use SLIPWAY_PORTAL and SLIPWAY_TOKEN instead"),
        };
        Ok(base.join("slipway").join("credentials.toml"))
    }
}

fn load_config(args: &ServerArgs, env: &Env) -> anyhow::Result<Config> {
    let overrides = Overrides {
        data_dir: args.data_dir.clone(),
        portal_addr: args.portal.clone(),
        gateway_addr: args.gateway.clone(),
        metrics_addr: args.metrics.clone(),
        apps_domain: args.apps_domain.clone(),
        runtime: args.runtime.clone(),
        nomad_addr: args.nomad_addr.clone(),
    };
    let config_path = args.config.clone().or_else(|| env.get("SLIPWAY_CONFIG").map(PathBuf::from));
    Ok(Config::load(config_path.as_deref(), &env.vars, &overrides)?)
}

pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}

pub async fn run(cli: Cli, env: Env) -> anyhow::Result<()> {
    match cli.command {
        Command::Up(args) => up(load_config(&args, &env)?, &env).await,
        Command::Admin(AdminCommand::CreateUser { email, role, password_stdin: _, name, server }) => {
            let config = load_config(&server, &env)?;
            init_tracing(&config.log);
            let role = Role::parse(&role)?;
            let password = read_password_stdin()?;
            let name = name.unwrap_or_else(|| email.split('@').next().unwrap_or("admin").to_owned());
            with_database(&config, |database_url| async move {
                let db = crate::db::Db::connect(&database_url, 2)?;
                let db_for_migrations = db.clone();
                tokio::task::spawn_blocking(move || db_for_migrations.migrate()).await??;
                let user = crate::accounts::create_verified_user(&db, &email, &password, &name, role)
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", e.public_message()))?;
                println!("created {} ({}), verified, role {}", user.email, user.id, user.role);
                Ok(())
            })
            .await
        }
        Command::Config(ConfigCommand::Check(args)) => {
            let config = load_config(&args, &env)?;
            println!("configuration is valid");
            println!("data_dir = {}", config.data_dir.display());
            println!(
                "portal_addr = {}\ngateway_addr = {}\napps_domain = {}\npublic_url = {}",
                config.portal_addr, config.gateway_addr, config.apps_domain, config.public_url
            );
            println!("database = {}", if config.database_url.is_some() { "configured (hidden)" } else { "private cluster in data_dir" });
            println!("redis = {}", if config.redis_url.is_some() { "configured (hidden)" } else { "private Redis in data_dir" });
            println!("allowed_email_domains = {:?}", config.accounts.allowed_email_domains);
            match &config.smtp {
                Some(smtp) => println!("smtp = {}:{} ({:?})", smtp.host, smtp.port, smtp.security),
                None => println!("smtp = none: mail goes to {}", config.outbox_dir().display()),
            }
            match &config.deploy.build_network {
                orchestrator::build::BuildNetwork::Registries { allowed } => {
                    println!("deploy.build_network = registries: {}", allowed.join(", "))
                }
                orchestrator::build::BuildNetwork::None => println!("deploy.build_network = none"),
                orchestrator::build::BuildNetwork::Host => {
                    println!("deploy.build_network = host (weaker: builds share this server's network)")
                }
            }
            match &config.nomad {
                None => println!("runtime = local (sandboxes on this machine)"),
                Some(nomad) => println!(
                    "runtime = nomad at {} (namespace {}, token {}, discovery {:?}, builds {}, traefik metrics {})",
                    nomad.address,
                    nomad.namespace,
                    if nomad.token.is_some() { "set" } else { "none" },
                    nomad.discovery,
                    if nomad.builds_in_cluster { "on the cluster" } else { "here" },
                    nomad.traefik_metrics_addr
                ),
            }
            match &config.vault {
                None => println!("secrets = sealed in PostgreSQL"),
                Some(vault) => println!("secrets = vault at {} ({}/{}, AppRole)", vault.address, vault.kv_mount, vault.prefix),
            }
            Ok(())
        }
        Command::Login { portal, email, password_stdin: _, token_name } => login(&env, &portal, &email, token_name).await,
        Command::Logout => logout(&env).await,
        Command::Whoami => whoami(&env).await,
        Command::Projects(command) => projects(&env, command).await,
        Command::Groups(command) => groups(&env, command).await,
        Command::Env(command) => env_command(&env, command).await,
        Command::Domains(command) => domains_command(&env, command).await,
        Command::Deploy { name, path, no_wait } => deploy(&env, &name, &path, no_wait).await,
        Command::Status { name, json } => status(&env, &name, json).await,
        Command::Logs { name, follow, lines } => logs(&env, &name, follow, lines).await,
        Command::Rollback { name, revision } => {
            let api = api(&env)?;
            let body = serde_json::json!({ "revision": revision });
            let revision = api.post(&format!("/projects/{}/rollback", segment(&name)), &body).await?;
            println!("revision {} of {name} is live again", revision["number"]);
            Ok(())
        }
        Command::Sleep { name, freeze } => {
            let status = api(&env)?.post(&format!("/projects/{}/sleep", segment(&name)), &serde_json::json!({ "freeze": freeze })).await?;
            println!("{name} is {}", status["state"].as_str().unwrap_or("?"));
            Ok(())
        }
        Command::Scale { name, min, max, idle, freeze_after, target_concurrency, reset, json } => {
            let api = api(&env)?;
            let path = format!("/projects/{}/scaling", segment(&name));
            let changing =
                reset || min.is_some() || max.is_some() || idle.is_some() || freeze_after.is_some() || target_concurrency.is_some();
            let answer = if changing {
                let mut body = serde_json::Map::new();
                let mut put = |key: &str, value: Option<serde_json::Value>| {
                    if let Some(value) = value {
                        body.insert(key.to_owned(), value);
                    }
                };
                put("min_instances", min.map(Into::into));
                put("max_instances", max.map(Into::into));
                put("idle", idle.map(Into::into));
                put("freeze_after", freeze_after.map(Into::into));
                put("target_concurrency", target_concurrency.map(Into::into));
                put("reset", reset.then_some(true.into()));
                api.patch(&path, &serde_json::Value::Object(body)).await?
            } else {
                api.get(&path).await?
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_scaling(&name, &answer);
            }
            Ok(())
        }
        Command::Doctor { config } => doctor(&env, config),
        Command::Autoscaler(AutoscalerCommand::Replay { trace, policy }) => {
            let policy = match policy {
                Some(path) => {
                    serde_json::from_str(&std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?)
                        .with_context(|| format!("{} is not a policy", path.display()))?
                }
                None => orchestrator::autoscaler::Policy::default(),
            };
            let text = std::fs::read_to_string(&trace).with_context(|| format!("cannot read {}", trace.display()))?;
            print!(
                "{}",
                orchestrator::autoscaler::replay_to_string(&policy, &text).map_err(|e| anyhow::anyhow!("{}: {e}", trace.display()))?
            );
            Ok(())
        }
        Command::Jobspec(JobspecCommand::Render {
            name,
            path,
            template,
            revision,
            apps_domain,
            artifact_url,
            artifact_sha256,
            consul,
            secrets,
            project_id,
            registry,
        }) => {
            use orchestrator::runtime::nomad::render;
            let app = orchestrator::model::AppName::parse(&name).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            let files = orchestrator::template::ProjectDir::new(&path);
            let unmet = |unmet: Vec<orchestrator::template::Requirement>| {
                anyhow::anyhow!("{}: {}", path.display(), unmet.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
            };
            if let Some(registry) = registry.as_deref().filter(|registry| !render::is_registry(registry)) {
                anyhow::bail!("--registry {registry:?} must be host or host:port (registry.service.consul:5000)");
            }
            let plan = match (template.as_deref(), registry.as_deref()) {
                (Some(orchestrator::template::DOCKERFILE), None) => {
                    anyhow::bail!("--template dockerfile needs --registry HOST:PORT: the job runs the image pushed there")
                }
                (Some(orchestrator::template::DOCKERFILE), Some(_)) => orchestrator::template::dockerfile_plan(&files).map_err(unmet)?,
                (None | Some("auto"), _) => match orchestrator::template::detect(&files) {
                    Ok(chosen) => orchestrator::template::plan(chosen, &files).map_err(unmet)?,
                    Err(error) if error.has_dockerfile && registry.is_some() => {
                        orchestrator::template::dockerfile_plan(&files).map_err(unmet)?
                    }
                    Err(error) => anyhow::bail!("{}: {error}", path.display()),
                },
                (Some(id), _) => {
                    let chosen = orchestrator::template::get(id).with_context(|| format!("no template {id:?}"))?;
                    orchestrator::template::plan(chosen, &files).map_err(unmet)?
                }
            };
            let built = match (&plan.start, registry) {
                (orchestrator::template::Start::Image { .. }, Some(registry)) => {
                    render::Built::Image(orchestrator::runtime::nomad::image_reference(&registry, app.as_str(), revision))
                }
                _ => render::Built::Archive(render::Artifact {
                    url: artifact_url.unwrap_or_else(|| format!("https://portal.{apps_domain}/artifacts/{name}/r{revision}.tar.gz")),
                    sha256: artifact_sha256.unwrap_or_else(|| "0".repeat(64)),
                    archive: "tar.gz".to_owned(),
                }),
            };
            let deployment = render::Deployment {
                app: app.as_str().to_owned(),
                revision,
                plan,
                built,
                secrets: secrets
                    .into_iter()
                    .map(|secret| render::SecretRef {
                        kv_path: format!("secret/data/slipway/{}", crate::secrets::env_path(project_id, &secret)),
                        name: secret,
                    })
                    .collect(),
            };
            let settings = render::JobSettings {
                apps_domain,
                discovery: if consul { render::Discovery::Consul } else { render::Discovery::Nomad },
                ..render::JobSettings::default()
            };
            print!("{}", render::to_pretty(&render::render_job(&deployment, &settings)?));
            Ok(())
        }
        Command::ServeStatic { root, port, spa } => {
            orchestrator::static_site::serve(root, std::net::SocketAddr::from(([0, 0, 0, 0], port)), spa).await
        }
    }
}

fn read_password_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().read_to_string(&mut password).context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input (pipe it in: `printf %s \"$PASSWORD\" | slipway ... --password-stdin`)");
    }
    Ok(password)
}

/// Runs `work` with a database URL: the configured one, or the private cluster (started for the
/// duration when `slipway up` is not running, reused when it is).
async fn with_database<F, Fut>(config: &Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    if let Some(url) = &config.database_url {
        return work(url.expose_secret().to_owned()).await;
    }
    let mut services = PrivateServices::default();
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let data_dir = std::path::absolute(&config.data_dir)?;
    let result = match services.start_postgres(&data_dir).await {
        Ok(url) => work(url).await,
        Err(e) => Err(e),
    };
    services.stop().await;
    result
}

async fn up(config: Config, _env: &Env) -> anyhow::Result<()> {
    init_tracing(&config.log);
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let data_dir = std::path::absolute(&config.data_dir).context("cannot resolve data_dir")?;
    let mut services = PrivateServices::default();
    let result = serve(config, &data_dir, &mut services).await;
    services.stop().await;
    if result.is_ok() {
        tracing::info!("stopped cleanly");
    }
    result
}

async fn serve(config: Config, data_dir: &std::path::Path, services: &mut PrivateServices) -> anyhow::Result<()> {
    let database_url = match &config.database_url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            let url = services.start_postgres(data_dir).await?;
            tracing::info!("DATABASE_URL is not set: using the private PostgreSQL in {}", data_dir.join("postgres").display());
            url
        }
    };
    let redis_url = match &config.redis_url {
        Some(url) => url.expose_secret().to_owned(),
        None => {
            let url = services.start_redis(data_dir).await?;
            tracing::info!("REDIS_URL is not set: using the private Redis in {}", data_dir.join("redis").display());
            url
        }
    };
    let public_url = config.public_url.clone();
    let app = Application::build(config, &database_url, &redis_url).await?;
    let (stop_sender, stop_receiver) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stopping");
        let _ = stop_sender.send(true);
    });
    tracing::info!(port = app.port(), "portal ready");
    println!("Slipway is running. Portal: {public_url}");
    app.run_until_stopped(stop_receiver).await
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail on unix");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Credentials {
    portal: String,
    token: String,
    token_id: Option<i64>,
}

async fn login(env: &Env, portal: &str, email: &str, token_name: Option<String>) -> anyhow::Result<()> {
    let password = read_password_stdin()?;
    let portal = portal.trim_end_matches('/').to_owned();
    let host = env.get("HOSTNAME").unwrap_or("this computer");
    let name = token_name.unwrap_or_else(|| format!("slipway CLI on {host}"));
    let response = http_client()?
        .post(format!("{portal}/api/v1/tokens"))
        .json(&serde_json::json!({ "email": email, "password": password, "name": name }))
        .send()
        .await
        .with_context(|| format!("cannot reach the portal at {portal}"))?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let body: serde_json::Value = response.json().await.context("the portal's answer is not JSON")?;
    let token = body["token"].as_str().context("the portal's answer has no token")?.to_owned();
    let credentials = Credentials { portal: portal.clone(), token, token_id: body["id"].as_i64() };
    let path = env.credentials_path()?;
    write_private_file(&path, &toml::to_string(&credentials)?)?;
    println!("logged in to {portal} as {email}; token stored in {}", path.display());
    Ok(())
}

fn write_private_file(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn stored_credentials(env: &Env) -> anyhow::Result<Credentials> {
    if let (Some(portal), Some(token)) = (env.get("SLIPWAY_PORTAL"), env.get("SLIPWAY_TOKEN")) {
        return Ok(Credentials { portal: portal.trim_end_matches('/').to_owned(), token: token.to_owned(), token_id: None });
    }
    let path = env.credentials_path()?;
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("not logged in ({} is missing): run `slipway login` or set SLIPWAY_PORTAL and SLIPWAY_TOKEN", path.display())
    })?;
    let mut credentials: Credentials =
        toml::from_str(&text).with_context(|| format!("{} is damaged; run `slipway login` again", path.display()))?;
    if let Some(portal) = env.get("SLIPWAY_PORTAL") {
        credentials.portal = portal.trim_end_matches('/').to_owned();
    }
    if let Some(token) = env.get("SLIPWAY_TOKEN") {
        credentials.token = token.to_owned();
    }
    Ok(credentials)
}

fn api(env: &Env) -> anyhow::Result<ApiClient> {
    let credentials = stored_credentials(env)?;
    ApiClient::new(&credentials.portal, &credentials.token)
}

async fn projects(env: &Env, command: ProjectsCommand) -> anyhow::Result<()> {
    let api = api(env)?;
    match command {
        ProjectsCommand::Create { name, template } => {
            let project = api.post("/projects", &serde_json::json!({ "name": name, "template": template })).await?;
            println!(
                "created {} ({}) -> {}",
                project["name"].as_str().unwrap_or(""),
                project["template"].as_str().unwrap_or(""),
                project["url"].as_str().unwrap_or("")
            );
        }
        ProjectsCommand::List => {
            let listing = api.get("/projects").await?;
            for project in listing["projects"].as_array().into_iter().flatten() {
                println!(
                    "{:<24} {:<10} {}",
                    project["name"].as_str().unwrap_or(""),
                    project["template"].as_str().unwrap_or(""),
                    project["url"].as_str().unwrap_or("")
                );
            }
        }
        ProjectsCommand::Update { name, visibility, template, group } => {
            if visibility.is_none() && template.is_none() && group.is_none() {
                bail!("nothing to change: give --visibility, --template or --group");
            }
            let body = serde_json::json!({ "visibility": visibility, "template": template, "group": group });
            let project = api.patch(&format!("/projects/{}", segment(&name)), &body).await?;
            println!(
                "{}: visibility {}, template {}{}",
                project["name"].as_str().unwrap_or(""),
                project["visibility"].as_str().unwrap_or(""),
                project["template"].as_str().unwrap_or(""),
                project["group"].as_str().map(|g| format!(", group {g}")).unwrap_or_default()
            );
        }
        ProjectsCommand::Delete { name, yes } => {
            if !yes {
                bail!("deleting {name} removes its data, revisions and secrets for good; run again with --yes to confirm");
            }
            api.delete(&format!("/projects/{}", segment(&name))).await?;
            println!("deleted {name}");
        }
    }
    Ok(())
}

async fn groups(env: &Env, command: GroupsCommand) -> anyhow::Result<()> {
    let api = api(env)?;
    match command {
        GroupsCommand::Create { name } => {
            let group = api.post("/groups", &serde_json::json!({ "name": name })).await?;
            println!("created group {} (you are its owner)", group["name"].as_str().unwrap_or(""));
        }
        GroupsCommand::List => {
            let listing = api.get("/groups").await?;
            for group in listing["groups"].as_array().into_iter().flatten() {
                println!("{:<24} {}", group["name"].as_str().unwrap_or(""), group["role"].as_str().unwrap_or(""));
            }
        }
        GroupsCommand::Members { group } => {
            let view = api.get(&format!("/groups/{}", segment(&group))).await?;
            for member in view["members"].as_array().into_iter().flatten() {
                println!("{:<40} {}", member["email"].as_str().unwrap_or(""), member["role"].as_str().unwrap_or(""));
            }
            for invitation in view["invitations"].as_array().into_iter().flatten() {
                println!("{:<40} {} (invited)", invitation["email"].as_str().unwrap_or(""), invitation["role"].as_str().unwrap_or(""));
            }
            for project in view["projects"].as_array().into_iter().flatten() {
                println!("project {} ({})", project["name"].as_str().unwrap_or(""), project["visibility"].as_str().unwrap_or(""));
            }
        }
        GroupsCommand::Invite { group, email, role } => {
            let invited =
                api.post(&format!("/groups/{}/members", segment(&group)), &serde_json::json!({ "email": email, "role": role })).await?;
            let role = invited["role"].as_str().unwrap_or("");
            if invited["member"].as_bool() == Some(true) {
                println!("{email} is a {role} of {group}");
            } else {
                println!("invited {email} to {group} as {role}; the invitation applies when they sign up");
            }
        }
        GroupsCommand::Remove { group, email } => {
            api.delete(&format!("/groups/{}/members/{}", segment(&group), segment(&email))).await?;
            println!("removed {email} from {group}");
        }
        GroupsCommand::Leave { group } => {
            api.post(&format!("/groups/{}/leave", segment(&group)), &serde_json::json!({})).await?;
            println!("you left {group}");
        }
        GroupsCommand::Transfer { group, email } => {
            api.post(&format!("/groups/{}/transfer", segment(&group)), &serde_json::json!({ "email": email })).await?;
            println!("{email} owns {group} now; you are a maintainer");
        }
    }
    Ok(())
}

async fn env_command(env: &Env, command: EnvCommand) -> anyhow::Result<()> {
    let api = api(env)?;
    match command {
        EnvCommand::Set { name, assignment, secret } => {
            let (key, value) = assignment.split_once('=').with_context(|| format!("`{assignment}` is not KEY=VALUE"))?;
            api.put(
                &format!("/projects/{}/env/{}", segment(&name), segment(key)),
                &serde_json::json!({ "value": value, "secret": secret }),
            )
            .await?;
            println!("set {key} on {name}{}", if secret { " (secret)" } else { "" });
        }
        EnvCommand::Unset { name, key } => {
            api.delete(&format!("/projects/{}/env/{}", segment(&name), segment(&key))).await?;
            println!("removed {key} from {name}");
        }
        EnvCommand::List { name } => {
            let listing = api.get(&format!("/projects/{}/env", segment(&name))).await?;
            for var in listing["env"].as_array().into_iter().flatten() {
                let shown = if var["secret"].as_bool() == Some(true) {
                    "(secret)".to_owned()
                } else {
                    var["value"].as_str().unwrap_or("").to_owned()
                };
                println!("{}={shown}", var["name"].as_str().unwrap_or(""));
            }
        }
    }
    Ok(())
}

async fn domains_command(env: &Env, command: DomainsCommand) -> anyhow::Result<()> {
    let api = api(env)?;
    let text = |value: &serde_json::Value, key: &str| value[key].as_str().unwrap_or("-").to_owned();
    match command {
        DomainsCommand::Add { name, domain } => {
            let added = api.post(&format!("/projects/{}/domains", segment(&name)), &serde_json::json!({ "domain": domain })).await?;
            println!("added {} to {name} ({})", text(&added, "domain"), text(&added, "status"));
            println!("prove control with either:");
            println!("  a DNS TXT record  {}  \"{}\"", text(&added, "txt_name"), text(&added, "txt_value"));
            println!("  or point the domain at the gateway, which serves {}", text(&added, "http_url"));
            println!("then run: slipway domains verify {name} {}", text(&added, "domain"));
        }
        DomainsCommand::List { name } => {
            let listing = api.get(&format!("/projects/{}/domains", segment(&name))).await?;
            for domain in listing.as_array().into_iter().flatten() {
                let mut line = format!("{}  {}", text(domain, "domain"), text(domain, "status"));
                if let Some(until) = domain["certificate_not_after"].as_str() {
                    line.push_str(&format!("  certificate until {until}, renews {}", text(domain, "renews_at")));
                }
                if let Some(error) = domain["last_error"].as_str() {
                    line.push_str(&format!("  last error: {error}"));
                }
                println!("{line}");
            }
        }
        DomainsCommand::Verify { name, domain } => {
            let verified =
                api.post(&format!("/projects/{}/domains/{}/verify", segment(&name), segment(&domain)), &serde_json::json!({})).await?;
            println!("{} is {}; the certificate is ordered in the background", text(&verified, "domain"), text(&verified, "status"));
        }
        DomainsCommand::Remove { name, domain } => {
            api.delete(&format!("/projects/{}/domains/{}", segment(&name), segment(&domain))).await?;
            println!("removed {domain} from {name}");
        }
    }
    Ok(())
}

async fn deploy(env: &Env, name: &str, path: &std::path::Path, no_wait: bool) -> anyhow::Result<()> {
    let api = api(env)?;
    let limits = orchestrator::artifact::Limits::default();
    let zip = if path.is_dir() {
        eprintln!("packing {}", path.display());
        let folder = path.to_owned();
        tokio::task::spawn_blocking(move || orchestrator::artifact::pack_dir(&folder, &limits))
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?
    } else {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    eprintln!("uploading {:.1} MB to {}", zip.len() as f64 / 1_048_576.0, api.portal);
    let revision = api
        .send(
            api.request(reqwest::Method::POST, &format!("/projects/{}/deployments?source=cli", segment(name)))
                .header("Content-Type", "application/zip")
                .body(zip),
        )
        .await?;
    let number = revision["number"].as_i64().context("the portal's answer has no revision number")?;
    eprintln!("revision {number} queued ({} template)", revision["template"].as_str().unwrap_or("?"));
    if no_wait {
        return Ok(());
    }
    let response =
        api.request(reqwest::Method::GET, &format!("/projects/{}/revisions/{number}/log?follow=true", segment(name))).send().await?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let mut response = response;
    while let Some(chunk) = response.chunk().await? {
        use std::io::Write;
        std::io::stdout().write_all(&chunk)?;
    }
    let listing = api.get(&format!("/projects/{}/revisions", segment(name))).await?;
    let revision = listing["revisions"].as_array().into_iter().flatten().find(|r| r["number"] == number).cloned().unwrap_or_default();
    match revision["status"].as_str() {
        Some("live") => {
            let status = api.get(&format!("/projects/{}/status", segment(name))).await?;
            println!("{name} is live: {}", status["url"].as_str().unwrap_or(""));
            Ok(())
        }
        other => bail!(
            "revision {number} did not go live ({}): {}",
            other.unwrap_or("unknown"),
            revision["error"].as_str().unwrap_or("no reason given")
        ),
    }
}

async fn status(env: &Env, name: &str, json: bool) -> anyhow::Result<()> {
    let status = api(env)?.get(&format!("/projects/{}/status", segment(name))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        println!("{name}: {}", status["state"].as_str().unwrap_or("?"));
        println!("  revision   {}", status["revision"].as_i64().map(|n| n.to_string()).unwrap_or_else(|| "none".to_owned()));
        println!("  instances  {}", status["instances"]);
        println!("  url        {}", status["url"].as_str().unwrap_or(""));
        if let Some(exit) = status["last_exit"].as_str() {
            println!("  last exit  {exit}");
        }
    }
    Ok(())
}

async fn logs(env: &Env, name: &str, follow: bool, lines: usize) -> anyhow::Result<()> {
    let api = api(env)?;
    let mut response =
        api.request(reqwest::Method::GET, &format!("/projects/{}/logs?follow={follow}&lines={lines}", segment(name))).send().await?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    while let Some(chunk) = response.chunk().await? {
        use std::io::Write;
        std::io::stdout().write_all(&chunk)?;
        std::io::stdout().flush()?;
    }
    Ok(())
}

fn doctor(env: &Env, config: Option<PathBuf>) -> anyhow::Result<()> {
    let host = orchestrator::sandbox::probe();
    let mut checks = orchestrator::sandbox::doctor_report(&host);
    checks.push(build_network_check(env, config));
    for check in checks {
        let mark = if check.ok {
            "ok  "
        } else if check.required {
            "FAIL"
        } else {
            "warn"
        };
        println!("{mark} {:<28} {}", check.name, check.detail);
        if let (false, Some(consequence)) = (check.ok, &check.degraded_consequence) {
            println!("     {:<28} {consequence}", "");
        }
    }
    let missing = orchestrator::sandbox::missing_for_strong(&host);
    if missing.is_empty() {
        println!("\nthis host gives apps full isolation");
        Ok(())
    } else {
        bail!("isolation is incomplete: {}; `slipway up` refuses to run apps unless deploy.allow_weak_isolation = true", missing.join("; "))
    }
}

/// What the configuration gives builds; the default when there is no configuration to read.
fn build_network_check(env: &Env, config: Option<PathBuf>) -> orchestrator::sandbox::Check {
    use orchestrator::build::BuildNetwork;
    let config_path = config.or_else(|| env.get("SLIPWAY_CONFIG").map(PathBuf::from));
    let file_present = config_path.is_some() || std::path::Path::new("slipway.toml").exists();
    let loaded = Config::load(config_path.as_deref(), &env.vars, &Overrides::default());
    let (detail, consequence) = match &loaded {
        Ok(config) => match &config.deploy.build_network {
            BuildNetwork::Registries { allowed } => {
                (format!("registries: HTTPS to {} package registries through the build proxy, nothing else", allowed.len()), None)
            }
            BuildNetwork::None => ("none: builds have no network".to_owned(), None),
            BuildNetwork::Host => (
                "host: builds share this server's network (deploy.build_network = \"host\")".to_owned(),
                Some("a build script can reach every service on this server, including PostgreSQL, Redis and the portal on its loopback; \"registries\" (the default) allows only package registries"),
            ),
        },
        Err(e) if file_present => (format!("cannot read the configuration: {e}"), Some("the build network could not be checked")),
        Err(_) => ("registries (the default; no slipway.toml found)".to_owned(), None),
    };
    orchestrator::sandbox::Check {
        name: "build network".to_owned(),
        ok: consequence.is_none(),
        required: false,
        detail,
        degraded_consequence: consequence.map(str::to_owned),
    }
}

async fn whoami(env: &Env) -> anyhow::Result<()> {
    let credentials = stored_credentials(env)?;
    let response = http_client()?
        .get(format!("{}/api/v1/me", credentials.portal))
        .bearer_auth(&credentials.token)
        .send()
        .await
        .with_context(|| format!("cannot reach the portal at {}", credentials.portal))?;
    if !response.status().is_success() {
        return Err(api_error(response).await);
    }
    let me: serde_json::Value = response.json().await?;
    println!(
        "{} <{}> · {} · {}",
        me["display_name"].as_str().unwrap_or(""),
        me["email"].as_str().unwrap_or(""),
        me["role"].as_str().unwrap_or(""),
        credentials.portal
    );
    Ok(())
}

async fn logout(env: &Env) -> anyhow::Result<()> {
    let path = env.credentials_path()?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("not logged in ({} is missing)", path.display()))?;
    let credentials: Credentials = toml::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    if let Some(token_id) = credentials.token_id {
        let response =
            http_client()?.delete(format!("{}/api/v1/tokens/{token_id}", credentials.portal)).bearer_auth(&credentials.token).send().await;
        match response {
            Ok(r) if r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED => {}
            Ok(r) => eprintln!("warning: {}", api_error(r).await),
            Err(e) => eprintln!("warning: could not revoke the token on the portal: {e}"),
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    println!("logged out of {}", credentials.portal);
    Ok(())
}

fn print_scaling(name: &str, answer: &serde_json::Value) {
    let scaling = &answer["scaling"];
    let custom: Vec<&str> = scaling["custom"].as_array().map(|a| a.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
    let mark = |field: &str| if custom.contains(&field) { "" } else { "  (default)" };
    let period = |secs: &serde_json::Value, never: &str| match secs.as_u64() {
        Some(0) | None => never.to_owned(),
        Some(secs) => orchestrator::duration::format(std::time::Duration::from_secs(secs)),
    };
    println!("{name}");
    println!("  instances           {} to {}{}", scaling["min_instances"], scaling["max_instances"], mark("max_instances"));
    println!("  target concurrency  {}{}", scaling["target_concurrency"], mark("target_concurrency"));
    println!("  freeze after idle   {}{}", period(&scaling["freeze_after_secs"], "never"), mark("freeze_after"));
    println!("  stop after idle     {}{}", period(&scaling["idle_secs"], "never"), mark("idle"));
    let caps = &answer["caps"];
    println!(
        "  caps                max_instances <= {}, min_instances <= {}, idle <= {}",
        caps["max_instances"],
        caps["max_min_instances"],
        period(&caps["max_idle_secs"], "none")
    );
}
