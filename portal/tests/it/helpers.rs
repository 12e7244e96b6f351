//! Test harness: `spawn_app` starts the portal on a free port against a fresh database and a
//! fresh Redis prefix; `SmtpServer` runs aiosmtpd; mail is read back from the outbox or maildir.
//!
//! PostgreSQL and Redis come from `TEST_DATABASE_URL` / `TEST_REDIS_URL`, else the local
//! services on 127.0.0.1:5432 and :6379 (what `scripts/setup.sh test` starts), else a private
//! pair started once per test process with the same code `slipway up` uses.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diesel::{Connection, PgConnection, QueryDsl, RunQueryDsl};
use portal::config::Config;
use portal::startup::Application;
use reqwest::cookie::CookieStore;
use tokio::sync::watch;

pub const PASSWORD: &str = "correct horse battery";

pub struct Backends {
    pub admin_database_url: String,
    pub redis_url: String,
}

/// The PostgreSQL server (as a superuser URL) and Redis the tests use, found or started once.
pub fn backends() -> &'static Backends {
    static BACKENDS: OnceLock<Backends> = OnceLock::new();
    BACKENDS.get_or_init(|| {
        let database =
            without_tls(&std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()));
        let redis = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
        let database_ok = PgConnection::establish(&database).is_ok();
        let redis_ok = redis::Client::open(redis.as_str()).and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2))).is_ok();
        if database_ok && redis_ok {
            return Backends { admin_database_url: database, redis_url: redis };
        }
        eprintln!(
            "test backends: {database} reachable = {database_ok}, {redis} reachable = {redis_ok}; starting private PostgreSQL and Redis"
        );
        start_private_backends(database_ok.then_some(database), redis_ok.then_some(redis))
    })
}

/// Starts private services on a thread whose runtime lives as long as the test process, so the
/// children (which die with that thread) outlive every test.
fn start_private_backends(database: Option<String>, redis: Option<String>) -> Backends {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the test services");
        runtime.block_on(async move {
            let dir = std::env::temp_dir().join(format!("slipway-test-services-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir for test services");
            let mut services = portal::services::PrivateServices::default();
            let database_url = match database {
                Some(url) => url,
                None => services.start_postgres(&dir).await.expect("private PostgreSQL for tests"),
            };
            let redis_url = match redis {
                Some(url) => url,
                None => services.start_redis(&dir).await.expect("private Redis for tests"),
            };
            // The private cluster's user `slipway` is a superuser, so its URL serves for CREATE DATABASE.
            sender.send((database_url, redis_url)).expect("the test thread waits");
            std::future::pending::<()>().await;
        });
    });
    let (admin_database_url, redis_url) = receiver.recv().expect("test services started");
    Backends { admin_database_url, redis_url }
}

/// Test connections go to a server on this machine, where TLS buys nothing; without it libpq never
/// starts OpenSSL, whose clean-up at process exit can crash (SIGSEGV in libcrypto) while pool
/// threads of finished tests still hold connections. An explicit `sslmode` is kept.
fn without_tls(url: &str) -> String {
    if url.contains("sslmode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&sslmode=disable")
    } else {
        format!("{url}?sslmode=disable")
    }
}

/// A database URL with the database name replaced.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let cut = base.rfind('/').expect("a database URL has a path");
    let mut out = format!("{}/{name}", &base[..cut]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// A database that exists for one test and is dropped afterwards.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub fn create() -> Self {
        let backends = backends();
        let name = format!("slipway_test_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::establish(&backends.admin_database_url).expect("connect to the test PostgreSQL");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create the test database");
        Self { url: with_database(&backends.admin_database_url, &name), name }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&backends().admin_database_url) {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut admin);
        }
    }
}

