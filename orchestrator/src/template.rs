//! Framework templates: what kind of project a student uploaded, what it still lacks, and how to
//! build and start it.
//!
//! The templates are data: one TOML file per framework in `jobspecs/templates/` (their syntax is
//! described in the README there), compiled into the binary. This module reads them, detects a
//! template from the files of an upload ([`detect`]), checks the upload against a template and
//! resolves a [`BuildPlan`] ([`plan`]): the exact build commands, start command or static root,
//! environment, cache mounts, health check, limits and images that later code executes and stores
//! with a revision.
//!
//! It is pure. It runs nothing, reads no clock and no environment variables, and reads the project
//! only through [`ProjectFiles`], so it works the same on a directory ([`ProjectDir`]), on an
//! in-memory map such as an upload's zip index (`BTreeMap<String, String>`), and in tests. It does
//! not find out whether a build succeeds or whether the app really listens on its port: the build
//! sandbox and the health check do that.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The built-in template files, in detection order: the first template whose `[detect]` holds is
/// chosen. Languages with an unambiguous marker (go.mod, pom.xml) come first, because Go, Java and
/// Python projects often carry a package.json for front-end tooling; Vite comes before Node because
/// every Vite project also has a package.json; static comes last because almost every web project
/// has an index.html somewhere. Console is never detected (it has no `[detect]`).
const SOURCES: &[(&str, &str)] = &[
    ("go", include_str!("../../jobspecs/templates/go.toml")),
    ("java", include_str!("../../jobspecs/templates/java.toml")),
    ("python", include_str!("../../jobspecs/templates/python.toml")),
    ("vite", include_str!("../../jobspecs/templates/vite.toml")),
    ("node", include_str!("../../jobspecs/templates/node.toml")),
    ("static", include_str!("../../jobspecs/templates/static.toml")),
    ("console", include_str!("../../jobspecs/templates/console.toml")),
];

/// Files larger than this are not read by [`ProjectDir`]: manifests are small, and a student's
/// 2 GB `requirements.txt` must not take the planner's memory.
pub const MAX_READ_BYTES: u64 = 1024 * 1024;

/// One framework template, as written in `jobspecs/templates/<id>.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// Stable identifier, stored with each revision: `python`, `vite`.
    pub id: String,
    /// Display name for students: `Python`, `Vite single-page app`.
    pub name: String,
    pub description: String,
    /// A terminal program started per visitor by the web terminal, not an HTTP server.
    #[serde(default)]
    pub interactive: bool,
    /// The variable the runner sets to the port the app must listen on; none for terminal programs.
    #[serde(default)]
    pub port_env: Option<String>,
    /// Shown when the requirements hold but no start variant applies.
    #[serde(default)]
    pub start_missing: Option<String>,
    /// How the template is recognised; templates without it are only ever chosen explicitly.
    #[serde(default)]
    pub detect: Option<Detect>,
    #[serde(default)]
    pub requires: Vec<Rule>,
    /// Named values looked up in the project, used as `{{name}}` in commands and as `found` checks.
    #[serde(default)]
    pub find: BTreeMap<String, Vec<Finder>>,
    #[serde(default)]
    pub build: Vec<BuildStep>,
    /// Ways to start, tried in order: the first that applies is used.
    pub start: Vec<StartVariant>,
    #[serde(default)]
    pub env: EnvSpec,
    #[serde(default)]
    pub health: Option<HealthCheck>,
    pub runtime: Runtime,
    pub resources: Resources,
    #[serde(default)]
    pub caches: Vec<CacheMount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detect {
    /// Plain words for students whose project matched nothing: "a go.mod file".
    pub looks_for: String,
    pub when: Condition,
}

/// A requirement on the upload, with the message a student sees when it is not met.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub message: String,
    /// The rule applies only when this holds (always, when absent).
    #[serde(default)]
    pub when: Option<Condition>,
    pub check: Condition,
}

/// A fact about the project. Paths are relative to the project's top; a `*` may appear in the
/// first part of a path only (`*.jar`, `vite.config.*`, `*/wsgi.py`) and does not match names
/// that start with a dot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// A file or folder matching the pattern exists.
    File(String),
    /// package.json lists the package in `dependencies` or `devDependencies`.
    NpmDependency(String),
    /// package.json has a non-empty script of this name.
    NpmScript(String),
    /// requirements.txt or pyproject.toml lists the package; `fastapi[standard]` also needs the
    /// extra.
    PythonDependency(String),
    /// The `[find]` value of this name was found.
    Found(String),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// A way to find a value in the project; a `[find]` entry tries its finders in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Finder {
    /// The first existing path among the patterns, in order; matches of one pattern are sorted by
    /// name.
    FirstFile(Vec<String>),
    /// A path stored in a JSON file (package.json's `main`), if that file exists in the project.
    JsonFile { file: String, key: String },
    /// `module:variable` of the first top-level `variable = Factory(...)` in the files.
    PythonApp { files: Vec<String>, factories: Vec<String> },
    /// The command of a Procfile line for this process type (`web: gunicorn app:app`).
    Procfile(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildStep {
    #[serde(default)]
    pub when: Option<Condition>,
    /// A shell command, run with `sh -c` in the project folder.
    pub run: String,
}

/// One way to start. Exactly one of `exec`, `shell` and `static` is set. A variant applies when its
/// `when` holds and every `{{value}}` it names was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartVariant {
    #[serde(default)]
    pub when: Option<Condition>,
    /// A program and its arguments; found values are inserted as they are.
    #[serde(default)]
    pub exec: Option<Vec<String>>,
    /// A shell command line, for commands that need `$PORT` expanded; found paths are quoted.
    #[serde(default)]
    pub shell: Option<String>,
    /// Files served by the platform's static server instead of a student process.
    #[serde(default, rename = "static")]
    pub static_site: Option<StaticSite>,
    /// Replaces the template's runtime when this variant is chosen (a Node console program).
    #[serde(default)]
    pub runtime: Option<Runtime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSite {
    /// The folder to serve, relative to the project (`.` for the project itself).
    pub root: String,
    /// Answer unknown paths with the root's index.html, for client-side routers.
    pub spa_fallback: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvSpec {
    #[serde(default)]
    pub build: BTreeMap<String, String>,
    #[serde(default)]
    pub run: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The HTTP path requested.
    pub path: String,
    /// Any status below this counts as healthy: a 404 at `/` still means the server is up.
    pub healthy_below: u16,
    pub interval_secs: u32,
    pub timeout_secs: u32,
    /// How long a starting app may fail checks before it counts as broken.
    pub grace_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Runtime {
    /// Host programs the single-machine shape needs (`node`, `python3`).
    pub embedded: Vec<String>,
    /// The container image the app runs in, in the cluster shape.
    pub image: String,
    /// The image builds run in, when it differs from `image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_image: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub memory_mb: u32,
    /// Thousandths of a core: 500 is half a core.
    pub cpu_millicores: u32,
    /// Processes and threads together, as the kernel's pids limit counts them.
    pub max_processes: u32,
}

/// A per-template dependency cache, mounted into builds and pointed at by `env`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheMount {
    /// The cache's name, shared by all builds of the template: `npm`, `pip`.
    pub name: String,
    /// Where it is mounted in the build sandbox.
    pub path: String,
    /// Variables that point the tool at `path`.
    pub env: BTreeMap<String, String>,
}

/// What later code executes for one upload; stored with the revision it was made for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPlan {
    /// The template's id.
    pub template: String,
    /// Shell commands, each run with `sh -c` in the project folder, in order, stopping at the
    /// first that fails.
    pub build: Vec<String>,
    /// The build's environment, including every cache's variables.
    pub build_env: BTreeMap<String, String>,
    pub caches: Vec<CacheMount>,
    pub start: Start,
    /// The app's environment, without the port: the runner chooses that and sets `port_env`.
    pub env: BTreeMap<String, String>,
    pub port_env: Option<String>,
    pub health: Option<HealthCheck>,
    pub resources: Resources,
    pub runtime: Runtime,
}

/// How the built project starts. Commands run in the project folder; stop them by signalling their
/// process group, because a shell line may have children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Start {
    /// An HTTP server that must listen on the port in `port_env`.
    Server { argv: Vec<String> },
    /// Files served by the platform's static server from `root`, relative to the project.
    Static { root: String, spa_fallback: bool },
    /// A terminal program, started once per visitor with stdin and stdout on a terminal.
    Terminal { argv: Vec<String> },
    /// The image built from the project's own Dockerfile (`dockerfile`, relative to the project),
    /// started with the image's own command. Only the cluster builds and runs these
    /// ([`dockerfile_plan`]).
    Image { dockerfile: String },
}

/// Something the upload lacks, in words a student can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub message: String,
}

impl std::fmt::Display for Requirement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A template file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("the template is not valid TOML for a template: {reason}")]
    Syntax { reason: String },
    #[error("template `{id}` is invalid: {reason}")]
    Invalid { id: String, reason: String },
}

