//! Memory pressure: which frozen apps to stop so that the host keeps `min_free` bytes available.
//! Frozen apps keep their memory so they can thaw in milliseconds; when the host runs short, the
//! ones frozen longest are the least likely to be asked for soon, so they go first.
//!
//! Pure: ages and sizes are passed in. It deliberately does not read `/proc/meminfo` or stop
//! anything (the loop in `run.rs` does) and never touches running apps: a running app is in use.

/// One frozen app: how long it has been frozen and what stopping it would give back.
#[derive(Debug, Clone, PartialEq)]
pub struct Frozen {
    pub app: String,
    pub frozen_for_s: f64,
    /// Its instances' memory; `None` when unknown (no cgroup). Unknown sizes are assumed to free
    /// nothing, so they never stop the eviction early, but they are still evicted in age order.
    pub bytes: Option<u64>,
}

/// The apps to stop, oldest frozen first, until what they free covers the shortfall of
/// `available` below `min_free`. Nothing when there is no shortfall. Worked example (test
/// `evicts_the_oldest_frozen_apps_until_the_shortfall_is_covered`): 100 MB available with 300 MB
/// wanted is 200 MB short; apps frozen 50 s (150 MB), 40 s (80 MB) and 10 s (500 MB) → the first
/// two free 230 MB, enough, so the newest one stays.
pub fn choose(frozen: &[Frozen], available: u64, min_free: u64) -> Vec<String> {
    let Some(mut shortfall) = min_free.checked_sub(available).filter(|short| *short > 0) else { return Vec::new() };
    let mut by_age: Vec<&Frozen> = frozen.iter().collect();
    by_age.sort_by(|a, b| b.frozen_for_s.total_cmp(&a.frozen_for_s).then_with(|| a.app.cmp(&b.app)));
    let mut chosen = Vec::new();
    for app in by_age {
        chosen.push(app.app.clone());
        shortfall = shortfall.saturating_sub(app.bytes.unwrap_or(0));
        if shortfall == 0 {
            break;
        }
    }
    chosen
}

/// `MemAvailable` from `/proc/meminfo` text, in bytes.
pub fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1024 * 1024;

    fn check(frozen: &[(&str, f64, Option<u64>)], available: u64, min_free: u64, expected: &[&str]) {
        let frozen: Vec<Frozen> =
            frozen.iter().map(|(app, age, bytes)| Frozen { app: (*app).to_owned(), frozen_for_s: *age, bytes: *bytes }).collect();
        assert_eq!(choose(&frozen, available, min_free), expected, "available {available}, min_free {min_free}");
    }

    #[test]
    fn evicts_the_oldest_frozen_apps_until_the_shortfall_is_covered() {
        let apps = [("new", 10.0, Some(500 * MB)), ("old", 50.0, Some(150 * MB)), ("mid", 40.0, Some(80 * MB))];
        check(&apps, 100 * MB, 300 * MB, &["old", "mid"]);
        check(&apps, 100 * MB, 200 * MB, &["old"]);
        check(&apps, 300 * MB, 300 * MB, &[]);
        check(&apps, 900 * MB, 300 * MB, &[]);
        check(&apps, 0, 10_000 * MB, &["old", "mid", "new"]);
    }

    #[test]
    fn unknown_sizes_are_evicted_in_age_order_without_counting() {
        check(&[("a", 5.0, None), ("b", 9.0, None), ("c", 1.0, Some(100 * MB))], 0, 50 * MB, &["b", "a", "c"]);
    }

    #[test]
    fn reads_mem_available_from_meminfo() {
        let text = "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(mem_available(text), Some(2048 * 1024));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }
}
