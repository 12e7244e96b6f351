//! The portal with `runtime = "nomad"` (what `slipway up --runtime nomad` runs) against the Nomad
//! simulator (`tests/nomad-sim/`, not Nomad): a deploy builds here, packs the build, registers the
//! job through `render_job` with a signed artifact URL the portal serves, waits for a healthy
//! allocation and goes live; plain variables reach the job, secret ones only by Vault path (and
//! without `[vault]` a project with secrets is refused, saying why); the status comes from the
//! autoscaler's look at Nomad; deleting the project purges the job.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::Digest;

use crate::helpers::{example_zip, spawn_app_with, AppOptions, TestApp};

struct Simulator {
    address: String,
    child: std::process::Child,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_simulator() -> Simulator {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/nomad-sim/nomad_sim.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--port", "0", "--deploy-seconds", "0.2", "--start-seconds", "0.05"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the simulator");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line).expect("the simulator prints its address");
    let address = format!("http://{}", line.trim().strip_prefix("listening ").expect("listening line"));
    Simulator { address, child }
}

async fn sim_requests(simulator: &Simulator) -> Vec<serde_json::Value> {
    reqwest::get(format!("{}/_sim/requests", simulator.address)).await.unwrap().json().await.unwrap()
}

async fn cluster_app(simulator: &Simulator) -> TestApp {
    // Traefik's metrics address is a dead loopback port: load stays unknown, so nothing scales down.
    let dead = crate::helpers::free_port();
    spawn_app_with(AppOptions {
        extra_top: format!(
            "runtime = \"nomad\"\n[nomad]\naddress = \"{}\"\ncert_resolver = \"\"\ntraefik_metrics_addr = \"127.0.0.1:{dead}\"\n",
            simulator.address
        ),
        extra_scaling: "tick = \"200ms\"".to_owned(),
        ..AppOptions::default()
    })
    .await
}

