//! `warden doctor`: checks a Warden host against its layout, concurrently, and says for each thing what was
//! expected, what was seen, and the exact command that fixes it.
//!
//! Families (one module each under `checks/`): network (bridge, forwarding, NAT, pf), dns (dnsmasq, listeners,
//! zone, real A queries through both listeners), hosts (the managed `/etc/hosts` block), jails (existence, state,
//! address, hostname, gateway, resolver, patch-level drift), control plane (`/healthz`, state directory and token
//! permissions, the outbound probe), bastille (prefix mode, sharedir, ZFS settings). All host access goes through
//! a [`warden_host::Runner`], so on a simulated FreeBSD host (`WARDEN_HOST_ROOT`) files are read under its root.
//! Checks that need a real answer the simulation cannot give (DNS replies, sockets) are `skip`ped with the reason,
//! never passed.
//!
//! [`pi_config`] is `warden pi-config`: the agent's runtime config, validated.

#![forbid(unsafe_code)]

pub mod checks;
pub mod dns_client;
pub mod pi_config;
pub mod report;
pub mod runner;

use std::net::SocketAddrV4;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use warden_core::Layout;
use warden_host::{Output, RunError, Runner, SystemRunner};

pub use report::{Check, Report, Status, Summary};
pub use runner::{run_all, Task};

/// Which host is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Linux: bridge, nftables, Warden's own dnsmasq in this network namespace.
    Linux,
    /// FreeBSD with Bastille, pf and the dnsmasq rc service.
    Bastille,
}

impl BackendKind {
    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Linux => "linux",
            BackendKind::Bastille => "bastille",
        }
    }
}

/// Why a doctor run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// `doctor.probe` is not `IP:PORT`.
    #[error("invalid outbound probe {value:?}: {why}\n  fix: use IP:PORT, e.g. --probe 1.1.1.1:443 (or WARDEN_DOCTOR_PROBE)")]
    BadProbe {
        /// The value given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Parses `IP:PORT` for the outbound probe.
pub fn parse_probe(value: &str) -> Result<SocketAddrV4, DoctorError> {
    value
        .trim()
        .parse::<SocketAddrV4>()
        .map_err(|e| DoctorError::BadProbe {
            value: value.to_string(),
            why: e.to_string(),
        })
}

/// What to check and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// The backend.
    pub backend: BackendKind,
    /// The validated layout.
    pub layout: Layout,
    /// Warden's state directory (a local path).
    pub state_dir: PathBuf,
    /// Root under which host file paths live: `/`, or a simulated host's root.
    pub host_root: PathBuf,
    /// The hosts file to check (a host path). `None`: `/etc/hosts` on FreeBSD; on Linux only when given, or
    /// when `/etc/hosts` already carries Warden's block.
    pub hosts_file: Option<String>,
    /// Outbound reachability target (`doctor.probe`), reached from a VNET worker through the NAT.
    pub probe: Option<SocketAddrV4>,
    /// Time allowed to each task.
    pub timeout: Duration,
    /// Time allowed to one DNS query.
    pub dns_timeout: Duration,
    /// How remedies spell the warden command, with the global flags this run used (e.g.
    /// `warden --state-dir /var/lib/warden`).
    pub warden: String,
    /// The Telegram channel's settings, when a bot token is configured (`telegram.bot`).
    pub telegram: Option<warden_telegram::TelegramConfig>,
}

impl Options {
    /// Defaults for `layout` on `backend`: per-task timeout 3 s, DNS queries 500 ms.
    pub fn new(backend: BackendKind, layout: Layout, state_dir: impl Into<PathBuf>) -> Options {
        Options {
            backend,
            layout,
            state_dir: state_dir.into(),
            host_root: PathBuf::from("/"),
            hosts_file: None,
            probe: None,
            timeout: Duration::from_secs(3),
            dns_timeout: Duration::from_millis(500),
            warden: "warden".into(),
            telegram: None,
        }
    }
}

