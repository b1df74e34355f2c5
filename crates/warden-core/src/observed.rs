//! What a backend saw on the host: plain data, filled by the backend's `observe`, read by the planners.
//! A fresh host is the `Default` of each struct.

use std::collections::{BTreeMap, BTreeSet};

/// A jail as the host reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JailState {
    /// Whether it is running (`jls -j NAME jid` succeeds).
    pub running: bool,
    /// Packages installed inside it, among those Warden cares about.
    pub packages: BTreeSet<String>,
    /// rc.conf variables inside it, among those Warden sets.
    pub rc_conf: BTreeMap<String, String>,
    /// Services running inside it, among those Warden starts.
    pub services_running: BTreeSet<String>,
    /// Paths that exist inside it, among those Warden creates.
    pub paths: BTreeSet<String>,
    /// PostgreSQL databases that exist (db jail only).
    pub databases: BTreeSet<String>,
    /// Unix users that exist, among those Warden creates.
    pub users: BTreeSet<String>,
    /// PostgreSQL roles that exist (db jail only, while the server runs).
    #[serde(default)]
    pub roles: BTreeSet<String>,
}

/// A FreeBSD host with Bastille, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BastilleHost {
    /// `bastille -v`, if Bastille is installed.
    pub bastille_version: Option<String>,
    /// Current content of the files Warden manages, by absolute path (absent: no such file).
    pub files: BTreeMap<String, String>,
    /// Mode of `bastille_prefix`, if it exists.
    pub prefix_mode: Option<u32>,
    /// `/etc/rc.conf` variables, among those Warden sets.
    pub rc_conf: BTreeMap<String, String>,
    /// The variables `/etc/rc.conf` itself assigns (not those only `/etc/defaults/rc.conf` gives a value):
    /// what `sysrc -x` can remove.
    #[serde(default)]
    pub rc_conf_file_vars: BTreeSet<String>,
    /// Whether the bridge exists.
    pub bridge_exists: bool,
    /// The bridge's IPv4 addresses in CIDR form (`10.0.1.1/24`).
    pub bridge_addrs: Vec<String>,
    /// `net.inet.ip.forwarding` is 1.
    pub forwarding: bool,
    /// pf is enabled (`pfctl -si` says `Status: Enabled`).
    pub pf_enabled: bool,
    /// The loaded NAT rules (`pfctl -sn`).
    pub pf_nat: String,
    /// Bootstrapped releases.
    pub releases: BTreeSet<String>,
    /// Jails that exist (`jails/NAME/jail.conf`), with their state.
    pub jails: BTreeMap<String, JailState>,
    /// `service dnsmasq onestatus` says running.
    pub dnsmasq_running: bool,
    /// Host packages installed (`pkg info -e`), among those Warden installs.
    pub packages: BTreeSet<String>,
    /// Host accounts (`/etc/passwd`), among those Warden creates: name → (uid, gid).
    pub users: BTreeMap<String, (u32, u32)>,
    /// Host groups (`/etc/group`), among those Warden creates: name → gid.
    pub groups: BTreeMap<String, u32>,
    /// Whether the layout's release (if bootstrapped) has the worker account in its `/etc/passwd`.
    pub release_has_user: bool,
    /// Whether the layout's release (if bootstrapped) has the worker account's group in its `/etc/group`.
    pub release_has_group: bool,
    /// Packages installed in the layout's release (`pkg --rootdir`), among those the `agent` step installs.
    #[serde(default)]
    pub release_packages: BTreeSet<String>,
    /// Whether the release's worker template snapshot (`…@warden-worker`) exists.
    #[serde(default)]
    pub worker_template: bool,
    /// The pi version under `<state_dir>/pi` (its `package.json`), if any; its completion marker is in `files`.
    #[serde(default)]
    pub pi_version: Option<String>,
    /// The `warden` binary setup's own actions run (the observing one); empty: `warden` on PATH.
    #[serde(default)]
    pub warden_exe: String,
    /// Warden's state directory on this host; empty: the layout's, else `/var/db/warden`.
    #[serde(default)]
    pub state_dir: String,
    /// Database roles with a password file in `<state_dir>/db`.
    #[serde(default)]
    pub db_passwords: BTreeSet<String>,
    /// The db sync marker's content, if any.
    #[serde(default)]
    pub db_synced: Option<String>,
    /// Tailscale on the host and in the Tailscale jail.
    #[serde(default)]
    pub tailscale: crate::tailscale::Observed,
    /// git owners with a password file in `<state_dir>/git`.
    #[serde(default)]
    pub git_passwords: BTreeSet<String>,
    /// git owners with an htpasswd file in the git jail.
    #[serde(default)]
    pub git_htpasswd: BTreeSet<String>,
    /// The cms vhosts whose `current` link exists in the cms jail.
    #[serde(default)]
    pub cms_current: BTreeSet<String>,
}

