//! Control groups for sandboxes, on cgroup v1 (one hierarchy per controller) and
//! cgroup v2 (one unified hierarchy).
//!
//! Each sandbox gets `<parent>/<name>` (the parent is `slipway` by default) in every
//! hierarchy it uses: memory, pids, cpu and freezer on v1; a single directory with
//! `memory.max`, `pids.max`, `cpu.max` and `cgroup.freeze` on v2. The sandboxed
//! process joins it before it execs bubblewrap (see `Sandbox::spawn`), so nothing
//! the student starts can be outside it. The cgroup is also how a sandbox is
//! killed completely, frozen, measured and told apart from an out-of-memory death.
//!
//! What the limits are is decided by small pure functions ([`v1_writes`],
//! [`v2_writes`]); the I/O around them is thin. This module deliberately does not
//! manage cpusets, block I/O weights or devices, does not try to coexist with
//! systemd's own cgroup management beyond using a separate parent directory, and
//! does not delegate cgroups to unprivileged users: the orchestrator is root.

use std::fs;
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Limits, SandboxError};

/// The cpu period used for quotas: 100 ms, the kernel default.
pub const CPU_PERIOD_US: u64 = 100_000;

/// How long freezing may take before it is reported as failed.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long killing every process and removing the directory may take.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy per-controller hierarchies; each path is a hierarchy's mount point.
    V1(V1Hierarchies),
    /// The unified hierarchy mounted at `root`, with the controllers listed in
    /// its `cgroup.controllers`.
    V2 { root: PathBuf, controllers: Vec<String> },
    /// No usable cgroups: sandboxes run without resource limits.
    None,
}

/// Mount points of the v1 hierarchies Slipway uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V1Hierarchies {
    pub memory: Option<PathBuf>,
    pub pids: Option<PathBuf>,
    pub cpu: Option<PathBuf>,
    pub freezer: Option<PathBuf>,
}

impl CgroupVersion {
    /// Whether a memory limit can be set.
    pub fn has_memory(&self) -> bool {
        match self {
            CgroupVersion::V1(h) => h.memory.is_some(),
            CgroupVersion::V2 { controllers, .. } => controllers.iter().any(|c| c == "memory"),
            CgroupVersion::None => false,
        }
    }

    /// Whether a process-count limit can be set.
    pub fn has_pids(&self) -> bool {
        match self {
            CgroupVersion::V1(h) => h.pids.is_some(),
            CgroupVersion::V2 { controllers, .. } => controllers.iter().any(|c| c == "pids"),
            CgroupVersion::None => false,
        }
    }

    /// Whether a cpu quota can be set.
    pub fn has_cpu(&self) -> bool {
        match self {
            CgroupVersion::V1(h) => h.cpu.is_some(),
            CgroupVersion::V2 { controllers, .. } => controllers.iter().any(|c| c == "cpu"),
            CgroupVersion::None => false,
        }
    }

    /// Whether the kernel freezer is available. On v2 it is part of the core
    /// (`cgroup.freeze`, Linux 5.2 and later) but the root cgroup has no such file,
    /// so we look for it in any existing child group.
    pub fn has_freezer(&self) -> bool {
        match self {
            CgroupVersion::V1(h) => h.freezer.is_some(),
            CgroupVersion::V2 { root, .. } => any_child_has(root, "cgroup.freeze"),
            CgroupVersion::None => false,
        }
    }
}

/// True if some direct child directory of `root` contains `file`.
fn any_child_has(root: &Path, file: &str) -> bool {
    let Ok(entries) = fs::read_dir(root) else { return false };
    entries.filter_map(Result::ok).filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false)).any(|e| e.path().join(file).exists())
}

/// One cgroup mount found in `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMount {
    pub mount_point: PathBuf,
    /// `true` for cgroup2.
    pub unified: bool,
    /// For v1, the controllers bound to this hierarchy (from the super options).
    pub controllers: Vec<String>,
}

