//! Pure construction of the bubblewrap (`bwrap`) command line for one sandbox.
//!
//! Everything here is a function from a [`SandboxSpec`] plus a few facts about the
//! host (how `/bin` and `/lib` look, how the uid is switched, which file descriptor
//! numbers carry the synthetic `/etc` files) to a vector of arguments. Nothing here
//! touches the file system, spawns a process or opens a descriptor, so every flag
//! can be unit-tested; [`super::Sandbox::spawn`] does the thin I/O around it.
//!
//! What this module deliberately does not do: it does not check that bind sources
//! exist (the spawner does that), it does not decide whether the host is strong
//! enough (see `doctor`), and it never mounts anything of the host that is not on
//! the short allow-list below — in particular no `/home`, `/root`, `/var`, `/run`,
//! `/srv`, `/opt` or `/work`, and no other application's directory.

use super::{IdentitySwitch, Network, SandboxSpec, APP_MOUNT, DATA_MOUNT, SANDBOX_HOSTNAME};

/// The top-level directories that hold programs and libraries. On a merged-/usr
/// system (Debian 12, Fedora, Arch) they are symlinks into `/usr` and are recreated
/// as symlinks; on older layouts they are real directories and are bound read-only.
pub const SYSTEM_TOP_LEVEL: [&str; 6] = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// Pieces of the host's `/etc` a program needs for TLS certificates, the dynamic
/// linker, `update-alternatives` symlinks and the time zone. They are bound with
/// `--ro-bind-try`, so a piece missing on some distribution is simply absent.
/// The rest of `/etc` (shadow, ssh keys, the orchestrator's configuration) is not
/// visible.
pub const ETC_READ_ONLY: [&str; 11] = [
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/ca-certificates.conf",
    "/etc/pki",
    "/etc/crypto-policies",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/os-release",
];

/// Host files that only make sense when the sandbox shares the host's network
/// ([`Network::Host`]): name resolution needs the host resolver. A sandbox in a
/// joined namespace resolves nothing itself (the egress proxy resolves registry
/// names on the host), so it does not get them either.
pub const ETC_HOST_NETWORK_ONLY: [&str; 2] = ["/etc/resolv.conf", "/etc/gai.conf"];

/// How one of [`SYSTEM_TOP_LEVEL`] looks on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopLevel {
    /// A symlink with this target, e.g. `usr/bin`; recreated inside as a symlink.
    Symlink(String),
    /// A real directory; bound read-only.
    Dir,
    /// Not present; left out.
    Missing,
}

/// The shape of the host's system directories, probed once by `probe()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemLayout {
    /// One entry per name in [`SYSTEM_TOP_LEVEL`], in that order.
    pub entries: Vec<(String, TopLevel)>,
}

impl SystemLayout {
    /// Looks at the host's `/bin`, `/lib`, … without following symlinks.
    pub fn probe() -> SystemLayout {
        let entries = SYSTEM_TOP_LEVEL
            .iter()
            .map(|path| {
                let kind = match std::fs::symlink_metadata(path) {
                    Ok(meta) if meta.file_type().is_symlink() => match std::fs::read_link(path) {
                        Ok(target) => TopLevel::Symlink(target.to_string_lossy().into_owned()),
                        Err(_) => TopLevel::Missing,
                    },
                    Ok(meta) if meta.is_dir() => TopLevel::Dir,
                    _ => TopLevel::Missing,
                };
                (path.to_string(), kind)
            })
            .collect();
        SystemLayout { entries }
    }

    /// The merged-/usr layout of Debian 12 on x86-64, for tests and as a fallback.
    pub fn merged_usr() -> SystemLayout {
        let entry = |path: &str, kind: TopLevel| (path.to_string(), kind);
        SystemLayout {
            entries: vec![
                entry("/bin", TopLevel::Symlink("usr/bin".into())),
                entry("/sbin", TopLevel::Symlink("usr/sbin".into())),
                entry("/lib", TopLevel::Symlink("usr/lib".into())),
                entry("/lib32", TopLevel::Missing),
                entry("/lib64", TopLevel::Symlink("usr/lib64".into())),
                entry("/libx32", TopLevel::Missing),
            ],
        }
    }
}

