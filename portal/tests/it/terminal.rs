//! Console projects in the web terminal, through the real gateway: the page, the assets, and
//! WebSocket sessions with a real pseudo-terminal in a real sandbox (a raw WebSocket client built
//! on the orchestrator's codec, so the bytes on the wire are what a browser sends).

use std::time::Duration;

use orchestrator::terminal::ws::{self, Decoder, Message, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{example_zip, project_dir, spawn_app, spawn_app_with, AppOptions, TestApp, PASSWORD};

/// A WebSocket client on one terminal session.
pub(crate) struct Terminal {
    stream: TcpStream,
    decoder: Decoder,
    /// Everything the program wrote so far, as text.
    pub(crate) output: String,
    /// Undecoded UTF-8 bytes at the end of the output (a character split between frames).
    pending: Vec<u8>,
    pub(crate) texts: Vec<String>,
    pub(crate) closed: bool,
}

impl Terminal {
    async fn open(app: &TestApp, name: &str, query: &str) -> Terminal {
        let host = format!("{name}.localhost");
        let (status, terminal) = Self::connect(app.gateway_port, &host, &host, &format!("/.slipway/terminal/ws?{query}"), "").await;
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        terminal.expect("upgraded")
    }

    /// Opens a WebSocket at `path` on 127.0.0.1:`port` as `host`, from a page at `origin`, with
    /// `extra` header lines; gives the answer's head and, after a 101, the client.
    pub(crate) async fn connect(port: u16, host: &str, origin: &str, path: &str, extra: &str) -> (String, Option<Terminal>) {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{origin}\r\n{extra}\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send the handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.expect("read the handshake answer") == 0 {
                break;
            }
            head.push(byte[0]);
        }
        let mut head = String::from_utf8_lossy(&head).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            // A refusal: its body (the error code) too; the server closes after it.
            let mut body = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut body)).await;
            head.push_str(&String::from_utf8_lossy(&body));
            return (head, None);
        }
        assert!(head.to_lowercase().contains(&format!("sec-websocket-accept: {}", ws::accept_key(key)).to_lowercase()), "{head}");
        let terminal = Terminal {
            stream,
            decoder: Decoder::new(Role::Client, 1 << 20),
            output: String::new(),
            pending: Vec::new(),
            texts: Vec::new(),
            closed: false,
        };
        (head, Some(terminal))
    }

    pub(crate) async fn send(&mut self, message: Message) {
        self.stream.write_all(&ws::encode(&message, Some([0x1f, 0x2e, 0x3d, 0x4c]))).await.expect("send a frame");
    }

    /// Reads frames until `done` holds for the output or the session closes; panics after 30 s.
    pub(crate) async fn read_until(&mut self, what: &str, done: impl Fn(&Terminal) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut buf = vec![0u8; 8192];
        while !done(self) {
            assert!(!self.closed, "the session closed before {what}; output:\n{}\ntexts: {:?}", self.output, self.texts);
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("no {what} within 30 s; output:\n{}", self.output))
                .expect("read from the socket");
            if n == 0 {
                self.closed = true;
                continue;
            }
            self.decoder.push(&buf[..n]);
            while let Some(message) = self.decoder.next().expect("valid frames from the gateway") {
                match message {
                    Message::Binary(bytes) => {
                        self.pending.extend_from_slice(&bytes);
                        let valid = match std::str::from_utf8(&self.pending) {
                            Ok(text) => text.len(),
                            Err(error) => error.valid_up_to(),
                        };
                        self.output.push_str(std::str::from_utf8(&self.pending[..valid]).expect("checked"));
                        self.pending.drain(..valid);
                    }
                    Message::Text(text) => self.texts.push(text),
                    Message::Close(_) => self.closed = true,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
        }
    }

    pub(crate) async fn read_output(&mut self, needle: &str) {
        self.read_until(&format!("{needle:?}"), |t| t.output.contains(needle)).await;
    }
}

