//! The owner shell: a shell inside a running instance of an app, on a pseudo-terminal, for the
//! project's owners (the portal decides who; this module only runs it).
//!
//! The shell enters the instance's sandbox rather than starting a new one: util-linux `nsenter`
//! joins the namespaces of the sandbox's init (`--target ns_pid`: mount, UTS, IPC, network, pid,
//! and the user namespace where bubblewrap made one), takes its root, drops to
//! the app's uid and gid, and forks so the shell is inside the pid namespace too; the shell starts in `/app`. Before `nsenter`
//! runs, the spawned child writes itself into the instance's cgroup (so the shell counts against
//! the app's memory, cpu and process limits and dies with the instance), sets `no_new_privs`, and
//! makes the terminal its controlling terminal in a session of its own. The environment is only
//! what `shell_env` lists.
//!
//! Ending a shell hangs up its terminal and kills every process left in its session.
//!
//! It deliberately does not record keystrokes or output; the portal records who opened which
//! app's shell and when.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::Stdio;

use super::pty;
use super::WindowSize;
use crate::sandbox::format_pid;

/// The `nsenter` program (util-linux, present on every Debian system).
pub const NSENTER: &str = "/usr/bin/nsenter";

/// A running instance a shell can enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellTarget {
    pub app: String,
    pub revision: i32,
    /// Host pid of the sandbox's init (inside all its namespaces).
    pub ns_pid: u32,
    pub uid: u32,
    pub gid: u32,
    /// The instance's `cgroup.procs` files; empty without cgroups.
    pub procs_files: Vec<PathBuf>,
    /// Whether the sandbox has a user namespace of its own (bubblewrap's user-namespace mode).
    pub user_namespace: bool,
}

/// The arguments to `nsenter` for `target` (without the program itself). Pure.
pub fn nsenter_argv(target: &ShellTarget) -> Vec<String> {
    let mut argv: Vec<String> =
        ["--target", &target.ns_pid.to_string(), "--mount", "--uts", "--ipc", "--net", "--pid"].iter().map(|s| s.to_string()).collect();
    if target.user_namespace {
        argv.push("--user".to_owned());
    }
    argv.extend([
        format!("--setuid={}", target.uid),
        format!("--setgid={}", target.gid),
        // The target's root; a working directory given to nsenter would be looked up on the
        // host, so the shell changes into /app itself.
        "--root".to_owned(),
        "--".to_owned(),
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        "cd /app && exec /bin/sh -i".to_owned(),
    ]);
    argv
}

/// The shell's whole environment.
pub fn shell_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HOME", "/tmp"),
        ("PATH", "/app/.venv/bin:/app/node_modules/.bin:/usr/local/bin:/usr/bin:/bin"),
        ("LANG", "C.UTF-8"),
        ("LC_ALL", "C.UTF-8"),
        ("TERM", "xterm-256color"),
        ("PS1", "$ "),
    ]
}

/// A shell process: `nsenter` (the session leader) and what it forked.
#[derive(Debug)]
pub struct ShellProcess {
    child: tokio::process::Child,
    session: i32,
}

impl ShellProcess {
    /// Waits for `nsenter` (which waits for the shell) and gives its exit code.
    pub async fn wait(&mut self) -> Option<i32> {
        self.child.wait().await.ok().and_then(|status| status.code())
    }

    /// Kills every process of the shell's session (also ones started in the background).
    pub async fn kill(&mut self) {
        kill_session(self.session);
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        // Processes that were still forking a moment ago.
        kill_session(self.session);
    }
}

/// SIGKILL to every process whose session id is `session`, found through `/proc`.
fn kill_session(session: i32) {
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if session_of(&stat) == Some(session) {
            // SAFETY: kill with a pid and a signal number.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

/// The session id (field 6) of a `/proc/PID/stat` line; the command (field 2) may hold spaces
/// and parentheses, so fields are counted after its last `)`.
fn session_of(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(3)?.parse().ok()
}

/// Starts a shell in `target` on a new terminal of `size`; gives the process and the master.
pub fn start(target: &ShellTarget, size: WindowSize) -> io::Result<(ShellProcess, pty::Master)> {
    let pty = pty::open(size)?;
    let procs_files: Vec<std::fs::File> =
        target.procs_files.iter().map(|path| std::fs::OpenOptions::new().write(true).open(path)).collect::<io::Result<_>>()?;
    let procs_raw: Vec<i32> = procs_files.iter().map(AsRawFd::as_raw_fd).collect();
    let stdio = |fd: &OwnedFd| fd.try_clone().map(Stdio::from);
    let mut command = tokio::process::Command::new(NSENTER);
    command
        .args(nsenter_argv(target))
        .env_clear()
        .envs(shell_env())
        .current_dir("/")
        .stdin(stdio(&pty.slave)?)
        .stdout(stdio(&pty.slave)?)
        .stderr(stdio(&pty.slave)?)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only makes async-signal-safe
    // system calls (setsid, ioctl, prctl, getpid, write) on memory allocated before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            let mut buf = [0u8; 16];
            let len = format_pid(libc::getpid() as u32, &mut buf);
            for &fd in &procs_raw {
                if libc::write(fd, buf.as_ptr().cast(), len) != len as isize {
                    return Err(io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    let session = child.id().map_or(0, |pid| pid as i32);
    drop(procs_files);
    drop(pty.slave);
    let master = pty::Master::new(pty.master)?;
    Ok((ShellProcess { child, session }, master))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(user_namespace: bool) -> ShellTarget {
        ShellTarget { app: "quiz".into(), revision: 3, ns_pid: 4242, uid: 20001, gid: 20001, procs_files: Vec::new(), user_namespace }
    }

    #[test]
    fn nsenter_joins_every_namespace_of_the_instance_and_drops_to_the_app_uid() {
        let argv = nsenter_argv(&target(true));
        assert_eq!(
            argv.join(" "),
            "--target 4242 --mount --uts --ipc --net --pid --user --setuid=20001 --setgid=20001 --root -- /bin/sh -c cd /app && exec /bin/sh -i"
        );
        assert!(!nsenter_argv(&target(false)).contains(&"--user".to_owned()));
    }

    #[test]
    fn session_ids_are_read_after_the_command_name() {
        assert_eq!(session_of("123 (sh) S 1 123 77 34816 123 4194560"), Some(77));
        assert_eq!(session_of("9 (a) b) c) R 1 9 55 0"), Some(55));
        assert_eq!(session_of("garbage"), None);
    }
}