/// What one template looks for, for the message of a project that matched nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clue {
    pub template: String,
    pub name: String,
    pub looks_for: String,
}

/// No template recognised the project.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_no_match(.looked_for, .chosen_by_hand, *.has_dockerfile))]
pub struct DetectError {
    /// Every detectable template's clue, in detection order.
    pub looked_for: Vec<Clue>,
    /// Display names of the templates that are never detected.
    pub chosen_by_hand: Vec<String>,
    /// The project brings its own `Dockerfile`, which no template builds.
    pub has_dockerfile: bool,
}

fn describe_no_match(looked_for: &[Clue], chosen_by_hand: &[String], has_dockerfile: bool) -> String {
    if has_dockerfile {
        // Said first and plainly: sandboxed template builds cannot build images; only the cluster
        // shape with an image registry builds Dockerfiles (`dockerfile_plan`, docs/cluster.md). A
        // cluster with a registry never shows this message: it plans the Dockerfile instead.
        return format!(
            "this project brings its own Dockerfile: Dockerfile projects are built and run only on a Slipway cluster with an image registry (docs/cluster.md), and this installation is not one. Use a template instead: Slipway looks at the top of the project for {}",
            join_words(&looked_for.iter().map(|c| format!("{} ({})", c.looks_for, c.name)).collect::<Vec<_>>(), "or")
        );
    }
    let clues: Vec<String> = looked_for.iter().map(|c| format!("{} ({})", c.looks_for, c.name)).collect();
    let mut message = format!("no template matches this project: Slipway looks at the top of the project for {}", join_words(&clues, "or"));
    if !chosen_by_hand.is_empty() {
        message.push_str(&format!(
            "; the {} template is never picked automatically, so choose it yourself",
            join_words(chosen_by_hand, "and")
        ));
    }
    message
}

/// `a, b or c`.
fn join_words(items: &[String], last: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.clone(),
        [init @ .., tail] => format!("{} {last} {tail}", init.join(", ")),
    }
}

/// Read access to an uploaded project. Paths are relative to the project's top and use `/`.
pub trait ProjectFiles {
    /// Whether a file or folder exists at `rel`.
    fn exists(&self, rel: &str) -> bool;
    /// The text of the file at `rel`; `NotFound` when there is none.
    fn read_to_string(&self, rel: &str) -> io::Result<String>;
    /// The names of the files and folders at the top of the project.
    fn list_root(&self) -> Vec<String>;
}

/// A project as a map from file path to content, such as the index of an uploaded zip. Folders
/// exist when some file lies inside them.
impl ProjectFiles for BTreeMap<String, String> {
    fn exists(&self, rel: &str) -> bool {
        self.contains_key(rel) || self.keys().any(|path| path.strip_prefix(rel).is_some_and(|rest| rest.starts_with('/')))
    }

    fn read_to_string(&self, rel: &str) -> io::Result<String> {
        self.get(rel).cloned().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, rel.to_owned()))
    }

    fn list_root(&self) -> Vec<String> {
        let names: BTreeSet<&str> = self.keys().filter_map(|path| path.split('/').next()).collect();
        names.into_iter().map(str::to_owned).collect()
    }
}

/// A project in a folder on disk. It never follows symbolic links and never leaves the folder, so
/// a link in an upload cannot make the planner read the host's files.
#[derive(Debug, Clone)]
pub struct ProjectDir {
    root: PathBuf,
}

impl ProjectDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path of `rel` on disk, if it exists without passing through a symbolic link.
    fn resolve(&self, rel: &str) -> Option<PathBuf> {
        let clean = clean_relative(rel)?;
        let mut path = self.root.clone();
        for part in clean.split('/') {
            path.push(part);
            let metadata = std::fs::symlink_metadata(&path).ok()?;
            if metadata.file_type().is_symlink() {
                return None;
            }
        }
        Some(path)
    }
}

impl ProjectFiles for ProjectDir {
    fn exists(&self, rel: &str) -> bool {
        self.resolve(rel).is_some()
    }

    fn read_to_string(&self, rel: &str) -> io::Result<String> {
        let path = self.resolve(rel).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, rel.to_owned()))?;
        let file = std::fs::File::open(&path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "it is a folder, not a file"));
        }
        let mut text = String::new();
        file.take(MAX_READ_BYTES + 1).read_to_string(&mut text)?;
        if text.len() as u64 > MAX_READ_BYTES {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "it is larger than 1 MiB"));
        }
        Ok(text)
    }

    fn list_root(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| !kind.is_symlink()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }
}

/// Every built-in template, in detection order.
pub fn all() -> &'static [Template] {
    static TEMPLATES: OnceLock<Vec<Template>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        SOURCES
            .iter()
            .map(|(id, text)| {
                // The built-in files are parsed and validated by the tests, so this cannot fail in
                // a binary whose tests passed.
                let template =
                    Template::from_toml(text).unwrap_or_else(|error| panic!("built-in template file `{id}.toml` is broken: {error}"));
                assert_eq!(&template.id, id, "built-in template file `{id}.toml` declares another id");
                template
            })
            .collect()
    })
}

/// The built-in template with this id.
pub fn get(id: &str) -> Option<&'static Template> {
    all().iter().find(|template| template.id == id)
}

/// The first template, in detection order, whose `[detect]` holds for the project.
pub fn detect(files: &dyn ProjectFiles) -> Result<&'static Template, DetectError> {
    let found =
        all().iter().find(|template| template.detect.as_ref().is_some_and(|detect| Probe::new(template, files).holds(&detect.when)));
    found.ok_or_else(|| DetectError {
        looked_for: all()
            .iter()
            .filter_map(|t| {
                let detect = t.detect.as_ref()?;
                Some(Clue { template: t.id.clone(), name: t.name.clone(), looks_for: detect.looks_for.clone() })
            })
            .collect(),
        chosen_by_hand: all().iter().filter(|t| t.detect.is_none()).map(|t| t.name.clone()).collect(),
        has_dockerfile: DOCKERFILE_NAMES.iter().any(|name| files.exists(name)) || files.exists("dockerfile"),
    })
}

/// The template id a revision built from the project's own Dockerfile records, and that a
/// project may choose (it is not a template file: nothing in it is data to execute).
pub const DOCKERFILE: &str = "dockerfile";

/// The names a project's Dockerfile may have at its top, in the order they are looked for.
pub const DOCKERFILE_NAMES: &[&str] = &["Dockerfile", "Containerfile"];

/// The plan of a project that brings its own Dockerfile: no build steps here (the cluster's image
/// builder runs the Dockerfile), the image's own command, `PORT=8080` as for every app, a health
/// check on `/` (any answer below 500 is healthy) and default limits. The run image is chosen at
/// build time (`runtime.image` stays empty: the registry's reference is per revision).
///
/// PURE. Worked example (`a_dockerfile_project_is_planned_for_the_image_builder`): a project
/// with `Dockerfile` and `app.sh` plans `Start::Image { dockerfile: "Dockerfile" }`.
pub fn dockerfile_plan(files: &dyn ProjectFiles) -> Result<BuildPlan, Vec<Requirement>> {
    let Some(name) = DOCKERFILE_NAMES.iter().find(|name| files.exists(name) && files.read_to_string(name).is_ok()) else {
        return Err(vec![Requirement {
            message: format!(
                "a Dockerfile project needs a file named {} at its top",
                join_words(&DOCKERFILE_NAMES.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(), "or")
            ),
        }]);
    };
    Ok(BuildPlan {
        template: DOCKERFILE.to_owned(),
        build: Vec::new(),
        build_env: BTreeMap::new(),
        caches: Vec::new(),
        start: Start::Image { dockerfile: (*name).to_owned() },
        env: BTreeMap::new(),
        port_env: Some("PORT".to_owned()),
        health: Some(HealthCheck { path: "/".to_owned(), healthy_below: 500, interval_secs: 10, timeout_secs: 2, grace_secs: 60 }),
        resources: Resources { memory_mb: 512, cpu_millicores: 500, max_processes: 256 },
        runtime: Runtime { embedded: Vec::new(), image: String::new(), build_image: None },
    })
}

