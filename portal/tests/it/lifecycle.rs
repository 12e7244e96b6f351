//! What happens to a running app over its life: a broken build and an app that never listens both
//! leave the previous revision serving, a crashing app is restarted (the gateway shows the crash
//! page meanwhile), rollback puts an earlier revision back, and deleting a project stops it.
//!
//! The apps are tiny Python servers written by the tests (standard library only, nothing to
//! download) or static sites, which build and start fastest.

use std::time::{Duration, Instant};

use crate::helpers::{pack, project_dir, spawn_app, TestApp};

/// A server that answers `/` with `text`, and on `/crash` answers, then exits with code 1.
fn python_app(text: &str) -> Vec<u8> {
    let main = format!(
        r#"
import os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class App(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"crashing now" if self.path == "/crash" else {text:?}.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/crash":
            print("about to crash", flush=True)
            threading.Timer(0.2, lambda: os._exit(1)).start()

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), App).serve_forever()
"#
    );
    let dir = project_dir(&[("main.py", &main), ("requirements.txt", "")]);
    pack(dir.path())
}

fn static_site(text: &str) -> Vec<u8> {
    let dir = project_dir(&[("index.html", text)]);
    pack(dir.path())
}

async fn body_of(app: &TestApp, name: &str) -> (u16, String) {
    let response = app.app_get(name, "/").await;
    (response.status().as_u16(), response.text().await.unwrap_or_default())
}

/// Uploads `zip` as the next revision of an existing project and waits for its final status.
async fn redeploy(app: &TestApp, token: &str, name: &str, zip: Vec<u8>) -> serde_json::Value {
    let (status, queued) = app.deploy_zip(token, name, zip).await;
    assert_eq!(status, 202, "{queued}");
    app.wait_for_revision(token, name, queued["number"].as_i64().expect("number")).await
}

