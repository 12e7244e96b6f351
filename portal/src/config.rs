//! The one `Config` of the `slipway` binary: defaults, then `slipway.toml`, then `SLIPWAY_*`
//! environment variables, then command-line flags, validated once by `Config::load`.
//!
//! Environment variables map to keys by lower-casing and reading `__` as a table separator:
//! `SLIPWAY_PORTAL_ADDR` sets `portal_addr`, `SLIPWAY_SMTP__HOST` sets `smtp.host`. Values are
//! read as TOML where they parse (`["a.ac.kr"]`, `true`, `25`) and as plain strings otherwise.
//! `DATABASE_URL` and `REDIS_URL` are honoured without the prefix, as every tool expects.
//!
//! Nothing below `main` reads the environment: the caller passes the variables in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use orchestrator::build::BuildNetwork;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

/// A refused configuration value, naming the key and the value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config key `{key}` = {value}: {reason}")]
    Invalid { key: String, value: String, reason: String },
    #[error("{source_name}: {message}")]
    Syntax { source_name: String, message: String },
    #[error("cannot read config file {path}: {message}")]
    Unreadable { path: String, message: String },
}

/// How the portal talks to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP; only sensible on loopback or a trusted relay.
    None,
    /// Plain connection upgraded with STARTTLS (usually port 587); refuses to send if the upgrade fails.
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Host name of the SMTP server.
    pub host: String,
    /// Port; defaults to 25 (none), 587 (starttls) or 465 (tls).
    pub port: u16,
    /// `none`, `starttls` (default) or `tls`.
    pub security: SmtpSecurity,
    /// Login user name, if the server wants one.
    pub username: Option<String>,
    /// Login password; held as a secret and never logged.
    pub password: Option<SecretString>,
    /// How long one delivery attempt may take.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct MailConfig {
    /// The From header of every mail, e.g. `Slipway <no-reply@pusan.ac.kr>`.
    pub from: String,
    /// First retry delay after a failed delivery; doubles each attempt.
    pub retry_base: Duration,
    /// Longest delay between two attempts.
    pub retry_max: Duration,
    /// How often the worker looks for due mail when nothing wakes it.
    pub poll_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Sign-up is allowed only for addresses at these domains or their subdomains.
    pub allowed_email_domains: Vec<String>,
    /// How long a verification link works.
    pub verification_ttl: Duration,
    /// How long a password-reset link works.
    pub reset_ttl: Duration,
    /// How long a login session lasts.
    pub session_ttl: Duration,
    /// Failed logins per account within `login_window` before the account is locked for the rest of it.
    pub login_max_failures: u32,
    /// Login attempts per client address within `login_window`.
    pub login_max_per_ip: u32,
    /// The window for both login limits.
    pub login_window: Duration,
    /// Shortest gap between two verification mails for one account.
    pub resend_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct DeployConfig {
    /// Largest ZIP accepted from the portal, the API or the CLI.
    pub max_upload_bytes: u64,
    /// Most files and folders one upload may hold.
    pub max_entries: usize,
    /// Largest total size of an upload once unpacked (zip bombs stop here).
    pub max_unpacked_bytes: u64,
    /// Longest a build may run before it is killed.
    pub build_timeout: Duration,
    /// Memory cap of one build.
    pub build_memory_mb: u64,
    /// Builds running at once; the rest wait in the queue (a deadline rush cannot take the machine down).
    pub max_concurrent_builds: usize,
    /// What network build steps get, from `build_network` and `build_registries`:
    /// `"registries"` (the default): a network namespace of the build's own with only an HTTPS
    /// proxy that reaches the hosts in `build_registries` (and their subdomains) on port 443, and
    /// only at public addresses; `"none"`: no network at all (dependencies must be vendored);
    /// `"host"`: the server's own network, which is weaker: a build script can then reach every
    /// service on the server, including PostgreSQL, Redis and the portal on its loopback (startup
    /// and `slipway doctor` warn about it).
    pub build_network: BuildNetwork,
    /// Hosts running apps may reach over HTTPS (and their subdomains), through the same kind of
    /// proxy as builds; empty (the default) means apps have no outbound network at all.
    pub app_outbound_hosts: Vec<String>,
    /// Accept a host whose sandboxing is weaker than the full set (`slipway doctor` says what is missing).
    pub allow_weak_isolation: bool,
    /// How often projects that follow a Git repository are checked for new commits, for forges
    /// whose webhooks do not reach this server; 0 turns polling off.
    pub git_poll_interval: Duration,
    /// Accept `http://` and `git://` repository URLs on loopback (127.0.0.1, localhost): for
    /// tests and a forge on the same machine. Off: only `https://` URLs elsewhere.
    pub git_allow_loopback: bool,
    /// How often a running app's health check is repeated; `liveness_failures` failures in a row restart it.
    pub liveness_interval: Duration,
    pub liveness_failures: u32,
}

