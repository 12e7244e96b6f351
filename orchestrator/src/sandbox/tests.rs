//! Tests against the real kernel: bubblewrap, cgroups, namespaces.
//!
//! They need root, bubblewrap and cgroups with the memory and pids controllers. On
//! a host without them each test prints why and returns early, so that `cargo
//! test` stays usable on a laptop or in an unprivileged CI container; set
//! `SLIPWAY_REQUIRE_SANDBOX_TESTS=1` to turn that into a failure instead (the
//! development machine and any CI job meant to cover the sandbox should). Network
//! traffic stays on loopback: the host's own 127.0.0.1 and the sandboxes' private
//! loopbacks. This file deliberately does not test cgroup v2 for real (the
//! development machine has v1); `cgroup.rs` tests v2 against a fake directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::*;

/// A uid and gid no account on the host has, distinct so that swaps show.
const APP_UID: u32 = 20001;
const APP_GID: u32 = 20002;

fn host() -> Option<&'static HostSupport> {
    static HOST: OnceLock<Option<HostSupport>> = OnceLock::new();
    HOST.get_or_init(|| {
        let host = probe();
        let mut problems = Vec::new();
        if !host.is_root {
            problems.push("not running as root");
        }
        if host.bwrap.is_none() {
            problems.push("bwrap is not installed");
        }
        if host.identity_switch().is_none() {
            problems.push("no way to switch to an unprivileged uid");
        }
        if !host.cgroup.has_memory() || !host.cgroup.has_pids() {
            problems.push("no memory and pids cgroup controllers");
        }
        if problems.is_empty() {
            return Some(host);
        }
        let reason = problems.join(", ");
        if std::env::var_os("SLIPWAY_REQUIRE_SANDBOX_TESTS").is_some() {
            panic!("sandbox tests are required but this host cannot run them: {reason}");
        }
        eprintln!("skipping real sandbox tests: {reason}");
        None
    })
    .as_ref()
}

/// Returns the probed host or ends the test early (see the module documentation).
macro_rules! require_host {
    () => {
        match host() {
            Some(host) => host,
            None => return,
        }
    };
}

fn unique(label: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!("test-{label}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// An app directory the sandbox uid can read, whatever the umask.
fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("create an app dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod app dir");
    for (name, contents) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write app file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod app file");
    }
    dir
}

fn spec(label: &str, app: &Path, argv: &[&str]) -> SandboxSpec {
    SandboxSpec {
        name: unique(label),
        app_dir: app.to_path_buf(),
        app_writable: false,
        data_dir: None,
        extra_binds: vec![],
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        workdir: "/app".into(),
        limits: Limits { memory_bytes: 256 << 20, cpu_millis: 1000, max_pids: 64, timeout: None },
        network: Network::LoopbackOnly,
        uid: APP_UID,
        gid: APP_GID,
    }
}

/// Fails a test that hangs instead of letting the whole suite stall.
async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut).await.expect("the test step finished in time")
}

/// Runs a sandbox to completion and returns how it ended and what it printed.
async fn run(spec: &SandboxSpec, host: &HostSupport) -> (SandboxExit, String, String) {
    let mut sandbox = Sandbox::spawn(spec, host).await.expect("spawn the sandbox");
    let mut stdout = sandbox.take_stdout().expect("stdout is piped");
    let mut stderr = sandbox.take_stderr().expect("stderr is piped");
    let out = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s).await;
        s
    });
    let err = tokio::spawn(async move {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s).await;
        s
    });
    let exit = sandbox.wait().await.expect("wait for the sandbox");
    (exit, out.await.expect("stdout reader"), err.await.expect("stderr reader"))
}

/// Reads `n` lines from a sandbox's stdout, leaving the rest of the stream.
async fn first_lines(sandbox: &mut Sandbox, n: usize) -> (Vec<String>, BufReader<tokio::process::ChildStdout>) {
    let mut reader = BufReader::new(sandbox.take_stdout().expect("stdout is piped"));
    let mut lines = Vec::new();
    for _ in 0..n {
        let mut line = String::new();
        reader.read_line(&mut line).await.expect("read a line");
        lines.push(line.trim_end().to_string());
    }
    (lines, reader)
}

