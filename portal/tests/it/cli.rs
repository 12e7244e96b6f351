//! The real `slipway` binary: the admin bootstrap, login/whoami/logout against a running portal,
//! configuration errors, and `slipway up` starting and stopping its private services.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::helpers::{free_port, spawn_app, PASSWORD};

fn slipway() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    for name in ["DATABASE_URL", "REDIS_URL", "SLIPWAY_PORTAL", "SLIPWAY_TOKEN", "SLIPWAY_CONFIG"] {
        command.env_remove(name);
    }
    command.env("SLIPWAY_ALLOWED_EMAIL_DOMAINS", "pusan.ac.kr").env("SLIPWAY_LOG", "warn");
    command
}

fn run_with_stdin(mut command: Command, stdin: &str) -> std::process::Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn slipway");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("slipway output")
}

#[tokio::test]
async fn admin_create_user_bootstraps_a_verified_admin_who_can_use_the_cli() {
    let app = spawn_app().await;
    let mut create = slipway();
    create
        .args(["admin", "create-user", "boss@pusan.ac.kr", "--role", "admin", "--password-stdin", "--name", "Boss"])
        .env("DATABASE_URL", &app.database.url);
    let output = tokio::task::spawn_blocking(move || run_with_stdin(create, &format!("{PASSWORD}\n"))).await.expect("join");
    assert!(output.status.success(), "create-user failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("role admin"));

    let mut duplicate = slipway();
    duplicate.args(["admin", "create-user", "boss@pusan.ac.kr", "--password-stdin"]).env("DATABASE_URL", &app.database.url);
    let output = tokio::task::spawn_blocking(move || run_with_stdin(duplicate, PASSWORD)).await.expect("join");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("already exists"));

    let config_home = app.data_dir.join("config-home");
    let mut login = slipway();
    login.args(["login", "--portal", &app.address, "--email", "boss@pusan.ac.kr", "--password-stdin"]).env("XDG_CONFIG_HOME", &config_home);
    let output = tokio::task::spawn_blocking(move || run_with_stdin(login, PASSWORD)).await.expect("join");
    assert!(output.status.success(), "login failed: {}", String::from_utf8_lossy(&output.stderr));
    let credentials = config_home.join("slipway/credentials.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&credentials).expect("credentials stored").permissions().mode() & 0o777, 0o600);

    let mut whoami = slipway();
    whoami.arg("whoami").env("XDG_CONFIG_HOME", &config_home);
    let output = tokio::task::spawn_blocking(move || whoami.output().expect("run")).await.expect("join");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && printed.contains("boss@pusan.ac.kr") && printed.contains("admin"), "{printed}");

    // SLIPWAY_PORTAL and SLIPWAY_TOKEN work without stored credentials, as in CI.
    let token = std::fs::read_to_string(&credentials)
        .expect("read")
        .lines()
        .find_map(|l| l.strip_prefix("token = \"").map(|t| t.trim_end_matches('"').to_owned()))
        .expect("token line");
    let mut from_env = slipway();
    from_env
        .arg("whoami")
        .env("XDG_CONFIG_HOME", app.data_dir.join("empty-home"))
        .env("SLIPWAY_PORTAL", &app.address)
        .env("SLIPWAY_TOKEN", &token);
    let output = tokio::task::spawn_blocking(move || from_env.output().expect("run")).await.expect("join");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let mut logout = slipway();
    logout.arg("logout").env("XDG_CONFIG_HOME", &config_home);
    let output = tokio::task::spawn_blocking(move || logout.output().expect("run")).await.expect("join");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!credentials.exists());
    let revoked = app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.expect("GET");
    assert_eq!(revoked.status(), 401, "logout revokes the token on the portal");
}

#[tokio::test]
async fn wrong_password_at_cli_login_says_why_and_stores_nothing() {
    let app = spawn_app().await;
    let config_home = app.data_dir.join("config-home");
    let mut login = slipway();
    login
        .args(["login", "--portal", &app.address, "--email", "ghost@pusan.ac.kr", "--password-stdin"])
        .env("XDG_CONFIG_HOME", &config_home);
    let output = tokio::task::spawn_blocking(move || run_with_stdin(login, "wrong password")).await.expect("join");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid_credentials"));
    assert!(!config_home.join("slipway/credentials.toml").exists());
}

