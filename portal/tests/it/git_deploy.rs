//! Deploy on push against a real Git server on loopback: `git http-backend` behind a tiny CGI
//! server (Python's standard library, started by the test) that asks for the deploy token. Clone
//! and `ls-remote` run for real; webhooks are signed like GitHub's and GitLab's.

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use portal::domain::webhooks::hmac_sha256;

use crate::helpers::{spawn_app_with, AppOptions, TestApp};

const TOKEN: &str = "deploy-token-6c1f";

/// The CGI bridge: every request goes to `git http-backend`; a request without the deploy token
/// (as Basic auth) gets 401.
const SERVER: &str = r#"
import base64, http.server, os, subprocess, sys
root, token, port_file = sys.argv[1], sys.argv[2], sys.argv[3]
expected = 'Basic ' + base64.b64encode(('x-access-token:' + token).encode()).decode()

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.cgi()

    def do_POST(self):
        self.cgi()

    def cgi(self):
        if self.headers.get('Authorization', '') != expected:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="git"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        path, _, query = self.path.partition('?')
        env = {'GIT_PROJECT_ROOT': root, 'GIT_HTTP_EXPORT_ALL': '1', 'PATH_INFO': path, 'QUERY_STRING': query,
               'REQUEST_METHOD': self.command, 'CONTENT_TYPE': self.headers.get('Content-Type', ''),
               'REMOTE_ADDR': '127.0.0.1', 'PATH': '/usr/bin:/bin'}
        if self.headers.get('Git-Protocol'):
            env['GIT_PROTOCOL'] = self.headers['Git-Protocol']
        if self.headers.get('Content-Encoding'):
            env['HTTP_CONTENT_ENCODING'] = self.headers['Content-Encoding']
        if self.headers.get('Transfer-Encoding', '').lower() == 'chunked':
            body = b''
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    break
                body += self.rfile.read(size)
                self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        out = subprocess.run(['git', 'http-backend'], input=body, env=env, capture_output=True).stdout
        sep = b'\r\n\r\n' if b'\r\n\r\n' in out else b'\n\n'
        head, _, rest = out.partition(sep)
        status, headers = 200, []
        for line in head.replace(b'\r\n', b'\n').split(b'\n'):
            name, _, value = line.decode().partition(':')
            if name.lower() == 'status':
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header('Content-Length', str(len(rest)))
        self.end_headers()
        self.wfile.write(rest)

server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
with open(port_file + '.tmp', 'w') as f:
    f.write(str(server.server_port))
os.rename(port_file + '.tmp', port_file)
server.serve_forever()
"#;

