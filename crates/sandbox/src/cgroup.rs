//! Control groups: the layout detected at start, and one cgroup per environment.
//!
//! Three layouts exist in the wild and all are handled:
//! - **v2** (unified): one `cgroup2` mount; limits, freezing and killing all in one tree.
//! - **v1**: one mount per controller (`memory`, `cpu`, `pids`, `freezer`, ...).
//! - **hybrid**: v1 controllers plus a `cgroup2` mount without controllers (this is what the
//!   development machine has). Limits go to v1; freezing and `cgroup.kill` use the v2 tree when
//!   the kernel offers them there.
//!
//! Each environment gets a directory `lamina-{daemon pid}/{environment}` under the daemon's own
//! cgroup in every hierarchy used. A missing controller degrades the sandbox with a warning
//! ([`Cgroups::warnings`]); it never fails a start.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Linux's CPU share per MB of function memory: 1769 MB is one full vCPU, as on Lambda.
pub const MB_PER_VCPU: u64 = 1769;
/// The CFS period used for CPU quotas, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;
/// The smallest quota the kernel accepts, in microseconds.
const MIN_QUOTA_US: u64 = 1_000;

/// Which kind of hierarchy a controller lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// cgroup v1 (one mount per controller).
    V1,
    /// cgroup v2 (unified).
    V2,
}

/// The cgroup layout found at start, and where environments' cgroups are made.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// Base directory (ours) in the cgroup2 tree, if one is mounted and writable.
    v2: Option<PathBuf>,
    /// Controllers enabled for our children in the v2 tree.
    v2_controllers: Vec<String>,
    /// Base directory (ours) per v1 controller used.
    v1: BTreeMap<&'static str, PathBuf>,
    /// The cgroup2 mount and whether it favours dynamic modifications (`favordynmods`).
    v2_mount: Option<(PathBuf, String)>,
    warnings: Vec<String>,
}

/// The controllers lamina uses.
const CONTROLLERS: [&str; 4] = ["memory", "cpu", "pids", "freezer"];

/// Most processes and threads in one environment.
pub const PIDS: u64 = 1024;

/// What an environment may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in MB (`MemorySize`).
    pub memory_mb: u64,
    /// CPU in thousandths of a vCPU (1000 = one CPU); 0 for no quota.
    pub cpu_millis: u64,
}

impl Limits {
    /// Lambda's CPU share for `memory_mb`: `memory_mb / 1769` vCPUs.
    pub fn cpu_for_memory(memory_mb: u64) -> u64 {
        (memory_mb * 1000).div_ceil(MB_PER_VCPU)
    }
}

/// One mount of a cgroup hierarchy, from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MountInfo {
    /// The hierarchy path mounted there (usually `/`).
    root: String,
    mount_point: PathBuf,
    version: Version,
    /// v1: the controllers of this hierarchy.
    controllers: Vec<String>,
    /// The super block options (`rw,nsdelegate,favordynmods`, ...).
    options: String,
}

fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        // id parent major:minor root mount-point options [optional...] - fstype source super
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let rfields: Vec<&str> = right.split(' ').collect();
        if fields.len() < 5 || rfields.len() < 3 {
            continue;
        }
        let unescape = |s: &str| s.replace("\\040", " ");
        let (root, mount_point) = (unescape(fields[3]), PathBuf::from(unescape(fields[4])));
        match rfields[0] {
            "cgroup2" => out.push(MountInfo {
                root,
                mount_point,
                version: Version::V2,
                controllers: vec![],
                options: rfields[2].to_string(),
            }),
            "cgroup" => out.push(MountInfo {
                root,
                mount_point,
                version: Version::V1,
                controllers: rfields[2]
                    .split(',')
                    .filter(|o| CONTROLLERS.contains(o) || *o == "cpuacct")
                    .map(str::to_string)
                    .collect(),
                options: rfields[2].to_string(),
            }),
            _ => {}
        }
    }
    out
}

/// `/proc/self/cgroup`: hierarchy id, controllers, path. The v2 line is `0::/path`.
fn parse_proc_cgroup(text: &str) -> Vec<(Vec<String>, String)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let _id = parts.next()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            let list = if controllers.is_empty() {
                vec![]
            } else {
                controllers.split(',').map(str::to_string).collect()
            };
            Some((list, path.to_string()))
        })
        .collect()
}

