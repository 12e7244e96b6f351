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

/// Where apps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// In bubblewrap sandboxes on this machine (the embedded shape).
    Local,
    /// As Nomad jobs on a cluster, behind Traefik (`docs/cluster.md`).
    Nomad,
}

/// The cluster shape: how `slipway up --runtime nomad` reaches Nomad and Traefik.
#[derive(Debug, Clone)]
pub struct NomadSettings {
    /// Nomad's HTTP API, e.g. `https://nomad.service.consul:4646`.
    pub address: Url,
    /// The ACL token's secret ID (policy: submit-job, scale-job, read-logs, alloc-lifecycle,
    /// alloc-exec, read-fs on `namespace`); unset on clusters without ACLs. Never logged.
    pub token: Option<SecretString>,
    /// The Nomad namespace apps run in.
    pub namespace: String,
    /// The Nomad region; unset means the agent's own.
    pub region: Option<String>,
    /// PEM file of the CA that signed Nomad's certificates (for an https `address`).
    pub ca_file: Option<PathBuf>,
    /// Datacenters the jobs may run in.
    pub datacenters: Vec<String>,
    /// `nomad` (Nomad's own service discovery; the freeze tier is off, see docs/cluster.md) or
    /// `consul` (the Consul Catalog provider in Traefik).
    pub discovery: orchestrator::runtime::nomad::Discovery,
    /// Traefik's entrypoint for app traffic.
    pub entrypoint: String,
    /// Traefik's ACME certificate resolver for app routers; empty means none.
    pub cert_resolver: Option<String>,
    /// Traefik middlewares on every app router (the portal's forwardAuth is `portal-auth@file`).
    pub middlewares: Vec<String>,
    /// Traefik's Prometheus metrics entrypoint, which the autoscaler scrapes every tick.
    pub traefik_metrics_addr: SocketAddr,
    /// The portal's address as Nomad's client nodes reach it, for the built revisions they
    /// download (`GET /artifacts/...` by signed URL). Unset means `public_url`.
    pub artifact_url: Option<Url>,
    /// How long a signed artifact URL works (a rescheduled allocation downloads it again, so keep
    /// it long).
    pub artifact_url_ttl: Duration,
    /// Nomad counts CPU in MHz: a template's millicores become `millicores × this / 1000`.
    pub cpu_mhz_per_core: u32,
    /// The Vault role a project's tasks log in with; `{project}` becomes the project's id
    /// (`slipway-p{project}`: one role per project, bound to its job, docs/cluster.md §3).
    pub vault_role: String,
    /// Where revisions are built: `here` (the default: in the sandbox on the portal's host, with
    /// the egress proxy) or `cluster` (Nomad batch jobs on the template's build image; their
    /// network is whatever the client nodes allow, so restrict it there).
    pub builds_in_cluster: bool,
    /// The cluster's image registry as `host[:port]` (e.g. `registry.service.consul:5000`), where
    /// projects that bring their own Dockerfile are pushed (`REGISTRY/slipway/<app>:r<revision>`)
    /// by a rootless BuildKit batch job and pulled from by the client nodes' Docker. Unset: Dockerfile
    /// projects are refused, as in the embedded shape.
    pub registry: Option<String>,
    /// The registry speaks plain HTTP (the image builder pushes with `registry.insecure=true`; the
    /// client nodes' Docker must list it in `insecure-registries` too). Default false: HTTPS.
    pub registry_insecure: bool,
}

/// The monitor: host and app samples for the admin dashboard, component health checks, alerts.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Take samples and check components at all. Off: no charts, no alerts.
    pub enabled: bool,
    /// Time between two samples (and health checks). Raw samples are kept 1 h, 1-minute rollups
    /// 24 h, 10-minute rollups 7 d.
    pub interval: Duration,
    /// Mail the admins when the disk holding `data_dir` is fuller than this (percent, 1 to 100).
    pub disk_alert_percent: f64,
    /// Mail the admins when more memory than this is in use (percent of MemTotal minus
    /// MemAvailable, 1 to 100).
    pub memory_alert_percent: f64,
    /// A problem must last this long before it becomes an incident (and a mail).
    pub alert_after: Duration,
    /// An incident clears (one more mail) once its problem has been gone this long.
    pub clear_after: Duration,
    /// How long one component health check may take before the component counts as down.
    pub check_timeout: Duration,
    /// Cluster shape: Nomad's HTTP API (e.g. `http://127.0.0.1:4646`), checked at `/v1/status/leader`.
    pub nomad_url: Option<Url>,
    /// Cluster shape: Consul's HTTP API (e.g. `http://127.0.0.1:8500`), checked at `/v1/status/leader`.
    pub consul_url: Option<Url>,
    /// Cluster shape: Vault's (or OpenBao's) API (e.g. `https://vault:8200`), checked at `/v1/sys/health`.
    pub vault_url: Option<Url>,
    /// Cluster shape: Traefik's ping endpoint base (e.g. `http://127.0.0.1:8082`), checked at `/ping`.
    pub traefik_url: Option<Url>,
}

