//! What `/proc` says about processes: children, resident memory, start times.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};

/// The fields of `/proc/PID/stat` from field 3 (state) on.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    Some(rest.split(' ').map(str::to_string).collect())
}

/// `(parent pid, start time in clock ticks)` of a live (not zombie) process, from
/// `/proc/PID/stat`.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let fields = stat_fields(pid)?;
    if fields.first().map(String::as_str) == Some("Z") {
        return None;
    }
    // `rest` starts at field 3 (state): ppid is field 4, starttime field 22.
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// The parent of a live process.
pub(crate) fn parent(pid: u32) -> Option<u32> {
    stat(pid).map(|(ppid, _)| ppid)
}

/// The command name of a process (`/proc/PID/comm`: the program's file name, cut to 15 bytes).
pub(crate) fn comm(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(text.trim_end().to_string())
}

/// Every process below `root` (children, grandchildren, ...), with its start time.
pub(crate) fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut children: BTreeMap<u32, Vec<(u32, u64)>> = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((ppid, start)) = stat(pid) {
                children.entry(ppid).or_default().push((pid, start));
            }
        }
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &(c, start) in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                out.push((c, start));
                stack.push(c);
            }
        }
    }
    out
}

/// Whether `pid` is still the process that started at `start` (not exited or a zombie, not
/// reused).
pub(crate) fn same_process(pid: u32, start: u64) -> bool {
    stat(pid).is_some_and(|(_, s)| s == start)
}

/// CPU time a process's live threads have used so far, in seconds, from each thread's
/// `/proc/PID/task/TID/schedstat` (nanoseconds on a CPU; finer than the 10 ms ticks of
/// `/proc/PID/stat`).
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns: u64 = 0;
    for t in tasks.flatten() {
        let text = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        ns += text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}

/// CPU seconds used so far by `root` and by everything below it, separately.
pub(crate) fn tree_cpu_secs(root: u32) -> (f64, f64) {
    let own = cpu_secs(root).unwrap_or(0.0);
    let below = descendants(root)
        .iter()
        .filter_map(|(p, _)| cpu_secs(*p))
        .sum();
    (own, below)
}

/// CPU time, in `USER_HZ` ticks, all CPUs spent busy so far (`/proc/stat`: user, nice, system,
/// irq, softirq, steal).
pub(crate) fn system_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| v.get(i)).sum()
}

/// CPU time, in ticks, of this process plus every child it has waited for (which includes
/// their own waited-for children) plus the orphans [`count_orphans`] saw: the bench's whole
/// tree once its children are gone.
pub(crate) fn own_tree_ticks() -> u64 {
    reaped_ticks() + ORPHAN_TICKS.load(Ordering::Relaxed)
}

fn reaped_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(close) = text.rfind(')') else {
        return 0;
    };
    let fields: Vec<&str> = text[close + 2..].split(' ').collect();
    // `fields` starts at field 3: utime, stime, cutime, cstime are fields 14-17.
    (11..=14)
        .filter_map(|i| fields.get(i)?.parse::<u64>().ok())
        .sum()
}

/// CPU ticks of processes of the bench's tree that nobody in the tree reaped (environments a
/// stopped lamina left to init), so that [`own_tree_ticks`] misses them.
static ORPHAN_TICKS: AtomicU64 = AtomicU64::new(0);

/// After lamina exited: count the CPU time of each process of its former tree (`(pid, start)`)
/// that still exists, alive or a zombie, since lamina did not reap it.
pub(crate) fn count_orphans(tree: &[(u32, u64)]) {
    for &(pid, start) in tree {
        let Some(f) = stat_fields(pid) else { continue };
        if f.get(19).and_then(|v| v.parse::<u64>().ok()) != Some(start) {
            continue;
        }
        let ticks: u64 = (11..=14)
            .filter_map(|i| f.get(i)?.parse::<u64>().ok())
            .sum();
        ORPHAN_TICKS.fetch_add(ticks, Ordering::Relaxed);
    }
}

/// A `kB` field of `/proc/PID/status` or `/proc/PID/smaps_rollup`, in bytes.
fn kb_field(path: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Resident set size (`VmRSS`), in bytes.
pub(crate) fn rss(pid: u32) -> Option<u64> {
    kb_field(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Proportional set size (shared pages split between the processes that map them), in bytes.
pub(crate) fn pss(pid: u32) -> Option<u64> {
    kb_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process() {
        let me = std::process::id();
        assert!(rss(me).unwrap() > 0);
        let (_, start) = stat(me).unwrap();
        assert!(cpu_secs(me).is_some());
        assert!(same_process(me, start));
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(descendants(me).iter().any(|(p, _)| *p == child.id()));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