#[tokio::test]
async fn a_deploy_on_the_cluster_registers_a_job_whose_signed_artifact_the_portal_serves() {
    let simulator = spawn_simulator();
    let app = cluster_app(&simulator).await;
    let token = app.api_token("cluster@pusan.ac.kr").await;
    app.create_project(&token, "hello-static", "auto").await;
    let response = app
        .client
        .put(app.url("/api/v1/projects/hello-static/env/GREETING"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"value": "annyeong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, queued) = app.deploy_zip(&token, "hello-static", example_zip("static-hello")).await;
    assert_eq!(status, 202, "{queued}");
    let done = app.wait_for_revision(&token, "hello-static", 1).await;
    assert_eq!(done["status"], "live", "{done}\n{}", app.build_log(&done));

    // The job went through the register endpoint with the revision's artifact and variables.
    let requests = sim_requests(&simulator).await;
    let register = requests.iter().find(|r| r["Method"] == "POST" && r["Path"] == "/v1/jobs").expect("a registration");
    let task = &register["Body"]["Job"]["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Env"]["GREETING"], "annyeong");
    let artifact = &task["Artifacts"][0];
    let url = artifact["GetterSource"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/artifacts/", app.address)), "{url}");
    let checksum = artifact["GetterOptions"]["checksum"].as_str().unwrap().strip_prefix("sha256:").unwrap().to_owned();

    // The portal serves it to whoever has the signed URL, and to nobody else.
    let archive = reqwest::get(&url).await.unwrap();
    assert_eq!(archive.status(), 200);
    let bytes = archive.bytes().await.unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&bytes)), checksum, "the checksum in the job matches the archive");
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip archive");
    let tampered = url.replace("sig=", "sig=0");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 404);
    let unsigned = url.split('?').next().unwrap().to_owned();
    assert_eq!(reqwest::get(&unsigned).await.unwrap().status(), 404);

    // The status comes from the autoscaler's observation of Nomad.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let shown = app.api_get(&token, "/api/v1/projects/hello-static/status").await;
        if shown["state"] == "running" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never shown running: {shown}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The app's logs come from its allocations, once or followed (the simulator ends a followed
    // stream after 2 s).
    for query in ["", "?follow=true"] {
        let response =
            app.client.get(app.url(&format!("/api/v1/projects/hello-static/logs{query}"))).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let text = tokio::time::timeout(Duration::from_secs(20), response.text()).await.expect("the stream ends").unwrap();
        assert!(text.contains("listening on 8080"), "logs{query}: {text}");
    }

    // A secret variable without [vault]: refused, saying why; nothing secret reaches Nomad.
    let response = app
        .client
        .put(app.url("/api/v1/projects/hello-static/env/API_KEY"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"value": "s3cret-value", "secret": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = app.deploy_zip(&token, "hello-static", example_zip("static-hello")).await;
    assert_eq!(status, 202);
    let failed = app.wait_for_revision(&token, "hello-static", 2).await;
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"].as_str().unwrap_or_default().contains("no [vault] is configured"), "{failed}");
    assert!(!sim_requests(&simulator).await.iter().any(|r| r.to_string().contains("s3cret-value")));

    // Deleting the project purges its job.
    let response = app.client.delete(app.url("/api/v1/projects/hello-static")).bearer_auth(&token).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let requests = sim_requests(&simulator).await;
    assert!(requests
        .iter()
        .any(|r| r["Method"] == "DELETE" && r["Path"] == "/v1/job/hello-static" && r["Query"].as_str().unwrap().contains("purge=true")));
}

#[tokio::test]
async fn runtime_nomad_without_an_address_is_refused_naming_the_key() {
    let error =
        portal::config::Config::from_toml_str("allowed_email_domains = [\"pusan.ac.kr\"]\nruntime = \"nomad\"\n", "test").unwrap_err();
    assert!(error.to_string().contains("nomad.address"), "{error}");
    let error =
        portal::config::Config::from_toml_str("allowed_email_domains = [\"pusan.ac.kr\"]\nruntime = \"kubernetes\"\n", "test").unwrap_err();
    assert!(error.to_string().contains("`runtime`"), "{error}");
    let error = portal::config::Config::from_toml_str(
        "allowed_email_domains = [\"pusan.ac.kr\"]\nruntime = \"nomad\"\n[nomad]\naddress = \"http://127.0.0.1:4646\"\ndiscovery = \"etcd\"\n",
        "test",
    )
    .unwrap_err();
    assert!(error.to_string().contains("nomad.discovery"), "{error}");
    let config = portal::config::Config::from_toml_str(
        "allowed_email_domains = [\"pusan.ac.kr\"]\nruntime = \"nomad\"\n[nomad]\naddress = \"http://127.0.0.1:4646\"\ntoken = \"t0ken\"\n",
        "test",
    )
    .unwrap();
    let nomad = config.nomad.expect("nomad settings");
    assert_eq!(nomad.namespace, "default");
    assert!(!format!("{:?}", nomad.token).contains("t0ken"), "the token is never printed");
}

#[tokio::test]
async fn with_builds_in_the_cluster_a_batch_job_fetches_the_signed_source_and_its_result_deploys() {
    let simulator = spawn_simulator();
    let dead = crate::helpers::free_port();
    let app = spawn_app_with(AppOptions {
        extra_top: format!(
            "runtime = \"nomad\"\n[nomad]\naddress = \"{}\"\ncert_resolver = \"\"\nbuilds = \"cluster\"\ntraefik_metrics_addr = \"127.0.0.1:{dead}\"\n",
            simulator.address
        ),
        ..AppOptions::default()
    })
    .await;
    let token = app.api_token("builder@pusan.ac.kr").await;
    let done = app.deploy_live(&token, "built-there", "auto", example_zip("static-hello")).await;
    let log = app.build_log(&done);
    assert!(log.contains("building on the cluster"), "{log}");
    assert!(log.contains("simulated build"), "the batch job's own log is in the build log: {log}");

    let requests = sim_requests(&simulator).await;
    let registrations: Vec<&serde_json::Value> = requests.iter().filter(|r| r["Method"] == "POST" && r["Path"] == "/v1/jobs").collect();
    assert_eq!(registrations.len(), 2, "the build job, then the app's job");
    let build_job = &registrations[0]["Body"]["Job"];
    assert_eq!(build_job["Type"], "batch");
    let source_url = build_job["TaskGroups"][0]["Tasks"][0]["Artifacts"][0]["GetterSource"].as_str().unwrap();
    assert!(source_url.contains(&format!("/artifacts/{}.zip?expires=", done["artifact"].as_str().unwrap())), "{source_url}");
    assert_eq!(reqwest::get(source_url.replace("sig=", "sig=f")).await.unwrap().status(), 404, "only the signed URL serves the source");
    assert!(requests.iter().any(|r| r["Method"] == "DELETE" && r["Path"] == "/v1/job/built-there-build-r1"), "the build job is purged");
    assert_eq!(registrations[1]["Body"]["Job"]["ID"], "built-there");
}

/// A project that brings only a Dockerfile (busybox's httpd started by its `CMD`): nothing a
/// template looks for (an `index.html` would make it a static site, Dockerfile or not).
fn dockerfile_zip() -> Vec<u8> {
    let dir = crate::helpers::project_dir(&[
        ("Dockerfile", "FROM busybox:1.36\nCOPY hello.txt /www/\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/www\"]\n"),
        ("hello.txt", "boxed\n"),
    ]);
    crate::helpers::pack(dir.path())
}

/// A real image registry (Debian's `docker-registry`, installed by `scripts/setup.sh test`) on a
/// loopback port, storing under a temporary folder.
struct Registry {
    address: String,
    child: std::process::Child,
    _storage: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn spawn_registry() -> Registry {
    let storage = tempfile::tempdir().expect("temp dir");
    let port = crate::helpers::free_port();
    let config = storage.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.path().join("data").display()
        ),
    )
    .expect("write the registry's config");
    let child = Command::new("/usr/bin/docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .spawn()
        .expect("docker-registry is installed (scripts/setup.sh test)");
    let registry = Registry { address: format!("127.0.0.1:{port}"), child, _storage: storage };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !reqwest::get(format!("http://{}/v2/", registry.address)).await.is_ok_and(|r| r.status() == 200) {
        assert!(tokio::time::Instant::now() < deadline, "the registry did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    registry
}

#[tokio::test]
async fn a_dockerfile_project_is_built_by_the_rootless_image_builder_and_its_job_runs_the_pushed_image() {
    let simulator = spawn_simulator();
    let registry = spawn_registry().await;
    let dead = crate::helpers::free_port();
    let app = spawn_app_with(AppOptions {
        extra_top: format!(
            "runtime = \"nomad\"\n[nomad]\naddress = \"{}\"\ncert_resolver = \"\"\nregistry = \"{}\"\nregistry_insecure = true\ntraefik_metrics_addr = \"127.0.0.1:{dead}\"\n",
            simulator.address, registry.address
        ),
        ..AppOptions::default()
    })
    .await;
    let token = app.api_token("boxer@pusan.ac.kr").await;
    // Detected (no template matches, a Dockerfile exists), with the builds of templates still here.
    let done = app.deploy_live(&token, "boxed", "auto", dockerfile_zip()).await;
    assert_eq!(done["template"], "dockerfile");
    let log = app.build_log(&done);
    assert!(log.contains("rootless BuildKit"), "{log}");
    let r = &registry.address;
    assert!(log.contains(&format!("pushed {r}/slipway/boxed:r1")), "{log}");

    let requests = sim_requests(&simulator).await;
    let registrations: Vec<&serde_json::Value> = requests.iter().filter(|r| r["Method"] == "POST" && r["Path"] == "/v1/jobs").collect();
    assert_eq!(registrations.len(), 2, "the image build job, then the app's job");
    let build_job = &registrations[0]["Body"]["Job"];
    assert_eq!(build_job["Type"], "batch");
    assert_eq!(build_job["ID"], "boxed-build-r1");
    let build_task = &build_job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(build_task["Config"]["image"], orchestrator::runtime::nomad::IMAGE_BUILDER);
    let args = build_task["Config"]["args"].to_string();
    assert!(args.contains(&format!("type=image,name={r}/slipway/boxed:r1,push=true,registry.insecure=true")), "{args}");
    assert!(args.contains("filename=Dockerfile"), "{args}");
    let source_url = build_task["Artifacts"][0]["GetterSource"].as_str().unwrap();
    assert!(source_url.contains(&format!("/artifacts/{}.zip?expires=", done["artifact"].as_str().unwrap())), "{source_url}");
    assert!(requests.iter().any(|r| r["Method"] == "DELETE" && r["Path"] == "/v1/job/boxed-build-r1"), "the build job is purged");

    let service_job = &registrations[1]["Body"]["Job"];
    assert_eq!(service_job["ID"], "boxed");
    let task = &service_job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Config"]["image"], format!("{r}/slipway/boxed:r1"), "the app runs the pushed image");
    assert!(task.get("Artifacts").is_none(), "nothing to download: {task}");
    assert!(task["Config"].get("command").is_none(), "the Dockerfile's CMD runs");
    assert_eq!(service_job["TaskGroups"][0]["Scaling"]["Min"], 0);

    // Chosen by hand, the next revision builds the same way, into its own tag.
    let response = app
        .client
        .patch(app.url("/api/v1/projects/boxed"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"template": "dockerfile"}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
    let (status, queued) = app.deploy_zip(&token, "boxed", dockerfile_zip()).await;
    assert_eq!(status, 202, "{queued}");
    let second = app.wait_for_revision(&token, "boxed", 2).await;
    assert_eq!(second["status"], "live", "{second}\n{}", app.build_log(&second));
    let requests = sim_requests(&simulator).await;
    let last = requests.iter().rev().find(|r| r["Method"] == "POST" && r["Path"] == "/v1/jobs").unwrap();
    assert_eq!(last["Body"]["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["image"], format!("{r}/slipway/boxed:r2"));

    // The real registry holds both tags; the image the app's job names is there, and its layer
    // is the uploaded context (the simulator's stand-in for BuildKit's build: BuildKit never ran).
    let client = reqwest::Client::new();
    for tag in ["r1", "r2"] {
        let manifest: serde_json::Value = client
            .get(format!("http://{r}/v2/slipway/boxed/manifests/{tag}"))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap_or_else(|e| panic!("{r}/slipway/boxed:{tag} is not in the registry: {e}"))
            .json()
            .await
            .unwrap();
        let digest = manifest["layers"][0]["digest"].as_str().expect("one layer").to_owned();
        let layer = client.get(format!("http://{r}/v2/slipway/boxed/blobs/{digest}")).send().await.unwrap().bytes().await.unwrap();
        assert_eq!(format!("sha256:{}", hex::encode(sha2::Sha256::digest(&layer))), digest);
        let mut tar = Command::new("tar").args(["-tzf", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        std::io::Write::write_all(&mut tar.stdin.take().unwrap(), &layer).unwrap();
        let listing = String::from_utf8(tar.wait_with_output().unwrap().stdout).unwrap();
        assert!(listing.contains("./Dockerfile") && listing.contains("./hello.txt"), "{tag}: {listing}");
    }
}

#[tokio::test]
async fn without_a_registry_the_cluster_refuses_dockerfile_projects_and_a_bad_registry_is_refused_naming_the_key() {
    let simulator = spawn_simulator();
    let app = cluster_app(&simulator).await;
    let token = app.api_token("noreg@pusan.ac.kr").await;
    app.create_project(&token, "boxed", "auto").await;
    let (status, answer) = app.deploy_zip(&token, "boxed", dockerfile_zip()).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("no_template_matched")), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Dockerfile projects are built and run only on a Slipway cluster with an image registry"), "{message}");
    assert!(app.revisions(&token, "boxed").await.is_empty(), "a refusal keeps nothing");

    for bad in ["http://registry:5000", "registry:5000/path", "registry:0"] {
        let error = portal::config::Config::from_toml_str(
            &format!("allowed_email_domains = [\"pusan.ac.kr\"]\nruntime = \"nomad\"\n[nomad]\naddress = \"http://127.0.0.1:4646\"\nregistry = \"{bad}\"\n"),
            "test",
        )
        .unwrap_err();
        assert!(error.to_string().contains("nomad.registry"), "{bad}: {error}");
    }
}

/// The exec frames the simulator received for one allocation, as JSON.
async fn exec_frames(simulator: &Simulator, alloc_id: &str) -> Vec<serde_json::Value> {
    let frames: Vec<serde_json::Value> =
        reqwest::get(format!("{}/_sim/exec-frames", simulator.address)).await.unwrap().json().await.unwrap();
    frames.into_iter().filter(|frame| frame["Alloc"] == alloc_id).map(|frame| frame["Frame"].clone()).collect()
}

#[tokio::test]
async fn an_owner_shell_on_the_cluster_runs_through_the_allocation_exec_and_is_audited() {
    use base64::Engine as _;
    use orchestrator::terminal::ws::Message;

    use crate::terminal::{portal_host, portal_port, session_cookie, Terminal};

    let simulator = spawn_simulator();
    let app = cluster_app(&simulator).await;
    let owner = "cluster-shell@pusan.ac.kr";
    let token = app.api_token(owner).await;
    app.deploy_live(&token, "shelly", "auto", example_zip("static-hello")).await;
    let cluster = app.state.cluster.clone().expect("the cluster shape");
    let (instances, _) = cluster.runtime.instances("shelly").await.unwrap();
    let alloc_id = instances.iter().find(|instance| instance.is_ready()).expect("a ready instance").alloc_id.clone();

    let owner_cookie = session_cookie(&app, owner).await;
    let host = portal_host(&app);
    let extra = format!("Cookie: slipway_session={owner_cookie}\r\n");
    let (status, shell) = Terminal::connect(portal_port(&app), &host, &host, "/projects/shelly/shell/ws?cols=100&rows=30", &extra).await;
    let mut shell = shell.unwrap_or_else(|| panic!("no shell: {status}"));

    // Typed input (text and binary frames, Korean included) reaches the shell's stdin, and its
    // stdout comes back (the simulator's program echoes what it reads); a resize becomes tty_size.
    shell.send(Message::Text(r#"{"input":"echo 안녕 4242\r"}"#.to_owned())).await;
    shell.read_output("echo 안녕 4242\r").await;
    shell.send(Message::Text(r#"{"resize":{"cols":132,"rows":43}}"#.to_owned())).await;
    shell.send(Message::Binary(b"pwd\r".to_vec())).await;
    shell.read_output("pwd\r").await;

    let requests = sim_requests(&simulator).await;
    let exec = requests.iter().find(|r| r["Path"] == format!("/v1/client/allocation/{alloc_id}/exec")).expect("an exec request");
    let query = exec["Query"].as_str().unwrap();
    assert!(query.contains("task=app") && query.contains("tty=true"), "{query}");
    assert!(query.contains("command=%5B%22%2Fbin%2Fsh%22%2C%22-i%22%5D"), "/bin/sh -i: {query}");
    let frames = exec_frames(&simulator, &alloc_id).await;
    assert_eq!(frames[0], serde_json::json!({"tty_size": {"height": 30, "width": 100}}), "the page's size first: {frames:?}");
    assert!(frames.contains(&serde_json::json!({"tty_size": {"height": 43, "width": 132}})), "{frames:?}");
    let typed: Vec<u8> = frames
        .iter()
        .filter_map(|frame| frame.pointer("/stdin/data").and_then(serde_json::Value::as_str))
        .flat_map(|data| base64::engine::general_purpose::STANDARD.decode(data).unwrap())
        .collect();
    assert_eq!(String::from_utf8(typed).unwrap(), "echo 안녕 4242\rpwd\r");

    // Leaving ends the shell's input, which ends a shell.
    shell.send(Message::Close(Some(1000))).await;
    drop(shell);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !exec_frames(&simulator, &alloc_id).await.contains(&serde_json::json!({"stdin": {"close": true}})) {
        assert!(tokio::time::Instant::now() < deadline, "stdin was never closed: {:?}", exec_frames(&simulator, &alloc_id).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The audit log has who opened and closed a shell in which app and instance, nothing typed.
    let shell_entries = |app: &TestApp| -> Vec<(String, Option<String>, Option<String>, serde_json::Value)> {
        use diesel::prelude::*;
        use portal::db::schema::audit_log;
        audit_log::table
            .filter(audit_log::action.like("shell.%"))
            .order(audit_log::id.asc())
            .select((audit_log::action, audit_log::actor_email, audit_log::target_id, audit_log::details))
            .load(&mut app.db())
            .expect("audit entries")
    };
    while shell_entries(&app).len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no shell.close entry: {:?}", shell_entries(&app));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entries = shell_entries(&app);
    let summary: Vec<(&str, Option<&str>, Option<&str>)> =
        entries.iter().map(|(action, actor, target, _)| (action.as_str(), actor.as_deref(), target.as_deref())).collect();
    assert_eq!(summary, vec![("shell.open", Some(owner), Some("shelly")), ("shell.close", Some(owner), Some("shelly"))]);
    for (_, _, _, details) in &entries {
        assert_eq!((details["revision"].as_i64(), details["instance"].as_str()), (Some(1), Some(alloc_id.as_str())), "{details}");
    }
    assert_eq!(entries[1].3["ending"], "VisitorLeft");
    assert!(!format!("{entries:?}").contains("4242"), "a command typed in the shell reached the audit log: {entries:?}");

    // Others get no shell; an app at zero has no instance to open one in.
    app.api_token("cluster-other@pusan.ac.kr").await;
    let other = format!("Cookie: slipway_session={}\r\n", session_cookie(&app, "cluster-other@pusan.ac.kr").await);
    let (head, _) = Terminal::connect(portal_port(&app), &host, &host, "/projects/shelly/shell/ws", &other).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    cluster.runtime.scale("shelly", 0).await.unwrap();
    loop {
        let (instances, _) = cluster.runtime.instances("shelly").await.unwrap();
        if !instances.iter().any(|instance| instance.is_ready()) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline + Duration::from_secs(10), "still ready: {instances:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (head, _) = Terminal::connect(portal_port(&app), &host, &host, "/projects/shelly/shell/ws", &extra).await;
    assert!(head.starts_with("HTTP/1.1 409") && head.contains("app_not_running"), "{head}");
}