/// The Git server: a bare repository `quiz.git` and a work tree that pushes to it.
struct GitServer {
    child: Child,
    port: u16,
    work: tempfile::TempDir,
    _root: tempfile::TempDir,
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(["-c", "user.name=Kim Minsu", "-c", "user.email=minsu@pusan.ac.kr", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

impl GitServer {
    fn start() -> GitServer {
        let root = tempfile::tempdir().expect("root");
        let work = tempfile::tempdir().expect("work");
        git(root.path(), &["init", "--quiet", "--bare", "quiz.git"]);
        git(work.path(), &["init", "--quiet", "."]);
        git(work.path(), &["remote", "add", "origin", &root.path().join("quiz.git").display().to_string()]);
        let script = root.path().join("server.py");
        std::fs::write(&script, SERVER).expect("write the server");
        let port_file = root.path().join("port");
        let child = Command::new("python3").arg(&script).arg(root.path()).arg(TOKEN).arg(&port_file).spawn().expect("start the git server");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let port = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                break text.trim().parse().expect("a port");
            }
            assert!(std::time::Instant::now() < deadline, "the git server did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        GitServer { child, port, work, _root: root }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/quiz.git", self.port)
    }

    /// Commits `index.html` with `content` on `main` and pushes; gives the commit's SHA.
    fn commit(&self, content: &str, message: &str) -> String {
        let work = self.work.path();
        std::fs::write(work.join("index.html"), content).expect("write");
        git(work, &["add", "index.html"]);
        git(work, &["commit", "--quiet", "-m", message]);
        git(work, &["push", "--quiet", "origin", "main"]);
        git(work, &["rev-parse", "HEAD"])
    }
}

/// Sets `main` up in the work tree on first use (an empty repository has no `log`).
fn first_commit(server: &GitServer, content: &str, message: &str) -> String {
    let work = server.work.path();
    git(work, &["checkout", "--quiet", "-b", "main"]);
    std::fs::write(work.join("index.html"), content).expect("write");
    git(work, &["add", "index.html"]);
    git(work, &["commit", "--quiet", "-m", message]);
    git(work, &["push", "--quiet", "origin", "main"]);
    git(work, &["rev-parse", "HEAD"])
}

async fn api(app: &TestApp, method: reqwest::Method, token: &str, path: &str, body: Option<serde_json::Value>) -> (u16, serde_json::Value) {
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn hook(app: &TestApp, name: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, serde_json::Value) {
    let mut request = app.client.post(app.url(&format!("/api/v1/hooks/{name}"))).header("Content-Type", "application/json");
    for (header, value) in headers {
        request = request.header(*header, value);
    }
    let response = request.body(body.to_vec()).send().await.expect("webhook");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

fn github_push(sha: &str, branch: &str, message: &str) -> Vec<u8> {
    serde_json::json!({
        "ref": format!("refs/heads/{branch}"),
        "after": sha,
        "head_commit": { "id": sha, "message": message },
        "repository": { "full_name": "kim/quiz" },
    })
    .to_string()
    .into_bytes()
}

fn github_headers(secret: &str, body: &[u8], delivery: &str) -> Vec<(&'static str, String)> {
    vec![
        ("X-GitHub-Event", "push".to_owned()),
        ("X-GitHub-Delivery", delivery.to_owned()),
        ("X-Hub-Signature-256", format!("sha256={}", hex::encode(hmac_sha256(secret.as_bytes(), body)))),
    ]
}

#[tokio::test]
async fn a_project_follows_a_branch_through_redeploy_webhooks_and_polling() {
    let server = GitServer::start();
    let app = spawn_app_with(AppOptions {
        extra_deploy: "git_allow_loopback = true\ngit_poll_interval = \"0s\"\n".to_owned(),
        ..AppOptions::default()
    })
    .await;
    let token = app.api_token("git-owner@pusan.ac.kr").await;
    app.create_project(&token, "gitquiz", "static").await;
    let first = first_commit(&server, "<h1>v1</h1>", "첫 버전 / first version\n\nbody text");

    // A wrong deploy token: the clone is refused by the server, nothing is queued.
    let (status, _) = api(
        &app,
        reqwest::Method::PUT,
        &token,
        "/api/v1/projects/gitquiz/source",
        Some(serde_json::json!({"repo_url": server.url(), "token": "wrong"})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, refused) = api(&app, reqwest::Method::POST, &token, "/api/v1/projects/gitquiz/source/deploy", None).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("git_fetch_failed")), "{refused}");
    assert!(!refused.to_string().contains("wrong"), "the token never appears in answers: {refused}");
    assert!(app.revisions(&token, "gitquiz").await.is_empty());

    // The right token; the webhook secret is shown once, never again.
    let (status, source) = api(
        &app,
        reqwest::Method::PUT,
        &token,
        "/api/v1/projects/gitquiz/source",
        Some(serde_json::json!({"repo_url": server.url(), "branch": "main", "token": TOKEN})),
    )
    .await;
    assert_eq!(status, 200, "{source}");
    let secret = source["webhook_secret"].as_str().expect("a webhook secret").to_owned();
    assert!(source["webhook_url"].as_str().expect("url").ends_with("/api/v1/hooks/gitquiz"));
    let (_, shown) = api(&app, reqwest::Method::GET, &token, "/api/v1/projects/gitquiz/source", None).await;
    assert_eq!(shown["has_token"], true);
    assert!(shown.get("webhook_secret").is_none() && !shown.to_string().contains(TOKEN), "{shown}");

    // The manual redeploy builds the branch's tip, with its commit.
    let (status, queued) = api(&app, reqwest::Method::POST, &token, "/api/v1/projects/gitquiz/source/deploy", None).await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!((queued["source"].as_str(), queued["commit_sha"].as_str()), (Some("git"), Some(first.as_str())));
    assert_eq!(queued["commit_message"], "첫 버전 / first version");
    assert_eq!(app.wait_for_revision(&token, "gitquiz", 1).await["status"], "live");
    assert!(crate::helpers::text(app.app_get("gitquiz", "/").await).await.contains("v1"));
    // The project page shows the commit and the redeploy button.
    let cookie = crate::terminal::session_cookie(&app, "git-owner@pusan.ac.kr").await;
    let page =
        app.client.get(app.url("/projects/gitquiz")).header("Cookie", format!("slipway_session={cookie}")).send().await.expect("page");
    let html = page.text().await.expect("html");
    assert!(html.contains(&first[..8]) && html.contains("첫 버전 / first version"), "the revision's commit is shown");
    assert!(html.contains("data-testid=\"redeploy\"") && html.contains("/api/v1/hooks/gitquiz"));
    assert!(!html.contains(&secret) && !html.contains(TOKEN), "neither secret is on the page");

    // A push and its webhook: built and live with the new commit.
    let second = server.commit("<h1>v2</h1>", "두 번째 / second");
    let body = github_push(&second, "main", "두 번째 / second");
    let (status, answer) = hook(&app, "gitquiz", &github_headers(&secret, &body, "delivery-1"), &body).await;
    assert_eq!((status, answer["status"].as_str()), (202, Some("building")), "{answer}");
    let revision = app.wait_for_revision(&token, "gitquiz", 2).await;
    assert_eq!((revision["status"].as_str(), revision["commit_sha"].as_str()), (Some("live"), Some(second.as_str())), "{revision}");
    assert_eq!(revision["commit_message"], "두 번째 / second");
    let (_, page) = app.app_get_until("gitquiz", "/", Duration::from_secs(10), |_, body| body.contains("v2")).await;
    assert!(page.contains("v2"), "{page}");

    // Replayed, tampered, unsigned, for another branch, for another project: nothing is built.
    let (status, replayed) = hook(&app, "gitquiz", &github_headers(&secret, &body, "delivery-1"), &body).await;
    assert_eq!((status, replayed["error"]["code"].as_str()), (422, Some("webhook_replayed")), "{replayed}");
    let tampered = github_push(&first, "main", "x");
    let (status, answer) = hook(&app, "gitquiz", &github_headers(&secret, &body, "delivery-2"), &tampered).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("webhook_bad_signature")), "{answer}");
    let (status, answer) = hook(&app, "gitquiz", &github_headers("not-the-secret", &body, "delivery-3"), &body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("webhook_bad_signature")), "{answer}");
    let other_branch = github_push(&second, "feature", "x");
    let (status, answer) = hook(&app, "gitquiz", &github_headers(&secret, &other_branch, "delivery-4"), &other_branch).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("ignored")), "{answer}");
    let (status, answer) = hook(&app, "nosuchproject", &github_headers(&secret, &body, "delivery-5"), &body).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("webhook_bad_signature")), "{answer}");
    // GitLab's shared token works too (and a wrong one does not).
    let third = server.commit("<h1>v3</h1>", "세 번째 / third");
    let gitlab_body = serde_json::json!({"object_kind": "push", "ref": "refs/heads/main", "after": third, "checkout_sha": third,
        "commits": [{"id": third, "message": "세 번째 / third\n"}]})
    .to_string();
    let gitlab = |token: &str, delivery: &str| {
        vec![("X-Gitlab-Event", "Push Hook".to_owned()), ("X-Gitlab-Token", token.to_owned()), ("X-Gitlab-Event-UUID", delivery.to_owned())]
    };
    let (status, _) = hook(&app, "gitquiz", &gitlab("wrong", "gl-1"), gitlab_body.as_bytes()).await;
    assert_eq!(status, 422);
    let (status, answer) = hook(&app, "gitquiz", &gitlab(&secret, "gl-2"), gitlab_body.as_bytes()).await;
    assert_eq!(status, 202, "{answer}");
    let revision = app.wait_for_revision(&token, "gitquiz", 3).await;
    assert_eq!((revision["status"].as_str(), revision["commit_sha"].as_str()), (Some("live"), Some(third.as_str())), "{revision}");
    assert_eq!(app.revisions(&token, "gitquiz").await.len(), 3, "nothing else was built");

    // Polling: nothing new, nothing built; a push without a webhook is found.
    let source_row = |app: &TestApp| {
        use diesel::prelude::*;
        use portal::db::schema::{git_sources, projects};
        git_sources::table
            .inner_join(projects::table)
            .filter(projects::name.eq("gitquiz"))
            .select(portal::db::git_sources::GitSource::as_select())
            .first(&mut app.db())
            .expect("the source")
    };
    assert!(portal::git_sources::poll_one(&app.state, &source_row(&app)).await.expect("poll").is_none());
    let fourth = server.commit("<h1>v4</h1>", "네 번째 / fourth");
    let polled = portal::git_sources::poll_one(&app.state, &source_row(&app)).await.expect("poll").expect("a new revision");
    assert_eq!(polled.commit_sha.as_deref(), Some(fourth.as_str()));
    assert_eq!(app.wait_for_revision(&token, "gitquiz", 4).await["status"], "live");

    // Removing the source: the webhook no longer builds anything.
    let (status, _) = api(&app, reqwest::Method::DELETE, &token, "/api/v1/projects/gitquiz/source", None).await;
    assert_eq!(status, 204);
    let (status, _) = hook(&app, "gitquiz", &github_headers(&secret, &body, "delivery-6"), &body).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn repository_urls_with_credentials_or_plain_http_are_refused() {
    let app = spawn_app_with(AppOptions::default()).await;
    let token = app.api_token("git-refuse@pusan.ac.kr").await;
    app.create_project(&token, "gitref", "static").await;
    for (url, code) in [
        ("https://kim:ghp_x@github.com/kim/quiz.git", "invalid_repo_url"),
        ("http://127.0.0.1:9/quiz.git", "invalid_repo_url"),
        ("file:///etc", "invalid_repo_url"),
    ] {
        let (status, answer) =
            api(&app, reqwest::Method::PUT, &token, "/api/v1/projects/gitref/source", Some(serde_json::json!({"repo_url": url}))).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (422, Some(code)), "{url}: {answer}");
    }
    let (status, answer) = api(
        &app,
        reqwest::Method::PUT,
        &token,
        "/api/v1/projects/gitref/source",
        Some(serde_json::json!({"repo_url": "https://github.com/kim/quiz.git", "branch": "a..b"})),
    )
    .await;
    assert_eq!((status, answer["error"]["code"].as_str()), (422, Some("invalid_branch")), "{answer}");
}
