//! The autoscaler driving the real local runtime: load scales an app out to several sandboxes and
//! requests are spread over them; an idle app freezes, then stops, on its own; the next request
//! wakes it; `/metrics` speaks Traefik's names; scaling settings are checked against the caps.

use std::time::Duration;

use crate::helpers::{example_zip, pack, project_dir, spawn_app_with, AppOptions, TestApp};

/// A Python app whose every answer names its instance (a random id chosen at start) and which
/// takes `/slow` 300 ms to answer, so a few clients make real concurrency.
const INSTANCE_APP: &str = r#"import os, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

INSTANCE = uuid.uuid4().hex

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(0.3)
        body = INSTANCE.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

async fn fast_ticking_app() -> TestApp {
    spawn_app_with(AppOptions { extra_scaling: "tick = \"200ms\"\n".to_owned(), ..Default::default() }).await
}

async fn patch_scaling(app: &TestApp, token: &str, name: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let response = app
        .client
        .patch(app.url(&format!("/api/v1/projects/{name}/scaling")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("PATCH scaling");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn wait_for_state(app: &TestApp, token: &str, name: &str, wanted: &str, within: Duration) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = app.api_get(token, &format!("/api/v1/projects/{name}/status")).await;
        if status["state"] == wanted {
            return status;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} did not become {wanted} within {within:?}: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn metrics_text(app: &TestApp) -> String {
    let response = reqwest::get(format!("http://127.0.0.1:{}/metrics", app.metrics_port)).await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap_or("").starts_with("text/plain; version=0.0.4"), "Prometheus text format");
    response.text().await.expect("metrics body")
}

fn sample(samples: &[orchestrator::metrics::parse::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples.iter().find(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))).map(|s| s.value)
}

#[tokio::test]
async fn load_scales_an_app_out_to_several_instances_and_requests_are_spread_over_them() {
    let app = fast_ticking_app().await;
    let token = app.api_token("scale@pusan.ac.kr").await;
    let dir = project_dir(&[("main.py", INSTANCE_APP), ("requirements.txt", "")]);
    app.deploy_live(&token, "busy", "python", pack(dir.path())).await;
    let (status, answer) = patch_scaling(&app, &token, "busy", serde_json::json!({ "max_instances": 3, "target_concurrency": 1 })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scaling"]["max_instances"], 3);

    // Eight clients, each sending /slow back to back: about 8 in flight at target 1 → panic → 3.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (stop, port) = (stop.clone(), app.gateway_port);
        clients.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = std::collections::BTreeSet::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                let response = client.get(format!("http://127.0.0.1:{port}/slow")).header("Host", "busy.localhost").send().await;
                if let Ok(response) = response {
                    if response.status() == 200 {
                        seen.insert(response.text().await.unwrap_or_default());
                    }
                }
            }
            seen
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let scaled = loop {
        let status = app.api_get(&token, "/api/v1/projects/busy/status").await;
        if status["instances"] == 3 {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "the app did not scale out to 3 under load: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(scaled["state"], "running");
    // Let the new instances take a share of the traffic, then stop the clients.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut instances = std::collections::BTreeSet::new();
    for client in clients {
        instances.extend(client.await.expect("client task"));
    }
    assert_eq!(instances.len(), 3, "requests reached every instance: {instances:?}");

    // Never more than max_instances, however long the load lasted.
    let status = app.api_get(&token, "/api/v1/projects/busy/status").await;
    assert!(status["instances"].as_u64().unwrap_or(0) <= 3, "{status}");

    // The same numbers Traefik would give, parsed by the parser the autoscaler uses.
    let text = metrics_text(&app).await;
    let samples = orchestrator::metrics::parse::parse(&text).expect("the exposition parses");
    let served = sample(
        &samples,
        "traefik_service_requests_total",
        &[("service", "busy@slipway"), ("code", "200"), ("method", "GET"), ("protocol", "http")],
    )
    .expect("a request series for busy@slipway");
    assert!(served >= 20.0, "requests were counted: {served}");
    let ticks = sample(&samples, "slipway_autoscaler_tick_seconds_count", &[]).expect("the tick histogram");
    assert!(ticks >= 5.0, "the autoscaler ticked: {ticks}");
    assert!(sample(&samples, "slipway_app_in_flight", &[("service", "busy@slipway")]).is_some());
}

#[tokio::test]
async fn an_idle_app_freezes_then_stops_by_itself_and_the_next_request_wakes_it() {
    let app = fast_ticking_app().await;
    let token = app.api_token("idle@pusan.ac.kr").await;
    app.deploy_live(&token, "dozy", "static", example_zip("static-hello")).await;
    let (status, answer) = patch_scaling(&app, &token, "dozy", serde_json::json!({ "freeze_after": "1s", "idle": "3s" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!((answer["scaling"]["freeze_after_secs"].as_u64(), answer["scaling"]["idle_secs"].as_u64()), (Some(1), Some(3)));

    wait_for_state(&app, &token, "dozy", "frozen", Duration::from_secs(15)).await;
    let stopped = wait_for_state(&app, &token, "dozy", "stopped", Duration::from_secs(15)).await;
    assert_eq!(stopped["instances"], 0);

    let response = app.app_get("dozy", "/").await;
    assert_eq!(response.status(), 200, "the next request wakes the app");
    let status = app.api_get(&token, "/api/v1/projects/dozy/status").await;
    assert_eq!(status["wakes"][0]["tier"], "stopped", "{status}");

    let text = metrics_text(&app).await;
    let samples = orchestrator::metrics::parse::parse(&text).expect("the exposition parses");
    assert_eq!(sample(&samples, "slipway_wakes_total", &[("service", "dozy@slipway"), ("tier", "stopped")]), Some(1.0));
    let phases = ["spawn", "listening", "first_byte", "total"];
    for phase in phases {
        let count = sample(&samples, "slipway_wake_duration_seconds_count", &[("service", "dozy@slipway"), ("phase", phase)]);
        assert_eq!(count, Some(1.0), "one {phase} observation for the one wake");
    }
}

#[tokio::test]
async fn scaling_settings_are_checked_against_the_caps_and_only_the_owner_may_change_them() {
    let app =
        spawn_app_with(AppOptions { extra_scaling: "max_instances_per_app = 4\nmax_idle = \"1h\"\n".to_owned(), ..Default::default() })
            .await;
    let owner = app.api_token("owner@pusan.ac.kr").await;
    let other = app.api_token("other@pusan.ac.kr").await;
    app.create_project(&owner, "capped", "static").await;

    let current = app.api_get(&owner, "/api/v1/projects/capped/scaling").await;
    assert_eq!(current["caps"]["max_instances"], 4);
    assert_eq!(current["scaling"]["custom"], serde_json::json!([]));

    let (status, error) = patch_scaling(&app, &owner, "capped", serde_json::json!({ "max_instances": 9 })).await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["code"], "invalid_scaling");
    assert_eq!(error["error"]["field"], "max_instances");
    let (status, error) = patch_scaling(&app, &owner, "capped", serde_json::json!({ "idle": "3h" })).await;
    assert_eq!((status, error["error"]["field"].as_str()), (422, Some("idle")), "{error}");
    let (status, _) = patch_scaling(&app, &owner, "capped", serde_json::json!({ "instances": 2 })).await;
    assert_eq!(status, 400, "an unknown field is refused, not ignored");

    let (status, _) = patch_scaling(&app, &other, "capped", serde_json::json!({ "max_instances": 2 })).await;
    assert!(status == 403 || status == 404, "another student may not change it: {status}");

    let (status, answer) = patch_scaling(&app, &owner, "capped", serde_json::json!({ "max_instances": 4, "idle": "45m" })).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["scaling"]["custom"], serde_json::json!(["max_instances", "idle"]));
    let refused_did_not_change = app.api_get(&owner, "/api/v1/projects/capped/scaling").await;
    assert_eq!(refused_did_not_change["scaling"]["max_instances"], 4);
    assert_eq!(refused_did_not_change["scaling"]["idle_secs"], 2700);

    let (status, answer) = patch_scaling(&app, &owner, "capped", serde_json::json!({ "reset": true })).await;
    assert_eq!(status, 200);
    assert_eq!(answer["scaling"]["custom"], serde_json::json!([]));
    assert_eq!(answer["scaling"]["idle_secs"], 300);
}

#[tokio::test]
async fn the_project_page_shows_and_changes_the_scaling_settings() {
    let app = crate::helpers::spawn_app().await;
    app.signed_in_user("page-scale@pusan.ac.kr").await;
    assert_eq!(app.post_form("/projects", &[("name", "paged"), ("template", "static")]).await.status(), 303);
    let page = crate::helpers::text(app.get("/projects/paged").await).await;
    assert!(page.contains("data-testid=\"scaling\"") && page.contains("name=\"idle\" value=\"5m\""), "{page}");

    let form = [("min_instances", "0"), ("max_instances", "2"), ("target_concurrency", "5"), ("freeze_after", "0"), ("idle", "20m")];
    assert_eq!(app.post_form("/projects/paged/scaling", &form).await.status(), 303);
    let page = crate::helpers::text(app.get("/projects/paged").await).await;
    assert!(page.contains("name=\"idle\" value=\"20m\"") && page.contains("name=\"freeze_after\" value=\"0\""), "{page}");

    let too_many = [("min_instances", "0"), ("max_instances", "50"), ("target_concurrency", "5"), ("freeze_after", "0"), ("idle", "20m")];
    let refused = app.post_form("/projects/paged/scaling", &too_many).await;
    assert_eq!(refused.status(), 422);
    assert!(crate::helpers::text(refused).await.contains("max_instances = 50"), "the message names the field and the value");
}