/// Checks the project against the template and resolves what to run; or every unmet requirement.
pub fn plan(template: &Template, files: &dyn ProjectFiles) -> Result<BuildPlan, Vec<Requirement>> {
    let probe = Probe::new(template, files);
    let unmet_rules: Vec<Requirement> = template
        .requires
        .iter()
        .filter(|rule| rule.when.as_ref().is_none_or(|when| probe.holds(when)) && !probe.holds(&rule.check))
        .map(|rule| Requirement { message: rule.message.clone() })
        .collect();
    let start = template.start.iter().find_map(|variant| probe.start(variant));
    let build: Vec<String> = template
        .build
        .iter()
        .filter(|step| step.when.as_ref().is_none_or(|when| probe.holds(when)))
        .filter_map(|step| probe.substitute(&step.run, Quoting::Shell))
        .collect();

    // Unreadable or malformed files come first: they usually explain the rules that failed.
    let mut unmet: Vec<Requirement> = probe.problems.take().into_iter().map(|message| Requirement { message }).collect();
    unmet.extend(unmet_rules);
    let Some((start, runtime)) = start.filter(|_| unmet.is_empty()) else {
        if unmet.is_empty() {
            let message = template
                .start_missing
                .clone()
                .unwrap_or_else(|| format!("the {} template found no way to start this project", template.name));
            unmet.push(Requirement { message });
        }
        return Err(unmet);
    };

    let mut build_env = template.env.build.clone();
    for cache in &template.caches {
        build_env.extend(cache.env.clone());
    }
    Ok(BuildPlan {
        template: template.id.clone(),
        build,
        build_env,
        caches: template.caches.clone(),
        start,
        env: template.env.run.clone(),
        port_env: template.port_env.clone(),
        health: template.health.clone(),
        resources: template.resources.clone(),
        runtime,
    })
}

impl Template {
    /// Parses and validates one template file.
    pub fn from_toml(text: &str) -> Result<Template, TemplateError> {
        let template: Template = toml::from_str(text).map_err(|error| TemplateError::Syntax { reason: error.to_string() })?;
        template.validate()?;
        Ok(template)
    }

    /// Catches the mistakes a template author can make that parsing alone does not.
    fn validate(&self) -> Result<(), TemplateError> {
        let invalid = |reason: String| Err(TemplateError::Invalid { id: self.id.clone(), reason });
        if self.id.is_empty() || !self.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return invalid(format!("the id `{}` may only use lowercase letters, digits and -", self.id));
        }
        if self.start.is_empty() {
            return invalid("it has no [[start]] variant".to_owned());
        }
        match (self.interactive, &self.port_env, &self.health) {
            (true, None, None) | (false, Some(_), Some(_)) => {}
            (true, _, _) => return invalid("an interactive template has no port_env and no [health]".to_owned()),
            (false, _, _) => return invalid("a server template needs port_env and [health]".to_owned()),
        }
        if let Some(health) = &self.health {
            if !health.path.starts_with('/') {
                return invalid(format!("the health path `{}` must start with /", health.path));
            }
        }
        for name in self.find.keys() {
            if !is_identifier(name) {
                return invalid(format!("the [find] name `{name}` must be lowercase letters, digits and _"));
            }
        }

        let mut conditions: Vec<&Condition> = Vec::new();
        let mut texts: Vec<&str> = Vec::new();
        if let Some(detect) = &self.detect {
            conditions.push(&detect.when);
        }
        for rule in &self.requires {
            conditions.push(&rule.check);
            conditions.extend(&rule.when);
        }
        for step in &self.build {
            conditions.extend(&step.when);
            texts.push(&step.run);
        }
        for (index, variant) in self.start.iter().enumerate() {
            conditions.extend(&variant.when);
            let number = index + 1;
            match (&variant.exec, &variant.shell, &variant.static_site) {
                (Some(argv), None, None) if !argv.is_empty() => texts.extend(argv.iter().map(String::as_str)),
                (None, Some(line), None) => texts.push(line),
                (None, None, Some(site)) if !self.interactive => {
                    let inside = clean_relative(&site.root).is_some_and(|clean| clean == site.root);
                    if site.root != "." && !inside {
                        let root = &site.root;
                        return invalid(format!(
                            "start variant {number} serves `{root}`, which is not a folder inside \
                             the project"
                        ));
                    }
                }
                _ => {
                    return invalid(format!(
                        "start variant {number} needs exactly one of exec (not empty), shell or \
                         static (not in an interactive template)"
                    ))
                }
            }
        }

        let mut patterns: Vec<&str> = Vec::new();
        let mut found_names: Vec<&str> = Vec::new();
        for condition in conditions {
            condition.collect_names(&mut patterns, &mut found_names);
        }
        for finder in self.find.values().flatten() {
            match finder {
                Finder::FirstFile(files) | Finder::PythonApp { files, .. } => patterns.extend(files.iter().map(String::as_str)),
                Finder::JsonFile { file, .. } => patterns.push(file),
                Finder::Procfile(_) => {}
            }
        }
        for text in texts {
            match placeholders(text) {
                Some(names) => found_names.extend(names),
                None => return invalid(format!("`{text}` has a {{{{ that does not enclose a [find] name")),
            }
        }
        if let Some(pattern) = patterns.into_iter().find(|p| !is_valid_pattern(p)) {
            return invalid(format!(
                "the path pattern `{pattern}` must be relative, without .., with * in its first \
                 part only"
            ));
        }
        if let Some(name) = found_names.into_iter().find(|name| !self.find.contains_key(*name)) {
            return invalid(format!("it uses the value `{name}`, which no [find] entry defines"));
        }

        for cache in &self.caches {
            if !cache.path.starts_with('/') || cache.env.is_empty() {
                return invalid(format!("cache `{}` needs an absolute path and at least one variable", cache.name));
            }
            if let Some(key) = cache.env.keys().find(|key| self.env.build.contains_key(*key)) {
                return invalid(format!("the variable `{key}` is set both by cache `{}` and by [env.build]", cache.name));
            }
        }
        Ok(())
    }
}

impl Condition {
    fn collect_names<'a>(&'a self, patterns: &mut Vec<&'a str>, found: &mut Vec<&'a str>) {
        match self {
            Condition::File(pattern) => patterns.push(pattern),
            Condition::Found(name) => found.push(name),
            Condition::NpmDependency(_) | Condition::NpmScript(_) | Condition::PythonDependency(_) => {}
            Condition::All(all) | Condition::Any(all) => all.iter().for_each(|c| c.collect_names(patterns, found)),
            Condition::Not(inner) => inner.collect_names(patterns, found),
        }
    }
}

/// A value found in the project; paths are quoted when they go into a shell line.
#[derive(Debug, Clone)]
struct Found {
    text: String,
    is_path: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    Verbatim,
    Shell,
}

/// One evaluation of a template against a project. It remembers found values, and the files it
/// could not read or parse, so that the plan can report them.
struct Probe<'a> {
    template: &'a Template,
    files: &'a dyn ProjectFiles,
    found: RefCell<BTreeMap<String, Option<Found>>>,
    problems: RefCell<BTreeSet<String>>,
}

impl<'a> Probe<'a> {
    fn new(template: &'a Template, files: &'a dyn ProjectFiles) -> Self {
        Self { template, files, found: RefCell::default(), problems: RefCell::default() }
    }

    fn holds(&self, condition: &Condition) -> bool {
        match condition {
            Condition::File(pattern) => !self.expand(pattern).is_empty(),
            Condition::NpmDependency(name) => self
                .json("package.json")
                .is_some_and(|package| ["dependencies", "devDependencies"].iter().any(|section| package[section].get(name).is_some())),
            Condition::NpmScript(name) => {
                self.json("package.json").is_some_and(|package| package["scripts"][name].as_str().is_some_and(|s| !s.trim().is_empty()))
            }
            Condition::PythonDependency(spec) => match parse_requirement(spec) {
                Some((name, extras)) => {
                    self.python_dependencies().iter().any(|(listed, listed_extras)| *listed == name && extras.is_subset(listed_extras))
                }
                None => false,
            },
            Condition::Found(name) => self.find(name).is_some(),
            Condition::All(all) => all.iter().all(|c| self.holds(c)),
            Condition::Any(any) => any.iter().any(|c| self.holds(c)),
            Condition::Not(inner) => !self.holds(inner),
        }
    }

    /// The paths matching a pattern; a `*` only ever stands in the first part.
    fn expand(&self, pattern: &str) -> Vec<String> {
        let (first, rest) = match pattern.split_once('/') {
            Some((first, rest)) => (first, Some(rest)),
            None => (pattern, None),
        };
        if !first.contains('*') {
            return if self.files.exists(pattern) { vec![pattern.to_owned()] } else { Vec::new() };
        }
        let mut names = self.files.list_root();
        names.sort();
        names
            .into_iter()
            .filter(|name| glob_match(first, name))
            .map(|name| match rest {
                Some(rest) => format!("{name}/{rest}"),
                None => name,
            })
            .filter(|path| rest.is_none() || self.files.exists(path))
            .collect()
    }

