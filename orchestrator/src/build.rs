//! Running a revision's build: each command of its `BuildPlan` in a fresh sandbox over the
//! project folder (writable), with the per-project dependency caches mounted, a memory cap and
//! one wall-clock budget for the whole build. Output goes line by line to a `BuildLog`, which the
//! caller persists and streams to the portal and the CLI.
//!
//! The build's network is chosen by the installation ([`BuildNetwork`]). By default every step
//! joins one network namespace made for this build, with only `lo` and the egress proxy
//! (`crate::egress`) listening on it; the steps' environment points their tools at the proxy,
//! which lets them reach the package registries over HTTPS and nothing else, and each refusal
//! it gives appears in the build log. The namespace and the proxy are torn down when the build
//! ends, however it ends.
//!
//! It does not decide what to build (the template's plan does) nor what happens after (the
//! deploy worker's job).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};

use crate::egress::{BuildEgress, ProxyConfig};
use crate::sandbox::{Bind, HostSupport, Limits, Network, Sandbox, SandboxExit, SandboxSpec};
use crate::template::BuildPlan;

/// Proxy refusals waiting for the build log; more are dropped (a build that hammers the proxy
/// must not grow the orchestrator's memory).
const REFUSAL_BACKLOG: usize = 256;

/// What network a build's steps get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildNetwork {
    /// The build's own namespace with only `lo` and the egress proxy: HTTPS to these registries
    /// (and their subdomains), nothing else. The default.
    Registries { allowed: Vec<String> },
    /// No network at all: every step in a namespace of its own with only `lo`.
    None,
    /// The host's network. Weaker: a build script reaches everything the host reaches,
    /// including PostgreSQL, Redis and the portal on its loopback. Only for installations that
    /// choose it.
    Host,
}

/// Where build output goes; lines arrive as they are printed.
pub trait BuildLog: Send + Sync {
    fn line(&self, line: &str);
}

pub struct BuildSpec<'a> {
    /// Unique among running sandboxes, e.g. `build-quiz-r3`.
    pub name: String,
    /// The unpacked project, writable by `uid`.
    pub app_dir: PathBuf,
    /// Host folders for the plan's caches, by cache name; each is mounted at the cache's path.
    pub cache_dirs: Vec<(String, PathBuf)>,
    pub plan: &'a BuildPlan,
    pub uid: u32,
    pub gid: u32,
    pub memory_bytes: u64,
    pub cpu_millis: u32,
    pub max_pids: u32,
    pub timeout: Duration,
    pub network: BuildNetwork,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("step {step} (`{command}`) failed: {exit}")]
    StepFailed { step: usize, command: String, exit: SandboxExit },
    #[error("the build ran out of time after {} s", .0.as_secs())]
    TimedOut(Duration),
    #[error("the build sandbox could not start: {0}")]
    Sandbox(#[from] crate::sandbox::SandboxError),
    #[error("the build's network could not be set up: {0}")]
    Network(std::io::Error),
}