/// HTTPS at the gateway (`[tls]`).
#[derive(Debug, Clone, Default)]
pub struct TlsConfig {
    /// Address of the gateway's HTTPS listener; unset means the gateway serves plain HTTP only.
    pub https_addr: Option<SocketAddr>,
    /// The port visitors reach HTTPS on (redirects and links to apps); defaults to `https_addr`'s
    /// port. Set it to 443 when a port forward or firewall rule maps 443 to `https_addr`.
    pub public_https_port: Option<u16>,
    /// PEM certificate chain for the apps domain, normally a wildcard `*.<apps_domain>`; re-read
    /// when the file changes, so a renewed certificate needs no restart. Needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Redirect plain-HTTP requests to HTTPS (308) for every host that has a certificate. ACME and
    /// ownership challenges are never redirected.
    pub redirect_http: bool,
}

/// Certificates for custom domains through ACME (`[acme]`).
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`; unset means custom
    /// domains are verified and routed but get no certificate.
    pub directory_url: Option<Url>,
    /// Contact address registered with the CA (expiry and policy notices).
    pub contact_email: Option<String>,
    /// Extra CA certificate(s), PEM, trusted for the directory's own HTTPS (a private CA, pebble).
    pub ca_file: Option<PathBuf>,
    /// How often the certificate worker looks for certificates to issue or renew.
    pub check_interval: Duration,
}

/// Custom domains (`[custom_domains]`).
#[derive(Debug, Clone)]
pub struct CustomDomainsConfig {
    /// The DNS resolver ownership checks ask (TXT and A records); unset means the first
    /// `nameserver` in `/etc/resolv.conf`.
    pub dns_server: Option<SocketAddr>,
    /// The port the HTTP ownership check fetches `http://DOMAIN/.well-known/slipway-challenge/TOKEN`
    /// on: 80, unless the gateway is reached on another port.
    pub http_port: u16,
    /// At most this many custom domains per project.
    pub max_per_project: usize,
    /// Let the HTTP ownership check fetch from loopback, private and other non-public addresses.
    /// Off by default, so an owner cannot make the portal probe the internal network; turn it on
    /// where apps' domains resolve to private addresses (an intranet) or in tests.
    pub http_check_private_addresses: bool,
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
    pub monitor: MonitorConfig,
    pub tls: TlsConfig,
    pub acme: AcmeConfig,
    pub custom_domains: CustomDomainsConfig,
    pub terminal: TerminalConfig,
    /// Base64 of 32 random bytes sealing secrets at rest; unset means `data_dir/secret.key`, created once.
    pub secret_key: Option<SecretString>,
    /// Log filter in `RUST_LOG` syntax.
    pub log: String,
    /// The `slipway` binary that static apps run as their server; unset means this program.
    pub slipway_binary: Option<PathBuf>,
    /// `local` (the default: sandboxes on this machine) or `nomad` (a cluster; needs `[nomad]`).
    pub runtime: RuntimeKind,
    /// Set when `runtime = "nomad"`.
    pub nomad: Option<NomadSettings>,
    /// Secrets in Vault/OpenBao KV v2 instead of sealed in PostgreSQL; the cluster shape needs it
    /// for projects with secret variables (Nomad tasks read them from there).
    pub vault: Option<crate::secrets::vault::VaultSettings>,
}