/// Moves the test database's project ids to a range no other test in this process uses.
///
/// Every test has a fresh database, so without this each one's first project would be id 1. The
/// build worker names a build's sandbox (and so its cgroup) `build-<project id>-r<n>-s<step>` and
/// picks the sandbox uid from the project id; two tests building at once would then share a cgroup
/// name, and `Cgroup::create` empties a same-named group first, killing the other test's build. In
/// a real installation ids come from one database and never repeat.
fn give_projects_unique_ids(database_url: &str) {
    use std::sync::atomic::{AtomicI64, Ordering};
    static NEXT_BLOCK: AtomicI64 = AtomicI64::new(0);
    // Blocks of 100 ids, starting at a per-process offset so two test processes rarely overlap;
    // the sandbox uid is 200000 + id mod 1000000, so ids stay well below a million.
    let offset = i64::from(std::process::id() % 2000) * 100;
    let block = NEXT_BLOCK.fetch_add(1, Ordering::Relaxed);
    let start = 1000 + (offset + block * 100) % 800_000;
    let mut conn = PgConnection::establish(database_url).expect("connect to the test database");
    diesel::sql_query(format!("ALTER SEQUENCE projects_id_seq RESTART WITH {start}")).execute(&mut conn).expect("move the project ids");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0").local_addr().expect("local addr").port()
}

/// Debian's aiosmtpd writing every message into a maildir.
pub struct SmtpServer {
    pub maildir: PathBuf,
    child: std::process::Child,
}

impl SmtpServer {
    pub fn start_on(port: u16, maildir: &Path) -> Self {
        // aiosmtpd's Mailbox creates the maildir with its tmp/new/cur folders only when it is absent.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).expect("maildir");
        }
        let child = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-u", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start aiosmtpd (Debian package python3-aiosmtpd; scripts/setup.sh test installs it)");
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start on port {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { maildir: maildir.to_owned(), child }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A browser-like client: its own cookie jar, no redirects followed.
///
/// Idle connections are dropped after 2 s, below actix's 5 s keep-alive: otherwise, on a busy
/// machine, a request can go out on a pooled connection at the moment the portal closes it, and
/// fails with `IncompleteMessage` (a POST is never retried). `hostile_zips` hit that reliably
/// with the CPU saturated.
fn test_client(jar: Arc<reqwest::cookie::Jar>) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_provider(jar)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(2))
        .build()
        .expect("client")
}

pub struct TestApp {
    pub address: String,
    /// The app gateway's port: apps answer at `http://NAME.localhost:<gateway_port>`.
    pub gateway_port: u16,
    /// The gateway's `/metrics` listener.
    pub metrics_port: u16,
    /// The gateway's HTTPS listener, when the test configured `[tls] https_addr`.
    pub https_port: Option<u16>,
    pub database: TestDatabase,
    pub data_dir: PathBuf,
    pub jar: Arc<reqwest::cookie::Jar>,
    pub client: reqwest::Client,
    pub state: portal::state::AppState,
    /// Where mail lands: the outbox, or the SMTP server's maildir.
    pub mail_dir: PathBuf,
    /// Kept so the SMTP server lives as long as the app.
    _smtp: Option<SmtpServer>,
    shutdown: watch::Sender<bool>,
}