/// A loopback port that nothing on the host listens on right now.
fn free_host_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn http_get(mut stream: TcpStream, path: &str) -> String {
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    write!(stream, "GET {path} HTTP/1.0\r\nHost: app\r\n\r\n").expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    response
}

/// Connects into the sandbox's namespace until its server accepts.
async fn connect_when_ready(netns: &Netns, port: u16) -> TcpStream {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if let Ok(stream) = netns.connect(addr) {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the server in the sandbox never accepted on port {port}");
}

fn http_server_argv(port: u16) -> Vec<String> {
    ["python3", "-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory", "/app"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn process_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[tokio::test]
async fn an_app_cannot_read_another_apps_files_or_host_directories_nor_write_the_system() {
    let host = require_host!();
    let b_dir = app_dir(&[("secret", "b-secret-value\n")]);
    let a_dir = app_dir(&[]);
    let b_secret = b_dir.path().join("secret");
    // The paths exist and are readable on the host, so a failure inside is the
    // sandbox's doing and not a missing file.
    assert_eq!(std::fs::read_to_string(&b_secret).expect("host reads B's secret"), "b-secret-value\n");
    assert!(Path::new("/work").is_dir() && Path::new("/root").is_dir());

    let mut b = Sandbox::spawn(&spec("iso-b", b_dir.path(), &["sleep", "30"]), host).await.expect("spawn B");
    let script = format!(
        r#"for t in "cat {secret}" "ls {bdir}" "ls /work" "ls /root" "ls /var/lib/postgresql" "ls /home" "ls /run" "ls /sys" "cat /etc/shadow" "touch /usr/x" "touch /etc/x" "touch /app/x"; do
             if $t >/dev/null 2>&1; then echo "ALLOWED: $t"; else echo "denied: $t"; fi
           done
           echo "visible processes: $(ls -d /proc/[0-9]* | wc -l)""#,
        secret = b_secret.display(),
        bdir = b_dir.path().display()
    );
    let (exit, stdout, stderr) = within(20, run(&spec("iso-a", a_dir.path(), &["/bin/sh", "-c", &script]), host)).await;
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(!stdout.contains("ALLOWED"), "{stdout}");
    assert!(!stdout.contains("b-secret-value"), "{stdout}");
    assert_eq!(stdout.matches("denied: ").count(), 12, "{stdout}");
    // Its own pid namespace: init, the shell, the command substitution's subshell,
    // ls and wc; none of the host's (or B's) processes.
    let visible: usize = stdout.lines().last().and_then(|l| l.rsplit(' ').next()).and_then(|n| n.parse().ok()).expect("count");
    assert!(visible <= 5, "saw {visible} processes: {stdout}");
    b.kill().await.expect("kill B");
}

#[tokio::test]
async fn an_app_cannot_connect_to_postgres_redis_or_any_host_loopback_server() {
    let host = require_host!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a host loopback listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    // The listener really is reachable from the host itself.
    drop(TcpStream::connect(("127.0.0.1", port)).expect("host connects to its own listener"));
    let (_, _) = listener.accept().expect("accept the host's own probe");

    let script = r#"
import socket, sys
for port in sys.argv[1:]:
    s = socket.socket(); s.settimeout(2)
    try:
        s.connect(("127.0.0.1", int(port))); print("CONNECTED", port)
    except OSError as e:
        print("failed", port, type(e).__name__)
print("interfaces", " ".join(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
"#;
    let port_s = port.to_string();
    let dir = app_dir(&[]);
    let argv = ["python3", "-c", script, "5432", "6379", &port_s];
    let (exit, stdout, stderr) = within(20, run(&spec("net", dir.path(), &argv), host)).await;
    assert!(exit.success(), "{exit}: {stderr}");
    assert!(!stdout.contains("CONNECTED"), "{stdout}");
    assert_eq!(stdout.matches("failed ").count(), 3, "{stdout}");
    assert!(stdout.contains("interfaces lo\n"), "{stdout}");
    assert_eq!(listener.accept().map(|_| ()).map_err(|e| e.kind()), Err(std::io::ErrorKind::WouldBlock));
}

#[tokio::test]
async fn a_build_with_host_network_can_reach_the_host_loopback_which_is_why_it_is_weaker() {
    let host = require_host!();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a host loopback listener");
    let port = listener.local_addr().expect("addr").port().to_string();
    let dir = app_dir(&[]);
    let script = "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2); print('CONNECTED')";
    let mut build = spec("hostnet", dir.path(), &["python3", "-c", script, &port]);
    build.network = Network::Host;
    let (exit, stdout, stderr) = within(20, run(&build, host)).await;
    assert!(exit.success(), "{exit}: {stderr}");
    assert_eq!(stdout, "CONNECTED\n");
}

#[tokio::test]
async fn a_sandbox_in_a_joined_namespace_reaches_the_listener_made_there_but_not_the_host_loopback() {
    let host = require_host!();
    let host_listener = TcpListener::bind("127.0.0.1:0").expect("bind a host loopback listener");
    host_listener.set_nonblocking(true).expect("nonblocking");
    let host_port = host_listener.local_addr().expect("addr").port();

    let (netns, inside) = Netns::create_with_listener(0).expect("create a namespace with a listener");
    let inside_port = inside.local_addr().expect("addr").port();
    let own_ino = std::fs::metadata("/proc/self/ns/net").map(|m| std::os::unix::fs::MetadataExt::ino(&m)).expect("own netns");
    assert_ne!(netns.inode(), own_ino, "the namespace is a new one");
    // The listener is served from the host's namespace, as the egress proxy does.
    inside.set_nonblocking(true).expect("nonblocking");
    let inside = tokio::net::TcpListener::from_std(inside).expect("register the listener");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = inside.accept().await {
            let _ = tokio::io::AsyncWriteExt::write_all(&mut stream, b"hello from the namespace's listener\n").await;
        }
    });

    let script = r#"
import os, socket, sys
inside = socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2)
print("inside:", inside.recv(100).decode().strip())
for port in sys.argv[2:]:
    try:
        socket.create_connection(("127.0.0.1", int(port)), 2).close(); print("CONNECTED", port)
    except OSError as e:
        print("failed", port, type(e).__name__)
print("interfaces", " ".join(l.split(":")[0].strip() for l in open("/proc/net/dev").readlines()[2:]))
print("netns", os.readlink("/proc/self/ns/net"))
"#;
    let (inside_s, host_s) = (inside_port.to_string(), host_port.to_string());
    let dir = app_dir(&[]);
    let mut joined = spec("joined", dir.path(), &["python3", "-c", script, &inside_s, &host_s, "5432", "6379"]);
    joined.network = Network::Joined(netns.clone());
    // Both ways of dropping root join the namespace before they drop it.
    let mut hosts = vec![host.clone()];
    if host.setpriv.is_some() {
        hosts.push(HostSupport { user_namespaces: false, ..host.clone() });
    }
    for host in &hosts {
        let (exit, stdout, stderr) = within(20, run(&joined, host)).await;
        assert!(exit.success(), "{exit}: {stderr}");
        assert!(stdout.starts_with("inside: hello from the namespace's listener\n"), "{stdout}");
        assert!(!stdout.contains("CONNECTED"), "{stdout}");
        assert!(stdout.contains(&format!("failed {host_port} ConnectionRefusedError")), "{stdout}");
        assert_eq!(stdout.matches("failed ").count(), 3, "{stdout}");
        assert!(stdout.contains("interfaces lo\n"), "{stdout}");
        assert!(stdout.contains(&format!("netns net:[{}]", netns.inode())), "{stdout}");
    }
    assert_eq!(host_listener.accept().map(|_| ()).map_err(|e| e.kind()), Err(std::io::ErrorKind::WouldBlock));
}

#[tokio::test]
async fn a_fork_bomb_is_stopped_by_the_pids_limit_while_the_host_and_a_neighbour_stay_fine() {
    let host = require_host!();
    let neighbour_dir = app_dir(&[("hello.txt", "neighbour ok\n")]);
    let port = free_host_port();
    let mut neighbour_spec = spec("neighbour", neighbour_dir.path(), &[]);
    neighbour_spec.argv = http_server_argv(port);
    let mut neighbour = Sandbox::spawn(&neighbour_spec, host).await.expect("spawn neighbour");
    let neighbour_ns = neighbour.netns().expect("neighbour netns").clone();
    within(10, connect_when_ready(&neighbour_ns, port)).await;

    let bomb_dir = app_dir(&[]);
    let mut bomb_spec = spec("bomb", bomb_dir.path(), &["/bin/sh", "-c", "f(){ f|f& }; f; sleep 100"]);
    bomb_spec.limits.max_pids = 32;
    bomb_spec.limits.cpu_millis = 500;
    let mut bomb = Sandbox::spawn(&bomb_spec, host).await.expect("spawn the fork bomb");
    let cgroup_dirs = bomb.cgroup().expect("bomb cgroup").dirs();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let cg = bomb.cgroup().expect("bomb cgroup");
    let current = cg.pids_current().expect("pids.current");
    assert!(current <= 32, "pids.current {current} exceeds pids.max");
    assert!(cg.pids_refused().expect("pids.events") > 0, "the bomb never hit pids.max");
    // The host can still start processes.
    let status = std::process::Command::new("/bin/true").status().expect("host spawns a process");
    assert!(status.success());
    // The neighbour still serves.
    let response = tokio::task::spawn_blocking({
        let ns = neighbour_ns.clone();
        move || http_get(ns.connect(([127, 0, 0, 1], port).into()).expect("connect to neighbour"), "/hello.txt")
    })
    .await
    .expect("request thread");
    assert!(response.contains("neighbour ok"), "{response}");

    within(15, bomb.kill()).await.expect("kill the fork bomb");
    for dir in cgroup_dirs {
        assert!(!dir.exists(), "{} survived", dir.display());
    }
    neighbour.kill().await.expect("kill neighbour");
}

#[tokio::test]
async fn allocating_ten_gigabytes_is_killed_by_the_memory_limit_and_reported_as_oom() {
    let host = require_host!();
    let dir = app_dir(&[]);
    // tail keeps everything it reads from a newline-free stream in memory.
    let s = spec("oom", dir.path(), &["/bin/sh", "-c", "head -c 10G /dev/zero | tail"]);
    let (exit, _, _) = within(30, run(&s, host)).await;
    assert!(matches!(exit, SandboxExit::OutOfMemory { oom_kills: 1.., code: Some(137) }), "{exit:?}");
    assert!(exit.to_string().starts_with("killed: out of memory"), "{exit}");
}

#[tokio::test]
async fn the_cgroup_of_a_running_sandbox_carries_its_limits() {
    let host = require_host!();
    let CgroupVersion::V1(h) = &host.cgroup else {
        eprintln!("this test reads v1 files; v2 writes are covered against a fake root in cgroup.rs");
        return;
    };
    let dir = app_dir(&[]);
    let mut s = spec("limits", dir.path(), &["sleep", "30"]);
    s.limits = Limits { memory_bytes: 128 << 20, cpu_millis: 250, max_pids: 40, timeout: None };
    let mut sandbox = Sandbox::spawn(&s, host).await.expect("spawn");
    let leaf = |mount: &Option<PathBuf>| mount.as_ref().expect("hierarchy").join(&host.cgroup_parent).join(&s.name);
    let read = |p: PathBuf| std::fs::read_to_string(&p).expect("read cgroup file").trim().to_string();
    assert_eq!(read(leaf(&h.memory).join("memory.limit_in_bytes")), (128u64 << 20).to_string());
    if leaf(&h.memory).join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(read(leaf(&h.memory).join("memory.memsw.limit_in_bytes")), (128u64 << 20).to_string());
    }
    assert_eq!(read(leaf(&h.pids).join("pids.max")), "40");
    assert_eq!(read(leaf(&h.cpu).join("cpu.cfs_quota_us")), "25000");
    // bubblewrap, its init and the command itself are all members.
    let members = sandbox.cgroup().expect("cgroup").pids().expect("members");
    assert!(members.contains(&(sandbox.pid() as i32)) && members.contains(&(sandbox.ns_pid() as i32)), "{members:?}");
    assert!(sandbox.memory_usage().expect("usage") > 0);
    sandbox.kill().await.expect("kill");
}

/// Starts a counter that prints a number every 20 ms and tracks the last one.
async fn counting_sandbox(host: &HostSupport, dir: &Path) -> (Sandbox, Arc<AtomicU64>) {
    let s = spec("count", dir, &["/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo $i; sleep 0.02; done"]);
    let mut sandbox = Sandbox::spawn(&s, host).await.expect("spawn counter");
    let counter = Arc::new(AtomicU64::new(0));
    let mut lines = BufReader::new(sandbox.take_stdout().expect("stdout")).lines();
    let c = Arc::clone(&counter);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            c.store(line.trim().parse().unwrap_or(0), Ordering::SeqCst);
        }
    });
    within(10, async {
        while counter.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    (sandbox, counter)
}

/// Asserts the counter stands still for half a second.
async fn assert_stands_still(counter: &AtomicU64) -> u64 {
    // Let a line that was already in the pipe arrive.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = counter.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counter.load(Ordering::SeqCst), before, "the counter advanced while frozen");
    before
}

async fn assert_advances(counter: &AtomicU64, from: u64) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(counter.load(Ordering::SeqCst) > from, "the counter did not resume");
}