async fn status_of(app: &TestApp, token: &str, name: &str) -> serde_json::Value {
    app.client
        .get(app.url(&format!("/api/v1/projects/{name}/status")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET status")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_failed_build_leaves_the_previous_revision_live_and_says_why() {
    let app = spawn_app().await;
    let token = app.api_token("l-build@pusan.ac.kr").await;
    app.deploy_live(&token, "l-build", "python", python_app("version one")).await;

    let broken = project_dir(&[("main.py", "def broken(:\n    pass\n"), ("requirements.txt", "")]);
    let failed = redeploy(&app, &token, "l-build", pack(broken.path())).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default();
    // The revision names the failing step; the student's mistake itself is in the build log.
    assert!(error.contains("compileall") && error.contains("exited with code 1"), "{error}");
    let log = app.build_log(&failed);
    assert!(log.contains("SyntaxError") && log.contains("main.py"), "build log: {log}");
    assert!(log.contains("[slipway] build failed"), "build log: {log}");

    assert_eq!(body_of(&app, "l-build").await, (200, "version one".to_owned()));
    let revisions = app.revisions(&token, "l-build").await;
    let states: Vec<(i64, &str)> =
        revisions.iter().map(|r| (r["number"].as_i64().unwrap_or(0), r["status"].as_str().unwrap_or(""))).collect();
    assert_eq!(states, [(2, "failed"), (1, "live")]);
    let status = status_of(&app, &token, "l-build").await;
    assert_eq!((status["state"].as_str(), status["revision"].as_i64()), (Some("running"), Some(1)), "{status}");
}

#[tokio::test]
async fn an_app_that_never_listens_fails_its_health_check_while_the_old_revision_keeps_serving() {
    let app = spawn_app().await;
    let token = app.api_token("l-health@pusan.ac.kr").await;
    app.deploy_live(&token, "l-health", "python", python_app("still the old one")).await;

    let silent = project_dir(&[("main.py", "import time\nprint('thinking...', flush=True)\ntime.sleep(3600)\n"), ("requirements.txt", "")]);
    let (status, queued) = app.deploy_zip(&token, "l-health", pack(silent.path())).await;
    assert_eq!(status, 202, "{queued}");
    // During the whole grace period (30 s for Python) the old revision answers every request.
    let started = Instant::now();
    let mut n_answered = 0;
    let failed = loop {
        assert_eq!(body_of(&app, "l-health").await, (200, "still the old one".to_owned()), "after {:?}", started.elapsed());
        n_answered += 1;
        let revision = app.revisions(&token, "l-health").await.into_iter().find(|r| r["number"] == 2).expect("revision 2");
        if matches!(revision["status"].as_str(), Some("live" | "failed")) {
            break revision;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "revision 2 never finished: {revision}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("the silent revision failed after {:?}; the old one answered {n_answered} requests meanwhile", started.elapsed());
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not answer on port 8080 within 30 s") && error.contains("thinking..."), "{error}");
    assert_eq!(body_of(&app, "l-health").await, (200, "still the old one".to_owned()));
    let status = status_of(&app, &token, "l-health").await;
    assert_eq!(
        (status["state"].as_str(), status["revision"].as_i64(), status["running_revision"].as_i64()),
        (Some("running"), Some(1), Some(1)),
        "{status}"
    );
}

#[tokio::test]
async fn a_crashed_app_shows_the_crash_page_then_is_restarted_and_serves_again() {
    let app = spawn_app().await;
    let token = app.api_token("l-crash@pusan.ac.kr").await;
    app.deploy_live(&token, "l-crash", "python", python_app("alive")).await;
    let crash = app.app_get("l-crash", "/crash").await;
    assert_eq!(crash.text().await.unwrap_or_default(), "crashing now");

    let (status, page) =
        app.app_get_until("l-crash", "/", Duration::from_secs(5), |status, body| status == 502 && body.contains("crashed")).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("This app crashed") && page.contains("l-crash"), "{page}");
    let crashed = status_of(&app, &token, "l-crash").await;
    assert_eq!(crashed["state"], "crashed", "{crashed}");
    assert_eq!(crashed["last_exit"], "exited with code 1", "{crashed}");

    // The first restart comes after 1 s of backoff.
    let (status, body) = app.app_get_until("l-crash", "/", Duration::from_secs(15), |status, _| status == 200).await;
    assert_eq!((status, body.as_str()), (200, "alive"));
    let restarted = status_of(&app, &token, "l-crash").await;
    assert_eq!((restarted["state"].as_str(), restarted["restarts"].as_i64()), (Some("running"), Some(1)), "{restarted}");
    let logs = app
        .client
        .get(app.url("/api/v1/projects/l-crash/logs"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET logs")
        .text()
        .await
        .expect("text");
    assert!(
        logs.contains("about to crash") && logs.contains("exited with code 1; restarting") && logs.contains("[slipway] restarted"),
        "{logs}"
    );
}

#[tokio::test]
async fn rollback_puts_the_previous_revision_back_and_refuses_revisions_that_never_built() {
    let app = spawn_app().await;
    let token = app.api_token("l-rollback@pusan.ac.kr").await;
    let rollback =
        |body: serde_json::Value| app.client.post(app.url("/api/v1/projects/l-rollback/rollback")).bearer_auth(&token).json(&body).send();

    app.deploy_live(&token, "l-rollback", "auto", static_site("first")).await;
    let nothing = rollback(serde_json::json!({})).await.expect("POST");
    assert_eq!(nothing.status(), 422);
    assert_eq!(nothing.json::<serde_json::Value>().await.expect("json")["error"]["code"], "nothing_to_roll_back_to");

    assert_eq!(redeploy(&app, &token, "l-rollback", static_site("second")).await["status"], "live");
    let broken = project_dir(&[("main.py", "def broken(:\n"), ("requirements.txt", "")]);
    assert_eq!(redeploy(&app, &token, "l-rollback", pack(broken.path())).await["status"], "failed");
    assert_eq!(body_of(&app, "l-rollback").await, (200, "second".to_owned()));

    let to_failed = rollback(serde_json::json!({ "revision": 3 })).await.expect("POST");
    assert_eq!(to_failed.status(), 422);
    let refused: serde_json::Value = to_failed.json().await.expect("json");
    assert_eq!(refused["error"]["code"], "revision_not_built", "{refused}");

    let back = rollback(serde_json::json!({})).await.expect("POST");
    assert_eq!(back.status(), 200);
    assert_eq!(back.json::<serde_json::Value>().await.expect("json")["number"], 1);
    assert_eq!(body_of(&app, "l-rollback").await, (200, "first".to_owned()));
    let states: Vec<(i64, String)> = app
        .revisions(&token, "l-rollback")
        .await
        .iter()
        .map(|r| (r["number"].as_i64().unwrap_or(0), r["status"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(states, [(3, "failed".to_owned()), (2, "retired".to_owned()), (1, "live".to_owned())]);

    // Forward again, by number.
    let forward = rollback(serde_json::json!({ "revision": 2 })).await.expect("POST");
    assert_eq!(forward.status(), 200);
    assert_eq!(body_of(&app, "l-rollback").await, (200, "second".to_owned()));
    assert_eq!(status_of(&app, &token, "l-rollback").await["revision"], 2);
}

#[tokio::test]
async fn deleting_a_project_stops_its_instance_and_removes_its_files() {
    let app = spawn_app().await;
    let token = app.api_token("l-delete@pusan.ac.kr").await;
    app.deploy_live(&token, "l-delete", "python", python_app("here")).await;
    assert_eq!(body_of(&app, "l-delete").await, (200, "here".to_owned()));
    let sandboxes = |name: &str| -> Vec<String> {
        std::fs::read_dir("/sys/fs/cgroup/pids/slipway")
            .or_else(|_| std::fs::read_dir("/sys/fs/cgroup/slipway"))
            .map(|dir| {
                dir.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&format!("app-{name}-")))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(sandboxes("l-delete").len(), 1, "one running sandbox before the delete");

    let deleted = app.client.delete(app.url("/api/v1/projects/l-delete")).bearer_auth(&token).send().await.expect("DELETE");
    assert_eq!(deleted.status(), 204);
    let (status, page) = body_of(&app, "l-delete").await;
    assert_eq!(status, 404, "{page}");
    assert!(sandboxes("l-delete").is_empty(), "the sandbox is gone: {:?}", sandboxes("l-delete"));
    assert!(!app.data_dir.join("logs/apps/l-delete").exists());
    let apps: Vec<_> = std::fs::read_dir(app.data_dir.join("apps")).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(apps.is_empty(), "built revisions are removed");
    let missing = app.client.get(app.url("/api/v1/projects/l-delete/status")).bearer_auth(&token).send().await.expect("GET");
    assert_eq!(missing.status(), 404);
}
