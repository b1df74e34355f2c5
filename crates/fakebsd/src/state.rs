//! The simulated host: `state.json` under `$FAKEBSD_STATE`, the fake filesystem root, and the lock.
//!
//! Everything inside the simulation uses FreeBSD paths (`/usr/local/bastille/jails/web/root`); only the
//! storage lives under `$FAKEBSD_STATE/root/`. [`Ctx::path`] maps one to the other.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::io::Io;

/// The host's own `freebsd-version` (kernel and userland).
pub const HOST_VERSION: &str = "15.0-RELEASE-p2";

/// Tool names `fakebsd install` and `fakebsd init` link to the binary.
pub const TOOLS: &[&str] = &[
    "bastille",
    "jls",
    "jexec",
    "jail",
    "zfs",
    "ifconfig",
    "sysctl",
    "sysrc",
    "pfctl",
    "service",
    "daemon",
    "npm",
    "test",
    "route",
    "netstat",
    "freebsd-version",
    "chflags",
    "mount",
    "kldload",
    "kldstat",
    "install",
    "pkg",
    "pw",
    "rctl",
    "tailscale",
];

/// Environment variable naming the state directory.
pub const ENV_STATE: &str = "FAKEBSD_STATE";
/// Set by `jexec`: the jail the process runs "inside".
pub const ENV_JAIL: &str = "FAKEBSD_JAIL";
/// Simulated uid (default 0).
pub const ENV_UID: &str = "FAKEBSD_UID";
/// Set for children of a fakebsd process that holds the lock (nested tool calls).
pub const ENV_LOCK_HELD: &str = "FAKEBSD_LOCK_HELD";

/// The whole simulated host, serialised as `state.json`.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct State {
    /// Bastille version chosen at `init` (`FAKEBSD_BASTILLE_VERSION` overrides it per call).
    pub bastille_version: String,
    /// rctl rules added with `rctl -a` (kept, not enforced).
    #[serde(default)]
    pub rctl_rules: Vec<String>,
    /// ZFS datasets and snapshots (`pool/a/b`, `pool/a@snap`).
    pub datasets: BTreeMap<String, Dataset>,
    /// Network interfaces by current name.
    pub interfaces: BTreeMap<String, Iface>,
    /// The IPv4 default route.
    pub default_route: Option<Route>,
    /// Writable and read-only sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// Loaded kernel modules (pf.ko is `pf`).
    pub kmods: BTreeSet<String>,
    /// Packet filter state.
    pub pf: Pf,
    /// Running rc.d services, keyed `host:NAME` or `JAIL:NAME`.
    pub services: BTreeMap<String, Service>,
    /// Running jails by name.
    pub jails: BTreeMap<String, Jail>,
    /// Mounted filesystems other than ZFS datasets (nullfs, devfs).
    pub mounts: Vec<Mount>,
    /// Next jail id.
    pub next_jid: u32,
    /// Next process id handed to a started service.
    pub next_pid: u32,
    /// A logical clock for creation order.
    pub clock: u64,
    /// Simulated file ownership (`install -o/-g`, `pw useradd -m`, packages) by FreeBSD host path
    /// (`/usr/local/bastille/jails/git/root/var/git/repos` → `git:git`); files are not chown'd for real.
    #[serde(default)]
    pub owners: BTreeMap<String, String>,
    /// Tailscale nodes by scope (`host` or the jail), as `tailscale` keeps them (`tailscale.rs`).
    #[serde(default)]
    pub tailscale: BTreeMap<String, TailscaleNode>,
}

/// One Tailscale node's state (the daemon's, in `tailscaled.state` terms), kept by `tailscale.rs`.
#[derive(Serialize, Deserialize, Default, Clone, Debug, PartialEq, Eq)]
pub struct TailscaleNode {
    /// Logged in to the tailnet.
    pub logged_in: bool,
    /// `WantRunning`: up, not `tailscale down`.
    pub want_running: bool,
    /// The node's host name on the tailnet.
    pub hostname: String,
    /// `--advertise-routes`.
    pub advertise_routes: Vec<String>,
}

