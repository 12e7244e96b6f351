//! The web terminal for console programs (`Start::Terminal`): each visitor's WebSocket gets a fresh
//! instance of the program in its own sandbox with a pseudo-terminal, and the instance is killed
//! when the visitor leaves, the program ends or the time limit passes. With no visitors nothing
//! runs; a console app has no instances of its own between sessions.
//!
//! ```text
//!   browser (xterm.js) ──WebSocket──▶ gateway ──▶ session::relay ◀──pty master──▶ sandbox (bwrap + cgroup + netns)
//!        binary frames: keystrokes ─────────────▶ write(master)          program's stdin/stdout/stderr
//!        binary frames: output ◀────────────────── read(master)          = the pty slave, its controlling terminal
//!        text frames: {"resize":{"cols":C,"rows":R}} ──▶ TIOCSWINSZ
//!        text frames ◀── {"exit":{"code":N}} | {"ended":"time_limit"} | {"error":"..."}, then close
//! ```
//!
//! - `ws`: the WebSocket handshake key and frame codec (pure).
//! - `pty`: `openpty`, the window size, the master side on tokio's reactor.
//! - `page`: the full-screen terminal page and its script (pure); xterm.js itself is served from
//!   the assets directory that `npm ci` in `web/terminal/` fills (`GatewayConfig::terminal_assets`).
//! - `session`: `relay`, the copy loop between a WebSocket and a session.
//! - `remote`: `Remote`, a terminal on another machine (the cluster's owner shell), as channels.
//! - this file: `Program` (one console app's sandbox template and its limits), `Session` (one
//!   running instance), `Control` and `parse_control` (pure).
//!
//! It deliberately does not decide who may open a terminal (the gateway's access check runs
//! before), record keystrokes, or keep an instance for a visitor who comes back.

pub mod page;
pub mod pty;
pub mod remote;
pub mod session;
pub mod shell;
pub mod ws;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sandbox::{HostSupport, Sandbox, SandboxError, SandboxSpec};
pub use pty::WindowSize;

/// Limits that apply to each session of a console app (memory, cpu and processes come from the
/// sandbox spec's cgroup limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Wall-clock time one session may last; then the instance is killed and the visitor told so.
    pub time_limit: Duration,
    /// Sessions of one app at once; more visitors are told to try again later.
    pub max_sessions: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self { time_limit: Duration::from_secs(30 * 60), max_sessions: 20 }
    }
}

