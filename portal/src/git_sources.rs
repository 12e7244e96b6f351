//! Deploy on push: a project follows a Git repository's branch. Three triggers build the branch's
//! newest commit exactly like an upload (`deploys::upload_commit`, so every archive rule, the
//! template check and the quotas apply): a verified push webhook (`handle_webhook`), the manual
//! redeploy (`redeploy`), and polling (`poll_loop`, `git ls-remote` every `deploy.git_poll_interval`).
//!
//! Where the clone runs: on the host, with `git` only, as the project's own unprivileged uid (the
//! one its builds and instances run as) with `no_new_privs` when the server runs as root. Nothing from the
//! repository is executed there: hooks are pointed at `/dev/null`, system and global Git
//! configuration are not read (so no filter, credential helper or `fsmonitor` program from them),
//! submodules are not fetched, only `https` (and, with `deploy.git_allow_loopback`, `http`/`git`
//! on loopback) transports are allowed, and `.git` is removed before the checkout is packed. The
//! repository's code first runs in the build sandbox, as for an upload. The deploy token goes to
//! `git` in its environment (`http.extraHeader`), never on a command line or in a URL.
//!
//! Secrets: the token and the webhook secret are kept in the `SecretStore`
//! (`projects/<id>/git/token`, `projects/<id>/git/webhook_secret`); the secret is shown once,
//! when the source is set.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use url::Url;

use crate::db::git_sources::GitSource;
use crate::db::models::{Project, Revision, User};
use crate::db::{self};
use crate::domain::webhooks::{self, Verdict};
use crate::domain::Action;
use crate::error::AppError;
use crate::secrets::SecretValue;
use crate::state::AppState;

/// How long a clone or `ls-remote` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(120);

fn token_path(project_id: i64) -> String {
    format!("projects/{project_id}/git/token")
}

fn webhook_secret_path(project_id: i64) -> String {
    format!("projects/{project_id}/git/webhook_secret")
}

fn rejected(code: &'static str, message: impl Into<String>) -> AppError {
    AppError::Rejected { code, message: message.into() }
}