/// Scale-to-zero defaults; projects may set their own within these.
#[derive(Debug, Clone)]
pub struct ScalingConfig {
    /// Idle this long and an app is frozen (memory kept, thawed in milliseconds). `0` turns freezing off.
    pub freeze_after: Duration,
    /// Idle this long and an app is stopped (a cold start next time). `0` keeps apps running.
    pub idle: Duration,
    /// How long a request waits for a waking app before it gets 503.
    pub wake_timeout: Duration,
    /// How long a browser waits before it sees the "starting" page, which reloads itself.
    pub browser_wait: Duration,
    /// Requests held per app while it wakes; more get 503 at once.
    pub max_held_requests: usize,
    /// An open connection with no new request keeps an app awake at most this long.
    pub max_connection_idle: Duration,
    /// User agents (substrings, case-insensitive) that never wake a stopped app.
    pub no_wake_user_agents: Vec<String>,
    /// Requests in flight one instance should carry before another is started (projects may set their own).
    pub target_concurrency: u32,
    /// Time between two autoscaler ticks (each one scrapes the gateway's metrics once).
    pub tick: Duration,
    /// No project runs more instances than this, whatever it asks for.
    pub max_instances_per_app: u32,
    /// No project keeps more than this many instances when idle (`min_instances`); 0 means every
    /// project scales to zero.
    pub max_min_instances: u32,
    /// The longest idle period (`--idle`) a project may ask for before it is stopped.
    pub max_idle: Duration,
    /// Frozen apps are stopped, oldest first, while the host has less memory available than
    /// this (MiB). 0 turns it off.
    pub min_free_memory_mb: u64,
}

/// The web terminal of console projects (`[terminal]`).
#[derive(Debug, Clone)]
pub struct TerminalConfig {
    /// The folder holding xterm.js as `npm ci` in `web/terminal/` lays it out (its `node_modules`).
    /// Defaults to that folder in the source tree this binary was built from; an installation that
    /// moves the binary elsewhere copies the folder and names it here.
    pub assets_dir: PathBuf,
    /// How long one visitor's session may last before its instance is ended.
    pub time_limit: Duration,
    /// Sessions one console project may have open at once; more visitors are asked to wait.
    pub max_sessions: usize,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// Where Slipway keeps its state: the private PostgreSQL and Redis, the outbox, keys.
    pub data_dir: PathBuf,
    /// Address the portal listens on.
    pub portal_addr: SocketAddr,
    /// Address the app gateway listens on.
    pub gateway_addr: SocketAddr,
    /// Address of the gateway's Prometheus metrics (`GET /metrics`, Traefik's metric names); keep
    /// it on loopback or a private network.
    pub metrics_addr: SocketAddr,
    /// Apps answer at `NAME.<apps_domain>`; it must differ from the portal's host.
    pub apps_domain: String,
    /// The portal's address as users reach it, used in mailed links. Defaults to `http://<portal_addr>`.
    pub public_url: Url,
    /// PostgreSQL URL; unset means a private cluster under `data_dir`.
    pub database_url: Option<SecretString>,
    /// Redis URL; unset means a private Redis under `data_dir`.
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key, so several installations (or tests) can share one Redis.
    pub redis_prefix: String,
    /// Send cookies with `Secure`. Defaults to true when `public_url` is https.
    pub secure_cookies: bool,
    /// Outgoing mail server; unset means mail is written to `data_dir/outbox/*.eml`.
    pub smtp: Option<SmtpConfig>,
    pub mail: MailConfig,
    pub accounts: AccountsConfig,
    pub deploy: DeployConfig,
    pub scaling: ScalingConfig,
    pub terminal: TerminalConfig,
    /// Base64 of 32 random bytes sealing secrets at rest; unset means `data_dir/secret.key`, created once.
    pub secret_key: Option<SecretString>,
    /// Log filter in `RUST_LOG` syntax.
    pub log: String,
    /// The `slipway` binary that static apps run as their server; unset means this program.
    pub slipway_binary: Option<PathBuf>,
}

