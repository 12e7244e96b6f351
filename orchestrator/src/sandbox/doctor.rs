//! What this host can give a sandbox, and a human report about it.
//!
//! [`probe`] looks at the host once (bubblewrap, user namespaces, setpriv, root,
//! cgroups, swap) and returns a [`HostSupport`] that `Sandbox::spawn` uses.
//! [`doctor_report`] turns that into the checks `slipway doctor` prints, each with
//! what degrades when it fails; [`missing_for_strong`] lists the failed checks that
//! `slipway up` treats as fatal unless the operator accepts weaker isolation.
//!
//! What this module deliberately does not do: it does not fix anything (no sysctl
//! writes, no package installs, no remounting of cgroups) and it never starts a
//! student's code; the one process it may start is bubblewrap running `true`, to
//! find out whether user namespaces really work (sysctls and AppArmor policies make
//! reading configuration files unreliable).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Serialize;

use super::bwrap::SystemLayout;
use super::cgroup::{self, CgroupVersion};

/// The cgroup directory (under each hierarchy's root) that holds all sandboxes.
pub const DEFAULT_CGROUP_PARENT: &str = "slipway";

/// The uid the user-namespace probe runs as when the orchestrator is root.
const PROBE_UID: u32 = 65534;

/// How a sandbox ends up running as its unprivileged uid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentitySwitch {
    /// The spawner switches to the app uid before exec'ing bubblewrap, which then
    /// builds the sandbox inside a user namespace owned by that uid. Preferred:
    /// bubblewrap itself never runs privileged and the sandbox cannot create
    /// further user namespaces (`--disable-userns`).
    UserNamespace,
    /// Bubblewrap runs as root (no user namespace) and `setpriv` at this path,
    /// inside the sandbox, drops to the app uid, clears groups, capabilities and
    /// the bounding set right before the student's command. Used where
    /// unprivileged user namespaces are disabled (some hardened kernels, Ubuntu's
    /// AppArmor restriction); the student's process ends up just as unprivileged.
    Setpriv(PathBuf),
}

/// What this host offers sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSupport {
    pub cgroup: CgroupVersion,
    /// Directory under each hierarchy root that holds the sandboxes' groups.
    pub cgroup_parent: String,
    pub bwrap: Option<PathBuf>,
    pub bwrap_version: Option<String>,
    /// Whether bwrap knows `--disable-userns` (0.8.0 and later).
    pub bwrap_disable_userns: bool,
    /// Whether an unprivileged user could create the namespaces a sandbox needs
    /// (tested by running bwrap, not by reading sysctls).
    pub user_namespaces: bool,
    /// What the user-namespace probe printed when it failed.
    pub user_namespaces_detail: String,
    pub setpriv: Option<PathBuf>,
    pub is_root: bool,
    pub swap_total_bytes: u64,
    /// Whether the memory controller can also limit swap (v1 `memsw`, v2
    /// `memory.swap.max`).
    pub swap_accounting: bool,
    pub layout: SystemLayout,
}

impl HostSupport {
    /// The way sandboxes switch to their uid on this host, preferring user
    /// namespaces; `None` when neither works (then nothing may be spawned: student
    /// code never runs as root).
    pub fn identity_switch(&self) -> Option<IdentitySwitch> {
        if self.user_namespaces {
            Some(IdentitySwitch::UserNamespace)
        } else if self.is_root {
            self.setpriv.clone().map(IdentitySwitch::Setpriv)
        } else {
            None
        }
    }
}

/// Looks at this host. Takes a few milliseconds (it runs bwrap once).
pub fn probe() -> HostSupport {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let bwrap = find_program("bwrap");
    let (bwrap_version, bwrap_disable_userns) = match &bwrap {
        Some(path) => (
            run_stdout(path, &["--version"]).map(|v| v.trim().to_string()),
            run_stdout(path, &["--help"]).map(|h| h.contains("--disable-userns")).unwrap_or(false),
        ),
        None => (None, false),
    };
    let (user_namespaces, user_namespaces_detail) = match &bwrap {
        Some(path) => probe_user_namespaces(path, is_root, bwrap_disable_userns),
        None => (false, "bubblewrap is not installed".to_string()),
    };
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].iter().map(PathBuf::from).find(|p| p.exists());
    let cgroup = cgroup::detect();
    let swap_accounting = match &cgroup {
        CgroupVersion::V1(h) => h.memory.as_ref().map(|m| m.join("memory.memsw.limit_in_bytes").exists()).unwrap_or(false),
        CgroupVersion::V2 { root, .. } => any_child_file(root, "memory.swap.max"),
        CgroupVersion::None => false,
    };
    HostSupport {
        cgroup,
        cgroup_parent: DEFAULT_CGROUP_PARENT.to_string(),
        bwrap,
        bwrap_version,
        bwrap_disable_userns,
        user_namespaces,
        user_namespaces_detail,
        setpriv,
        is_root,
        swap_total_bytes: swap_total_bytes(),
        swap_accounting,
        layout: SystemLayout::probe(),
    }
}