/// The environment every build step sees: the plan's build environment plus a writable HOME and
/// a standard PATH (the sandbox starts with an empty environment).
pub fn build_env(plan: &BuildPlan) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("HOME".to_owned(), "/tmp".to_owned()),
        ("PATH".to_owned(), "/app/.venv/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("CI".to_owned(), "true".to_owned()),
    ];
    env.extend(plan.build_env.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// `env` with `overrides` put in, replacing variables of the same name.
fn overridden(mut env: Vec<(String, String)>, overrides: Vec<(String, String)>) -> Vec<(String, String)> {
    env.retain(|(key, _)| !overrides.iter().any(|(name, _)| name == key));
    env.extend(overrides);
    env
}

/// Runs every step in order, stopping at the first failure.
pub async fn run(spec: &BuildSpec<'_>, host: &HostSupport, log: &dyn BuildLog) -> Result<(), BuildError> {
    let started = Instant::now();
    // The sender stays alive for the whole build, so the receiver only ever waits.
    let (refusal_sender, mut refusals) = tokio::sync::mpsc::channel::<String>(REFUSAL_BACKLOG);
    let egress = match &spec.network {
        BuildNetwork::Registries { allowed } => {
            let sender = refusal_sender.clone();
            let config = ProxyConfig {
                registries: allowed.clone(),
                resolver: crate::egress::system_resolver(),
                on_refusal: Arc::new(move |line: &str| {
                    let _ = sender.try_send(format!("[slipway] build proxy: {line}"));
                }),
            };
            Some(BuildEgress::start(config).await.map_err(BuildError::Network)?)
        }
        BuildNetwork::None | BuildNetwork::Host => None,
    };
    let (network, env) = match (&egress, &spec.network) {
        (Some(egress), _) => {
            log.line(&format!(
                "[slipway] network: package registries only, over HTTPS through the build proxy at http://127.0.0.1:{}",
                egress.port()
            ));
            (Network::Joined(egress.netns().clone()), overridden(build_env(spec.plan), egress.env()))
        }
        (None, BuildNetwork::Host) => {
            log.line("[slipway] network: the server's own (this installation shares it with builds)");
            (Network::Host, build_env(spec.plan))
        }
        (None, _) => {
            log.line("[slipway] network: none (this installation gives builds no network)");
            (Network::LoopbackOnly, build_env(spec.plan))
        }
    };
    let binds: Vec<Bind> = spec
        .plan
        .caches
        .iter()
        .filter_map(|cache| {
            spec.cache_dirs.iter().find(|(name, _)| *name == cache.name).map(|(_, dir)| Bind {
                source: dir.clone(),
                dest: cache.path.clone(),
                writable: true,
            })
        })
        .collect();
    for (step_idx, command) in spec.plan.build.iter().enumerate() {
        let remaining = spec.timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(BuildError::TimedOut(spec.timeout));
        }
        log.line(&format!("$ {command}"));
        let sandbox_spec = SandboxSpec {
            name: format!("{}-s{step_idx}", spec.name),
            app_dir: spec.app_dir.clone(),
            app_writable: true,
            data_dir: None,
            extra_binds: binds.clone(),
            argv: vec!["/bin/sh".to_owned(), "-c".to_owned(), command.clone()],
            env: env.clone(),
            workdir: "/app".to_owned(),
            limits: Limits {
                memory_bytes: spec.memory_bytes,
                cpu_millis: spec.cpu_millis,
                max_pids: spec.max_pids,
                timeout: Some(remaining),
            },
            network: network.clone(),
            uid: spec.uid,
            gid: spec.gid,
        };
        let mut sandbox = Sandbox::spawn(&sandbox_spec, host).await?;
        let stdout = sandbox.take_stdout();
        let stderr = sandbox.take_stderr();
        let step = async { tokio::join!(sandbox.wait(), pump(stdout, log), pump(stderr, log)) };
        tokio::pin!(step);
        let (exit, _, _) = loop {
            tokio::select! {
                done = &mut step => break done,
                Some(line) = refusals.recv() => log.line(&line),
            }
        };
        while let Ok(line) = refusals.try_recv() {
            log.line(&line);
        }
        let exit = exit?;
        match exit {
            SandboxExit::TimedOut { .. } => return Err(BuildError::TimedOut(spec.timeout)),
            exit if exit.success() => {}
            exit => return Err(BuildError::StepFailed { step: step_idx + 1, command: command.clone(), exit }),
        }
    }
    log.line(&format!("build finished in {:.1} s", started.elapsed().as_secs_f64()));
    Ok(())
}

/// The next line of a stream, without its line ending, as lossy UTF-8 cut at 4000 characters;
/// `None` at the end of the stream. Shared by build logs and app logs.
pub async fn next_line<R: AsyncBufRead + Unpin>(reader: &mut R, buffer: &mut Vec<u8>) -> Option<String> {
    buffer.clear();
    match reader.read_until(b'\n', buffer).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(buffer).trim_end_matches(['\n', '\r']).chars().take(4000).collect()),
    }
}

/// Copies a stream to the log line by line.
pub async fn pump(stream: Option<impl AsyncRead + Unpin>, log: &dyn BuildLog) {
    let Some(stream) = stream else { return };
    let mut reader = BufReader::new(stream);
    let mut buffer = Vec::new();
    while let Some(line) = next_line(&mut reader, &mut buffer).await {
        log.line(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_env_has_a_home_a_path_and_the_plans_variables() {
        let files: std::collections::BTreeMap<String, String> =
            [("package.json".to_owned(), r#"{"scripts":{"start":"node server.js"}}"#.to_owned()), ("server.js".to_owned(), String::new())]
                .into_iter()
                .collect();
        let plan = crate::template::plan(crate::template::get("node").expect("node template"), &files).expect("plan");
        let env = build_env(&plan);
        let get = |k: &str| env.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
        assert_eq!(get("HOME"), Some("/tmp"));
        assert!(get("PATH").is_some_and(|p| p.contains("/usr/bin")));
        assert_eq!(get("npm_config_cache"), Some("/cache/npm"));
    }

    #[test]
    fn proxy_variables_replace_ones_of_the_same_name_and_keep_the_rest() {
        let env = vec![("HTTPS_PROXY".to_owned(), "http://elsewhere:8080".to_owned()), ("HOME".to_owned(), "/tmp".to_owned())];
        let merged = overridden(env, crate::egress::rules::proxy_env(3128));
        assert_eq!(merged.iter().filter(|(k, _)| k == "HTTPS_PROXY").count(), 1);
        assert!(merged.contains(&("HTTPS_PROXY".to_owned(), "http://127.0.0.1:3128".to_owned())));
        assert!(merged.contains(&("HOME".to_owned(), "/tmp".to_owned())));
    }
}
