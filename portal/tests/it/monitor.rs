//! The monitor against real PostgreSQL, Redis and a deployed app: samples are stored, rolled up
//! and pruned, the admin page and the project page draw charts with data, the JSON views answer,
//! and an incident queues exactly one mail per admin when it opens and one when it clears, also
//! across a second sampler that starts while the incident is open; a configured OpenBao (the
//! real dev server) is seen up, then down once it stops.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use portal::db::schema::{alert_incidents, metric_samples, outbound_mail};

use crate::helpers::{example_zip, free_port, spawn_app_with, text, AppOptions, TestApp, PASSWORD};

async fn admin_token(app: &TestApp, email: &str) -> String {
    portal::accounts::create_verified_user(&app.state.db, email, PASSWORD, "Admin", portal::domain::Role::Admin).await.expect("admin");
    let response = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD, "name": "monitor"}))
        .send()
        .await
        .expect("token");
    let body: serde_json::Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

fn count_samples(app: &TestApp, resolution: i32, series: &str, metric: &str) -> i64 {
    metric_samples::table
        .filter(metric_samples::resolution_secs.eq(resolution))
        .filter(metric_samples::series.eq(series))
        .filter(metric_samples::metric.eq(metric))
        .count()
        .get_result(&mut app.db())
        .expect("count")
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn samples_are_stored_rolled_up_pruned_and_drawn() {
    let app = spawn_app_with(AppOptions { extra_top: "[monitor]\ninterval = \"1s\"\n".into(), ..AppOptions::default() }).await;
    // Raw samples of a past stretch: two in one minute five minutes ago (rolled up into one
    // minute point, their mean), and one two hours ago (older than raw samples are kept).
    let now = Utc::now().timestamp();
    let minute = (now - 300).div_euclid(60) * 60;
    let raw = |at: i64, value: f64| portal::db::models::MetricSample {
        resolution_secs: 10,
        series: "synthetic".into(),
        metric: "cpu".into(),
        at: chrono::DateTime::from_timestamp(at, 0).expect("time"),
        value,
    };
    portal::db::monitor::insert(&mut app.db(), &[raw(minute + 5, 2.0), raw(minute + 35, 4.0), raw(now - 7200, 9.0)]).expect("insert");

    let token = admin_token(&app, "monitor-admin@pusan.ac.kr").await;
    app.deploy_live(&token, "mon-site", "auto", example_zip("static-hello")).await;
    for _ in 0..5 {
        assert_eq!(app.app_get("mon-site", "/").await.status(), 200);
    }
    wait_until("host and app samples", Duration::from_secs(20), || {
        count_samples(&app, 10, "host", "cpu") >= 2 && count_samples(&app, 10, "mon-site", "requests") >= 1
    })
    .await;
    let rolled: Vec<(chrono::DateTime<Utc>, f64)> = metric_samples::table
        .filter(metric_samples::resolution_secs.eq(60))
        .filter(metric_samples::series.eq("synthetic"))
        .select((metric_samples::at, metric_samples::value))
        .load(&mut app.db())
        .expect("rollups");
    assert_eq!(rolled, vec![(chrono::DateTime::from_timestamp(minute, 0).expect("time"), 3.0)], "one minute point, the mean");
    let old: i64 = metric_samples::table.filter(metric_samples::value.eq(9.0)).count().get_result(&mut app.db()).expect("count");
    assert_eq!(old, 0, "raw samples older than an hour are pruned");
    let requests: f64 = metric_samples::table
        .filter(metric_samples::series.eq("mon-site"))
        .filter(metric_samples::metric.eq("requests"))
        .select(diesel::dsl::sum(metric_samples::value))
        .first::<Option<f64>>(&mut app.db())
        .expect("sum")
        .unwrap_or(0.0);
    assert!(requests > 0.0, "the app's requests were counted");

    // The admin's page and JSON, and the project page's charts.
    app.post_form("/login", &[("email", "monitor-admin@pusan.ac.kr"), ("password", PASSWORD)]).await;
    let page = text(app.get("/admin/monitor").await).await;
    assert!(page.contains("data-chart=\"host-cpu\"") && page.contains("data-chart=\"host-net-rx\""), "{page}");
    assert!(!page.contains("data-chart=\"host-memory\" data-points=\"0\""), "the memory chart has points: {page}");
    assert!(page.contains("data-component=\"postgresql\"") && page.contains("data-app=\"mon-site\""), "{page}");
    assert!(page.contains("<meta http-equiv=\"refresh\" content=\"30\">"), "the monitor page reloads itself: {page}");
    let week = app.get("/admin/monitor?range=7d").await;
    assert_eq!(week.status(), 200);
    let project = text(app.get("/projects/mon-site").await).await;
    assert!(
        project.contains("data-chart=\"app-requests\"") && !project.contains("data-chart=\"app-requests\" data-points=\"0\""),
        "{project}"
    );
    let json = app.api_get(&token, "/api/v1/admin/monitor?range=1h").await;
    assert_eq!(json["range"], "1h");
    let components = json["components"].as_array().expect("components");
    assert!(
        components.iter().any(|c| c["name"] == "postgresql" && c["up"] == true)
            && components.iter().any(|c| c["name"] == "redis" && c["up"] == true),
        "{json}"
    );
    assert!(json["series"]["host"]["memory"].as_array().is_some_and(|points| !points.is_empty()), "{json}");
    let metrics = app.api_get(&token, "/api/v1/projects/mon-site/metrics").await;
    assert!(metrics["series"]["requests"].as_array().is_some_and(|points| !points.is_empty()), "{metrics}");

    // Students see neither the monitor page nor its JSON.
    let student = app.api_token("monitor-kim@pusan.ac.kr").await;
    let refused = app.client.get(app.url("/api/v1/admin/monitor")).bearer_auth(&student).send().await.expect("GET");
    assert_eq!(refused.status(), 403);
}

/// A loopback server answering `GET /ping` with 200 OK, as Traefik's ping endpoint does.
async fn ping_server(port: u16) -> tokio::task::JoinHandle<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind the ping port");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK").await;
            });
        }
    })
}

