//! `NomadRuntime` against the Nomad simulator: the whole life of an app (deploy, the
//! active-deployment trap on scale, re-registration keeping counts, signals, logs, stop and
//! purge), ACL and validation errors, retries; then a contract check of every request body the
//! code sent against the recorded payloads' key paths.

use std::collections::BTreeSet;
use std::time::Duration;

use orchestrator::runtime::nomad::{Artifact, Built, Deployment, JobSettings, NomadConfig, NomadError, NomadRuntime};
use orchestrator::template::{self, ProjectDir};
use serde_json::Value;

use crate::helpers::{fixture, paths_of, repo, spawn_simulator, Simulator};

pub fn deployment(app: &str, revision: i32) -> Deployment {
    let files = ProjectDir::new(repo().join("examples/node-hello"));
    let plan = template::plan(template::detect(&files).unwrap(), &files).unwrap();
    Deployment {
        app: app.to_owned(),
        revision,
        plan,
        built: Built::Archive(Artifact {
            url: format!("http://127.0.0.1:9/artifacts/{app}/r{revision}.tar.gz?sig=test"),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            archive: "tar.gz".to_owned(),
        }),
        secrets: Vec::new(),
    }
}

pub fn fast_config(simulator: &Simulator, token: Option<&str>) -> NomadConfig {
    let mut config = NomadConfig::new(&simulator.address);
    config.token = token.map(str::to_owned);
    config.backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_millis(400);
    config.blocking_wait = Duration::from_secs(5);
    config.scale_blocked_timeout = Duration::from_secs(20);
    config
}

async fn job_count(runtime: &NomadRuntime, app: &str) -> u64 {
    let job = runtime.client().job(app).await.unwrap().expect("the job exists");
    job["TaskGroups"][0]["Count"].as_u64().unwrap()
}

#[tokio::test]
async fn an_app_lives_on_nomad_from_deploy_to_purge() {
    let simulator = spawn_simulator(&["--token", "t0ken", "--deploy-seconds", "0.6", "--start-seconds", "0.1"]);
    let runtime = NomadRuntime::new(fast_config(&simulator, Some("t0ken")), JobSettings::default()).unwrap();

    let first = runtime.deploy(&deployment("quiz", 1)).await.expect("registers");
    assert!(!first.preserved_counts, "a new job takes the rendered count");
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap(), "one instance becomes ready");

    // The first registration's Nomad deployment is still running: the scale call is refused
    // with 400 `job scaling blocked due to active deployment` and retried until it passes.
    runtime.scale("quiz", 2).await.expect("scales once the deployment is done");
    assert!(runtime.wait_ready("quiz", 2, Duration::from_secs(10)).await.unwrap());
    assert_eq!(runtime.status("quiz").await.unwrap().state, "running");
    assert_eq!(runtime.status("quiz").await.unwrap().instances, 2);

    // A new revision keeps the live count (PreserveCounts), it does not shrink to 1.
    let second = runtime.deploy(&deployment("quiz", 2)).await.unwrap();
    assert!(second.preserved_counts);
    assert_eq!(job_count(&runtime, "quiz").await, 2);
    assert!(runtime.wait_ready("quiz", 2, Duration::from_secs(10)).await.unwrap());
    assert_eq!(runtime.status("quiz").await.unwrap().revision, Some(2));

    // The freeze tier: SIGSTOP to every instance's task, then SIGCONT.
    assert_eq!(runtime.signal("quiz", "SIGSTOP").await.unwrap(), 2);
    assert_eq!(runtime.signal("quiz", "SIGCONT").await.unwrap(), 2);
    let logs = runtime.logs("quiz", 100).await.unwrap();
    assert!(logs.iter().any(|line| line.contains("listening on 8080")), "logs come from the instances: {logs:?}");
    // Followed: the simulator sends what there is, heartbeats for 2 s, then ends the streams.
    let mut followed = runtime.follow_logs("quiz", 4096).await.unwrap();
    let mut lines = Vec::new();
    while let Some(line) = tokio::time::timeout(Duration::from_secs(10), followed.recv()).await.expect("the streams end") {
        lines.push(line);
    }
    assert_eq!(lines.iter().filter(|line| line.contains("listening on 8080")).count(), 2, "one per instance: {lines:?}");

    runtime.scale("quiz", 0).await.expect("scales to zero (Scaling.Min is 0)");
    assert_eq!(runtime.status("quiz").await.unwrap().state, "stopped");
    let scale_posts_before = count(&simulator.requests().await, "POST", "/v1/job/quiz/scale");
    runtime.scale("quiz", 0).await.unwrap();
    assert_eq!(
        count(&simulator.requests().await, "POST", "/v1/job/quiz/scale"),
        scale_posts_before,
        "scaling to the current count sends nothing"
    );

    // A sleeping app's redeploy stays asleep.
    tokio::time::sleep(Duration::from_millis(700)).await;
    runtime.deploy(&deployment("quiz", 3)).await.unwrap();
    assert_eq!(job_count(&runtime, "quiz").await, 0, "a redeploy must not wake a sleeping app");

    runtime.stop("quiz", true).await.unwrap();
    runtime.stop("quiz", true).await.expect("stopping a purged job again is fine");
    assert_eq!(runtime.status("quiz").await.unwrap().state, "stopped");
    assert!(runtime.client().job("quiz").await.unwrap().is_none());

    let requests = simulator.requests().await;
    assert!(count_scale_to(&requests, 2) >= 2, "the blocked scale call was retried: {}", count_scale_to(&requests, 2));
    check_request_contract(&requests);
}

