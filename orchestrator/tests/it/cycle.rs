//! The whole cluster cycle on one machine: the Nomad simulator, the real Traefik with the
//! project's `traefik/` config, a real OpenBao holding the app's secret, a real Redis carrying the
//! portal's published policy, and Slipway's own pieces as `slipway up --runtime nomad` runs them:
//! `NomadRuntime` (deploys, the autoscaler's `Runtime`, the activator's `Resolver`), the gateway
//! as the activator Traefik's catch-all points at, the policy feed, and the autoscaler loop
//! scraping Traefik's `/metrics` plus the activator's counters (`ClusterSource`).
//!
//! deploy → requests through Traefik to the instance → idle: the autoscaler scales to zero →
//! a request through Traefik reaches the activator, which scales from zero and proxies → the
//! secret is in the task's environment → idle again: back to zero.
//!
//! About the secret: the simulator renders the job's env template from OpenBao itself (with a
//! token given on its command line, since workload identity is not simulated), understanding only
//! the template form `render_job` writes. That the job carries the paths and never the value, and
//! that the rendered environment holds OpenBao's value, is what this shows; Nomad's real template
//! runner and the JWT login are for a real cluster to show.

use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator::autoscaler::run::{ClusterSource, HttpSource, LoopConfig};
use orchestrator::autoscaler::{GlobalCaps, Policy};
use orchestrator::gateway::{Gateway, GatewayConfig, TcpConnector};
use orchestrator::metrics::Registry;
use orchestrator::runtime::nomad::{ActivatorConfig, JobSettings, NomadRuntime, SecretRef};
use redis::AsyncCommands;
use serde_json::Value;

use crate::helpers::{spawn_bao, spawn_simulator, spawn_traefik, stand_in};
use crate::nomad::{deployment, fast_config};

const HOST: &str = "quiz.apps.example.edu";
const SECRET_PATH: &str = "secret/data/slipway/projects/42/env/API_KEY";
const SECRET_VALUE: &str = "s3cret \"quoted\" value";