/// Checks a repository URL: `https://` without credentials, query or fragment; with
/// `allow_loopback`, also `http://` and `git://` on 127.0.0.1 or localhost. Pure.
pub fn check_repo_url(text: &str, allow_loopback: bool) -> Result<Url, String> {
    let url = Url::parse(text.trim()).map_err(|e| format!("`{}` is not a URL: {e}", text.trim()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("put the deploy token in the token field, not in the URL".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{url}` has a query or fragment; give the repository's clone URL"));
    }
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" if url.host_str().is_some() => Ok(url),
        "http" | "git" if allow_loopback && loopback => Ok(url),
        scheme => Err(format!("repository URLs must use https, not {scheme}")),
    }
}

/// Checks a branch name (the rules of `git check-ref-format --branch`, enough of them). Pure.
pub fn check_branch(text: &str) -> Result<String, String> {
    let branch = text.trim();
    let bad = branch.is_empty()
        || branch.len() > 255
        || branch.starts_with('-')
        || branch.starts_with('/')
        || branch.ends_with('/')
        || branch.ends_with(".lock")
        || branch.ends_with('.')
        || branch.contains("..")
        || branch.contains("@{")
        || branch.chars().any(|c| c.is_ascii_control() || " ~^:?*[\\".contains(c));
    if bad {
        return Err(format!("`{branch}` is not a branch name"));
    }
    Ok(branch.to_owned())
}

/// What the API and the page show of a source (never the token or the secret).
pub fn source_json(state: &AppState, project: &Project, source: &GitSource) -> serde_json::Value {
    serde_json::json!({
        "repo_url": source.repo_url,
        "branch": source.branch,
        "has_token": source.has_token,
        "last_sha": source.last_sha,
        "last_checked_at": source.last_checked_at,
        "webhook_url": webhook_url(state, project),
    })
}

pub fn webhook_url(state: &AppState, project: &Project) -> String {
    format!("{}/api/v1/hooks/{}", state.config.public_url.as_str().trim_end_matches('/'), project.name)
}

/// Sets (or replaces) the project's source; gives it and a new webhook secret (shown once). A
/// `token` of `None` keeps an existing token; `Some("")` removes it.
pub async fn set_source(
    state: &AppState,
    user: &User,
    name: &str,
    repo_url: &str,
    branch: &str,
    token: Option<&str>,
) -> Result<(Project, GitSource, String), AppError> {
    let project = crate::projects::get(state, user, name, Action::Deploy).await?;
    let url = check_repo_url(repo_url, state.config.deploy.git_allow_loopback).map_err(|m| rejected("invalid_repo_url", m))?;
    let branch = check_branch(branch).map_err(|m| rejected("invalid_branch", m))?;
    let store = &state.secret_store;
    let has_token = match token.map(str::trim) {
        Some("") => {
            store.delete(&token_path(project.id)).await.map_err(|e| anyhow::anyhow!(e))?;
            false
        }
        Some(token) => {
            store.put(&token_path(project.id), &SecretValue(token.to_owned())).await.map_err(|e| anyhow::anyhow!(e))?;
            true
        }
        None => store.get(&token_path(project.id)).await.map_err(|e| anyhow::anyhow!(e))?.is_some(),
    };
    let secret = crate::crypto::new_token();
    store.put(&webhook_secret_path(project.id), &SecretValue(secret.clone())).await.map_err(|e| anyhow::anyhow!(e))?;
    let (project_id, url_text) = (project.id, url.to_string());
    let source = state.db.run(move |conn| db::git_sources::upsert(conn, project_id, &url_text, &branch, has_token)).await?;
    Ok((project, source, secret))
}

pub async fn get_source(state: &AppState, project: &Project) -> Result<Option<GitSource>, AppError> {
    let project_id = project.id;
    Ok(state.db.run(move |conn| db::git_sources::find(conn, project_id)).await?)
}

pub async fn remove_source(state: &AppState, user: &User, name: &str) -> Result<(), AppError> {
    let project = crate::projects::get(state, user, name, Action::Deploy).await?;
    let project_id = project.id;
    if !state.db.run(move |conn| db::git_sources::delete(conn, project_id)).await? {
        return Err(AppError::NotFound("git source"));
    }
    for path in [token_path(project.id), webhook_secret_path(project.id)] {
        state.secret_store.delete(&path).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(())
}

/// A `git` command with no configuration but what is given here, no prompts, and the token (if
/// any) as an extra header from the environment.
fn git_command(home: &Path, token: Option<&SecretValue>, allow_loopback: bool, project_id: i64) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("git");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let uid = crate::build_worker::project_uid(project_id);
        // SAFETY: runs in the forked child before exec; only async-signal-safe calls (setgroups,
        // setgid, setuid, prctl) with no allocation.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(uid) != 0
                    || libc::setuid(uid) != 0
                    || libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    command
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("LC_ALL", "C")
        .args(["-c", "core.hooksPath=/dev/null", "-c", "protocol.allow=never", "-c", "protocol.https.allow=always"])
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    if allow_loopback {
        command.args(["-c", "protocol.http.allow=always", "-c", "protocol.git.allow=always"]);
    }
    if let Some(token) = token {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{}", token.0));
        command
            .env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", format!("Authorization: Basic {basic}"));
    }
    command
}

/// Runs `command`, refusing with `code` when it fails or times out. Git's own message is kept
/// (it never contains the token: the header is not printed).
async fn run_git(mut command: tokio::process::Command, code: &'static str) -> Result<String, AppError> {
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .map_err(|_| rejected(code, format!("git did not finish within {} s", GIT_TIMEOUT.as_secs())))?
        .map_err(|e| anyhow::anyhow!("cannot run git: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("git failed").trim().to_owned();
        return Err(rejected(code, format!("git: {reason}")));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The commit at the tip of the source's branch (`git ls-remote`), without cloning.
pub async fn remote_head(state: &AppState, project: &Project, source: &GitSource) -> Result<String, AppError> {
    let token = state.secret_store.get(&token_path(project.id)).await.map_err(|e| anyhow::anyhow!(e))?;
    let home = crate::deploys::scratch_dir(state);
    tokio::fs::create_dir_all(&home).await.map_err(|e| anyhow::anyhow!(e))?;
    let mut command = git_command(&home, token.as_ref(), state.config.deploy.git_allow_loopback, project.id);
    command.args(["ls-remote", "--heads", "--", &source.repo_url, &format!("refs/heads/{}", source.branch)]);
    let listing = run_git(command, "git_fetch_failed").await?;
    listing
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| rejected("git_branch_missing", format!("the repository has no branch {}", source.branch)))
}

/// Clones the branch's tip into a scratch folder, packs it (without `.git`) and queues it as a
/// revision with its commit. `created_by` is the user who triggered it (the owner for webhooks).
pub async fn build_branch(state: &AppState, user: &User, project: &Project, source: &GitSource) -> Result<Revision, AppError> {
    let token = state.secret_store.get(&token_path(project.id)).await.map_err(|e| anyhow::anyhow!(e))?;
    let scratch: PathBuf = crate::deploys::scratch_dir(state).join(format!("git-{}", uuid::Uuid::new_v4().simple()));
    let checkout = scratch.join("checkout");
    tokio::fs::create_dir_all(&scratch).await.map_err(|e| anyhow::anyhow!(e))?;
    // The clone runs as the project's uid (when we are root), which must own the folder.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let uid = crate::build_worker::project_uid(project.id);
        std::os::unix::fs::chown(&scratch, Some(uid), Some(uid)).map_err(|e| anyhow::anyhow!("cannot hand the clone folder over: {e}"))?;
    }
    let result = async {
        let mut clone = git_command(&scratch, token.as_ref(), state.config.deploy.git_allow_loopback, project.id);
        clone.args(["clone", "--quiet", "--depth", "1", "--single-branch", "--no-tags", "--no-recurse-submodules", "--branch"]);
        clone.arg(&source.branch).arg("--").arg(&source.repo_url).arg(&checkout);
        run_git(clone, "git_fetch_failed").await?;
        let mut log = git_command(&scratch, None, false, project.id);
        log.arg("-C").arg(&checkout).args(["log", "-1", "--format=%H%n%B"]);
        let described = run_git(log, "git_fetch_failed").await?;
        let (sha, message) = described.split_once('\n').unwrap_or((described.as_str(), ""));
        let (sha, message) = (sha.trim().to_owned(), webhooks::first_line(message));
        // Recorded before the upload is checked: a commit the upload refuses (a template error,
        // a quota) is not cloned again by every poll; the next commit is.
        let (project_id, seen_sha) = (project.id, sha.clone());
        state.db.run(move |conn| db::git_sources::set_last_sha(conn, project_id, &seen_sha)).await?;
        let limits = state.config.artifact_limits();
        let to_pack = checkout.clone();
        let zip = tokio::task::spawn_blocking(move || {
            std::fs::remove_dir_all(to_pack.join(".git"))
                .map_err(|e| AppError::Internal(anyhow::anyhow!("cannot remove the clone's .git: {e}")))?;
            orchestrator::artifact::pack_dir(&to_pack, &limits).map_err(crate::deploys::artifact_error)
        })
        .await
        .map_err(|e| anyhow::anyhow!("packing the clone failed: {e}"))??;
        crate::deploys::upload_commit(state, user, project, bytes::Bytes::from(zip), "git", Some((sha, message))).await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
}

/// The manual redeploy: builds the branch's tip now.
pub async fn redeploy(state: &AppState, user: &User, name: &str) -> Result<Revision, AppError> {
    let project = crate::projects::get(state, user, name, Action::Deploy).await?;
    let source = get_source(state, &project).await?.ok_or(AppError::NotFound("git source"))?;
    build_branch(state, user, &project, &source).await
}

/// What a webhook request led to.
#[derive(Debug)]
pub enum HookOutcome {
    /// A build of this commit was started.
    Building {
        commit_sha: String,
    },
    Ignored(String),
}

/// Verifies a webhook for project `name` and, for a push to the followed branch, starts building
/// it in the background (forges wait only seconds for an answer). Unknown projects and projects
/// without a source answer like a bad signature, so the endpoint does not tell which exist.
pub async fn handle_webhook(
    state: &AppState,
    name: &str,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<HookOutcome, AppError> {
    let refused = |e: webhooks::WebhookError| AppError::Rejected { code: e.code(), message: e.to_string() };
    let forge_name = webhooks::Forge::detect(&header).map_or("unknown", webhooks::Forge::as_str);
    let unknown = || refused(webhooks::WebhookError::BadSignature(forge_name));
    let owned_name = name.trim().to_owned();
    let project = state.db.run(move |conn| db::projects::find_by_name(conn, &owned_name)).await?.ok_or_else(unknown)?;
    let source = get_source(state, &project).await?.ok_or_else(unknown)?;
    let secret = state.secret_store.get(&webhook_secret_path(project.id)).await.map_err(|e| anyhow::anyhow!(e))?.ok_or_else(unknown)?;
    // The delivery id is looked up before verifying (verification is pure), and recorded after.
    let forge = webhooks::Forge::detect(&header);
    let delivery = match forge {
        Some(webhooks::Forge::GitHub) => header("x-github-delivery"),
        Some(webhooks::Forge::GitLab) => header("x-gitlab-event-uuid").or_else(|| header("idempotency-key")),
        Some(webhooks::Forge::Gitea) => header("x-gitea-delivery"),
        None => None,
    };
    let project_id = project.id;
    let seen = match delivery.clone() {
        Some(id) => state.db.run(move |conn| db::git_sources::delivery_seen(conn, project_id, &id)).await?,
        None => false,
    };
    let verdict = webhooks::verify(&header, body, &secret.0, &source.branch, |_| seen).map_err(refused)?;
    let push = match verdict {
        Verdict::Ignored(reason) => return Ok(HookOutcome::Ignored(reason)),
        Verdict::Deploy(push) => push,
    };
    let delivery_id = push.delivery.clone();
    if !state.db.run(move |conn| db::git_sources::record_delivery(conn, project_id, &delivery_id)).await? {
        return Err(refused(webhooks::WebhookError::Replayed(push.delivery)));
    }
    let owner_id = project.owner_id;
    let owner = state.db.run(move |conn| db::users::find(conn, owner_id)).await?.ok_or(AppError::NotFound("project owner"))?;
    tracing::info!(project = %project.name, forge = push.forge.as_str(), commit = %push.commit_sha, "push webhook: building");
    let task_state = state.clone();
    tokio::spawn(async move {
        if let Err(error) = build_branch(&task_state, &owner, &project, &source).await {
            tracing::warn!(project = %project.name, "building the pushed commit failed: {error}");
        }
    });
    Ok(HookOutcome::Building { commit_sha: push.commit_sha })
}

/// Checks every followed branch every `interval` and builds new commits (for forges whose
/// webhooks cannot reach this server). Runs until `shutdown`.
pub async fn poll_loop(state: AppState, interval: Duration, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    if interval.is_zero() {
        return;
    }
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let sources = match state.db.run(db::git_sources::all).await {
            Ok(sources) => sources,
            Err(error) => {
                tracing::warn!("cannot list git sources: {error}");
                continue;
            }
        };
        for source in sources {
            if let Err(error) = poll_one(&state, &source).await {
                tracing::warn!(project_id = source.project_id, "polling the git source failed: {error}");
            }
        }
    }
}

/// One poll: builds the branch when its tip is not the commit last built.
pub async fn poll_one(state: &AppState, source: &GitSource) -> Result<Option<Revision>, AppError> {
    let project_id = source.project_id;
    let Some(project) = state.db.run(move |conn| db::projects::find(conn, project_id)).await? else { return Ok(None) };
    let head = remote_head(state, &project, source).await?;
    if source.last_sha.as_deref() == Some(head.as_str()) {
        state.db.run(move |conn| db::git_sources::touch_checked(conn, project_id)).await?;
        return Ok(None);
    }
    let owner_id = project.owner_id;
    let owner = state.db.run(move |conn| db::users::find(conn, owner_id)).await?.ok_or(AppError::NotFound("project owner"))?;
    tracing::info!(project = %project.name, commit = %head, "polling found a new commit: building");
    build_branch(state, &owner, &project, source).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls_are_https_without_credentials_unless_loopback_is_allowed() {
        let ok = |text: &str, loopback: bool| check_repo_url(text, loopback).map(|u| u.to_string());
        assert_eq!(ok("https://github.com/kim/quiz.git", false), Ok("https://github.com/kim/quiz.git".to_owned()));
        assert!(ok("https://kim:ghp_secret@github.com/kim/quiz.git", false).unwrap_err().contains("token field"));
        assert!(ok("http://github.com/kim/quiz.git", false).unwrap_err().contains("https"));
        assert!(ok("http://127.0.0.1:9000/quiz.git", false).is_err());
        assert!(ok("http://127.0.0.1:9000/quiz.git", true).is_ok());
        assert!(ok("http://10.0.0.5/quiz.git", true).is_err());
        assert!(ok("file:///etc/passwd", true).is_err());
        assert!(ok("ext::sh -c touch% /tmp/pwned", true).is_err());
        assert!(ok("https://github.com/kim/quiz.git?x=1", false).is_err());
    }

    #[test]
    fn branch_names_follow_gits_rules() {
        assert_eq!(check_branch(" main "), Ok("main".to_owned()));
        assert_eq!(check_branch("feature/퀴즈"), Ok("feature/퀴즈".to_owned()));
        for bad in ["", "-x", "a..b", "a b", "x.lock", "a~1", "refs:x", "a@{1}", "/a", "a/"] {
            assert!(check_branch(bad).is_err(), "{bad:?}");
        }
    }
}
