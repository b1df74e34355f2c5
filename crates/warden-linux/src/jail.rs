//! Persistent jails: `<state_dir>/jails/NAME/` holds `jail.json` (what the jail is, and who runs
//! it while it runs), its root's data (thin: `upper/` + `work/`; thick: `root/`) and
//! `console.log` (its supervisor's output).
//!
//! A running jail is a worker whose helper stays as its supervisor and whose init runs no
//! command ([`crate::jail_init`]); the helper's worker record (`workers/NAME.json`, written before any
//! resource) is the journal of a start, so a crash at any point leaves either a live jail, or a
//! record whose dead owner [`crate::reaper`] cleans up — every command here does that first.
//!
//! Creation and removal are atomic renames (`.NAME.creating` → `NAME` → `.NAME.destroying`);
//! every mutation holds `jails/.lock`.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jail_exec::ExecSpec;
use crate::jail_layer;
use crate::proto::Started;
use crate::reaper;
use crate::record::{self, Record};
use crate::release;
use crate::spec::{validate_name, Limits, NetworkMode, ReleaseRef, Shape, Vnet, WorkerSpec};

/// A jail's place on the bridge (fixed; a service slot or an address given at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailNet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub bridge: String,
    pub dns: Ipv4Addr,
}

/// A jail's resource limits; `None` is unlimited (the cgroups exist either way).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JailLimits {
    pub memory_bytes: Option<u64>,
    pub max_pids: Option<u64>,
    pub cpu: Option<f64>,
}

/// Who runs a started jail, as reported by its helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    /// Unix time of the start.
    pub since: u64,
    #[serde(flatten)]
    pub started: Started,
}

/// `jail.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Jail {
    pub name: String,
    /// `host` or the name of a bootstrapped release.
    pub release: String,
    pub shape: Shape,
    /// `None`: loopback only.
    pub network: Option<JailNet>,
    pub limits: JailLimits,
    /// Unix time of creation.
    pub created: u64,
    /// Set by `start`, cleared by `stop`; trusted only while its init is alive.
    pub running: Option<Running>,
    /// Host directories bound read-only into the jail (the ai jail's model server and model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<JailBind>,
    /// `/dev/net/tun` in the jail (`tailscale.mode = jail`: it runs its own tailscaled).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tun: bool,
}

/// A host directory bound read-only into a jail at start (created empty if missing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JailBind {
    /// Absolute host path.
    pub source: PathBuf,
    /// Absolute path inside the jail.
    pub target: PathBuf,
}

impl JailBind {
    /// Parses `SOURCE:TARGET` (both absolute).
    pub fn parse(text: &str) -> std::result::Result<JailBind, String> {
        let (src, dst) = text
            .split_once(':')
            .ok_or_else(|| format!("--bind {text:?}: want SOURCE:TARGET"))?;
        let (source, target) = (PathBuf::from(src), PathBuf::from(dst));
        if !source.is_absolute() || !target.is_absolute() || target == Path::new("/") {
            return Err(format!(
                "--bind {text:?}: both paths must be absolute and the target not /"
            ));
        }
        Ok(JailBind { source, target })
    }
}

/// What `create` needs.
#[derive(Debug, Clone)]
pub struct CreateOpts {
    pub name: String,
    pub release: String,
    pub shape: Shape,
    pub network: Option<JailNet>,
    pub limits: JailLimits,
    pub binds: Vec<JailBind>,
    /// `/dev/net/tun` in the jail.
    pub tun: bool,
}

/// A jail's state as `list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Running,
    Stopped,
}

/// One line of `warden jail list`.
#[derive(Debug, Clone, Serialize)]
pub struct JailInfo {
    pub name: String,
    pub state: State,
    pub addr: Option<Ipv4Addr>,
    pub release: String,
    pub shape: Shape,
    /// The init's pid while running.
    pub pid: Option<i32>,
    /// Read-only binds as `SOURCE:TARGET`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binds: Vec<String>,
    /// Whether the jail has `/dev/net/tun`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tun: bool,
}

/// `<state_dir>/jails`.
pub fn jails_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("jails")
}

