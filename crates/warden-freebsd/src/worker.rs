//! Ephemeral workers on FreeBSD: a ZFS clone of the release's worker snapshot, started with `jail(8)` directly
//! (Bastille is too slow and its exit codes lie, reference/bastille.md §3 start, §4.1), one command run with
//! `jexec`, then everything torn down.
//!
//! Exit-status contract (the same as the Linux side): the command's own exit code, or one of [`exit_codes`].
//! Every step is a checked runner command, so the whole path is testable with a recording or simulated host.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use warden_core::names::check_jail_name;
use warden_core::Layout;
use warden_host::worker::Cancel;
use warden_host::{Output, RunError, Runner};

use crate::datasets;
use crate::lease::{lease, Lease, LeaseError};

/// The exit codes of a worker run that did not end by the command's own exit: the one table, `warden_host::exit`.
pub mod exit_codes {
    use warden_host::exit;

    /// The wall-clock limit ran out; the jail was removed.
    pub const TIMEOUT: i32 = exit::LIMIT_TIMEOUT as i32;
    /// Warden could not create, start or tear down the worker (the command may not have run).
    pub const INFRASTRUCTURE: i32 = exit::INFRASTRUCTURE as i32;
    /// The command was killed by a signal the runner does not name: SIGKILL (128 + 9).
    pub const KILLED: i32 = 128 + nix::sys::signal::Signal::SIGKILL as i32;
    /// The command went over its output cap and was killed.
    pub const OUTPUT: i32 = exit::LIMIT_OUTPUT as i32;
}

/// A host directory mounted into the worker with nullfs (a line of the jail's `mount.fstab`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Nullfs {
    /// The host directory.
    pub source: String,
    /// Where it appears inside the worker.
    pub target: String,
    /// Read-write (otherwise read-only).
    pub writable: bool,
}

/// A worker's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerNetwork {
    /// No IP access at all (`ip4=disable ip6=disable`).
    None,
    /// The host's addresses (`ip4=inherit`): the design's default "shared network" worker.
    Shared,
    /// Its own VNET stack on the bridge with an address leased from the workers' range.
    Vnet,
}

/// Resource limits; `None` means not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerLimits {
    /// `rctl … memoryuse:deny`.
    pub memory_bytes: Option<u64>,
    /// `rctl … maxproc:deny`.
    pub max_procs: Option<u32>,
    /// Wall clock; afterwards the jail is removed and the run ends with [`exit_codes::TIMEOUT`].
    pub timeout: Option<Duration>,
    /// Cap on captured stdout and stderr together; a command that writes more is killed while it runs and the
    /// run ends with [`exit_codes::OUTPUT`] (as on Linux).
    pub output_bytes: Option<u64>,
}

/// One ephemeral worker and the one command it runs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerSpec {
    /// Jail name: letters and digits, at most 11 (`e0a_NAME` must fit in 15, §1.4).
    pub name: String,
    /// Release to clone; the layout's when `None`.
    pub release: Option<String>,
    /// Network mode.
    pub network: WorkerNetwork,
    /// User inside the worker (`jexec -U`).
    pub user: String,
    /// The command.
    pub argv: Vec<String>,
    /// Extra environment (`jexec -l` starts from a clean one).
    pub env: Vec<(String, String)>,
    /// Working directory inside the worker; the user's home when `None`.
    pub cwd: Option<String>,
    /// Limits.
    pub limits: WorkerLimits,
    /// Warden's local state directory (address leases).
    pub state_dir: PathBuf,
    /// Host directories mounted in (nullfs, through the jail's `mount.fstab`).
    #[serde(default)]
    pub mounts: Vec<Nullfs>,
    /// Text on the command's stdin (written into the clone, redirected by `sh`); none: `/dev/null`.
    #[serde(default)]
    pub stdin: Option<String>,
}