async fn get(client: &reqwest::Client, port: u16) -> Option<(u16, String)> {
    let response = client.get(format!("https://127.0.0.1:{port}/hello")).header("Host", HOST).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

async fn job_count(runtime: &NomadRuntime) -> u64 {
    let job = runtime.client().job("quiz").await.unwrap().expect("the job exists");
    job["TaskGroups"][0]["Count"].as_u64().unwrap()
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, timeout: Duration, mut check: impl FnMut() -> F) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < timeout, "{what} did not happen within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn registered_services(address: &str) -> Vec<Value> {
    let text = reqwest::get(format!("{address}/v1/service/quiz")).await.unwrap().text().await.unwrap();
    serde_json::from_str::<Value>(&text).unwrap().as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn deploy_sleep_wake_through_traefik_and_the_activator_with_secrets_from_openbao() {
    let bao = spawn_bao().await;
    bao.put(SECRET_PATH, SECRET_VALUE).await;
    let simulator =
        spawn_simulator(&["--deploy-seconds", "0.3", "--start-seconds", "0.1", "--vault-addr", &bao.address, "--vault-token", "root"]);
    let app = stand_in("app quiz").await;
    let auth = stand_in("").await;

    // Slipway's side, as `slipway up --runtime nomad` wires it.
    let settings = JobSettings { cert_resolver: None, vault_role: "slipway-p42".to_owned(), ..JobSettings::default() };
    let activator_config = ActivatorConfig { wake_timeout: Duration::from_secs(20), ..ActivatorConfig::default() };
    let runtime = Arc::new(NomadRuntime::new(fast_config(&simulator, None), settings).unwrap().with_activator(activator_config));
    let activator_metrics = Arc::new(Registry::new());
    let activator = Gateway::with_metrics(GatewayConfig::new("apps.example.edu"), runtime.clone(), TcpConnector, activator_metrics.clone());
    let activator_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let activator_port = activator_listener.local_addr().unwrap().port();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(activator.serve(activator_listener, shutdown.clone()));
    let traefik = spawn_traefik(&simulator.address, activator_port, auth.port);

    // The portal's side of the policy contract: one record in Redis, as `Cache::publish_policies`
    // writes it, read by the feed.
    let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis_client = redis::Client::open(redis_url.as_str()).unwrap();
    let prefix = format!("cycle-{}:", std::process::id());
    let policy = Policy {
        stable_window_s: 2.0,
        panic_window_s: 1.0,
        idle_to_zero_s: Some(5.0),
        freeze_after_s: Some(1.0),
        max_metrics_age_s: 3.0,
        ..Policy::default()
    };
    {
        let mut conn = redis_client.get_multiplexed_async_connection().await.unwrap();
        let _: () = conn
            .hset(orchestrator::autoscaler::feed::policies_key(&prefix), "quiz", serde_json::to_string(&policy).unwrap())
            .await
            .unwrap();
        let _: () = conn.incr(orchestrator::autoscaler::feed::version_key(&prefix), 1).await.unwrap();
    }
    tokio::spawn(orchestrator::autoscaler::feed::run(
        runtime.clone(),
        redis_client.clone(),
        prefix.clone(),
        Duration::from_millis(200),
        shutdown.clone(),
    ));

    // 1. Deploy with one secret: the job names its path, never its value.
    let mut revision = deployment("quiz", 1);
    revision.secrets = vec![SecretRef { name: "API_KEY".to_owned(), kv_path: SECRET_PATH.to_owned() }];
    runtime.deploy(&revision).await.unwrap();
    simulator.set_port("quiz", app.port).await;
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());
    let job = runtime.client().job("quiz").await.unwrap().unwrap();
    assert!(!job.to_string().contains("s3cret"), "a secret value is in the job");
    assert!(job.to_string().contains(SECRET_PATH));

    // 2. The autoscaler, as in the cluster: Traefik's metrics over HTTP, the runtime's observations.
    let loop_config = LoopConfig {
        tick: Duration::from_millis(500),
        caps: GlobalCaps { max_instances_per_app: 3 },
        max_connection_idle: Duration::from_secs(2),
        min_free_memory_bytes: 0,
        absent_series_mean_idle: true,
    };
    let traefik_metrics = HttpSource {
        addr: format!("127.0.0.1:{}", traefik.metrics).parse().unwrap(),
        path: "/metrics".to_owned(),
        timeout: Duration::from_secs(2),
    };
    let source = ClusterSource { traefik: traefik_metrics, activator: activator_metrics.clone() };
    tokio::spawn(orchestrator::autoscaler::run::run(
        runtime.clone(),
        source,
        loop_config,
        Arc::new(Registry::new()),
        orchestrator::autoscaler::run::cluster_service_app,
        shutdown.clone(),
    ));

    // 3. Traffic through Traefik goes straight to the instance.
    let client = reqwest::Client::builder().danger_accept_invalid_certs(true).timeout(Duration::from_secs(30)).build().unwrap();
    wait_until("Traefik routing to the instance", Duration::from_secs(30), || async {
        matches!(get(&client, traefik.websecure).await, Some((200, body)) if body == "app quiz")
    })
    .await;
    for _ in 0..5 {
        assert_eq!(get(&client, traefik.websecure).await, Some((200, "app quiz".to_owned())), "{}", traefik.logs());
    }
    let observed = orchestrator::runtime::Runtime::observe(&*runtime).await;
    let quiz = observed.iter().find(|observation| observation.app == "quiz").expect("the published policy names the app");
    assert_eq!(quiz.policy.freeze_after_s, None, "no freeze tier with Nomad's service discovery");
    assert_eq!(quiz.ready, 1);

    // 4. Idle: the autoscaler stops every instance through the scale endpoint.
    wait_until("the autoscaler scaling the idle app to zero", Duration::from_secs(30), || async { job_count(&runtime).await == 0 }).await;
    wait_until("Nomad removing the service", Duration::from_secs(10), || async {
        registered_services(&simulator.address).await.is_empty()
    })
    .await;
    // Traefik drops the router on its next refresh (1 s here).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // 5. A request at zero: Traefik's catch-all → the activator → scale from zero → proxied.
    let started = Instant::now();
    let answer = get(&client, traefik.websecure).await;
    assert_eq!(answer, Some((200, "app quiz".to_owned())), "{}", traefik.logs());
    assert!(job_count(&runtime).await >= 1, "the activator scaled the app from zero");
    assert!(
        activator_metrics.render().contains("service=\"quiz@slipway\""),
        "the request went through the activator: {}",
        activator_metrics.render()
    );
    eprintln!("wake through Traefik and the activator took {:?}", started.elapsed());
    let scale_posts: Vec<Value> = simulator
        .requests()
        .await
        .into_iter()
        .filter(|request| request["Method"] == "POST" && request["Path"] == "/v1/job/quiz/scale")
        .collect();
    assert!(scale_posts.iter().any(|request| request["Body"]["Count"] == 0), "scaled to zero through the scale endpoint");
    assert!(scale_posts.iter().any(|request| request["Body"]["Count"] == 1), "scaled from zero through the scale endpoint");
    let registrations =
        simulator.requests().await.into_iter().filter(|request| request["Method"] == "POST" && request["Path"] == "/v1/jobs").count();
    assert_eq!(registrations, 1, "scaling never re-registers the job");

    // 6. The woken instance got its secret from OpenBao through the job's template.
    let (instances, _) = runtime.instances("quiz").await.unwrap();
    let live = instances.iter().find(|instance| instance.desired_status == "run").expect("a live instance");
    let env: Value = serde_json::from_str(
        &reqwest::get(format!("{}/_sim/env/{}", simulator.address, live.alloc_id)).await.unwrap().text().await.unwrap(),
    )
    .unwrap();
    assert_eq!(env["API_KEY"], SECRET_VALUE, "{env}");
    assert_eq!(env["PORT"], "8080");

    // 7. Idle again: back to zero.
    wait_until("the autoscaler scaling the woken app back to zero", Duration::from_secs(30), || async { job_count(&runtime).await == 0 })
        .await;

    let _ = stop.send(true);
    let mut conn = redis_client.get_multiplexed_async_connection().await.unwrap();
    let _: () = conn
        .del(&[orchestrator::autoscaler::feed::policies_key(&prefix), orchestrator::autoscaler::feed::version_key(&prefix)])
        .await
        .unwrap();
}