/// `<state_dir>/jails/NAME`.
pub fn jail_dir(state_dir: &Path, name: &str) -> PathBuf {
    jails_dir(state_dir).join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The lock every jail mutation holds (released by the kernel if the holder dies).
pub struct JailLock(#[allow(dead_code)] File);

/// Takes `jails/.lock` (waits for another warden's jail command to finish).
pub fn lock(state_dir: &Path) -> Result<JailLock> {
    let dir = jails_dir(state_dir);
    fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let path = dir.join(".lock");
    let f = File::create(&path).map_err(|e| Error::io("open", &path, e))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io("lock", &path, std::io::Error::last_os_error()));
    }
    Ok(JailLock(f))
}

fn refused(op: &'static str, name: &str, why: impl Into<String>) -> Error {
    Error::Refused {
        op,
        name: name.to_string(),
        why: why.into(),
    }
}

/// Checks a jail name: the worker rules (`[a-z0-9]`, at most 11), and not `w<digits>`, which
/// the lease allocator gives ephemeral workers.
pub fn validate_jail_name(name: &str) -> Result<()> {
    validate_name(name)?;
    if name.len() > 1 && name.starts_with('w') && name[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(refused(
            "name jail",
            name,
            "w<digits> names belong to ephemeral workers; fix: choose another name",
        ));
    }
    Ok(())
}

/// Reads `jail.json`.
pub fn load(state_dir: &Path, name: &str) -> Result<Jail> {
    let path = jail_dir(state_dir, name).join("jail.json");
    let body = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(refused(
                "find jail",
                name,
                format!(
                    "there is no such jail ({} is missing)\n  fix: `warden jail list` shows the jails; `warden jail create {name}` makes one",
                    path.display()
                ),
            ))
        }
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    serde_json::from_slice(&body).map_err(|e| Error::Json {
        op: "decode jail.json",
        source: e,
    })
}

/// Writes `jail.json` atomically.
fn save(state_dir: &Path, jail: &Jail) -> Result<()> {
    write_json(&jail_dir(state_dir, &jail.name), jail)
}

