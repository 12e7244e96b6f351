//! The owner shell in the cluster shape: `NomadRuntime::open_shell` runs `/bin/sh -i` on a
//! terminal in a running instance of an app (Nomad's allocation exec, `tty=true`, in the app's
//! task) and hands it over as a `terminal::remote::Remote`, which `terminal::session::relay`
//! connects to the browser as it does a local shell.
//!
//! Two pumps join the exec session to the remote's channels: the input pump turns typed bytes into
//! `stdin` frames and resizes into `tty_size` frames, sends a heartbeat every 10 s, and closes
//! `stdin` when its channel closes (the shell exits at the end of its input); the output pump
//! turns `stdout`/`stderr` into bytes and `exited` into the end. A refusal (Nomad upgrades before
//! it checks the token, task or command, then sends a close frame) ends the session with Nomad's
//! reason.
//!
//! It deliberately does not pick among instances beyond "the first ready one", wake an app at
//! zero (open the app first), or record anything typed. A frozen app is thawed, as a request
//! would thaw it.

use std::time::Duration;

use tokio::sync::mpsc;

use super::exec::{ExecError, ExecEvent};
use super::{render, NomadError, NomadRuntime};
use crate::terminal::remote::{Pumps, Remote, RemoteInput, RemoteOutput};
use crate::terminal::WindowSize;

/// The command an owner shell runs.
pub const SHELL_COMMAND: [&str; 2] = ["/bin/sh", "-i"];

/// How often the input pump sends a heartbeat, so idle proxies keep the connection.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// An owner shell on its way to the browser.
#[derive(Debug)]
pub struct ClusterShell {
    pub remote: Remote,
    /// The revision the app's job runs (its `slipway.revision` meta), when it says.
    pub revision: Option<i32>,
    /// The instance the shell runs in.
    pub instance: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("app {app:?} has no running instance")]
    NotRunning { app: String },
    #[error(transparent)]
    Nomad(#[from] NomadError),
    #[error(transparent)]
    Exec(#[from] ExecError),
}

/// PURE: what the browser is told when the session broke on Nomad's side.
pub fn failure_reason(error: &ExecError) -> String {
    match error {
        ExecError::Closed { reason, .. } if !reason.is_empty() => format!("the cluster ended the shell: {reason}"),
        other => format!("the cluster ended the shell: {other}"),
    }
}

impl NomadRuntime {
    /// Opens `/bin/sh -i` on a terminal of `size` in the first ready instance of `app`; a frozen
    /// app is thawed first.
    pub async fn open_shell(&self, app: &str, size: WindowSize) -> Result<ClusterShell, ShellError> {
        let not_running = || ShellError::NotRunning { app: app.to_owned() };
        let job = self.client.job(app).await?.ok_or_else(not_running)?;
        let revision = job.pointer("/Meta/slipway.revision").and_then(serde_json::Value::as_str).and_then(|text| text.parse().ok());
        let (instances, _) = self.instances(app).await?;
        let instance = instances.into_iter().find(super::Instance::is_ready).ok_or_else(not_running)?;
        if self.is_frozen(app) {
            // As in the embedded shape: a shell in a stopped process would be no use.
            self.thaw(app).await?;
        }
        let command: Vec<String> = SHELL_COMMAND.iter().map(|word| (*word).to_owned()).collect();
        let session = self.client.exec(&instance.alloc_id, render::TASK, &command, true).await?;
        let (mut reader, writer) = session.split();
        writer.resize(size.rows, size.cols).await?;

        let (input_tx, mut input_rx) = mpsc::channel::<RemoteInput>(64);
        let (output_tx, output_rx) = mpsc::channel::<RemoteOutput>(64);
        let input_pump = tokio::spawn(async move {
            let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
            loop {
                let sent = tokio::select! {
                    input = input_rx.recv() => match input {
                        Some(RemoteInput::Bytes(bytes)) => writer.send_stdin(&bytes).await,
                        Some(RemoteInput::Resize(size)) => writer.resize(size.rows, size.cols).await,
                        None => {
                            let _ = writer.close_stdin().await;
                            return;
                        }
                    },
                    _ = heartbeat.tick() => writer.heartbeat().await,
                };
                if let Err(error) = sent {
                    tracing::debug!(%error, "an exec session's input ended");
                    return;
                }
            }
        });
        let output_pump = tokio::spawn(async move {
            let end = loop {
                match reader.next_event().await {
                    Ok(Some(ExecEvent::Stdout(bytes) | ExecEvent::Stderr(bytes))) => {
                        if output_tx.send(RemoteOutput::Bytes(bytes)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Some(ExecEvent::Exited(code))) => break RemoteOutput::Exited(i32::try_from(code).ok()),
                    Ok(None) => break RemoteOutput::Exited(None),
                    Err(error) => break RemoteOutput::Failed(failure_reason(&error)),
                }
            };
            let _ = output_tx.send(end).await;
        });
        let remote = Remote { input: input_tx, output: output_rx, pumps: Pumps::new(input_pump, output_pump) };
        Ok(ClusterShell { remote, revision, instance: instance.alloc_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_browser_is_told_nomads_reason_for_ending_a_shell() {
        let check = |error: ExecError, expected: &str| assert_eq!(failure_reason(&error), expected);
        check(ExecError::Closed { code: 1008, reason: "task is not running".into() }, "the cluster ended the shell: task is not running");
        check(
            ExecError::Closed { code: 1011, reason: String::new() },
            "the cluster ended the shell: nomad closed the exec session with code 1011: ",
        );
        check(
            ExecError::Protocol("nomad dropped the exec connection before the command exited".into()),
            "the cluster ended the shell: the exec session broke: nomad dropped the exec connection before the command exited",
        );
    }
}