#[tokio::test]
async fn a_secret_missing_from_openbao_keeps_the_task_from_starting() {
    let bao = spawn_bao().await;
    let simulator =
        spawn_simulator(&["--deploy-seconds", "0.3", "--start-seconds", "0.1", "--vault-addr", &bao.address, "--vault-token", "root"]);
    let runtime = NomadRuntime::new(fast_config(&simulator, None), JobSettings::default()).unwrap();
    let mut revision = deployment("quiz", 1);
    revision.secrets = vec![SecretRef { name: "API_KEY".to_owned(), kv_path: SECRET_PATH.to_owned() }];
    runtime.deploy(&revision).await.unwrap();
    assert!(!runtime.wait_ready("quiz", 1, Duration::from_secs(2)).await.unwrap(), "the task must not start without its secret");
    assert_eq!(runtime.status("quiz").await.unwrap().state, "starting");
    bao.put(SECRET_PATH, "now here").await;
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap(), "it starts once the secret exists");
}

#[tokio::test]
async fn with_consul_discovery_an_idle_app_freezes_and_the_activator_thaws_it_on_a_request() {
    use orchestrator::gateway::{RequestHints, Resolution, Resolver, Upstream};
    use orchestrator::runtime::{Runtime, Tier};

    let simulator = spawn_simulator(&["--deploy-seconds", "0.2", "--start-seconds", "0.05"]);
    let app = stand_in("app quiz").await;
    let settings = JobSettings { discovery: orchestrator::runtime::nomad::Discovery::Consul, ..JobSettings::default() };
    let runtime = NomadRuntime::new(fast_config(&simulator, None), settings).unwrap();
    runtime.set_policy("quiz", Policy::default());
    runtime.deploy(&deployment("quiz", 1)).await.unwrap();
    simulator.set_port("quiz", app.port).await;
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());

    let observed = runtime.observe().await;
    assert_eq!(observed[0].policy.freeze_after_s, Policy::default().freeze_after_s, "Consul keeps the freeze tier");
    runtime.freeze("quiz").await.unwrap();
    let observed = runtime.observe().await;
    assert_eq!((observed[0].tier, observed[0].ready), (Tier::Frozen, 1));
    assert!(observed[0].frozen_since.is_some());

    // Consul's strictChecks drop the frozen instance, so the request comes to the activator.
    let resolution = runtime.resolve("quiz", &RequestHints::default()).await;
    assert_eq!(resolution, Resolution::Ready(Upstream::Tcp(format!("127.0.0.1:{}", app.port).parse().unwrap())));
    assert_eq!(runtime.observe().await[0].tier, Tier::Running);
    let signals: Vec<String> = simulator
        .requests()
        .await
        .iter()
        .filter(|request| request["Path"].as_str().unwrap_or("").ends_with("/signal"))
        .map(|request| request["Body"]["Signal"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(signals, ["SIGSTOP", "SIGCONT"]);
    assert_eq!(runtime.resolve("nobody", &RequestHints::default()).await, Resolution::NotFound, "only apps with a policy");
}
