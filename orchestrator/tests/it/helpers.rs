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