async fn console_project(app: &TestApp, name: &str, zip: Vec<u8>) {
    let token = app.api_token(&format!("{name}@pusan.ac.kr")).await;
    let revision = app.deploy_live(&token, name, "console", zip).await;
    assert_eq!(revision["template"], "console");
}

/// Polls until `app`'s console program has `expected` sessions running.
async fn wait_for_sessions(app: &TestApp, name: &str, expected: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.state.runtime.status(name);
        assert_eq!(status.state, "console");
        if status.instances == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{name} still has {} sessions, expected {expected}", status.instances);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_console_quiz_is_played_in_the_web_terminal_with_korean_answers() {
    let app = spawn_app().await;
    console_project(&app, "quiz", example_zip("console-quiz")).await;
    // Nothing runs before a visitor comes.
    wait_for_sessions(&app, "quiz", 0).await;

    let page = app.app_get("quiz", "/").await;
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"].to_str().expect("ascii").contains("script-src 'self'"));
    let html = page.text().await.expect("page");
    assert!(html.contains("/.slipway/terminal/xterm.js") && html.contains("/.slipway/terminal/terminal.js"), "{html}");
    let xterm = app.app_get("quiz", "/.slipway/terminal/xterm.js").await;
    assert_eq!(xterm.status(), 200, "xterm.js is served from web/terminal/node_modules (npm ci there)");
    assert!(xterm.text().await.expect("script").contains("Terminal"));
    // Only the listed files: nothing else of the assets folder, however the path is written.
    for path in ["/.slipway/terminal/package.json", "/.slipway/terminal/xterm.js.map", "/.slipway/terminal/@xterm/xterm/package.json"] {
        assert_eq!(app.app_get("quiz", path).await.status(), 404, "{path}");
    }

    let mut terminal = Terminal::open(&app, "quiz", "cols=100&rows=30").await;
    terminal.read_output("1. 대한민국의 수도는 어디일까요?").await;
    terminal.read_output("> ").await;
    wait_for_sessions(&app, "quiz", 1).await;
    // Typed as a browser sends it: UTF-8 in binary frames, Enter as a carriage return.
    terminal.send(Message::Binary("서울\r".as_bytes().to_vec())).await;
    terminal.read_output("정답입니다! / Correct!").await;
    // The terminal echoed the Korean answer as it was typed.
    assert!(terminal.output.contains("> 서울\r\n"), "{}", terminal.output);
    terminal.read_output("2. 7 × 8").await;
    terminal.send(Message::Text(r#"{"input":"57\r"}"#.to_owned())).await;
    terminal.read_output("아쉬워요, 정답은 56 입니다.").await;
    terminal.read_output("점수 / Score: 1/2").await;
    terminal.read_until("the exit message", |t| !t.texts.is_empty()).await;
    assert_eq!(terminal.texts, vec![r#"{"exit":{"code":0}}"#.to_owned()]);
    wait_for_sessions(&app, "quiz", 0).await;
}

#[tokio::test]
async fn each_visitor_gets_a_fresh_instance_that_sees_resizes_and_ends_when_they_leave() {
    let app = spawn_app().await;
    let dir = project_dir(&[(
        "main.py",
        "import os, sys\n\
         def size():\n    s = os.get_terminal_size(0)\n    return f'{s.columns}x{s.lines}'\n\
         print('tty', sys.stdin.isatty(), 'size', size(), 'lang', os.environ.get('LANG'), flush=True)\n\
         name = input('이름? ')\n\
         print('안녕하세요,', name + '!', 'size', size(), flush=True)\n\
         input('again? ')\n",
    )]);
    console_project(&app, "sizes", crate::helpers::pack(dir.path())).await;

    let mut first = Terminal::open(&app, "sizes", "cols=90&rows=20").await;
    let mut second = Terminal::open(&app, "sizes", "cols=132&rows=43").await;
    first.read_output("tty True size 90x20 lang C.UTF-8").await;
    second.read_output("tty True size 132x43").await;
    wait_for_sessions(&app, "sizes", 2).await;

    first.send(Message::Text(r#"{"resize":{"cols":100,"rows":30}}"#.to_owned())).await;
    first.send(Message::Binary("홍길동\r".as_bytes().to_vec())).await;
    first.read_output("안녕하세요, 홍길동! size 100x30").await;
    // The second visitor's program is another instance: still at its first question.
    second.read_output("이름? ").await;
    assert!(!second.output.contains("홍길동"), "{}", second.output);

    // Leaving (closing the socket) kills the instance at once, though it still waits for input.
    first.send(Message::Close(Some(1000))).await;
    drop(first);
    wait_for_sessions(&app, "sizes", 1).await;
    drop(second);
    wait_for_sessions(&app, "sizes", 0).await;
}

#[tokio::test]
async fn a_session_ends_at_the_time_limit_and_visitors_beyond_the_limit_are_told_to_wait() {
    let app = spawn_app_with(AppOptions {
        extra_top: "[terminal]\ntime_limit = \"10s\"\nmax_sessions = 1\n".to_owned(),
        ..AppOptions::default()
    })
    .await;
    console_project(&app, "limited", example_zip("console-quiz")).await;
    let mut first = Terminal::open(&app, "limited", "").await;
    first.read_output("> ").await;
    let mut second = Terminal::open(&app, "limited", "").await;
    second.read_until("a refusal", |t| t.closed).await;
    assert_eq!(second.texts.len(), 1, "{:?}", second.texts);
    assert!(second.texts[0].contains("Too many people"), "{:?}", second.texts);
    first.read_until("the time limit", |t| !t.texts.is_empty()).await;
    assert_eq!(first.texts, vec![r#"{"ended":"time_limit"}"#.to_owned()]);
    wait_for_sessions(&app, "limited", 0).await;
}

/// Logs a new browser in as `email` (an account made by `api_token`); gives its session cookie.
pub(crate) async fn session_cookie(app: &TestApp, email: &str) -> String {
    let (client, jar) = app.new_browser();
    let csrf = app.csrf_for(&client, &jar).await;
    let response = client
        .post(app.url("/login"))
        .form(&[("email", email), ("password", PASSWORD), ("csrf_token", &csrf)])
        .send()
        .await
        .expect("log in");
    assert_eq!(response.status(), 303, "log in as {email}");
    TestApp::cookie(&jar, &app.address, "slipway_session").expect("a session cookie")
}

/// The portal's `host:port`, as browsers send it in `Host` and `Origin`.
pub(crate) fn portal_host(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

pub(crate) fn portal_port(app: &TestApp) -> u16 {
    app.address.rsplit(':').next().and_then(|port| port.parse().ok()).expect("the portal's port")
}

/// Host pids whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> Vec<u32> {
    let wanted: Vec<u8> = argv.iter().flat_map(|word| word.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| cmdline == wanted))
        .collect()
}

#[tokio::test]
async fn an_owner_opens_a_shell_inside_the_running_app_and_leaving_ends_everything_it_started() {
    let app = spawn_app().await;
    let owner = "shell-owner@pusan.ac.kr";
    let token = app.api_token(owner).await;
    app.deploy_live(&token, "shelly", "python", example_zip("python-plain")).await;
    let cookie = session_cookie(&app, owner).await;
    let host = portal_host(&app);

    // The page, for the owner.
    let page =
        app.client.get(app.url("/projects/shelly/shell")).header("Cookie", format!("slipway_session={cookie}")).send().await.expect("page");
    assert_eq!(page.status(), 200);
    assert!(page.text().await.expect("html").contains("data-socket=\"/projects/shelly/shell/ws\""));

    let (status, shell) = Terminal::connect(
        portal_port(&app),
        &host,
        &host,
        "/projects/shelly/shell/ws?cols=120&rows=40",
        &format!("Cookie: slipway_session={cookie}\r\n"),
    )
    .await;
    let mut shell = shell.unwrap_or_else(|| panic!("no shell: {status}"));
    shell.read_output("$ ").await;
    // Inside the instance: its uid (not root), its /app, its pid namespace (the app is there), its
    // network namespace (the app answers on its own loopback), its cgroup, a UTF-8 terminal.
    shell
        .send(Message::Binary(
            "echo uid=$(id -u) pwd=$(pwd) size=$(stty size); ls /root 2>&1 | head -c 60; echo; \
             python3 -c \"import urllib.request as u; print('app says', u.urlopen('http://127.0.0.1:8080/').read().decode().strip())\"; \
             echo processes=$(ls -d /proc/[0-9]* | wc -l).; echo 안녕 $((6*7)); sleep 4242 & echo started\r"
                .as_bytes()
                .to_vec(),
        ))
        .await;
    shell.read_output("started").await;
    shell.read_output("안녕 42").await;
    let uid = app.state.runtime.shell_target("shelly").await.expect("running").uid;
    assert_ne!(uid, 0);
    shell.read_output(&format!("uid={uid} pwd=/app size=40 120")).await;
    shell.read_output("app says Hello from Slipway (plain Python)").await;
    assert!(shell.output.contains("No such file"), "/root must not exist inside: {}", shell.output);
    // Its own pid namespace: a handful of processes, not the host's.
    let processes: usize = shell
        .output
        .split("processes=")
        .last()
        .and_then(|rest| rest.split('.').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process count: {}", shell.output));
    assert!(processes < 20, "{processes} processes visible: {}", shell.output);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut sleeping = processes_running(&["sleep", "4242"]);
    while sleeping.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sleeping = processes_running(&["sleep", "4242"]);
    }
    assert_eq!(sleeping.len(), 1, "the background sleep runs: {}", shell.output);
    let cgroup = std::fs::read_to_string(format!("/proc/{}/cgroup", sleeping[0])).expect("cgroup");
    assert!(cgroup.contains("app-shelly-r1"), "the shell's processes are in the instance's cgroup: {cgroup}");

    // Leaving kills the shell and what it left in the background; the app keeps running.
    shell.send(Message::Close(Some(1000))).await;
    drop(shell);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !processes_running(&["sleep", "4242"]).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "the shell's background process outlived the session");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.app_get("shelly", "/").await.status(), 200);

    // The audit log has who opened and closed the shell on which app, and nothing typed in it.
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
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while shell_entries(&app).len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "no shell.close entry: {:?}", shell_entries(&app));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entries = shell_entries(&app);
    let summary: Vec<(&str, Option<&str>, Option<&str>)> =
        entries.iter().map(|(action, actor, target, _)| (action.as_str(), actor.as_deref(), target.as_deref())).collect();
    assert_eq!(summary, vec![("shell.open", Some(owner), Some("shelly")), ("shell.close", Some(owner), Some("shelly"))]);
    assert!(!format!("{entries:?}").contains("4242"), "a command typed in the shell reached the audit log: {entries:?}");
}

#[tokio::test]
async fn only_owners_get_a_shell_and_only_in_a_running_server_app() {
    let app = spawn_app().await;
    let owner = "shell-o2@pusan.ac.kr";
    let token = app.api_token(owner).await;
    app.deploy_live(&token, "quizsh", "console", example_zip("console-quiz")).await;
    app.create_project(&token, "idle", "python").await;
    app.api_token("shell-other@pusan.ac.kr").await;
    let owner_cookie = session_cookie(&app, owner).await;
    let other_cookie = session_cookie(&app, "shell-other@pusan.ac.kr").await;
    let host = portal_host(&app);
    let socket = |project: &str, cookie: Option<&str>| {
        let extra = cookie.map(|c| format!("Cookie: slipway_session={c}\r\n")).unwrap_or_default();
        let path = format!("/projects/{project}/shell/ws");
        let (port, host) = (portal_port(&app), host.clone());
        async move { Terminal::connect(port, &host, &host, &path, &extra).await.0 }
    };
    let status_of = |head: String| head.split(' ').nth(1).unwrap_or("").to_owned();
    assert_eq!(status_of(socket("quizsh", None).await), "401");
    assert_eq!(status_of(socket("quizsh", Some(&other_cookie)).await), "403");
    // A group's maintainer may deploy but not open a shell; the group's owner may.
    app.api_token("shell-maint@pusan.ac.kr").await;
    let post = |path: &str, body: serde_json::Value| app.client.post(app.url(path)).bearer_auth(&token).json(&body).send();
    assert_eq!(post("/api/v1/groups", serde_json::json!({"name": "shell-club"})).await.expect("group").status(), 201);
    let invited = post("/api/v1/groups/shell-club/members", serde_json::json!({"email": "shell-maint@pusan.ac.kr", "role": "maintainer"}))
        .await
        .expect("invite");
    assert_eq!(invited.status(), 200);
    let created = post("/api/v1/projects", serde_json::json!({"name": "clubapp", "template": "python", "group": "shell-club"}))
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let maintainer_cookie = session_cookie(&app, "shell-maint@pusan.ac.kr").await;
    assert_eq!(status_of(socket("clubapp", Some(&maintainer_cookie)).await), "403");
    assert_eq!(
        status_of(socket("clubapp", Some(&owner_cookie)).await),
        "409",
        "the owner passes the permission check; the app is not running"
    );
    let console = socket("quizsh", Some(&owner_cookie)).await;
    assert_eq!(status_of(console.clone()), "409", "{console}");
    assert!(console.contains("shell_not_available"), "{console}");
    let idle = socket("idle", Some(&owner_cookie)).await;
    assert_eq!(status_of(idle.clone()), "409", "{idle}");
    assert!(idle.contains("app_not_running"), "{idle}");
    // A socket opened by another site's page never reaches the shell, even with the cookie.
    let extra = format!("Cookie: slipway_session={owner_cookie}\r\n");
    let (head, _) = Terminal::connect(portal_port(&app), &host, "evil.localhost", "/projects/quizsh/shell/ws", &extra).await;
    assert_eq!(status_of(head), "403");
}

#[tokio::test]
async fn visibility_applies_to_the_terminal_page_and_its_socket() {
    let app = spawn_app().await;
    let owner = "term-private@pusan.ac.kr";
    let token = app.api_token(owner).await;
    app.deploy_live(&token, "secretquiz", "console", example_zip("console-quiz")).await;
    let response = app
        .client
        .patch(app.url("/api/v1/projects/secretquiz"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"visibility": "private"}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    // The gateway follows within about a second.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let response = client
            .get(format!("http://127.0.0.1:{}/", app.gateway_port))
            .header("Host", "secretquiz.localhost")
            .send()
            .await
            .expect("page");
        if response.status() == 302 || tokio::time::Instant::now() >= deadline {
            break response.status();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 302, "an anonymous visitor is sent to the portal to log in");
    let host = "secretquiz.localhost";
    let (head, terminal) = Terminal::connect(app.gateway_port, host, host, "/.slipway/terminal/ws", "").await;
    assert!(terminal.is_none() && head.starts_with("HTTP/1.1 401"), "{head}");
    // Nothing was started for the refused visitor.
    wait_for_sessions(&app, "secretquiz", 0).await;
    // Another app's page cannot open this terminal, whatever its cookies.
    let (head, _) = Terminal::connect(app.gateway_port, host, "evil.localhost", "/.slipway/terminal/ws", "").await;
    assert!(head.starts_with("HTTP/1.1 401") || head.starts_with("HTTP/1.1 403"), "{head}");
}