#[tokio::test]
async fn denied_and_invalid_requests_are_told_apart_and_not_retried() {
    let simulator = spawn_simulator(&["--token", "right"]);
    let wrong = NomadRuntime::new(fast_config(&simulator, Some("wrong")), JobSettings::default()).unwrap();
    match wrong.deploy(&deployment("quiz", 1)).await {
        Err(orchestrator::runtime::nomad::DeployError::Nomad(NomadError::Denied(message))) => assert_eq!(message, "ACL token not found"),
        other => panic!("expected a denial, got {other:?}"),
    }
    let anonymous = NomadRuntime::new(fast_config(&simulator, None), JobSettings::default()).unwrap();
    assert_eq!(anonymous.status("quiz").await.unwrap_err(), NomadError::Denied("Permission denied".to_owned()));

    // A count above the scaling maximum is a validation error: 500 with a text body.
    let runtime = NomadRuntime::new(fast_config(&simulator, Some("right")), JobSettings::default()).unwrap();
    let mut job = orchestrator::runtime::nomad::render_job(&deployment("quiz", 1), &JobSettings::default()).unwrap();
    job["TaskGroups"][0]["Count"] = 9.into();
    let before = simulator.requests().await.len();
    match runtime.client().register(&orchestrator::runtime::nomad::register_body(job, false)).await {
        Err(NomadError::Invalid(message)) => assert!(message.contains("Scaling policy invalid"), "{message}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert_eq!(simulator.requests().await.len(), before + 1, "a validation error is not retried");

    // A scale outside the policy is 400, named.
    runtime.deploy(&deployment("quiz", 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let error = runtime.scale("quiz", 99).await.unwrap_err();
    assert!(
        matches!(&error, NomadError::Status { status: 400, message } if message.contains("greater than scaling policy maximum")),
        "{error:?}"
    );
    assert_eq!(runtime.scale("nothing", 1).await.unwrap_err(), NomadError::NotFound("job not found".to_owned()));
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let simulator = spawn_simulator(&[]);
    let runtime = NomadRuntime::new(fast_config(&simulator, None), JobSettings::default()).unwrap();
    runtime.deploy(&deployment("quiz", 1)).await.unwrap();
    reqwest::Client::new()
        .post(format!("{}/_sim/fail", simulator.address))
        .body(r#"{"Status": 503, "Body": "No cluster leader", "Times": 2}"#)
        .send()
        .await
        .unwrap();
    let before = simulator.requests().await.len();
    assert_eq!(runtime.status("quiz").await.unwrap().revision, Some(1), "the read succeeds on the third try");
    assert!(simulator.requests().await.len() >= before + 3);

    // Nothing listens on port 9 of loopback: a transport failure, retried, then reported.
    let mut config = NomadConfig::new("http://127.0.0.1:9");
    config.retries = 1;
    config.backoff = Duration::from_millis(10);
    let unreachable = NomadRuntime::new(config, JobSettings::default()).unwrap();
    assert!(matches!(unreachable.status("quiz").await, Err(NomadError::Transport { .. })));
}

fn count(requests: &[Value], method: &str, path: &str) -> usize {
    requests.iter().filter(|request| request["Method"] == method && request["Path"] == path).count()
}

fn count_scale_to(requests: &[Value], n: u64) -> usize {
    requests
        .iter()
        .filter(|request| request["Method"] == "POST" && request["Path"] == "/v1/job/quiz/scale" && request["Body"]["Count"] == n)
        .count()
}

/// Every body the code sent has only key paths that the recorded payloads (or, for a few keys,
/// Nomad's `api` package as the reference quotes it) have.
fn check_request_contract(requests: &[Value]) {
    check_contract(requests, 6);
}

/// Every request body in `requests` uses only key paths some recorded Nomad payload has; at least
/// `min_bodies` bodies were checked.
pub fn check_contract(requests: &[Value], min_bodies: usize) {
    let mut job_paths = BTreeSet::new();
    for name in ["job-register-request-cli-output.json", "job-register-request.json", "hashistack-service-job-request.json"] {
        job_paths.extend(paths_of(&fixture(&format!("nomad/{name}")), ""));
    }
    job_paths.extend(paths_of(&fixture("nomad/job-read-service-scaling1-traefik.json"), "/Job"));
    job_paths.extend(paths_of(&fixture("nomad/hashistack-exec-artifact-task.json"), "/Job/TaskGroups[]/Tasks[]"));
    job_paths.extend(
        [
            "/PreserveCounts",
            "/Job/TaskGroups[]/Tasks[]/Artifacts[]/GetterMode",
            "/Job/TaskGroups[]/Tasks[]/Templates[]/ErrMissingKey",
            "/Job/TaskGroups[]/EphemeralDisk/SizeMB",
        ]
        .map(str::to_owned),
    );
    let scale_paths = paths_of(&fixture("nomad/scale-request.json"), "");
    let signal_paths = paths_of(&fixture("nomad/alloc-signal-request.json"), "");
    let mut checked = 0;
    for request in requests {
        let (method, path, body) = (request["Method"].as_str().unwrap(), request["Path"].as_str().unwrap(), &request["Body"]);
        let known = match (method, path) {
            ("POST", "/v1/jobs") => &job_paths,
            ("POST", p) if p.ends_with("/scale") => &scale_paths,
            ("POST", p) if p.ends_with("/signal") => &signal_paths,
            ("POST" | "PUT", p) => panic!("an unexpected write: {p}"),
            _ => {
                assert!(body.is_null(), "{method} {path} has a body");
                continue;
            }
        };
        let sent = paths_of(body, "");
        let unknown: Vec<&String> = sent.difference(known).collect();
        assert!(unknown.is_empty(), "{method} {path} sent keys no recorded payload has: {unknown:?}");
        assert!(request["Query"].as_str().unwrap().contains("namespace=default"), "{path}: every request names the namespace");
        checked += 1;
    }
    assert!(checked >= min_bodies, "the contract saw {checked} bodies");
}

/// Key paths with the keys of name-keyed maps (task states by task, groups by group name)
/// replaced by `*`, so payloads about different jobs compare.
fn shape(value: &Value, prefix: &str) -> BTreeSet<String> {
    fn normalize(value: &Value, parent: &str) -> Value {
        match value {
            Value::Object(map) if parent == "TaskStates" || parent == "TaskGroups" => {
                let merged: serde_json::Map<String, Value> = map.values().take(1).map(|v| ("*".to_owned(), normalize(v, "*"))).collect();
                Value::Object(merged)
            }
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v, k))).collect()),
            Value::Array(items) => Value::Array(items.iter().map(|v| normalize(v, parent)).collect()),
            other => other.clone(),
        }
    }
    paths_of(&normalize(value, ""), prefix)
}

fn check_shape(what: &str, answer: &Value, known: &BTreeSet<String>) {
    let sent = shape(answer, "");
    let unknown: Vec<&String> = sent.difference(known).collect();
    assert!(unknown.is_empty(), "the simulator's {what} has keys no recorded payload has: {unknown:?}");
    assert!(!sent.is_empty(), "the simulator's {what} is empty");
}

fn listed(prefix: &str, keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|key| format!("{prefix}/{key}")).collect()
}