/// How a test wants its portal: SMTP or the outbox, and extra configuration lines.
#[derive(Default)]
pub struct AppOptions {
    /// Deliver through a real SMTP server started for the test.
    pub smtp: bool,
    /// Point SMTP at this port without starting a server (to test a dead mail server).
    pub smtp_port_without_server: Option<u16>,
    /// Extra TOML appended to the configuration (top-level keys first, then tables).
    pub extra_top: String,
    pub extra_accounts: String,
    /// Extra lines for the `[deploy]` table, e.g. `max_unpacked_mb = 1`.
    pub extra_deploy: String,
    /// Extra lines for the `[scaling]` table, e.g. `tick = "200ms"`.
    pub extra_scaling: String,
    /// Use this Redis instead of the shared one.
    pub redis_url: Option<String>,
    /// Put the gateway on this port instead of a free one the system picks (for a test whose
    /// other servers must know it in advance, such as pebble's HTTP-01 port).
    pub gateway_port: Option<u16>,
    /// Extra TOML tables appended last (e.g. `[tls]`, `[acme]`).
    pub extra_tables: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(options: AppOptions) -> TestApp {
    portal::install_tls_provider();
    let backends = backends();
    let database = TestDatabase::create();
    let data_dir = std::env::temp_dir().join(format!("slipway-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let smtp_port = options.smtp_port_without_server.or(options.smtp.then(free_port));
    let smtp = options.smtp.then(|| SmtpServer::start_on(smtp_port.expect("port chosen"), &data_dir.join("maildir")));
    let smtp_table =
        smtp_port.map(|p| format!("[smtp]\nhost = \"127.0.0.1\"\nport = {p}\nsecurity = \"none\"\ntimeout = \"2s\"\n")).unwrap_or_default();
    let config_text = format!(
        "data_dir = \"{dir}\"\nportal_addr = \"127.0.0.1:0\"\ngateway_addr = \"127.0.0.1:{gateway_port}\"\nmetrics_addr = \"127.0.0.1:0\"\nallowed_email_domains = [\"pusan.ac.kr\"]\nredis_prefix = \"test:{prefix}:\"\nlog = \"warn\"\nslipway_binary = \"{slipway}\"\n{extra_top}\n\
         [mail]\nfrom = \"Slipway <no-reply@pusan.ac.kr>\"\nretry_base = \"200ms\"\nretry_max = \"1s\"\npoll_interval = \"100ms\"\n\
         [accounts]\n{extra_accounts}\n{smtp_table}\n[deploy]\n{extra_deploy}\n[scaling]\n{extra_scaling}\n{extra_tables}\n",
        dir = data_dir.display(),
        prefix = uuid::Uuid::new_v4().simple(),
        extra_top = options.extra_top,
        slipway = env!("CARGO_BIN_EXE_slipway"),
        extra_accounts = options.extra_accounts,
        extra_deploy = options.extra_deploy,
        extra_scaling = options.extra_scaling,
        gateway_port = options.gateway_port.unwrap_or(0),
        extra_tables = options.extra_tables,
    );
    let config = Config::from_toml_str(&config_text, "test config").expect("test config is valid");
    let redis_url = options.redis_url.clone().unwrap_or_else(|| backends.redis_url.clone());
    let app = Application::build(config, &database.url, &redis_url).await.expect("the portal builds");
    give_projects_unique_ids(&database.url);
    let state = app.state().clone();
    let gateway_port = app.gateway_port();
    let metrics_port = app.metrics_port();
    let https_port = app.https_port();
    let port = app.port();
    let (shutdown, receiver) = watch::channel(false);
    tokio::spawn(app.run_until_stopped(receiver));
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = test_client(jar.clone());
    let mail_dir = match &smtp {
        Some(server) => server.maildir.join("new"),
        None => data_dir.join("outbox"),
    };
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        gateway_port,
        metrics_port,
        https_port,
        database,
        data_dir,
        jar,
        client,
        state,
        mail_dir,
        _smtp: smtp,
        shutdown,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A received message: headers and decoded body.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: String,
    pub subject: String,
    pub body: String,
    pub raw: String,
}

pub fn parse_mail(raw: &str) -> ReceivedMail {
    let normalized = raw.replace("\r\n", "\n");
    let (head, body) = normalized.split_once("\n\n").unwrap_or((&normalized, ""));
    let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap_or("").trim().to_owned();
    let encoding = header("Content-Transfer-Encoding").to_ascii_lowercase();
    let body = match encoding.as_str() {
        "quoted-printable" => {
            String::from_utf8(quoted_printable::decode(body, quoted_printable::ParseMode::Robust).expect("valid quoted-printable"))
                .expect("utf-8 body")
        }
        "base64" => {
            use base64::Engine;
            let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            String::from_utf8(base64::engine::general_purpose::STANDARD.decode(compact).expect("valid base64")).expect("utf-8 body")
        }
        _ => body.to_owned(),
    };
    ReceivedMail { to: header("To"), subject: header("Subject"), body, raw: raw.to_owned() }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// A client with its own cookie jar (another browser) for the same portal.
    pub fn new_browser(&self) -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = test_client(jar.clone());
        (client, jar)
    }

    pub fn cookie(jar: &reqwest::cookie::Jar, address: &str, name: &str) -> Option<String> {
        let url: url::Url = address.parse().expect("address is a URL");
        let header = jar.cookies(&url)?;
        header.to_str().ok()?.split("; ").find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// The CSRF token of this client's jar, fetching a page first if it has none.
    pub async fn csrf_for(&self, client: &reqwest::Client, jar: &reqwest::cookie::Jar) -> String {
        if let Some(token) = Self::cookie(jar, &self.address, "slipway_csrf") {
            return token;
        }
        client.get(self.url("/login")).send().await.expect("GET /login");
        Self::cookie(jar, &self.address, "slipway_csrf").expect("the portal sets a CSRF cookie")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request")
    }

    /// POSTs a form from the default browser with its CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.post_form_as(&self.client, &self.jar, path, fields).await
    }

    pub async fn post_form_as(
        &self,
        client: &reqwest::Client,
        jar: &reqwest::cookie::Jar,
        path: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let csrf = self.csrf_for(client, jar).await;
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &csrf)];
        form.extend_from_slice(fields);
        client.post(self.url(path)).form(&form).send().await.expect("request")
    }