fn write_json(dir: &Path, jail: &Jail) -> Result<()> {
    let path = dir.join("jail.json");
    let tmp = dir.join("jail.json.tmp");
    let body = serde_json::to_vec_pretty(jail).map_err(|e| Error::Json {
        op: "encode jail.json",
        source: e,
    })?;
    fs::write(&tmp, body).map_err(|e| Error::io("write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
}

/// Names of the jails (directories with no leading dot), sorted.
pub fn names(state_dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(jails_dir(state_dir)) else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    out.sort();
    out
}

/// Removes what crashed creations and removals left (`.NAME.creating`, `.NAME.destroying`).
fn clean_partial(state_dir: &Path, only: Option<&str>) -> Result<()> {
    let Ok(rd) = fs::read_dir(jails_dir(state_dir)) else {
        return Ok(());
    };
    for e in rd.filter_map(|e| e.ok()) {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = n.strip_prefix('.') else {
            continue;
        };
        let Some((jail, kind)) = rest.rsplit_once('.') else {
            continue;
        };
        if (kind == "creating" || kind == "destroying") && only.is_none_or(|o| o == jail) {
            fs::remove_dir_all(e.path()).map_err(|err| Error::io("remove", e.path(), err))?;
        }
    }
    Ok(())
}

/// The live init of `jail`, if it runs: from `jail.json`, or from the worker record of a start
/// whose command died before it could write `jail.json` (the supervisor carries on without it).
fn live(state_dir: &Path, jail: &Jail) -> Option<Started> {
    if let Some(r) = &jail.running {
        if record::is_alive(r.started.init_pid, r.started.init_start) {
            return Some(r.started.clone());
        }
    }
    let rec = Record::load(&record::record_path(state_dir, &jail.name)).ok()?;
    let (pid, start) = (rec.init_pid?, rec.init_start?);
    (rec.owner_alive() && record::is_alive(pid, start)).then(|| Started {
        owner_pid: rec.owner_pid,
        owner_start: rec.owner_start,
        init_pid: pid,
        init_start: start,
        cgroups: rec.cgroups,
        veth: rec.veth,
        timings: Default::default(),
    })
}

/// Cleans what a dead start or a killed supervisor left (its worker record's cgroups and veth).
fn reap_dead(state_dir: &Path, name: &str) -> Result<Vec<String>> {
    let path = record::record_path(state_dir, name);
    let Ok(rec) = Record::load(&path) else {
        if path.exists() {
            // Torn while being written: nothing was created after it.
            let _ = fs::remove_file(&path);
        }
        return Ok(Vec::new());
    };
    if rec.owner_alive() {
        return Ok(Vec::new());
    }
    reaper::reap_record(state_dir, &rec)
}

/// Running or stopped; a jail whose recorded init died is stopped (and its leftovers reaped by
/// the next command that changes it).
pub fn state(state_dir: &Path, jail: &Jail) -> State {
    if live(state_dir, jail).is_some() {
        State::Running
    } else {
        State::Stopped
    }
}

/// Every jail with its state.
pub fn list(state_dir: &Path) -> Result<Vec<JailInfo>> {
    let mut out = Vec::new();
    for name in names(state_dir) {
        let jail = load(state_dir, &name)?;
        let live = live(state_dir, &jail);
        out.push(JailInfo {
            state: if live.is_some() {
                State::Running
            } else {
                State::Stopped
            },
            pid: live.map(|s| s.init_pid),
            addr: jail.network.as_ref().map(|n| n.addr),
            binds: jail
                .binds
                .iter()
                .map(|b| format!("{}:{}", b.source.display(), b.target.display()))
                .collect(),
            tun: jail.tun,
            release: jail.release,
            shape: jail.shape,
            name,
        });
    }
    Ok(out)
}

/// Creates a stopped jail. Thick jails copy their release now (`cp -a --reflink=auto`).
pub fn create(state_dir: &Path, opts: &CreateOpts) -> Result<Jail> {
    validate_jail_name(&opts.name)?;
    let name = opts.name.as_str();
    let release_ref = release::resolve(state_dir, &opts.release)?;
    let _lock = lock(state_dir)?;
    clean_partial(state_dir, Some(name))?;
    let dir = jail_dir(state_dir, name);
    if dir.exists() {
        return Err(refused(
            "create jail",
            name,
            format!(
                "it exists already ({})\n  fix: `warden jail start {name}`, or `warden jail destroy {name}` first",
                dir.display()
            ),
        ));
    }
    if let Some(net) = &opts.network {
        for other in names(state_dir) {
            if let Ok(j) = load(state_dir, &other) {
                if j.network.as_ref().is_some_and(|n| n.addr == net.addr) {
                    return Err(refused(
                        "create jail",
                        name,
                        format!(
                            "address {} is taken by jail {other}\n  fix: choose another --addr or --slot",
                            net.addr
                        ),
                    ));
                }
            }
        }
    }
    let tmp = jails_dir(state_dir).join(format!(".{name}.creating"));
    fs::create_dir_all(&tmp).map_err(|e| Error::io("create directory", &tmp, e))?;
    match (opts.shape, &release_ref) {
        (Shape::Thin, _) => {
            for d in ["upper", "work"] {
                let p = tmp.join(d);
                fs::create_dir(&p).map_err(|e| Error::io("create directory", &p, e))?;
            }
        }
        (Shape::Thick, ReleaseRef::Host) => {
            // The host's system is bound read-only at start; the jail's own files live here.
            let p = tmp.join("root");
            fs::create_dir(&p).map_err(|e| Error::io("create directory", &p, e))?;
        }
        (Shape::Thick, ReleaseRef::Dir(src)) => jail_layer::copy_tree(src, &tmp.join("root"))?,
    }
    let jail = Jail {
        name: name.to_string(),
        release: opts.release.clone(),
        shape: opts.shape,
        network: opts.network.clone(),
        limits: opts.limits.clone(),
        created: now(),
        running: None,
        binds: opts.binds.clone(),
        tun: opts.tun,
    };
    write_json(&tmp, &jail)?;
    fs::rename(&tmp, &dir).map_err(|e| Error::io("rename into place", &dir, e))?;
    Ok(jail)
}

/// The worker spec that runs `jail`.
pub fn spec(state_dir: &Path, jail: &Jail, cgroup_root: &Path) -> Result<WorkerSpec> {
    let mut spec = WorkerSpec::new(&jail.name, &[], state_dir);
    spec.release = release::resolve(state_dir, &jail.release)?;
    spec.shape = jail.shape;
    spec.network = match &jail.network {
        None => NetworkMode::None,
        Some(n) => NetworkMode::Vnet(Vnet {
            addr: n.addr,
            prefix: n.prefix,
            gateway: n.gateway,
            bridge: n.bridge.clone(),
            dns: n.dns,
            host_netns: None,
        }),
    };
    spec.limits = Limits {
        memory_bytes: jail.limits.memory_bytes,
        max_pids: jail.limits.max_pids,
        cpu: jail.limits.cpu,
        timeout_ms: None,
        output_bytes: None,
        allow_unlimited: false,
    };
    spec.cgroup_root = cgroup_root.to_path_buf();
    spec.persistent = Some(jail_dir(state_dir, &jail.name));
    spec.tun = jail.tun;
    for b in &jail.binds {
        // The source may be filled later (the `ai` step installs into it after the jail starts).
        fs::create_dir_all(&b.source).map_err(|e| Error::io("create directory", &b.source, e))?;
        spec.binds.push(crate::spec::Bind {
            source: b.source.clone(),
            target: b.target.clone(),
            writable: false,
        });
    }
    Ok(spec)
}

/// Gives a jail `/dev/net/tun` or takes it away; it applies from the jail's next start. Returns whether the
/// record changed.
pub fn set_tun(state_dir: &Path, name: &str, tun: bool) -> Result<bool> {
    let _lock = lock(state_dir)?;
    let mut jail = load(state_dir, name)?;
    if jail.tun == tun {
        return Ok(false);
    }
    jail.tun = tun;
    save(state_dir, &jail)?;
    Ok(true)
}

/// Starts a stopped jail and returns once it is up. A replacement of its layer that a crash cut short (a
/// rollback) is brought to the old or the new layer first.
pub fn start(state_dir: &Path, name: &str, cgroup_root: &Path) -> Result<Running> {
    let lock = lock(state_dir)?;
    let jail = load(state_dir, name)?;
    if live(state_dir, &jail).is_none() {
        let dir = jail_dir(state_dir, name);
        if let Some(did) = jail_layer::recover(&dir, jail_layer::layer_name(jail.shape))? {
            tracing::warn!("jail {name}: an interrupted rollback: {did}");
        }
    }
    start_held(&lock, state_dir, name, cgroup_root)
}

/// [`start`] for a caller that holds the jail lock, without the recovery of an interrupted rollback (the
/// rollback itself calls it between its swap and its finish).
pub(crate) fn start_held(
    _lock: &JailLock,
    state_dir: &Path,
    name: &str,
    cgroup_root: &Path,
) -> Result<Running> {
    let mut jail = load(state_dir, name)?;
    if let Some(s) = live(state_dir, &jail) {
        return Err(refused(
            "start jail",
            name,
            format!(
                "it is already running (init pid {})\n  fix: `warden jail stop {name}` first to restart it",
                s.init_pid
            ),
        ));
    }
    reap_dead(state_dir, name)?;
    // Cgroups are named after the jail alone: another state directory's jail of the same name
    // must not be killed by this one's start (creating a cgroup removes a leftover first).
    for dir in crate::cgroup::paths_for(cgroup_root, name) {
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        if let Some(pid) = procs.split_whitespace().next() {
            return Err(refused(
                "start jail",
                name,
                format!(
                    "its cgroup {} is in use by process {pid} (a jail of the same name from another state directory, or a worker)\n  fix: stop that one first, or use another name",
                    dir.display()
                ),
            ));
        }
    }
    let spec = spec(state_dir, &jail, cgroup_root)?;
    let log = jail_dir(state_dir, name).join("console.log");
    let started = crate::worker::start_jail(&spec, &log)?;
    let running = Running {
        since: now(),
        started,
    };
    jail.running = Some(running.clone());
    save(state_dir, &jail)?;
    Ok(running)
}

/// Stops a running jail: SIGTERM to its init (which gives a PostgreSQL it runs its fast shutdown, then its
/// processes [`crate::jail_init::STOP_GRACE`]), SIGKILL after `timeout` (plus
/// [`crate::jail_init::POSTGRES_STOP`] while the jail runs PostgreSQL), then waits for the supervisor's teardown (cgroups, veth, record).
/// Returns false if it was not running (leftovers of a crash are cleaned either way).
pub fn stop(state_dir: &Path, name: &str, timeout: Duration) -> Result<bool> {
    let lock = lock(state_dir)?;
    stop_held(&lock, state_dir, name, timeout)
}

/// [`stop`] for a caller that holds the jail lock.
pub(crate) fn stop_held(
    _lock: &JailLock,
    state_dir: &Path,
    name: &str,
    timeout: Duration,
) -> Result<bool> {
    let mut jail = load(state_dir, name)?;
    let was_running = stop_locked(state_dir, &jail, timeout)?;
    if jail.running.is_some() {
        jail.running = None;
        save(state_dir, &jail)?;
    }
    Ok(was_running)
}

fn stop_locked(state_dir: &Path, jail: &Jail, timeout: Duration) -> Result<bool> {
    let Some(s) = live(state_dir, jail) else {
        reap_dead(state_dir, &jail.name)?;
        return Ok(false);
    };
    let signal = |sig| {
        if record::is_alive(s.init_pid, s.init_start) {
            // SAFETY: kill(2) on the jail's init, its identity checked by start time just before.
            unsafe { libc::kill(s.init_pid, sig) };
        }
    };
    // The init waits for PostgreSQL's shutdown checkpoint before its grace: a SIGKILL in between would cut it.
    let root = PathBuf::from(format!("/proc/{}/root", s.init_pid));
    let timeout = if crate::jail_init::postmaster_pid(&root).exists() {
        timeout + crate::jail_init::POSTGRES_STOP
    } else {
        timeout
    };
    signal(libc::SIGTERM);
    let rec = record::record_path(state_dir, &jail.name);
    let start = Instant::now();
    let mut killed = false;
    // The supervisor removes the record last, after cgroups and veth are gone.
    while rec.exists() {
        let owner_alive = record::is_alive(s.owner_pid, s.owner_start);
        if !owner_alive {
            reap_dead(state_dir, &jail.name)?;
            break;
        }
        if !killed && start.elapsed() >= timeout {
            signal(libc::SIGKILL);
            killed = true;
        }
        if start.elapsed() >= timeout + Duration::from_secs(10) {
            return Err(refused(
                "stop jail",
                &jail.name,
                format!(
                    "its supervisor (pid {}) did not finish its teardown within {} s\n  fix: see {}; `kill {}` and run `warden jail stop {}` again",
                    s.owner_pid,
                    (timeout + Duration::from_secs(10)).as_secs(),
                    jail_dir(state_dir, &jail.name).join("console.log").display(),
                    s.owner_pid,
                    jail.name
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(true)
}

/// Paths inside a thin jail's upper directory that Warden itself writes at every start; a jail
/// holding nothing else has no data of its own.
const WARDEN_WRITTEN: [&str; 4] = ["etc/hosts", "etc/resolv.conf", "etc/hostname", "etc"];

/// Whether a thin jail's upper directory holds files of the jail's own (not only the mount
/// points and `/etc` files Warden writes at each start).
fn upper_has_data(upper: &Path) -> bool {
    fn walk(root: &Path, dir: &Path) -> bool {
        let Ok(rd) = fs::read_dir(dir) else {
            return false;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap_or(&path);
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            if is_dir {
                if walk(root, &path) {
                    return true;
                }
            } else if !WARDEN_WRITTEN
                .iter()
                .chain(release::USERLAND_WRITTEN.iter())
                .any(|w| rel == Path::new(w))
            {
                return true;
            }
        }
        false
    }
    walk(upper, upper)
}

/// Destroys a jail: stops it if it runs, then removes its directory. Refuses without `force`
/// when the jail holds data: any thick jail (its root is its data), a thin jail whose upper
/// directory holds files of its own.
pub fn destroy(state_dir: &Path, name: &str, force: bool, timeout: Duration) -> Result<()> {
    validate_name(name)?;
    let _lock = lock(state_dir)?;
    clean_partial(state_dir, Some(name))?;
    let dir = jail_dir(state_dir, name);
    let jail = match load(state_dir, name) {
        Ok(j) => Some(j),
        Err(_) if dir.exists() => None, // a damaged jail: still removable
        Err(e) => {
            // No jail; a crashed start may still have left a worker record.
            reap_dead(state_dir, name)?;
            return Err(e);
        }
    };
    if !force {
        let why = match &jail {
            Some(j) if j.shape == Shape::Thick => Some(format!(
                "it is thick: {} is its data",
                dir.join("root").display()
            )),
            _ if upper_has_data(&dir.join("upper")) => Some(format!(
                "its upper directory {} holds files written in the jail",
                dir.join("upper").display()
            )),
            _ => None,
        };
        if let Some(why) = why {
            return Err(refused(
                "destroy jail",
                name,
                format!("{why}\n  fix: copy out what you need, then `warden jail destroy --force {name}`"),
            ));
        }
    }
    match &jail {
        Some(j) => {
            stop_locked(state_dir, j, timeout)?;
        }
        None => {
            reap_dead(state_dir, name)?;
        }
    }
    let gone = jails_dir(state_dir).join(format!(".{name}.destroying"));
    fs::rename(&dir, &gone).map_err(|e| Error::io("rename away", &dir, e))?;
    fs::remove_dir_all(&gone).map_err(|e| Error::io("remove", &gone, e))
}

/// How to run a command in a jail (`warden jail exec`).
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub root: bool,
}

/// The exec spec for a command in the running jail `name`; [`Error::NotRunning`] if it is not.
pub fn exec_spec(state_dir: &Path, name: &str, opts: &ExecOpts) -> Result<ExecSpec> {
    let jail = load(state_dir, name)?;
    let s = live(state_dir, &jail).ok_or_else(|| Error::NotRunning {
        name: name.to_string(),
    })?;
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string(),
        ),
        (
            "HOME".to_string(),
            if opts.root { "/root" } else { "/" }.to_string(),
        ),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(("TERM".into(), term));
    }
    for (k, v) in &opts.env {
        env.retain(|(old, _)| old != k);
        env.push((k.clone(), v.clone()));
    }
    Ok(ExecSpec {
        name: name.to_string(),
        init_pid: s.init_pid,
        init_start: s.init_start,
        cgroups: s.cgroups,
        argv: opts.argv.clone(),
        env,
        cwd: opts
            .cwd
            .clone()
            .unwrap_or_else(|| PathBuf::from(if opts.root { "/root" } else { "/" })),
        root: opts.root,
        net_admin: opts.root && jail.tun,
    })
}

/// The thin jails whose root is an overlay over release `release` (they block its removal).
pub fn users_of_release(state_dir: &Path, release: &str) -> Vec<String> {
    names(state_dir)
        .into_iter()
        .filter(|n| {
            load(state_dir, n).is_ok_and(|j| j.release == release && j.shape == Shape::Thin)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_reject_worker_names_and_bad_characters() {
        assert!(validate_jail_name("clawdiegit").is_ok());
        assert!(validate_jail_name("w101").is_err());
        assert!(validate_jail_name("web").is_ok());
        assert!(validate_jail_name("Git").is_err());
        assert!(validate_jail_name("clawdie-git").is_err());
        assert!(validate_jail_name("abcdefghijkl").is_err());
    }

    #[test]
    fn upper_data_ignores_what_warden_writes() {
        let d = tempfile::tempdir().unwrap();
        let up = d.path();
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("proc")).unwrap();
        fs::write(up.join("etc/hosts"), "x").unwrap();
        fs::write(up.join("etc/resolv.conf"), "x").unwrap();
        assert!(!upper_has_data(up));
        fs::create_dir_all(up.join("var/git")).unwrap();
        assert!(!upper_has_data(up));
        fs::write(up.join("var/git/HEAD"), "x").unwrap();
        assert!(upper_has_data(up));
    }

    #[test]
    fn create_is_atomic_and_refuses_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let opts = CreateOpts {
            name: "j1".into(),
            release: "host".into(),
            shape: Shape::Thin,
            network: Some(JailNet {
                addr: "10.0.1.2".parse().unwrap(),
                prefix: 24,
                gateway: "10.0.1.1".parse().unwrap(),
                bridge: "warden0".into(),
                dns: "10.0.1.1".parse().unwrap(),
            }),
            limits: JailLimits::default(),
            binds: Vec::new(),
            tun: false,
        };
        // A crashed creation is cleaned up by the next one.
        fs::create_dir_all(d.path().join("jails/.j1.creating/upper/junk")).unwrap();
        let j = create(d.path(), &opts).unwrap();
        assert_eq!(load(d.path(), "j1").unwrap(), j);
        assert!(!d.path().join("jails/.j1.creating").exists());
        assert!(create(d.path(), &opts).is_err());
        let mut other = opts.clone();
        other.name = "j2".into();
        let e = create(d.path(), &other).unwrap_err().to_string();
        assert!(e.contains("taken by jail j1"), "{e}");
        let l = list(d.path()).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].state, State::Stopped);
        destroy(d.path(), "j1", false, Duration::from_secs(1)).unwrap();
        assert!(names(d.path()).is_empty());
        assert!(load(d.path(), "j1").is_err());
    }
}