/// Flags given on the command line; they win over the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub portal_addr: Option<String>,
    pub gateway_addr: Option<String>,
    pub metrics_addr: Option<String>,
    pub apps_domain: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<String>,
    portal_addr: Option<String>,
    gateway_addr: Option<String>,
    metrics_addr: Option<String>,
    apps_domain: Option<String>,
    public_url: Option<String>,
    database_url: Option<String>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    secure_cookies: Option<bool>,
    allowed_email_domains: Option<StringList>,
    secret_key: Option<String>,
    log: Option<String>,
    slipway_binary: Option<String>,
    smtp: Option<RawSmtp>,
    mail: Option<RawMail>,
    accounts: Option<RawAccounts>,
    deploy: Option<RawDeploy>,
    scaling: Option<RawScaling>,
    terminal: Option<RawTerminal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerminal {
    assets_dir: Option<String>,
    time_limit: Option<String>,
    max_sessions: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScaling {
    freeze_after: Option<String>,
    idle: Option<String>,
    wake_timeout: Option<String>,
    browser_wait: Option<String>,
    max_held_requests: Option<usize>,
    max_connection_idle: Option<String>,
    no_wake_user_agents: Option<StringList>,
    target_concurrency: Option<u32>,
    tick: Option<String>,
    max_instances_per_app: Option<u32>,
    max_min_instances: Option<u32>,
    max_idle: Option<String>,
    min_free_memory_mb: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploy {
    max_upload_mb: Option<u64>,
    max_entries: Option<usize>,
    max_unpacked_mb: Option<u64>,
    build_timeout: Option<String>,
    build_memory_mb: Option<u64>,
    max_concurrent_builds: Option<usize>,
    build_network: Option<toml::Value>,
    build_registries: Option<StringList>,
    app_outbound_hosts: Option<StringList>,
    allow_weak_isolation: Option<bool>,
    git_poll_interval: Option<String>,
    git_allow_loopback: Option<bool>,
    liveness_interval: Option<String>,
    liveness_failures: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: Option<String>,
    port: Option<u16>,
    security: Option<String>,
    username: Option<String>,
    password: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    from: Option<String>,
    retry_base: Option<String>,
    retry_max: Option<String>,
    poll_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccounts {
    verification_ttl: Option<String>,
    reset_ttl: Option<String>,
    session_ttl: Option<String>,
    login_max_failures: Option<u32>,
    login_max_per_ip: Option<u32>,
    login_window: Option<String>,
    resend_interval: Option<String>,
}

/// A list given either as a TOML array or as one comma-separated string (handy in env vars).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum StringList {
    List(Vec<String>),
    Joined(String),
}

impl StringList {
    fn into_vec(self) -> Vec<String> {
        match self {
            StringList::List(items) => items,
            StringList::Joined(joined) => joined.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect(),
        }
    }
}

impl Config {
    /// Reads the file (if any), overlays the environment and the flags, and validates the result.
    /// `config_path` is the `--config` flag; without it `./slipway.toml` is read when present.
    pub fn load(config_path: Option<&Path>, env: &BTreeMap<String, String>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let (mut table, source_name) = match config_path {
            Some(path) => (read_table(path)?, path.display().to_string()),
            None if Path::new("slipway.toml").exists() => (read_table(Path::new("slipway.toml"))?, "slipway.toml".to_owned()),
            None => (toml::Table::new(), "configuration".to_owned()),
        };
        overlay_env(&mut table, env);
        let flags = [
            ("data_dir", overrides.data_dir.as_ref().map(|p| p.display().to_string())),
            ("portal_addr", overrides.portal_addr.clone()),
            ("gateway_addr", overrides.gateway_addr.clone()),
            ("metrics_addr", overrides.metrics_addr.clone()),
            ("apps_domain", overrides.apps_domain.clone()),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                table.insert(key.to_owned(), toml::Value::String(value));
            }
        }
        Self::from_table(table, &source_name)
    }

    /// Parses a TOML document on its own (no environment, no flags): used by tests and `slipway config check`.
    pub fn from_toml_str(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax { source_name: source_name.to_owned(), message: e.to_string() })?;
        Self::from_table(table, source_name)
    }

    fn from_table(table: toml::Table, source_name: &str) -> Result<Config, ConfigError> {
        let raw = RawConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| ConfigError::Syntax { source_name: source_name.to_owned(), message: e.to_string() })?;
        validate(raw)
    }

    /// The directory mail goes to when no SMTP server is configured.
    pub fn outbox_dir(&self) -> PathBuf {
        self.data_dir.join("outbox")
    }

    /// The artifact limits of this installation.
    pub fn artifact_limits(&self) -> orchestrator::artifact::Limits {
        orchestrator::artifact::Limits {
            max_upload_bytes: self.deploy.max_upload_bytes,
            max_entries: self.deploy.max_entries,
            max_unpacked_bytes: self.deploy.max_unpacked_bytes,
            max_entry_bytes: self.deploy.max_unpacked_bytes,
        }
    }
}

fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| ConfigError::Unreadable { path: path.display().to_string(), message: e.to_string() })?;
    text.parse().map_err(|e: toml::de::Error| ConfigError::Syntax { source_name: path.display().to_string(), message: e.to_string() })
}

fn overlay_env(table: &mut toml::Table, env: &BTreeMap<String, String>) {
    for (plain, key) in [("DATABASE_URL", "database_url"), ("REDIS_URL", "redis_url")] {
        if let Some(value) = env.get(plain).filter(|v| !v.is_empty()) {
            table.insert(key.to_owned(), toml::Value::String(value.clone()));
        }
    }
    for (name, value) in env {
        let Some(path) = name.strip_prefix("SLIPWAY_") else { continue };
        let keys: Vec<String> = path.split("__").map(str::to_lowercase).collect();
        // Other SLIPWAY_ variables belong to other tools (the CLI's SLIPWAY_PORTAL and
        // SLIPWAY_TOKEN, a test's SLIPWAY_BIN): only the configuration's own keys are read.
        if !TOP_LEVEL_KEYS.contains(&keys[0].as_str()) {
            continue;
        }
        let parsed = format!("v = {value}").parse::<toml::Table>().ok().and_then(|mut t| t.remove("v"));
        let value = match parsed {
            Some(v @ (toml::Value::Boolean(_) | toml::Value::Integer(_) | toml::Value::Array(_))) => v,
            _ => toml::Value::String(value.clone()),
        };
        let mut cursor = &mut *table;
        for key in &keys[..keys.len() - 1] {
            let entry = cursor.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            cursor = entry.as_table_mut().expect("just made a table");
        }
        cursor.insert(keys[keys.len() - 1].clone(), value);
    }
}

