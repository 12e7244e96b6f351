//! `relay`: copies bytes between one visitor's WebSocket and one session's terminal until either
//! side ends, the time limit passes or the server shuts down, then kills the instance (or the
//! owner shell). The terminal is a local pseudo-terminal, or a `Remote` one (the cluster shape's
//! owner shell), whose input and output travel as channel messages instead. The socket is any byte stream: the gateway's upgraded connection, or the portal's
//! request payload and streamed response joined into one (`tokio::io::join`).
//!
//! Three parts run at once so that neither direction can block the other: a writer task owns the
//! socket's write half (output frames, pongs, the final messages), an output task reads the
//! terminal, and the loop here reads the socket. A program that never reads its input cannot stop
//! its output from reaching the visitor, and the reverse.
//!
//! It deliberately does not buffer output for a visitor who reconnects: a new socket is a new
//! instance.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::remote::{Remote, RemoteInput, RemoteOutput};
use super::ws::{self, Message, Role};
use super::{parse_control, Control, Session, Terminal, WindowSize};

/// Largest message accepted from a browser; typed and pasted text is far smaller.
const MAX_MESSAGE: usize = 64 * 1024;

/// How the session ended, as the visitor is told in the last text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The program ended on its own; its exit code when known.
    Exited(Option<i32>),
    TimeLimit,
    /// The visitor closed the socket (nothing is sent back).
    VisitorLeft,
    /// The gateway is stopping.
    Shutdown,
    /// A remote terminal could not go on (refused or cut off); why, in words.
    Failed(String),
}