fn any_child_file(root: &Path, file: &str) -> bool {
    std::fs::read_dir(root).map(|entries| entries.filter_map(Result::ok).any(|e| e.path().join(file).exists())).unwrap_or(false)
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/local/bin"].iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn run_stdout(program: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).stdin(Stdio::null()).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs bubblewrap as an unprivileged user with the namespaces a sandbox uses.
fn probe_user_namespaces(bwrap: &Path, is_root: bool, disable_userns: bool) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bwrap);
    cmd.args(["--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]);
    if disable_userns {
        cmd.arg("--disable-userns");
    }
    cmd.args(["--ro-bind", "/", "/", "--", "true"]);
    cmd.env_clear().current_dir("/").stdin(Stdio::null());
    if is_root {
        // The question is whether an *unprivileged* user may do this; root always may.
        cmd.uid(PROBE_UID).gid(PROBE_UID);
    }
    match cmd.output() {
        Ok(out) if out.status.success() => (true, String::new()),
        Ok(out) => (false, String::from_utf8_lossy(&out.stderr).trim().to_string()),
        Err(e) => (false, format!("could not run {}: {e}", bwrap.display())),
    }
}

fn swap_total_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("SwapTotal:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// One line of `slipway doctor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What is weaker when the check fails; `None` when it passes.
    pub degraded_consequence: Option<String>,
    /// Whether `slipway up` refuses to start when this fails (unless the operator
    /// explicitly accepts weaker isolation).
    pub required: bool,
}

fn check(name: &str, ok: bool, detail: String, consequence: &str, required: bool) -> Check {
    Check { name: name.to_string(), ok, detail, degraded_consequence: (!ok).then(|| consequence.to_string()), required }
}

/// The report `slipway doctor` prints, in a stable order.
pub fn doctor_report(host: &HostSupport) -> Vec<Check> {
    let mut checks = Vec::new();
    checks.push(check(
        "bubblewrap",
        host.bwrap.is_some(),
        match (&host.bwrap, &host.bwrap_version) {
            (Some(p), v) => format!("{} ({})", p.display(), v.as_deref().unwrap_or("unknown version")),
            (None, _) => "bwrap not found in PATH; install the bubblewrap package".into(),
        },
        "no sandbox can be started: student code would share the host's files, network and processes",
        true,
    ));
    checks.push(check(
        "running as root",
        host.is_root,
        if host.is_root { "effective uid 0".into() } else { "the orchestrator is not root".into() },
        "cgroups cannot be created and sandboxes cannot switch to per-app uids",
        true,
    ));
    checks.push(check(
        "user namespaces",
        host.user_namespaces,
        if host.user_namespaces {
            "an unprivileged user can create user, pid, net, ipc and uts namespaces".into()
        } else {
            format!("bwrap as uid {PROBE_UID} failed: {}", host.user_namespaces_detail)
        },
        "bubblewrap must run as root and drop to the app uid with setpriv inside the sandbox",
        false,
    ));
    let identity = host.identity_switch();
    checks.push(check(
        "unprivileged app uid",
        identity.is_some(),
        match &identity {
            Some(IdentitySwitch::UserNamespace) => "user namespace maps the app uid to itself".into(),
            Some(IdentitySwitch::Setpriv(p)) => format!("setpriv at {} drops root before the command", p.display()),
            None => "neither user namespaces nor setpriv-as-root are available".into(),
        },
        "student code cannot be run as an unprivileged uid, so no sandbox is started",
        true,
    ));
    if identity == Some(IdentitySwitch::UserNamespace) {
        checks.push(check(
            "nested user namespaces blocked",
            host.bwrap_disable_userns,
            if host.bwrap_disable_userns {
                "bwrap supports --disable-userns".into()
            } else {
                format!("{} lacks --disable-userns (needs 0.8.0)", host.bwrap_version.as_deref().unwrap_or("bwrap"))
            },
            "student code can create its own user namespaces, exposing more kernel attack surface",
            false,
        ));
    }
    let cg = &host.cgroup;
    checks.push(check(
        "cgroups",
        *cg != CgroupVersion::None,
        match cg {
            CgroupVersion::V1(h) => {
                format!("v1: memory={} pids={} cpu={} freezer={}", show(&h.memory), show(&h.pids), show(&h.cpu), show(&h.freezer))
            }
            CgroupVersion::V2 { root, controllers } => format!("v2 at {}: {}", root.display(), controllers.join(" ")),
            CgroupVersion::None => "no cgroup v1 or v2 mount with memory, pids or cpu".into(),
        },
        "no resource limits: one app can exhaust the host's memory, processes and cpu",
        true,
    ));
    checks.push(check(
        "memory limit",
        cg.has_memory(),
        if cg.has_memory() { "memory controller available".into() } else { "no memory controller".into() },
        "an app can use all of the host's memory and trigger the host's OOM killer",
        true,
    ));
    checks.push(check(
        "process limit",
        cg.has_pids(),
        if cg.has_pids() { "pids controller available".into() } else { "no pids controller".into() },
        "a fork bomb in one app can exhaust the host's process table",
        true,
    ));
    checks.push(check(
        "cpu limit",
        cg.has_cpu(),
        if cg.has_cpu() { "cpu controller available".into() } else { "no cpu controller".into() },
        "an app can monopolise every core",
        true,
    ));
    checks.push(check(
        "freezer",
        cg.has_freezer(),
        if cg.has_freezer() { "kernel freezer available".into() } else { "no kernel freezer".into() },
        "freezing falls back to SIGSTOP of each process, which a process forking at that moment can escape",
        false,
    ));
    let swap_ok = host.swap_total_bytes == 0 || host.swap_accounting;
    checks.push(check(
        "swap accounting",
        swap_ok,
        format!("swap {} MiB, swap accounting {}", host.swap_total_bytes >> 20, if host.swap_accounting { "on" } else { "off" }),
        "apps can exceed their memory limit by swapping (enable swapaccount=1 or disable swap)",
        true,
    ));
    checks
}

fn show(p: &Option<PathBuf>) -> String {
    p.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "missing".into())
}

