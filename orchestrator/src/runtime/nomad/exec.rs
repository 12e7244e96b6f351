//! A client for Nomad's allocation exec WebSocket (`GET /v1/client/allocation/:id/exec`,
//! hashistack.md §8), for the web terminal: run a command in an app's task and stream its
//! standard streams both ways.
//!
//! The wire, as Nomad speaks it:
//! - the upgrade carries the ACL token (`X-Nomad-Token`); `task` and `command` (a URL-encoded,
//!   non-empty JSON array) are query parameters; `tty=true` merges stderr into stdout;
//! - client → server text frames, one field each: `{"stdin":{"data":"<base64>"}}`,
//!   `{"stdin":{"close":true}}`, `{"tty_size":{"height":40,"width":120}}`, `{}` (heartbeat);
//! - server → client: `{"stdout":{"data":..}}`, `{"stderr":{"data":..}}`, `{"stdout":{"close":true}}`,
//!   `{"exited":true,"result":{"exit_code":2}}` (no `exit_code` means 0), then the TCP connection
//!   is dropped without a close handshake;
//! - Nomad upgrades before it authenticates and validates: a bad token, task or command arrives as
//!   `101` then a close frame (1008, or 1011 for an internal error) whose reason is the message.
//!
//! The frame codec (`encode_frame`, `decode_frame`, `accept_key`, `server_events`) is pure; the
//! session is a thin adapter over the upgraded connection reqwest gives (same TLS and token as
//! every other Nomad call), which `ExecSession::split` divides into a reader and a writer for a
//! terminal's two directions (`shell.rs`). Deliberately absent: the browser side and any terminal
//! emulation.

use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::NomadClient;
use super::NomadError;

/// What the command did, as the session reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command exited with this code; the session ends.
    Exited(i64),
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Nomad(#[from] NomadError),
    #[error("nomad refused the exec upgrade: {status} {message}")]
    Refused { status: u16, message: String },
    /// Nomad closed the socket: 1008 for a refused token, task or command, 1011 for its own error.
    #[error("nomad closed the exec session with code {code}: {reason}")]
    Closed { code: u16, reason: String },
    #[error("the exec session broke: {0}")]
    Protocol(String),
    #[error("the exec connection failed: {0}")]
    Io(#[from] std::io::Error),
}

/// One WebSocket frame's kind (RFC 6455 opcodes) and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub opcode: u8,
    pub payload: Vec<u8>,
}

pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// PURE: one final frame. Client frames are masked with `mask` (RFC 6455 §5.3); `None` leaves the
/// payload unmasked, as servers send.
pub fn encode_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len if len < 126 => out.push(mask_bit | len as u8),
        len if len <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, byte)| byte ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// PURE: the first complete frame in `buffer` and the bytes it took, or `None` while incomplete.
/// Fragmented messages are refused: Nomad sends each JSON message in one frame.
pub fn decode_frame(buffer: &[u8]) -> Result<Option<(Frame, usize)>, ExecError> {
    if buffer.len() < 2 {
        return Ok(None);
    }
    if buffer[0] & 0x80 == 0 {
        return Err(ExecError::Protocol("fragmented frames are not expected from nomad".to_owned()));
    }
    let opcode = buffer[0] & 0x0F;
    let masked = buffer[1] & 0x80 != 0;
    let (len, mut at) = match buffer[1] & 0x7F {
        126 if buffer.len() >= 4 => (u64::from(u16::from_be_bytes([buffer[2], buffer[3]])), 4),
        127 if buffer.len() >= 10 => (u64::from_be_bytes(buffer[2..10].try_into().expect("eight bytes")), 10),
        126 | 127 => return Ok(None),
        len => (u64::from(len), 2),
    };
    let len = usize::try_from(len).map_err(|_| ExecError::Protocol(format!("frame length {len} is too large")))?;
    let key = if masked {
        if buffer.len() < at + 4 {
            return Ok(None);
        }
        let key = [buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]];
        at += 4;
        Some(key)
    } else {
        None
    };
    if buffer.len() < at + len {
        return Ok(None);
    }
    let mut payload = buffer[at..at + len].to_vec();
    if let Some(key) = key {
        payload.iter_mut().enumerate().for_each(|(i, byte)| *byte ^= key[i % 4]);
    }
    Ok(Some((Frame { opcode, payload }, at + len)))
}