/// One ZFS dataset or snapshot.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Dataset {
    /// Locally set properties (mountpoint, compression, atime, ...).
    pub props: BTreeMap<String, String>,
    /// The snapshot this dataset was cloned from.
    pub origin: Option<String>,
    /// Logical creation time (for ordering snapshots).
    pub created: u64,
}

/// The kind of a network interface.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IfKind {
    /// lo0, lo1 ...
    Loopback,
    /// A physical NIC (vtnet0).
    Ether,
    /// if_bridge.
    Bridge,
    /// One end of an epair.
    Epair,
    /// A tun interface (tailscaled's `tailscale0`).
    Tun,
}

/// An IPv4 address with its prefix length.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inet {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length (0..=32).
    pub prefix: u8,
}

impl Inet {
    /// The netmask as a u32.
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }
    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }
    /// Whether `ip` is on this address's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (u32::from(ip) & self.mask()) == (u32::from(self.addr) & self.mask())
    }
}

/// One network interface.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Iface {
    /// What it is.
    pub kind: IfKind,
    /// Clone unit number; stays allocated after a rename (as in the kernel).
    pub unit: u32,
    /// IFF_UP.
    pub up: bool,
    /// Link-level address.
    pub mac: String,
    /// MTU.
    pub mtu: u32,
    /// IPv4 addresses.
    pub inet: Vec<Inet>,
    /// IPv6 addresses as given.
    pub inet6: Vec<String>,
    /// `ifconfig X description ...`.
    pub description: Option<String>,
    /// Bridge members.
    pub members: Vec<String>,
    /// Members marked `private` (they forward nothing to each other).
    #[serde(default)]
    pub private: Vec<String>,
    /// Interface groups (bridge, epair, lo).
    pub groups: Vec<String>,
    /// The other end of an epair.
    pub peer: Option<String>,
    /// The VNET jail this interface has been moved into.
    pub vnet: Option<String>,
}

impl Iface {
    /// A new interface of `kind` with clone unit `unit`.
    pub fn new(kind: IfKind, unit: u32, mac: String) -> Iface {
        let groups = match kind {
            IfKind::Loopback => vec!["lo".to_string()],
            IfKind::Bridge => vec!["bridge".to_string()],
            IfKind::Epair => vec!["epair".to_string()],
            IfKind::Tun => vec!["tun".to_string()],
            IfKind::Ether => vec![],
        };
        Iface {
            kind,
            unit,
            up: false,
            mac,
            mtu: if kind == IfKind::Loopback {
                16384
            } else {
                1500
            },
            inet: vec![],
            inet6: vec![],
            description: None,
            members: vec![],
            private: vec![],
            groups,
            peer: None,
            vnet: None,
        }
    }
}

/// The default route.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Route {
    /// Gateway address.
    pub gateway: String,
    /// Outgoing interface.
    pub interface: String,
}

/// Packet filter state (only meaningful while pf.ko is loaded).
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Pf {
    /// `pfctl -e` was run.
    pub enabled: bool,
    /// Unix time pf was enabled.
    pub enabled_at: u64,
    /// Loaded translation rules (normalised).
    pub nat: Vec<String>,
    /// Loaded filter rules (normalised).
    pub filter: Vec<String>,
    /// Tables and their addresses.
    pub tables: BTreeMap<String, BTreeSet<String>>,
    /// Rules loaded into anchors (`pfctl -a NAME -f -`).
    pub anchors: BTreeMap<String, Vec<String>>,
}

/// A running service.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Service {
    /// Its fake pid.
    pub pid: u32,
}

/// A running jail.
#[derive(Serialize, Deserialize, Default, Clone, Debug)]
pub struct Jail {
    /// Jail id.
    pub jid: u32,
    /// Root path (FreeBSD path).
    pub path: String,
    /// host.hostname.
    pub hostname: String,
    /// IPv4 addresses (shared-IP jails).
    pub ip4: Vec<String>,
    /// IPv6 addresses (shared-IP jails).
    pub ip6: Vec<String>,
    /// Aliases added to host interfaces: (interface, address).
    pub aliases: Vec<(String, String)>,
    /// Has its own network stack.
    pub vnet: bool,
    /// Interfaces moved into the jail.
    pub vnet_ifaces: Vec<String>,
    /// The persist flag.
    pub persist: bool,
    /// osrelease parameter.
    pub osrelease: String,
    /// All parameters the jail was created with.
    pub params: BTreeMap<String, String>,
    /// The jail's own default route (`route add default GW` inside a VNET jail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A non-ZFS mount.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Mount {
    /// Source (path or `devfs`).
    pub source: String,
    /// Mount point (FreeBSD path).
    pub target: String,
    /// nullfs, devfs, tmpfs ...
    pub fstype: String,
    /// Mount options.
    pub opts: String,
}