#[test]
fn configuration_errors_name_the_key_and_the_value() {
    let output = slipway().args(["config", "check"]).env("SLIPWAY_PORTAL_ADDR", "not-an-address").output().expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`portal_addr`") && stderr.contains("not-an-address"), "{stderr}");

    let output = slipway().args(["config", "check", "--apps-domain", "bad domain"]).output().expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("`apps_domain` = `bad domain`"));

    let output = slipway()
        .args(["config", "check"])
        .env_remove("SLIPWAY_ALLOWED_EMAIL_DOMAINS")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stderr).contains("allowed_email_domains"));

    let output = slipway().args(["config", "check"]).env("DATABASE_URL", "postgres://u:hunter2@db/x").output().expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success() && !stdout.contains("hunter2"), "secrets stay hidden: {stdout}");
}

#[tokio::test]
async fn slipway_up_runs_on_private_services_and_stops_them_cleanly() {
    portal::install_tls_provider();
    let data_dir = std::env::temp_dir().join(format!("slipway-up-{}", uuid::Uuid::new_v4().simple()));
    let port = free_port();
    let mut up = slipway();
    up.args(["up", "--data-dir"])
        .arg(&data_dir)
        .args(["--portal", &format!("127.0.0.1:{port}"), "--gateway", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = up.spawn().expect("spawn slipway up");
    let client = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(response) = client.get(format!("http://127.0.0.1:{port}/healthz")).send().await {
            assert_eq!(response.status(), 200);
            let health: serde_json::Value = response.json().await.expect("json");
            assert_eq!((health["database"].as_bool(), health["redis"].as_bool()), (Some(true), Some(true)));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline && child.try_wait().expect("poll").is_none(), "slipway up did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(data_dir.join("postgres/PG_VERSION").exists() && data_dir.join("run/redis.sock").exists());

    // SIGTERM stops everything it started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait")).await.expect("join");
    assert!(status.status.success(), "slipway up exited with {:?}: {}", status.status, String::from_utf8_lossy(&status.stderr));
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains(&format!("Portal: http://127.0.0.1:{port}/")), "{stdout}");
    assert!(!data_dir.join("postgres/postmaster.pid").exists(), "PostgreSQL was stopped");
    assert!(!data_dir.join("run/redis.pid").exists(), "Redis was stopped");
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn autoscaler_replay_prints_one_decision_per_tick() {
    let trace = std::env::temp_dir().join(format!("slipway-trace-{}.jsonl", uuid::Uuid::new_v4().simple()));
    std::fs::write(&trace, "{\"t\": 0, \"concurrency\": 0, \"requests\": 0, \"ready\": 0}\n{\"t\": 2, \"concurrency\": 25, \"requests\": 40, \"ready\": 0}\n{\"t\": 4, \"concurrency\": null, \"requests\": null, \"ready\": 1}\n").expect("write trace");
    let output = slipway().args(["autoscaler", "replay"]).arg(&trace).output().expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("JSON line")).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!((lines[1]["t"].as_f64(), lines[1]["mode"].as_str()), (Some(2.0), Some("wake")));
    assert!(lines[1]["desired"].as_u64().is_some_and(|d| d >= 1));
    assert_eq!(lines[2]["mode"], "hold", "unknown metrics hold: {}", lines[2]);

    std::fs::write(&trace, "{\"t\": 0, \"ready\": 0}\nnot json\n").expect("write trace");
    let output = slipway().args(["autoscaler", "replay"]).arg(&trace).output().expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2"), "{}", String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_file(&trace);
}

#[test]
fn jobspec_render_prints_a_dockerfile_projects_image_job_given_the_registry_and_refuses_without() {
    let dir = crate::helpers::project_dir(&[("Dockerfile", "FROM busybox:1.36\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\"]\n")]);
    let render = |extra: &[&str]| {
        let mut command = slipway();
        command.args(["jobspec", "render", "boxed", "--revision", "4", "--path"]).arg(dir.path()).args(extra);
        command.output().expect("slipway runs")
    };
    for extra in
        [&["--registry", "registry.service.consul:5000"][..], &["--registry", "registry.service.consul:5000", "--template", "dockerfile"]]
    {
        let output = render(extra);
        assert!(output.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&output.stderr));
        let job: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let task = &job["TaskGroups"][0]["Tasks"][0];
        assert_eq!(task["Config"]["image"], "registry.service.consul:5000/slipway/boxed:r4", "{extra:?}");
        assert!(task.get("Artifacts").is_none(), "{extra:?}: {task}");
    }
    let refused = [
        (&[][..], "Dockerfile projects are built and run only on a Slipway cluster"),
        (&["--template", "dockerfile"][..], "--template dockerfile needs --registry"),
        (&["--registry", "http://registry:5000"][..], "must be host or host:port"),
    ];
    for (extra, expected) in refused {
        let output = render(extra);
        assert!(!output.status.success(), "{extra:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
}
