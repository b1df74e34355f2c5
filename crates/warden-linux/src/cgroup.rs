//! Resource limits of one worker through cgroups, v1 (this machine: one hierarchy per
//! controller) or v2 (unified). The cgroup root is a parameter so tests can point it elsewhere.
//!
//! Layout: v1 `<root>/<controller>/warden/<name>` for memory and pids, and cpu only when a CPU
//! limit is asked for (a v1 cpu cgroup per worker is a task group the scheduler walks on every
//! wake-up, and its creation and removal cost ≈ 3 % of a saturated host's turns); v2
//! `<root>/warden/<name>`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::spec::Limits;

/// Which cgroup interface the root offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// The v1 controllers a worker is placed in.
const V1_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

const PARENT: &str = "warden";

/// Detects the interface: a unified root has `cgroup.controllers` at its top.
pub fn detect(root: &Path) -> CgroupVersion {
    if root.join("cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// The directories a worker called `name` may use (known before creating them, so they can be
/// recorded first; removing one that was never made is a no-op).
pub fn paths_for(root: &Path, name: &str) -> Vec<PathBuf> {
    match detect(root) {
        CgroupVersion::V2 => vec![root.join(PARENT).join(name)],
        CgroupVersion::V1 => V1_CONTROLLERS
            .iter()
            .map(|c| root.join(c).join(PARENT).join(name))
            .filter(|p| p.parent().and_then(Path::parent).is_some_and(Path::exists))
            .collect(),
    }
}

/// A worker's cgroup(s).
#[derive(Debug)]
pub struct Cgroup {
    pub version: CgroupVersion,
    pub paths: Vec<PathBuf>,
    /// The OOM-kill and pids.max counters' files, opened on first read and kept: the helper
    /// reads them when a command ends, on the turn's critical path.
    memory_events: OnceLock<Option<fs::File>>,
    pids_events: OnceLock<Option<fs::File>>,
}

fn write(path: &Path, value: &str) -> Result<()> {
    fs::write(path, value).map_err(|e| Error::io("write", path, e))
}

/// Whether `p` is worker `name`'s v1 cpu cgroup (`<root>/cpu/warden/<name>`).
fn is_v1_cpu(p: &Path, name: &str) -> bool {
    p.ends_with(Path::new("cpu").join(PARENT).join(name))
}

/// Creates cgroup `p` (and its parent); a leftover of the same name (a crashed run; the caller
/// holds the name) is removed first.
fn make_dir(p: &Path) -> Result<()> {
    if let Some(parent) = p.parent() {
        mkdir_parent(parent)?;
    }
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            remove_dir(p)?;
            fs::create_dir(p).map_err(|e| Error::io("create cgroup", p, e))
        }
        Err(e) => Err(Error::io("create cgroup", p, e)),
    }
}

fn mkdir_parent(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create cgroup", dir, e)),
    }
}

impl Cgroup {
    /// Creates the worker's cgroups and writes its limits. A leftover directory of the same
    /// name (a crashed run; the caller holds the name) is removed first.
    pub fn create(root: &Path, name: &str, limits: &Limits) -> Result<Cgroup> {
        let version = detect(root);
        let paths: Vec<PathBuf> = paths_for(root, name)
            .into_iter()
            .filter(|p| version == CgroupVersion::V2 || limits.cpu.is_some() || !is_v1_cpu(p, name))
            .collect();
        if version == CgroupVersion::V2 {
            // Controllers must be enabled down the tree; "cpu" may be missing, so one at a time.
            let parent = root.join(PARENT);
            mkdir_parent(&parent)?;
            for ctl in ["+memory", "+pids", "+cpu"] {
                let _ = fs::write(root.join("cgroup.subtree_control"), ctl);
                let _ = fs::write(parent.join("cgroup.subtree_control"), ctl);
            }
        }
        for p in &paths {
            make_dir(p)?;
        }
        let cg = Cgroup {
            version,
            paths,
            memory_events: OnceLock::new(),
            pids_events: OnceLock::new(),
        };
        cg.set_limits(limits)?;
        Ok(cg)
    }

