//! Scale to zero and wake: an app frozen or stopped by `sleep` answers the next request after a
//! thaw or a cold start; held requests are all answered; crawlers do not wake a stopped app.

use crate::helpers::{example_zip, spawn_app};

#[tokio::test]
async fn frozen_and_stopped_apps_wake_on_the_next_request() {
    let app = spawn_app().await;
    let token = app.api_token("tiers@pusan.ac.kr").await;
    app.client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "name": "sleepy" }))
        .send()
        .await
        .expect("POST");
    let (status, _) = app.deploy_zip(&token, "sleepy", example_zip("python-plain")).await;
    assert_eq!(status, 202);
    assert_eq!(app.wait_for_revision(&token, "sleepy", 1).await["status"], "live");
    let sleep = |freeze: bool| {
        app.client.post(app.url("/api/v1/projects/sleepy/sleep")).bearer_auth(&token).json(&serde_json::json!({ "freeze": freeze })).send()
    };
    let state = |value: serde_json::Value| value["state"].as_str().unwrap_or("").to_owned();

    // Frozen: the process is stopped, memory kept; a request thaws it.
    let frozen: serde_json::Value = sleep(true).await.expect("POST").json().await.expect("json");
    assert_eq!(state(frozen), "frozen");
    assert_eq!(app.app_get("sleepy", "/").await.status(), 200);
    let status = app.api_get(&token, "/api/v1/projects/sleepy/status").await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["wakes"][0]["tier"], "frozen");

    // Stopped: nothing runs; a crawler does not wake it, a visitor does, and ten concurrent
    // requests held during the wake are all answered.
    let stopped: serde_json::Value = sleep(false).await.expect("POST").json().await.expect("json");
    assert_eq!((state(stopped.clone()), stopped["instances"].as_i64()), ("stopped".to_owned(), Some(0)));
    let crawler = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/", app.gateway_port))
        .header("Host", "sleepy.localhost")
        .header("User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1)")
        .send()
        .await
        .expect("GET");
    assert_eq!(crawler.status(), 503);
    let after_crawler = app.api_get(&token, "/api/v1/projects/sleepy/status").await;
    assert_eq!(after_crawler["state"], "stopped", "a crawler must not wake the app");

    let requests = (0..10).map(|_| app.app_get("sleepy", "/"));
    let answers = futures_util::future::join_all(requests).await;
    assert!(
        answers.iter().all(|r| r.status() == 200),
        "every held request is answered: {:?}",
        answers.iter().map(|r| r.status()).collect::<Vec<_>>()
    );
    let status = app.api_get(&token, "/api/v1/projects/sleepy/status").await;
    assert_eq!(status["state"], "running");
    let wake = &status["wakes"][0];
    assert_eq!(wake["tier"], "stopped", "{status}");
    let total = wake["total_ms"].as_f64().expect("total");
    let phases = wake["spawn_ms"].as_f64().expect("spawn")
        + wake["listening_ms"].as_f64().expect("listening")
        + wake["first_byte_ms"].as_f64().expect("first byte");
    assert!((total - phases).abs() < 1.0, "the phases add up to the total: {wake}");
    assert_eq!(status["wakes"].as_array().map(Vec::len), Some(2), "one thaw and one wake, however many requests waited");
}

/// Serves the first time it starts; every later start finds its marker in `/data` and exits,
/// so its wake from zero fails.
const STARTS_ONCE: &str = r#"import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
marker = "/data/started"
if os.path.exists(marker):
    print("refusing to start twice", flush=True)
    sys.exit(3)
open(marker, "w").close()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"#;

#[tokio::test]
async fn a_wake_that_fails_answers_every_held_request_with_503_and_the_queue_is_bounded() {
    use crate::helpers::{pack, project_dir, spawn_app_with, AppOptions};
    let app = spawn_app_with(AppOptions { extra_scaling: "max_held_requests = 3\n".to_owned(), ..Default::default() }).await;
    let token = app.api_token("fails@pusan.ac.kr").await;
    let dir = project_dir(&[("main.py", STARTS_ONCE), ("requirements.txt", "")]);
    app.deploy_live(&token, "once", "python", pack(dir.path())).await;
    let stopped = app.client.post(app.url("/api/v1/projects/once/sleep")).bearer_auth(&token).send().await.expect("sleep");
    assert_eq!(stopped.status(), 200);

    // Eight at once: three are held for the wake (which fails), the other five overflow the queue.
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all((0..8).map(|_| app.app_get("once", "/"))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|s| *s == 503), "every request gets 503: {statuses:?}");
    assert!(answers.iter().all(|r| r.headers().contains_key("retry-after")), "each 503 says when to retry");
    assert!(started.elapsed() < std::time::Duration::from_secs(25), "nothing hangs until the wake timeout");
    let status = app.api_get(&token, "/api/v1/projects/once/status").await;
    assert_eq!(status["state"], "stopped", "a failed wake leaves the app stopped, so a later request tries again: {status}");
    assert!(status["last_exit"].as_str().unwrap_or("").contains("stopped before it answered"), "{status}");
}

#[tokio::test]
async fn a_websocket_handshake_to_a_stopped_app_is_held_through_the_wake_and_spliced() {
    let app = spawn_app().await;
    let token = app.api_token("ws-wake@pusan.ac.kr").await;
    app.deploy_live(&token, "wswake", "python", crate::access::echo_zip()).await;
    let stopped = app.client.post(app.url("/api/v1/projects/wswake/sleep")).bearer_auth(&token).send().await.expect("sleep");
    assert_eq!(stopped.status(), 200);
    assert_eq!(app.api_get(&token, "/api/v1/projects/wswake/status").await["state"], "stopped");

    // 101 and the app's first frame ("hi") through the spliced connection, after a cold start.
    assert_eq!(crate::access::websocket_status(&app, "wswake", None).await, 101);
    let status = app.api_get(&token, "/api/v1/projects/wswake/status").await;
    assert_eq!(status["state"], "running");
    assert_eq!(status["wakes"][0]["tier"], "stopped", "{status}");
}