/// Names of the failed checks that make isolation weaker than Slipway promises.
pub fn missing_for_strong(host: &HostSupport) -> Vec<String> {
    doctor_report(host).into_iter().filter(|c| c.required && !c.ok).map(|c| c.name).collect()
}

/// Whether this host gives every sandbox the full isolation.
pub fn is_strong(host: &HostSupport) -> bool {
    missing_for_strong(host).is_empty()
}

#[cfg(test)]
mod tests {
    use super::super::cgroup::V1Hierarchies;
    use super::*;

    fn strong_v1() -> HostSupport {
        HostSupport {
            cgroup: CgroupVersion::V1(V1Hierarchies {
                memory: Some("/sys/fs/cgroup/memory".into()),
                pids: Some("/sys/fs/cgroup/pids".into()),
                cpu: Some("/sys/fs/cgroup/cpu".into()),
                freezer: Some("/sys/fs/cgroup/freezer".into()),
            }),
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            bwrap: Some("/usr/bin/bwrap".into()),
            bwrap_version: Some("bubblewrap 0.8.0".into()),
            bwrap_disable_userns: true,
            user_namespaces: true,
            user_namespaces_detail: String::new(),
            setpriv: Some("/usr/bin/setpriv".into()),
            is_root: true,
            swap_total_bytes: 0,
            swap_accounting: true,
            layout: SystemLayout::merged_usr(),
        }
    }

    fn failed(host: &HostSupport) -> Vec<String> {
        doctor_report(host).into_iter().filter(|c| !c.ok).map(|c| c.name).collect()
    }

    #[test]
    fn a_fully_equipped_host_passes_every_check_and_is_strong() {
        let host = strong_v1();
        assert!(failed(&host).is_empty(), "{:?}", failed(&host));
        assert!(is_strong(&host));
        assert!(doctor_report(&host).iter().all(|c| c.degraded_consequence.is_none()));
    }

