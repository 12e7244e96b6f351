//! Snapshot and contract tests for `render_job`. The snapshots (`../snapshots/*.json`) are the
//! reviewed output for each example app; `SLIPWAY_UPDATE_SNAPSHOTS=1` rewrites them. The contract
//! test checks every key path of every rendered job against the recorded Nomad payloads.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::template::{self, ProjectDir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn plan_for(example: &str) -> BuildPlan {
    let files = ProjectDir::new(repo().join("examples").join(example));
    // Terminal programs are never detected: they are chosen by hand.
    let template = match example {
        "console-quiz" => template::get("console").expect("the console template exists"),
        _ => template::detect(&files).expect("the example is detected"),
    };
    template::plan(template, &files).expect("the example satisfies its template")
}

fn deployment(example: &str, secrets: &[&str]) -> Deployment {
    Deployment {
        app: "quiz".to_owned(),
        revision: 7,
        plan: plan_for(example),
        built: Built::Archive(Artifact {
            url: "https://portal.example.edu/artifacts/quiz/r7.tar.gz?expires=1767000000&sig=abc123".to_owned(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            archive: "tar.gz".to_owned(),
        }),
        secrets: secrets
            .iter()
            .map(|name| SecretRef { name: (*name).to_owned(), kv_path: format!("secret/data/slipway/projects/42/env/{name}") })
            .collect(),
    }
}

/// Compares `job` with the snapshot `name`, or writes it when asked to.
fn check_snapshot(name: &str, job: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime/nomad/snapshots").join(format!("{name}.json"));
    let actual = to_pretty(job);
    if std::env::var_os("SLIPWAY_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &actual).expect("the snapshot folder is writable");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no snapshot {} ({e}); run with SLIPWAY_UPDATE_SNAPSHOTS=1 and review it", path.display()));
    assert_eq!(
        actual, expected,
        "the rendered job for {name} differs from its snapshot; review and update with SLIPWAY_UPDATE_SNAPSHOTS=1"
    );
}

#[test]
fn renders_each_example_app_as_its_snapshot() {
    for (snapshot, example) in [
        ("node", "node-hello"),
        ("python", "python-flask"),
        ("static", "static-hello"),
        ("vite", "vite-hello"),
        ("go", "go-hello"),
        ("java", "java-hello"),
    ] {
        let job = render_job(&deployment(example, &[]), &JobSettings::default()).expect("the example renders");
        check_snapshot(snapshot, &job);
    }
}