/// Finds the cgroup mounts in the text of `/proc/self/mountinfo`.
pub fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        // Fields: id parent major:minor root mount-point options [optional...] - fstype source super-options
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let mount_point = PathBuf::from(unescape_mountinfo(left[4]));
        match right[0] {
            "cgroup2" => mounts.push(CgroupMount { mount_point, unified: true, controllers: vec![] }),
            "cgroup" => {
                let known = [
                    "memory",
                    "pids",
                    "cpu",
                    "cpuacct",
                    "freezer",
                    "cpuset",
                    "blkio",
                    "devices",
                    "hugetlb",
                    "net_cls",
                    "net_prio",
                    "perf_event",
                    "rdma",
                    "misc",
                ];
                let controllers = right[2].split(',').filter(|o| known.contains(o)).map(str::to_string).collect();
                mounts.push(CgroupMount { mount_point, unified: false, controllers });
            }
            _ => {}
        }
    }
    mounts
}

/// Undoes the octal escapes (`\040` for a space) that mountinfo uses in paths.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decides which cgroup setup to use from the mounts and a reader for a unified
/// hierarchy's `cgroup.controllers`. A unified hierarchy wins when it carries the
/// memory and pids controllers; a hybrid host (systemd's `unified` mount next to
/// v1 hierarchies, as on this development machine) keeps its controllers in v1, so
/// v1 is used there.
pub fn choose(mounts: &[CgroupMount], read_controllers: impl Fn(&Path) -> Option<String>) -> CgroupVersion {
    let mut unified: Vec<&CgroupMount> = mounts.iter().filter(|m| m.unified).collect();
    // Prefer the canonical mount point when there are several.
    unified.sort_by_key(|m| m.mount_point != Path::new("/sys/fs/cgroup"));
    for mount in unified {
        let Some(text) = read_controllers(&mount.mount_point.join("cgroup.controllers")) else { continue };
        let controllers: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        if controllers.iter().any(|c| c == "memory") && controllers.iter().any(|c| c == "pids") {
            return CgroupVersion::V2 { root: mount.mount_point.clone(), controllers };
        }
    }
    let find = |name: &str| mounts.iter().find(|m| !m.unified && m.controllers.iter().any(|c| c == name)).map(|m| m.mount_point.clone());
    let hierarchies = V1Hierarchies { memory: find("memory"), pids: find("pids"), cpu: find("cpu"), freezer: find("freezer") };
    if hierarchies.memory.is_none() && hierarchies.pids.is_none() && hierarchies.cpu.is_none() {
        CgroupVersion::None
    } else {
        CgroupVersion::V1(hierarchies)
    }
}

/// Reads `/proc/self/mountinfo` and chooses.
pub fn detect() -> CgroupVersion {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    choose(&parse_mountinfo(&text), |p| fs::read_to_string(p).ok())
}

/// One value to write into a cgroup interface file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: &'static str,
    pub value: String,
    /// Optional files are skipped when the kernel does not provide them (for
    /// example `memory.swap.max` without swap accounting).
    pub optional: bool,
}

fn required(file: &'static str, value: impl ToString) -> Write {
    Write { file, value: value.to_string(), optional: false }
}

fn optional(file: &'static str, value: impl ToString) -> Write {
    Write { file, value: value.to_string(), optional: true }
}

/// The cpu quota in microseconds per [`CPU_PERIOD_US`] for `cpu_millis`
/// thousandths of a core.
pub fn cpu_quota_us(cpu_millis: u32) -> u64 {
    u64::from(cpu_millis) * CPU_PERIOD_US / 1000
}

/// The v1 writes, per controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Writes {
    pub memory: Vec<Write>,
    pub pids: Vec<Write>,
    pub cpu: Vec<Write>,
}

/// What to write on v1. The memory+swap limit is set to the memory limit so that
/// swapping does not extend it, and swappiness is zero; the order matters because
/// the kernel refuses a memsw limit below the memory limit.
pub fn v1_writes(limits: &Limits) -> V1Writes {
    V1Writes {
        memory: vec![
            required("memory.limit_in_bytes", limits.memory_bytes),
            optional("memory.memsw.limit_in_bytes", limits.memory_bytes),
            optional("memory.swappiness", 0),
        ],
        pids: vec![required("pids.max", limits.max_pids)],
        cpu: vec![required("cpu.cfs_period_us", CPU_PERIOD_US), required("cpu.cfs_quota_us", cpu_quota_us(limits.cpu_millis))],
    }
}