/// Flags given on the command line; they win over the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub portal_addr: Option<String>,
    pub gateway_addr: Option<String>,
    pub metrics_addr: Option<String>,
    pub apps_domain: Option<String>,
    pub runtime: Option<String>,
    pub nomad_addr: Option<String>,
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
    runtime: Option<String>,
    nomad: Option<RawNomad>,
    vault: Option<RawVault>,
    monitor: Option<RawMonitor>,
    tls: Option<RawTls>,
    acme: Option<RawAcme>,
    custom_domains: Option<RawCustomDomains>,
    terminal: Option<RawTerminal>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNomad {
    address: Option<String>,
    token: Option<String>,
    namespace: Option<String>,
    region: Option<String>,
    ca_file: Option<String>,
    datacenters: Option<StringList>,
    discovery: Option<String>,
    entrypoint: Option<String>,
    cert_resolver: Option<String>,
    middlewares: Option<StringList>,
    traefik_metrics_addr: Option<String>,
    artifact_url: Option<String>,
    artifact_url_ttl: Option<String>,
    cpu_mhz_per_core: Option<u32>,
    vault_role: Option<String>,
    builds: Option<String>,
    registry: Option<String>,
    registry_insecure: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    https_addr: Option<String>,
    public_https_port: Option<u16>,
    cert_file: Option<String>,
    key_file: Option<String>,
    redirect_http: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    directory_url: Option<String>,
    contact_email: Option<String>,
    ca_file: Option<String>,
    check_interval: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVault {
    address: Option<String>,
    approle_mount: Option<String>,
    role_id: Option<String>,
    secret_id: Option<String>,
    kv_mount: Option<String>,
    prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMonitor {
    enabled: Option<bool>,
    interval: Option<String>,
    disk_alert_percent: Option<f64>,
    memory_alert_percent: Option<f64>,
    alert_after: Option<String>,
    clear_after: Option<String>,
    check_timeout: Option<String>,
    nomad_url: Option<String>,
    consul_url: Option<String>,
    vault_url: Option<String>,
    traefik_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomDomains {
    dns_server: Option<String>,
    http_port: Option<u16>,
    max_per_project: Option<usize>,
    http_check_private_addresses: Option<bool>,
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
            ("runtime", overrides.runtime.clone()),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                table.insert(key.to_owned(), toml::Value::String(value));
            }
        }
        if let Some(address) = &overrides.nomad_addr {
            let nomad = table.entry("nomad".to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !nomad.is_table() {
                *nomad = toml::Value::Table(toml::Table::new());
            }
            nomad.as_table_mut().expect("just made a table").insert("address".to_owned(), toml::Value::String(address.clone()));
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
    "runtime",
    "nomad",
    "vault",
    "monitor",
    "tls",
    "acme",
    "custom_domains",
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

fn monitor(raw: RawMonitor) -> Result<MonitorConfig, ConfigError> {
    let url = |key: &str, value: Option<String>| -> Result<Option<Url>, ConfigError> {
        match value.filter(|v| !v.trim().is_empty()) {
            None => Ok(None),
            Some(text) => Url::parse(text.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .map(Some)
                .ok_or_else(|| invalid(key, &text, "not an http(s) URL")),
        }
    };
    let percent = |key: &str, value: Option<f64>, default: f64| -> Result<f64, ConfigError> {
        let value = value.unwrap_or(default);
        if !(1.0..=100.0).contains(&value) {
            return Err(invalid(key, value, "must be a percentage from 1 to 100"));
        }
        Ok(value)
    };
    let config = MonitorConfig {
        enabled: raw.enabled.unwrap_or(true),
        interval: duration("monitor.interval", raw.interval, "10s")?,
        disk_alert_percent: percent("monitor.disk_alert_percent", raw.disk_alert_percent, 90.0)?,
        memory_alert_percent: percent("monitor.memory_alert_percent", raw.memory_alert_percent, 90.0)?,
        alert_after: duration("monitor.alert_after", raw.alert_after, "1m")?,
        clear_after: duration("monitor.clear_after", raw.clear_after, "5m")?,
        check_timeout: duration("monitor.check_timeout", raw.check_timeout, "3s")?,
        nomad_url: url("monitor.nomad_url", raw.nomad_url)?,
        consul_url: url("monitor.consul_url", raw.consul_url)?,
        vault_url: url("monitor.vault_url", raw.vault_url)?,
        traefik_url: url("monitor.traefik_url", raw.traefik_url)?,
    };
    if config.interval < Duration::from_secs(1) || config.interval > Duration::from_secs(60) {
        return Err(invalid("monitor.interval", orchestrator::duration::format(config.interval), "must be between 1s and 60s"));
    }
    if config.check_timeout.is_zero() || config.check_timeout > config.interval.max(Duration::from_secs(5)) {
        return Err(invalid(
            "monitor.check_timeout",
            orchestrator::duration::format(config.check_timeout),
            "must be above zero and at most monitor.interval (or 5s)",
        ));
    }
    Ok(config)
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

    let monitor = monitor(raw.monitor.unwrap_or_default())?;
    let raw_tls = raw.tls.unwrap_or_default();
    let tls = TlsConfig {
        https_addr: raw_tls.https_addr.map(|text| socket_addr("tls.https_addr", Some(text), "0.0.0.0:8443")).transpose()?,
        public_https_port: raw_tls.public_https_port,
        cert_file: raw_tls.cert_file.filter(|p| !p.is_empty()).map(PathBuf::from),
        key_file: raw_tls.key_file.filter(|p| !p.is_empty()).map(PathBuf::from),
        redirect_http: raw_tls.redirect_http.unwrap_or(false),
    };
    if tls.cert_file.is_some() != tls.key_file.is_some() {
        let (key, value) = match &tls.cert_file {
            Some(path) => ("tls.cert_file", path.display().to_string()),
            None => ("tls.key_file", tls.key_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default()),
        };
        return Err(invalid(key, value, "tls.cert_file and tls.key_file go together"));
    }
    if tls.redirect_http && tls.https_addr.is_none() {
        return Err(invalid("tls.redirect_http", true, "needs tls.https_addr"));
    }
    let raw_acme = raw.acme.unwrap_or_default();
    let directory_url = match raw_acme.directory_url.filter(|u| !u.is_empty()) {
        None => None,
        Some(text) => {
            let url = Url::parse(&text).map_err(|e| invalid("acme.directory_url", &text, e.to_string()))?;
            if url.scheme() != "https" {
                return Err(invalid("acme.directory_url", &text, "must be an https URL"));
            }
            Some(url)
        }
    };
    let acme = AcmeConfig {
        directory_url,
        contact_email: raw_acme.contact_email.filter(|e| !e.is_empty()),
        ca_file: raw_acme.ca_file.filter(|p| !p.is_empty()).map(PathBuf::from),
        check_interval: duration("acme.check_interval", raw_acme.check_interval, "1h")?,
    };
    if acme.check_interval < Duration::from_secs(1) {
        return Err(invalid("acme.check_interval", orchestrator::duration::format(acme.check_interval), "must be at least 1s"));
    }
    if acme.directory_url.is_some() && tls.https_addr.is_none() {
        return Err(invalid("acme.directory_url", "(set)", "certificates need an HTTPS listener: set tls.https_addr"));
    }
    let raw_custom = raw.custom_domains.unwrap_or_default();
    let custom_domains = CustomDomainsConfig {
        dns_server: raw_custom
            .dns_server
            .filter(|s| !s.is_empty())
            .map(|text| socket_addr("custom_domains.dns_server", Some(text), "127.0.0.53:53"))
            .transpose()?,
        http_port: raw_custom.http_port.unwrap_or(80),
        max_per_project: raw_custom.max_per_project.unwrap_or(5),
        http_check_private_addresses: raw_custom.http_check_private_addresses.unwrap_or(false),
    };
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

    let runtime = match raw.runtime.as_deref().unwrap_or("local") {
        "local" => RuntimeKind::Local,
        "nomad" => RuntimeKind::Nomad,
        other => return Err(invalid("runtime", other, "use \"local\" (the default) or \"nomad\"")),
    };
    let nomad = match (runtime, raw.nomad) {
        (RuntimeKind::Nomad, raw_nomad) => Some(nomad_settings(raw_nomad.unwrap_or_default())?),
        (RuntimeKind::Local, _) => None,
    };
    let vault = raw.vault.map(vault_settings).transpose()?;

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
        monitor,
        tls,
        acme,
        custom_domains,
        terminal,
        secret_key: secret_key.map(SecretString::from),
        log: raw.log.unwrap_or_else(|| "info".to_owned()),
        slipway_binary: raw.slipway_binary.map(PathBuf::from),
        runtime,
        nomad,
        vault,
    })
}

fn nomad_settings(raw: RawNomad) -> Result<NomadSettings, ConfigError> {
    let http_url = |key: &str, text: &str| {
        Url::parse(text)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| invalid(key, text, "not an http(s) URL"))
    };
    let address_text = raw
        .address
        .filter(|a| !a.trim().is_empty())
        .ok_or_else(|| invalid("nomad.address", "", "runtime = \"nomad\" needs Nomad's address (nomad.address, or --nomad-addr URL)"))?;
    let address = http_url("nomad.address", &address_text)?;
    let namespace = raw.namespace.unwrap_or_else(|| "default".to_owned());
    if namespace.is_empty() || namespace.contains(|c: char| c.is_whitespace() || c == '/') {
        return Err(invalid("nomad.namespace", &namespace, "not a Nomad namespace name"));
    }
    let datacenters = raw.datacenters.map(StringList::into_vec).unwrap_or_else(|| vec!["dc1".to_owned()]);
    if datacenters.is_empty() {
        return Err(invalid("nomad.datacenters", "[]", "list at least one datacenter"));
    }
    let discovery = match raw.discovery.as_deref().unwrap_or("nomad") {
        "nomad" => orchestrator::runtime::nomad::Discovery::Nomad,
        "consul" => orchestrator::runtime::nomad::Discovery::Consul,
        other => return Err(invalid("nomad.discovery", other, "use \"nomad\" (the default) or \"consul\"")),
    };
    let ca_file = raw.ca_file.filter(|f| !f.is_empty()).map(PathBuf::from);
    if let Some(file) = &ca_file {
        if !file.is_file() {
            return Err(invalid("nomad.ca_file", file.display(), "no such file"));
        }
    }
    let artifact_url = raw.artifact_url.map(|text| http_url("nomad.artifact_url", &text)).transpose()?;
    let artifact_url_ttl = duration("nomad.artifact_url_ttl", raw.artifact_url_ttl, "7d")?;
    if artifact_url_ttl < Duration::from_secs(60) {
        return Err(invalid("nomad.artifact_url_ttl", orchestrator::duration::format(artifact_url_ttl), "must be at least 1m"));
    }
    let cpu_mhz_per_core = raw.cpu_mhz_per_core.unwrap_or(2000);
    if cpu_mhz_per_core == 0 {
        return Err(invalid("nomad.cpu_mhz_per_core", 0, "must be at least 1"));
    }
    let builds_in_cluster = match raw.builds.as_deref().unwrap_or("here") {
        "here" => false,
        "cluster" => true,
        other => return Err(invalid("nomad.builds", other, "use \"here\" (the default) or \"cluster\"")),
    };
    let registry = raw.registry.filter(|r| !r.is_empty());
    if let Some(registry) = &registry {
        if !orchestrator::runtime::nomad::render::is_registry(registry) {
            return Err(invalid(
                "nomad.registry",
                registry,
                "must be host or host:port, without a scheme or path (registry.service.consul:5000)",
            ));
        }
    }
    let vault_role = raw.vault_role.unwrap_or_else(|| "slipway-p{project}".to_owned());
    if vault_role.is_empty() {
        return Err(invalid("nomad.vault_role", "", "must name a Vault role"));
    }
    Ok(NomadSettings {
        address,
        token: raw.token.filter(|t| !t.is_empty()).map(SecretString::from),
        namespace,
        region: raw.region.filter(|r| !r.is_empty()),
        ca_file,
        datacenters,
        discovery,
        entrypoint: raw.entrypoint.unwrap_or_else(|| "websecure".to_owned()),
        cert_resolver: Some(raw.cert_resolver.unwrap_or_else(|| "le".to_owned())).filter(|r| !r.is_empty()),
        middlewares: raw.middlewares.map(StringList::into_vec).unwrap_or_else(|| vec!["portal-auth@file".to_owned()]),
        traefik_metrics_addr: socket_addr("nomad.traefik_metrics_addr", raw.traefik_metrics_addr, "127.0.0.1:8082")?,
        artifact_url,
        artifact_url_ttl,
        cpu_mhz_per_core,
        vault_role,
        builds_in_cluster,
        registry,
        registry_insecure: raw.registry_insecure.unwrap_or(false),
    })
}

fn vault_settings(raw: RawVault) -> Result<crate::secrets::vault::VaultSettings, ConfigError> {
    let address = raw.address.unwrap_or_default();
    if Url::parse(&address).ok().filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some()).is_none() {
        return Err(invalid("vault.address", &address, "not an http(s) URL"));
    }
    let role_id =
        raw.role_id.filter(|r| !r.is_empty()).ok_or_else(|| invalid("vault.role_id", "", "the portal's AppRole role ID is needed"))?;
    let secret_id = raw
        .secret_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("vault.secret_id", "(hidden)", "the portal's AppRole secret ID is needed"))?;
    Ok(crate::secrets::vault::VaultSettings {
        address,
        approle_mount: raw.approle_mount.unwrap_or_else(|| "approle".to_owned()),
        role_id,
        secret_id: SecretString::from(secret_id),
        kv_mount: raw.kv_mount.unwrap_or_else(|| "secret".to_owned()),
        prefix: raw.prefix.unwrap_or_else(|| "slipway".to_owned()),
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
    fn monitor_settings_are_checked() {
        let config = Config::from_toml_str(MINIMAL, "test").expect("valid");
        assert!(config.monitor.enabled && config.monitor.nomad_url.is_none());
        assert_eq!((config.monitor.interval, config.monitor.disk_alert_percent), (Duration::from_secs(10), 90.0));
        check_error("allowed_email_domains = [\"x.kr\"]\n[monitor]\ndisk_alert_percent = 150.0", "`monitor.disk_alert_percent` = `150`");
        check_error("allowed_email_domains = [\"x.kr\"]\n[monitor]\ninterval = \"0s\"", "`monitor.interval` = `0`");
        check_error("allowed_email_domains = [\"x.kr\"]\n[monitor]\nvault_url = \"vault:8200\"", "`monitor.vault_url` = `vault:8200`");
        let cluster = Config::from_toml_str("allowed_email_domains = [\"x.kr\"]\n[monitor]\nnomad_url = \"http://127.0.0.1:4646\"", "t")
            .expect("valid");
        assert_eq!(cluster.monitor.nomad_url.map(|u| u.to_string()).as_deref(), Some("http://127.0.0.1:4646/"));
    }

    #[test]
    fn tls_and_acme_settings_are_read_and_checked() {
        let text = format!(
            "{MINIMAL}[tls]\nhttps_addr = \"127.0.0.1:8443\"\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\nredirect_http = true\n\
             [acme]\ndirectory_url = \"https://127.0.0.1:14000/dir\"\ncheck_interval = \"10m\"\n[custom_domains]\ndns_server = \"127.0.0.1:8053\"\nhttp_port = 8000\n"
        );
        let config = Config::from_toml_str(&text, "test").expect("valid");
        assert_eq!(config.tls.https_addr.map(|a| a.to_string()).as_deref(), Some("127.0.0.1:8443"));
        assert!(config.tls.redirect_http && config.tls.cert_file.is_some() && config.tls.key_file.is_some());
        assert_eq!(config.acme.check_interval, Duration::from_secs(600));
        assert_eq!(config.custom_domains.http_port, 8000);
        let defaults = Config::from_toml_str(MINIMAL, "test").expect("valid");
        assert!(defaults.tls.https_addr.is_none() && defaults.acme.directory_url.is_none() && !defaults.tls.redirect_http);
        assert_eq!((defaults.custom_domains.http_port, defaults.custom_domains.max_per_project), (80, 5));
        check_error(
            &format!("{MINIMAL}[tls]\ncert_file = \"/c.pem\"\n"),
            "`tls.cert_file` = `/c.pem`: tls.cert_file and tls.key_file go together",
        );
        check_error(&format!("{MINIMAL}[tls]\nredirect_http = true\n"), "`tls.redirect_http` = `true`: needs tls.https_addr");
        check_error(&format!("{MINIMAL}[tls]\nhttps_addr = \"x\"\n"), "`tls.https_addr` = `x`");
        check_error(&format!("{MINIMAL}[acme]\ndirectory_url = \"http://ca.test/dir\"\n"), "must be an https URL");
        check_error(&format!("{MINIMAL}[acme]\ndirectory_url = \"https://ca.test/dir\"\n"), "set tls.https_addr");
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
