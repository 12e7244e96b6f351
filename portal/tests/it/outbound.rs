//! Outbound network for running apps: none by default; with `deploy.app_outbound_hosts`, HTTPS to
//! those hosts only, through an egress proxy inside the app's own namespace.

use crate::helpers::{pack, project_dir, spawn_app_with, AppOptions, TestApp};

/// Fetches `https://<path>/` (default the npm registry) and reports how it went, as JSON.
const FETCH_APP: &str = r#"
import json, os, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        target = self.path.strip("/") or "registry.npmjs.org"
        try:
            with urllib.request.urlopen(f"https://{target}/", timeout=15) as answer:
                result = {"ok": True, "status": answer.status}
        except Exception as error:
            result = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        body = json.dumps(result).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

async fn fetch(app: &TestApp, name: &str, target: &str) -> serde_json::Value {
    let response = app.app_get(name, &format!("/{target}")).await;
    response.json().await.expect("the fetch app answers JSON")
}

#[tokio::test]
async fn apps_reach_only_the_configured_hosts_and_nothing_by_default() {
    let app =
        spawn_app_with(AppOptions { extra_deploy: "app_outbound_hosts = [\"registry.npmjs.org\"]".into(), ..Default::default() }).await;
    let token = app.api_token("outbound@pusan.ac.kr").await;
    let dir = project_dir(&[("main.py", FETCH_APP), ("requirements.txt", "")]);
    app.deploy_live(&token, "fetcher", "python", pack(dir.path())).await;

    let allowed = fetch(&app, "fetcher", "registry.npmjs.org").await;
    assert_eq!((allowed["ok"].as_bool(), allowed["status"].as_u64()), (Some(true), Some(200)), "{allowed}");
    let refused = fetch(&app, "fetcher", "example.com").await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert!(refused["error"].as_str().unwrap_or_default().contains("403"), "the proxy refuses other hosts: {refused}");
    let logs =
        app.client.get(app.url("/api/v1/projects/fetcher/logs")).bearer_auth(&token).send().await.expect("GET").text().await.expect("text");
    assert!(logs.contains("[slipway] outbound:") && logs.contains("example.com"), "the refusal is in the app's log: {logs}");
}

#[tokio::test]
async fn without_outbound_hosts_an_app_has_no_network_at_all() {
    let app = spawn_app_with(AppOptions::default()).await;
    let token = app.api_token("offline@pusan.ac.kr").await;
    let dir = project_dir(&[("main.py", FETCH_APP), ("requirements.txt", "")]);
    app.deploy_live(&token, "offline", "python", pack(dir.path())).await;
    let answer = fetch(&app, "offline", "registry.npmjs.org").await;
    assert_eq!(answer["ok"], false, "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("URLError"), "no name resolution, no route: {answer}");
}