impl WorkerSpec {
    /// A shared-network worker running `argv` as the layout's worker user with the layout's limits.
    pub fn new(
        layout: &Layout,
        name: &str,
        argv: &[&str],
        state_dir: impl Into<PathBuf>,
    ) -> WorkerSpec {
        WorkerSpec {
            name: name.to_string(),
            release: None,
            network: WorkerNetwork::Shared,
            user: layout.worker_user.clone(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            cwd: None,
            limits: WorkerLimits {
                memory_bytes: Some(layout.limits.memory_bytes),
                max_procs: Some(layout.limits.pids),
                timeout: Some(layout.limits.timeout),
                output_bytes: Some(layout.limits.output_bytes),
            },
            state_dir: state_dir.into(),
            mounts: Vec::new(),
            stdin: None,
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerEnd {
    /// The command exited by itself.
    Exited,
    /// The wall-clock limit ran out.
    TimedOut,
    /// The command died of a signal.
    Killed,
    /// The command went over its output cap and was killed.
    OutputCapped,
    /// The run was cancelled: `jail -r` ended the command.
    Cancelled,
}

/// The result of one worker run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WorkerOutcome {
    /// The command's exit code, or [`exit_codes::TIMEOUT`] / [`exit_codes::KILLED`] / [`exit_codes::OUTPUT`].
    pub exit_code: i32,
    /// How it ended.
    pub end: WorkerEnd,
    /// Captured stdout.
    pub stdout: String,
    /// Captured stderr.
    pub stderr: String,
    /// The leased address (VNET workers).
    pub addr: Option<Ipv4Addr>,
    /// Wall time of the command.
    pub elapsed: Duration,
    /// Teardown steps that failed (something may have leaked; the reaper or the next run of the name cleans it).
    pub cleanup_problems: Vec<String>,
}

/// Why a worker could not run; every variant maps to [`exit_codes::INFRASTRUCTURE`].
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The spec is not acceptable.
    #[error("invalid worker {field} {value:?}: {why}")]
    Spec {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
        /// The rule.
        why: String,
    },
    /// No address for a VNET worker.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// A command could not be started.
    #[error("failed to {what}: {source}")]
    Run {
        /// The step.
        what: String,
        /// Why.
        source: RunError,
    },
    /// A setup command failed.
    #[error("failed to {what}: `{command}` exited {status}: {stderr}")]
    Failed {
        /// The step.
        what: String,
        /// The command.
        command: String,
        /// Its exit status.
        status: i32,
        /// Its stderr.
        stderr: String,
    },
}

impl WorkerError {
    /// The exit code a CLI reports for this failure.
    pub fn exit_code(&self) -> i32 {
        exit_codes::INFRASTRUCTURE
    }
}

fn strings(argv: &[&str]) -> Vec<String> {
    argv.iter().map(|s| s.to_string()).collect()
}

/// Runs a setup step; a non-zero exit is an error.
fn step(runner: &dyn Runner, what: &str, argv: &[&str]) -> Result<Output, WorkerError> {
    let argv = strings(argv);
    let out = runner.run(&argv).map_err(|source| WorkerError::Run {
        what: what.to_string(),
        source,
    })?;
    if out.ok() {
        Ok(out)
    } else {
        Err(WorkerError::Failed {
            what: what.to_string(),
            command: warden_core::plan::shell_words(&argv),
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        })
    }
}

/// Runs a read-only probe; true when it exits 0.
fn exists(runner: &dyn Runner, argv: &[&str]) -> bool {
    runner.run(&strings(argv)).is_ok_and(|o| o.ok())
}

fn validate(spec: &WorkerSpec) -> Result<(), WorkerError> {
    let bad = |field, value: &str, why: String| {
        Err(WorkerError::Spec {
            field,
            value: value.to_string(),
            why,
        })
    };
    if let Err(why) = check_jail_name(&spec.name) {
        return bad("name", &spec.name, why);
    }
    if spec.argv.first().is_none_or(|p| p.is_empty()) {
        return bad("argv", "", "needs at least the program to run".into());
    }
    if spec.user.is_empty()
        || !spec
            .user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return bad("user", &spec.user, "a Unix user name".into());
    }
    if let Some((k, _)) = spec
        .env
        .iter()
        .find(|(k, _)| k.is_empty() || k.contains('='))
    {
        return bad("env", k, "names must be non-empty and without '='".into());
    }
    if let Some(cwd) = spec.cwd.as_deref().filter(|c| !c.starts_with('/')) {
        return bad("cwd", cwd, "must be absolute".into());
    }
    Ok(())
}

/// Runs `argv` to remove something of a worker; a failure is a problem only when `still_there` (a probe run
/// only then) says the thing exists: removing what is already gone is no leak. One command when it works.
fn remove(
    runner: &dyn Runner,
    what: &str,
    argv: &[&str],
    still_there: &[&str],
    problems: &mut Vec<String>,
) {
    if let Err(e) = step(runner, what, argv) {
        if exists(runner, still_there) {
            problems.push(e.to_string());
        }
    }
}

/// Removes whatever exists of worker `name`: its jail, its epair (when `epair`: a vnet worker, or one whose
/// network is unknown, as for the reaper), its rctl rules and its clone. Returns what failed.
pub fn teardown(runner: &dyn Runner, layout: &Layout, name: &str, epair: bool) -> Vec<String> {
    let mut problems = Vec::new();
    // jail -r kills every process in the jail, so this also ends a timed-out command.
    remove(
        runner,
        &format!("remove jail {name}"),
        &["jail", "-r", name],
        &["jls", "-j", name, "jid"],
        &mut problems,
    );
    if epair {
        let host_side = format!("e0a_{name}");
        // Destroying either end of an epair destroys both (as Bastille's exec.poststop does, §1.4).
        remove(
            runner,
            &format!("destroy {host_side}"),
            &["ifconfig", &host_side, "destroy"],
            &["ifconfig", &host_side],
            &mut problems,
        );
    }
    // rctl rules outlive the jail otherwise; absence of rctl or of rules is not a leak.
    let _ = runner.run(&strings(&["rctl", "-r", &format!("jail:{name}")]));
    let ds = datasets::worker(layout, name);
    remove(
        runner,
        &format!("destroy the clone {ds}"),
        &["zfs", "destroy", "-r", &ds],
        &["zfs", "list", "-H", "-o", "name", &ds],
        &mut problems,
    );
    problems
}

/// Clones `POOL/PREFIX/releases/REL@warden-worker` for worker `name`: one `zfs clone` once the snapshot exists;
/// the first worker of a release (or the first after the agent step destroyed it) takes the snapshot.
fn clone_template(
    runner: &dyn Runner,
    layout: &Layout,
    release: &str,
    name: &str,
) -> Result<(), WorkerError> {
    let snap = datasets::worker_template(layout, release);
    let ds = datasets::worker(layout, name);
    let what = format!("clone {snap} for worker {name}");
    // -p creates POOL/PREFIX/workers on first use; the clone inherits the prefix's mountpoint (§1.7).
    let clone = ["zfs", "clone", "-p", &snap, &ds];
    let Err(e) = step(runner, &what, &clone) else {
        return Ok(());
    };
    let listed = ["zfs", "list", "-H", "-o", "name", "-t", "snapshot", &snap];
    if exists(runner, &listed) {
        return Err(e);
    }
    if let Err(e) = step(
        runner,
        "take the worker template snapshot",
        &["zfs", "snapshot", &snap],
    ) {
        // Another worker may have taken it meanwhile; only a still-missing snapshot is a failure.
        if !exists(runner, &listed) {
            return Err(e);
        }
    }
    step(runner, &what, &clone).map(|_| ())
}

/// `jail -c` parameters as Bastille writes them for a VNET jail (§1.4), without exec.start (a worker does not
/// boot rc) and with `persist` so it lives without processes until `jail -r`.
fn jail_params(spec: &WorkerSpec, path: &str) -> Vec<String> {
    let name = &spec.name;
    let mut p = vec![
        "jail".to_string(),
        "-c".into(),
        format!("name={name}"),
        format!("path={path}"),
        format!("host.hostname={name}"),
        "persist".into(),
        "enforce_statfs=2".into(),
        "mount.devfs".into(),
        "securelevel=2".into(),
        "exec.clean".into(),
    ];
    match spec.network {
        WorkerNetwork::Vnet => {
            p.extend([
                "devfs_ruleset=13".into(),
                "vnet".into(),
                format!("vnet.interface=e0b_{name}"),
            ]);
        }
        WorkerNetwork::Shared => p.extend([
            "devfs_ruleset=4".into(),
            "ip4=inherit".into(),
            "ip6=inherit".into(),
        ]),
        WorkerNetwork::None => p.extend([
            "devfs_ruleset=4".into(),
            "ip4=disable".into(),
            "ip6=disable".into(),
        ]),
    }
    p
}

/// The epair on the bridge, made the way Bastille's `-B` prestart does (§1.4), but as separate checked commands.
fn create_epair(runner: &dyn Runner, layout: &Layout, name: &str) -> Result<(), WorkerError> {
    let out = step(runner, "create an epair", &["ifconfig", "epair", "create"])?;
    let Some(a) = crate::parse::ifconfig::created_name(&out.stdout) else {
        return Err(WorkerError::Failed {
            what: "create an epair".into(),
            command: "ifconfig epair create".into(),
            status: 0,
            stderr: format!("unexpected output {:?}", out.stdout.trim()),
        });
    };
    let b = format!("{}b", a.strip_suffix('a').unwrap_or(&a));
    let (host_side, jail_side) = (format!("e0a_{name}"), format!("e0b_{name}"));
    step(
        runner,
        "name the host side of the epair",
        &["ifconfig", &a, "name", &host_side],
    )?;
    step(
        runner,
        "name the jail side of the epair",
        &["ifconfig", &b, "name", &jail_side],
    )?;
    step(
        runner,
        "add the epair to the bridge",
        &["ifconfig", &layout.bridge, "addm", &host_side],
    )?;
    // Workers cannot reach each other: a private member forwards nothing to another private member (the
    // service jails' ports stay ordinary members, reachable as on Linux).
    step(
        runner,
        "make the worker's port private",
        &["ifconfig", &layout.bridge, "private", &host_side],
    )?;
    step(
        runner,
        "bring the host side up",
        &["ifconfig", &host_side, "up"],
    )?;
    Ok(())
}

/// Creates the worker, runs the command, tears it down.
pub fn run_worker(
    runner: &dyn Runner,
    layout: &Layout,
    spec: &WorkerSpec,
) -> Result<WorkerOutcome, WorkerError> {
    run_worker_until(runner, layout, spec, &Cancel::new())
}

/// [`run_worker`], ended early (`jail -r`) once `cancel` is set.
pub fn run_worker_until(
    runner: &dyn Runner,
    layout: &Layout,
    spec: &WorkerSpec,
    cancel: &Cancel,
) -> Result<WorkerOutcome, WorkerError> {
    validate(spec)?;
    let lease = match spec.network {
        WorkerNetwork::Vnet => Some(lease(&spec.state_dir, layout.workers, &spec.name)?),
        _ => None,
    };
    // No check for leftovers of an earlier worker of this name before creating: names are unique per process
    // and recorded before anything exists, so the reaper removes a crashed run's leftovers; a clash fails the
    // clone with ZFS's own message, and the teardown below then removes the leftovers too.
    let result = create_and_run(runner, layout, spec, lease.as_ref(), cancel);
    let vnet = spec.network == WorkerNetwork::Vnet;
    let problems = teardown(runner, layout, &spec.name, vnet);
    drop(lease);
    for p in &problems {
        tracing::warn!(worker = %spec.name, "teardown: {p}");
    }
    let mut outcome = result?;
    outcome.cleanup_problems = problems;
    Ok(outcome)
}

fn create_and_run(
    runner: &dyn Runner,
    layout: &Layout,
    spec: &WorkerSpec,
    lease: Option<&Lease>,
    cancel: &Cancel,
) -> Result<WorkerOutcome, WorkerError> {
    let name = spec.name.as_str();
    let release = spec
        .release
        .clone()
        .unwrap_or_else(|| layout.release.clone());
    clone_template(runner, layout, &release, name)?;
    if lease.is_some() {
        create_epair(runner, layout, name)?;
    }
    let path = datasets::worker_dir(layout, name);
    check_user(runner, &path, &release, &spec.user)?;
    let fstab = write_fstab(runner, spec, &path)?;
    if let Some(text) = &spec.stdin {
        write_in_clone(runner, &path, STDIN_FILE, text)?;
    }
    let mut params = jail_params(spec, &path);
    if let Some(fstab) = fstab {
        params.push(format!("mount.fstab={fstab}"));
    }
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    // jail(8) exits 0 only once the jail exists (`persist`: it stays without processes).
    step(runner, &format!("start worker jail {name}"), &params)?;
    configure_jail(runner, layout, spec, lease)?;
    let argv = exec_argv(spec);
    let started = Instant::now();
    let (out, ended, capped) = exec_with_timeout(
        runner,
        name,
        &argv,
        spec.limits.timeout,
        spec.limits.output_bytes,
        cancel,
    )
    .map_err(|source| WorkerError::Run {
        what: format!("run the command in {name}"),
        source,
    })?;
    let elapsed = started.elapsed();
    // jexec's own failures (no such jail, no such user) exit 1 like a failing command (§7.1); they print
    // `jexec: …` first, which a command's stderr does not.
    if ended.is_none() && out.status == 1 && out.stderr.starts_with("jexec: ") {
        return Err(WorkerError::Failed {
            what: format!("run the command in {name}"),
            command: warden_core::plan::shell_words(&argv),
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        });
    }
    let (exit_code, end) = if let Some(end) = ended {
        let code = match end {
            WorkerEnd::TimedOut => exit_codes::TIMEOUT,
            _ => exit_codes::KILLED,
        };
        (code, end)
    } else if capped {
        (exit_codes::OUTPUT, WorkerEnd::OutputCapped)
    } else if out.status < 0 {
        // The runner reports death by a signal as -1 without the number; SIGKILL (memory, the reaper) is the case.
        (exit_codes::KILLED, WorkerEnd::Killed)
    } else {
        (out.status, WorkerEnd::Exited)
    };
    Ok(WorkerOutcome {
        exit_code,
        end,
        stdout: out.stdout,
        stderr: out.stderr,
        addr: lease.map(Lease::addr),
        elapsed,
        cleanup_problems: Vec::new(),
    })
}

/// Gives a started worker jail its network (address and default route, with a lease) and its rctl limits.
fn configure_jail(
    runner: &dyn Runner,
    layout: &Layout,
    spec: &WorkerSpec,
    lease: Option<&Lease>,
) -> Result<(), WorkerError> {
    let name = spec.name.as_str();
    if let Some(lease) = lease {
        let cidr = format!("{}/24", lease.addr());
        let gw = layout.gateway.to_string();
        let jail_side = format!("e0b_{name}");
        step(
            runner,
            "address the worker",
            &[
                "jexec", "-l", "-U", "root", name, "ifconfig", &jail_side, "inet", &cidr, "up",
            ],
        )?;
        step(
            runner,
            "route the worker through the gateway",
            &[
                "jexec", "-l", "-U", "root", name, "route", "add", "default", &gw,
            ],
        )?;
    }
    if let Some(bytes) = spec.limits.memory_bytes {
        step(
            runner,
            "limit memory",
            &["rctl", "-a", &format!("jail:{name}:memoryuse:deny={bytes}")],
        )?;
    }
    if let Some(procs) = spec.limits.max_procs {
        step(
            runner,
            "limit processes",
            &["rctl", "-a", &format!("jail:{name}:maxproc:deny={procs}")],
        )?;
    }
    Ok(())
}

/// The worker user must exist in the clone (the release): `jexec -U` refuses unknown users. Checked before the
/// jail starts so the failure names the cause instead of surfacing as the command's exit 1.
fn check_user(
    runner: &dyn Runner,
    path: &str,
    release: &str,
    user: &str,
) -> Result<(), WorkerError> {
    let passwd = runner
        .read_file(&format!("{path}/etc/passwd"))
        .map_err(|source| WorkerError::Run {
            what: "read the worker's /etc/passwd".into(),
            source,
        })?
        .unwrap_or_default();
    if passwd.lines().any(|l| l.split(':').next() == Some(user)) {
        return Ok(());
    }
    Err(WorkerError::Spec {
        field: "user",
        value: user.to_string(),
        why: format!(
            "no such user in release {release}: add it to the release (pw -R PATH useradd) or run as a user it has, e.g. nobody"
        ),
    })
}

/// `jexec -l -U USER NAME [env K=V…] [/bin/sh -c 'cd "$0" && exec "$@"' CWD] argv…` (§7.1: jexec passes the
/// command's exit status through).
fn exec_argv(spec: &WorkerSpec) -> Vec<String> {
    let mut argv = strings(&["jexec", "-l", "-U", &spec.user, &spec.name]);
    if !spec.env.is_empty() {
        argv.push("env".into());
        argv.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
    }
    match (&spec.cwd, &spec.stdin) {
        (Some(cwd), None) => {
            argv.extend(strings(&["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd]));
        }
        (cwd, Some(_)) => {
            let script = format!("cd \"$0\" && exec \"$@\" < /{STDIN_FILE}");
            argv.extend(strings(&[
                "/bin/sh",
                "-c",
                &script,
                cwd.as_deref().unwrap_or("/"),
            ]));
        }
        (None, None) => {}
    }
    argv.extend(spec.argv.iter().cloned());
    argv
}

/// Where a worker's stdin text is written in its clone (relative to the root).
const STDIN_FILE: &str = "tmp/.warden-stdin";

/// Writes `text` at `rel` inside the clone at `path` (a host path under the runner's root).
fn write_in_clone(
    runner: &dyn Runner,
    path: &str,
    rel: &str,
    text: &str,
) -> Result<(), WorkerError> {
    runner
        .write_file(&format!("{path}/{rel}"), 0o644, text)
        .map_err(|source| WorkerError::Run {
            what: format!("write /{rel} into the worker"),
            source,
        })
}

/// The jail's `mount.fstab` for the spec's nullfs mounts (written in the clone, next to nothing the command
/// can use: jail(8) reads it from the host before the command starts), with each mount point created (through the runner's files); `None`
/// without mounts. jail(8) mounts the lines at `jail -c` and unmounts them at `jail -r`.
fn write_fstab(
    runner: &dyn Runner,
    spec: &WorkerSpec,
    path: &str,
) -> Result<Option<String>, WorkerError> {
    if spec.mounts.is_empty() {
        return Ok(None);
    }
    let mut text = String::new();
    for m in &spec.mounts {
        if !m.target.starts_with('/')
            || m.target.contains("..")
            || m.source.contains(char::is_whitespace)
        {
            return Err(WorkerError::Spec {
                field: "mounts",
                value: format!("{} -> {}", m.source, m.target),
                why: "targets must be absolute, without '..', sources without spaces".into(),
            });
        }
        // The mount point, made through the runner's file seam (which creates parents; a marker file under it is
        // hidden by the mount) rather than a host `mkdir` on a path of the simulated host.
        write_in_clone(
            runner,
            path,
            &format!("{}/.warden-mountpoint", &m.target[1..]),
            "",
        )?;
        let opts = if m.writable { "rw" } else { "ro" };
        text.push_str(&format!(
            "{} {path}{} nullfs {opts} 0 0\n",
            m.source, m.target
        ));
    }
    let fstab = format!("{path}/etc/fstab.warden");
    runner
        .write_file(&fstab, 0o644, &text)
        .map_err(|source| WorkerError::Run {
            what: "write the worker's fstab".into(),
            source,
        })?;
    Ok(Some(fstab))
}

/// Runs `argv` (its output capped at `cap` bytes, the command killed beyond) on a helper thread; when
/// `timeout` passes or `cancel` is set first, `jail -r NAME` kills everything in the jail, which ends the
/// command. Returns the output, how it was ended early (timed out or cancelled) if it was, whether it went over
/// the cap.
fn exec_with_timeout(
    runner: &dyn Runner,
    name: &str,
    argv: &[String],
    timeout: Option<Duration>,
    cap: Option<u64>,
    cancel: &Cancel,
) -> Result<(Output, Option<WorkerEnd>, bool), RunError> {
    // No deadline of the runner's own: this function ends the command at the turn's timeout or cancel.
    let exec = move || runner.run_until(argv, cap.unwrap_or(u64::MAX), None);
    let deadline = timeout.map(|t| Instant::now() + t);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        s.spawn(move || {
            let _ = tx.send(exec());
        });
        let ended = loop {
            // Short waits so a cancel is seen promptly; the command's end wakes this at once.
            let wait = deadline
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(50))
                .min(Duration::from_millis(50));
            match rx.recv_timeout(wait) {
                Ok(result) => return result.map(|(o, capped)| (o, None, capped)),
                Err(mpsc::RecvTimeoutError::Disconnected) => break None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if cancel.is_cancelled() {
                        break Some(WorkerEnd::Cancelled);
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break Some(WorkerEnd::TimedOut);
                    }
                }
            }
        };
        // jail -r kills what runs in the jail; a command caught between its start and entering the jail (a cancel
        // as the turn starts; fakebsd records a jexec's process group only once it has spawned) survives one, so
        // it is repeated until the command returns. The scope then joins the thread.
        let result = loop {
            let _ = runner.run(&strings(&["jail", "-r", name]));
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(r) => break Ok(r),
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => break Err(()),
            }
        };
        let (out, _) = result.unwrap_or_else(|_| {
            Ok((
                Output {
                    status: -1,
                    ..Default::default()
                },
                false,
            ))
        })?;
        Ok((out, Some(ended.unwrap_or(WorkerEnd::Killed)), false))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_core::config::load;
    use warden_host::runner::Call;
    use warden_host::{RecordingRunner, Runner};

    fn layout() -> Layout {
        Layout::from_loaded(&load(None, &|_| None, &vec![]).unwrap()).unwrap()
    }

    #[test]
    fn spec_is_validated() {
        let l = layout();
        let dir = tempfile::tempdir().unwrap();
        let mut spec = WorkerSpec::new(&l, "w101", &["echo", "hi"], dir.path());
        assert!(validate(&spec).is_ok());
        spec.name = "clawdie-w1".into();
        assert!(matches!(
            validate(&spec),
            Err(WorkerError::Spec { field: "name", .. })
        ));
        spec.name = "w1".into();
        spec.argv.clear();
        assert!(validate(&spec).is_err());
        let e = validate(&WorkerSpec {
            cwd: Some("tmp".into()),
            ..WorkerSpec::new(&l, "w1", &["x"], dir.path())
        });
        assert_eq!(e.unwrap_err().exit_code(), exit_codes::INFRASTRUCTURE);
    }

    #[test]
    fn exec_argv_passes_env_and_cwd() {
        let l = layout();
        let mut spec = WorkerSpec::new(&l, "w1", &["echo", "hi"], "/tmp");
        assert_eq!(
            exec_argv(&spec),
            strings(&["jexec", "-l", "-U", "clawdie", "w1", "echo", "hi"])
        );
        spec.env = vec![("A".into(), "1".into())];
        spec.cwd = Some("/work".into());
        assert_eq!(
            exec_argv(&spec),
            strings(&[
                "jexec",
                "-l",
                "-U",
                "clawdie",
                "w1",
                "env",
                "A=1",
                "/bin/sh",
                "-c",
                "cd \"$0\" && exec \"$@\"",
                "/work",
                "echo",
                "hi"
            ])
        );
    }

    #[test]
    fn shared_worker_command_order() {
        // The recording runner answers every probe with exit 0, so teardown finds "everything" present; what
        // matters here is the order of the create/run steps between the two teardowns.
        let l = layout();
        let dir = tempfile::tempdir().unwrap();
        let runner = RecordingRunner::new();
        runner
            .write_file(
                "/usr/local/bastille/workers/w1/etc/passwd",
                0o644,
                "clawdie:*:1001:1001::/home/clawdie:/bin/sh\n",
            )
            .unwrap();
        let mut spec = WorkerSpec::new(&l, "w1", &["echo", "hi"], dir.path());
        spec.limits = WorkerLimits {
            memory_bytes: Some(512 << 20),
            max_procs: Some(64),
            timeout: None,
            output_bytes: None,
        };
        let out = run_worker(&runner, &l, &spec).unwrap();
        assert_eq!((out.exit_code, out.end), (0, WorkerEnd::Exited));
        let runs: Vec<String> = runner
            .calls()
            .into_iter()
            .filter_map(|c| {
                if let Call::Run(a) = c {
                    Some(a.join(" "))
                } else {
                    None
                }
            })
            .collect();
        let pos = |needle: &str| {
            runs.iter()
                .position(|r| r == needle)
                .unwrap_or_else(|| panic!("{needle} not in {runs:#?}"))
        };
        let clone = pos("zfs clone -p zroot/clawdie-runtime/releases/15.0-RELEASE@warden-worker zroot/clawdie-runtime/workers/w1");
        let start = pos("jail -c name=w1 path=/usr/local/bastille/workers/w1 host.hostname=w1 persist enforce_statfs=2 mount.devfs securelevel=2 exec.clean devfs_ruleset=4 ip4=inherit ip6=inherit");
        let mem = pos("rctl -a jail:w1:memoryuse:deny=536870912");
        let exec = pos("jexec -l -U clawdie w1 echo hi");
        let last_remove = runs.iter().rposition(|r| r == "jail -r w1").unwrap();
        let last_destroy = runs
            .iter()
            .rposition(|r| r == "zfs destroy -r zroot/clawdie-runtime/workers/w1")
            .unwrap();
        assert!(
            clone < start
                && start < mem
                && mem < exec
                && exec < last_remove
                && last_remove < last_destroy,
            "{runs:#?}"
        );
        assert!(
            !runs.iter().any(|r| r.starts_with("ifconfig epair")),
            "a shared worker has no epair"
        );
    }
}
