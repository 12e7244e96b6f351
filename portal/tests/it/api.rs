//! The JSON API: tokens, the caller's profile, admin routes, error bodies, and the behaviour
//! when Redis dies.

use std::time::Duration;

use crate::helpers::{free_port, spawn_app, spawn_app_with, AppOptions, PASSWORD};

#[tokio::test]
async fn openapi_document_is_served() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let document: serde_json::Value = response.json().await.expect("json");
    assert!(document["paths"]["/api/v1/me"]["get"].is_object());
}

#[tokio::test]
async fn tokens_authenticate_the_api_until_revoked() {
    let app = spawn_app().await;
    let token = app.api_token("api@pusan.ac.kr").await;
    let me: serde_json::Value =
        app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.expect("GET").json().await.expect("json");
    assert_eq!(me["email"], "api@pusan.ac.kr");
    assert!(me.get("password_hash").is_none());

    let updated = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"display_name": "API 사용자", "language": "ko"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(updated.status(), 200);
    let updated: serde_json::Value = updated.json().await.expect("json");
    assert_eq!(
        (updated["display_name"].as_str(), updated["language"].as_str(), updated["student_number"].as_str()),
        (Some("API 사용자"), Some("ko"), Some("202312345"))
    );

    let bad = app
        .client
        .patch(app.url("/api/v1/me"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"language": "fr"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(bad.status(), 422);
    assert_eq!(bad.json::<serde_json::Value>().await.expect("json")["error"]["code"], "invalid_language");

    let tokens: serde_json::Value =
        app.client.get(app.url("/api/v1/tokens")).bearer_auth(&token).send().await.expect("GET").json().await.expect("json");
    let listed = tokens["tokens"].as_array().expect("array");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("token_hash").is_none() && listed[0]["prefix"].as_str().is_some_and(|p| token.starts_with(p)));
    let token_id = listed[0]["id"].as_i64().expect("id");

    let revoked = app.client.delete(app.url(&format!("/api/v1/tokens/{token_id}"))).bearer_auth(&token).send().await.expect("DELETE");
    assert_eq!(revoked.status(), 204);
    let after = app.client.get(app.url("/api/v1/me")).bearer_auth(&token).send().await.expect("GET");
    assert_eq!(after.status(), 401);
    assert_eq!(after.json::<serde_json::Value>().await.expect("json")["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn errors_are_json_with_a_stable_code() {
    let app = spawn_app().await;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (app.client.get(app.url("/api/v1/me")), 401, "unauthorized"),
        (app.client.get(app.url("/api/v1/me")).bearer_auth("slw_not_a_token"), 401, "unauthorized"),
        (app.client.post(app.url("/api/v1/accounts")).header("Content-Type", "application/json").body("{not json"), 400, "invalid_body"),
        (app.client.post(app.url("/api/v1/accounts")).json(&serde_json::json!({"email": "x@pusan.ac.kr"})), 400, "invalid_body"),
        (app.client.get(app.url("/api/v1/no-such-route")), 404, "not_found"),
        (
            app.client
                .post(app.url("/api/v1/tokens"))
                .json(&serde_json::json!({"email": "ghost@pusan.ac.kr", "password": PASSWORD, "name": "x"})),
            401,
            "invalid_credentials",
        ),
        (app.client.post(app.url("/api/v1/accounts/verify")).json(&serde_json::json!({"token": "nope"})), 400, "token_invalid"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.expect("request");
        assert_eq!(response.status().as_u16(), status);
        assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("application/json"));
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
}

#[tokio::test]
async fn unverified_accounts_get_no_api_token() {
    let app = spawn_app().await;
    app.sign_up("unverified@pusan.ac.kr").await;
    let response = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": "unverified@pusan.ac.kr", "password": PASSWORD, "name": "x"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    assert_eq!(response.json::<serde_json::Value>().await.expect("json")["error"]["code"], "email_not_verified");
}

#[tokio::test]
async fn admin_routes_are_for_admins_only() {
    let app = spawn_app().await;
    let student = app.api_token("student@pusan.ac.kr").await;
    let forbidden = app.client.get(app.url("/api/v1/admin/users")).bearer_auth(&student).send().await.expect("GET");
    assert_eq!(forbidden.status(), 403);
    assert_eq!(forbidden.json::<serde_json::Value>().await.expect("json")["error"]["code"], "forbidden");

    portal::accounts::create_verified_user(&app.state.db, "root@pusan.ac.kr", PASSWORD, "Root", portal::domain::Role::Admin)
        .await
        .expect("admin");
    let admin: serde_json::Value = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": "root@pusan.ac.kr", "password": PASSWORD, "name": "x"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("json");
    let admin = admin["token"].as_str().expect("token").to_owned();
    let users: serde_json::Value =
        app.client.get(app.url("/api/v1/admin/users")).bearer_auth(&admin).send().await.expect("GET").json().await.expect("json");
    let student_id = users["users"].as_array().expect("users").iter().find(|u| u["email"] == "student@pusan.ac.kr").expect("listed")["id"]
        .as_i64()
        .expect("id");
    let promoted = app
        .client
        .patch(app.url(&format!("/api/v1/admin/users/{student_id}")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"role": "professor"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(promoted.json::<serde_json::Value>().await.expect("json")["role"], "professor");
    let bad_role = app
        .client
        .patch(app.url(&format!("/api/v1/admin/users/{student_id}")))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"role": "god"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(bad_role.status(), 422);
    let missing = app
        .client
        .patch(app.url("/api/v1/admin/users/999999"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({"role": "student"}))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(missing.status(), 404);
}

/// A Redis of this test's own, so it can be killed.
struct OwnRedis {
    child: std::process::Child,
    url: String,
}

impl OwnRedis {
    fn start() -> Self {
        let port = free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server");
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_dead_redis_gives_a_clear_503_and_the_portal_recovers() {
    let mut redis = OwnRedis::start();
    let app = spawn_app_with(AppOptions { redis_url: Some(redis.url.clone()), ..Default::default() }).await;
    let link = app.sign_up("redis@pusan.ac.kr").await;
    app.client.get(&link).send().await.expect("verify");

    redis.child.kill().expect("kill redis");
    redis.child.wait().expect("reap redis");

    let started = std::time::Instant::now();
    let login = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": "redis@pusan.ac.kr", "password": PASSWORD, "name": "x"}))
        .send()
        .await
        .expect("POST");
    assert!(started.elapsed() < Duration::from_secs(10), "a dead Redis must not hang requests ({:?})", started.elapsed());
    assert_eq!(login.status(), 503);
    assert!(login.headers().contains_key("retry-after"));
    let body: serde_json::Value = login.json().await.expect("json");
    assert_eq!(body["error"]["code"], "service_unavailable");
    assert!(body["error"]["message"].as_str().expect("message").contains("session store"));

    let page = app.post_form("/login", &[("email", "redis@pusan.ac.kr"), ("password", PASSWORD)]).await;
    assert_eq!(page.status(), 503);
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 503);

    // Redis comes back on the same port: the portal reconnects by itself.
    let port = redis.url.rsplit(':').next().expect("port").to_owned();
    redis.child = std::process::Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = app
            .client
            .post(app.url("/api/v1/tokens"))
            .json(&serde_json::json!({"email": "redis@pusan.ac.kr", "password": PASSWORD, "name": "x"}))
            .send()
            .await
            .expect("POST");
        if response.status() == 201 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the portal did not recover: {}", response.status());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