/// The top-level keys of `slipway.toml`, the only ones `SLIPWAY_*` variables may set.
const TOP_LEVEL_KEYS: &[&str] = &[
    "data_dir",
    "portal_addr",
    "gateway_addr",
    "metrics_addr",
    "apps_domain",
    "public_url",
    "database_url",
    "redis_url",
    "redis_prefix",
    "secure_cookies",
    "allowed_email_domains",
    "secret_key",
    "log",
    "slipway_binary",
    "smtp",
    "mail",
    "accounts",
    "deploy",
    "scaling",
    "terminal",
];

fn invalid(key: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.to_owned(), value: format!("`{value}`"), reason: reason.into() }
}

fn socket_addr(key: &str, value: Option<String>, default: &str) -> Result<SocketAddr, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    text.parse().map_err(|_| invalid(key, &text, format!("not a socket address (expected e.g. {default})")))
}

fn duration(key: &str, value: Option<String>, default: &str) -> Result<Duration, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    orchestrator::duration::parse(&text).map_err(|e| invalid(key, &text, e.to_string()))
}

/// The warning an operator gets (at startup and from `slipway doctor`) for a build network
/// weaker than the registries proxy.
pub fn build_network_warning(network: &BuildNetwork) -> Option<&'static str> {
    match network {
        BuildNetwork::Host => Some(
            "deploy.build_network = \"host\": build steps share this server's network and can reach every service on it, including PostgreSQL, Redis and the portal on its loopback; use \"registries\" (the default) to let builds reach only package registries",
        ),
        BuildNetwork::Registries { .. } | BuildNetwork::None => None,
    }
}