/// A Linux host, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxHost {
    /// Whether the bridge exists.
    pub bridge_exists: bool,
    /// Whether the bridge is up.
    pub bridge_up: bool,
    /// The bridge's IPv4 addresses in CIDR form.
    pub bridge_addrs: Vec<String>,
    /// `net.ipv4.ip_forward` is 1.
    pub forwarding: bool,
    /// Whether nftables has both of Warden's tables (inet and bridge).
    pub nft_table: bool,
    /// Whether the uplink `network.ext_if` exists (observed only when an exposure redirects from it).
    #[serde(default)]
    pub uplink_exists: bool,
    /// The families (`inet`, `bridge`) in which Warden's nftables table exists.
    #[serde(default)]
    pub nft_families: BTreeSet<String>,
    /// The loaded `inet warden` table as `nft list table` prints it (empty when it is not loaded).
    #[serde(default)]
    pub nft_inet: String,
    /// The names in Warden's state directory (`pi`, `ai`, `db`, `dnsmasq.conf`, …).
    #[serde(default)]
    pub state_entries: BTreeSet<String>,
    /// Current content of the files Warden manages, by absolute path.
    pub files: BTreeMap<String, String>,
    /// Whether Warden's dnsmasq runs (its pid file names a live dnsmasq).
    pub dnsmasq_running: bool,
    /// Warden's persistent jails (`<state_dir>/jails`), by name.
    pub jails: BTreeMap<String, LinuxJail>,
    /// The `warden` binary the plan's jail actions run (the observing binary); empty: `warden` on PATH.
    pub warden_exe: String,
    /// The Debian packages Warden calls, installed or not (`dpkg-query`); empty when dpkg-query is absent.
    pub packages: BTreeMap<String, bool>,
    /// `node --version` of the first node on PATH, if there is one.
    pub node_version: Option<String>,
    /// Whether npm is on PATH.
    pub npm: bool,
    /// The pi version under `<state_dir>/pi` (its `package.json`), if any; its completion marker is in `files`.
    pub pi_version: Option<String>,
    /// Accounts of the host's `/etc/passwd`, among those Warden creates: name → (uid, gid).
    pub users: BTreeMap<String, (u32, u32)>,
    /// Groups of the host's `/etc/group`, among those Warden creates: name → gid.
    pub groups: BTreeMap<String, u32>,
    /// Bootstrapped releases (`<state_dir>/releases/NAME`) → whether their `/etc/passwd` has the worker account.
    pub release_users: BTreeMap<String, bool>,
    /// Bootstrapped releases → whether their `/etc/group` has the worker account's group.
    pub release_groups: BTreeMap<String, bool>,
    /// The ai jail's model server.
    pub ai: LinuxAi,
    /// The db jail's PostgreSQL.
    #[serde(default)]
    pub db: LinuxDb,
    /// The git jail's smart HTTP.
    #[serde(default)]
    pub git: LinuxGit,
    /// The built `debian` release of the service jails is in the release cache (`warden release build`).
    pub service_release_built: bool,
    /// Where `<state_dir>/releases/debian` points, if it is a link.
    pub service_release_link: Option<String>,
    /// Tailscale on the host and in the Tailscale jail.
    #[serde(default)]
    pub tailscale: crate::tailscale::Observed,
    /// The cms jail's nginx.
    #[serde(default)]
    pub cms: LinuxCms,
}

/// The git jail's smart HTTP on a Linux host, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxGit {
    /// The jail's `/etc/passwd` has the git account.
    pub user: bool,
    /// The jail's repositories directory and the platform's health repository exist.
    pub repos: bool,
    /// Owners with a password file in `<state_dir>/git`.
    pub passwords: BTreeSet<String>,
    /// Owners with an htpasswd file.
    pub htpasswd: BTreeSet<String>,
    /// nginx runs in the jail (its pid file names a live nginx).
    pub nginx: bool,
    /// fcgiwrap's socket exists in the jail.
    pub fcgiwrap: bool,
}

/// The cms jail's nginx on a Linux host, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxCms {
    /// `<state_dir>/cms` and its sites directory exist with mode 0755.
    pub dirs_ok: bool,
    /// nginx's master runs in the cms jail.
    pub running: bool,
    /// The vhosts whose `current` link exists.
    pub current: BTreeSet<String>,
}

/// The db jail's PostgreSQL on a Linux host, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxDb {
    /// The host's PostgreSQL server programs (`/usr/lib/postgresql/N/bin`, the highest N), bound into the
    /// jail with the host's `/usr`.
    pub bin: Option<String>,
    /// The directory `apt-get install postgresql` would bring (from `apt-cache show postgresql`'s
    /// dependency), when no server is installed yet.
    pub candidate_bin: Option<String>,
    /// The jail's `/etc/passwd` has `postgres`.
    pub user: bool,
    /// The cluster exists (`PG_VERSION` in the data directory).
    pub initialised: bool,
    /// A server runs (`pg_ctl status` in the jail: its `postmaster.pid` names a live process).
    pub running: bool,
    /// It accepts connections (`pg_isready` in the jail): not still starting, recovering or shutting down.
    pub accepting: bool,
    /// Login roles that exist (read only while the server accepts connections).
    pub roles: BTreeSet<String>,
    /// Databases that exist (read only while the server accepts connections).
    pub databases: BTreeSet<String>,
    /// Roles with a password file in `<state_dir>/db`.
    pub passwords: BTreeSet<String>,
    /// The sync marker's content, if any.
    pub synced: Option<String>,
}

/// The model server of the ai jail on a Linux host, as observed (`<state_dir>/ai`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxAi {
    /// The venv's python exists.
    pub venv: bool,
    /// The venv's install marker, if any (what was installed).
    pub installed: Option<String>,
    /// The model file is in place.
    pub model: bool,
    /// The model ids the server in the ai jail lists (empty: not answering).
    pub served: Vec<String>,
    /// `ai.wheel_cache` holds the pinned llama-cpp-python wheel and the model wheel (then the install
    /// needs no registry).
    pub wheels_cached: bool,
}

/// A persistent jail on a Linux host, as observed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinuxJail {
    /// Whether its init is alive.
    pub running: bool,
    /// Its fixed address, if it is on the bridge.
    pub addr: Option<std::net::Ipv4Addr>,
    /// `thin` or `thick`.
    pub shape: String,
    /// `host` or a bootstrapped release.
    pub release: String,
    /// Read-only binds as `SOURCE:TARGET`.
    #[serde(default)]
    pub binds: Vec<String>,
    /// Whether the jail gets `/dev/net/tun` (`tailscale.mode = jail`).
    #[serde(default)]
    pub tun: bool,
}