/// Where our own cgroup of a hierarchy is on disk: the mount point plus our path relative to
/// the hierarchy root the mount shows.
fn own_dir(mount: &MountInfo, own_path: &str) -> Option<PathBuf> {
    let rel = if mount.root == "/" {
        own_path
    } else {
        own_path.strip_prefix(mount.root.as_str())?
    };
    Some(mount.mount_point.join(rel.trim_start_matches('/')))
}

impl Cgroups {
    /// Detect the layout from `/proc/self/mountinfo` and `/proc/self/cgroup`, and make the
    /// daemon's base directories. Never fails: what is missing is a warning.
    pub fn detect() -> Cgroups {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        Cgroups::from_layout(
            &parse_mountinfo(&mountinfo),
            &parse_proc_cgroup(&own),
            &format!("lamina-{}", std::process::id()),
        )
    }

    fn from_layout(
        mounts: &[MountInfo],
        own: &[(Vec<String>, String)],
        base_name: &str,
    ) -> Cgroups {
        let mut cg = Cgroups {
            v2: None,
            v2_controllers: vec![],
            v1: BTreeMap::new(),
            v2_mount: mounts
                .iter()
                .find(|m| m.version == Version::V2)
                .map(|m| (m.mount_point.clone(), m.options.clone())),
            warnings: vec![],
        };
        // v2
        let v2_own = own.iter().find(|(c, _)| c.is_empty()).map(|(_, p)| p);
        if let (Some(mount), Some(path)) =
            (mounts.iter().find(|m| m.version == Version::V2), v2_own)
        {
            if let Some(dir) = own_dir(mount, path) {
                match prepare_v2(&dir, base_name) {
                    Ok((base, controllers)) => {
                        cg.v2 = Some(base);
                        cg.v2_controllers = controllers;
                    }
                    Err(e) => cg
                        .warnings
                        .push(format!("cgroup v2 at {}: {e}", dir.display())),
                }
            }
        }
        // v1, for every controller v2 does not provide.
        for controller in CONTROLLERS {
            if cg.v2_controllers.iter().any(|c| c == controller)
                || (controller == "freezer" && cg.v2.is_some())
            {
                continue;
            }
            let mount = mounts.iter().find(|m| {
                m.version == Version::V1 && m.controllers.iter().any(|c| c == controller)
            });
            let path = own
                .iter()
                .find(|(c, _)| c.iter().any(|c| c == controller))
                .map(|(_, p)| p);
            let (Some(mount), Some(path)) = (mount, path) else {
                continue;
            };
            let Some(dir) = own_dir(mount, path) else {
                continue;
            };
            let base = dir.join(base_name);
            match fs::create_dir_all(&base) {
                Ok(()) => {
                    cg.v1.insert(controller, base);
                }
                Err(e) => cg
                    .warnings
                    .push(format!("cgroup v1 {controller} at {}: {e}", base.display())),
            }
        }
        if let Err(e) = cg.weigh_base() {
            cg.warnings
                .push(format!("cannot set the CPU weight of lamina's cgroup: {e}"));
        }
        if cg.favors_dynamic_changes() == Some(false) {
            cg.warnings.push(
                "moving a process into a cgroup waits for an RCU grace period (5-15 ms of every \
                 cold start): mount cgroup2 with favordynmods (Linux 6.0+), or start lamina with \
                 --cgroup-favordynmods"
                    .into(),
            );
        }
        for controller in CONTROLLERS {
            if !cg.has(controller) {
                cg.warnings.push(match controller {
                    "memory" => "no memory controller: MemorySize is not enforced and Max Memory Used is read from /proc".to_string(),
                    "cpu" => "no cpu controller: CPU is not limited in proportion to memory".to_string(),
                    "pids" => "no pids controller: the number of processes is not limited".to_string(),
                    _ => "no freezer: idle environments are not frozen".to_string(),
                });
            }
        }
        cg
    }

