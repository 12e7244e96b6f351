//! Deploying for real: ZIPs of the sample apps go through upload, a sandboxed build and a
//! health-gated start, and answer through the gateway at `NAME.localhost`.

use crate::helpers::{example_zip, spawn_app, text, TestApp};

async fn create(app: &TestApp, token: &str, name: &str, template: &str) {
    let response = app
        .client
        .post(app.url("/api/v1/projects"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "name": name, "template": template }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn a_static_site_deploys_from_a_zip_and_answers_through_the_gateway() {
    let app = spawn_app().await;
    let token = app.api_token("static@pusan.ac.kr").await;
    create(&app, &token, "hello-static", "auto").await;
    let (status, revision) = app.deploy_zip(&token, "hello-static", example_zip("static-hello")).await;
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
    let (status, revision) = app.deploy_zip(&token, "hello-py", example_zip("python-plain")).await;
    assert_eq!(status, 202, "{revision}");
    let done = app.wait_for_revision(&token, "hello-py", 1).await;
    assert_eq!(done["status"], "live", "{done}");
    let page = app.app_get("hello-py", "/").await;
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn the_project_page_uploads_shows_revisions_logs_and_rolls_back() {
    let app = spawn_app().await;
    app.signed_in_user("pageuser@pusan.ac.kr").await;
    assert_eq!(app.post_form("/projects", &[("name", "page-site"), ("template", "static")]).await.status(), 303);
    let csrf = app.csrf_for(&app.client, &app.jar).await;
    let upload = |zip: Vec<u8>, csrf: String| {
        app.client
            .post(app.url("/projects/page-site/upload"))
            .header("Content-Type", "application/zip")
            .header("X-CSRF-Token", csrf)
            .body(zip)
            .send()
    };

    let forged = upload(example_zip("static-hello"), "forged".to_owned()).await.expect("POST");
    assert_eq!(forged.status(), 403, "the upload needs the CSRF header");
    let first = upload(example_zip("static-hello"), csrf.clone()).await.expect("POST");
    assert_eq!(first.status(), 202);
    // Wait for it through the page's own text stream (the build log follows until the build ends).
    let log = app.get("/projects/page-site/revisions/1/log.txt?follow=true").await.text().await.expect("log");
    assert!(log.contains("[slipway] building revision 1") && log.contains("is live"), "{log}");
    let page = text(app.get("/projects/page-site").await).await;
    assert!(page.contains("data-testid=\"app-state\">running") && page.contains("data-testid=\"revisions\""), "{page}");

    let second_site = app.data_dir.join("second");
    std::fs::create_dir_all(&second_site).expect("mkdir");
    std::fs::write(second_site.join("index.html"), "second edition").expect("write");
    let zip = orchestrator::artifact::pack_dir(&second_site, &orchestrator::artifact::Limits::default()).expect("pack");
    assert_eq!(upload(zip, csrf.clone()).await.expect("POST").status(), 202);
    let log = app.get("/projects/page-site/revisions/2/log.txt?follow=true").await.text().await.expect("log");
    assert!(log.contains("is live"), "{log}");
    assert!(app.app_get("page-site", "/").await.text().await.expect("body").contains("second edition"));

    let revision_page = text(app.get("/projects/page-site/revisions/2").await).await;
    assert!(revision_page.contains("data-testid=\"revision-status\">live"), "{revision_page}");
    let logs = app.get("/projects/page-site/logs.txt").await.text().await.expect("logs");
    assert!(logs.contains("revision 2 is live"), "{logs}");

    let rolled = app.post_form("/projects/page-site/rollback", &[("revision", "1")]).await;
    assert_eq!(rolled.status(), 303);
    assert!(app.app_get("page-site", "/").await.text().await.expect("body").contains("Hello from Slipway"));

    let bad = upload(b"definitely not a zip".to_vec(), csrf).await.expect("POST");
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value = bad.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_a_zip");
}