/// A file whose contents the orchestrator makes up and hands to bubblewrap through
/// a pipe (`--ro-bind-data FD DEST`), instead of showing the host's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticFile {
    /// Where the file appears inside the sandbox.
    pub dest: &'static str,
    /// Its complete contents.
    pub contents: String,
}

/// The synthetic `/etc` files of a sandbox: a `passwd` and `group` that know the
/// sandbox uid (so `id`, `whoami` and npm do not complain about an unknown user), a
/// `hosts` that resolves `localhost` and the sandbox hostname to loopback, and an
/// `nsswitch.conf` that only consults files and DNS, because the host's may name
/// NSS modules (systemd, sss, ldap) that would try to reach daemons under `/run`.
pub fn synthetic_files(spec: &SandboxSpec) -> Vec<SyntheticFile> {
    let mut passwd = String::from("root:x:0:0:root:/root:/usr/sbin/nologin\n");
    passwd.push_str(&format!("app:x:{}:{}:slipway app:/tmp:/bin/sh\n", spec.uid, spec.gid));
    if spec.uid != 65534 {
        passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    }
    let mut group = String::from("root:x:0:\n");
    group.push_str(&format!("app:x:{}:\n", spec.gid));
    if spec.gid != 65534 {
        group.push_str("nogroup:x:65534:\n");
    }
    let hosts = format!("127.0.0.1\tlocalhost {SANDBOX_HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    let nsswitch = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n".to_string();
    vec![
        SyntheticFile { dest: "/etc/passwd", contents: passwd },
        SyntheticFile { dest: "/etc/group", contents: group },
        SyntheticFile { dest: "/etc/hosts", contents: hosts },
        SyntheticFile { dest: "/etc/nsswitch.conf", contents: nsswitch },
    ]
}

/// Host facts and descriptor numbers the command line depends on.
#[derive(Debug, Clone)]
pub struct BwrapContext<'a> {
    /// How the sandbox ends up running as `spec.uid`.
    pub identity: &'a IdentitySwitch,
    /// Whether this bwrap knows `--disable-userns` (0.8.0 and later).
    pub disable_nested_userns: bool,
    /// How `/bin`, `/lib`, … look on the host.
    pub layout: &'a SystemLayout,
    /// The descriptor bubblewrap writes `{"child-pid": …}` to.
    pub info_fd: i32,
    /// One descriptor per [`synthetic_files`] entry, in the same order.
    pub synthetic_fds: &'a [i32],
    /// The command's stdio is a pseudo-terminal of its own (the web terminal): bubblewrap keeps
    /// the session, so the terminal stays the command's controlling terminal.
    pub terminal: bool,
}