    /// Mail to `address`, waiting for it to arrive (up to 15 s).
    pub async fn wait_for_mail(&self, address: &str, n_expected: usize) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            let found = self.mail_to(address);
            if found.len() >= n_expected {
                return found;
            }
            if tokio::time::Instant::now() >= deadline {
                use portal::db::schema::outbound_mail;
                let queue: Vec<(String, i32, Option<String>)> = outbound_mail::table
                    .select((outbound_mail::to_address, outbound_mail::attempts, outbound_mail::last_error))
                    .load(&mut self.db())
                    .unwrap_or_default();
                panic!(
                    "expected {n_expected} mail(s) to {address} in {}, found {}; queue: {queue:?}",
                    self.mail_dir.display(),
                    found.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn mail_to(&self, address: &str) -> Vec<ReceivedMail> {
        let Ok(entries) = std::fs::read_dir(&self.mail_dir) else { return Vec::new() };
        let mut found: Vec<(std::time::SystemTime, ReceivedMail)> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()) && !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, std::fs::read_to_string(e.path()).ok()?)))
            .map(|(at, raw)| (at, parse_mail(&raw)))
            .filter(|(_, mail)| mail.to.contains(address))
            .collect();
        found.sort_by_key(|(at, _)| *at);
        found.into_iter().map(|(_, mail)| mail).collect()
    }

    pub fn link_in(mail: &ReceivedMail, path: &str) -> String {
        let start = mail.body.find(&format!("{path}?token=")).unwrap_or_else(|| panic!("no {path} link in mail: {}", mail.body));
        let url_start = mail.body[..start].rfind("http").expect("link starts with http");
        mail.body[url_start..].split_whitespace().next().expect("link").to_owned()
    }

    pub fn token_of(link: &str) -> String {
        link.split("token=").nth(1).expect("token").to_owned()
    }

    /// Signs up through the page and returns the verification link from the mail.
    pub async fn sign_up(&self, email: &str) -> String {
        let response = self
            .post_form(
                "/signup",
                &[("email", email), ("password", PASSWORD), ("display_name", "Kim Minsu"), ("student_number", "202312345")],
            )
            .await;
        assert_eq!(response.status(), 200, "sign-up page answered {}", response.text().await.unwrap_or_default());
        let mails = self.wait_for_mail(email, 1).await;
        Self::link_in(mails.last().expect("one mail"), "/verify")
    }

    /// Signs up, verifies, and logs the default browser in.
    pub async fn signed_in_user(&self, email: &str) {
        let link = self.sign_up(email).await;
        assert_eq!(self.client.get(&link).send().await.expect("verify").status(), 200);
        let response = self.post_form("/login", &[("email", email), ("password", PASSWORD)]).await;
        assert_eq!(response.status(), 303, "login should redirect");
    }

    /// An API token for a verified account, created over the API.
    pub async fn api_token(&self, email: &str) -> String {
        let link = self.sign_up(email).await;
        assert_eq!(self.client.get(&link).send().await.expect("verify").status(), 200);
        let response = self
            .client
            .post(self.url("/api/v1/tokens"))
            .json(&serde_json::json!({"email": email, "password": PASSWORD, "name": "test"}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 201);
        let body: serde_json::Value = response.json().await.expect("json");
        body["token"].as_str().expect("token").to_owned()
    }

    /// GET through the gateway as `NAME.localhost`.
    pub async fn app_get(&self, name: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{}{path}", self.gateway_port))
            .header("Host", format!("{name}.localhost"))
            .send()
            .await
            .expect("gateway request")
    }

    /// Creates a project over the API and deploys `zip` to it; returns the revision JSON.
    pub async fn deploy_zip(&self, token: &str, name: &str, zip: Vec<u8>) -> (u16, serde_json::Value) {
        let response = self
            .client
            .post(self.url(&format!("/api/v1/projects/{name}/deployments")))
            .bearer_auth(token)
            .header("Content-Type", "application/zip")
            .body(zip)
            .send()
            .await
            .expect("upload");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or_default())
    }

    /// GET an API path with a token; the JSON answer (whatever the status).
    pub async fn api_get(&self, token: &str, path: &str) -> serde_json::Value {
        let response = self.client.get(self.url(path)).bearer_auth(token).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        response.json().await.unwrap_or_else(|e| panic!("GET {path}: the answer is not JSON: {e}"))
    }

    /// Waits until revision `number` of `name` reaches a final status (`live` or `failed`).
    pub async fn wait_for_revision(&self, token: &str, name: &str, number: i64) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let listing = self.api_get(token, &format!("/api/v1/projects/{name}/revisions")).await;
            if let Some(revision) = listing["revisions"].as_array().and_then(|r| r.iter().find(|r| r["number"] == number)) {
                if matches!(revision["status"].as_str(), Some("live" | "failed" | "retired")) {
                    return revision.clone();
                }
            }
            assert!(tokio::time::Instant::now() < deadline, "revision {number} of {name} did not finish: {listing}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates a project over the API and asserts it was created.
    pub async fn create_project(&self, token: &str, name: &str, template: &str) {
        let response = self
            .client
            .post(self.url("/api/v1/projects"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "name": name, "template": template }))
            .send()
            .await
            .expect("POST /api/v1/projects");
        let status = response.status();
        assert_eq!(status, 201, "creating {name}: {}", response.text().await.unwrap_or_default());
    }

    /// Every revision of `name`, newest first, as the API lists them.
    pub async fn revisions(&self, token: &str, name: &str) -> Vec<serde_json::Value> {
        let listing = self.api_get(token, &format!("/api/v1/projects/{name}/revisions")).await;
        listing["revisions"].as_array().cloned().unwrap_or_default()
    }

    /// Creates `name` with `template`, deploys `zip` as its first revision and waits until the
    /// revision is live; panics with the revision and its build log otherwise.
    pub async fn deploy_live(&self, token: &str, name: &str, template: &str, zip: Vec<u8>) -> serde_json::Value {
        self.create_project(token, name, template).await;
        let (status, queued) = self.deploy_zip(token, name, zip).await;
        assert_eq!(status, 202, "upload of {name} refused: {queued}");
        let number = queued["number"].as_i64().expect("a revision number");
        let done = self.wait_for_revision(token, name, number).await;
        assert_eq!(done["status"], "live", "{name} did not go live: {done}\nbuild log:\n{}", self.build_log(&done));
        done
    }

    /// The build log of a revision (as the build worker wrote it), or "" when there is none.
    pub fn build_log(&self, revision: &serde_json::Value) -> String {
        let Some(id) = revision["id"].as_i64() else { return String::new() };
        std::fs::read_to_string(self.data_dir.join("logs").join("builds").join(format!("{id}.log"))).unwrap_or_default()
    }

    /// GETs `path` of app `name` through the gateway until `done` holds for (status, body) or
    /// `within` passes; returns the last (status, body).
    pub async fn app_get_until(&self, name: &str, path: &str, within: Duration, done: impl Fn(u16, &str) -> bool) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let response = self.app_get(name, path).await;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if done(status, &body) || tokio::time::Instant::now() >= deadline {
                return (status, body);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn db(&self) -> PgConnection {
        PgConnection::establish(&self.database.url).expect("connect to the test database")
    }
}

/// A sample app from `examples/`, zipped the way `slipway deploy` zips a folder.
pub fn example_zip(name: &str) -> Vec<u8> {
    pack(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name))
}

/// A folder zipped with the platform's own `pack_dir`.
pub fn pack(dir: &Path) -> Vec<u8> {
    orchestrator::artifact::pack_dir(dir, &orchestrator::artifact::Limits::default())
        .unwrap_or_else(|e| panic!("pack {}: {e}", dir.display()))
}

/// A temporary project folder with `files` (path, contents) written into it.
pub fn project_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for (path, contents) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("mkdir");
        std::fs::write(path, contents).expect("write project file");
    }
    dir
}

pub async fn text(response: reqwest::Response) -> String {
    response.text().await.expect("body")
}