#[test]
fn renders_secrets_as_vault_templates_with_workload_identity_and_consul_discovery() {
    let settings = JobSettings { discovery: Discovery::Consul, vault_role: "slipway-p42".to_owned(), ..JobSettings::default() };
    let job = render_job(&deployment("node-hello", &["API_KEY", "DB_URL"]), &settings).expect("renders");
    check_snapshot("node-secrets-consul", &job);
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Vault"]["Env"], false, "the task's Vault token must not reach user code");
    assert_eq!(task["Vault"]["DisableFile"], true);
    assert_eq!(task["Identities"][0]["Name"], "vault_default");
    assert_eq!(task["Identities"][0]["Audience"][0], "vault.io");
    let template = &task["Templates"][0];
    assert_eq!(template["Envvars"], true);
    assert_eq!(template["ChangeMode"], "restart");
    assert_eq!(template["DestPath"], "secrets/app.env");
    assert!(template["EmbeddedTmpl"]
        .as_str()
        .unwrap()
        .contains(r#"{{ with secret "secret/data/slipway/projects/42/env/API_KEY" }}API_KEY={{ .Data.data.value | toJSON }}"#));
    assert_eq!(job["TaskGroups"][0]["Services"][0]["Provider"], "consul");
    assert!(task["Env"].get("API_KEY").is_none(), "secrets are not in the job's env");
}

#[test]
fn every_job_can_scale_to_zero_and_registers_inside_its_bounds() {
    for example in ["node-hello", "python-flask", "static-hello", "vite-hello", "go-hello", "java-hello"] {
        let job = render_job(&deployment(example, &[]), &JobSettings { max_instances: 3, ..JobSettings::default() }).unwrap();
        let group = &job["TaskGroups"][0];
        assert_eq!(group["Scaling"]["Min"], 0, "{example}: without Min 0 Nomad refuses a scale to zero");
        assert_eq!(group["Scaling"]["Max"], 3);
        let count = group["Count"].as_u64().unwrap();
        assert!((0..=3).contains(&count), "{example}: a count outside [Min, Max] fails registration");
        assert_eq!(group["Networks"][0]["Mode"], "bridge");
        assert!(group["Services"][0]["Checks"][0].get("CheckRestart").is_none(), "a frozen app must not be restarted by its check");
        assert!(group["Services"][0]["CheckRestart"].is_null());
        assert_eq!(group["Tasks"][0]["Driver"], "docker");
        assert_eq!(group["Tasks"][0]["Artifacts"][0]["RelativeDest"], "local/app");
    }
}

#[test]
fn refuses_what_cannot_run_as_a_service() {
    let check = |deployment: Deployment, settings: JobSettings, expected: RenderError| {
        assert_eq!(render_job(&deployment, &settings), Err(expected));
    };
    check(deployment("console-quiz", &[]), JobSettings::default(), RenderError::NotAServer);
    check(deployment("node-hello", &[]), JobSettings { max_instances: 0, ..JobSettings::default() }, RenderError::NoInstances);
    let mut bad_checksum = deployment("node-hello", &[]);
    if let Built::Archive(artifact) = &mut bad_checksum.built {
        artifact.sha256 = "abc".to_owned();
    }
    check(bad_checksum, JobSettings::default(), RenderError::BadChecksum("abc".to_owned()));
    check(deployment("node-hello", &["BAD-NAME"]), JobSettings::default(), RenderError::BadSecretName("BAD-NAME".to_owned()));
}

/// A project that brings only a Dockerfile, as `template::dockerfile_plan` plans it.
fn dockerfile_plan() -> BuildPlan {
    let files: std::collections::BTreeMap<String, String> =
        [("Dockerfile".to_owned(), "FROM python:3.12-slim\nCMD [\"python\", \"-m\", \"http.server\", \"8080\"]\n".to_owned())].into();
    template::dockerfile_plan(&files).expect("a Dockerfile at the top is enough")
}

const IMAGE: &str = "registry.service.consul:5000/slipway/quiz:r7";

fn image_deployment(secrets: &[&str]) -> Deployment {
    Deployment { plan: dockerfile_plan(), built: Built::Image(IMAGE.to_owned()), ..deployment("node-hello", secrets) }
}

fn image_build() -> crate::runtime::nomad::ImageBuildJob {
    crate::runtime::nomad::ImageBuildJob {
        app: "quiz".to_owned(),
        revision: 7,
        dockerfile: "Dockerfile".to_owned(),
        source: Artifact {
            url: "https://portal.example.edu/artifacts/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.zip?expires=1767000000&sig=abc123".to_owned(),
            sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".to_owned(),
            archive: "zip".to_owned(),
        },
        image: crate::runtime::nomad::image_reference("registry.service.consul:5000", "quiz", 7),
        insecure_registry: true,
        memory_mb: 2048,
        cpu_millicores: 1000,
    }
}

#[test]
fn a_dockerfile_revision_runs_its_pushed_image_without_an_artifact() {
    let job = render_job(&image_deployment(&[]), &JobSettings::default()).expect("renders");
    check_snapshot("dockerfile", &job);
    let group = &job["TaskGroups"][0];
    let task = &group["Tasks"][0];
    assert_eq!(task["Config"]["image"], IMAGE);
    assert!(task.get("Artifacts").is_none(), "the image holds the app: nothing to download");
    assert!(task["Config"].get("command").is_none(), "the Dockerfile's own CMD runs");
    assert_eq!(task["Config"]["ports"][0], PORT_LABEL);
    assert_eq!(task["Env"]["PORT"], "8080");
    assert_eq!(group["Scaling"]["Min"], 0);
    assert_eq!(group["Services"][0]["Checks"][0]["Path"], "/");
    assert_eq!(job["Meta"]["slipway.template"], "dockerfile");
}

#[test]
fn the_image_build_job_builds_the_dockerfile_rootless_and_pushes_the_revision_image() {
    let job = crate::runtime::nomad::render_image_build_job(&image_build(), &JobSettings::default()).expect("renders");
    check_snapshot("dockerfile-build", &job);
    assert_eq!(job["ID"], "quiz-build-r7");
    assert_eq!(job["Type"], "batch");
    let task = &job["TaskGroups"][0]["Tasks"][0];
    assert_eq!(task["Config"]["image"], crate::runtime::nomad::IMAGE_BUILDER);
    assert_eq!(task["Config"]["entrypoint"][0], "buildctl-daemonless.sh");
    let args: Vec<&str> = task["Config"]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert!(args.contains(&"filename=Dockerfile"), "{args:?}");
    assert_eq!(args.last(), Some(&"type=image,name=registry.service.consul:5000/slipway/quiz:r7,push=true,registry.insecure=true"));
    assert!(task["Config"].get("privileged").is_none(), "rootless: never privileged");
    assert_eq!(task["Artifacts"][0]["RelativeDest"], "local/src");
    assert_eq!(task["Artifacts"][0]["GetterOptions"]["archive"], "zip");
    let secure = crate::runtime::nomad::ImageBuildJob { insecure_registry: false, ..image_build() };
    let job = crate::runtime::nomad::render_image_build_job(&secure, &JobSettings::default()).unwrap();
    let output = job.pointer("/TaskGroups/0/Tasks/0/Config/args/10").unwrap();
    assert_eq!(output, "type=image,name=registry.service.consul:5000/slipway/quiz:r7,push=true");
}

#[test]
fn image_jobs_refuse_what_they_cannot_build_or_run() {
    let check = |deployment: Deployment, expected: RenderError| assert_eq!(render_job(&deployment, &JobSettings::default()), Err(expected));
    check(Deployment { plan: dockerfile_plan(), ..deployment("node-hello", &[]) }, RenderError::ImageWithArchive);
    check(
        Deployment { built: Built::Image(IMAGE.to_owned()), ..deployment("node-hello", &[]) },
        RenderError::ImageWithoutDockerfile(IMAGE.to_owned()),
    );
    for bad in [
        "quiz:r7",
        "registry:5000/slipway/quiz",
        "registry:5000/Slipway/quiz:r7",
        "registry:99999/slipway/quiz:r7",
        "registry:5000/slipway/quiz:r 7",
        "registry:5000//quiz:r7",
    ] {
        check(Deployment { built: Built::Image(bad.to_owned()), ..image_deployment(&[]) }, RenderError::BadImage(bad.to_owned()));
        let build = crate::runtime::nomad::ImageBuildJob { image: bad.to_owned(), ..image_build() };
        assert_eq!(
            crate::runtime::nomad::render_image_build_job(&build, &JobSettings::default()),
            Err(RenderError::BadImage(bad.to_owned()))
        );
    }
    let build = crate::runtime::nomad::ImageBuildJob { dockerfile: "../etc/passwd".to_owned(), ..image_build() };
    assert_eq!(
        crate::runtime::nomad::render_image_build_job(&build, &JobSettings::default()),
        Err(RenderError::BadDockerfile("../etc/passwd".to_owned()))
    );
    let mut build = image_build();
    build.source.sha256 = "abc".to_owned();
    assert_eq!(
        crate::runtime::nomad::render_image_build_job(&build, &JobSettings::default()),
        Err(RenderError::BadChecksum("abc".to_owned()))
    );
    assert!(is_registry("registry.service.consul:5000") && is_registry("10.0.0.5:5000") && is_registry("registry"));
    assert!(!is_registry("") && !is_registry("http://registry:5000") && !is_registry("registry:") && !is_registry("reg istry"));
}

#[test]
fn register_body_preserves_counts_on_request() {
    let job = render_job(&deployment("node-hello", &[]), &JobSettings::default()).unwrap();
    assert_eq!(register_body(job.clone(), true)["PreserveCounts"], true);
    assert_eq!(register_body(job.clone(), false)["PreserveCounts"], false);
    assert_eq!(register_body(job.clone(), true)["Job"], job);
    let scale = scale_body(0, "idle");
    assert_eq!(scale["Target"]["Group"], GROUP);
    assert_eq!(scale["Count"], 0);
}

// --- contract: the keys we send are keys Nomad's API has -------------------------------------

/// Maps whose keys are chosen by the user, not by Nomad's API: driver config, env, meta, getter
/// options.
const FREE_MAPS: &[&str] = &["Config", "Env", "Meta", "GetterOptions"];

fn key_paths(value: &Value, prefix: &str, into: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                let path = format!("{prefix}/{key}");
                into.insert(path.clone());
                if !FREE_MAPS.contains(&key.as_str()) {
                    key_paths(child, &path, into);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| key_paths(item, &format!("{prefix}[]"), into)),
        _ => {}
    }
}

/// Key paths of jobs as recorded: every field the CLI's register body has (with nulls), the
/// LIVE job reads, the reference's service job and its artifact task.
pub(crate) fn known_job_key_paths() -> BTreeSet<String> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/nomad");
    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(fixtures.join(name)).expect("fixture exists")).expect("fixture is JSON")
    };
    let mut known = BTreeSet::new();
    for name in [
        "job-register-request-cli-output.json",
        "job-register-request.json",
        "hashistack-service-job-request.json",
        "job-read-full-scaling-golden.json",
    ] {
        key_paths(&read(name), "", &mut known);
    }
    for name in ["job-read-service-scaling1-traefik.json", "job-read-service-scaling0-traefik.json"] {
        key_paths(&read(name), "/Job", &mut known);
    }
    key_paths(&read("hashistack-exec-artifact-task.json"), "/Job/TaskGroups[]/Tasks[]", &mut known);
    known
}

