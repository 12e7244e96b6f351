//! A terminal that runs on another machine: an owner shell in the cluster shape, where the shell
//! runs in an instance on a cluster node and its bytes come and go over the cluster's API
//! (`NomadRuntime::open_shell`). `session::relay` drives it as it drives a local pseudo-terminal:
//! typed input and resizes go in through `input`, output and the end come out through `output`.
//!
//! ```text
//!   relay ──RemoteInput::{Bytes, Resize}──▶ input pump ──▶ the cluster's API ──▶ shell (its tty)
//!   relay ◀──RemoteOutput::{Bytes, Exited, Failed}── output pump ◀── the cluster's API
//! ```
//!
//! It deliberately knows nothing of the cluster's wire: the runtime that opened the session
//! spawned both pumps and hands them over here.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::pty::WindowSize;

/// What goes to the remote terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteInput {
    /// Typed (or pasted) bytes.
    Bytes(Vec<u8>),
    Resize(WindowSize),
}

/// What comes from the remote terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteOutput {
    /// What the shell wrote to its terminal.
    Bytes(Vec<u8>),
    /// The shell exited with this code; nothing follows.
    Exited(Option<i32>),
    /// The session could not go on (refused or cut off), with why in words; nothing follows.
    Failed(String),
}

/// A running remote terminal: two channels and the tasks that pump them.
#[derive(Debug)]
pub struct Remote {
    pub input: mpsc::Sender<RemoteInput>,
    pub output: mpsc::Receiver<RemoteOutput>,
    pub pumps: Pumps,
}

/// The two tasks behind a `Remote`'s channels. `end` lets the input pump tell the remote side
/// that input ended; dropping them without `end` stops both at once.
#[derive(Debug)]
pub struct Pumps {
    input: Option<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
}

impl Pumps {
    /// `input` must end after its channel closes (having told the remote side), `output` feeds
    /// the output channel.
    pub fn new(input: JoinHandle<()>, output: JoinHandle<()>) -> Self {
        Self { input: Some(input), output: Some(output) }
    }

    /// Ends the session: `input` (the `Remote`'s sender) is dropped so its channel closes, the
    /// input pump gets two seconds to tell the remote side (a shell ends at the end of its
    /// input), then both pumps are stopped.
    pub async fn end(mut self, input: mpsc::Sender<RemoteInput>) {
        drop(input);
        if let Some(pump) = self.input.take() {
            let abort = pump.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), pump).await.is_err() {
                abort.abort();
            }
        }
    }
}

impl Drop for Pumps {
    fn drop(&mut self) {
        for pump in [self.input.take(), self.output.take()].into_iter().flatten() {
            pump.abort();
        }
    }
}