/// PURE: the `Sec-WebSocket-Accept` a server must answer to `key` (RFC 6455 §4.2.2).
/// Worked example (`accept_key_matches_the_rfc_example`): `dGhlIHNhbXBsZSBub25jZQ==` →
/// `s3pPLMBiTxaQ9kYGzzhZRbK+xOo=`.
pub fn accept_key(key: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha1(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11").as_bytes()))
}

/// SHA-1 (FIPS 180-4), used only for the WebSocket handshake check above; not for security.
fn sha1(message: &[u8]) -> [u8; 20] {
    let mut state: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut data = message.to_vec();
    data.push(0x80);
    while data.len() % 64 != 56 {
        data.push(0);
    }
    data.extend_from_slice(&((message.len() as u64) * 8).to_be_bytes());
    for block in data.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes(word.try_into().expect("four bytes"));
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = state;
        for (i, word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*word);
            (e, d, c, b, a) = (d, c, b.rotate_left(30), a, temp);
        }
        for (slot, value) in state.iter_mut().zip([a, b, c, d, e]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, word) in out.chunks_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// PURE: one server message → what it says. Heartbeats (`{}`) and stream closes say nothing.
pub fn server_events(text: &str) -> Result<Vec<ExecEvent>, ExecError> {
    let message: Value = serde_json::from_str(text).map_err(|e| ExecError::Protocol(format!("exec frame is not JSON: {e}")))?;
    let decode = |field: &Value| -> Result<Option<Vec<u8>>, ExecError> {
        match field.get("data").and_then(Value::as_str) {
            Some(data) => base64::engine::general_purpose::STANDARD
                .decode(data)
                .map(Some)
                .map_err(|e| ExecError::Protocol(format!("exec frame data is not base64: {e}"))),
            None => Ok(None),
        }
    };
    let mut events = Vec::new();
    if let Some(bytes) = message.get("stdout").map(decode).transpose()?.flatten() {
        events.push(ExecEvent::Stdout(bytes));
    }
    if let Some(bytes) = message.get("stderr").map(decode).transpose()?.flatten() {
        events.push(ExecEvent::Stderr(bytes));
    }
    if message.get("exited").and_then(Value::as_bool) == Some(true) {
        // `exit_code` is omitted when it is 0 (Go's omitempty).
        events.push(ExecEvent::Exited(message.pointer("/result/exit_code").and_then(Value::as_i64).unwrap_or(0)));
    }
    Ok(events)
}

/// PURE: the exec URL's query (besides namespace and region): task, tty, and the command as JSON.
pub fn exec_query(task: &str, command: &[String], tty: bool) -> Vec<(&'static str, String)> {
    vec![
        ("task", task.to_owned()),
        ("tty", tty.to_string()),
        ("command", serde_json::to_string(command).expect("a list of strings serialises")),
    ]
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // SAFETY: getrandom writes at most `N` bytes into the buffer it is given.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), N, 0) };
    assert_eq!(filled, N as isize, "the kernel's random source answers");
    bytes
}

/// An open exec session. Read with `next_event`; write with `send_stdin`, `close_stdin`,
/// `resize` and `heartbeat` (send one every 10 s so idle proxies keep the connection). `split`
/// gives the two directions to two tasks, so that a terminal's input never waits on its output.
pub struct ExecSession {
    reader: ExecReader,
    writer: ExecWriter,
}

/// The reading half of an exec session (`ExecSession::split`). It answers Nomad's pings through
/// the writer it shares.
pub struct ExecReader {
    stream: tokio::io::ReadHalf<reqwest::Upgraded>,
    buffer: Vec<u8>,
    pending: std::collections::VecDeque<ExecEvent>,
    ended: bool,
    writer: ExecWriter,
}

/// The writing half of an exec session (`ExecSession::split`); clones write to the same
/// connection, one frame at a time.
#[derive(Clone)]
pub struct ExecWriter {
    stream: std::sync::Arc<tokio::sync::Mutex<tokio::io::WriteHalf<reqwest::Upgraded>>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession").field("ended", &self.reader.ended).finish()
    }
}

impl std::fmt::Debug for ExecReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecReader").field("ended", &self.ended).finish()
    }
}

impl std::fmt::Debug for ExecWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecWriter").finish_non_exhaustive()
    }
}

