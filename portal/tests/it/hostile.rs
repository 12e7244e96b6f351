//! Hostile apps, each deployed as a real project through upload, sandboxed build and the local
//! runtime: reading other apps' and the host's files, connecting to the host's services, a fork
//! bomb, a 10 GB allocation, and writing outside `/data` and `/tmp`. Each test prints what the
//! app managed to do (`cargo test -- --nocapture` shows it), then asserts that it was contained
//! and that the host and a neighbour app kept serving.
//!
//! One small Python app (standard library only) plays every part: its handlers try what the
//! query string asks and answer with JSON saying what happened. The last test is about builds,
//! not running apps: a build script reports what it can reach, directly and through the build
//! proxy, of the host's services and the internet.

use std::time::{Duration, Instant};

use diesel::{ExpressionMethods, QueryDsl, RunQueryDsl};

use crate::helpers::{backends, example_zip, pack, project_dir, spawn_app, spawn_app_with, AppOptions, TestApp};

/// The hostile app: `/read?path=`, `/write?path=&text=`, `/connect?host=&port=`, `/fork`, `/eat`.
const PROBE_APP: &str = r#"
import json, os, socket, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse, parse_qs


def failure(error):
    return {"ok": False, "error": f"{type(error).__name__}: {error}"}


def read(path):
    try:
        if os.path.isdir(path):
            return {"ok": True, "listing": sorted(os.listdir(path))[:50]}
        with open(path, "rb") as f:
            return {"ok": True, "content": f.read(300).decode("utf-8", "replace")}
    except Exception as error:
        return failure(error)