/// A tool invocation's view of the host: the state, the lock, and which jail (if any) it runs in.
pub struct Ctx {
    /// `$FAKEBSD_STATE`.
    pub dir: PathBuf,
    /// The loaded state.
    pub st: State,
    /// Set when running inside a jail (via `jexec`).
    pub jail: Option<String>,
    /// Simulated uid.
    pub uid: u32,
    _lock: Option<File>,
}

impl Ctx {
    /// Reads `$FAKEBSD_STATE`, takes the host lock and loads the state.
    pub fn open() -> Result<Ctx, String> {
        let dir = state_dir()?;
        if !dir.join("state.json").is_file() {
            return Err(format!(
                "fakebsd: no simulated host at {}; run `fakebsd init` first",
                dir.display()
            ));
        }
        let lock = if std::env::var_os(ENV_LOCK_HELD).map(PathBuf::from) == Some(dir.clone()) {
            None
        } else {
            let f = File::options()
                .create(true)
                .append(true)
                .open(dir.join("lock"))
                .map_err(|e| format!("fakebsd: cannot open {}: {e}", dir.join("lock").display()))?;
            f.lock()
                .map_err(|e| format!("fakebsd: cannot lock state: {e}"))?;
            Some(f)
        };
        let st = load(&dir)?;
        let uid = std::env::var(ENV_UID)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let jail = std::env::var(ENV_JAIL).ok().filter(|j| !j.is_empty());
        Ok(Ctx {
            dir,
            st,
            jail,
            uid,
            _lock: lock,
        })
    }

    /// Builds a context over an in-memory state (used by `init`).
    pub fn fresh(dir: PathBuf, st: State, lock: File) -> Ctx {
        Ctx {
            dir,
            st,
            jail: None,
            uid: 0,
            _lock: Some(lock),
        }
    }

    /// Writes the state back (atomically).
    pub fn save(&self) -> Result<(), String> {
        let text = serde_json::to_string_pretty(&self.st).map_err(|e| e.to_string())?;
        let tmp = self.dir.join("state.json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(|e| format!("fakebsd: write state: {e}"))?;
        std::fs::rename(&tmp, self.dir.join("state.json"))
            .map_err(|e| format!("fakebsd: write state: {e}"))
    }

    /// Re-reads the state after a nested tool changed it.
    pub fn reload(&mut self) -> Result<(), String> {
        self.st = load(&self.dir)?;
        Ok(())
    }

    /// The fake filesystem root on the real host.
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }

    /// Directory holding the tool symlinks (`$FAKEBSD_STATE/bin`), put first on PATH for child commands.
    pub fn bin_dir(&self) -> PathBuf {
        self.dir.join("bin")
    }

    /// Whether the simulated user is root.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Advances and returns the logical clock.
    pub fn tick(&mut self) -> u64 {
        self.st.clock += 1;
        self.st.clock
    }

    /// Maps a FreeBSD host path to the real path under the fake root. A path that already carries the
    /// root prefix is returned unchanged; a relative path stays relative (to the real cwd).
    pub fn host_path(&self, p: &str) -> PathBuf {
        let root = self.root();
        if Path::new(p).starts_with(&root) {
            return PathBuf::from(p);
        }
        match p.strip_prefix('/') {
            Some(rest) => root.join(rest),
            None => PathBuf::from(p),
        }
    }

    /// Maps a path as seen by the current process: inside a jail it is relative to the jail's root.
    pub fn path(&self, p: &str) -> PathBuf {
        match self.jail_root() {
            Some(jroot) if p.starts_with('/') && !Path::new(p).starts_with(self.root()) => {
                jroot.join(p.trim_start_matches('/'))
            }
            _ => self.host_path(p),
        }
    }