/// What to write on v2. `memory.oom.group` makes the kernel kill the whole sandbox
/// on an out-of-memory event instead of one process, which would otherwise leave a
/// half-dead application behind.
pub fn v2_writes(limits: &Limits, controllers: &[String]) -> Vec<Write> {
    let has = |c: &str| controllers.iter().any(|x| x == c);
    let mut writes = Vec::new();
    if has("memory") {
        writes.push(required("memory.max", limits.memory_bytes));
        writes.push(optional("memory.swap.max", 0));
        writes.push(optional("memory.oom.group", 1));
    }
    if has("pids") {
        writes.push(required("pids.max", limits.max_pids));
    }
    if has("cpu") {
        writes.push(required("cpu.max", format!("{} {}", cpu_quota_us(limits.cpu_millis), CPU_PERIOD_US)));
    }
    writes
}

/// The line written to a v2 `cgroup.subtree_control` to enable the controllers
/// Slipway uses, limited to those the host has.
pub fn v2_subtree_line(controllers: &[String]) -> String {
    ["memory", "pids", "cpu"].iter().filter(|c| controllers.iter().any(|x| x == *c)).map(|c| format!("+{c}")).collect::<Vec<_>>().join(" ")
}

/// Writes `writes` into `dir`, skipping optional files that do not exist.
pub fn apply_writes(dir: &Path, writes: &[Write]) -> Result<(), SandboxError> {
    for write in writes {
        let path = dir.join(write.file);
        if write.optional && !path.exists() {
            continue;
        }
        fs::write(&path, &write.value).map_err(|source| SandboxError::CgroupIo { path, source })?;
    }
    Ok(())
}

/// Reads `key N` from a flat keyed file such as `memory.events`,
/// `memory.oom_control` or `pids.events`.
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        if k == key {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Parses a `cgroup.procs` file.
pub fn parse_procs(text: &str) -> Vec<i32> {
    text.split_whitespace().filter_map(|s| s.parse().ok()).collect()
}

#[derive(Debug, Clone)]
enum Layout {
    V1 { memory: Option<PathBuf>, pids: Option<PathBuf>, cpu: Option<PathBuf>, freezer: Option<PathBuf> },
    V2 { dir: PathBuf },
}

/// One sandbox's cgroup (on v1, its directory in each hierarchy).
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
}

impl Cgroup {
    /// Creates `<parent>/<name>` and sets the limits. A leftover group of the same
    /// name (from an orchestrator that crashed) is emptied and removed first, so a
    /// restarted orchestrator never inherits an old sandbox's processes.
    /// Returns `None` when the host has no cgroups.
    pub fn create(version: &CgroupVersion, parent: &str, name: &str, limits: &Limits) -> Result<Option<Cgroup>, SandboxError> {
        match version {
            CgroupVersion::None => Ok(None),
            CgroupVersion::V1(h) => {
                let leaf = |mount: &Option<PathBuf>| mount.as_ref().map(|m| m.join(parent).join(name));
                let cgroup = Cgroup {
                    layout: Layout::V1 { memory: leaf(&h.memory), pids: leaf(&h.pids), cpu: leaf(&h.cpu), freezer: leaf(&h.freezer) },
                };
                cgroup.clear_leftover()?;
                let writes = v1_writes(limits);
                for dir in cgroup.dirs() {
                    fs::create_dir_all(&dir).map_err(|source| SandboxError::CgroupIo { path: dir.clone(), source })?;
                }
                if let Layout::V1 { memory, pids, cpu, .. } = &cgroup.layout {
                    if let Some(dir) = memory {
                        apply_writes(dir, &writes.memory)?;
                    }
                    if let Some(dir) = pids {
                        apply_writes(dir, &writes.pids)?;
                    }
                    if let Some(dir) = cpu {
                        apply_writes(dir, &writes.cpu)?;
                    }
                }
                Ok(Some(cgroup))
            }
            CgroupVersion::V2 { root, controllers } => {
                let parent_dir = root.join(parent);
                let dir = parent_dir.join(name);
                let cgroup = Cgroup { layout: Layout::V2 { dir: dir.clone() } };
                cgroup.clear_leftover()?;
                fs::create_dir_all(&parent_dir).map_err(|source| SandboxError::CgroupIo { path: parent_dir.clone(), source })?;
                // Controllers must be enabled on every level above the leaf: in the
                // root for the parent, in the parent for the leaf.
                let line = v2_subtree_line(controllers);
                if !line.is_empty() {
                    enable_controllers(root, &line)?;
                    enable_controllers(&parent_dir, &line)?;
                }
                fs::create_dir(&dir).map_err(|source| SandboxError::CgroupIo { path: dir.clone(), source })?;
                apply_writes(&dir, &v2_writes(limits, controllers))?;
                Ok(Some(cgroup))
            }
        }
    }

