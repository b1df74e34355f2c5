//! What a worker is (`WorkerSpec`) and what running it produced (`Outcome`).
//!
//! Both cross the process boundary between `run` and the re-exec'd helper as JSON.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The user workers run as unless the spec names one: `nobody:nogroup`.
pub const DEFAULT_USER: (u32, u32) = (65534, 65534);

/// Longest worker name: `e0a_<name>` must fit IFNAMSIZ (15 characters).
pub const MAX_NAME_LEN: usize = 11;

/// Everything needed to create one ephemeral worker and run one command in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    /// Jail name: `[a-z0-9]`, at most 11 characters.
    pub name: String,
    pub release: ReleaseRef,
    pub shape: Shape,
    pub network: NetworkMode,
    pub limits: Limits,
    /// `(uid, gid)`; `None` means [`DEFAULT_USER`].
    pub user: Option<(u32, u32)>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Working directory inside the worker.
    pub cwd: PathBuf,
    pub hostname: String,
    pub binds: Vec<Bind>,
    /// Warden's state directory: worker records (`workers/`), leases (`leases/`).
    pub state_dir: PathBuf,
    /// Root of the cgroup hierarchy (normally `/sys/fs/cgroup`); a parameter so tests can move it.
    pub cgroup_root: PathBuf,
    /// Set for a persistent jail: its directory (`<state_dir>/jails/NAME`), which holds the
    /// root's data (thin: `upper/` + `work/`; thick: `root/`). The init then runs no command: it
    /// reaps orphans until SIGTERM, and the helper reports as soon as the jail is up, then stays
    /// as its supervisor (see [`crate::jail`]).
    #[serde(default)]
    pub persistent: Option<PathBuf>,
    /// Set for a pooled worker (see [`crate::pool`]): the worker is built up to the command and
    /// parked; its command arrives later as a [`Turn`] (`argv`, `env`, `cwd`, `user`, `limits`
    /// here are then only the parked defaults).
    #[serde(default)]
    pub parked: bool,
    /// IANA timezone for `/etc/localtime` of a host-release root (Warden's `timezone`); `None`: the host's.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Whether `/dev/net/tun` is in the root's `/dev` (a persistent jail with `tailscale.mode = jail`).
    #[serde(default)]
    pub tun: bool,
}

impl WorkerSpec {
    /// Whether this worker may run in a recycled network namespace and give its own back
    /// (`netns_stash`): a cold worker without a network (parked ones use descriptor 5 for control).
    pub(crate) fn recycles_netns(&self) -> bool {
        self.network == NetworkMode::None && !self.parked && self.persistent.is_none()
    }

    /// A worker on the host release with no network, default limits, running `argv` as nobody.
    pub fn new(name: &str, argv: &[&str], state_dir: impl Into<PathBuf>) -> Self {
        WorkerSpec {
            name: name.to_string(),
            release: ReleaseRef::Host,
            shape: Shape::Thin,
            network: NetworkMode::None,
            limits: Limits::default(),
            user: None,
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: vec![(
                "PATH".into(),
                "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
            )],
            cwd: PathBuf::from("/"),
            hostname: name.to_string(),
            binds: Vec::new(),
            state_dir: state_dir.into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            persistent: None,
            parked: false,
            timezone: None,
            tun: false,
        }
    }

    /// Rejects specs that would break names, paths or the helper's assumptions.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name)?;
        if let Some(dir) = &self.persistent {
            if !dir.is_absolute() {
                return Err(spec_err(
                    "persistent",
                    &dir.display().to_string(),
                    "must be an absolute directory",
                ));
            }
        } else if !self.parked && (self.argv.is_empty() || self.argv[0].is_empty()) {
            return Err(spec_err("argv", "", "needs at least the program to run"));
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(spec_err(
                "argv",
                &format!("{:?}", self.argv),
                "contains a NUL byte",
            ));
        }
        if self
            .env
            .iter()
            .any(|(k, v)| k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0'))
        {
            return Err(spec_err(
                "env",
                "",
                "names must be non-empty without '=' or NUL",
            ));
        }
        if !self.cwd.is_absolute() {
            return Err(spec_err(
                "cwd",
                &self.cwd.display().to_string(),
                "must be absolute",
            ));
        }
        if self.hostname.is_empty() || self.hostname.len() > 64 || self.hostname.contains('\0') {
            return Err(spec_err("hostname", &self.hostname, "must be 1..=64 bytes"));
        }
        for b in &self.binds {
            if !b.source.is_absolute() || !b.target.is_absolute() {
                return Err(spec_err(
                    "binds",
                    &format!("{} -> {}", b.source.display(), b.target.display()),
                    "source and target must be absolute",
                ));
            }
            if b.target
                .components()
                .any(|c| c == std::path::Component::ParentDir)
            {
                return Err(spec_err(
                    "binds",
                    &b.target.display().to_string(),
                    "target must not contain '..'",
                ));
            }
        }
        if let ReleaseRef::Dir(dir) = &self.release {
            if !dir.is_absolute() {
                return Err(spec_err(
                    "release",
                    &dir.display().to_string(),
                    "must be an absolute directory",
                ));
            }
        }
        if let NetworkMode::Vnet(v) = &self.network {
            if v.prefix == 0 || v.prefix > 30 {
                return Err(spec_err(
                    "network.prefix",
                    &v.prefix.to_string(),
                    "must be 1..=30",
                ));
            }
            if v.bridge.is_empty() || v.bridge.len() > 15 {
                return Err(spec_err(
                    "network.bridge",
                    &v.bridge,
                    "must be 1..=15 characters",
                ));
            }
        }
        if !self.state_dir.is_absolute() {
            return Err(spec_err(
                "state_dir",
                &self.state_dir.display().to_string(),
                "must be absolute",
            ));
        }
        Ok(())
    }