def write(path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
        return {"ok": True}
    except Exception as error:
        return failure(error)


def connect(host, port):
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return {"ok": True}
    except Exception as error:
        return failure(error)


def fork_bomb():
    while True:
        try:
            os.fork()
        except OSError:
            pass


def eat():
    chunks = []
    for _ in range(100):
        # b"x" * n writes every byte, so the pages are really used: 100 x 100 MiB = 10 GiB.
        chunks.append(b"x" * (100 << 20))
    return {"ok": True, "held_bytes": sum(len(c) for c in chunks)}


class Probe(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/read":
            result = read(query["path"])
        elif url.path == "/write":
            result = write(query["path"], query.get("text", "x"))
        elif url.path == "/connect":
            result = connect(query["host"], query["port"])
        elif url.path == "/fork":
            if os.fork() == 0:
                fork_bomb()
            result = {"ok": True, "started": "fork bomb"}
        elif url.path == "/eat":
            result = eat()
        else:
            result = {"ok": True, "hello": "probe"}
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Probe).serve_forever()
"#;

fn probe_zip() -> Vec<u8> {
    let dir = project_dir(&[("main.py", PROBE_APP), ("requirements.txt", "")]);
    pack(dir.path())
}

fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// Asks app `name` to try something; returns its JSON answer (or the gateway's status).
async fn ask(app: &TestApp, name: &str, path_and_query: &str) -> serde_json::Value {
    let response = app.app_get(name, path_and_query).await;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    serde_json::from_str(&body).unwrap_or_else(|_| serde_json::json!({ "ok": false, "gateway_status": status }))
}

fn project_id(app: &TestApp, name: &str) -> i64 {
    use portal::db::schema::projects;
    projects::table.filter(projects::name.eq(name)).select(projects::id).first(&mut app.db()).expect("the project exists")
}

/// How long one request takes and what it answered.
async fn timed_get(app: &TestApp, name: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.app_get(name, "/").await.status().as_u16();
    (status, started.elapsed())
}

async fn portal_answers(app: &TestApp, token: &str) -> (u16, Duration) {
    let started = Instant::now();
    let status = app.client.get(app.url("/api/v1/projects")).bearer_auth(token).send().await.expect("portal request").status().as_u16();
    (status, started.elapsed())
}

#[tokio::test]
async fn an_app_cannot_read_another_apps_files_or_the_hosts_secrets() {
    let app = spawn_app().await;
    let token = app.api_token("h-read@pusan.ac.kr").await;
    let (_victim, _thief) =
        tokio::join!(app.deploy_live(&token, "h-victim", "python", probe_zip()), app.deploy_live(&token, "h-thief", "python", probe_zip()));
    let secret = format!("secret-{}", uuid::Uuid::new_v4().simple());
    let written = ask(&app, "h-victim", &format!("/write?path=/data/secret.txt&text={secret}")).await;
    assert_eq!(written["ok"], true, "the victim can write its own /data: {written}");
    let victim_id = project_id(&app, "h-victim");
    let data_dir = app.data_dir.display().to_string();

    // The thief can read its own files, so a failure below is the sandbox, not a broken probe.
    let own = ask(&app, "h-thief", "/read?path=/app/main.py").await;
    assert_eq!(own["ok"], true, "{own}");

    let targets = [
        format!("{data_dir}/volumes/{victim_id}/secret.txt"),
        format!("{data_dir}/volumes/{victim_id}"),
        format!("{data_dir}/apps/{victim_id}/r1/main.py"),
        format!("{data_dir}/apps"),
        data_dir.clone(),
        format!("{data_dir}/secret.key"),
        "/work".to_owned(),
        "/root".to_owned(),
        "/home".to_owned(),
        "/var/lib/postgresql".to_owned(),
        "/run/postgresql".to_owned(),
        "/etc/shadow".to_owned(),
        "/etc/ssh".to_owned(),
        "/proc/1/root/etc/shadow".to_owned(),
    ];
    let mut leaks = Vec::new();
    for target in &targets {
        let answer = ask(&app, "h-thief", &format!("/read?path={}", encode(target))).await;
        eprintln!("hostile read {target}: {answer}");
        if answer["ok"] != false || answer.to_string().contains(&secret) {
            leaks.push(format!("{target}: {answer}"));
        }
    }
    // The thief's own /data is its own volume, not the victim's.
    let own_data = ask(&app, "h-thief", "/read?path=/data").await;
    eprintln!("hostile read /data (its own): {own_data}");
    assert!(!own_data.to_string().contains("secret.txt"), "{own_data}");
    let root = ask(&app, "h-thief", "/read?path=/").await;
    eprintln!("hostile read / : {root}");
    assert!(leaks.is_empty(), "the thief read: {leaks:#?}");
}

#[tokio::test]
async fn an_app_cannot_connect_to_postgres_redis_the_portal_or_the_gateway() {
    let app = spawn_app().await;
    let token = app.api_token("h-net@pusan.ac.kr").await;
    app.deploy_live(&token, "h-net", "python", probe_zip()).await;
    let portal_port = app.address.rsplit(':').next().expect("a port").to_owned();
    // Its own server is reachable on its own loopback: the probe itself works.
    let own = ask(&app, "h-net", "/connect?host=127.0.0.1&port=8080").await;
    assert_eq!(own["ok"], true, "{own}");
    let mut reached = Vec::new();
    for (what, port) in [
        ("PostgreSQL", "5432".to_owned()),
        ("Redis", "6379".to_owned()),
        ("the portal", portal_port),
        ("the gateway", app.gateway_port.to_string()),
    ] {
        for host in ["127.0.0.1", "localhost"] {
            let answer = ask(&app, "h-net", &format!("/connect?host={host}&port={port}")).await;
            eprintln!("hostile connect to {what} at {host}:{port}: {answer}");
            let error = answer["error"].as_str().unwrap_or_default();
            if answer["ok"] != false || !error.contains("ConnectionRefused") {
                reached.push(format!("{what} at {host}:{port}: {answer}"));
            }
        }
    }
    assert!(reached.is_empty(), "not refused: {reached:#?}");
}

/// The processes in the app's pids cgroup now (cgroup v1 or v2), if it can be found.
fn pids_in_cgroup(app_name: &str) -> Option<u64> {
    let prefix = format!("app-{app_name}-r1-");
    for parent in ["/sys/fs/cgroup/pids/slipway", "/sys/fs/cgroup/slipway"] {
        for entry in std::fs::read_dir(parent).ok()?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                return std::fs::read_to_string(entry.path().join("pids.current")).ok()?.trim().parse().ok();
            }
        }
    }
    None
}