    /// A file's text without a byte-order mark; `None` when it is missing or unreadable.
    fn read(&self, rel: &str) -> Option<String> {
        match self.files.read_to_string(rel) {
            Ok(text) => Some(text.strip_prefix('\u{feff}').map(str::to_owned).unwrap_or(text)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => {
                self.problems.borrow_mut().insert(format!("`{rel}` could not be read: {error}"));
                None
            }
        }
    }

    fn json(&self, rel: &str) -> Option<serde_json::Value> {
        let text = self.read(rel)?;
        match serde_json::from_str(&text) {
            Ok(value) => Some(value),
            Err(error) => {
                self.problems.borrow_mut().insert(format!("`{rel}` is not valid JSON: {error}"));
                None
            }
        }
    }

    /// Normalised names and extras from requirements.txt and pyproject.toml.
    fn python_dependencies(&self) -> Vec<(String, BTreeSet<String>)> {
        let mut listed = Vec::new();
        if let Some(text) = self.read("requirements.txt") {
            listed.extend(text.lines().filter_map(parse_requirement));
        }
        if let Some(text) = self.read("pyproject.toml") {
            match toml::from_str::<toml::Table>(&text) {
                Ok(pyproject) => {
                    // PEP 621 lists requirement strings; Poetry lists names as keys.
                    let pep621 = pyproject.get("project").and_then(|p| p.get("dependencies")).and_then(|d| d.as_array());
                    listed.extend(pep621.into_iter().flatten().filter_map(|d| d.as_str()).filter_map(parse_requirement));
                    let poetry =
                        pyproject.get("tool").and_then(|t| t.get("poetry")).and_then(|p| p.get("dependencies")).and_then(|d| d.as_table());
                    listed.extend(poetry.into_iter().flat_map(|d| d.keys()).filter_map(|k| parse_requirement(k)));
                }
                Err(error) => {
                    let reason = error.message().to_owned();
                    self.problems.borrow_mut().insert(format!("`pyproject.toml` is not valid TOML: {reason}"));
                }
            }
        }
        listed
    }

    /// The `[find]` value of this name, looked up once.
    fn find(&self, name: &str) -> Option<Found> {
        if let Some(known) = self.found.borrow().get(name) {
            return known.clone();
        }
        let finders = self.template.find.get(name).map(Vec::as_slice).unwrap_or_default();
        let value = finders.iter().find_map(|finder| self.run_finder(finder));
        self.found.borrow_mut().insert(name.to_owned(), value.clone());
        value
    }

    fn run_finder(&self, finder: &Finder) -> Option<Found> {
        match finder {
            Finder::FirstFile(patterns) => {
                patterns.iter().find_map(|p| self.expand(p).into_iter().next()).map(|path| Found { text: path, is_path: true })
            }
            Finder::JsonFile { file, key } => {
                let json = self.json(file)?;
                let value = key.split('.').try_fold(&json, |value, part| value.get(part))?.as_str()?;
                let path = clean_relative(value)?;
                self.files.exists(&path).then_some(Found { text: path, is_path: true })
            }
            Finder::PythonApp { files, factories } => files.iter().flat_map(|p| self.expand(p)).find_map(|path| {
                let module = python_module(&path)?;
                let variable = find_app_assignment(&self.read(&path)?, factories)?;
                Some(Found { text: format!("{module}:{variable}"), is_path: false })
            }),
            Finder::Procfile(kind) => {
                let command = procfile_command(&self.read("Procfile")?, kind)?;
                Some(Found { text: command, is_path: false })
            }
        }
    }

    /// The text with every `{{name}}` replaced, or `None` when a value was not found.
    fn substitute(&self, text: &str, quoting: Quoting) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let close = rest[open..].find("}}")? + open;
            let found = self.find(&rest[open + 2..close])?;
            out.push_str(&rest[..open]);
            match quoting {
                Quoting::Shell if found.is_path => out.push_str(&shell_quote(&found.text)),
                _ => out.push_str(&found.text),
            }
            rest = &rest[close + 2..];
        }
        out.push_str(rest);
        Some(out)
    }

    /// The resolved start and runtime of a variant, if it applies.
    fn start(&self, variant: &StartVariant) -> Option<(Start, Runtime)> {
        if !variant.when.as_ref().is_none_or(|when| self.holds(when)) {
            return None;
        }
        let argv = if let Some(exec) = &variant.exec {
            exec.iter().map(|arg| self.substitute(arg, Quoting::Verbatim)).collect::<Option<Vec<_>>>()?
        } else if let Some(line) = &variant.shell {
            vec!["sh".to_owned(), "-c".to_owned(), self.substitute(line, Quoting::Shell)?]
        } else {
            let site = variant.static_site.as_ref().expect("validation allows exactly one kind of start");
            let start = Start::Static { root: site.root.clone(), spa_fallback: site.spa_fallback };
            return Some((start, self.runtime_of(variant)));
        };
        let start = if self.template.interactive { Start::Terminal { argv } } else { Start::Server { argv } };
        Some((start, self.runtime_of(variant)))
    }

    fn runtime_of(&self, variant: &StartVariant) -> Runtime {
        variant.runtime.clone().unwrap_or_else(|| self.template.runtime.clone())
    }
}

/// The `{{name}}`s in a text, or `None` when a `{{` is not closed around a valid name.
fn placeholders(text: &str) -> Option<Vec<&str>> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let close = rest[open..].find("}}")? + open;
        let name = &rest[open + 2..close];
        if !is_identifier(name) {
            return None;
        }
        names.push(name);
        rest = &rest[close + 2..];
    }
    Some(names)
}

fn is_identifier(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Patterns are relative, stay inside the project, and use `*` in their first part only, which
/// keeps matching to one listing of the project's top.
fn is_valid_pattern(pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('/').collect();
    !pattern.contains('\\')
        && parts.iter().all(|part| !part.is_empty() && *part != "." && *part != "..")
        && parts.iter().skip(1).all(|part| !part.contains('*'))
}

/// `*` matches any run of characters; names starting with a dot match only patterns that do.
fn glob_match(pattern: &str, name: &str) -> bool {
    fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
        match pattern.split_first() {
            None => name.is_empty(),
            Some((b'*', rest)) => (0..=name.len()).any(|skip| wildcard(rest, &name[skip..])),
            Some((c, rest)) => name.first() == Some(c) && wildcard(rest, &name[1..]),
        }
    }
    (pattern.starts_with('.') || !name.starts_with('.')) && wildcard(pattern.as_bytes(), name.as_bytes())
}

/// A path a student wrote (package.json's `main`) as a clean relative path inside the project, or
/// `None` when it leaves the project or could be mistaken for a command-line option.
fn clean_relative(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.starts_with('/') || raw.contains('\\') || raw.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = raw.split('/').filter(|part| !part.is_empty() && *part != ".").collect();
    if parts.is_empty() || parts.contains(&"..") || parts[0].starts_with('-') {
        return None;
    }
    Some(parts.join("/"))
}

/// Quotes a value for `sh` unless it is made only of characters that need no quoting.
fn shell_quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+=,-".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The normalised name (PEP 503) and extras of one requirement line: `Flask_Login[async]>=0.6`
/// gives `flask-login` and `{async}`. Options, URLs, comments and blank lines give `None`.
fn parse_requirement(line: &str) -> Option<(String, BTreeSet<String>)> {
    let line = match line.find('#') {
        Some(hash) => &line[..hash],
        None => line,
    }
    .trim();
    if line.is_empty() || line.starts_with('-') || line.contains("://") {
        return None;
    }
    let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c))).unwrap_or(line.len());
    if end == 0 {
        return None;
    }
    let extras = match line[end..].trim_start().strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default().split(',').map(normalise_python_name).collect(),
        None => BTreeSet::new(),
    };
    Some((normalise_python_name(&line[..end]), extras))
}