/// The arguments to pass to `bwrap` (without the program name itself).
///
/// Order matters to bubblewrap: mounts are performed in the order given, so the
/// read-only system comes first, then the private `/tmp` and `/dev/shm`, then the
/// synthetic `/etc` files, and the application's own directories last.
pub fn bwrap_argv(spec: &SandboxSpec, ctx: &BwrapContext<'_>) -> Vec<String> {
    let mut args: Vec<String> = Vec::with_capacity(128);
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));

    // Identity. With user namespaces, bwrap itself already runs as the app uid (the
    // spawner switched before exec) and only maps that uid to itself; the sandbox
    // may not create further user namespaces, which removes most of the kernel
    // attack surface that unprivileged user namespaces add. With setpriv, bwrap
    // runs as root and keeps exactly the three capabilities setpriv needs to drop
    // to the app uid, after which nothing is left.
    let uid = spec.uid.to_string();
    let gid = spec.gid.to_string();
    match ctx.identity {
        IdentitySwitch::UserNamespace => {
            push(&["--unshare-user", "--uid", &uid, "--gid", &gid]);
            if ctx.disable_nested_userns {
                push(&["--disable-userns"]);
            }
        }
        IdentitySwitch::Setpriv(_) => {}
    }

    // Namespaces. Without a network namespace of its own the app would share the
    // host's loopback, where PostgreSQL, Redis and the portal listen. A joined
    // namespace is entered by the spawner before bubblewrap starts, so bubblewrap
    // must not replace it with a fresh one.
    push(&["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--hostname", SANDBOX_HOSTNAME]);
    if matches!(spec.network, Network::LoopbackOnly) {
        push(&["--unshare-net"]);
    }
    push(&["--unshare-cgroup-try", "--die-with-parent"]);
    if !ctx.terminal {
        push(&["--new-session"]);
    }

    push(&["--cap-drop", "ALL"]);
    if let IdentitySwitch::Setpriv(_) = ctx.identity {
        push(&["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]);
    }

    // The read-only system. Bubblewrap creates missing parents of mount points
    // with mode 0700, which under setpriv would leave /etc unreadable to the app
    // uid; the directories holding mount points are therefore created explicitly.
    push(&["--ro-bind", "/usr", "/usr"]);
    push(&["--perms", "0755", "--dir", "/etc"]);
    for (path, kind) in &ctx.layout.entries {
        match kind {
            TopLevel::Symlink(target) => push(&["--symlink", target, path]),
            TopLevel::Dir => push(&["--ro-bind", path, path]),
            TopLevel::Missing => {}
        }
    }
    for path in ETC_READ_ONLY {
        push(&["--ro-bind-try", path, path]);
    }
    if matches!(spec.network, Network::Host) {
        for path in ETC_HOST_NETWORK_ONLY {
            push(&["--ro-bind-try", path, path]);
        }
    }

    // Fresh kernel file systems and private scratch space. The tmpfs pages are
    // charged to the sandbox's memory cgroup, so /tmp cannot outgrow the limit.
    push(&["--proc", "/proc", "--dev", "/dev"]);
    push(&["--perms", "1777", "--tmpfs", "/tmp"]);
    push(&["--perms", "1777", "--tmpfs", "/dev/shm"]);

    let files = synthetic_files(spec);
    for (file, fd) in files.iter().zip(ctx.synthetic_fds) {
        push(&["--perms", "0644", "--ro-bind-data", &fd.to_string(), file.dest]);
    }

    // The application's own directories.
    let app_dir = spec.app_dir.to_string_lossy();
    let app_flag = if spec.app_writable { "--bind" } else { "--ro-bind" };
    push(&[app_flag, &app_dir, APP_MOUNT]);
    if let Some(data_dir) = &spec.data_dir {
        push(&["--bind", &data_dir.to_string_lossy(), DATA_MOUNT]);
    }
    for dir in bind_parents(spec) {
        push(&["--perms", "0755", "--dir", &dir]);
    }
    for bind in &spec.extra_binds {
        let flag = if bind.writable { "--bind" } else { "--ro-bind" };
        push(&[flag, &bind.source.to_string_lossy(), &bind.dest]);
    }

    // The sandbox's root is a tmpfs in which bubblewrap created the mount points
    // above (/etc, /cache, ...); owned by the sandbox uid under user namespaces,
    // it would otherwise be writable. Remounting it read-only (not recursively)
    // leaves /tmp, /dev/shm and the writable binds as they are.
    push(&["--remount-ro", "/"]);

    // Environment: nothing of the orchestrator's, only what the spec lists.
    // Bubblewrap itself adds PWD (the working directory) after changing into it.
    push(&["--clearenv"]);
    for (key, value) in &spec.env {
        push(&["--setenv", key, value]);
    }
    push(&["--chdir", &spec.workdir]);
    push(&["--info-fd", &ctx.info_fd.to_string()]);

    push(&["--"]);
    if let IdentitySwitch::Setpriv(setpriv) = ctx.identity {
        let reuid = format!("--reuid={uid}");
        let regid = format!("--regid={gid}");
        push(&[
            &setpriv.to_string_lossy(),
            &reuid,
            &regid,
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]);
    }
    args.extend(spec.argv.iter().cloned());
    args
}

/// The directories above extra bind destinations (e.g. `/cache` for
/// `/cache/npm`), outermost first and each once, so they can be created with
/// sane permissions before bubblewrap creates them with 0700.
pub fn bind_parents(spec: &SandboxSpec) -> Vec<String> {
    let mut parents: Vec<String> = Vec::new();
    for bind in &spec.extra_binds {
        let dest = bind.dest.trim_end_matches('/');
        let mut prefix = String::new();
        let components: Vec<&str> = dest.split('/').filter(|c| !c.is_empty()).collect();
        for component in components.iter().take(components.len().saturating_sub(1)) {
            prefix.push('/');
            prefix.push_str(component);
            let fixed = ["/app", "/data", "/tmp"].contains(&prefix.as_str())
                || prefix.starts_with("/app/")
                || prefix.starts_with("/data/")
                || prefix.starts_with("/tmp/");
            if !fixed && !parents.contains(&prefix) {
                parents.push(prefix.clone());
            }
        }
    }
    parents
}

#[cfg(test)]
mod tests {
    use super::super::{Bind, Limits};
    use super::*;
    use std::path::PathBuf;
    use std::time::Duration;

    fn run_spec() -> SandboxSpec {
        SandboxSpec {
            name: "app-quiz-r3-i0".into(),
            app_dir: PathBuf::from("/var/lib/slipway/apps/quiz/r3"),
            app_writable: false,
            data_dir: Some(PathBuf::from("/var/lib/slipway/data/quiz")),
            extra_binds: vec![],
            argv: vec!["/bin/sh".into(), "-c".into(), "npm start".into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into()), ("PORT".into(), "8080".into())],
            workdir: "/app".into(),
            limits: Limits { memory_bytes: 256 << 20, cpu_millis: 500, max_pids: 128, timeout: None },
            network: Network::LoopbackOnly,
            uid: 20001,
            gid: 20001,
        }
    }

    fn build_spec() -> SandboxSpec {
        SandboxSpec {
            name: "build-quiz-r3".into(),
            app_writable: true,
            data_dir: None,
            extra_binds: vec![
                Bind { source: "/var/cache/slipway/npm".into(), dest: "/cache/npm".into(), writable: true },
                Bind { source: "/opt/toolchains/node20".into(), dest: "/opt/node".into(), writable: false },
            ],
            network: Network::Host,
            limits: Limits { timeout: Some(Duration::from_secs(600)), ..run_spec().limits },
            ..run_spec()
        }
    }

    fn argv_for(spec: &SandboxSpec, identity: &IdentitySwitch) -> Vec<String> {
        let layout = SystemLayout::merged_usr();
        let ctx = BwrapContext {
            identity,
            disable_nested_userns: true,
            layout: &layout,
            info_fd: 9,
            synthetic_fds: &[10, 11, 12, 13],
            terminal: false,
        };
        bwrap_argv(spec, &ctx)
    }

    /// True when `needle` occurs as consecutive arguments in `haystack`.
    fn has_seq(haystack: &[String], needle: &[&str]) -> bool {
        haystack.windows(needle.len()).any(|w| w.iter().zip(needle).all(|(a, b)| a == b))
    }

    /// Every host path that the command line binds into the sandbox.
    fn bound_sources(args: &[String]) -> Vec<String> {
        let mut sources = Vec::new();
        let bind_flags = ["--bind", "--ro-bind", "--ro-bind-try", "--bind-try", "--dev-bind", "--dev-bind-try"];
        let end = args.iter().position(|a| a == "--").expect("the argv has a -- separator");
        for i in 0..end {
            if bind_flags.contains(&args[i].as_str()) {
                sources.push(args[i + 1].clone());
            }
        }
        sources
    }

    #[test]
    fn a_run_binds_only_the_system_allow_list_and_its_own_directories() {
        let args = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        let mut allowed: Vec<String> = ETC_READ_ONLY.iter().map(|s| s.to_string()).collect();
        allowed.push("/usr".into());
        allowed.push("/var/lib/slipway/apps/quiz/r3".into());
        allowed.push("/var/lib/slipway/data/quiz".into());
        for source in bound_sources(&args) {
            assert!(allowed.contains(&source), "unexpected host path bound: {source}");
        }
        for forbidden in ["/home", "/root", "/run", "/var/lib/postgresql", "/work", "/etc/resolv.conf", "/sys"] {
            assert!(!args.iter().any(|a| a == forbidden), "{forbidden} must not appear in {args:?}");
        }
    }

    #[test]
    fn a_run_mounts_the_app_read_only_and_the_data_volume_read_write() {
        let args = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        assert!(has_seq(&args, &["--ro-bind", "/var/lib/slipway/apps/quiz/r3", "/app"]));
        assert!(has_seq(&args, &["--bind", "/var/lib/slipway/data/quiz", "/data"]));
        assert!(!has_seq(&args, &["--bind", "/var/lib/slipway/apps/quiz/r3", "/app"]));
    }

    #[test]
    fn a_run_gets_its_own_namespaces_and_no_network_but_loopback() {
        let args = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        for flag in ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--die-with-parent", "--new-session", "--clearenv"]
        {
            assert!(args.iter().any(|a| a == flag), "missing {flag}");
        }
        assert!(has_seq(&args, &["--hostname", "app"]));
        // The root is made read-only after every mount point has been created.
        let remount = args.iter().position(|a| a == "--remount-ro").expect("--remount-ro present");
        assert_eq!(args[remount + 1], "/");
        let last_mount = args.iter().rposition(|a| a.ends_with("bind") || a == "--ro-bind-data").expect("mounts");
        assert!(remount > last_mount);
        assert!(has_seq(&args, &["--cap-drop", "ALL"]));
        assert!(!args.iter().any(|a| a == "--cap-add"));
    }

    #[test]
    fn the_user_namespace_identity_maps_the_app_uid_and_forbids_nested_user_namespaces() {
        let args = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        assert!(has_seq(&args, &["--unshare-user", "--uid", "20001", "--gid", "20001", "--disable-userns"]));
        let tail = &args[args.iter().position(|a| a == "--").expect("separator") + 1..];
        assert_eq!(tail, ["/bin/sh", "-c", "npm start"]);
    }

    #[test]
    fn the_setpriv_identity_keeps_only_the_capabilities_setpriv_needs_and_drops_them_before_the_command() {
        let identity = IdentitySwitch::Setpriv(PathBuf::from("/usr/bin/setpriv"));
        let args = argv_for(&run_spec(), &identity);
        assert!(!args.iter().any(|a| a == "--unshare-user" || a == "--uid"));
        assert!(has_seq(&args, &["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]));
        let tail = &args[args.iter().position(|a| a == "--").expect("separator") + 1..];
        assert_eq!(
            tail,
            [
                "/usr/bin/setpriv",
                "--reuid=20001",
                "--regid=20001",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--no-new-privs",
                "--",
                "/bin/sh",
                "-c",
                "npm start"
            ]
        );
    }

    #[test]
    fn the_environment_is_cleared_and_then_set_exactly_from_the_spec() {
        let args = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        let clear = args.iter().position(|a| a == "--clearenv").expect("--clearenv present");
        assert!(has_seq(&args[clear..], &["--setenv", "PATH", "/usr/bin:/bin", "--setenv", "PORT", "8080"]));
        assert_eq!(args.iter().filter(|a| *a == "--setenv").count(), 2);
        assert!(has_seq(&args, &["--chdir", "/app"]));
    }

    #[test]
    fn synthetic_etc_files_are_passed_through_the_given_descriptors() {
        let args = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        assert!(has_seq(&args, &["--ro-bind-data", "10", "/etc/passwd"]));
        assert!(has_seq(&args, &["--ro-bind-data", "11", "/etc/group"]));
        assert!(has_seq(&args, &["--ro-bind-data", "12", "/etc/hosts"]));
        assert!(has_seq(&args, &["--ro-bind-data", "13", "/etc/nsswitch.conf"]));
        assert!(has_seq(&args, &["--info-fd", "9"]));
    }

    #[test]
    fn the_synthetic_passwd_names_the_sandbox_uid_and_hosts_resolves_localhost() {
        let files = synthetic_files(&run_spec());
        let passwd = &files.iter().find(|f| f.dest == "/etc/passwd").expect("passwd").contents;
        assert!(passwd.contains("app:x:20001:20001:"));
        let hosts = &files.iter().find(|f| f.dest == "/etc/hosts").expect("hosts").contents;
        assert!(hosts.starts_with("127.0.0.1\tlocalhost app\n"));
    }

    #[test]
    fn a_build_mounts_the_app_writable_shares_the_host_network_and_sees_the_resolver() {
        let args = argv_for(&build_spec(), &IdentitySwitch::UserNamespace);
        assert!(has_seq(&args, &["--bind", "/var/lib/slipway/apps/quiz/r3", "/app"]));
        assert!(!args.iter().any(|a| a == "--unshare-net"));
        assert!(has_seq(&args, &["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]));
        assert!(has_seq(&args, &["--bind", "/var/cache/slipway/npm", "/cache/npm"]));
        assert!(has_seq(&args, &["--ro-bind", "/opt/toolchains/node20", "/opt/node"]));
        assert!(has_seq(&args, &["--perms", "0755", "--dir", "/cache"]));
        assert!(has_seq(&args, &["--perms", "0755", "--dir", "/opt"]));
    }

    #[test]
    fn a_build_in_a_joined_namespace_gets_no_fresh_network_namespace_and_no_host_resolver() {
        // Any open namespace serves for the command line; the spawner does the joining.
        let netns = super::super::Netns::open(std::path::Path::new("/proc/self/ns/net")).expect("open our own namespace");
        let spec = SandboxSpec { network: Network::Joined(netns), ..build_spec() };
        for identity in [IdentitySwitch::UserNamespace, IdentitySwitch::Setpriv(PathBuf::from("/usr/bin/setpriv"))] {
            let args = argv_for(&spec, &identity);
            assert!(!args.iter().any(|a| a == "--unshare-net"), "{args:?}");
            for path in ETC_HOST_NETWORK_ONLY {
                assert!(!args.iter().any(|a| a == path), "{path} must not be bound: {args:?}");
            }
            for flag in ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--new-session", "--clearenv"] {
                assert!(args.iter().any(|a| a == flag), "missing {flag}");
            }
            assert!(has_seq(&args, &["--bind", "/var/lib/slipway/apps/quiz/r3", "/app"]));
        }
    }

    #[test]
    fn parents_of_bind_destinations_are_listed_once_outermost_first_and_never_inside_app_or_tmp() {
        let spec = SandboxSpec {
            extra_binds: vec![
                Bind { source: "/a".into(), dest: "/cache/npm/v1".into(), writable: true },
                Bind { source: "/b".into(), dest: "/cache/pip".into(), writable: true },
                Bind { source: "/c".into(), dest: "/app/node_modules/.cache".into(), writable: true },
                Bind { source: "/d".into(), dest: "/toolchain".into(), writable: false },
            ],
            ..run_spec()
        };
        assert_eq!(bind_parents(&spec), ["/cache", "/cache/npm"]);
    }

    #[test]
    fn merged_usr_directories_become_symlinks_and_real_ones_are_bound_read_only() {
        let merged = argv_for(&run_spec(), &IdentitySwitch::UserNamespace);
        assert!(has_seq(&merged, &["--symlink", "usr/bin", "/bin"]));
        assert!(!merged.iter().any(|a| a == "/lib32"));

        let split = SystemLayout { entries: vec![("/bin".into(), TopLevel::Dir), ("/lib".into(), TopLevel::Dir)] };
        let ctx = BwrapContext {
            identity: &IdentitySwitch::UserNamespace,
            disable_nested_userns: false,
            layout: &split,
            info_fd: 3,
            synthetic_fds: &[4, 5, 6, 7],
            terminal: false,
        };
        let args = bwrap_argv(&run_spec(), &ctx);
        assert!(has_seq(&args, &["--ro-bind", "/bin", "/bin"]));
        assert!(has_seq(&args, &["--ro-bind", "/lib", "/lib"]));
        assert!(!args.iter().any(|a| a == "--disable-userns"));
    }

    #[test]
    fn a_terminal_sandbox_keeps_its_session_so_the_terminal_stays_controlling() {
        let layout = SystemLayout::merged_usr();
        let identity = IdentitySwitch::UserNamespace;
        let ctx = BwrapContext {
            identity: &identity,
            disable_nested_userns: true,
            layout: &layout,
            info_fd: 9,
            synthetic_fds: &[10, 11, 12, 13],
            terminal: true,
        };
        let args = bwrap_argv(&run_spec(), &ctx);
        assert!(!args.iter().any(|a| a == "--new-session"), "{args:?}");
        assert!(args.iter().any(|a| a == "--die-with-parent") && args.iter().any(|a| a == "--unshare-net"));
        assert!(argv_for(&run_spec(), &identity).iter().any(|a| a == "--new-session"));
    }
}