impl ExecWriter {
    async fn send_frame(&self, opcode: u8, payload: &[u8]) -> Result<(), ExecError> {
        let frame = encode_frame(opcode, payload, Some(random_bytes::<4>()));
        let mut stream = self.stream.lock().await;
        stream.write_all(&frame).await?;
        stream.flush().await?;
        Ok(())
    }

    async fn send_json(&self, message: Value) -> Result<(), ExecError> {
        self.send_frame(TEXT, message.to_string().as_bytes()).await
    }

    pub async fn send_stdin(&self, data: &[u8]) -> Result<(), ExecError> {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        self.send_json(json!({"stdin": {"data": data}})).await
    }

    pub async fn close_stdin(&self) -> Result<(), ExecError> {
        self.send_json(json!({"stdin": {"close": true}})).await
    }

    pub async fn resize(&self, height: u16, width: u16) -> Result<(), ExecError> {
        self.send_json(json!({"tty_size": {"height": height, "width": width}})).await
    }

    pub async fn heartbeat(&self) -> Result<(), ExecError> {
        self.send_json(json!({})).await
    }
}

impl ExecReader {
    /// The next event; `Ok(None)` once the command exited and Nomad dropped the connection.
    /// A close frame from Nomad (a refused token, task or command) is `ExecError::Closed`.
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>, ExecError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                if matches!(event, ExecEvent::Exited(_)) {
                    self.ended = true;
                }
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            if let Some((frame, used)) = decode_frame(&self.buffer)? {
                self.buffer.drain(..used);
                match frame.opcode {
                    TEXT | BINARY => {
                        let text =
                            String::from_utf8(frame.payload).map_err(|_| ExecError::Protocol("exec frame is not UTF-8".to_owned()))?;
                        self.pending.extend(server_events(&text)?);
                    }
                    CLOSE => {
                        let code = frame.payload.get(..2).map_or(1005, |bytes| u16::from_be_bytes([bytes[0], bytes[1]]));
                        let reason = String::from_utf8_lossy(frame.payload.get(2..).unwrap_or_default()).into_owned();
                        self.ended = true;
                        return Err(ExecError::Closed { code, reason });
                    }
                    PING => self.writer.send_frame(PONG, &frame.payload).await?,
                    _ => {}
                }
                continue;
            }
            let mut chunk = [0u8; 8192];
            let n_read = self.stream.read(&mut chunk).await?;
            if n_read == 0 {
                // Dropped without `exited` or a close frame (1006).
                self.ended = true;
                return Err(ExecError::Protocol("nomad dropped the exec connection before the command exited".to_owned()));
            }
            self.buffer.extend_from_slice(&chunk[..n_read]);
        }
    }
}

impl ExecSession {
    fn new(stream: reqwest::Upgraded) -> Self {
        let (read, write) = tokio::io::split(stream);
        let writer = ExecWriter { stream: std::sync::Arc::new(tokio::sync::Mutex::new(write)) };
        let reader = ExecReader { stream: read, buffer: Vec::new(), pending: Default::default(), ended: false, writer: writer.clone() };
        Self { reader, writer }
    }

    /// The two directions apart, for a reading task and a writing one.
    pub fn split(self) -> (ExecReader, ExecWriter) {
        (self.reader, self.writer)
    }

    pub async fn send_stdin(&mut self, data: &[u8]) -> Result<(), ExecError> {
        self.writer.send_stdin(data).await
    }

    pub async fn close_stdin(&mut self) -> Result<(), ExecError> {
        self.writer.close_stdin().await
    }

    pub async fn resize(&mut self, height: u16, width: u16) -> Result<(), ExecError> {
        self.writer.resize(height, width).await
    }

    pub async fn heartbeat(&mut self) -> Result<(), ExecError> {
        self.writer.heartbeat().await
    }

    /// The next event (`ExecReader::next_event`).
    pub async fn next_event(&mut self) -> Result<Option<ExecEvent>, ExecError> {
        self.reader.next_event().await
    }