fn normalise_python_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if "._-".contains(c) {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The import name of a Python file (`mysite/wsgi.py` is `mysite.wsgi`), if every part is an
/// identifier Python can import.
fn python_module(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = path.strip_suffix(".py")?.split('/').collect();
    if parts.len() > 1 && parts.last() == Some(&"__init__") {
        parts.pop();
    }
    let importable = |part: &&str| {
        part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts.iter().all(importable).then(|| parts.join("."))
}

/// The variable of the first top-level `variable = Factory(...)`, also written
/// `variable: T = module.Factory(...)`.
fn find_app_assignment(source: &str, factories: &[String]) -> Option<String> {
    source.lines().find_map(|line| {
        // Indented assignments live inside functions or classes, where a server cannot import them.
        let end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
        let variable = &line[..end];
        if variable.is_empty() || variable.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        let mut rest = line[end..].trim_start();
        if let Some(annotated) = rest.strip_prefix(':') {
            rest = &annotated[annotated.find('=')?..];
        }
        let value = rest.strip_prefix('=').filter(|v| !v.starts_with('='))?.trim_start();
        let callee = value[..value.find('(')?].trim_end();
        let dotted = !callee.is_empty()
            && callee.split('.').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        let factory = callee.rsplit('.').next()?;
        (dotted && factories.iter().any(|f| f == factory)).then(|| variable.to_owned())
    })
}

/// The command of the Procfile line for a process type.
fn procfile_command(procfile: &str, kind: &str) -> Option<String> {
    procfile.lines().find_map(|line| {
        let (name, command) = line.trim().split_once(':')?;
        (name.trim() == kind && !command.trim().is_empty()).then(|| command.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An in-memory project from `(path, content)` pairs.
    fn project(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect()
    }

    fn template(id: &str) -> &'static Template {
        get(id).unwrap_or_else(|| panic!("no template `{id}`"))
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn server(words: &[&str]) -> Start {
        Start::Server { argv: argv(words) }
    }

    fn shell(line: &str) -> Start {
        Start::Server { argv: argv(&["sh", "-c", line]) }
    }

    /// The server command the python template plans for a WSGI app with gunicorn.
    /// The Java start: the class-data-sharing archive is passed only when the build made one.
    fn java_start() -> Start {
        server(&[
            "sh",
            "-c",
            "if [ -f .slipway/app.jsa ]; then set -- -XX:SharedArchiveFile=.slipway/app.jsa; fi; \
             exec java \"$@\" -XX:MaxRAMPercentage=75 -XX:+UseSerialGC -jar .slipway/app.jar",
        ])
    }

    fn gunicorn(app: &str) -> Start {
        shell(&format!(
            "exec .venv/bin/python -m gunicorn --bind \"${{HOST:-0.0.0.0}}:$PORT\" \
             --access-logfile - {app}"
        ))
    }

    /// The server command the python template plans for an ASGI app.
    fn uvicorn(app: &str) -> Start {
        shell(&format!("exec .venv/bin/python -m uvicorn --host \"${{HOST:-0.0.0.0}}\" --port \"$PORT\" {app}"))
    }

    const EXPRESS_PACKAGE: &str = r#"{ "name": "shop", "scripts": { "start": "node server.js" },
        "dependencies": { "express": "^5.1.0" } }"#;
    const VITE_PACKAGE: &str = r#"{ "name": "spa",
        "scripts": { "dev": "vite", "build": "vite build" },
        "devDependencies": { "vite": "^7.0.0" } }"#;
    const FLASK_APP: &str = "from flask import Flask\n\napp = Flask(__name__)\n\n\
                             @app.get('/')\ndef index():\n    return 'hi'\n";
    const FASTAPI_APP: &str = "from fastapi import FastAPI\n\napp = FastAPI()\n";
    const PLAIN_SERVER: &str = "import http.server, os\n\
        http.server.HTTPServer(('', int(os.environ['PORT'])), http.server.SimpleHTTPRequestHandler)\
        .serve_forever()\n";

    #[test]
    fn every_template_file_parses_validates_and_keeps_its_place_in_the_detection_order() {
        for (id, text) in SOURCES {
            let parsed = Template::from_toml(text).unwrap_or_else(|e| panic!("{id}.toml: {e}"));
            assert_eq!(parsed.id, *id, "{id}.toml declares another id");
        }
        let ids: Vec<&str> = all().iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, ["go", "java", "python", "vite", "node", "static", "console"]);
        let readme = include_str!("../../jobspecs/templates/README.md");
        assert!(
            readme.contains(
                "Detection order: `go`, `java`, `python`, `vite`, `node`, `static`; \
                 `console` is never detected."
            ),
            "jobspecs/templates/README.md must state the detection order that SOURCES uses"
        );
        for t in all() {
            for message in t.requires.iter().map(|r| &r.message).chain(&t.start_missing) {
                assert!(message.starts_with(|c: char| c.is_lowercase()), "{}: {message}", t.id);
            }
            for cache in &t.caches {
                assert!(cache.env.values().any(|v| v.contains(&cache.path)), "{}: cache {} env", t.id, cache.name);
            }
        }
    }

    #[test]
    fn get_finds_templates_by_id_only() {
        for t in all() {
            assert_eq!(get(&t.id).map(|found| &found.name), Some(&t.name));
        }
        assert_eq!(get("rails"), None);
        assert_eq!(get(""), None);
    }

    #[test]
    fn each_template_is_detected_from_a_realistic_project_in_the_documented_order() {
        fn check(files: &[(&str, &str)], expected: &str) {
            let got = detect(&project(files)).map(|t| t.id.as_str());
            assert_eq!(got, Ok(expected), "files {:?}", files.iter().map(|f| f.0).collect::<Vec<_>>());
        }
        check(&[("index.html", "<h1>hi</h1>"), ("style.css", ""), ("js/app.js", "")], "static");
        check(&[("package.json", EXPRESS_PACKAGE), ("server.js", ""), ("public/index.html", "")], "node");
        check(&[("package.json", r#"{"main": "index.js"}"#), ("index.js", "")], "node");
        check(&[("package.json", VITE_PACKAGE), ("index.html", ""), ("src/main.js", "")], "vite");
        // A Vite project found by its config file even though package.json names no vite.
        check(&[("package.json", r#"{"scripts": {"build": "x"}}"#), ("vite.config.ts", ""), ("index.html", "")], "vite");
        check(&[("requirements.txt", "flask\n"), ("app.py", FLASK_APP), ("templates/index.html", "")], "python");
        check(&[("requirements.txt", "fastapi[standard]\n"), ("main.py", FASTAPI_APP)], "python");
        check(&[("manage.py", ""), ("requirements.txt", "django\n"), ("mysite/wsgi.py", "")], "python");
        check(&[("pyproject.toml", "[project]\nname = 'x'\n"), ("src/x/__init__.py", "")], "python");
        check(&[("main.py", PLAIN_SERVER)], "python");
        // A Python app with a front page at the top is still a Python app.
        check(&[("requirements.txt", ""), ("main.py", PLAIN_SERVER), ("index.html", "")], "python");
        // Go, Java and Python projects often carry a package.json for front-end tooling.
        check(&[("requirements.txt", "flask"), ("app.py", FLASK_APP), ("package.json", VITE_PACKAGE), ("vite.config.js", "")], "python");
        check(&[("pom.xml", "<project/>"), ("src/main/java/App.java", "")], "java");
        check(&[("build.gradle.kts", ""), ("gradlew", ""), ("settings.gradle.kts", "")], "java");
        check(&[("server-all.jar", "")], "java");
        check(&[("pom.xml", "<project/>"), ("package.json", EXPRESS_PACKAGE)], "java");
        check(&[("go.mod", "module hello\n"), ("main.go", ""), ("static/index.html", "")], "go");
        check(&[("go.mod", "module hello\n"), ("main.go", ""), ("package.json", VITE_PACKAGE)], "go");
        // A hidden jar (an editor's backup) does not make a project Java.
        check(&[(".old.jar", ""), ("index.html", "")], "static");
    }

    #[test]
    fn console_is_never_detected_and_must_be_chosen() {
        assert_eq!(template("console").detect, None);
        let quiz = project(&[("main.py", "name = input('name? ')\nprint(name)\n")]);
        assert_eq!(detect(&quiz).map(|t| t.id.as_str()), Ok("python"));
        let node_quiz = project(&[("index.js", "process.stdin.on('data', d => console.log(d))")]);
        let error = detect(&node_quiz).expect_err("a lone index.js is nothing auto-detectable");
        assert_eq!(error.chosen_by_hand, ["Console program"]);
        assert!(plan(template("console"), &node_quiz).is_ok());
    }

    #[test]
    fn a_project_nothing_matches_hears_what_every_template_looks_for() {
        let error = detect(&project(&[("README.md", "my project"), ("src/index.html", "")])).expect_err("nothing matches");
        let message = error.to_string();
        for t in all() {
            match &t.detect {
                Some(d) => assert!(message.contains(&format!("{} ({})", d.looks_for, t.name)), "{message}"),
                None => assert!(message.contains(&format!("the {} template is never picked", t.name)), "{message}"),
            }
        }
        assert!(message.starts_with("no template matches this project: Slipway looks at the top"), "{message}");
        assert_eq!(error.looked_for.len(), all().len() - 1);
    }

    #[test]
    fn a_dockerfile_project_hears_plainly_that_it_needs_the_cluster() {
        let error = detect(&project(&[("Dockerfile", "FROM alpine\n"), ("app.sh", "")])).expect_err("no template builds a Dockerfile");
        assert!(error.has_dockerfile);
        let message = error.to_string();
        assert!(message.starts_with("this project brings its own Dockerfile"), "{message}");
        assert!(message.contains("built and run only on a Slipway cluster with an image registry"), "{message}");
        assert!(message.contains("this installation is not one"), "{message}");
        // A Dockerfile beside a template's files does not stop the template.
        let node = project(&[("Dockerfile", "FROM node\n"), ("package.json", r#"{"scripts": {"start": "node index.js"}}"#)]);
        assert!(detect(&node).is_ok());
    }

    #[test]
    fn a_dockerfile_project_is_planned_for_the_image_builder() {
        let check = |files: &[(&str, &str)], expected: Result<&str, &str>| {
            let result = dockerfile_plan(&project(files));
            match (result, expected) {
                (Ok(plan), Ok(dockerfile)) => {
                    assert_eq!(plan.start, Start::Image { dockerfile: dockerfile.to_owned() });
                    assert_eq!(plan.template, DOCKERFILE);
                    assert!(plan.build.is_empty(), "the image builder runs the Dockerfile, not build steps");
                    assert_eq!(plan.port_env.as_deref(), Some("PORT"));
                }
                (Err(unmet), Err(message)) => assert_eq!(unmet[0].message, message),
                (other, expected) => panic!("{files:?}: got {other:?}, expected {expected:?}"),
            }
        };
        check(&[("Dockerfile", "FROM alpine\n"), ("app.sh", "")], Ok("Dockerfile"));
        check(&[("Containerfile", "FROM alpine\n")], Ok("Containerfile"));
        check(&[("Dockerfile", "FROM a\n"), ("Containerfile", "FROM b\n")], Ok("Dockerfile"));
        check(
            &[("src/Dockerfile", "FROM alpine\n")],
            Err("a Dockerfile project needs a file named Dockerfile or Containerfile at its top"),
        );
        check(&[("Dockerfile/x", "")], Err("a Dockerfile project needs a file named Dockerfile or Containerfile at its top"));
        // The plan is stored with the revision as JSON and read back by the build worker.
        let plan = dockerfile_plan(&project(&[("Dockerfile", "FROM alpine\n")])).unwrap();
        let json = serde_json::to_value(&plan).unwrap();
        assert_eq!(json["start"], serde_json::json!({"kind": "image", "dockerfile": "Dockerfile"}));
        assert_eq!(serde_json::from_value::<BuildPlan>(json).unwrap(), plan);
    }

    #[test]
    fn every_requirement_message_appears_when_its_files_are_missing() {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut check = |id: &str, files: &[(&str, &str)], expected: &[&str]| {
            let unmet = plan(template(id), &project(files)).expect_err("the project lacks something");
            let messages: Vec<&str> = unmet.iter().map(|r| r.message.as_str()).collect();
            assert_eq!(messages.len(), expected.len(), "{id}: {messages:#?}");
            for (message, part) in messages.iter().zip(expected) {
                assert!(message.contains(part), "{id}: `{message}` should mention `{part}`");
            }
            seen.extend(messages.iter().map(|m| m.to_string()));
        };
        check("node", &[("package.json", r#"{"name": "x"}"#), ("app.js", "")], &["a `start` script or a `main` file"]);
        check("node", &[("package.json", r#"{"main": "gone.js"}"#)], &["a `start` script or a `main` file"]);
        check("node", &[("app.js", "")], &["needs a package.json", "a `start` script or a `main` file"]);
        check("vite", &[("package.json", r#"{"devDependencies": {"vite": "7"}}"#)], &["a `build` script"]);
        check("vite", &[("index.html", "")], &["needs a package.json", "a `build` script"]);
        check("python", &[("app.py", FLASK_APP)], &["needs a requirements.txt (or a pyproject.toml)"]);
        check("python", &[("requirements.txt", "flask"), ("hello.py", "")], &["needs a way to start"]);
        check("python", &[("templates/index.html", "")], &["requirements.txt", "a way to start"]);
        check("python", &[("requirements.txt", "fastapi\n"), ("main.py", FASTAPI_APP)], &["needs `uvicorn`"]);
        check("static", &[("site/index.html", ""), ("style.css", "")], &["needs an index.html at the top"]);
        check("java", &[("src/main/java/App.java", "")], &["a Maven pom.xml, a Gradle build"]);
        check("java", &[("build.gradle", "")], &["with its `gradlew` wrapper"]);
        check("go", &[("main.go", "package main")], &["needs a go.mod"]);
        check("go", &[("go.mod", "module x"), ("cmd/server/main.go", "")], &["the .go files of `package main`"]);
        check("console", &[("README.md", "")], &["needs a program to run"]);
        // Requirements hold, yet nothing says how to start: a wsgi.py without a recognisable app.
        check("python", &[("requirements.txt", ""), ("wsgi.py", "print('hi')")], &["found no way to start"]);

        let declared: BTreeSet<String> =
            all().iter().flat_map(|t| t.requires.iter().map(|r| r.message.clone()).chain(t.start_missing.clone())).collect();
        let untested: Vec<&String> = declared.difference(&seen).collect();
        assert!(untested.is_empty(), "requirement messages no case shows: {untested:#?}");
    }

    #[test]
    fn plans_resolve_the_start_from_what_the_project_contains() {
        fn check(id: &str, files: &[(&str, &str)], expected: Start) {
            let got = plan(template(id), &project(files)).map(|p| p.start);
            assert_eq!(got, Ok(expected), "{id}: {:?}", files.iter().map(|f| f.0).collect::<Vec<_>>());
        }
        check("python", &[("requirements.txt", "Flask==3.1\ngunicorn>=23 # server\n"), ("app.py", FLASK_APP)], gunicorn("app:app"));
        check(
            "python",
            &[("requirements.txt", "django\ngunicorn\n"), ("manage.py", ""), ("mysite/wsgi.py", "application = get_wsgi_application()\n")],
            gunicorn("mysite.wsgi:application"),
        );
        check("python", &[("requirements.txt", "fastapi\nuvicorn[standard]\n"), ("main.py", FASTAPI_APP)], uvicorn("main:app"));
        check(
            "python",
            &[("requirements.txt", "fastapi[standard]"), ("app/main.py", FASTAPI_APP), ("app/__init__.py", "")],
            uvicorn("app.main:app"),
        );
        check(
            "python",
            &[("requirements.txt", "flask\n"), ("app.py", FLASK_APP)],
            shell(
                "exec .venv/bin/python -m flask --app app:app run --host \"${HOST:-0.0.0.0}\" \
                 --port \"$PORT\"",
            ),
        );
        check(
            "python",
            &[("requirements.txt", "Django>=5\n"), ("manage.py", ""), ("mysite/wsgi.py", "application = get_wsgi_application()\n")],
            shell("exec .venv/bin/python manage.py runserver --noreload \"${HOST:-0.0.0.0}:$PORT\""),
        );
        check(
            "python",
            &[("requirements.txt", "flask\n"), ("Procfile", "release: true\nweb: gunicorn -w 4 app:app\n"), ("app.py", FLASK_APP)],
            shell("export PATH=\"$PWD/.venv/bin:$PATH\"; gunicorn -w 4 app:app"),
        );
        check("python", &[("requirements.txt", ""), ("main.py", PLAIN_SERVER)], server(&[".venv/bin/python", "main.py"]));
        // gunicorn listed, but the app is not Flask or Django: the script runs itself.
        check(
            "python",
            &[("requirements.txt", "gunicorn"), ("server.py", PLAIN_SERVER), ("app.py", "")],
            server(&[".venv/bin/python", "app.py"]),
        );

        check("node", &[("package.json", EXPRESS_PACKAGE), ("server.js", "")], server(&["npm", "start"]));
        check("node", &[("package.json", r#"{"main": "./src/app.js"}"#), ("src/app.js", "")], server(&["node", "src/app.js"]));
        check("node", &[("package.json", r#"{"name": "x"}"#), ("index.js", "")], server(&["node", "index.js"]));
        // A main that leaves the project is ignored, not followed.
        check("node", &[("package.json", r#"{"main": "../../etc/passwd"}"#), ("server.js", "")], server(&["node", "server.js"]));

        let dist = Start::Static { root: "dist".to_owned(), spa_fallback: true };
        check("vite", &[("package.json", VITE_PACKAGE), ("index.html", "")], dist);
        check("static", &[("index.html", "")], Start::Static { root: ".".to_owned(), spa_fallback: false });

        // Every Java build leaves its jar at .slipway/app.jar (an uploaded one is copied there).
        check("java", &[("pom.xml", "<project/>")], java_start());
        check("java", &[("build.gradle", ""), ("gradlew", "")], java_start());
        check("java", &[("b.jar", ""), ("a.jar", "")], java_start());
        check("go", &[("go.mod", "module x"), ("main.go", "")], server(&["./app"]));

        let terminal = |words: &[&str]| Start::Terminal { argv: argv(words) };
        check("console", &[("main.py", "input()")], terminal(&[".venv/bin/python", "main.py"]));
        check("console", &[("package.json", r#"{"main": "quiz.js"}"#), ("quiz.js", "")], terminal(&["node", "quiz.js"]));
        check("console", &[("package.json", r#"{"scripts": {"start": "tsx quiz.ts"}}"#)], terminal(&["npm", "start", "--silent"]));
        check(
            "console",
            &[("Procfile", "console: ./game\n"), ("main.py", "")],
            Start::Terminal { argv: argv(&["sh", "-c", "export PATH=\"$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH\"; ./game"]) },
        );
    }

    #[test]
    fn plans_install_dependencies_at_build_time_as_the_project_asks() {
        // The steps before the fast-start step each template ends with (covered by
        // `fast_starts_are_made_at_build_from_a_trial_of_the_real_start`).
        fn check(id: &str, files: &[(&str, &str)], expected: &[&str]) {
            let got = plan(template(id), &project(files)).map(|p| {
                let fast_start = p.build.last().is_some_and(|step| step.contains("fast start:"));
                p.build[..p.build.len() - usize::from(fast_start)].to_vec()
            });
            assert_eq!(got, Ok(argv(expected)), "{id}: {:?}", files.iter().map(|f| f.0).collect::<Vec<_>>());
        }
        check("node", &[("package.json", EXPRESS_PACKAGE), ("package-lock.json", "{}")], &["npm ci --no-audit --no-fund"]);
        check(
            "node",
            &[("package.json", r#"{"scripts": {"start": "node dist/server.js", "build": "tsc"}}"#)],
            &["npm install --no-audit --no-fund", "npm run build"],
        );
        check("vite", &[("package.json", VITE_PACKAGE)], &["npm install --no-audit --no-fund", "npm run build"]);
        let compile = ".venv/bin/python -m compileall -q -x '/\\.venv/' .";
        check(
            "python",
            &[("requirements.txt", "flask"), ("app.py", FLASK_APP)],
            &["python3 -m venv .venv", ".venv/bin/python -m pip install -r requirements.txt", compile],
        );
        check(
            "python",
            &[("pyproject.toml", "[project]\nname = 'x'\ndependencies = ['flask']\n"), ("app.py", FLASK_APP)],
            &["python3 -m venv .venv", ".venv/bin/python -m pip install .", compile],
        );
        check("static", &[("index.html", "")], &[]);
        check("go", &[("go.mod", "module x"), ("main.go", "")], &["go build -o app ."]);
        check("java", &[("app.jar", "")], &["mkdir -p .slipway && cp app.jar .slipway/app.jar"]);
        let maven = plan(template("java"), &project(&[("pom.xml", "")])).expect("a pom is enough");
        assert_eq!(maven.build[0], "mvn -q -B -DskipTests package");
        assert!(maven.build[1].ends_with("cp \"$jar\" .slipway/app.jar"), "{}", maven.build[1]);
        check(
            "console",
            &[("main.py", ""), ("requirements.txt", "rich")],
            &["python3 -m venv .venv", ".venv/bin/python -m pip install -r requirements.txt"],
        );
        check("console", &[("index.js", "")], &[]);
    }

    #[test]
    fn fast_starts_are_made_at_build_from_a_trial_of_the_real_start() {
        // (template, files, what the last build step starts, what it makes); None: no such step.
        fn check(id: &str, files: &[(&str, &str)], expected: Option<(&str, &str)>) {
            let built = plan(template(id), &project(files)).expect("a valid project").build;
            let last = built.last().filter(|step| step.contains("fast start:"));
            match (last, expected) {
                (None, None) => {}
                (Some(step), Some((trial, artefact))) => {
                    assert!(step.contains(trial), "{id}: the trial start is `{trial}`:\n{step}");
                    assert!(step.contains(artefact), "{id}: makes {artefact}:\n{step}");
                    assert!(step.contains("kill -KILL"), "{id}: the trial always ends:\n{step}");
                }
                (got, expected) => panic!("{id}: fast-start step {got:?}, expected {expected:?}"),
            }
        }
        let cds = (
            "-XX:ArchiveClassesAtExit=.slipway/app.jsa -XX:MaxRAMPercentage=75 -XX:+UseSerialGC -jar .slipway/app.jar",
            ".slipway/app.jsa",
        );
        check("java", &[("pom.xml", "")], Some(cds));
        check("java", &[("build.gradle", ""), ("gradlew", "")], Some(cds));
        check("java", &[("server.jar", "")], Some(cds));
        check("node", &[("package.json", EXPRESS_PACKAGE)], Some(("setsid npm start", "/app/.slipway/node-compile-cache")));
        check(
            "node",
            &[("package.json", r#"{"main": "src/app.js"}"#), ("src/app.js", "")],
            Some(("setsid node src/app.js", "/app/.slipway/node-compile-cache")),
        );
        // Python's bytecode is compiled by compileall (and pip); static sites start nothing of their own.
        check("python", &[("requirements.txt", ""), ("main.py", "")], None);
        check("static", &[("index.html", "")], None);
        check("vite", &[("package.json", VITE_PACKAGE)], None);

        // Node reads the cache from where the build wrote it; the path is the same in both sandboxes.
        let node = plan(template("node"), &project(&[("package.json", EXPRESS_PACKAGE)])).expect("valid node project");
        assert_eq!(node.env.get("NODE_COMPILE_CACHE").map(String::as_str), Some("/app/.slipway/node-compile-cache"));
    }

    #[test]
    fn plans_carry_port_health_caches_resources_and_runtime() {
        let node = plan(template("node"), &project(&[("package.json", EXPRESS_PACKAGE)])).expect("valid node project");
        assert_eq!(node.template, "node");
        assert_eq!(node.port_env.as_deref(), Some("PORT"));
        assert_eq!(node.env.get("NODE_ENV").map(String::as_str), Some("production"));
        assert_eq!(node.build_env.get("npm_config_cache").map(String::as_str), Some("/cache/npm"));
        assert_eq!(node.caches.iter().map(|c| c.path.as_str()).collect::<Vec<_>>(), ["/cache/npm"]);
        let health = node.health.expect("servers are health-checked");
        assert_eq!((health.path.as_str(), health.healthy_below), ("/", 500));
        assert_eq!(node.runtime.image, "node:22-slim");
        assert_eq!(node.runtime.embedded, ["node", "npm"]);

        let go = plan(template("go"), &project(&[("go.mod", ""), ("main.go", "")])).expect("valid go project");
        assert_eq!(go.runtime.build_image.as_deref(), Some("golang:1.23"));
        assert_eq!(go.runtime.image, "debian:bookworm-slim");
        assert_eq!(go.build_env.get("GOMODCACHE").map(String::as_str), Some("/cache/go/mod"));
        assert_eq!(go.build_env.get("CGO_ENABLED").map(String::as_str), Some("0"));

        let java = plan(template("java"), &project(&[("pom.xml", "")])).expect("valid java project");
        assert_eq!(java.build_env.get("MAVEN_OPTS").map(String::as_str), Some("-Dmaven.repo.local=/cache/maven"));
        assert!(java.resources.memory_mb >= 512, "the JVM needs room");

        let python = plan(template("python"), &project(&[("requirements.txt", ""), ("main.py", "")])).expect("valid");
        assert_eq!(python.build_env.get("PIP_CACHE_DIR").map(String::as_str), Some("/cache/pip"));
        assert_eq!(python.runtime.image, "python:3.12-slim");

        let console = plan(template("console"), &project(&[("quiz.js", ""), ("package.json", r#"{"main":"quiz.js"}"#)]))
            .expect("valid console project");
        assert_eq!((console.port_env, console.health), (None, None));
        assert_eq!(console.runtime.image, "node:22-slim", "a Node console program runs on Node's image");
        for t in all() {
            assert!(t.resources.memory_mb > 0 && t.resources.cpu_millicores > 0 && t.resources.max_processes > 0, "{}", t.id);
        }
    }

    #[test]
    fn a_plan_survives_a_json_round_trip_for_storage_with_its_revision() {
        let flask = project(&[("requirements.txt", "flask\ngunicorn\n"), ("app.py", FLASK_APP)]);
        let vite = project(&[("package.json", VITE_PACKAGE)]);
        for (id, files) in [("python", flask), ("vite", vite)] {
            let planned = plan(template(id), &files).expect("valid project");
            let stored = serde_json::to_string(&planned).expect("plans serialise");
            assert_eq!(serde_json::from_str::<BuildPlan>(&stored).ok(), Some(planned), "{id}");
        }
        let stored = serde_json::to_value(Start::Static { root: "dist".to_owned(), spa_fallback: true }).expect("serialises");
        assert_eq!(stored, serde_json::json!({ "kind": "static", "root": "dist", "spa_fallback": true }));
    }

    #[test]
    fn broken_manifests_are_reported_in_plain_words() {
        fn check(id: &str, files: &[(&str, &str)], expected: &str) {
            let unmet = plan(template(id), &project(files)).expect_err("the manifest is broken");
            assert!(unmet[0].message.starts_with(expected), "{id}: {unmet:#?}");
        }
        check(
            "node",
            &[("package.json", "{ \"scripts\": { \"start\": \"node .\" }, }"), ("index.js", "")],
            "`package.json` is not valid JSON: ",
        );
        check("python", &[("pyproject.toml", "[project\n"), ("main.py", FASTAPI_APP)], "`pyproject.toml` is not valid TOML: ");
        // A byte-order mark, as Windows editors write, is not a mistake.
        let with_bom = format!("\u{feff}{EXPRESS_PACKAGE}");
        assert!(plan(template("node"), &project(&[("package.json", &with_bom)])).is_ok());
    }

    #[test]
    fn python_dependencies_are_read_like_pip_reads_them() {
        fn check(files: &[(&str, &str)], spec: &str, expected: bool) {
            let probe_template = template("python");
            let files = project(files);
            let got = Probe::new(probe_template, &files).holds(&Condition::PythonDependency(spec.to_owned()));
            assert_eq!(got, expected, "{spec} in {files:?}");
        }
        check(&[("requirements.txt", "Flask==3.1.0\n")], "flask", true);
        check(&[("requirements.txt", "gunicorn>=23 ; python_version > '3.8'\n")], "gunicorn", true);
        check(&[("requirements.txt", "# gunicorn\nflask\n")], "gunicorn", false);
        check(&[("requirements.txt", "flask-gunicorn-helper\n")], "gunicorn", false);
        check(&[("requirements.txt", "Flask_Login\n")], "flask-login", true);
        check(&[("requirements.txt", "-r base.txt\n--index-url https://x\n")], "r", false);
        check(&[("requirements.txt", "FastAPI[standard]>=0.115\n")], "fastapi[standard]", true);
        check(&[("requirements.txt", "fastapi\n")], "fastapi[standard]", false);
        check(&[("requirements.txt", "uvicorn [standard]\n")], "uvicorn", true);
        check(&[("requirements.txt", "git+https://github.com/x/gunicorn.git#egg=gunicorn\n")], "git", false);
        check(&[("pyproject.toml", "[project]\ndependencies = [\"gunicorn>=22\", \"flask\"]\n")], "gunicorn", true);
        check(&[("pyproject.toml", "[tool.poetry.dependencies]\npython = \"^3.12\"\nFastAPI = \"*\"\n")], "fastapi", true);
        check(&[], "flask", false);
    }

    #[test]
    fn python_apps_are_found_by_their_top_level_assignment() {
        fn check(source: &str, expected: Option<&str>) {
            let factories = argv(&["Flask", "FastAPI", "get_wsgi_application"]);
            assert_eq!(find_app_assignment(source, &factories).as_deref(), expected, "{source:?}");
        }
        check("app = Flask(__name__)", Some("app"));
        check("from flask import Flask\nserver=Flask(__name__)\n", Some("server"));
        check("application = get_wsgi_application()", Some("application"));
        check("api: FastAPI = fastapi.FastAPI(title='x')", Some("api"));
        check("def make():\n    app = Flask(__name__)\n", None);
        check("app == Flask(x)", None);
        check("# app = Flask(__name__)", None);
        check("app = MyFlask(__name__)", None);
        check("app = Flask", None);
        assert_eq!(python_module("mysite/wsgi.py").as_deref(), Some("mysite.wsgi"));
        assert_eq!(python_module("pkg/__init__.py").as_deref(), Some("pkg"));
        assert_eq!(python_module("my-site/wsgi.py"), None);
    }

    #[test]
    fn small_parsers_read_what_students_write() {
        fn check(got: Option<String>, expected: Option<&str>) {
            assert_eq!(got.as_deref(), expected);
        }
        check(procfile_command("web: gunicorn app:app\r\nworker: celery\r\n", "web"), Some("gunicorn app:app"));
        check(procfile_command("# web: x\nweb:    \n", "web"), None);
        check(procfile_command("release: migrate\n", "web"), None);
        check(clean_relative("./src//app.js"), Some("src/app.js"));
        check(clean_relative("../app.js"), None);
        check(clean_relative("/etc/passwd"), None);
        check(clean_relative("-e"), None);
        check(clean_relative(" "), None);
        check(Some(shell_quote("src/app.js")), Some("src/app.js"));
        check(Some(shell_quote("my app's.js")), Some(r"'my app'\''s.js'"));
        check(Some(shell_quote("")), Some("''"));
        assert!(glob_match("vite.config.*", "vite.config.mts"));
        assert!(glob_match("*.jar", "app.jar") && !glob_match("*.jar", "app.jar.bak"));
        assert!(!glob_match("*", ".git") && glob_match(".*", ".git"));
        assert!(glob_match("build.gradle*", "build.gradle") && glob_match("build.gradle*", "build.gradle.kts"));
        assert!(is_valid_pattern("*/wsgi.py") && !is_valid_pattern("src/*.py") && !is_valid_pattern("../x"));
    }

    #[test]
    fn template_files_with_mistakes_are_refused_with_the_reason() {
        fn check(edit: impl Fn(&str) -> String, expected: &str) {
            let text = edit(SOURCES[2].1);
            let error = Template::from_toml(&text).expect_err("the edited template is broken").to_string();
            assert!(error.contains(expected), "`{error}` should contain `{expected}`");
        }
        check(|t| t.replace("{{script}}", "{{scirpt}}"), "uses the value `scirpt`, which no [find] entry defines");
        check(|t| t.replace("{ found = \"asgi_app\" }", "{ found = \"asgi\" }"), "uses the value `asgi`");
        check(|t| t.replace("\"*/wsgi.py\"", "\"src/*/wsgi.py\""), "the path pattern `src/*/wsgi.py`");
        check(|t| t.replace("exec = [\".venv/bin/python\", \"{{script}}\"]", "exec = []"), "start variant 6 needs exactly one");
        check(|t| t.replace("port_env = \"PORT\"", "port = \"PORT\""), "unknown field `port`");
        check(|t| t.replace("port_env = \"PORT\"", ""), "a server template needs port_env and [health]");
        check(|t| t.replace("{ python_dependency = \"flask\" }", "{ python_package = \"flask\" }"), "not valid TOML for a template");
        check(|t| t.replace("[env.build]", "[env.build]\nPIP_CACHE_DIR = \"/tmp\""), "`PIP_CACHE_DIR` is set both by cache `pip`");
        check(|t| t.replace("id = \"python\"", "id = \"Python\""), "the id `Python`");
    }

    #[test]
    fn the_directory_reader_stays_inside_the_project() {
        let outside = tempfile::tempdir().expect("temp dir");
        std::fs::write(outside.path().join("secret.txt"), "secret").expect("write");
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("src")).expect("mkdir");
        std::fs::write(root.join("src/app.js"), "").expect("write");
        std::fs::write(root.join("big.txt"), vec![b'x'; MAX_READ_BYTES as usize + 1]).expect("write");
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), root.join("package.json")).expect("symlink");
        std::os::unix::fs::symlink(outside.path(), root.join("linked")).expect("symlink");
        let files = ProjectDir::new(root);

        assert!(files.exists("src") && files.exists("src/app.js") && files.exists("./src/app.js"));
        assert!(!files.exists("package.json"), "symbolic links are never followed");
        assert!(!files.exists("linked/secret.txt"), "nor folders behind them");
        assert!(!files.exists("../"), "paths never leave the project");
        assert_eq!(files.read_to_string("package.json").map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        assert_eq!(files.read_to_string("big.txt").map_err(|e| e.kind()), Err(io::ErrorKind::InvalidData));
        assert_eq!(files.read_to_string("src").map_err(|e| e.kind()), Err(io::ErrorKind::InvalidInput));
        assert_eq!(files.list_root(), ["big.txt", "src"]);
        let unmet = plan(template("node"), &files).expect_err("the linked package.json does not count");
        assert!(unmet[0].message.contains("needs a package.json"), "{unmet:?}");
    }

    /// The sample apps in examples/. In the workspace this crate sits beside the folder; a scratch
    /// crate that includes this file by its absolute path finds it through this file's own path.
    fn examples_dir() -> PathBuf {
        let beside_crate = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        if beside_crate.is_dir() {
            return beside_crate;
        }
        let from_source = Path::new(file!()).ancestors().nth(3).expect("src/template.rs lies three folders deep");
        from_source.join("examples")
    }

    #[test]
    fn every_sample_app_is_detected_and_planned_as_its_template() {
        let examples = examples_dir();
        let mut unchecked: BTreeSet<String> = std::fs::read_dir(&examples)
            .unwrap_or_else(|e| panic!("{}: {e}", examples.display()))
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        let mut check = |folder: &str, detected: &str, planned_as: &str, start: Start| {
            let files = ProjectDir::new(examples.join(folder));
            assert_eq!(detect(&files).map(|t| t.id.as_str()), Ok(detected), "{folder}");
            assert_eq!(plan(template(planned_as), &files).map(|p| p.start), Ok(start), "{folder}");
            assert!(files.exists("README.md"), "{folder} explains itself");
            unchecked.remove(folder);
        };
        check("static-hello", "static", "static", Start::Static { root: ".".to_owned(), spa_fallback: false });
        check("node-hello", "node", "node", server(&["npm", "start"]));
        check("node-plain", "node", "node", server(&["node", "server.js"]));
        check("vite-hello", "vite", "vite", Start::Static { root: "dist".to_owned(), spa_fallback: true });
        check("python-flask", "python", "python", gunicorn("app:app"));
        check("python-plain", "python", "python", server(&[".venv/bin/python", "main.py"]));
        check("go-hello", "go", "go", server(&["./app"]));
        check("java-hello", "java", "java", java_start());
        // A console program looks like a Python web app to detection; its author picks console.
        check("console-quiz", "python", "console", Start::Terminal { argv: argv(&[".venv/bin/python", "main.py"]) });
        assert!(unchecked.is_empty(), "sample apps without a case here: {unchecked:?}");
    }
}