#[tokio::test]
async fn a_fork_bomb_is_held_by_the_process_limit_and_the_host_and_a_neighbour_keep_serving() {
    let app = spawn_app_with(AppOptions { extra_deploy: "liveness_interval = \"1s\"".into(), ..Default::default() }).await;
    let token = app.api_token("h-fork@pusan.ac.kr").await;
    tokio::join!(
        app.deploy_live(&token, "h-bomb", "python", probe_zip()),
        app.deploy_live(&token, "h-neighbour", "static", example_zip("static-hello"))
    );
    let started = ask(&app, "h-bomb", "/fork").await;
    assert_eq!(started["ok"], true, "{started}");
    // Sampled for 3 s rather than read once at the end: the liveness check (every second, three
    // failures in a row) may already be restarting the app by then, and a single late read can
    // land between the kill and the restart (no cgroup) or after it (a fresh one).
    let mut n_pids: Option<u64> = None;
    let sampling_ends = Instant::now() + Duration::from_secs(3);
    while Instant::now() < sampling_ends {
        n_pids = n_pids.max(pids_in_cgroup("h-bomb"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("fork bomb: at most {n_pids:?} processes in its cgroup (limit 128, the python template's max_processes)");
    assert!(n_pids.is_some_and(|n| (100..=128).contains(&n)), "the bomb should fill, and not pass, its limit: {n_pids:?}");
    for round in 0..5 {
        let (status, took) = timed_get(&app, "h-neighbour").await;
        let (portal_status, portal_took) = portal_answers(&app, &token).await;
        eprintln!("during the fork bomb, round {round}: neighbour {status} in {took:?}, portal {portal_status} in {portal_took:?}");
        assert_eq!(status, 200);
        assert_eq!(portal_status, 200);
        assert!(took < Duration::from_secs(2) && portal_took < Duration::from_secs(2), "too slow: {took:?}, {portal_took:?}");
    }
    // The bomb app itself cannot start a thread for a request any more; its failed health checks
    // (every second here, three in a row) get it restarted, which clears the bomb.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = app.state.runtime.status("h-bomb");
        if status.restarts >= 1 && status.state == "running" {
            eprintln!("the wedged app was restarted: {status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "the wedged app was not restarted: {status:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(pids_in_cgroup("h-bomb").is_some_and(|n| n < 100), "the restarted app starts without the bomb: {:?}", pids_in_cgroup("h-bomb"));
    assert_eq!(app.app_get("h-bomb", "/").await.status(), 200, "the restarted app answers again");

    // Stopping the app kills the whole tree, bomb included, in bounded time.
    let stop_started = Instant::now();
    app.state.runtime.stop("h-bomb").await;
    eprintln!("stopping the fork-bombed app took {:?}", stop_started.elapsed());
    assert!(stop_started.elapsed() < Duration::from_secs(10));
    assert_eq!(pids_in_cgroup("h-bomb"), None, "the bomb's cgroup is gone");
    assert_eq!(timed_get(&app, "h-neighbour").await.0, 200);
}

#[tokio::test]
async fn an_app_allocating_10_gb_is_killed_by_its_memory_limit_and_restarted_while_others_serve() {
    let app = spawn_app().await;
    let token = app.api_token("h-mem@pusan.ac.kr").await;
    tokio::join!(
        app.deploy_live(&token, "h-hog", "python", probe_zip()),
        app.deploy_live(&token, "h-calm", "static", example_zip("static-hello"))
    );
    let started = Instant::now();
    let answer = app.app_get("h-hog", "/eat").await;
    let status = answer.status().as_u16();
    let body = answer.text().await.unwrap_or_default();
    eprintln!("GET /eat of the 10 GB app answered {status} after {:?}: {}", started.elapsed(), body.chars().take(200).collect::<String>());
    assert_eq!(status, 502, "the app died mid-request: {body}");
    assert!(!body.contains("held_bytes"));

    let (neighbour, took) = timed_get(&app, "h-calm").await;
    let (portal, portal_took) = portal_answers(&app, &token).await;
    eprintln!("after the OOM kill: neighbour {neighbour} in {took:?}, portal {portal} in {portal_took:?}");
    assert_eq!((neighbour, portal), (200, 200));

    // The runtime learns of the exit when the sandbox has been reaped, a moment after the kill.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status = app.state.runtime.status("h-hog");
    while status.last_exit.is_none() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = app.state.runtime.status("h-hog");
    }
    eprintln!("runtime status after the OOM kill: {status:?}");
    assert!(status.last_exit.as_deref().is_some_and(|exit| exit.contains("out of memory")), "{status:?}");
    // The runtime restarts it (after 1 s of backoff) and it serves again.
    let (status, body) = app.app_get_until("h-hog", "/", Duration::from_secs(20), |status, _| status == 200).await;
    assert_eq!(status, 200, "the app was not restarted: {body}");
    assert!(app.state.runtime.status("h-hog").restarts >= 1);
}

#[tokio::test]
async fn an_app_can_write_only_to_data_and_tmp() {
    let app = spawn_app().await;
    let token = app.api_token("h-write@pusan.ac.kr").await;
    app.deploy_live(&token, "h-writer", "python", probe_zip()).await;
    let mut outcomes = Vec::new();
    for path in [
        "/data/note.txt",
        "/tmp/note.txt",
        "/app/main.py",
        "/app/new.txt",
        "/etc/passwd",
        "/usr/bin/python3",
        "/note.txt",
        "/dev/shm/note.txt",
        "/proc/sys/kernel/hostname",
    ] {
        let answer = ask(&app, "h-writer", &format!("/write?path={}&text=pwned", encode(path))).await;
        eprintln!("hostile write {path}: {answer}");
        outcomes.push((path, answer["ok"] == true));
    }
    let writable: Vec<&str> = outcomes.iter().filter(|(_, ok)| *ok).map(|(path, _)| *path).collect();
    // /dev/shm lies in the sandbox's own /dev (a tmpfs bubblewrap makes per sandbox, as private
    // as /tmp, and like it charged to the app's memory limit).
    assert_eq!(writable, ["/data/note.txt", "/tmp/note.txt", "/dev/shm/note.txt"]);
    // The revision's files on the host are untouched.
    let id = project_id(&app, "h-writer");
    let main_py = std::fs::read_to_string(app.data_dir.join(format!("apps/{id}/r1/main.py"))).expect("the revision's main.py");
    assert!(main_py.contains("ThreadingHTTPServer"));
}

/// A build script that reports what it can reach: TCP services on the host's loopback directly,
/// a registry's address directly, DNS, and, through the build proxy it is given in
/// `HTTPS_PROXY`, the host's services, a host that is no registry, plain HTTP and a registry.
/// Each attempt prints one `probe <what>: <outcome>` line.
const BUILD_PROBE: &str = r#"
const net = require("node:net");
const dns = require("node:dns");
const targets = JSON.parse(process.env.npm_package_config_targets);
const proxy = new URL(process.env.HTTPS_PROXY);
const report = (what, outcome, resolve) => { console.log(`probe ${what}: ${outcome}`); resolve(); };

function direct(what, host, port) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port }, () => { socket.destroy(); report(what, "open", resolve); });
    socket.on("error", (error) => report(what, error.code, resolve));
    socket.setTimeout(3000, () => { socket.destroy(); report(what, "timeout", resolve); });
  });
}