/// Why a session could not start.
#[derive(Debug, thiserror::Error)]
pub enum TerminalError {
    #[error("console app {app:?} already has {limit} sessions, its limit")]
    TooManySessions { app: String, limit: usize },
    #[error("cannot open a pseudo-terminal: {0}")]
    Pty(#[source] std::io::Error),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// One console app's program as it is started for each visitor: a sandbox spec whose `name` is a
/// prefix (each session adds its number), the host's sandbox support and the session limits.
#[derive(Debug)]
pub struct Program {
    app: String,
    revision: i32,
    spec: SandboxSpec,
    host: HostSupport,
    limits: SessionLimits,
    live: Arc<AtomicUsize>,
    next_id: AtomicU64,
}

impl Program {
    pub fn new(app: String, revision: i32, spec: SandboxSpec, host: HostSupport, limits: SessionLimits) -> Self {
        Self { app, revision, spec, host, limits, live: Arc::new(AtomicUsize::new(0)), next_id: AtomicU64::new(0) }
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn revision(&self) -> i32 {
        self.revision
    }

    pub fn limits(&self) -> SessionLimits {
        self.limits
    }

    /// Sessions running now.
    pub fn live_sessions(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Starts a fresh instance on a new pseudo-terminal of `size`.
    pub async fn start(&self, size: WindowSize) -> Result<Session, TerminalError> {
        let slot = Slot::take(&self.live, self.limits.max_sessions)
            .ok_or_else(|| TerminalError::TooManySessions { app: self.app.clone(), limit: self.limits.max_sessions })?;
        let pty = pty::open(size).map_err(TerminalError::Pty)?;
        let session_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut spec = self.spec.clone();
        spec.name = format!("{}-s{session_id}", self.spec.name);
        let sandbox = Sandbox::spawn_on_terminal(&spec, &self.host, &pty.slave).await?;
        // Our copy of the slave must go: the master reads end-of-file only when every holder of the
        // slave (the sandbox's processes) has closed it.
        drop(pty.slave);
        let master = pty::Master::new(pty.master).map_err(TerminalError::Pty)?;
        Ok(Session { terminal: Terminal::Local { process: Box::new(Process::Sandbox(sandbox)), master }, _slot: Some(slot) })
    }
}

/// What runs on a session's terminal.
#[derive(Debug)]
pub enum Process {
    /// A console program's own instance.
    Sandbox(Sandbox),
    /// An owner shell inside a running instance of an app.
    Shell(shell::ShellProcess),
}

impl Process {
    /// Waits for the end; the exit code when there is one.
    pub async fn wait(&mut self) -> Option<i32> {
        match self {
            Process::Sandbox(sandbox) => match sandbox.wait().await {
                Ok(crate::sandbox::SandboxExit::Exited { code }) => Some(code),
                _ => None,
            },
            Process::Shell(shell) => shell.wait().await,
        }
    }

    /// Kills everything it started.
    pub async fn kill(&mut self) {
        match self {
            Process::Sandbox(sandbox) => {
                if let Err(error) = sandbox.kill().await {
                    tracing::warn!(%error, "could not kill a terminal session's sandbox");
                }
            }
            Process::Shell(shell) => shell.kill().await,
        }
    }
}

/// One running session: a process on a local pseudo-terminal, or a terminal elsewhere.
pub struct Session {
    terminal: Terminal,
    _slot: Option<Slot>,
}

/// Where a session's terminal is.
enum Terminal {
    /// A process here and the master side of its terminal (the process is boxed: a sandbox is
    /// large beside a remote terminal's channels).
    Local { process: Box<Process>, master: pty::Master },
    /// A shell on another machine (the cluster shape's owner shell).
    Remote(remote::Remote),
}

impl Session {
    /// A shell in `target` (`shell::start`).
    pub fn shell(target: &shell::ShellTarget, size: WindowSize) -> std::io::Result<Session> {
        let (process, master) = shell::start(target, size)?;
        Ok(Session { terminal: Terminal::Local { process: Box::new(Process::Shell(process)), master }, _slot: None })
    }

    /// A terminal on another machine, as the runtime that opened it hands it over.
    pub fn remote(remote: remote::Remote) -> Session {
        Session { terminal: Terminal::Remote(remote), _slot: None }
    }
}

/// A counted place among an app's sessions, given back when dropped.
#[derive(Debug)]
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(live: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Slot(live.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A text message from the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Typed text (binary frames carry input too).
    Input(String),
    Resize(WindowSize),
}

/// Parses `{"input":"..."}` or `{"resize":{"cols":C,"rows":R}}`.
pub fn parse_control(text: &str) -> Result<Control, String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("terminal message is not JSON: {e}"))?;
    if let Some(input) = value.get("input").and_then(serde_json::Value::as_str) {
        return Ok(Control::Input(input.to_owned()));
    }
    if let Some(resize) = value.get("resize") {
        let field = |name: &str| resize.get(name).and_then(serde_json::Value::as_u64);
        return match (field("cols"), field("rows")) {
            (Some(cols), Some(rows)) => Ok(Control::Resize(WindowSize::clamped(cols, rows))),
            _ => Err(format!("terminal resize needs whole numbers cols and rows, got {resize}")),
        };
    }
    Err(format!("terminal message {text:?} is neither input nor resize"))
}

/// The initial size from the WebSocket URL's query (`cols=..&rows=..`); 80×24 where missing.
pub fn size_from_query(query: Option<&str>) -> WindowSize {
    let mut cols = 80;
    let mut rows = 24;
    for pair in query.unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value.parse::<u64>()) {
            ("cols", Ok(n)) => cols = n,
            ("rows", Ok(n)) => rows = n,
            _ => {}
        }
    }
    WindowSize::clamped(cols, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<Control, &str>) {
        let got = parse_control(text);
        match (got, expected) {
            (Ok(got), Ok(expected)) => assert_eq!(got, expected, "{text}"),
            (Err(got), Err(part)) => assert!(got.contains(part), "{text}: {got}"),
            (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn parses_input_and_resize_messages() {
        check(r#"{"input":"홍길동\r"}"#, Ok(Control::Input("홍길동\r".into())));
        check(r#"{"resize":{"cols":120,"rows":40}}"#, Ok(Control::Resize(WindowSize { cols: 120, rows: 40 })));
        check(r#"{"resize":{"cols":0,"rows":99999}}"#, Ok(Control::Resize(WindowSize { cols: 1, rows: 1000 })));
        check(r#"{"resize":{"cols":"wide"}}"#, Err("whole numbers"));
        check(r#"{"other":1}"#, Err("neither input nor resize"));
        check("not json", Err("not JSON"));
    }

    #[test]
    fn reads_the_initial_size_from_the_query() {
        assert_eq!(size_from_query(Some("cols=132&rows=43")), WindowSize { cols: 132, rows: 43 });
        assert_eq!(size_from_query(Some("rows=10&x")), WindowSize { cols: 80, rows: 10 });
        assert_eq!(size_from_query(None), WindowSize { cols: 80, rows: 24 });
    }

    #[test]
    fn sessions_beyond_the_limit_get_no_slot_until_one_ends() {
        let live = Arc::new(AtomicUsize::new(0));
        let first = Slot::take(&live, 2).expect("first");
        let _second = Slot::take(&live, 2).expect("second");
        assert!(Slot::take(&live, 2).is_none());
        drop(first);
        assert!(Slot::take(&live, 2).is_some());
    }
}
