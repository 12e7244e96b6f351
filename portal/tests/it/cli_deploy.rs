//! `slipway deploy` from a folder, then `status`, `logs`, a second deploy, `rollback`, and
//! `projects delete`, all through the real binary against a running portal.

use std::process::Command;

use crate::helpers::spawn_app;

fn slipway(address: &str, token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_slipway"));
    command.env("SLIPWAY_PORTAL", address).env("SLIPWAY_TOKEN", token).env_remove("XDG_CONFIG_HOME");
    command
}

async fn run(mut command: Command) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().expect("run slipway")).await.expect("join");
    (output.status.success(), String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[tokio::test]
async fn deploy_a_folder_then_check_status_logs_redeploy_and_roll_back() {
    let app = spawn_app().await;
    let token = app.api_token("cli@pusan.ac.kr").await;
    let mut create = slipway(&app.address, &token);
    create.args(["projects", "create", "cli-site", "--template", "auto"]);
    let (ok, stdout, stderr) = run(create).await;
    assert!(ok && stdout.contains("http://cli-site.localhost:"), "{stdout}{stderr}");

    // A site folder of our own, so the second deploy can differ.
    let site = app.data_dir.join("site");
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("index.html"), "<h1>first version</h1>").expect("write");
    let mut deploy = slipway(&app.address, &token);
    deploy.args(["deploy", "cli-site"]).arg(&site);
    let (ok, stdout, stderr) = run(deploy).await;
    assert!(ok, "deploy failed: {stdout}{stderr}");
    assert!(stdout.contains("cli-site is live: http://cli-site.localhost:"), "{stdout}");
    assert!(stderr.contains("revision 1 queued (static template)"), "{stderr}");
    assert!(app.app_get("cli-site", "/").await.text().await.expect("body").contains("first version"));

    let mut status = slipway(&app.address, &token);
    status.args(["status", "cli-site", "--json"]);
    let (ok, stdout, _) = run(status).await;
    let status: serde_json::Value = serde_json::from_str(&stdout).expect("status is JSON");
    assert!(ok);
    assert_eq!((status["state"].as_str(), status["revision"].as_i64(), status["instances"].as_i64()), (Some("running"), Some(1), Some(1)));
    assert!(status["url"].as_str().expect("url").starts_with("http://cli-site.localhost:"));

    let mut logs = slipway(&app.address, &token);
    logs.args(["logs", "cli-site"]);
    let (ok, stdout, _) = run(logs).await;
    assert!(ok && stdout.contains("[slipway] revision 1 is live"), "{stdout}");

    std::fs::write(site.join("index.html"), "<h1>second version</h1>").expect("write");
    let mut again = slipway(&app.address, &token);
    again.args(["deploy", "cli-site"]).arg(&site);
    let (ok, stdout, stderr) = run(again).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(app.app_get("cli-site", "/").await.text().await.expect("body").contains("second version"));

    let mut rollback = slipway(&app.address, &token);
    rollback.args(["rollback", "cli-site"]);
    let (ok, stdout, stderr) = run(rollback).await;
    assert!(ok && stdout.contains("revision 1 of cli-site is live again"), "{stdout}{stderr}");
    assert!(app.app_get("cli-site", "/").await.text().await.expect("body").contains("first version"));

    // A broken upload: the CLI exits non-zero with the reason, and the site keeps serving.
    let broken = app.data_dir.join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::write(broken.join("README.txt"), "no index.html here").expect("write");
    let mut bad = slipway(&app.address, &token);
    bad.args(["deploy", "cli-site"]).arg(&broken);
    let (ok, _, stderr) = run(bad).await;
    assert!(!ok && stderr.contains("index.html"), "{stderr}");
    assert!(app.app_get("cli-site", "/").await.text().await.expect("body").contains("first version"));

    let mut delete = slipway(&app.address, &token);
    delete.args(["projects", "delete", "cli-site", "--yes"]);
    let (ok, _, stderr) = run(delete).await;
    assert!(ok, "{stderr}");
    assert_eq!(app.app_get("cli-site", "/").await.status(), 404, "the instance stopped with the project");
}