impl Ending {
    /// The JSON text sent to the browser before the close frame.
    pub fn message(&self) -> Option<String> {
        match self {
            Ending::Exited(Some(code)) => Some(format!(r#"{{"exit":{{"code":{code}}}}}"#)),
            Ending::Exited(None) => Some(r#"{"exit":{"code":null}}"#.to_owned()),
            Ending::TimeLimit => Some(r#"{"ended":"time_limit"}"#.to_owned()),
            Ending::Shutdown => Some(r#"{"ended":"shutdown"}"#.to_owned()),
            Ending::Failed(reason) => Some(error_message(reason)),
            Ending::VisitorLeft => None,
        }
    }
}

/// A JSON text message telling the browser why no session started.
pub fn error_message(reason: &str) -> String {
    serde_json::json!({ "error": reason }).to_string()
}

/// Sends `text` and a close frame on a socket no session was started for.
pub async fn refuse<IO: AsyncWrite + Unpin>(io: &mut IO, text: &str) {
    let mut bytes = ws::encode(&Message::Text(text.to_owned()), None);
    bytes.extend(ws::encode(&Message::Close(Some(1011)), None));
    let _ = io.write_all(&bytes).await;
    let _ = io.shutdown().await;
}

/// Where the browser's input goes.
enum Sink {
    Pty(std::sync::Arc<super::pty::Master>),
    Remote(mpsc::Sender<RemoteInput>),
}

impl Sink {
    async fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Pty(master) => master.write_all(bytes).await,
            Sink::Remote(input) => input.send(RemoteInput::Bytes(bytes.to_vec())).await.map_err(|_| gone()),
        }
    }

    async fn resize(&self, size: WindowSize) -> std::io::Result<()> {
        match self {
            Sink::Pty(master) => master.resize(size),
            Sink::Remote(input) => input.send(RemoteInput::Resize(size)).await.map_err(|_| gone()),
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the remote terminal ended")
}

/// Runs the session on the upgraded connection `io` and returns how it ended. The sandbox (or the
/// shell, here or remote) is gone when this returns.
pub async fn relay<IO>(io: IO, session: Session, time_limit: Duration, mut shutdown: watch::Receiver<bool>) -> Ending
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let Session { terminal, _slot } = session;
    let (mut reader, mut writer) = tokio::io::split(io);
    let (frames_tx, mut frames_rx) = mpsc::channel::<Vec<u8>>(64);
    let writer_task = tokio::spawn(async move {
        while let Some(frame) = frames_rx.recv().await {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
        let _ = writer.shutdown().await;
    });

    // The output task forwards what the terminal writes; a remote terminal also says how it ended.
    let output_frames = frames_tx.clone();
    let (sink, mut output_task, mut process, pumps) = match terminal {
        Terminal::Local { process, master } => {
            let master = std::sync::Arc::new(master);
            let output_master = master.clone();
            let task = tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match output_master.read(&mut buf).await {
                        Ok(0) | Err(_) => return None,
                        Ok(n) => {
                            if output_frames.send(ws::encode(&Message::Binary(buf[..n].to_vec()), None)).await.is_err() {
                                return None;
                            }
                        }
                    }
                }
            });
            (Sink::Pty(master), task, Some(process), None)
        }
        Terminal::Remote(Remote { input, mut output, pumps }) => {
            let task = tokio::spawn(async move {
                while let Some(arrived) = output.recv().await {
                    match arrived {
                        RemoteOutput::Bytes(bytes) => {
                            if output_frames.send(ws::encode(&Message::Binary(bytes), None)).await.is_err() {
                                return None;
                            }
                        }
                        RemoteOutput::Exited(code) => return Some(Ending::Exited(code)),
                        RemoteOutput::Failed(reason) => return Some(Ending::Failed(reason)),
                    }
                }
                Some(Ending::Exited(None))
            });
            (Sink::Remote(input), task, None, Some(pumps))
        }
    };

    let input = async {
        let mut decoder = ws::Decoder::new(Role::Server, MAX_MESSAGE);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            decoder.push(&buf[..n]);
            loop {
                let message = match decoder.next() {
                    Ok(Some(message)) => message,
                    Ok(None) => break,
                    Err(error) => {
                        tracing::debug!(%error, "closing a terminal socket");
                        let _ = frames_tx.send(ws::encode(&Message::Close(Some(error.code())), None)).await;
                        return;
                    }
                };
                let written = match message {
                    Message::Binary(bytes) => sink.write(&bytes).await,
                    Message::Text(text) => match parse_control(&text) {
                        Ok(Control::Input(input)) => sink.write(input.as_bytes()).await,
                        Ok(Control::Resize(size)) => sink.resize(size).await,
                        Err(reason) => {
                            tracing::debug!(%reason, "ignoring a terminal message");
                            Ok(())
                        }
                    },
                    Message::Ping(payload) => {
                        let _ = frames_tx.send(ws::encode(&Message::Pong(payload), None)).await;
                        Ok(())
                    }
                    Message::Pong(_) => Ok(()),
                    Message::Close(_) => return,
                };
                if written.is_err() {
                    return;
                }
            }
        }
    };

    let ending = tokio::select! {
        () = input => Ending::VisitorLeft,
        said = &mut output_task => match (said, process.as_mut()) {
            (Ok(Some(ending)), _) => ending,
            // The terminal closed: every process of the program is gone, or its last holder of the
            // terminal is; the exit code comes from bubblewrap.
            (_, Some(process)) => Ending::Exited(tokio::time::timeout(Duration::from_secs(2), process.wait()).await.ok().flatten()),
            (_, None) => Ending::Exited(None),
        },
        () = tokio::time::sleep(time_limit) => Ending::TimeLimit,
        () = shutdown_requested(&mut shutdown) => Ending::Shutdown,
    };
    output_task.abort();
    if let Some(process) = process.as_mut() {
        process.kill().await;
    }
    if let (Some(pumps), Sink::Remote(input)) = (pumps, sink) {
        pumps.end(input).await;
    }
    if let Some(text) = ending.message() {
        let _ = frames_tx.send(ws::encode(&Message::Text(text), None)).await;
        let _ = frames_tx.send(ws::encode(&Message::Close(Some(1000)), None)).await;
    }
    drop(frames_tx);
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    ending
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ending_tells_the_visitor_what_happened() {
        assert_eq!(Ending::Exited(Some(3)).message().as_deref(), Some(r#"{"exit":{"code":3}}"#));
        assert_eq!(Ending::TimeLimit.message().as_deref(), Some(r#"{"ended":"time_limit"}"#));
        assert_eq!(Ending::VisitorLeft.message(), None);
        assert_eq!(Ending::Failed("task is not running".into()).message().as_deref(), Some(r#"{"error":"task is not running"}"#));
        assert_eq!(error_message("too \"many\""), r#"{"error":"too \"many\""}"#);
    }

    /// A remote terminal driven by hand: the browser's input and resizes arrive as messages, the
    /// terminal's output and exit code reach the browser, and the input channel closes at the end.
    #[tokio::test]
    async fn relays_a_remote_terminal_both_ways_and_tells_how_it_ended() {
        let (input_tx, mut input_rx) = mpsc::channel(8);
        let (output_tx, output_rx) = mpsc::channel(8);
        // The pump hands on what it receives and says when its channel closed.
        let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
        let input_pump = tokio::spawn(async move {
            while let Some(input) = input_rx.recv().await {
                seen_tx.send(input).expect("the test reads");
            }
            let _ = closed_tx.send(());
        });
        let output_pump = tokio::spawn(async {});
        let remote = Remote { input: input_tx, output: output_rx, pumps: super::super::remote::Pumps::new(input_pump, output_pump) };
        let (browser, server) = tokio::io::duplex(64 * 1024);
        let (_stop, shutdown) = watch::channel(false);
        let relay = tokio::spawn(relay(server, Session::remote(remote), Duration::from_secs(60), shutdown));

        let (mut from_server, mut to_server) = tokio::io::split(browser);
        let mask = Some([1, 2, 3, 4]);
        to_server.write_all(&ws::encode(&Message::Text(r#"{"input":"ls\r"}"#.to_owned()), mask)).await.unwrap();
        to_server.write_all(&ws::encode(&Message::Text(r#"{"resize":{"cols":90,"rows":20}}"#.to_owned()), mask)).await.unwrap();
        to_server.write_all(&ws::encode(&Message::Binary("한".as_bytes().to_vec()), mask)).await.unwrap();
        let mut received = Vec::new();
        while received.len() < 3 {
            received.push(seen_rx.recv().await.expect("input arrives"));
        }
        output_tx.send(RemoteOutput::Bytes(b"app.py\r\n".to_vec())).await.unwrap();
        output_tx.send(RemoteOutput::Exited(Some(3))).await.unwrap();

        assert_eq!(relay.await.unwrap(), Ending::Exited(Some(3)));
        closed_rx.await.expect("the input channel closed when the session ended");
        assert_eq!(
            received,
            vec![
                RemoteInput::Bytes(b"ls\r".to_vec()),
                RemoteInput::Resize(WindowSize { cols: 90, rows: 20 }),
                RemoteInput::Bytes("한".as_bytes().to_vec()),
            ]
        );
        let mut wire = Vec::new();
        from_server.read_to_end(&mut wire).await.unwrap();
        let mut decoder = ws::Decoder::new(Role::Client, MAX_MESSAGE);
        decoder.push(&wire);
        let mut messages = Vec::new();
        while let Some(message) = decoder.next().unwrap() {
            messages.push(message);
        }
        assert_eq!(
            messages,
            vec![Message::Binary(b"app.py\r\n".to_vec()), Message::Text(r#"{"exit":{"code":3}}"#.to_owned()), Message::Close(Some(1000)),]
        );
    }
}