    /// Give the base cgroup (all environments together) the CPU weight of one busy process per
    /// CPU. The scheduler weighs a cgroup against the host's processes as one process, however
    /// many threads run in it: with the default weight, every environment together would get
    /// the share of a single busy process, where at the `process` level each of their threads
    /// competes for itself (measured here: a sandboxed runtime waited about twice as long for a
    /// CPU during its init, with lamina's own threads busy on the other side of its requests).
    fn weigh_base(&self) -> io::Result<()> {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
        if let (Some(base), true) = (&self.v2, self.v2_controllers.iter().any(|c| c == "cpu")) {
            // cpu.weight: 100 is one process's; at most 10000.
            return write(
                &base.join("cpu.weight"),
                &(100 * cpus).min(10_000).to_string(),
            );
        }
        if let Some(base) = self.v1.get("cpu") {
            // cpu.shares: 1024 is one process's.
            return write(&base.join("cpu.shares"), &(1024 * cpus).to_string());
        }
        Ok(())
    }

    /// Whether the cgroup2 mount has `favordynmods` (`None` without cgroup2).
    pub fn favors_dynamic_changes(&self) -> Option<bool> {
        self.v2_mount
            .as_ref()
            .map(|(_, options)| options.split(',').any(|o| o == "favordynmods"))
    }

    /// Remount cgroup2 with `favordynmods`, keeping its other options: migrations into a cgroup
    /// stop waiting for RCU grace periods, at a small cost to every fork and exit on the host.
    /// A host-wide setting that outlives lamina, so only on request.
    pub fn favor_dynamic_changes(&mut self) -> io::Result<()> {
        let Some((mount_point, options)) = &self.v2_mount else {
            return Err(io::Error::other("no cgroup2 mount"));
        };
        if self.favors_dynamic_changes() == Some(true) {
            return Ok(());
        }
        let kept: Vec<&str> = options
            .split(',')
            .filter(|o| !o.is_empty() && *o != "rw" && *o != "ro")
            .chain(std::iter::once("favordynmods"))
            .collect();
        let data = kept.join(",");
        nix::mount::mount(
            None::<&str>,
            mount_point.as_path(),
            None::<&str>,
            nix::mount::MsFlags::MS_REMOUNT,
            Some(data.as_str()),
        )
        .map_err(io::Error::from)?;
        let options = format!("{options},favordynmods");
        self.v2_mount = Some((mount_point.clone(), options));
        self.warnings.retain(|w| !w.contains("favordynmods"));
        Ok(())
    }

    /// Whether `controller` (`memory`, `cpu`, `pids`, `freezer`) is available.
    pub fn has(&self, controller: &str) -> bool {
        if controller == "freezer" && self.v2.is_some() {
            return true;
        }
        self.v2_controllers.iter().any(|c| c == controller) || self.v1.contains_key(controller)
    }