/// Keys that Nomad's `api` package has (`api/tasks.go`: `TaskArtifact.GetterMode`,
/// `Template.ErrMissingKey`, `Task.Identities`) but no recording sets.
const KNOWN_FROM_SOURCE: &[&str] = &[
    // `api/jobs.go` `JobRegisterRequest.PreserveCounts` (hashistack.md §2).
    "/PreserveCounts",
    "/Job/TaskGroups[]/Tasks[]/Artifacts[]/GetterMode",
    "/Job/TaskGroups[]/Tasks[]/Templates[]/ErrMissingKey",
    "/Job/TaskGroups[]/EphemeralDisk/SizeMB",
];

#[test]
fn every_key_of_every_rendered_job_is_a_key_nomad_takes() {
    let mut known = known_job_key_paths();
    known.extend(KNOWN_FROM_SOURCE.iter().map(|path| (*path).to_owned()));
    let settings = JobSettings { discovery: Discovery::Consul, ..JobSettings::default() };
    for example in ["node-hello", "python-flask", "static-hello", "vite-hello", "go-hello", "java-hello"] {
        let body = register_body(render_job(&deployment(example, &["API_KEY"]), &settings).unwrap(), true);
        let mut sent = BTreeSet::new();
        key_paths(&body, "", &mut sent);
        let unknown: Vec<&String> = sent.difference(&known).collect();
        assert!(unknown.is_empty(), "{example}: keys no recorded Nomad payload has: {unknown:?}");
        check_durations_are_integers(&body, "");
    }
    // The Dockerfile shape: the image service job, and the image build job (a batch job).
    let image_build = crate::runtime::nomad::render_image_build_job(&image_build(), &settings).unwrap();
    for (what, job) in
        [("the image service job", render_job(&image_deployment(&["API_KEY"]), &settings).unwrap()), ("the image build job", image_build)]
    {
        let body = register_body(job, false);
        let mut sent = BTreeSet::new();
        key_paths(&body, "", &mut sent);
        let unknown: Vec<&String> = sent.difference(&known).collect();
        assert!(unknown.is_empty(), "{what}: keys no recorded Nomad payload has: {unknown:?}");
        check_durations_are_integers(&body, "");
    }
}

