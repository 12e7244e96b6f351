//! `relay`: copies bytes between one visitor's WebSocket and one session's terminal until either
//! side ends, the time limit passes or the server shuts down, then kills the instance (or the
//! owner shell). The socket is any byte stream: the gateway's upgraded connection, or the portal's
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

use super::ws::{self, Message, Role};
use super::{parse_control, Control, Session};

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
}

impl Ending {
    /// The JSON text sent to the browser before the close frame.
    pub fn message(&self) -> Option<String> {
        match self {
            Ending::Exited(Some(code)) => Some(format!(r#"{{"exit":{{"code":{code}}}}}"#)),
            Ending::Exited(None) => Some(r#"{"exit":{"code":null}}"#.to_owned()),
            Ending::TimeLimit => Some(r#"{"ended":"time_limit"}"#.to_owned()),
            Ending::Shutdown => Some(r#"{"ended":"shutdown"}"#.to_owned()),
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

/// Runs the session on the upgraded connection `io` and returns how it ended. The sandbox is gone
/// when this returns.
pub async fn relay<IO>(io: IO, session: Session, time_limit: Duration, mut shutdown: watch::Receiver<bool>) -> Ending
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let Session { mut process, master, _slot } = session;
    let master = std::sync::Arc::new(master);
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

    let output_master = master.clone();
    let output_frames = frames_tx.clone();
    let mut output_task = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match output_master.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if output_frames.send(ws::encode(&Message::Binary(buf[..n].to_vec()), None)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });

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
                    Message::Binary(bytes) => master.write_all(&bytes).await,
                    Message::Text(text) => match parse_control(&text) {
                        Ok(Control::Input(input)) => master.write_all(input.as_bytes()).await,
                        Ok(Control::Resize(size)) => master.resize(size),
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
        _ = &mut output_task => {
            // The terminal closed: every process of the program is gone, or its last holder of the
            // terminal is; the exit code comes from bubblewrap.
            Ending::Exited(tokio::time::timeout(Duration::from_secs(2), process.wait()).await.ok().flatten())
        }
        () = tokio::time::sleep(time_limit) => Ending::TimeLimit,
        () = shutdown_requested(&mut shutdown) => Ending::Shutdown,
    };
    output_task.abort();
    process.kill().await;
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
        assert_eq!(error_message("too \"many\""), r#"{"error":"too \"many\""}"#);
    }
}