#[tokio::test]
async fn a_frozen_sandbox_stops_counting_and_resumes_after_thaw() {
    let host = require_host!();
    let dir = app_dir(&[]);
    let (mut sandbox, counter) = counting_sandbox(host, dir.path()).await;
    within(5, sandbox.freeze()).await.expect("freeze");
    let frozen_at = assert_stands_still(&counter).await;
    sandbox.thaw().await.expect("thaw");
    assert_advances(&counter, frozen_at).await;
    sandbox.kill().await.expect("kill");
}

#[tokio::test]
async fn the_sigstop_fallback_also_stops_and_resumes_a_sandbox() {
    let host = require_host!();
    let dir = app_dir(&[]);
    let (mut sandbox, counter) = counting_sandbox(host, dir.path()).await;
    let cg = sandbox.cgroup().expect("cgroup").clone();
    within(5, cg.freeze_with_signals()).await.expect("SIGSTOP every member");
    let frozen_at = assert_stands_still(&counter).await;
    cg.thaw_with_signals().expect("SIGCONT every member");
    assert_advances(&counter, frozen_at).await;
    sandbox.kill().await.expect("kill");
}

#[tokio::test]
async fn kill_removes_every_process_including_escaped_ones_and_the_cgroup() {
    let host = require_host!();
    let dir = app_dir(&[]);
    let script = "sleep 1000 & setsid sleep 1000 & (sleep 1000 &); nohup sleep 1000 >/dev/null 2>&1 & echo started; exec sleep 1000";
    let mut sandbox = Sandbox::spawn(&spec("kill", dir.path(), &["/bin/sh", "-c", script]), host).await.expect("spawn");
    let (lines, _rest) = within(10, first_lines(&mut sandbox, 1)).await;
    assert_eq!(lines, ["started"]);
    let cg = sandbox.cgroup().expect("cgroup").clone();
    let members = within(10, async {
        loop {
            let members = cg.pids().expect("members");
            // bwrap, its init, four background sleeps and the exec'd one.
            if members.len() >= 7 {
                return members;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let dirs = cg.dirs();

    within(15, sandbox.kill()).await.expect("kill");
    for pid in &members {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        assert!(!process_exists(*pid), "pid {pid} survived the kill: {members:?} {status}");
    }
    for dir in &dirs {
        assert!(!dir.exists(), "{} survived the kill", dir.display());
    }
    assert_eq!(sandbox.wait().await.expect("wait after kill"), SandboxExit::Killed);
    assert!(sandbox.cgroup().is_none());
}

#[tokio::test]
async fn the_gateway_reaches_a_server_inside_the_netns_but_the_host_loopback_does_not() {
    let host = require_host!();
    let dir = app_dir(&[("hello.txt", "hello from inside\n")]);
    let port = free_host_port();
    let mut s = spec("gateway", dir.path(), &[]);
    s.argv = vec![
        "/bin/sh".into(),
        "-c".into(),
        format!("readlink /proc/self/ns/net; exec python3 -m http.server {port} --bind 127.0.0.1 --directory /app"),
    ];
    let mut sandbox = Sandbox::spawn(&s, host).await.expect("spawn");
    let (lines, _rest) = within(10, first_lines(&mut sandbox, 1)).await;

    // The namespace behind netns_path() is the command's, not bubblewrap's (which
    // stays in the host's) and not the host's.
    use std::os::unix::fs::MetadataExt;
    let ns_ino = std::fs::metadata(sandbox.netns_path()).expect("netns path").ino();
    assert_eq!(lines[0], format!("net:[{ns_ino}]"));
    assert_eq!(sandbox.netns().expect("pinned netns").inode(), ns_ino);
    let host_ino = std::fs::metadata("/proc/self/ns/net").expect("own netns").ino();
    let bwrap_ino = std::fs::metadata(format!("/proc/{}/ns/net", sandbox.pid())).expect("bwrap netns").ino();
    assert_ne!(ns_ino, host_ino);
    assert_eq!(bwrap_ino, host_ino);

    within(10, connect_when_ready(sandbox.netns().expect("netns"), port)).await;
    let path = sandbox.netns_path();
    let response = tokio::task::spawn_blocking(move || {
        http_get(connect_in_netns(&path, ([127, 0, 0, 1], port).into()).expect("connect_in_netns"), "/hello.txt")
    })
    .await
    .expect("request thread");
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.contains("hello from inside"), "{response}");

    let mut stream = sandbox.netns().expect("netns").connect_async(([127, 0, 0, 1], port).into()).await.expect("connect_async");
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /hello.txt HTTP/1.0\r\n\r\n").await.expect("send");
    let mut body = String::new();
    stream.read_to_string(&mut body).await.expect("read");
    assert!(body.contains("hello from inside"), "{body}");

    let err = TcpStream::connect(("127.0.0.1", port)).expect_err("the port must not exist on the host");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    sandbox.kill().await.expect("kill");
}

/// Runs `id` and friends and checks the command's host credentials.
async fn assert_runs_unprivileged(host: &HostSupport) {
    let dir = app_dir(&[]);
    let script =
        r#"id -u; id -g; id -un; id -G; grep -E "^(CapEff|CapPrm|CapBnd|NoNewPrivs):" /proc/self/status | tr -s '\t' ' '; exec sleep 30"#;
    let mut sandbox = Sandbox::spawn(&spec("uid", dir.path(), &["/bin/sh", "-c", script]), host).await.expect("spawn");
    let (lines, _rest) = within(10, first_lines(&mut sandbox, 8)).await;
    assert_eq!(
        lines,
        [
            "20001",
            "20002",
            "app",
            "20002",
            "CapPrm: 0000000000000000",
            "CapEff: 0000000000000000",
            "CapBnd: 0000000000000000",
            "NoNewPrivs: 1"
        ]
    );
    // Seen from the host, the command (not just its view of itself) has the app's
    // uid and gid in every slot: real, effective, saved and file system.
    let cg = sandbox.cgroup().expect("cgroup");
    let sleeper = within(10, async {
        loop {
            let found = cg
                .pids()
                .expect("members")
                .into_iter()
                .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim() == "sleep").unwrap_or(false));
            if let Some(pid) = found {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let status = std::fs::read_to_string(format!("/proc/{sleeper}/status")).expect("status of the command");
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name)).expect("field").split_whitespace().skip(1).collect::<Vec<_>>().join(" ");
    assert_eq!(field("Uid:"), "20001 20001 20001 20001");
    assert_eq!(field("Gid:"), "20002 20002 20002 20002");
    assert_eq!(field("Groups:"), "");
    sandbox.kill().await.expect("kill");
}

#[tokio::test]
async fn the_command_runs_as_the_unprivileged_uid_without_capabilities() {
    let host = require_host!();
    assert_runs_unprivileged(host).await;
}

#[tokio::test]
async fn the_setpriv_fallback_also_runs_the_command_as_the_unprivileged_uid() {
    let host = require_host!();
    let Some(setpriv) = host.setpriv.clone() else {
        eprintln!("setpriv is not installed; the fallback cannot be exercised here");
        return;
    };
    let without_userns = HostSupport { user_namespaces: false, ..host.clone() };
    assert_eq!(without_userns.identity_switch(), Some(IdentitySwitch::Setpriv(setpriv)));
    assert_runs_unprivileged(&without_userns).await;
}

#[tokio::test]
async fn a_build_that_exceeds_its_timeout_is_killed_with_everything_it_started() {
    let host = require_host!();
    let dir = app_dir(&[]);
    let mut s = spec("timeout", dir.path(), &["/bin/sh", "-c", "sleep 60 & sleep 60"]);
    s.limits.timeout = Some(Duration::from_secs(1));
    s.app_writable = true;
    std::os::unix::fs::chown(dir.path(), Some(APP_UID), Some(APP_GID)).expect("give the build its app dir");
    let started = std::time::Instant::now();
    let mut sandbox = Sandbox::spawn(&s, host).await.expect("spawn");
    let dirs = sandbox.cgroup().expect("cgroup").dirs();
    let exit = within(10, sandbox.wait()).await.expect("wait");
    assert_eq!(exit, SandboxExit::TimedOut { after: Duration::from_secs(1) });
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    for dir in &dirs {
        assert!(!dir.exists(), "{} survived the timeout", dir.display());
    }
}

#[tokio::test]
async fn the_environment_is_exactly_the_one_given() {
    let host = require_host!();
    let dir = app_dir(&[]);
    let mut s = spec("env", dir.path(), &["/usr/bin/env"]);
    s.env = vec![
        ("PATH".into(), "/usr/bin:/bin".into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("PORT".into(), "8080".into()),
        ("GREETING".into(), "hello world".into()),
    ];
    let (exit, stdout, stderr) = within(20, run(&s, host)).await;
    assert!(exit.success(), "{exit}: {stderr}");
    let mut got: Vec<&str> = stdout.lines().collect();
    got.sort_unstable();
    // PWD is the one variable bubblewrap adds, after changing into the workdir.
    assert_eq!(got, ["GREETING=hello world", "LANG=C.UTF-8", "PATH=/usr/bin:/bin", "PORT=8080", "PWD=/app"]);
    // Nothing of the test process's own environment (HOME, cargo's variables, a
    // DATABASE_URL if one were set) got through.
    for (key, _) in std::env::vars() {
        if key != "PWD" && !s.env.iter().any(|(k, _)| *k == key) {
            assert!(!stdout.contains(&format!("{key}=")), "{key} leaked: {stdout}");
        }
    }
    assert!(!stdout.contains("HOME=") && !stdout.contains("DATABASE_URL="));
}

#[tokio::test]
async fn a_build_can_write_its_app_dir_and_data_volume_but_a_run_only_its_data_volume() {
    let host = require_host!();
    let app = app_dir(&[]);
    let data = app_dir(&[]);
    for dir in [app.path(), data.path()] {
        std::os::unix::fs::chown(dir, Some(APP_UID), Some(APP_GID)).expect("chown to the app uid");
    }
    let script = "touch /app/built && echo app-ok; touch /data/kept && echo data-ok; touch /tmp/t && echo tmp-ok";
    let mut build = spec("build-rw", app.path(), &["/bin/sh", "-c", script]);
    build.app_writable = true;
    build.data_dir = Some(data.path().to_path_buf());
    let (_, stdout, _) = within(20, run(&build, host)).await;
    assert_eq!(stdout, "app-ok\ndata-ok\ntmp-ok\n");
    assert!(app.path().join("built").exists() && data.path().join("kept").exists());

    let run_spec = SandboxSpec { name: unique("run-ro"), app_writable: false, ..build };
    let (_, stdout, _) = within(20, run(&run_spec, host)).await;
    assert_eq!(stdout, "data-ok\ntmp-ok\n");
}

#[tokio::test]
async fn a_missing_app_directory_is_reported_before_anything_starts() {
    let host = require_host!();
    let s = spec("missing", Path::new("/nonexistent/slipway-app"), &["true"]);
    match Sandbox::spawn(&s, host).await {
        Err(SandboxError::BindSource { path, .. }) => assert_eq!(path, PathBuf::from("/nonexistent/slipway-app")),
        other => panic!("expected a bind source error, got {other:?}"),
    }
}

#[tokio::test]
async fn dropping_a_sandbox_kills_it_and_removes_its_cgroup() {
    let host = require_host!();
    let dir = app_dir(&[]);
    let sandbox = Sandbox::spawn(&spec("drop", dir.path(), &["/bin/sh", "-c", "sleep 1000 & exec sleep 1000"]), host).await.expect("spawn");
    let cg = sandbox.cgroup().expect("cgroup").clone();
    let inside: Vec<i32> = within(10, async {
        loop {
            let members = cg.pids().expect("members");
            if members.len() >= 4 {
                return members;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .into_iter()
    .filter(|p| *p != sandbox.pid() as i32)
    .collect();
    drop(sandbox);
    within(10, async {
        while cg.exists() || inside.iter().any(|p| process_exists(*p)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn an_app_directory_the_app_uid_cannot_reach_is_reported_before_anything_starts() {
    let host = require_host!();
    if host.identity_switch() != Some(IdentitySwitch::UserNamespace) {
        eprintln!("only user-namespace sandboxes resolve paths as the app uid");
        return;
    }
    // A root-owned 0700 directory above the app dir: the app uid cannot enter it.
    let locked = tempfile::tempdir().expect("create a locked dir");
    std::fs::set_permissions(locked.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 0700");
    let app = locked.path().join("app");
    std::fs::create_dir(&app).expect("create the app dir inside");
    match Sandbox::spawn(&spec("locked", &app, &["true"]), host).await {
        Err(SandboxError::BindSource { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
            assert!(source.to_string().contains(&locked.path().display().to_string()), "{source}");
        }
        other => panic!("expected a bind source error, got {other:?}"),
    }
}

#[tokio::test]
async fn on_the_hybrid_unified_hierarchy_v2_membership_freezing_and_killing_work_for_real() {
    let host = require_host!();
    // A hybrid host mounts an (empty of controllers) cgroup2 hierarchy next to v1.
    // Limits cannot be tested there, but joining, cgroup.freeze and cgroup.kill can.
    let unified = Path::new("/sys/fs/cgroup/unified");
    if !unified.join("cgroup.procs").exists() {
        eprintln!("no hybrid cgroup2 mount at {}; v2 is covered by the fake-root tests", unified.display());
        return;
    }
    let v2_host = HostSupport { cgroup: CgroupVersion::V2 { root: unified.to_path_buf(), controllers: vec![] }, ..host.clone() };
    let dir = app_dir(&[]);
    let (mut sandbox, counter) = counting_sandbox(&v2_host, dir.path()).await;
    let cg = sandbox.cgroup().expect("cgroup").clone();
    let leaf = unified.join(&host.cgroup_parent).join(sandbox.name());
    assert_eq!(cg.dirs(), std::slice::from_ref(&leaf));
    let members = cg.pids().expect("members");
    assert!(members.contains(&(sandbox.pid() as i32)) && members.contains(&(sandbox.ns_pid() as i32)), "{members:?}");

    within(5, sandbox.freeze()).await.expect("freeze through cgroup.freeze");
    let frozen_at = assert_stands_still(&counter).await;
    sandbox.thaw().await.expect("thaw");
    assert_advances(&counter, frozen_at).await;

    // cgroup.kill takes bubblewrap down with everything else in one write.
    within(10, cg.kill_all()).await.expect("kill through cgroup.kill");
    assert!(cg.pids().expect("members").is_empty());
    assert_eq!(within(10, sandbox.wait()).await.expect("wait"), SandboxExit::Signaled { signal: libc::SIGKILL });
    assert!(!leaf.exists(), "{} survived", leaf.display());
}

#[tokio::test]
async fn extra_binds_appear_at_their_destinations_a_writable_cache_and_a_read_only_tool() {
    let host = require_host!();
    let app = app_dir(&[]);
    let cache = app_dir(&[]);
    std::os::unix::fs::chown(cache.path(), Some(APP_UID), Some(APP_GID)).expect("give the cache to the app uid");
    let mut s = spec(
        "binds",
        app.path(),
        &[
            "/bin/sh",
            "-c",
            "/opt/slipway/tool hello; ls /opt/slipway; touch /cache/npm/entry && echo cache-ok; touch /opt/slipway/x || echo tool-ro",
        ],
    );
    s.extra_binds = vec![
        Bind { source: cache.path().to_path_buf(), dest: "/cache/npm".into(), writable: true },
        Bind { source: "/usr/bin/echo".into(), dest: "/opt/slipway/tool".into(), writable: false },
    ];
    let (exit, stdout, stderr) = within(20, run(&s, host)).await;
    assert!(exit.success(), "{exit}: {stderr}");
    assert_eq!(stdout, "hello\ntool\ncache-ok\ntool-ro\n");
    assert!(cache.path().join("entry").exists());
}