fn traefik_mails(app: &TestApp, to: &str) -> Vec<String> {
    outbound_mail::table
        .filter(outbound_mail::to_address.eq(to))
        .filter(outbound_mail::subject.like("%traefik%"))
        .order(outbound_mail::id.asc())
        .select(outbound_mail::subject)
        .load(&mut app.db())
        .expect("mail")
}

#[tokio::test]
async fn an_incident_is_mailed_once_when_it_opens_and_once_when_it_clears() {
    let port = free_port();
    let config = format!("[monitor]\ninterval = \"1s\"\nalert_after = \"2s\"\nclear_after = \"2s\"\ncheck_timeout = \"3s\"\ntraefik_url = \"http://127.0.0.1:{port}\"\n");
    let app = spawn_app_with(AppOptions { extra_top: config, ..AppOptions::default() }).await;
    admin_token(&app, "alert-admin@pusan.ac.kr").await;
    admin_token(&app, "alert-second@pusan.ac.kr").await;

    // Nothing listens on the port: Traefik is down, and after alert_after an incident opens.
    wait_until("the incident mail", Duration::from_secs(20), || traefik_mails(&app, "alert-admin@pusan.ac.kr").len() == 1).await;
    // A second sampler, as after a restart, finds the incident open and mails nothing more.
    let (stop_second, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(portal::monitor::run(app.state.clone(), std::sync::Arc::new(orchestrator::metrics::Registry::new()), stopped));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(traefik_mails(&app, "alert-admin@pusan.ac.kr"), vec!["[Slipway] Problem: traefik".to_owned()], "one mail per incident");
    assert_eq!(traefik_mails(&app, "alert-second@pusan.ac.kr").len(), 1, "every admin gets it");
    // Only Traefik's incident counts: on a loaded machine a slow PostgreSQL ping may open another.
    let traefik = alert_incidents::key.eq("component.traefik");
    let open: i64 = alert_incidents::table
        .filter(traefik)
        .filter(alert_incidents::cleared_at.is_null())
        .count()
        .get_result(&mut app.db())
        .expect("count");
    assert_eq!(open, 1);
    let page = app.api_get(&admin_token_again(&app).await, "/api/v1/admin/monitor").await;
    assert!(page["alerts"].as_array().is_some_and(|a| a.iter().any(|i| i["key"] == "component.traefik")), "{page}");

    // Traefik answers again: after clear_after, one more mail, and no more after that.
    let server = ping_server(port).await;
    wait_until("the resolved mail", Duration::from_secs(20), || traefik_mails(&app, "alert-admin@pusan.ac.kr").len() == 2).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        traefik_mails(&app, "alert-admin@pusan.ac.kr"),
        vec!["[Slipway] Problem: traefik".to_owned(), "[Slipway] Resolved: traefik".to_owned()],
        "one mail when it opens, one when it clears"
    );
    let cleared: i64 =
        alert_incidents::table.filter(alert_incidents::cleared_at.is_not_null()).count().get_result(&mut app.db()).expect("count");
    assert_eq!(cleared, 1);
    let _ = stop_second.send(true);
    server.abort();
}

async fn admin_token_again(app: &TestApp) -> String {
    let response = app
        .client
        .post(app.url("/api/v1/tokens"))
        .json(&serde_json::json!({"email": "alert-admin@pusan.ac.kr", "password": PASSWORD, "name": "again"}))
        .send()
        .await
        .expect("token");
    let body: serde_json::Value = response.json().await.expect("json");
    body["token"].as_str().expect("token").to_owned()
}

#[tokio::test]
async fn a_configured_openbao_is_checked_and_seen_down_when_it_stops() {
    let port = free_port();
    let bao = std::process::Command::new(crate::vault::bao_binary())
        .args(["server", "-dev", "-dev-root-token-id=root", &format!("-dev-listen-address=127.0.0.1:{port}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("bao starts");
    let mut bao = crate::vault::Bao(bao);
    let config = format!("[monitor]\ninterval = \"1s\"\ncheck_timeout = \"3s\"\nvault_url = \"http://127.0.0.1:{port}\"\n");
    let app = spawn_app_with(AppOptions { extra_top: config, ..AppOptions::default() }).await;
    let token = admin_token(&app, "bao-admin@pusan.ac.kr").await;
    let vault_status = |json: &serde_json::Value| {
        json["components"]
            .as_array()
            .and_then(|all| all.iter().find(|c| c["name"] == "vault").map(|c| (c["up"].as_bool(), c["detail"].as_str().map(str::to_owned))))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let json = app.api_get(&token, "/api/v1/admin/monitor").await;
        if vault_status(&json).is_some_and(|(up, _)| up == Some(true)) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "OpenBao was not seen up: {json}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = bao.0.kill();
    let _ = bao.0.wait();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let json = app.api_get(&token, "/api/v1/admin/monitor").await;
        if let Some((Some(false), detail)) = vault_status(&json) {
            assert_eq!(detail.as_deref(), Some("cannot connect"), "{json}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "a stopped OpenBao was not seen down: {json}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
