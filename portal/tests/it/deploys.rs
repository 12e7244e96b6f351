//! Deploying for real: ZIPs of the sample apps go through upload, a sandboxed build and a
//! health-gated start, and answer through the gateway at `NAME.localhost`.

use std::path::Path;

use crate::helpers::{spawn_app, TestApp};

fn example(name: &str) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    orchestrator::artifact::pack_dir(&dir, &orchestrator::artifact::Limits::default()).expect("pack the example")
}

async fn create(app: &TestApp, token: &str, name: &str, template: &str) {
    let response = app.client.post(app.url("/api/v1/projects")).bearer_auth(token).json(&serde_json::json!({ "name": name, "template": template })).send().await.expect("POST");
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_static_site_deploys_from_a_zip_and_answers_through_the_gateway() {
    let app = spawn_app().await;
    let token = app.api_token("static@pusan.ac.kr").await;
    create(&app, &token, "hello-static", "auto").await;
    let (status, revision) = app.deploy_zip(&token, "hello-static", example("static-hello")).await;
    assert_eq!(status, 202, "{revision}");
    assert_eq!(revision["template"], "static");
    let done = app.wait_for_revision(&token, "hello-static", 1).await;
    assert_eq!(done["status"], "live", "{done}");
    let page = app.app_get("hello-static", "/").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("body").contains("Hello from Slipway"));
    let missing = app.app_get("nobody-here", "/").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn a_python_app_builds_in_a_sandbox_and_serves() {
    let app = spawn_app().await;
    let token = app.api_token("python@pusan.ac.kr").await;
    create(&app, &token, "hello-py", "auto").await;
    let (status, revision) = app.deploy_zip(&token, "hello-py", example("python-plain")).await;
    assert_eq!(status, 202, "{revision}");
    let done = app.wait_for_revision(&token, "hello-py", 1).await;
    assert_eq!(done["status"], "live", "{done}");
    let page = app.app_get("hello-py", "/").await;
    assert_eq!(page.status(), 200);
}