    #[test]
    fn a_host_without_bubblewrap_is_not_strong_and_says_why() {
        let host = HostSupport { bwrap: None, bwrap_version: None, user_namespaces: false, ..strong_v1() };
        assert!(!is_strong(&host));
        let missing = missing_for_strong(&host);
        assert!(missing.contains(&"bubblewrap".to_string()), "{missing:?}");
        let check = doctor_report(&host).into_iter().find(|c| c.name == "bubblewrap").expect("bubblewrap check");
        assert!(check.detail.contains("install the bubblewrap package"));
        assert!(check.degraded_consequence.expect("consequence").contains("no sandbox"));
    }

    #[test]
    fn without_user_namespaces_setpriv_as_root_still_gives_strong_isolation() {
        let host =
            HostSupport { user_namespaces: false, user_namespaces_detail: "setting up uid map: Permission denied".into(), ..strong_v1() };
        assert_eq!(host.identity_switch(), Some(IdentitySwitch::Setpriv("/usr/bin/setpriv".into())));
        assert!(is_strong(&host));
        assert_eq!(failed(&host), ["user namespaces"]);
        let report = doctor_report(&host);
        let userns = report.iter().find(|c| c.name == "user namespaces").expect("userns check");
        assert!(userns.detail.contains("Permission denied"));
        assert!(!report.iter().any(|c| c.name == "nested user namespaces blocked"));
    }

    #[test]
    fn without_user_namespaces_or_setpriv_no_app_uid_is_possible() {
        let host = HostSupport { user_namespaces: false, setpriv: None, ..strong_v1() };
        assert_eq!(host.identity_switch(), None);
        assert!(missing_for_strong(&host).contains(&"unprivileged app uid".to_string()));
    }

    #[test]
    fn a_v1_host_without_freezer_is_still_strong_but_reports_the_signal_fallback() {
        let mut host = strong_v1();
        if let CgroupVersion::V1(h) = &mut host.cgroup {
            h.freezer = None;
        }
        assert!(is_strong(&host));
        let freezer = doctor_report(&host).into_iter().find(|c| c.name == "freezer").expect("freezer check");
        assert!(!freezer.ok);
        assert!(freezer.degraded_consequence.expect("consequence").contains("SIGSTOP"));
    }

    #[test]
    fn a_host_without_cgroups_lacks_every_limit() {
        let host = HostSupport { cgroup: CgroupVersion::None, ..strong_v1() };
        let missing = missing_for_strong(&host);
        for name in ["cgroups", "memory limit", "process limit", "cpu limit"] {
            assert!(missing.contains(&name.to_string()), "{name} missing from {missing:?}");
        }
    }

    #[test]
    fn a_v2_host_without_the_cpu_controller_reports_only_the_cpu_limit() {
        let host = HostSupport {
            cgroup: CgroupVersion::V2 { root: "/nonexistent-cgroup-root".into(), controllers: vec!["memory".into(), "pids".into()] },
            ..strong_v1()
        };
        assert_eq!(missing_for_strong(&host), ["cpu limit"]);
    }

    #[test]
    fn swap_without_accounting_makes_the_memory_limit_leaky() {
        let host = HostSupport { swap_total_bytes: 4 << 30, swap_accounting: false, ..strong_v1() };
        assert_eq!(missing_for_strong(&host), ["swap accounting"]);
        let with_accounting = HostSupport { swap_accounting: true, ..host };
        assert!(is_strong(&with_accounting));
    }

    #[test]
    fn an_old_bubblewrap_cannot_block_nested_user_namespaces() {
        let host = HostSupport { bwrap_disable_userns: false, bwrap_version: Some("bubblewrap 0.6.2".into()), ..strong_v1() };
        assert!(is_strong(&host));
        assert_eq!(failed(&host), ["nested user namespaces blocked"]);
    }

    #[test]
    fn a_non_root_orchestrator_cannot_use_setpriv() {
        let host = HostSupport { is_root: false, user_namespaces: false, ..strong_v1() };
        assert_eq!(host.identity_switch(), None);
        let missing = missing_for_strong(&host);
        assert!(missing.contains(&"running as root".to_string()));
        assert!(missing.contains(&"unprivileged app uid".to_string()));
    }
}