    /// The real path of the current jail's root, when running inside one.
    pub fn jail_root(&self) -> Option<PathBuf> {
        let name = self.jail.as_ref()?;
        let j = self.st.jails.get(name)?;
        Some(self.host_path(&j.path))
    }

    /// The service-table scope: `host` or the jail name.
    pub fn scope(&self) -> String {
        self.jail.clone().unwrap_or_else(|| "host".to_string())
    }

    /// The key of service `name` in the service table: `<scope>:<name>`.
    pub fn service_key(&self, name: &str) -> String {
        format!("{}:{name}", self.scope())
    }

    /// The pid of package service `name` when it runs in this scope (what `service NAME status` reads).
    pub fn service_pid(&self, name: &str) -> Option<u32> {
        self.st.services.get(&self.service_key(name)).map(|s| s.pid)
    }

    /// Runs `script` with `/bin/sh -c` as a nested command of this process (the tools see this host and
    /// skip the lock we hold). Saves before and reloads after. Output is appended to `io`.
    pub fn run_shell(&mut self, script: &str, io: &mut Io) -> i32 {
        if let Err(e) = self.save() {
            io.err(&e);
            return 1;
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script);
        self.child_env(&mut cmd);
        cmd.env(ENV_LOCK_HELD, &self.dir);
        cmd.stdin(Stdio::null());
        let code = match cmd.output() {
            Ok(out) => {
                io.out.push_str(&String::from_utf8_lossy(&out.stdout));
                io.err.push_str(&String::from_utf8_lossy(&out.stderr));
                out.status.code().unwrap_or(1)
            }
            Err(e) => {
                io.err(&format!("sh: {e}"));
                127
            }
        };
        if let Err(e) = self.reload() {
            io.err(&e);
            return 1;
        }
        code
    }

    /// Environment for child commands: our tools first on PATH, the same state, the current jail.
    pub fn child_env(&self, cmd: &mut Command) {
        let path = std::env::var("PATH").unwrap_or_default();
        cmd.env("PATH", format!("{}:{}", self.bin_dir().display(), path));
        cmd.env(ENV_STATE, &self.dir);
        cmd.env_remove(ENV_JAIL);
        if let Some(j) = &self.jail {
            cmd.env(ENV_JAIL, j);
        }
    }

    /// Lowest clone unit of `kind` not held by any interface (renamed ones keep theirs).
    pub fn free_unit(&self, kind: IfKind) -> u32 {
        let used: BTreeSet<u32> = self
            .st
            .interfaces
            .values()
            .filter(|i| i.kind == kind)
            .map(|i| i.unit)
            .collect();
        (0..).find(|u| !used.contains(u)).unwrap_or(0)
    }

    /// A deterministic, locally administered MAC for a new interface.
    pub fn new_mac(&mut self, last: &str) -> String {
        let n = self.tick();
        format!("58:9c:fc:{:02x}:{:02x}:{}", (n >> 8) & 0xff, n & 0xff, last)
    }

    /// Whether `name` is an interface visible from the current network stack.
    pub fn iface_visible(&self, name: &str) -> bool {
        self.st
            .interfaces
            .get(name)
            .is_some_and(|i| i.vnet == self.jail_vnet_scope())
    }

    /// The vnet scope interfaces must have to be visible here (None = host).
    pub fn jail_vnet_scope(&self) -> Option<String> {
        let j = self.jail.as_ref()?;
        if self.st.jails.get(j).is_some_and(|x| x.vnet) {
            Some(j.clone())
        } else {
            None
        }
    }
}

/// Reads `$FAKEBSD_STATE`, failing clearly when it is unset.
pub fn state_dir() -> Result<PathBuf, String> {
    match std::env::var_os(ENV_STATE) {
        Some(v) if !v.is_empty() => {
            let p = PathBuf::from(v);
            // Absolute, so children started in another cwd (jexec) see the same host.
            Ok(std::path::absolute(&p).unwrap_or(p))
        }
        _ => Err(format!(
            "fakebsd: {ENV_STATE} is not set; point it at a state directory (see `fakebsd init`)"
        )),
    }
}

fn load(dir: &Path) -> Result<State, String> {
    let path = dir.join("state.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "fakebsd: no simulated host at {} ({e}); run `fakebsd init` first",
            dir.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("fakebsd: {} is corrupt: {e}", path.display()))
}