/// The simulator answers with the shapes Nomad recorded: every key path of its job read,
/// allocation list, services, scale status, deployment and register/stop answers is one the
/// fixtures (or, where they are abbreviated, the reference's field lists) have.
#[tokio::test]
async fn the_simulator_answers_in_the_recorded_shapes() {
    let simulator = spawn_simulator(&["--deploy-seconds", "0.2"]);
    let runtime = NomadRuntime::new(fast_config(&simulator, None), JobSettings::default()).unwrap();
    let body = orchestrator::runtime::nomad::register_body(
        orchestrator::runtime::nomad::render_job(&deployment("quiz", 1), &JobSettings::default()).unwrap(),
        false,
    );
    let register_answer = runtime.client().register(&body).await.unwrap().body;
    let mut register_known = shape(&fixture("nomad/job-register-response.json"), "");
    register_known.insert("/NextToken".to_owned()); // hashistack.md §2: the sample lacks it
    check_shape("register answer", &register_answer, &register_known);
    assert!(runtime.wait_ready("quiz", 1, Duration::from_secs(10)).await.unwrap());

    let get = |path: String| {
        let address = simulator.address.clone();
        async move { serde_json::from_str::<Value>(&reqwest::get(format!("{address}{path}")).await.unwrap().text().await.unwrap()).unwrap() }
    };
    let mut job_known = BTreeSet::new();
    for name in [
        "job-read-service-scaling1-traefik.json",
        "job-read-service-scaling0-traefik.json",
        "job-read-stopped-scaling-enabled-traefik.json",
    ] {
        job_known.extend(shape(&fixture(&format!("nomad/{name}")), ""));
    }
    // What we registered comes back; its keys were checked against the register payloads.
    job_known.extend(shape(&fixture("nomad/hashistack-service-job-request.json")["Job"], ""));
    job_known.extend(shape(&fixture("nomad/hashistack-exec-artifact-task.json"), "/TaskGroups[]/Tasks[]"));
    job_known.extend(["/TaskGroups[]/Tasks[]/Artifacts[]/GetterMode", "/TaskGroups[]/EphemeralDisk/SizeMB"].map(str::to_owned));
    check_shape("job read", &get("/v1/job/quiz".into()).await, &job_known);

    let mut alloc_known = shape(&fixture("nomad/node-allocations-response.json"), "");
    alloc_known.extend(shape(&fixture("nomad/job-allocations-list-response.json"), ""));
    // hashistack.md §6: the stub fields current Nomad sends, which the old samples lack.
    alloc_known.extend(listed(
        "[]",
        &[
            "JobType",
            "JobVersion",
            "DesiredDescription",
            "DesiredTransition",
            "DeploymentStatus",
            "FollowupEvalID",
            "NextAllocation",
            "RescheduleTracker",
        ],
    ));
    alloc_known.extend(listed("[]/DeploymentStatus", &["Healthy", "Timestamp", "Canary", "ModifyIndex"]));
    check_shape("allocation list", &get("/v1/job/quiz/allocations".into()).await, &alloc_known);

    check_shape("services list", &get("/v1/services".into()).await, &shape(&fixture("nomad/services-list-response-traefik.json"), ""));
    check_shape("service read", &get("/v1/service/quiz".into()).await, &shape(&fixture("nomad/service-read-response-traefik.json"), ""));
    check_shape("scale status", &get("/v1/job/quiz/scale".into()).await, &shape(&fixture("nomad/scale-status-response.json"), ""));
    let mut deployment_known = shape(&fixture("nomad/job-latest-deployment-response.json"), "");
    // hashistack.md §7 lists these; the docs sample predates them.
    deployment_known.extend(listed("", &["Namespace", "CreateTime", "ModifyTime"]));
    deployment_known.extend(listed("/TaskGroups/*", &["RequireProgressBy", "ProgressDeadline"]));
    check_shape("latest deployment", &get("/v1/job/quiz/deployment".into()).await, &deployment_known);

    let stop = reqwest::Client::new().delete(format!("{}/v1/job/quiz", simulator.address)).send().await.unwrap().text().await.unwrap();
    let mut stop_known = shape(&fixture("nomad/job-stop-response.json"), "");
    stop_known.extend(listed("", &["VolumeEvalID", "VolumeEvalIndex", "Index", "LastContact", "KnownLeader", "NextToken"])); // §4
    check_shape("stop answer", &serde_json::from_str(&stop).unwrap(), &stop_known);
    // A stopped service job reads as the recorded one does.
    let stopped = get("/v1/job/quiz".into()).await;
    assert_eq!((stopped["Stop"].as_bool(), stopped["Status"].as_str()), (Some(true), Some("dead")));
}