/// `deploy.build_network` and `deploy.build_registries`, checked together.
fn build_network(mode: Option<toml::Value>, registries: Option<StringList>) -> Result<BuildNetwork, ConfigError> {
    let mode = match mode {
        None => "registries".to_owned(),
        Some(toml::Value::String(mode)) => mode,
        Some(other) => {
            return Err(invalid("deploy.build_network", other, "use \"registries\", \"none\" or \"host\" (it is no longer true or false)"))
        }
    };
    let allowed = match registries {
        None => orchestrator::egress::DEFAULT_REGISTRIES.iter().map(|s| (*s).to_owned()).collect(),
        Some(list) => list
            .into_vec()
            .iter()
            .map(|entry| {
                orchestrator::egress::rules::normalize_registry(entry).ok_or_else(|| {
                    invalid(
                        "deploy.build_registries",
                        entry,
                        "not a registry host name such as registry.npmjs.org (its subdomains come with it)",
                    )
                })
            })
            .collect::<Result<Vec<String>, ConfigError>>()?,
    };
    match mode.as_str() {
        "registries" if allowed.is_empty() => {
            Err(invalid("deploy.build_registries", "[]", "list at least one registry, or set deploy.build_network = \"none\""))
        }
        "registries" => Ok(BuildNetwork::Registries { allowed }),
        "none" => Ok(BuildNetwork::None),
        "host" => Ok(BuildNetwork::Host),
        other => Err(invalid("deploy.build_network", other, "use \"registries\" (the default), \"none\" or \"host\"")),
    }
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let data_dir = PathBuf::from(raw.data_dir.unwrap_or_else(|| "./.slipway".to_owned()));
    if data_dir.as_os_str().is_empty() {
        return Err(invalid("data_dir", "", "must name a directory"));
    }
    let portal_addr = socket_addr("portal_addr", raw.portal_addr, "127.0.0.1:8080")?;
    let gateway_addr = socket_addr("gateway_addr", raw.gateway_addr, "127.0.0.1:8000")?;
    // Port 0 lets the system choose (tests do), so two of them never clash.
    if portal_addr == gateway_addr && portal_addr.port() != 0 {
        return Err(invalid("gateway_addr", gateway_addr, "must differ from portal_addr"));
    }
    let metrics_addr = socket_addr("metrics_addr", raw.metrics_addr, "127.0.0.1:9100")?;
    if metrics_addr.port() != 0 && (metrics_addr == gateway_addr || metrics_addr == portal_addr) {
        return Err(invalid("metrics_addr", metrics_addr, "must differ from portal_addr and gateway_addr"));
    }
    let apps_domain = raw.apps_domain.unwrap_or_else(|| "localhost".to_owned()).trim().trim_end_matches('.').to_lowercase();
    if !orchestrator::model::is_dns_name(&apps_domain) {
        return Err(invalid("apps_domain", &apps_domain, "not a DNS name (letters, digits, - and dots)"));
    }
    let public_url_text = raw.public_url.unwrap_or_else(|| format!("http://{portal_addr}"));
    let public_url = Url::parse(&public_url_text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        .ok_or_else(|| invalid("public_url", &public_url_text, "not an http(s) URL"))?;
    if public_url.host_str().map(str::to_lowercase).is_some_and(|h| h == apps_domain || h.ends_with(&format!(".{apps_domain}"))) {
        return Err(invalid(
            "public_url",
            &public_url,
            format!("the portal must not live under the apps domain `{apps_domain}`, or apps could read its cookies"),
        ));
    }
    let secure_cookies = raw.secure_cookies.unwrap_or(public_url.scheme() == "https");
    let database_url = raw.database_url.filter(|s| !s.is_empty());
    if let Some(url) = &database_url {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("database_url", "(hidden)", "must start with postgres:// or postgresql://"));
        }
    }
    let redis_url = raw.redis_url.filter(|s| !s.is_empty());
    if let Some(url) = &redis_url {
        if !["redis://", "rediss://", "redis+unix://", "unix://"].iter().any(|p| url.starts_with(p)) {
            return Err(invalid("redis_url", "(hidden)", "must start with redis://, rediss://, redis+unix:// or unix://"));
        }
    }
    let redis_prefix = raw.redis_prefix.unwrap_or_else(|| "slipway:".to_owned());
    if redis_prefix.is_empty() || redis_prefix.contains(char::is_whitespace) {
        return Err(invalid("redis_prefix", &redis_prefix, "must be non-empty and have no spaces"));
    }

    let allowed_email_domains = raw.allowed_email_domains.map(StringList::into_vec).unwrap_or_default();
    for domain in &allowed_email_domains {
        let bare = domain.trim().trim_start_matches('@');
        if !orchestrator::model::is_dns_name(bare) || !bare.contains('.') {
            return Err(invalid("allowed_email_domains", domain, "not a mail domain such as pusan.ac.kr"));
        }
    }
    if allowed_email_domains.is_empty() {
        return Err(invalid(
            "allowed_email_domains",
            "[]",
            "list at least one university mail domain, e.g. allowed_email_domains = [\"pusan.ac.kr\"]",
        ));
    }

    let smtp = match raw.smtp {
        None => None,
        Some(smtp) => match smtp.host.filter(|h| !h.trim().is_empty()) {
            None => None,
            Some(host) => {
                let security = match smtp.security.as_deref().unwrap_or("starttls") {
                    "none" => SmtpSecurity::None,
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    other => return Err(invalid("smtp.security", other, "use none, starttls or tls")),
                };
                let default_port = match security {
                    SmtpSecurity::None => 25,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Tls => 465,
                };
                let port = smtp.port.unwrap_or(default_port);
                if port == 0 {
                    return Err(invalid("smtp.port", 0, "must be 1 to 65535"));
                }
                Some(SmtpConfig {
                    host,
                    port,
                    security,
                    username: smtp.username.filter(|u| !u.is_empty()),
                    password: smtp.password.filter(|p| !p.is_empty()).map(SecretString::from),
                    timeout: duration("smtp.timeout", smtp.timeout, "20s")?,
                })
            }
        },
    };

    let raw_mail = raw.mail.unwrap_or_default();
    let from = raw_mail.from.unwrap_or_else(|| "Slipway <no-reply@localhost>".to_owned());
    if from.parse::<lettre::message::Mailbox>().is_err() {
        return Err(invalid("mail.from", &from, "not a mailbox such as `Slipway <no-reply@pusan.ac.kr>`"));
    }
    let mail = MailConfig {
        from,
        retry_base: duration("mail.retry_base", raw_mail.retry_base, "5s")?,
        retry_max: duration("mail.retry_max", raw_mail.retry_max, "10m")?,
        poll_interval: duration("mail.poll_interval", raw_mail.poll_interval, "2s")?,
    };
    if mail.retry_base.is_zero() || mail.retry_max < mail.retry_base {
        return Err(invalid(
            "mail.retry_max",
            orchestrator::duration::format(mail.retry_max),
            "must be at least mail.retry_base, which must be above zero",
        ));
    }

    let raw_accounts = raw.accounts.unwrap_or_default();
    let accounts = AccountsConfig {
        allowed_email_domains,
        verification_ttl: duration("accounts.verification_ttl", raw_accounts.verification_ttl, "24h")?,
        reset_ttl: duration("accounts.reset_ttl", raw_accounts.reset_ttl, "1h")?,
        session_ttl: duration("accounts.session_ttl", raw_accounts.session_ttl, "14d")?,
        login_max_failures: raw_accounts.login_max_failures.unwrap_or(5),
        login_max_per_ip: raw_accounts.login_max_per_ip.unwrap_or(30),
        login_window: duration("accounts.login_window", raw_accounts.login_window, "15m")?,
        resend_interval: duration("accounts.resend_interval", raw_accounts.resend_interval, "1m")?,
    };
    for (key, value) in [
        ("accounts.verification_ttl", accounts.verification_ttl),
        ("accounts.reset_ttl", accounts.reset_ttl),
        ("accounts.session_ttl", accounts.session_ttl),
        ("accounts.login_window", accounts.login_window),
    ] {
        if value < Duration::from_secs(1) {
            return Err(invalid(key, orchestrator::duration::format(value), "must be at least 1s"));
        }
    }
    if accounts.login_max_failures == 0 || accounts.login_max_per_ip == 0 {
        return Err(invalid(
            "accounts.login_max_failures",
            accounts.login_max_failures.min(accounts.login_max_per_ip),
            "login limits must be at least 1",
        ));
    }

    let raw_deploy = raw.deploy.unwrap_or_default();
    let build_network = build_network(raw_deploy.build_network, raw_deploy.build_registries)?;
    let deploy = DeployConfig {
        max_upload_bytes: raw_deploy.max_upload_mb.unwrap_or(100) * 1024 * 1024,
        max_entries: raw_deploy.max_entries.unwrap_or(20_000),
        max_unpacked_bytes: raw_deploy.max_unpacked_mb.unwrap_or(500) * 1024 * 1024,
        build_timeout: duration("deploy.build_timeout", raw_deploy.build_timeout, "10m")?,
        build_memory_mb: raw_deploy.build_memory_mb.unwrap_or(2048),
        max_concurrent_builds: raw_deploy.max_concurrent_builds.unwrap_or(2),
        build_network,
        app_outbound_hosts: raw_deploy
            .app_outbound_hosts
            .map(StringList::into_vec)
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                orchestrator::egress::rules::normalize_registry(entry).ok_or_else(|| {
                    invalid("deploy.app_outbound_hosts", entry, "not a host name such as api.openai.com (its subdomains come with it)")
                })
            })
            .collect::<Result<Vec<String>, ConfigError>>()?,
        allow_weak_isolation: raw_deploy.allow_weak_isolation.unwrap_or(false),
        git_poll_interval: duration("deploy.git_poll_interval", raw_deploy.git_poll_interval, "5m")?,
        git_allow_loopback: raw_deploy.git_allow_loopback.unwrap_or(false),
        liveness_interval: duration("deploy.liveness_interval", raw_deploy.liveness_interval, "10s")?,
        liveness_failures: raw_deploy.liveness_failures.unwrap_or(3),
    };
    if deploy.liveness_interval.is_zero() || deploy.liveness_failures == 0 {
        return Err(invalid(
            "deploy.liveness_interval",
            orchestrator::duration::format(deploy.liveness_interval),
            "liveness_interval and liveness_failures must be above zero",
        ));
    }
    for (key, value) in [
        ("deploy.max_upload_mb", deploy.max_upload_bytes),
        ("deploy.max_unpacked_mb", deploy.max_unpacked_bytes),
        ("deploy.build_memory_mb", deploy.build_memory_mb),
        ("deploy.max_entries", deploy.max_entries as u64),
        ("deploy.max_concurrent_builds", deploy.max_concurrent_builds as u64),
    ] {
        if value == 0 {
            return Err(invalid(key, 0, "must be at least 1"));
        }
    }

    let raw_scaling = raw.scaling.unwrap_or_default();
    let scaling = ScalingConfig {
        freeze_after: duration("scaling.freeze_after", raw_scaling.freeze_after, "60s")?,
        idle: duration("scaling.idle", raw_scaling.idle, "5m")?,
        wake_timeout: duration("scaling.wake_timeout", raw_scaling.wake_timeout, "30s")?,
        browser_wait: duration("scaling.browser_wait", raw_scaling.browser_wait, "1s")?,
        max_held_requests: raw_scaling.max_held_requests.unwrap_or(1000),
        max_connection_idle: duration("scaling.max_connection_idle", raw_scaling.max_connection_idle, "10m")?,
        no_wake_user_agents: raw_scaling.no_wake_user_agents.map(StringList::into_vec).unwrap_or_else(|| {
            ["uptimerobot", "pingdom", "statuscake", "googlebot", "bingbot", "yandexbot", "baiduspider", "ahrefsbot", "semrushbot"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect()
        }),
        target_concurrency: raw_scaling.target_concurrency.unwrap_or(10),
        tick: duration("scaling.tick", raw_scaling.tick, "1s")?,
        max_instances_per_app: raw_scaling.max_instances_per_app.unwrap_or(5),
        max_min_instances: raw_scaling.max_min_instances.unwrap_or(1),
        max_idle: duration("scaling.max_idle", raw_scaling.max_idle, "24h")?,
        min_free_memory_mb: raw_scaling.min_free_memory_mb.unwrap_or(512),
    };
    if scaling.wake_timeout.is_zero() || scaling.max_held_requests == 0 {
        return Err(invalid(
            "scaling.wake_timeout",
            orchestrator::duration::format(scaling.wake_timeout),
            "wake_timeout and max_held_requests must be above zero",
        ));
    }
    if scaling.target_concurrency == 0 {
        return Err(invalid("scaling.target_concurrency", 0, "must be at least 1"));
    }
    if scaling.max_instances_per_app == 0 {
        return Err(invalid("scaling.max_instances_per_app", 0, "must be at least 1"));
    }
    if scaling.max_min_instances > scaling.max_instances_per_app {
        return Err(invalid(
            "scaling.max_min_instances",
            scaling.max_min_instances,
            format!("must be at most scaling.max_instances_per_app = {}", scaling.max_instances_per_app),
        ));
    }
    if scaling.tick < Duration::from_millis(100) || scaling.tick > Duration::from_secs(60) {
        return Err(invalid("scaling.tick", orchestrator::duration::format(scaling.tick), "must be between 100ms and 60s"));
    }
    if !scaling.idle.is_zero() && !scaling.freeze_after.is_zero() && scaling.freeze_after > scaling.idle {
        return Err(invalid(
            "scaling.freeze_after",
            orchestrator::duration::format(scaling.freeze_after),
            format!("must be at most scaling.idle = {}", orchestrator::duration::format(scaling.idle)),
        ));
    }

    let raw_terminal = raw.terminal.unwrap_or_default();
    let terminal = TerminalConfig {
        assets_dir: raw_terminal
            .assets_dir
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web/terminal/node_modules"))),
        time_limit: duration("terminal.time_limit", raw_terminal.time_limit, "30m")?,
        max_sessions: raw_terminal.max_sessions.unwrap_or(20),
    };
    if terminal.time_limit < Duration::from_secs(10) {
        return Err(invalid("terminal.time_limit", orchestrator::duration::format(terminal.time_limit), "must be at least 10s"));
    }
    if terminal.max_sessions == 0 {
        return Err(invalid("terminal.max_sessions", 0, "must be at least 1"));
    }

    let secret_key = raw.secret_key.filter(|k| !k.is_empty());
    if let Some(key) = &secret_key {
        crate::crypto::SecretBox::from_base64(key).map_err(|e| invalid("secret_key", "(hidden)", e.to_string()))?;
    }

    Ok(Config {
        data_dir,
        portal_addr,
        gateway_addr,
        metrics_addr,
        apps_domain,
        public_url,
        database_url: database_url.map(SecretString::from),
        redis_url: redis_url.map(SecretString::from),
        redis_prefix,
        secure_cookies,
        smtp,
        mail,
        accounts,
        deploy,
        scaling,
        terminal,
        secret_key: secret_key.map(SecretString::from),
        log: raw.log.unwrap_or_else(|| "info".to_owned()),
        slipway_binary: raw.slipway_binary.map(PathBuf::from),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "allowed_email_domains = [\"pusan.ac.kr\"]\n";

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn check_error(toml_text: &str, expected_fragment: &str) {
        let err = Config::from_toml_str(toml_text, "test.toml").expect_err("config should be refused");
        assert!(err.to_string().contains(expected_fragment), "error {err:?} should mention {expected_fragment:?}");
    }

    #[test]
    fn example_config_in_the_repo_parses() {
        let text = include_str!("../../slipway.example.toml");
        let config = Config::from_toml_str(text, "slipway.example.toml").expect("the example config is valid");
        assert_eq!(config.accounts.allowed_email_domains, vec!["pusan.ac.kr".to_owned()]);
        // The commented-out registry list is the default one.
        let listed = text.split("# build_registries = [").nth(1).expect("the example lists the registries");
        let listed = &listed[..listed.find(']').expect("the list ends")];
        let names: Vec<&str> = listed.split(',').map(|n| n.trim().trim_start_matches('#').trim().trim_matches('"')).collect();
        assert_eq!(names, orchestrator::egress::DEFAULT_REGISTRIES);
    }

    #[test]
    fn terminal_limits_are_checked() {
        check_error(&format!("{MINIMAL}[terminal]\ntime_limit = \"5s\"\n"), "terminal.time_limit");
        check_error(&format!("{MINIMAL}[terminal]\nmax_sessions = 0\n"), "terminal.max_sessions");
        let config = Config::from_toml_str(&format!("{MINIMAL}[terminal]\nassets_dir = \"/srv/xterm\"\n"), "t").expect("valid");
        assert_eq!(config.terminal.assets_dir, PathBuf::from("/srv/xterm"));
        assert_eq!(config.terminal.time_limit, Duration::from_secs(30 * 60));
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let config = Config::from_toml_str(MINIMAL, "test").expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("./.slipway"));
        assert_eq!(config.portal_addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.gateway_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(config.apps_domain, "localhost");
        assert_eq!(config.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(config.smtp.is_none() && config.database_url.is_none() && config.redis_url.is_none());
        assert!(!config.secure_cookies);
    }

    #[test]
    fn errors_name_the_key_and_the_bad_value() {
        check_error("portal_addr = \"abc\"\nallowed_email_domains = [\"x.kr\"]", "config key `portal_addr` = `abc`");
        check_error("apps_domain = \"bad domain\"\nallowed_email_domains = [\"x.kr\"]", "`apps_domain` = `bad domain`");
        check_error("allowed_email_domains = [\"localhost\"]", "`allowed_email_domains` = `localhost`");
        check_error("allowed_email_domains = []", "allowed_email_domains");
        check_error("allowed_email_domains = [\"x.kr\"]\n[smtp]\nhost = \"m\"\nsecurity = \"ssl\"", "`smtp.security` = `ssl`");
        check_error("allowed_email_domains = [\"x.kr\"]\n[accounts]\nsession_ttl = \"14\"", "`accounts.session_ttl` = `14`");
        check_error("allowed_email_domains = [\"x.kr\"]\nportal_adr = \"1.2.3.4:5\"", "unknown field `portal_adr`");
        check_error("allowed_email_domains = [\"x.kr\"]\npublic_url = \"http://portal.localhost:8080\"", "`public_url`");
        check_error("allowed_email_domains = [\"x.kr\"]\n[mail]\nfrom = \"not a mailbox\"", "`mail.from`");
    }

    #[test]
    fn environment_overrides_the_file_and_flags_override_both() {
        let dir = std::env::temp_dir().join(format!("slipway-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("slipway.toml");
        std::fs::write(&path, "portal_addr = \"127.0.0.1:9000\"\nallowed_email_domains = [\"a.ac.kr\"]\n[smtp]\nhost = \"mail.a.ac.kr\"\n")
            .expect("write");
        let vars = env(&[
            ("SLIPWAY_PORTAL_ADDR", "127.0.0.1:9200"),
            ("SLIPWAY_ALLOWED_EMAIL_DOMAINS", "a.ac.kr, b.ac.kr"),
            ("SLIPWAY_SMTP__PORT", "2525"),
            ("SLIPWAY_SMTP__SECURITY", "none"),
            ("SLIPWAY_TOKEN", "slw_ignored_by_the_server"),
            ("SLIPWAY_BIN", "/somewhere/else"),
            ("DATABASE_URL", "postgres://u@127.0.0.1/db"),
        ]);
        let overrides = Overrides { apps_domain: Some("apps.a.ac.kr".into()), ..Default::default() };
        let config = Config::load(Some(&path), &vars, &overrides).expect("valid");
        assert_eq!(config.portal_addr.to_string(), "127.0.0.1:9200");
        assert_eq!(config.accounts.allowed_email_domains, vec!["a.ac.kr".to_owned(), "b.ac.kr".to_owned()]);
        let smtp = config.smtp.expect("smtp from file");
        assert_eq!((smtp.host.as_str(), smtp.port, smtp.security), ("mail.a.ac.kr", 2525, SmtpSecurity::None));
        assert_eq!(config.apps_domain, "apps.a.ac.kr");
        assert!(config.database_url.is_some());
        let typo_in_file = Config::from_toml_str("allowed_email_domains = [\"x.kr\"]\nbin = 1", "t");
        assert!(typo_in_file.is_err(), "unknown keys in the file are still refused");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn builds_reach_the_default_registries_unless_the_installation_says_otherwise() {
        let config = Config::from_toml_str(MINIMAL, "test").expect("valid");
        let BuildNetwork::Registries { allowed } = &config.deploy.build_network else {
            panic!("the default is the registries proxy, got {:?}", config.deploy.build_network)
        };
        assert!(allowed.iter().any(|r| r == "registry.npmjs.org") && allowed.iter().any(|r| r == "files.pythonhosted.org"));
        assert_eq!(allowed.len(), orchestrator::egress::DEFAULT_REGISTRIES.len());

        let with = |deploy: &str| Config::from_toml_str(&format!("{MINIMAL}[deploy]\n{deploy}\n"), "test").map(|c| c.deploy.build_network);
        assert_eq!(with("build_network = \"none\"").expect("valid"), BuildNetwork::None);
        assert_eq!(with("build_network = \"host\"").expect("valid"), BuildNetwork::Host);
        assert_eq!(
            with("build_registries = [\"Registry.NPMJS.org.\", \"npm.pusan.ac.kr\"]").expect("valid"),
            BuildNetwork::Registries { allowed: vec!["registry.npmjs.org".to_owned(), "npm.pusan.ac.kr".to_owned()] }
        );
        let vars = env(&[("SLIPWAY_DEPLOY__BUILD_NETWORK", "host"), ("SLIPWAY_ALLOWED_EMAIL_DOMAINS", "x.kr")]);
        let from_env = Config::load(Some(Path::new("/dev/null")), &vars, &Overrides::default()).expect("valid");
        assert_eq!(from_env.deploy.build_network, BuildNetwork::Host);
    }

    #[test]
    fn a_boolean_or_unknown_build_network_and_bad_registries_are_refused() {
        let base = "allowed_email_domains = [\"x.kr\"]\n[deploy]\n";
        check_error(&format!("{base}build_network = true"), "`deploy.build_network` = `true`: use \"registries\", \"none\" or \"host\"");
        check_error(&format!("{base}build_network = \"open\""), "`deploy.build_network` = `open`");
        check_error(&format!("{base}build_registries = [\"127.0.0.1\"]"), "`deploy.build_registries` = `127.0.0.1`");
        check_error(&format!("{base}build_registries = [\"localhost\"]"), "`deploy.build_registries` = `localhost`");
        check_error(&format!("{base}build_registries = []"), "list at least one registry");
        // Without the proxy the list does not matter.
        Config::from_toml_str(&format!("{base}build_network = \"none\"\nbuild_registries = []"), "t").expect("valid");
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let config = Config::from_toml_str("allowed_email_domains = [\"x.kr\"]\ndatabase_url = \"postgres://u:hunter2@h/db\"\n[smtp]\nhost = \"m\"\npassword = \"hunter3\"", "t").expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("hunter3"), "{printed}");
    }
}
