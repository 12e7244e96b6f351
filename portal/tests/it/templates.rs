//! Every template, end to end: its sample app from `examples/` is zipped with `pack_dir`, uploaded
//! over the API, built in a sandbox and answers through the gateway at `NAME.localhost`.
//!
//! The plain Python sample goes through `slipway deploy NAME FOLDER` instead, so the CLI's packing
//! and its following of the build are covered for a template that builds.
//!
//! What cannot run on this machine is asserted as it behaves today: Maven cannot download its
//! plugins here (so the Java test uploads a ready-made jar, built in the test with `javac` and
//! `jar`), Go is not installed, and a console program is not a server. Only one test installs
//! from npm for a server (Express); the Vite test installs and builds too, since that is the only
//! way to test its template. Those installs, and Flask's from PyPI, go through the build proxy
//! (the default `deploy.build_network = "registries"`): the build's namespace has no other way
//! out, and the build log shows no refusal.

use crate::helpers::{example_zip, pack, spawn_app};

/// Deploys `examples/<example>` as project `name` with `template` and returns what `/` answers.
async fn deploy_example(email: &str, name: &str, template: &str, example: &str) -> (crate::helpers::TestApp, String, serde_json::Value) {
    let app = spawn_app().await;
    let token = app.api_token(email).await;
    let revision = app.deploy_live(&token, name, template, example_zip(example)).await;
    (app, token, revision)
}

/// Checks that a build downloaded through the build proxy and was refused nothing.
fn assert_built_through_the_proxy(log: &str) {
    assert!(log.contains("[slipway] network: package registries only"), "{log}");
    assert!(!log.contains("[slipway] build proxy:"), "the proxy refused something: {log}");
}

async fn get_ok(app: &crate::helpers::TestApp, name: &str, path: &str) -> String {
    let response = app.app_get(name, path).await;
    let status = response.status();
    let body = response.text().await.expect("body");
    assert_eq!(status, 200, "GET {path} of {name}: {body}");
    body
}

#[tokio::test]
async fn a_static_site_is_served_as_it_is_and_a_missing_page_is_a_404() {
    let (app, _token, revision) = deploy_example("t-static@pusan.ac.kr", "tpl-static", "static", "static-hello").await;
    assert_eq!(revision["template"], "static");
    assert!(get_ok(&app, "tpl-static", "/").await.contains("Hello from Slipway (static site)"));
    // The static template has no fallback: a broken link shows as one.
    assert_eq!(app.app_get("tpl-static", "/no-such-page").await.status(), 404);
}

#[tokio::test]
async fn a_node_server_without_dependencies_is_detected_and_started_with_node_main() {
    let (app, _token, revision) = deploy_example("t-node-plain@pusan.ac.kr", "tpl-node-plain", "auto", "node-plain").await;
    assert_eq!(revision["template"], "node");
    assert_eq!(get_ok(&app, "tpl-node-plain", "/").await, "Hello from Slipway (plain Node http)\n");
}

#[tokio::test]
async fn an_express_app_installs_express_from_npm_at_build_time_and_answers() {
    let (app, _token, revision) = deploy_example("t-express@pusan.ac.kr", "tpl-express", "auto", "node-hello").await;
    assert_eq!(revision["template"], "node");
    assert_eq!(get_ok(&app, "tpl-express", "/").await, "Hello from Slipway (Node + Express)\n");
    assert!(app.build_log(&revision).contains("npm install"), "{}", app.build_log(&revision));
    assert_built_through_the_proxy(&app.build_log(&revision));
}

#[tokio::test]
async fn a_flask_app_installs_flask_and_gunicorn_from_pypi_and_is_served_by_gunicorn() {
    let (app, _token, revision) = deploy_example("t-flask@pusan.ac.kr", "tpl-flask", "auto", "python-flask").await;
    assert_eq!(revision["template"], "python");
    assert_eq!(get_ok(&app, "tpl-flask", "/").await, "Hello from Slipway (Python + Flask)\n");
    // gunicorn's start-up line is the proof that gunicorn, not Flask's development server, serves.
    let log = std::fs::read_to_string(app.data_dir.join("logs/apps/tpl-flask/r1.log")).unwrap_or_default();
    assert!(log.contains("Starting gunicorn"), "app log: {log}");
    assert_built_through_the_proxy(&app.build_log(&revision));
}

#[tokio::test]
async fn a_plain_python_server_deploys_from_its_folder_with_the_cli_and_answers() {
    let app = spawn_app().await;
    let token = app.api_token("t-py-plain@pusan.ac.kr").await;
    app.create_project(&token, "tpl-py-plain", "python").await;
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/python-plain");
    let mut deploy = std::process::Command::new(env!("CARGO_BIN_EXE_slipway"));
    deploy
        .args(["deploy", "tpl-py-plain"])
        .arg(&folder)
        .env("SLIPWAY_PORTAL", &app.address)
        .env("SLIPWAY_TOKEN", &token)
        .env_remove("XDG_CONFIG_HOME");
    let output = tokio::task::spawn_blocking(move || deploy.output().expect("run slipway deploy")).await.expect("join");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "slipway deploy failed: {stdout}{stderr}");
    assert!(stderr.contains("revision 1 queued (python template)"), "{stderr}");
    // The build log streams to stdout while the CLI waits.
    assert!(
        stdout.contains("$ python3 -m venv .venv") && stdout.contains("tpl-py-plain is live: http://tpl-py-plain.localhost:"),
        "{stdout}"
    );
    assert_eq!(get_ok(&app, "tpl-py-plain", "/").await, "Hello from Slipway (plain Python)\n");
    assert_eq!(app.app_get("tpl-py-plain", "/elsewhere").await.status(), 404);
    assert_eq!(app.revisions(&token, "tpl-py-plain").await[0]["source"], "cli");
}

