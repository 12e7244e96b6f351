//! The host's CPU, memory, disk and network, from `/proc` and `statvfs`. The parsers and the rate
//! arithmetic are pure (tested on recorded text below); `read` is the thin adapter that reads the
//! files. Linux only, like the rest of the embedded shape.

use std::path::Path;

/// Cumulative CPU time from the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuTimes {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is inside user).
    pub total: u64,
}

/// One reading of the host's counters and gauges.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostReading {
    pub cpu: CpuTimes,
    pub mem_total_bytes: u64,
    pub mem_available_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    /// Bytes received and sent by every interface but `lo`, since boot.
    pub net_rx_bytes: u64,
    pub net_tx_bytes: u64,
}

/// What the dashboard shows for the host over one interval.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct HostSample {
    pub cpu_percent: Option<f64>,
    pub memory_percent: f64,
    pub disk_percent: f64,
    pub net_rx_kbps: Option<f64>,
    pub net_tx_kbps: Option<f64>,
}

/// The `cpu ` line of `/proc/stat`.
pub fn parse_cpu(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes { busy: total.saturating_sub(idle), total })
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo(meminfo: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        meminfo.lines().find_map(|line| line.strip_prefix(name)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok().map(|kb| kb * 1024))
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// Received and sent bytes summed over every interface of `/proc/net/dev` but `lo`.
pub fn parse_net_dev(net_dev: &str) -> Option<(u64, u64)> {
    let mut totals = (0u64, 0u64);
    for line in net_dev.lines().skip(2) {
        let (name, counters) = line.split_once(':')?;
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
        if fields.len() < 9 {
            return None;
        }
        totals.0 += fields[0];
        totals.1 += fields[8];
    }
    Some(totals)
}

fn percent(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 {
        0.0
    } else {
        (part / whole * 100.0).clamp(0.0, 100.0)
    }
}

/// The sample between two readings `elapsed_secs` apart; rates need a previous reading (and a
/// counter that did not go back, as after a reboot).
pub fn sample(previous: Option<&HostReading>, current: &HostReading, elapsed_secs: f64) -> HostSample {
    let rate = |before: u64, after: u64| (elapsed_secs > 0.0 && after >= before).then(|| (after - before) as f64 / 1024.0 / elapsed_secs);
    let (cpu_percent, net_rx_kbps, net_tx_kbps) = match previous {
        Some(before) => {
            let cpu = (current.cpu.total > before.cpu.total && current.cpu.busy >= before.cpu.busy)
                .then(|| percent((current.cpu.busy - before.cpu.busy) as f64, (current.cpu.total - before.cpu.total) as f64));
            (cpu, rate(before.net_rx_bytes, current.net_rx_bytes), rate(before.net_tx_bytes, current.net_tx_bytes))
        }
        None => (None, None, None),
    };
    HostSample {
        cpu_percent,
        memory_percent: percent(current.mem_total_bytes.saturating_sub(current.mem_available_bytes) as f64, current.mem_total_bytes as f64),
        disk_percent: percent(
            current.disk_total_bytes.saturating_sub(current.disk_available_bytes) as f64,
            current.disk_total_bytes as f64,
        ),
        net_rx_kbps,
        net_tx_kbps,
    }
}

/// Reads the host now; `disk_path` is the directory whose file system counts (the data dir).
pub fn read(disk_path: &Path) -> Result<HostReading, String> {
    let read_file = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"));
    let cpu = parse_cpu(&read_file("/proc/stat")?).ok_or("/proc/stat has no cpu line")?;
    let (mem_total_bytes, mem_available_bytes) =
        parse_meminfo(&read_file("/proc/meminfo")?).ok_or("/proc/meminfo lacks MemTotal or MemAvailable")?;
    let (net_rx_bytes, net_tx_bytes) = parse_net_dev(&read_file("/proc/net/dev")?).ok_or("/proc/net/dev is not in the expected format")?;
    let (disk_total_bytes, disk_available_bytes) = disk_space(disk_path)?;
    Ok(HostReading { cpu, mem_total_bytes, mem_available_bytes, disk_total_bytes, disk_available_bytes, net_rx_bytes, net_tx_bytes })
}

/// Total and available bytes of the file system holding `path` (available to unprivileged users,
/// as `df` shows it).
fn disk_space(path: &Path) -> Result<(u64, u64), String> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| format!("{} has a NUL byte", path.display()))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: c_path is a valid NUL-terminated string and stats points to writable memory of the
    // right size; statvfs fills it completely when it returns 0.
    let status = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if status != 0 {
        return Err(format!("statvfs {}: {}", path.display(), std::io::Error::last_os_error()));
    }
    // SAFETY: statvfs returned 0, so the struct is initialised.
    let stats = unsafe { stats.assume_init() };
    // fsblkcnt_t and f_frsize are u64 here, narrower on some targets: the casts are for those.
    #[allow(clippy::unnecessary_cast)]
    let fragment = stats.f_frsize as u64;
    #[allow(clippy::unnecessary_cast)]
    let sizes = (stats.f_blocks as u64 * fragment, stats.f_bavail as u64 * fragment);
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  45459 0 5468 32038 452 0 148 27 0 0\ncpu0 23187 0 2732 15508 306 0 41 13 0 0\nintr 1 2 3\n";
    const MEMINFO: &str = "MemTotal:       24731408 kB\nMemFree:        20000000 kB\nMemAvailable:   24054700 kB\n";
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:   51516     625    0    0    0     0          0         0    51516     625    0    0    0     0       0          0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  eth1: 24 1 0 0 0 0 0 0 48 1 0 0 0 0 0 0\n";

    #[test]
    fn proc_files_parse() {
        // busy = 45459 + 5468 + 148 + 27 = 51102; total adds idle 32038 and iowait 452.
        assert_eq!(parse_cpu(STAT), Some(CpuTimes { busy: 51102, total: 83592 }));
        assert_eq!(parse_cpu("intr 1\n"), None);
        assert_eq!(parse_meminfo(MEMINFO), Some((24731408 * 1024, 24054700 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
        assert_eq!(parse_net_dev(NET_DEV), Some((1024, 2048)), "lo is left out");
        assert_eq!(parse_net_dev("a\nb\n  eth0: x\n"), None);
    }

    #[test]
    fn rates_come_from_two_readings() {
        let before = HostReading {
            cpu: CpuTimes { busy: 100, total: 1000 },
            mem_total_bytes: 1000,
            mem_available_bytes: 250,
            disk_total_bytes: 200,
            disk_available_bytes: 20,
            net_rx_bytes: 0,
            net_tx_bytes: 10240,
        };
        let after = HostReading { cpu: CpuTimes { busy: 150, total: 1200 }, net_rx_bytes: 20480, net_tx_bytes: 10240, ..before };
        let first = sample(None, &before, 10.0);
        assert_eq!((first.cpu_percent, first.net_rx_kbps, first.memory_percent, first.disk_percent), (None, None, 75.0, 90.0));
        let next = sample(Some(&before), &after, 10.0);
        assert_eq!((next.cpu_percent, next.net_rx_kbps, next.net_tx_kbps), (Some(25.0), Some(2.0), Some(0.0)));
        let rebooted = HostReading { net_rx_bytes: 5, cpu: CpuTimes { busy: 1, total: 2 }, ..after };
        let odd = sample(Some(&after), &rebooted, 10.0);
        assert_eq!((odd.cpu_percent, odd.net_rx_kbps), (None, None), "counters that went back give no rate");
    }
}