    /// What is missing or degraded, for the start-up log and `lamina doctor`.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// One line per hierarchy used, for `lamina doctor`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v2) = &self.v2 {
            let ctl = if self.v2_controllers.is_empty() {
                "no controllers; membership, freeze, kill".to_string()
            } else {
                format!("{}, freeze, kill", self.v2_controllers.join(", "))
            };
            let dynmods = match self.favors_dynamic_changes() {
                Some(true) => "; favordynmods",
                _ => "",
            };
            out.push(format!("v2 {} ({ctl}{dynmods})", v2.display()));
        }
        for (controller, dir) in &self.v1 {
            out.push(format!("v1 {controller} {}", dir.display()));
        }
        out
    }

    /// Make the cgroup of one environment with what is the same for every environment (the
    /// process limit, no swap, whole-group OOM kills); [`EnvCgroup::apply`] sets the rest.
    /// Making directories is the slow part (about 0.3 ms over five hierarchies), so spares are
    /// made ahead of time.
    pub fn make(&self, name: &str) -> io::Result<EnvCgroup> {
        let mut env = EnvCgroup {
            dirs: vec![],
            memory: None,
            cpu: None,
            freeze: None,
            kill: None,
            memory_mb: AtomicU64::new(0),
            cpu_millis: AtomicU64::new(0),
        };
        if let Err(e) = self.populate(&mut env, name) {
            env.remove();
            return Err(e);
        }
        Ok(env)
    }

    fn populate(&self, env: &mut EnvCgroup, name: &str) -> io::Result<()> {
        if let Some(base) = &self.v2 {
            let dir = base.join(name);
            fs::create_dir(&dir)?;
            env.dirs.push(dir.clone());
            let has = |c: &str| self.v2_controllers.iter().any(|x| x == c);
            if has("memory") {
                // No swap: past MemorySize the environment is killed, as on Lambda.
                let _ = write(&dir.join("memory.swap.max"), "0");
                // Kill the whole environment, not one process of it.
                let _ = write(&dir.join("memory.oom.group"), "1");
                env.memory = Some(Memory {
                    version: Version::V2,
                    dir: dir.clone(),
                });
            }
            if has("pids") {
                write(&dir.join("pids.max"), &PIDS.to_string())?;
            }
            if has("cpu") {
                env.cpu = Some((Version::V2, dir.clone()));
            }
            if dir.join("cgroup.freeze").exists() {
                env.freeze = Some((Version::V2, dir.clone()));
            }
            if dir.join("cgroup.kill").exists() {
                env.kill = Some(dir.join("cgroup.kill"));
            }
        }
        for (controller, base) in &self.v1 {
            let dir = base.join(name);
            fs::create_dir(&dir)?;
            env.dirs.push(dir.clone());
            match *controller {
                "memory" => {
                    env.memory = Some(Memory {
                        version: Version::V1,
                        dir: dir.clone(),
                    })
                }
                "pids" => write(&dir.join("pids.max"), &PIDS.to_string())?,
                "cpu" => {
                    write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    env.cpu = Some((Version::V1, dir.clone()));
                }
                "freezer" => env.freeze = Some((Version::V1, dir.clone())),
                _ => {}
            }
        }
        Ok(())
    }
}

impl Cgroups {
    /// Remove the daemon's base directories (when it stops; only empty ones can go).
    pub fn remove_base(&self) {
        for base in self.v1.values().chain(self.v2.iter()) {
            let _ = fs::remove_dir(base);
        }
    }
}