    /// Reads until the command exits: everything it wrote (stdout and stderr apart) and its exit
    /// code. For one-shot commands; a terminal reads `next_event` itself.
    pub async fn collect(mut self, timeout: Duration) -> Result<(Vec<u8>, Vec<u8>, i64), ExecError> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let event = tokio::time::timeout_at(deadline, self.next_event())
                .await
                .map_err(|_| ExecError::Protocol(format!("the command did not exit within {timeout:?}")))??;
            match event {
                Some(ExecEvent::Stdout(bytes)) => stdout.extend(bytes),
                Some(ExecEvent::Stderr(bytes)) => stderr.extend(bytes),
                Some(ExecEvent::Exited(code)) => return Ok((stdout, stderr, code)),
                None => return Err(ExecError::Protocol("the session ended without an exit code".to_owned())),
            }
        }
    }
}

impl NomadClient {
    /// Opens an exec session in the allocation's `task` running `command` (a non-empty argv).
    /// The upgrade succeeds before Nomad checks anything: refusals arrive on the first read, as
    /// `ExecError::Closed`.
    pub async fn exec(&self, alloc_id: &str, task: &str, command: &[String], tty: bool) -> Result<ExecSession, ExecError> {
        if command.is_empty() {
            return Err(ExecError::Protocol("the command is empty".to_owned()));
        }
        let key = base64::engine::general_purpose::STANDARD.encode(random_bytes::<16>());
        let path = format!("/v1/client/allocation/{}/exec", crate::model::percent_encode(alloc_id));
        let headers = [
            ("Connection", "Upgrade".to_owned()),
            ("Upgrade", "websocket".to_owned()),
            ("Sec-WebSocket-Version", "13".to_owned()),
            ("Sec-WebSocket-Key", key.clone()),
        ];
        let response = self.upgrade_request(&path, &exec_query(task, command, tty), &headers).await?;
        let status = response.status().as_u16();
        if status != 101 {
            let message = response.text().await.unwrap_or_default().trim().to_owned();
            return Err(ExecError::Refused { status, message });
        }
        let accept = response.headers().get("Sec-WebSocket-Accept").and_then(|value| value.to_str().ok()).unwrap_or_default();
        if accept != accept_key(&key) {
            return Err(ExecError::Protocol(format!("the server answered the upgrade with a wrong accept key {accept:?}")));
        }
        let stream = response.upgrade().await.map_err(|e| ExecError::Protocol(format!("upgrade failed: {e}")))?;
        Ok(ExecSession::new(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        // FIPS 180-4's two-block example.
        let digest = sha1(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq");
        assert_eq!(hex::encode(digest), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    }

    #[test]
    fn frames_round_trip_at_every_length_form_masked_or_not() {
        for len in [0usize, 5, 125, 126, 1000, 65535, 65536, 70000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut wire = encode_frame(TEXT, &payload, mask);
                wire.extend_from_slice(b"next");
                let (frame, used) = decode_frame(&wire).unwrap().expect("complete");
                assert_eq!((frame.opcode, frame.payload.len(), used), (TEXT, len, wire.len() - 4));
                assert_eq!(frame.payload, payload);
                assert!(decode_frame(&wire[..used - 1]).unwrap().is_none(), "a cut frame is incomplete, len {len}");
            }
        }
    }

    #[test]
    fn reads_the_recorded_server_frames() {
        let check = |text: &str, expected: Vec<ExecEvent>| assert_eq!(server_events(text).unwrap(), expected, "{text}");
        check(r#"{"stdout":{"data":"dG90YWwgOAo="}}"#, vec![ExecEvent::Stdout(b"total 8\n".to_vec())]);
        check(r#"{"stderr":{"data":"b29wcw=="}}"#, vec![ExecEvent::Stderr(b"oops".to_vec())]);
        check(r#"{"stdout":{"close":true}}"#, vec![]);
        check(r#"{"exited":true,"result":{"exit_code":2}}"#, vec![ExecEvent::Exited(2)]);
        check(r#"{"exited":true,"result":{}}"#, vec![ExecEvent::Exited(0)]);
        check("{}", vec![]);
        assert!(server_events(r#"{"stdout":{"data":"%%%"}}"#).is_err());
    }

    #[test]
    fn the_command_travels_as_a_json_array() {
        let query = exec_query("app", &["/bin/sh".to_owned(), "-c".to_owned(), "echo hi".to_owned()], true);
        assert_eq!(query[2], ("command", r#"["/bin/sh","-c","echo hi"]"#.to_owned()));
        assert_eq!(query[1], ("tty", "true".to_owned()));
    }
}