    /// Every directory of this group (one on v2, one per hierarchy on v1).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { dir } => vec![dir.clone()],
            Layout::V1 { memory, pids, cpu, freezer } => {
                let mut dirs: Vec<PathBuf> = [memory, pids, cpu, freezer].into_iter().flatten().cloned().collect();
                // Co-mounted controllers share a directory; list it once.
                dirs.dedup();
                dirs
            }
        }
    }

    /// The `cgroup.procs` files a new process must write its pid into.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().into_iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// The directory whose `cgroup.procs` lists the sandbox's processes.
    fn membership_dir(&self) -> &Path {
        match &self.layout {
            Layout::V2 { dir } => dir,
            Layout::V1 { memory, pids, cpu, freezer } => {
                [pids, memory, freezer, cpu].into_iter().flatten().next().expect("a v1 cgroup is only created with at least one hierarchy")
            }
        }
    }

    /// Changes the CPU limit of a running group (the startup boost is lowered this way once an
    /// app answers). A host without the cpu controller has nothing to change.
    pub fn set_cpu_millis(&self, cpu_millis: u32) -> io::Result<()> {
        match &self.layout {
            Layout::V2 { dir } => {
                let file = dir.join("cpu.max");
                if file.exists() {
                    fs::write(file, format!("{} {}", cpu_quota_us(cpu_millis), CPU_PERIOD_US))?;
                }
            }
            Layout::V1 { cpu: Some(dir), .. } => fs::write(dir.join("cpu.cfs_quota_us"), cpu_quota_us(cpu_millis).to_string())?,
            Layout::V1 { cpu: None, .. } => {}
        }
        Ok(())
    }

    /// Whether the group exists at all (it does from `create` until `remove`).
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.exists())
    }

    /// Host pids of every process in the group.
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        match fs::read_to_string(self.membership_dir().join("cgroup.procs")) {
            Ok(text) => Ok(parse_procs(&text)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(e),
        }
    }

    fn memory_file(&self, v1: &str, v2: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { memory, .. } => memory.as_ref().map(|d| d.join(v1)),
            Layout::V2 { dir } => Some(dir.join(v2)),
        }
    }

    /// Bytes of memory charged to the group right now.
    pub fn memory_usage(&self) -> Option<u64> {
        let path = self.memory_file("memory.usage_in_bytes", "memory.current")?;
        fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    /// How many processes the kernel's OOM killer has killed in this group.
    pub fn oom_kills(&self) -> Option<u64> {
        let path = self.memory_file("memory.oom_control", "memory.events")?;
        parse_keyed(&fs::read_to_string(path).ok()?, "oom_kill")
    }

    fn pids_file(&self, file: &str) -> Option<PathBuf> {
        match &self.layout {
            Layout::V1 { pids, .. } => pids.as_ref().map(|d| d.join(file)),
            Layout::V2 { dir } => Some(dir.join(file)),
        }
    }

    /// The number of tasks counted against `pids.max`.
    pub fn pids_current(&self) -> Option<u64> {
        fs::read_to_string(self.pids_file("pids.current")?).ok()?.trim().parse().ok()
    }

    /// How many times a fork was refused because of `pids.max`.
    pub fn pids_refused(&self) -> Option<u64> {
        parse_keyed(&fs::read_to_string(self.pids_file("pids.events")?).ok()?, "max")
    }

    /// The kernel freezer interface: the file to write and the values meaning
    /// frozen and thawed. `None` when this group cannot be frozen by the kernel.
    fn freezer(&self) -> Option<(PathBuf, &'static str, &'static str)> {
        match &self.layout {
            Layout::V1 { freezer, .. } => freezer.as_ref().map(|d| (d.join("freezer.state"), "FROZEN", "THAWED")),
            Layout::V2 { dir } => {
                let file = dir.join("cgroup.freeze");
                file.exists().then_some((file, "1", "0"))
            }
        }
    }

    /// Whether the kernel reports the group as completely frozen.
    fn kernel_frozen(&self) -> io::Result<bool> {
        match &self.layout {
            Layout::V1 { freezer: Some(dir), .. } => Ok(fs::read_to_string(dir.join("freezer.state"))?.trim() == "FROZEN"),
            Layout::V1 { .. } => Ok(false),
            Layout::V2 { dir } => Ok(parse_keyed(&fs::read_to_string(dir.join("cgroup.events"))?, "frozen") == Some(1)),
        }
    }

    /// Stops every process of the group. Uses the kernel freezer and waits until
    /// the kernel reports the group frozen; without a freezer, sends SIGSTOP to
    /// every member until no new member appears (a process forking at that very
    /// moment can slip through, hence the repetition).
    pub async fn freeze(&self) -> Result<(), SandboxError> {
        let Some((file, frozen, _)) = self.freezer() else { return self.freeze_with_signals().await };
        fs::write(&file, frozen).map_err(|source| SandboxError::CgroupIo { path: file.clone(), source })?;
        let start = Instant::now();
        loop {
            match self.kernel_frozen() {
                Ok(true) => return Ok(()),
                Ok(false) if start.elapsed() < FREEZE_TIMEOUT => tokio::time::sleep(Duration::from_millis(5)).await,
                Ok(false) => return Err(SandboxError::FreezeTimeout { path: file, waited_ms: FREEZE_TIMEOUT.as_millis() as u64 }),
                Err(source) => return Err(SandboxError::CgroupIo { path: file, source }),
            }
        }
    }

    /// Lets a frozen group run again.
    pub async fn thaw(&self) -> Result<(), SandboxError> {
        let Some((file, _, thawed)) = self.freezer() else { return self.thaw_with_signals() };
        fs::write(&file, thawed).map_err(|source| SandboxError::CgroupIo { path: file, source })
    }

    /// The SIGSTOP fallback for hosts without a freezer.
    pub(crate) async fn freeze_with_signals(&self) -> Result<(), SandboxError> {
        let mut stopped: Vec<i32> = Vec::new();
        for _ in 0..50 {
            let pids = self.pids().map_err(|source| self.io_error(source))?;
            let fresh: Vec<i32> = pids.iter().copied().filter(|p| !stopped.contains(p)).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            for pid in fresh {
                // SAFETY: kill(2) has no memory-safety preconditions; the pid was
                // just read from the group's membership list.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
                stopped.push(pid);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(SandboxError::FreezeTimeout { path: self.membership_dir().join("cgroup.procs"), waited_ms: 500 })
    }

    /// The SIGCONT counterpart of [`Cgroup::freeze_with_signals`].
    pub(crate) fn thaw_with_signals(&self) -> Result<(), SandboxError> {
        for pid in self.pids().map_err(|source| self.io_error(source))? {
            // SAFETY: as in freeze_with_signals.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        Ok(())
    }

    fn io_error(&self, source: io::Error) -> SandboxError {
        SandboxError::CgroupIo { path: self.membership_dir().to_path_buf(), source }
    }

    /// One pass of killing: on v2 with `cgroup.kill` (Linux 5.14+) the kernel kills
    /// every member atomically; otherwise the group is frozen (so nobody can fork
    /// while we read the list), every member gets SIGKILL, and the group is thawed
    /// so the signals are delivered. Returns without waiting for the deaths.
    pub fn kill_pass(&self) -> io::Result<()> {
        self.kill_pass_sparing(None)
    }

    /// Like [`Cgroup::kill_pass`] but leaves `spare` alive. The sandbox spares
    /// bubblewrap's outer process: it then reaps the sandbox's init and exits by
    /// itself, instead of orphaning init to the host's PID 1 as a zombie.
    pub fn kill_pass_sparing(&self, spare: Option<i32>) -> io::Result<()> {
        if let Layout::V2 { dir } = &self.layout {
            let kill = dir.join("cgroup.kill");
            if spare.is_none() && kill.exists() {
                return fs::write(kill, "1");
            }
        }
        let freezer = self.freezer();
        if let Some((file, frozen, _)) = &freezer {
            // A freezer that does not reach FROZEN quickly still stops most forks;
            // the caller repeats the pass until the group is empty anyway.
            let _ = fs::write(file, frozen);
            let start = Instant::now();
            while !self.kernel_frozen().unwrap_or(true) && start.elapsed() < Duration::from_millis(200) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        for pid in self.pids()?.into_iter().filter(|p| Some(*p) != spare) {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        if let Some((file, _, thawed)) = &freezer {
            fs::write(file, thawed)?;
        }
        Ok(())
    }

    /// Kills every process in the group, including ones that left the sandbox's
    /// process group or session, and waits until the group is empty.
    pub async fn kill_all(&self) -> Result<(), SandboxError> {
        self.kill_all_sparing(None).await
    }

    /// Kills every process but `spare` and waits until only it (or nothing) is left.
    pub async fn kill_all_sparing(&self, spare: Option<i32>) -> Result<(), SandboxError> {
        let start = Instant::now();
        loop {
            let pids = self.pids().map_err(|source| self.io_error(source))?;
            if pids.iter().all(|p| Some(*p) == spare) {
                return Ok(());
            }
            if start.elapsed() > KILL_TIMEOUT {
                return Err(SandboxError::CgroupBusy { path: self.membership_dir().to_path_buf() });
            }
            self.kill_pass_sparing(spare).map_err(|source| self.io_error(source))?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One attempt at removing every directory of the group; `Ok(true)` once all
    /// are gone. Removal fails with EBUSY while a process (even a dying one) is
    /// still inside.
    pub fn try_remove(&self) -> io::Result<bool> {
        let mut all_gone = true;
        for dir in self.dirs() {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => all_gone = false,
                Err(e) => return Err(e),
            }
        }
        Ok(all_gone)
    }

    /// Kills what is left and removes the group's directories.
    pub async fn remove(&self) -> Result<(), SandboxError> {
        let start = Instant::now();
        loop {
            self.kill_all().await?;
            if self.try_remove().map_err(|source| self.io_error(source))? {
                return Ok(());
            }
            if start.elapsed() > KILL_TIMEOUT {
                return Err(SandboxError::CgroupBusy { path: self.membership_dir().to_path_buf() });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Blocking version of [`Cgroup::remove`] for `Drop`, which cannot await.
    /// `spare` (bubblewrap's outer process) gets a moment to reap the sandbox's
    /// init and exit by itself before everything left is killed.
    pub fn remove_blocking(&self, spare: Option<i32>) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            match self.pids() {
                Ok(pids) if pids.iter().all(|p| Some(*p) == spare) => break,
                Ok(_) => {
                    let _ = self.kill_pass_sparing(spare);
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break,
            }
        }
        while start.elapsed() < Duration::from_secs(3) && !self.pids().map(|p| p.is_empty()).unwrap_or(true) {
            std::thread::sleep(Duration::from_millis(20));
        }
        while start.elapsed() < KILL_TIMEOUT {
            let _ = self.kill_pass();
            match self.try_remove() {
                Ok(true) => return,
                Ok(false) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => {
                    tracing::warn!(error = %e, dir = %self.membership_dir().display(), "could not remove sandbox cgroup");
                    return;
                }
            }
        }
        tracing::warn!(dir = %self.membership_dir().display(), "sandbox cgroup still busy; left behind");
    }

    /// Removes a group of the same name left by an earlier orchestrator run.
    fn clear_leftover(&self) -> Result<(), SandboxError> {
        if !self.exists() {
            return Ok(());
        }
        tracing::warn!(dir = %self.membership_dir().display(), "removing a leftover sandbox cgroup");
        let start = Instant::now();
        loop {
            self.kill_pass().map_err(|source| self.io_error(source))?;
            if self.try_remove().map_err(|source| self.io_error(source))? {
                return Ok(());
            }
            if start.elapsed() > KILL_TIMEOUT {
                return Err(SandboxError::CgroupBusy { path: self.membership_dir().to_path_buf() });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Enables controllers in `dir/cgroup.subtree_control`, all at once, and if the
/// kernel refuses the combined line, one by one so that a single unavailable
/// controller does not cost the others.
fn enable_controllers(dir: &Path, line: &str) -> Result<(), SandboxError> {
    let path = dir.join("cgroup.subtree_control");
    if fs::write(&path, line).is_ok() {
        return Ok(());
    }
    let mut last_error = None;
    for word in line.split_whitespace() {
        if let Err(e) = fs::write(&path, word) {
            last_error = Some(e);
        }
    }
    match last_error {
        Some(source) => Err(SandboxError::CgroupIo { path, source }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { memory_bytes: 256 << 20, cpu_millis: 1500, max_pids: 64, timeout: None }
    }

    fn all_controllers() -> Vec<String> {
        "cpuset cpu io memory hugetlb pids rdma misc".split(' ').map(str::to_string).collect()
    }

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";

    #[test]
    fn mountinfo_parsing_finds_v1_controllers_including_co_mounted_ones() {
        let mounts = parse_mountinfo(HYBRID);
        let cpu = mounts.iter().find(|m| m.controllers.contains(&"cpu".to_string())).expect("cpu hierarchy");
        assert_eq!(cpu.mount_point, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(cpu.controllers, ["cpu", "cpuacct"]);
        let systemd = mounts.iter().find(|m| m.mount_point.ends_with("systemd")).expect("systemd hierarchy");
        assert!(systemd.controllers.is_empty());
        assert_eq!(mounts.iter().filter(|m| m.unified).count(), 1);
    }

    #[test]
    fn a_hybrid_host_whose_unified_mount_has_no_memory_controller_uses_v1() {
        let version = choose(&parse_mountinfo(HYBRID), |_| Some(String::new()));
        let CgroupVersion::V1(h) = version else { panic!("expected v1, got {version:?}") };
        assert_eq!(h.memory, Some(PathBuf::from("/sys/fs/cgroup/memory")));
        assert_eq!(h.pids, Some(PathBuf::from("/sys/fs/cgroup/pids")));
        assert_eq!(h.cpu, Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")));
        assert_eq!(h.freezer, Some(PathBuf::from("/sys/fs/cgroup/freezer")));
    }

    #[test]
    fn a_unified_host_with_memory_and_pids_uses_v2() {
        let text = "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let version = choose(&parse_mountinfo(text), |p| {
            assert_eq!(p, Path::new("/sys/fs/cgroup/cgroup.controllers"));
            Some("cpuset cpu io memory pids\n".into())
        });
        assert_eq!(
            version,
            CgroupVersion::V2 {
                root: "/sys/fs/cgroup".into(),
                controllers: vec!["cpuset".into(), "cpu".into(), "io".into(), "memory".into(), "pids".into()]
            }
        );
    }

    #[test]
    fn a_host_without_cgroup_mounts_has_none() {
        assert_eq!(choose(&parse_mountinfo("22 1 0:5 / /proc rw - proc proc rw\n"), |_| None), CgroupVersion::None);
    }

    #[test]
    fn mountinfo_octal_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/sys/fs/my\\040cgroup"), "/sys/fs/my cgroup");
    }

    #[test]
    fn v1_writes_cap_memory_plus_swap_at_the_memory_limit_and_quota_cpu_per_period() {
        let w = v1_writes(&limits());
        assert_eq!(w.memory[0], required("memory.limit_in_bytes", 268435456u64));
        assert_eq!(w.memory[1], optional("memory.memsw.limit_in_bytes", 268435456u64));
        assert_eq!(w.memory[2], optional("memory.swappiness", 0));
        assert_eq!(w.pids, [required("pids.max", 64)]);
        assert_eq!(w.cpu, [required("cpu.cfs_period_us", 100000), required("cpu.cfs_quota_us", 150000)]);
    }

    #[test]
    fn v2_writes_only_touch_controllers_the_host_has() {
        let only_memory = v2_writes(&limits(), &["memory".to_string()]);
        assert!(only_memory.iter().all(|w| w.file.starts_with("memory.")));
        assert_eq!(v2_subtree_line(&["pids".to_string(), "io".to_string()]), "+pids");
    }

    #[test]
    fn creating_a_v2_group_enables_controllers_and_writes_the_limit_files() {
        let root = tempfile::tempdir().expect("temp dir");
        fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory hugetlb pids rdma misc\n").expect("write controllers");
        fs::write(root.path().join("cgroup.subtree_control"), "").expect("write subtree_control");
        let version = CgroupVersion::V2 { root: root.path().to_path_buf(), controllers: all_controllers() };

        let cgroup = Cgroup::create(&version, "slipway", "app-quiz-r3-i0", &limits()).expect("create").expect("v2 group");

        let read = |p: &str| fs::read_to_string(root.path().join(p)).expect(p);
        assert_eq!(read("cgroup.subtree_control"), "+memory +pids +cpu");
        assert_eq!(read("slipway/cgroup.subtree_control"), "+memory +pids +cpu");
        assert_eq!(read("slipway/app-quiz-r3-i0/memory.max"), "268435456");
        assert_eq!(read("slipway/app-quiz-r3-i0/pids.max"), "64");
        assert_eq!(read("slipway/app-quiz-r3-i0/cpu.max"), "150000 100000");
        // A fake directory has no memory.swap.max, so the optional write is skipped
        // rather than creating a file the kernel would not have.
        assert!(!root.path().join("slipway/app-quiz-r3-i0/memory.swap.max").exists());
        assert_eq!(cgroup.procs_files(), [root.path().join("slipway/app-quiz-r3-i0/cgroup.procs")]);
    }

    #[test]
    fn optional_v2_files_are_written_when_the_kernel_provides_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::write(dir.path().join("memory.swap.max"), "max").expect("seed swap file");
        fs::write(dir.path().join("memory.oom.group"), "0").expect("seed oom.group");
        apply_writes(dir.path(), &v2_writes(&limits(), &all_controllers())).expect("apply");
        assert_eq!(fs::read_to_string(dir.path().join("memory.swap.max")).expect("swap"), "0");
        assert_eq!(fs::read_to_string(dir.path().join("memory.oom.group")).expect("oom.group"), "1");
    }

    #[test]
    fn v2_membership_usage_and_oom_counters_are_read_from_the_leaf() {
        let root = tempfile::tempdir().expect("temp dir");
        let version = CgroupVersion::V2 { root: root.path().to_path_buf(), controllers: all_controllers() };
        let cgroup = Cgroup::create(&version, "slipway", "x", &limits()).expect("create").expect("group");
        let leaf = root.path().join("slipway/x");
        fs::write(leaf.join("cgroup.procs"), "12\n34\n").expect("procs");
        fs::write(leaf.join("memory.current"), "4096\n").expect("current");
        fs::write(leaf.join("memory.events"), "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\noom_group_kill 1\n").expect("events");
        assert_eq!(cgroup.pids().expect("pids"), [12, 34]);
        assert_eq!(cgroup.memory_usage(), Some(4096));
        assert_eq!(cgroup.oom_kills(), Some(1));
    }

    #[test]
    fn v1_oom_control_and_pids_events_are_parsed() {
        assert_eq!(parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", "oom_kill"), Some(3));
        assert_eq!(parse_keyed("max 17\n", "max"), Some(17));
        assert_eq!(parse_keyed("oom_kill_disable 0\n", "oom_kill"), None);
    }

    #[test]
    fn the_cpu_quota_is_proportional_to_thousandths_of_a_core() {
        assert_eq!(cpu_quota_us(1000), 100_000);
        assert_eq!(cpu_quota_us(250), 25_000);
        assert_eq!(cpu_quota_us(2000), 200_000);
    }
}