/// Everything a check needs, shared by the check threads.
pub struct Ctx {
    /// The options of this run.
    pub opts: Options,
    /// The one way to the host.
    pub runner: Arc<dyn Runner>,
}

impl Ctx {
    /// A context over the real host (or the simulated one under `opts.host_root`).
    pub fn new(opts: Options) -> Ctx {
        let runner: Arc<dyn Runner> = Arc::new(SystemRunner::with_root(&opts.host_root));
        Ctx { opts, runner }
    }

    /// A context with a given runner (tests).
    pub fn with_runner(opts: Options, runner: Arc<dyn Runner>) -> Ctx {
        Ctx { opts, runner }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.opts.layout
    }

    /// Whether the host is simulated (files under a root other than `/`): nothing there answers real traffic.
    pub fn simulated(&self) -> bool {
        self.opts.host_root != Path::new("/")
    }

    /// Runs `argv` on the host.
    pub fn run(&self, argv: &[&str]) -> Result<Output, DoctorRunError> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        self.runner.run(&argv).map_err(DoctorRunError)
    }

    /// `warden setup --backend B --step STEP` with this run's global flags.
    pub fn setup(&self, step: &str) -> String {
        format!(
            "{} setup --backend {} --step {step}",
            self.opts.warden,
            self.opts.backend.name()
        )
    }
}

/// A host command that could not be started, shown on one line (the runner's error carries a `fix:` line that
/// does not belong in a check's `seen`).
#[derive(Debug)]
pub struct DoctorRunError(pub RunError);

impl DoctorRunError {
    /// Whether the program is missing (could not be spawned).
    pub fn is_missing(&self) -> bool {
        matches!(self.0, RunError::Spawn { .. })
    }
}

impl std::fmt::Display for DoctorRunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        f.write_str(text.lines().next().unwrap_or(""))
    }
}

/// Quotes `s` for a POSIX shell when it needs it.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Short text of a command's outcome for `seen`: its first line of stderr (or stdout) and exit status.
pub fn said(out: &Output) -> String {
    let line = out
        .stderr
        .lines()
        .chain(out.stdout.lines())
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    format!("exit {}: {line}", out.status)
}

/// What of the layout's host side is on the host: the bridge, dnsmasq's config, the firewall ruleset. Empty means
/// the host is not set up (never, or torn down): then the doctor says so instead of listing every check as
/// failed. A kept (stopped) db jail does not count: `warden teardown` leaves it on purpose.
pub fn set_up_traces(opts: &Options) -> Vec<String> {
    let ctx = Ctx::new(opts.clone());
    let bridge = &opts.layout.bridge;
    let mut found = Vec::new();
    let (bridge_probe, files): (Vec<&str>, Vec<String>) = match opts.backend {
        BackendKind::Linux => (
            vec!["ip", "link", "show", "dev", bridge],
            vec![
                opts.state_dir.join("dnsmasq.conf").display().to_string(),
                opts.state_dir.join("nftables.conf").display().to_string(),
            ],
        ),
        BackendKind::Bastille => (
            vec!["ifconfig", bridge],
            vec![
                warden_core::render::rc_conf::DNSMASQ_CONF.to_string(),
                warden_core::bastille_plan::PF_CONF.to_string(),
            ],
        ),
    };
    if ctx.run(&bridge_probe).is_ok_and(|o| o.ok()) {
        found.push(format!("the bridge {bridge}"));
    }
    for f in files {
        if ctx.runner.read_file(&f).is_ok_and(|c| c.is_some()) {
            found.push(f);
        }
    }
    found
}

/// Runs every check for `opts` and returns the report.
pub fn run(opts: Options) -> Report {
    let started = Instant::now();
    let backend = opts.backend.name();
    let timeout = opts.timeout;
    let ctx = Arc::new(Ctx::new(opts));
    let checks = run_all(checks::tasks(&ctx), timeout);
    Report::new(checks, backend, started.elapsed().as_millis() as u64)
}
