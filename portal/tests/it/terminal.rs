//! Console projects in the web terminal, through the real gateway: the page, the assets, and
//! WebSocket sessions with a real pseudo-terminal in a real sandbox (a raw WebSocket client built
//! on the orchestrator's codec, so the bytes on the wire are what a browser sends).

use std::time::Duration;

use orchestrator::terminal::ws::{self, Decoder, Message, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{example_zip, project_dir, spawn_app, spawn_app_with, AppOptions, TestApp};

/// A WebSocket client on one terminal session.
struct Terminal {
    stream: TcpStream,
    decoder: Decoder,
    /// Everything the program wrote so far, as text.
    output: String,
    /// Undecoded UTF-8 bytes at the end of the output (a character split between frames).
    pending: Vec<u8>,
    texts: Vec<String>,
    closed: bool,
}

impl Terminal {
    async fn open(app: &TestApp, name: &str, query: &str) -> Terminal {
        let mut stream = TcpStream::connect(("127.0.0.1", app.gateway_port)).await.expect("connect to the gateway");
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let request = format!(
            "GET /.slipway/terminal/ws?{query} HTTP/1.1\r\nHost: {name}.localhost\r\nOrigin: http://{name}.localhost\r\n\
             Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send the handshake");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(stream.read(&mut byte).await.expect("read the handshake answer"), 1, "closed: {}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        assert!(head.to_lowercase().contains(&format!("sec-websocket-accept: {}", ws::accept_key(key)).to_lowercase()), "{head}");
        Terminal {
            stream,
            decoder: Decoder::new(Role::Client, 1 << 20),
            output: String::new(),
            pending: Vec::new(),
            texts: Vec::new(),
            closed: false,
        }
    }

    async fn send(&mut self, message: Message) {
        self.stream.write_all(&ws::encode(&message, Some([0x1f, 0x2e, 0x3d, 0x4c]))).await.expect("send a frame");
    }

    /// Reads frames until `done` holds for the output or the session closes; panics after 30 s.
    async fn read_until(&mut self, what: &str, done: impl Fn(&Terminal) -> bool) {
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

    async fn read_output(&mut self, needle: &str) {
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