/// Make our base directory in the v2 tree and enable the controllers we want for it.
fn prepare_v2(own: &Path, base_name: &str) -> io::Result<(PathBuf, Vec<String>)> {
    let available = fs::read_to_string(own.join("cgroup.controllers"))?;
    let wanted: Vec<String> = available
        .split_whitespace()
        .filter(|c| ["memory", "cpu", "pids"].contains(c))
        .map(str::to_string)
        .collect();
    let enable = wanted
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    if !wanted.is_empty() {
        // The "no internal processes" rule: a cgroup with processes cannot hand controllers
        // to its children. Then the daemon moves itself into a leaf first.
        if let Err(e) = write(&own.join("cgroup.subtree_control"), &enable) {
            if e.raw_os_error() != Some(libc::EBUSY) {
                return Err(e);
            }
            let leaf = own.join(format!("{base_name}-daemon"));
            fs::create_dir_all(&leaf)?;
            write(&leaf.join("cgroup.procs"), "0")?;
            write(&own.join("cgroup.subtree_control"), &enable)?;
        }
    }
    let base = own.join(base_name);
    fs::create_dir_all(&base)?;
    if !wanted.is_empty() {
        write(&base.join("cgroup.subtree_control"), &enable)?;
    }
    Ok((base, wanted))
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    fs::write(path, value).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

#[derive(Debug)]
struct Memory {
    version: Version,
    dir: PathBuf,
}

/// The cgroup of one environment, in every hierarchy used. Removed by [`EnvCgroup::remove`]
/// once its processes are gone.
#[derive(Debug)]
pub struct EnvCgroup {
    dirs: Vec<PathBuf>,
    memory: Option<Memory>,
    cpu: Option<(Version, PathBuf)>,
    freeze: Option<(Version, PathBuf)>,
    kill: Option<PathBuf>,
    /// The memory limit written last, in MB (0: none yet). Writing a cgroup file is not free
    /// (tens of microseconds) and a spawn waits for it: the same value is not written again.
    memory_mb: AtomicU64,
    /// The CPU quota written last (0: none, as in a new cgroup).
    cpu_millis: AtomicU64,
}

impl EnvCgroup {
    /// Set the memory limit and the CPU quota (what is set already is left alone).
    pub fn apply(&self, limits: &Limits) -> io::Result<()> {
        if let Some(m) = &self.memory {
            if self.memory_mb.load(Ordering::Acquire) == limits.memory_mb {
                return self.set_cpu(limits.cpu_millis);
            }
            let bytes = (limits.memory_mb * 1024 * 1024).to_string();
            match m.version {
                Version::V2 => write(&m.dir.join("memory.max"), &bytes)?,
                Version::V1 => {
                    // memory+swap = memory: no swap. Without swap accounting, avoid it. The
                    // kernel keeps memory+swap at least memory: a limit that grows goes to
                    // memory+swap first.
                    let memory = m.dir.join("memory.limit_in_bytes");
                    let memsw = m.dir.join("memory.memsw.limit_in_bytes");
                    let before = self.memory_mb.load(Ordering::Acquire);
                    let no_swap = if before != 0 && limits.memory_mb > before {
                        let no_swap = write(&memsw, &bytes).is_ok();
                        write(&memory, &bytes)?;
                        no_swap
                    } else {
                        write(&memory, &bytes)?;
                        write(&memsw, &bytes).is_ok()
                    };
                    if !no_swap {
                        let _ = write(&m.dir.join("memory.swappiness"), "0");
                    }
                }
            }
            self.memory_mb.store(limits.memory_mb, Ordering::Release);
        }
        self.set_cpu(limits.cpu_millis)
    }

    /// The `cgroup.procs` files a process writes itself into (`0` means the writer).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }

    /// Set the CPU quota, in thousandths of a vCPU.
    /// 0 means no quota at all.
    pub fn set_cpu(&self, millis: u64) -> io::Result<()> {
        if self.cpu_millis.load(Ordering::Acquire) == millis {
            return Ok(());
        }
        let quota = (millis * CPU_PERIOD_US / 1000).max(MIN_QUOTA_US);
        let (v2, v1) = if millis == 0 {
            ("max".to_string(), "-1".to_string())
        } else {
            (quota.to_string(), quota.to_string())
        };
        match &self.cpu {
            Some((Version::V2, dir)) => {
                write(&dir.join("cpu.max"), &format!("{v2} {CPU_PERIOD_US}"))?
            }
            Some((Version::V1, dir)) => write(&dir.join("cpu.cfs_quota_us"), &v1)?,
            None => {}
        }
        self.cpu_millis.store(millis, Ordering::Release);
        Ok(())
    }

    /// Peak memory use of the whole environment, in bytes.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        let m = self.memory.as_ref()?;
        let file = match m.version {
            Version::V1 => "memory.max_usage_in_bytes",
            Version::V2 => "memory.peak",
        };
        let read = |f: &str| -> Option<u64> {
            fs::read_to_string(m.dir.join(f)).ok()?.trim().parse().ok()
        };
        read(file).or_else(|| read("memory.current"))
    }

    /// How many processes the kernel's OOM killer has killed in this environment.
    pub fn oom_kills(&self) -> u64 {
        let Some(m) = &self.memory else { return 0 };
        let file = match m.version {
            Version::V1 => "memory.oom_control",
            Version::V2 => "memory.events",
        };
        fs::read_to_string(m.dir.join(file))
            .ok()
            .and_then(|text| {
                text.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Whether freezing is available.
    pub fn can_freeze(&self) -> bool {
        self.freeze.is_some()
    }

    /// Freeze (`true`) or thaw (`false`) every process of the environment.
    pub fn set_frozen(&self, frozen: bool) -> io::Result<()> {
        match &self.freeze {
            Some((Version::V2, dir)) => {
                write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
            }
            Some((Version::V1, dir)) => write(
                &dir.join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            None => Ok(()),
        }
    }

    /// Whether the kernel has finished freezing the environment (freezing is asynchronous).
    pub fn is_frozen(&self) -> bool {
        match &self.freeze {
            Some((Version::V2, dir)) => fs::read_to_string(dir.join("cgroup.events"))
                .is_ok_and(|e| e.lines().any(|l| l == "frozen 1")),
            Some((Version::V1, dir)) => {
                fs::read_to_string(dir.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            }
            None => false,
        }
    }

    /// SIGKILL every process of the environment through `cgroup.kill`, where the kernel has it.
    /// Returns whether it did.
    pub fn kill(&self) -> bool {
        match &self.kill {
            Some(path) => fs::write(path, "1").is_ok(),
            None => false,
        }
    }

    /// SIGKILL every process of the environment: through `cgroup.kill` where the kernel has it,
    /// else one by one as `cgroup.procs` lists them.
    pub fn kill_all(&self) {
        if self.kill() {
            return;
        }
        let Some(dir) = self.dirs.first() else { return };
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    /// Remove the directories (only possible once no process is left). Returns whether all went.
    pub fn remove(&mut self) -> bool {
        self.dirs
            .retain(|d| fs::remove_dir(d).is_err() && d.exists());
        self.dirs.is_empty()
    }
}

/// Remove base directories left by daemons that are no longer running (their environments are
/// gone, their directories are empty).
pub fn remove_stale(cg: &Cgroups) {
    let mut parents: Vec<PathBuf> = cg
        .v1
        .values()
        .chain(cg.v2.iter())
        .filter_map(|b| b.parent().map(Path::to_path_buf))
        .collect();
    parents.dedup();
    for parent in parents {
        let Ok(entries) = fs::read_dir(&parent) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(pid) = name
                .strip_prefix("lamina-")
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            if let Ok(children) = fs::read_dir(e.path()) {
                for c in children.flatten() {
                    if c.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = fs::remove_dir(c.path());
                    }
                }
            }
            let _ = fs::remove_dir(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
35 26 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw
39 35 0:34 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
40 35 0:35 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
41 35 0:36 /docker/abc /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
";

    #[test]
    fn mountinfo_finds_every_hierarchy() {
        let m = parse_mountinfo(HYBRID);
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].version, Version::V2);
        assert_eq!(m[0].mount_point, Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(m[1].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(m[3].root, "/docker/abc");
    }

    #[test]
    fn own_paths_are_relative_to_the_mounted_root() {
        let own = parse_proc_cgroup("4:memory:/user/1\n3:pids:/docker/abc/inner\n0::/\n");
        assert_eq!(own[0], (vec!["memory".to_string()], "/user/1".to_string()));
        assert_eq!(own[2], (vec![], "/".to_string()));
        let m = parse_mountinfo(HYBRID);
        assert_eq!(
            own_dir(&m[2], "/user/1"),
            Some(PathBuf::from("/sys/fs/cgroup/memory/user/1"))
        );
        assert_eq!(
            own_dir(&m[3], "/docker/abc/inner"),
            Some(PathBuf::from("/sys/fs/cgroup/pids/inner"))
        );
        // A path outside the mounted root cannot be reached.
        assert_eq!(own_dir(&m[3], "/elsewhere"), None);
    }

    #[test]
    fn favordynmods_is_read_from_the_cgroup2_options() {
        let m = parse_mountinfo(HYBRID);
        let own = parse_proc_cgroup("0::/\n");
        let cg = Cgroups::from_layout(&m[..1], &own, "lamina-unit-test-none");
        cg.remove_base();
        assert_eq!(cg.favors_dynamic_changes(), Some(false));
        assert!(cg.warnings().iter().any(|w| w.contains("favordynmods")));
        let with = HYBRID.replace("cgroup2 cgroup2 rw", "cgroup2 cgroup2 rw,favordynmods");
        let m = parse_mountinfo(&with);
        let cg = Cgroups::from_layout(&m[..1], &own, "lamina-unit-test-none");
        cg.remove_base();
        assert_eq!(cg.favors_dynamic_changes(), Some(true));
        assert!(!cg.warnings().iter().any(|w| w.contains("favordynmods")));
        assert_eq!(
            Cgroups::from_layout(&[], &[], "x").favors_dynamic_changes(),
            None
        );
    }

    #[test]
    fn nothing_mounted_degrades_with_warnings() {
        let cg = Cgroups::from_layout(&[], &[], "lamina-test");
        assert!(!cg.has("memory"));
        assert_eq!(cg.warnings().len(), 4);
    }

    #[test]
    fn cpu_is_proportional_to_memory() {
        assert_eq!(Limits::cpu_for_memory(1769), 1000);
        assert_eq!(Limits::cpu_for_memory(3538), 2000);
        assert_eq!(Limits::cpu_for_memory(128), 73);
    }
}