/// Nomad decodes every `time.Duration` from integer nanoseconds; `"10s"` fails.
fn check_durations_are_integers(value: &Value, path: &str) {
    const DURATIONS: &[&str] =
        &["MinHealthyTime", "HealthyDeadline", "ProgressDeadline", "Interval", "Timeout", "Delay", "MaxDelay", "KillTimeout", "TTL"];
    if let Value::Object(map) = value {
        for (key, child) in map {
            if DURATIONS.contains(&key.as_str()) {
                assert!(child.is_u64(), "{path}/{key} = {child}: durations are integer nanoseconds");
            }
            check_durations_are_integers(child, &format!("{path}/{key}"));
        }
    } else if let Value::Array(items) = value {
        items.iter().for_each(|item| check_durations_are_integers(item, path));
    }
}

#[test]
fn the_job_template_is_valid_json_with_one_group_and_one_task() {
    let job: Value = serde_json::from_str(SERVICE_JOB_TEMPLATE).unwrap();
    assert_eq!(job["TaskGroups"].as_array().unwrap().len(), 1);
    assert_eq!(job["TaskGroups"][0]["Name"], GROUP);
    assert_eq!(job["TaskGroups"][0]["Tasks"][0]["Name"], TASK);
}

#[test]
fn template_paths_follow_the_task_directory() {
    let check = |input: &str, expected: &str| assert_eq!(task_path(input), expected, "{input}");
    check("/app", "/local/app");
    check("/app/.slipway/node-compile-cache", "/local/app/.slipway/node-compile-cache");
    check("/application/x", "/application/x");
    check(".slipway/app.jar", ".slipway/app.jar");
    check("/data", "/data");
    let job = render_job(&deployment("node-hello", &[]), &JobSettings::default()).unwrap();
    let env = job.pointer("/TaskGroups/0/Tasks/0/Env").unwrap().as_object().unwrap();
    assert!(env.values().all(|value| !value.as_str().unwrap().starts_with("/app")), "{env:?}");
}