#[tokio::test]
async fn a_vite_app_is_built_with_npm_and_dist_is_served_with_the_spa_fallback() {
    let (app, _token, revision) = deploy_example("t-vite@pusan.ac.kr", "tpl-vite", "auto", "vite-hello").await;
    assert_eq!(revision["template"], "vite");
    let index = get_ok(&app, "tpl-vite", "/").await;
    assert!(index.contains("Hello from Slipway (Vite)"), "{index}");
    // `vite build` rewrote the module script to a hashed bundle under /assets.
    let bundle = index
        .split('"')
        .find(|part| part.starts_with("/assets/") && part.ends_with(".js"))
        .unwrap_or_else(|| panic!("no bundled script in {index}"));
    assert!(get_ok(&app, "tpl-vite", bundle).await.contains("You are at"));
    // A client-side route has no file of its own and gets index.html.
    assert!(get_ok(&app, "tpl-vite", "/about").await.contains("Hello from Slipway (Vite)"));
    assert_built_through_the_proxy(&app.build_log(&revision));
}

/// A runnable jar of `examples/java-hello`'s Main class, built with the JDK's `javac` and `jar`.
fn runnable_jar(dir: &std::path::Path) {
    let classes = tempfile::tempdir().expect("temp dir");
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/java-hello/src/main/java/hello/Main.java");
    let javac = std::process::Command::new("javac")
        .args(["--release", "17", "-d"])
        .arg(classes.path())
        .arg(&source)
        .output()
        .expect("run javac (Debian's openjdk-17-jdk-headless)");
    assert!(javac.status.success(), "javac: {}", String::from_utf8_lossy(&javac.stderr));
    let jar = std::process::Command::new("jar")
        .arg("--create")
        .arg("--file")
        .arg(dir.join("hello.jar"))
        .args(["--main-class", "hello.Main", "-C"])
        .arg(classes.path())
        .arg(".")
        .output()
        .expect("run jar");
    assert!(jar.status.success(), "jar: {}", String::from_utf8_lossy(&jar.stderr));
}

#[tokio::test]
async fn an_uploaded_runnable_jar_is_started_with_a_class_data_sharing_archive_made_at_build() {
    let project = tempfile::tempdir().expect("temp dir");
    let jar_dir = project.path().to_owned();
    tokio::task::spawn_blocking(move || runnable_jar(&jar_dir)).await.expect("jar built");
    let app = spawn_app().await;
    let token = app.api_token("t-java@pusan.ac.kr").await;
    let revision = app.deploy_live(&token, "tpl-java", "auto", pack(project.path())).await;
    assert_eq!(revision["template"], "java");
    // The build's trial start left an archive, which the start command passes to the JVM.
    let build_log = app.build_log(&revision);
    assert!(build_log.contains("fast start: made a class-data-sharing archive"), "{build_log}");
    assert_eq!(get_ok(&app, "tpl-java", "/").await, "Hello from Slipway (Java)\n");
    assert_eq!(app.app_get("tpl-java", "/missing").await.status(), 404);
}

#[tokio::test]
async fn a_go_project_is_refused_before_building_on_a_host_without_go() {
    let app = spawn_app().await;
    let token = app.api_token("t-go@pusan.ac.kr").await;
    app.create_project(&token, "tpl-go", "auto").await;
    let has_go = ["/usr/local/bin/go", "/usr/bin/go"].iter().any(|p| std::path::Path::new(p).exists());
    let (status, answer) = app.deploy_zip(&token, "tpl-go", example_zip("go-hello")).await;
    if has_go {
        // A host with Go builds it like any other template.
        assert_eq!(status, 202, "{answer}");
        assert_eq!(app.wait_for_revision(&token, "tpl-go", 1).await["status"], "live");
        return;
    }
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("toolchain_missing")), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("go template needs go"), "{message}");
    assert!(app.revisions(&token, "tpl-go").await.is_empty(), "nothing was queued");
}

#[tokio::test]
async fn a_console_program_uploaded_with_template_auto_is_refused_as_a_web_app_missing_requirements() {
    let app = spawn_app().await;
    let token = app.api_token("t-console-auto@pusan.ac.kr").await;
    app.create_project(&token, "tpl-quiz-auto", "auto").await;
    let (status, refused) = app.deploy_zip(&token, "tpl-quiz-auto", example_zip("console-quiz")).await;
    // Detection takes main.py for a Python web app, which needs a requirements.txt.
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "template_requirements");
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("requirements.txt"), "{refused}");
    assert!(app.revisions(&token, "tpl-quiz-auto").await.is_empty());
}

#[tokio::test]
async fn the_embedded_shape_says_plainly_that_dockerfile_projects_need_the_cluster_and_keeps_nothing() {
    let app = spawn_app().await;
    let token = app.api_token("t-docker@pusan.ac.kr").await;
    let dir = crate::helpers::project_dir(&[("Dockerfile", "FROM alpine\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\"]\n"), ("app.sh", "")]);
    let zip = crate::helpers::pack(dir.path());
    for (name, template, code) in
        [("docker-auto", "auto", "no_template_matched"), ("docker-chosen", "dockerfile", "dockerfile_needs_cluster")]
    {
        app.create_project(&token, name, template).await;
        let (status, answer) = app.deploy_zip(&token, name, zip.clone()).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{template}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Dockerfile projects are built and run only on a Slipway cluster with an image registry"),
            "{template}: {message}"
        );
        assert!(message.contains("this installation is not one"), "{template}: {message}");
        assert!(app.revisions(&token, name).await.is_empty(), "{template}: nothing was queued");
    }
}