    /// Gives a worker made without one its v1 cpu cgroup, with `pids` in it (a parked worker
    /// whose turn asks for a CPU limit). A no-op on v2 and when it exists.
    pub(crate) fn ensure_cpu(&mut self, root: &Path, name: &str, pids: &[i32]) -> Result<()> {
        if self.version == CgroupVersion::V2 || self.dir("cpu").is_some() {
            return Ok(());
        }
        let Some(dir) = paths_for(root, name)
            .into_iter()
            .find(|p| is_v1_cpu(p, name))
        else {
            // No cpu hierarchy: set_limits says so.
            return Ok(());
        };
        make_dir(&dir)?;
        self.paths.push(dir.clone());
        for pid in pids {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn dir(&self, controller: &str) -> Option<&Path> {
        match self.version {
            CgroupVersion::V2 => self.paths.first().map(PathBuf::as_path),
            CgroupVersion::V1 => self
                .paths
                .iter()
                .find(|p| {
                    p.parent().and_then(Path::parent).and_then(Path::file_name)
                        == Some(controller.as_ref())
                })
                .map(PathBuf::as_path),
        }
    }

    /// Writes the limits (also used to change a parked worker's limits for its turn).
    pub(crate) fn set_limits(&self, limits: &Limits) -> Result<()> {
        // A limit asked for but impossible to enforce is an error, never a silently unlimited worker
        // (e.g. `ip netns exec` remounts /sys and hides /sys/fs/cgroup).
        for (wanted, controller) in [
            (limits.memory_bytes.is_some(), "memory"),
            (limits.max_pids.is_some(), "pids"),
            (limits.cpu.is_some(), "cpu"),
        ] {
            if wanted && self.dir(controller).is_none() {
                if limits.allow_unlimited {
                    tracing::warn!(
                        controller,
                        "the {controller} cgroup controller is missing: the worker runs without its {controller} limit (workers.allow_unlimited)"
                    );
                    continue;
                }
                return Err(Error::Setup {
                    name: "cgroups".into(),
                    message: format!(
                        "the {controller} cgroup controller is not mounted under the cgroup root, so the {controller} limit cannot be enforced; fix: mount it (cgroup v1: /sys/fs/cgroup/{controller}), and do not run warden under `ip netns exec`, which hides /sys/fs/cgroup (use `nsenter --net=/run/netns/NAME`); or set workers.allow_unlimited = true to run workers without that limit"
                    ),
                });
            }
        }
        if let (Some(bytes), Some(dir)) = (limits.memory_bytes, self.dir("memory")) {
            match self.version {
                CgroupVersion::V1 => {
                    // Without swap accounting the memsw file is absent; with it, forbid swapping
                    // past the limit. memsw must stay >= memory: raising writes memsw first.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    let mem = dir.join("memory.limit_in_bytes");
                    if fs::write(&mem, bytes.to_string()).is_err() && memsw.exists() {
                        write(&memsw, &bytes.to_string())?;
                    }
                    write(&mem, &bytes.to_string())?;
                    if memsw.exists() {
                        write(&memsw, &bytes.to_string())?;
                    }
                }
                CgroupVersion::V2 => {
                    write(&dir.join("memory.max"), &bytes.to_string())?;
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                }
            }
        }
        if let (Some(max), Some(dir)) = (limits.max_pids, self.dir("pids")) {
            write(&dir.join("pids.max"), &max.to_string())?;
        }
        if let (Some(cpu), Some(dir)) = (limits.cpu, self.dir("cpu")) {
            if cpu.is_finite() && cpu > 0.0 {
                let period: u64 = 100_000;
                let quota = ((cpu * period as f64) as u64).max(1000);
                match self.version {
                    CgroupVersion::V1 => {
                        write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                        write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    }
                    CgroupVersion::V2 => write(&dir.join("cpu.max"), &format!("{quota} {period}"))?,
                }
            }
        }
        Ok(())
    }

    /// Moves process `pid` into every cgroup of the worker.
    pub fn add(&self, pid: i32) -> Result<()> {
        for p in &self.paths {
            write(&p.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Opens the counters' files now (a parked worker: at park time, not when its turn ends).
    pub fn open_counters(&self) {
        self.oom_kills();
        self.pids_max_hits();
    }

    /// How many processes the kernel's OOM killer killed in this cgroup.
    pub fn oom_kills(&self) -> u64 {
        let file = self.memory_events.get_or_init(|| {
            let name = match self.version {
                CgroupVersion::V1 => "memory.oom_control",
                CgroupVersion::V2 => "memory.events",
            };
            fs::File::open(self.dir("memory")?.join(name)).ok()
        });
        read_key(file.as_ref(), "oom_kill")
    }

    /// How many forks were refused because pids.max was reached.
    pub fn pids_max_hits(&self) -> u64 {
        let file = self
            .pids_events
            .get_or_init(|| fs::File::open(self.dir("pids")?.join("pids.events")).ok());
        read_key(file.as_ref(), "max")
    }

    /// Removes the cgroups, killing whatever is still inside.
    pub fn remove(&self) -> Result<()> {
        let mut first_err = None;
        for p in &self.paths {
            if let Err(e) = remove_dir(p) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// Reads `key N` from a flat keyed cgroup file (from its start, so an open file can be read
/// again); 0 when absent.
fn read_key(file: Option<&fs::File>, key: &str) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 1024];
    let Some(n) = file.and_then(|f| f.read_at(&mut buf, 0).ok()) else {
        return 0;
    };
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Where host-wide claims on cgroup names live (see [`claim`]): `cgroup-names` in the runtime root.
fn claim_dir() -> PathBuf {
    crate::runtime::root_or_fallback().join("cgroup-names")
}

/// A host-wide claim on a worker's cgroup name, held by its helper from before the worker
/// exists until its cgroups are removed.
///
/// Cgroup directories are one namespace for the whole host, but worker names are unique only
/// within a state directory (a Vnet worker is `w<octet>` of its lease): two wardens, or two
/// test suites, can both run a `w101`. Creating a cgroup removes a leftover of the same name,
/// killing what is inside, and so does a teardown that finds its directory busy; without a
/// claim, one instance killed the other's worker (this was the parked workers' intermittent
/// "init died while parked"). An `flock` on `<runtime root>/cgroup-names/<name>` is released by
/// the kernel when its holder dies, so a crashed helper never blocks the name.
#[derive(Debug)]
pub struct Claim {
    file: Option<fs::File>,
    path: PathBuf,
}

impl Claim {
    /// The descriptor to close in children that must not hold the claim.
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        self.file.as_ref().map(AsRawFd::as_raw_fd)
    }

    /// Gives the name up (after the cgroups are gone): the file is removed while still locked,
    /// so a waiter that opened it sees a stale inode and retries on a fresh file.
    pub fn release(mut self) {
        if self.file.is_some() {
            let _ = fs::remove_file(&self.path);
        }
        self.file = None;
    }
}

/// Claims cgroup name `name` for this process: `Ok(None)` if a live process holds it. Where
/// the claim directory cannot be made (not root), the claim is empty: there is nothing to
/// collide with that this process could have created.
pub fn claim(name: &str) -> Result<Option<Claim>> {
    use std::os::unix::fs::MetadataExt;
    let dir = claim_dir();
    let path = dir.join(name);
    if fs::create_dir_all(&dir).is_err() {
        return Ok(Some(Claim { file: None, path }));
    }
    loop {
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open cgroup name claim", &path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Ok(None),
            Err(fs::TryLockError::Error(e)) => {
                return Err(Error::io("lock cgroup name claim", &path, e))
            }
        }
        // The holder before us may have removed the file between our open and our lock.
        let ours = file.metadata().map(|m| m.ino()).ok();
        let now = fs::metadata(&path).map(|m| m.ino()).ok();
        if ours.is_some() && ours == now {
            return Ok(Some(Claim {
                file: Some(file),
                path,
            }));
        }
    }
}

/// Kills every process listed in a cgroup directory.
pub fn kill_all(dir: &Path) {
    // v2 (5.14+) kills the whole subtree atomically.
    let kill = dir.join("cgroup.kill");
    if kill.exists() && fs::write(&kill, "1").is_ok() {
        return;
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Removes one cgroup directory; a process that is exiting keeps it busy for a moment, so
/// busy directories are killed and retried for up to two seconds. A missing one is fine.
pub fn remove_dir(dir: &Path) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_micros(200);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e)
                if start.elapsed() < Duration::from_secs(2)
                    && e.raw_os_error() == Some(libc::EBUSY) =>
            {
                kill_all(dir);
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io("remove cgroup", dir, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_v1_and_v2_by_root_contents() {
        let v1 = tempfile::tempdir().unwrap();
        fs::create_dir(v1.path().join("memory")).unwrap();
        fs::create_dir(v1.path().join("pids")).unwrap();
        assert_eq!(detect(v1.path()), CgroupVersion::V1);
        let paths = paths_for(v1.path(), "w1");
        // cpu is not mounted in this fake tree, so it is skipped.
        assert_eq!(
            paths,
            vec![
                v1.path().join("memory/warden/w1"),
                v1.path().join("pids/warden/w1")
            ]
        );
        let v2 = tempfile::tempdir().unwrap();
        fs::write(v2.path().join("cgroup.controllers"), "memory pids cpu\n").unwrap();
        assert_eq!(detect(v2.path()), CgroupVersion::V2);
        assert_eq!(
            paths_for(v2.path(), "w1"),
            vec![v2.path().join("warden/w1")]
        );
    }

    #[test]
    fn writes_v2_limits_into_a_fake_tree() {
        let v2 = tempfile::tempdir().unwrap();
        fs::write(v2.path().join("cgroup.controllers"), "memory pids cpu\n").unwrap();
        let limits = Limits {
            memory_bytes: Some(1 << 20),
            max_pids: Some(7),
            cpu: Some(0.5),
            timeout_ms: None,
            output_bytes: None,
            allow_unlimited: false,
        };
        let cg = Cgroup::create(v2.path(), "w1", &limits).unwrap();
        let dir = v2.path().join("warden/w1");
        assert_eq!(
            fs::read_to_string(dir.join("memory.max")).unwrap(),
            "1048576"
        );
        assert_eq!(fs::read_to_string(dir.join("pids.max")).unwrap(), "7");
        assert_eq!(
            fs::read_to_string(dir.join("cpu.max")).unwrap(),
            "50000 100000"
        );
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .unwrap();
        fs::write(dir.join("pids.events"), "max 4\n").unwrap();
        assert_eq!(cg.oom_kills(), 1);
        assert_eq!(cg.pids_max_hits(), 4);
    }
}