    pub(crate) fn user_or_default(&self) -> (u32, u32) {
        self.user.unwrap_or(DEFAULT_USER)
    }
}

/// The command a parked worker runs: what varies from turn to turn. Everything else (root,
/// namespaces, cgroups, network) was made when the worker was parked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Turn {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// `(uid, gid)`; `None` means [`DEFAULT_USER`].
    pub user: Option<(u32, u32)>,
    pub limits: Limits,
    /// CLOCK_MONOTONIC µs when the caller handed the turn over (for `Timings::spawn_us`).
    #[serde(default)]
    pub sent_us: u64,
}

impl Turn {
    /// The per-turn part of a spec.
    pub fn from_spec(spec: &WorkerSpec) -> Turn {
        Turn {
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            cwd: spec.cwd.clone(),
            user: spec.user,
            limits: spec.limits.clone(),
            sent_us: 0,
        }
    }

    /// Rejects what [`WorkerSpec::validate`] would reject in these fields.
    pub fn validate(&self, name: &str) -> Result<()> {
        let mut spec = WorkerSpec::new(name, &[], "/");
        self.apply(&mut spec);
        spec.validate()
    }

    /// Writes this turn's fields into `spec`.
    pub(crate) fn apply(&self, spec: &mut WorkerSpec) {
        spec.argv = self.argv.clone();
        spec.env = self.env.clone();
        spec.cwd = self.cwd.clone();
        spec.user = self.user;
        spec.limits = self.limits.clone();
        spec.parked = false;
    }
}

/// Checks a worker name: `[a-z0-9]`, 1..=11 characters.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(spec_err(
            "name",
            name,
            "must be 1..=11 characters (e0a_<name> must fit 15)",
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(spec_err("name", name, "must be only [a-z0-9]"));
    }
    Ok(())
}

fn spec_err(field: &'static str, value: &str, why: &'static str) -> Error {
    Error::Spec {
        field,
        value: value.to_string(),
        why,
    }
}

/// The root file system of a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReleaseRef {
    /// Read-only binds of the host's `/usr`, `/bin`, `/lib*`, `/sbin` plus a generated minimal `/etc`.
    Host,
    /// A root file-system tree, e.g. made by [`crate::release::bootstrap_debian`].
    Dir(PathBuf),
}

/// How the worker's root is made from its release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// overlayfs: the release is the read-only lower layer, a per-worker tmpfs the upper.
    Thin,
    /// A full copy of the release into a per-worker tmpfs (slow; for completeness).
    Thick,
}

/// The worker's network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Its own network namespace with only `lo`.
    None,
    /// The network namespace warden itself runs in (no network isolation): the Linux reading of the
    /// design's "shared network" workers, like a FreeBSD jail with `ip4=inherit`.
    Shared,
    /// Its own namespace plus a veth pair on the bridge.
    Vnet(Vnet),
}

/// A worker's place on the bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// The bridge the host side joins (`warden0`).
    pub bridge: String,
    pub dns: Ipv4Addr,
    /// Network namespace holding the bridge (a path such as `/run/netns/NAME`); `None` = warden's own.
    pub host_netns: Option<PathBuf>,
}

/// Resource limits of one worker; `None` means unlimited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub max_pids: Option<u64>,
    /// CPU as a fraction of one core (1.0 = one full core).
    pub cpu: Option<f64>,
    pub timeout_ms: Option<u64>,
    /// Cap on stdout + stderr bytes together.
    pub output_bytes: Option<u64>,
    /// Run even when a cgroup controller for a memory, pids or cpu limit is missing (`workers.allow_unlimited`):
    /// that limit is then not enforced, with a warning. Off: such a worker is refused.
    #[serde(default)]
    pub allow_unlimited: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: Some(512 << 20),
            max_pids: Some(256),
            cpu: None,
            timeout_ms: Some(600_000),
            output_bytes: Some(16 << 20),
            allow_unlimited: false,
        }
    }
}

/// An extra bind mount into the worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub writable: bool,
}

/// What ended the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitKind {
    Exited(i32),
    Signaled(i32),
    Limit(LimitKind),
}

/// The limit a killed worker went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LimitKind {
    Memory,
    Pids,
    Timeout,
    Output,
}

/// Where the time of one run went, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    /// `run` called → helper's `main` running (re-exec of the binary).
    pub spawn_us: u64,
    /// Helper start (record written) → clone() of the worker's init with its new namespaces.
    pub clone_us: u64,
    /// Cgroups created, limited, the init moved in (overlaps with `mounts_us`).
    pub cgroup_us: u64,
    /// veth pair created on the bridge (Vnet only; overlaps with `mounts_us`).
    pub net_host_us: u64,
    /// Root built and pivoted into (inside the worker).
    pub mounts_us: u64,
    /// Interfaces configured inside the worker (Vnet only).
    pub net_worker_us: u64,
    /// Helper's start → the worker's execve.
    pub exec_us: u64,
    /// execve → the worker's exit.
    pub wait_us: u64,
    /// Synchronous teardown before returning (limits read, records queued).
    pub teardown_us: u64,
    /// Helper's start → the outcome sent to `run`.
    pub report_us: u64,
    /// `run` called → `run` returning.
    pub total_us: u64,
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub status: ExitKind,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub timings: Timings,
}