function throughProxy(what, request) {
  return new Promise((resolve) => {
    const socket = net.connect({ host: proxy.hostname, port: Number(proxy.port) }, () => socket.write(request));
    let answer = "";
    socket.on("data", (data) => {
      answer += data;
      if (answer.includes("\r\n")) { socket.destroy(); report(what, answer.split("\r\n")[0], resolve); }
    });
    socket.on("error", (error) => report(what, error.code, resolve));
    socket.setTimeout(10000, () => { socket.destroy(); report(what, "timeout", resolve); });
  });
}

const checks = targets.direct.map(([what, port]) => direct(what, "127.0.0.1", port));
checks.push(direct("registry address", targets.registry_address, 443));
checks.push(new Promise((resolve) => dns.lookup("registry.npmjs.org", (error, address) => report("dns", error ? error.code : `resolved ${address}`, resolve))));
for (const [what, request] of targets.proxied) checks.push(throughProxy(what, request));
Promise.all(checks).then(() => process.exit(0));
"#;

fn port_of(url: &str) -> u16 {
    url::Url::parse(url).ok().and_then(|u| u.port()).unwrap_or(0)
}

#[tokio::test]
async fn a_build_step_reaches_only_the_registry_proxy_never_the_hosts_services() {
    let app = spawn_app().await;
    let token = app.api_token("h-build-net@pusan.ac.kr").await;
    let portal_port: u16 = app.address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
    let (redis_port, postgres_port) = (port_of(&backends().redis_url), port_of(&backends().admin_database_url));
    // The registry's address as the host resolves it: the only place a direct connection could
    // go if the namespace leaked.
    let registry_address = tokio::net::lookup_host("registry.npmjs.org:443")
        .await
        .expect("the host resolves registry.npmjs.org")
        .find(|a| a.is_ipv4())
        .expect("an IPv4 address")
        .ip();
    let connect = |authority: &str| format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n");
    let targets = serde_json::json!({
        "direct": [["postgres", postgres_port], ["redis", redis_port], ["portal", portal_port], ["gateway", app.gateway_port]],
        "registry_address": registry_address.to_string(),
        "proxied": [
            ["proxy to redis", connect(&format!("127.0.0.1:{redis_port}"))],
            ["proxy to localhost", connect("localhost:443")],
            ["proxy to evil.example", connect("evil.example:443")],
            ["proxy to the portal over http", format!("GET http://127.0.0.1:{portal_port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")],
            ["proxy to the npm registry", connect("registry.npmjs.org:443")],
        ],
    });
    let package = serde_json::json!({
        "name": "build-probe",
        "version": "1.0.0",
        "main": "server.js",
        "config": { "targets": targets.to_string() },
        "scripts": { "build": "node probe.js" },
    });
    let server = "require('node:http').createServer((q, r) => r.end('ok')).listen(Number(process.env.PORT), '0.0.0.0');\n";
    let dir = project_dir(&[("package.json", &package.to_string()), ("probe.js", BUILD_PROBE), ("server.js", server)]);
    let revision = app.deploy_live(&token, "h-build-net", "node", pack(dir.path())).await;
    let log = app.build_log(&revision);
    let mut probes: Vec<&str> = log.lines().filter(|line| line.starts_with("probe ")).collect();
    probes.sort();
    eprintln!("what the build step reached: {probes:#?}");
    // Nothing of the host's loopback exists in the build's namespace, and nothing leads out of it
    // but the proxy: no route, no resolver.
    for what in ["postgres", "redis", "portal", "gateway"] {
        assert!(probes.contains(&format!("probe {what}: ECONNREFUSED").as_str()), "{what}: {probes:?}");
    }
    assert!(probes.contains(&"probe registry address: ENETUNREACH"), "{probes:?}");
    let dns = probes.iter().find(|line| line.starts_with("probe dns: ")).expect("a dns probe");
    assert!(!dns.contains("resolved"), "{dns}");
    // The proxy refuses everything but HTTPS to a registry, and says so in the build log.
    for what in ["redis", "localhost", "evil.example", "the portal over http"] {
        assert!(probes.contains(&format!("probe proxy to {what}: HTTP/1.1 403 Forbidden").as_str()), "{what}: {probes:?}");
    }
    assert!(probes.contains(&"probe proxy to the npm registry: HTTP/1.1 200 Connection Established"), "{probes:?}");
    assert_eq!(probes.len(), 11, "build log: {log}");
    assert!(log.contains("[slipway] network: package registries only"), "{log}");
    assert!(log.contains("[slipway] build proxy: builds may only reach package registries; `evil.example:443` is not one"), "{log}");
    assert!(log.contains("[slipway] build proxy: builds may only reach package registries; `127.0.0.1:"), "{log}");
    // The app itself, at run time, is shut in its own network namespace (see the test above).
    assert_eq!(app.app_get("h-build-net", "/").await.text().await.expect("body"), "ok");
}
