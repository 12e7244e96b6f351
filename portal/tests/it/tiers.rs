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
