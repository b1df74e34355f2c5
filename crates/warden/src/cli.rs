//! The command line: clap definitions only. Every verb is parsed here and executed in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Warden: isolated places for an AI assistant to run.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every verb takes; they override the config file and the environment.
#[derive(Debug, Args)]
pub struct Global {
    /// Config file (TOML); without it only defaults and the environment apply.
    #[arg(long, global = true, env = "WARDEN_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Override network.subnet (e.g. 10.0.1 or 10.0.1.0/24).
    #[arg(long, global = true, value_name = "SUBNET")]
    pub subnet: Option<String>,
    /// Override dns.domain.
    #[arg(long, global = true, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Override network.bridge.
    #[arg(long, global = true, value_name = "NAME")]
    pub bridge: Option<String>,
    /// Override state_dir.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<String>,
    /// Override identity.
    #[arg(long, global = true, value_name = "NAME")]
    pub identity: Option<String>,
}

impl Global {
    /// The flags as config overrides: (flag, key, value).
    pub fn overrides(&self) -> warden_core::config::FlagOverrides {
        let pairs = [
            ("--subnet", "network.subnet", &self.subnet),
            ("--domain", "dns.domain", &self.domain),
            ("--bridge", "network.bridge", &self.bridge),
            ("--state-dir", "state_dir", &self.state_dir),
            ("--identity", "identity", &self.identity),
        ];
        pairs
            .into_iter()
            .filter_map(|(flag, key, v)| {
                v.as_ref()
                    .map(|v| (flag.to_string(), key.to_string(), v.clone()))
            })
            .collect()
    }
}

/// Which host backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendName {
    /// FreeBSD with Bastille, ZFS and pf (production).
    Bastille,
    /// Linux namespaces, overlayfs, cgroups, nftables.
    Linux,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented config holding every default, and the control plane's token.
    Init(InitArgs),
    /// Show the effective config.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show the layout: slots, roles, jail names, DNS names.
    Layout {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one generated file to stdout.
    Render {
        /// The file: bastille.conf, pf.conf, dnsmasq.conf, hosts, rc.conf, jail.conf, rc.d, nftables, edge-nginx.
        name: String,
        /// The jail, for jail.conf.
        #[arg(long)]
        jail: Option<String>,
    },
    /// Print the ordered actions that turn this host into the layout.
    Plan(PlanArgs),
    /// Plan, then apply with progress; journaled, resumable after a crash.
    Setup(SetupArgs),
    /// Remove the layout (the journaled reverse of setup); keeps the db jail's data unless --force.
    Teardown(TeardownArgs),
    /// Run one command in an ephemeral worker (Linux namespaces, or a FreeBSD jail with --backend bastille); exits with its status.
    Run(RunArgs),
    /// Persistent jails (Linux): create, start, stop, destroy, list, exec.
    Jail {
        #[command(subcommand)]
        command: JailCommand,
    },
    /// Releases (Linux): the root file systems jails and workers start from.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Check the host against the layout: each check's expectation, what was seen, and the fixing command.
    Doctor(DoctorArgs),
    /// Show and validate the agent's runtime config (provider, model, models.json, pi, node).
    PiConfig {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Serve the control plane (HTTP API, turn queue, workers) until SIGTERM.
    Serve(ServeArgs),
    /// Send one agent turn (prompt from the arguments, or stdin) to the control plane; print the reply.
    Turn(TurnArgs),
    /// Recorded turns, from the control plane.
    Turns {
        #[command(subcommand)]
        command: TurnsCommand,
    },
    /// The Telegram channel of `warden serve`.
    Telegram {
        #[command(subcommand)]
        command: TelegramCommand,
    },
    /// Print the control plane's bearer token.
    Token,
    /// Measure turns (Linux, root): cold, pooled, throughput; bwrap and runc alongside.
    Bench(BenchArgs),
    #[command(flatten)]
    Snapshot(SnapshotCommand),
    /// The db jail's PostgreSQL: connection strings for the roles setup made.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The git jail's repositories (smart HTTP at http://git.<domain>/OWNER/REPO.git).
    Git {
        #[command(subcommand)]
        command: GitCommand,
    },
    /// The cms jail's sites: publish a static directory to a tenant or site vhost, list them.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
}

/// `warden git …`.
#[derive(Debug, Subcommand)]
pub enum GitCommand {
    /// Create the bare repository REPO of the platform (or of --tenant T).
    Create(GitRepoArgs),
    /// List the repositories of the platform (or of --tenant T).
    List {
        /// The tenant whose repositories to list (default: the platform's namespace).
        #[arg(long)]
        tenant: Option<String>,
        /// The host backend (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
    /// Delete the repository REPO (its history is gone).
    Delete(GitRepoArgs),
    /// Print REPO's clone URL for this host, the owner's credential included.
    Url(GitRepoArgs),
    /// Setup's action: generate the missing passwords of OWNERS (mode 0600; nothing is printed) and write
    /// their htpasswd files into AUTH_DIR.
    #[command(hide = true)]
    Credentials {
        /// The directory of the htpasswd files nginx reads.
        #[arg(long, required = true)]
        auth_dir: String,
        /// The owners (the namespace and the tenants).
        #[arg(required = true)]
        owners: Vec<String>,
    },
    /// Setup's action on FreeBSD: render Forgejo's app.ini with the git db role's password and Forgejo's
    /// keys (generated if missing, mode 0600) into OUT (mode 0600; nothing is printed).
    #[command(hide = true)]
    ForgejoConfig {
        /// The host path to write.
        #[arg(long, required = true)]
        out: String,
    },
}

/// A repository and its owner.
#[derive(Debug, Args)]
pub struct GitRepoArgs {
    /// The repository's name (a DNS label, without .git).
    pub repo: String,
    /// The tenant who owns it (default: the platform's namespace).
    #[arg(long)]
    pub tenant: Option<String>,
    /// The host backend (default: this OS's).
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
}

/// `warden site …`.
#[derive(Debug, Subcommand)]
pub enum SiteCommand {
    /// Publish DIR as TENANT's home, or as SITE of TENANT, atomically (new release, link swap, graceful reload).
    #[command(override_usage = "warden site deploy [OPTIONS] TENANT [SITE] DIR")]
    Deploy {
        /// TENANT [SITE] DIR.
        #[arg(num_args = 2..=3, required = true, value_names = ["TENANT", "SITE", "DIR"])]
        args: Vec<String>,
        /// The host backend whose cms jail serves the site (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
    /// List every vhost the cms serves: name, tenant, site, current release.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// The host backend (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
    /// Setup's action: link a placeholder page as VHOST_DIR's first release unless it has one.
    #[command(hide = true)]
    Placeholder {
        /// The vhost's directory (a host path).
        dir: String,
        /// The vhost's name.
        name: String,
    },
    /// Deploy's action: copy SRC into VHOST_DIR/releases/ID (through ID.partial).
    #[command(hide = true)]
    Stage {
        /// The directory to publish.
        src: String,
        /// The vhost's directory (a host path).
        dir: String,
        /// The release id.
        id: String,
    },
    /// Deploy's action: point VHOST_DIR/current at releases/ID (a new link renamed over the old).
    #[command(hide = true)]
    Swap {
        /// The vhost's directory (a host path).
        dir: String,
        /// The release id.
        id: String,
    },
    /// Deploy's action: remove all but the newest KEEP releases (never the current one).
    #[command(hide = true)]
    Prune {
        /// The vhost's directory (a host path).
        dir: String,
        /// How many to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// `warden db …`.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Print the connection string of role/database NAME for this host (its password included).
    Url {
        /// The role, which owns the database of the same name (e.g. system_ops, strapi_cms).
        name: String,
        /// The host backend whose state directory holds the passwords (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
    /// Setup's action: generate the missing password files of ROLES (mode 0600; nothing is printed).
    #[command(hide = true)]
    Passwords {
        /// The roles.
        #[arg(required = true)]
        roles: Vec<String>,
    },
    /// Setup's action: feed the roles/databases/passwords SQL to PSQL-ARGV on its stdin, then mark them synced.
    #[command(hide = true)]
    Sync {
        /// The roles, comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// psql in the db jail, reading SQL from stdin.
        #[arg(last = true, required = true)]
        psql: Vec<String>,
    },
    /// Setup's action: run PG-ISREADY-ARGV until it exits 0 (the server accepts connections), at most
    /// --timeout seconds.
    #[command(hide = true)]
    Wait {
        /// Seconds to wait at most.
        #[arg(long)]
        timeout: u64,
        /// The server's log in the jail, named when it does not get ready.
        #[arg(long)]
        log: String,
        /// pg_isready in the db jail.
        #[arg(last = true, required = true)]
        probe: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The host backend (default: bastille on FreeBSD, linux elsewhere).
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// Print JSON: {"checks":[…],"summary":{…}}.
    #[arg(long)]
    pub json: bool,
    /// Outbound probe target IP:PORT a VNET worker connects to through the NAT; default doctor.probe
    /// (WARDEN_DOCTOR_PROBE, or the config file).
    #[arg(long, value_name = "IP:PORT")]
    pub probe: Option<String>,
    /// The hosts file whose Warden block is checked (default /etc/hosts; on Linux only checked when given or
    /// when /etc/hosts already has a Warden block).
    #[arg(long, value_name = "PATH")]
    pub hosts_file: Option<String>,
    /// Time allowed to each check, in milliseconds.
    #[arg(long, default_value_t = 3000, value_name = "MS")]
    pub timeout_ms: u64,
}

/// A worker's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NetworkArg {
    /// Only loopback.
    None,
    /// Warden's own network namespace (no network isolation; the seeds' default "shared" worker).
    Shared,
    /// Its own stack on the bridge with a leased address, NAT out, DNS from the gateway.
    Vnet,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The host backend (default: bastille on FreeBSD, linux elsewhere); bastille runs a jail on a ZFS clone.
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// Send the command as a turn to the running control plane (`warden serve`) instead; needs --tenant.
    #[arg(long, conflicts_with_all = ["backend", "cwd", "root"])]
    pub remote: bool,
    /// Tenant the command runs for (a DNS label; passed to the worker as WARDEN_TENANT).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Network mode.
    #[arg(long, value_enum, default_value = "shared")]
    pub network: NetworkArg,
    /// Root filesystem: `host` (read-only binds of this host) or a bootstrapped release (e.g. `debian`); with
    /// --backend bastille, a FreeBSD release (`host`: jails.release).
    #[arg(long, default_value = "host")]
    pub release: String,
    /// Wall-clock limit (e.g. 30s, 5m); default workers.timeout.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Memory limit (e.g. 256M); default workers.memory.
    #[arg(long)]
    pub memory: Option<String>,
    /// Process limit; default workers.pids.
    #[arg(long)]
    pub pids: Option<u32>,
    /// Output cap for stdout+stderr (e.g. 1M); default workers.output.
    #[arg(long)]
    pub output: Option<String>,
    /// Working directory inside the worker.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment, NAME=VALUE (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// Run as root inside the worker (capabilities are still dropped); default an unprivileged user.
    #[arg(long)]
    pub root: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Print the config to stdout instead of writing files.
    #[arg(long)]
    pub stdout: bool,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Every key, its value and where the value came from (flag > env > file > default).
    Show {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The host backend (default: bastille on FreeBSD, linux elsewhere).
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// Only this step: base, host, jails, db, git, cms, ai, agent, hosts, dns, tailscale, verify.
    #[arg(long)]
    pub step: Option<String>,
    /// Print JSON: {"actions":[…]}.
    #[arg(long)]
    pub json: bool,
    /// Install no packages: the operator manages them; a missing one blocks its step, naming the command.
    #[arg(long)]
    pub no_install: bool,
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    /// Show the plan and change nothing (same as `warden plan`).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    /// The host backend (default: bastille on FreeBSD, linux elsewhere).
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// Keep the thick db jail (stopped) and the database passwords: the default, said explicitly.
    #[arg(long, conflicts_with = "force")]
    pub keep_data: bool,
    /// Destroy the db jail and the database passwords as well: the data is lost.
    #[arg(long)]
    pub force: bool,
    /// Show the teardown plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// With --dry-run: print the plan as JSON.
    #[arg(long, requires = "dry_run")]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The worker backend (default: bastille on FreeBSD, linux elsewhere): Linux namespaces or FreeBSD jails.
    #[arg(long, value_enum)]
    pub backend: Option<BackendName>,
    /// Listen address IP:PORT (repeatable); default control_plane.listen at control_plane.port.
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Vec<String>,
    /// Turns running at once (default 8).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Turns waiting at most; more are answered 429 (default 256).
    #[arg(long)]
    pub queue: Option<usize>,
    /// On SIGTERM, how long running turns may finish before they are cancelled (default 30s).
    #[arg(long, value_name = "DURATION")]
    pub shutdown_deadline: Option<String>,
    /// Turns a killed server left: fail_running (default; queued ones run), fail_all, requeue_running.
    #[arg(long, value_name = "POLICY")]
    pub recovery: Option<String>,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The backend (default: linux on Linux, bastille on FreeBSD); bastille reports the host commands and ZFS
    /// operations of a turn per network mode (cold: it has no pool), on FreeBSD or fakebsd.
    #[arg(long, value_enum, conflicts_with_all = ["api", "agent", "throughput_only"])]
    pub backend: Option<BackendName>,
    /// Print JSON: {"cold":{"p50_ms",…},"pooled":{…},"throughput":{"clients_32":{"turns_per_s",…}},…}.
    #[arg(long)]
    pub json: bool,
    /// Turns per series.
    #[arg(long, default_value_t = 200)]
    pub turns: usize,
    /// Concurrent clients of the throughput series, comma-separated.
    #[arg(long, default_value = "1,8,32")]
    pub clients: String,
    /// Measure through the HTTP API (a server on 127.0.0.1 in this process) instead of the library path.
    #[arg(long)]
    pub api: bool,
    /// Parked workers kept by the pool (default: the largest client count).
    #[arg(long)]
    pub pool: Option<usize>,
    /// Skip the bwrap and runc comparison.
    #[arg(long)]
    pub no_compare: bool,
    /// Only the throughput series (library path): no cold or one-at-a-time pooled series.
    #[arg(long)]
    pub throughput_only: bool,
    /// Agent-turn overhead instead (wall time minus the provider's, instant mock provider): cold pi and warm pi
    /// (`--mode rpc`, started before its turns), 1 and 8 tenants; `--turns` warm turns per series, a tenth cold.
    #[arg(long)]
    pub agent: bool,
}

#[derive(Debug, Args)]
pub struct TurnArgs {
    /// The tenant whose workspace and session the turn uses; default the platform (`namespace`, `system`).
    #[arg(long, env = "TENANT_ID")]
    pub tenant: Option<String>,
    /// Print the whole result as JSON.
    #[arg(long)]
    pub json: bool,
    /// The prompt; read from stdin when absent.
    pub prompt: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum TelegramCommand {
    /// The offset, the allowed chats, updates per state, the last error and who polls (never the token).
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TurnsCommand {
    /// Turns, newest first.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only this status (queued, running, succeeded, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// At most this many (default 50).
        #[arg(long)]
        limit: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One turn and its result.
    Show {
        /// The turn id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Snapshots of service jails: ZFS on FreeBSD (bastille backend), copies of a stopped jail's writable layer on
/// Linux.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a jail (FreeBSD: zfs snapshot -r; Linux: a copy of its layer, the jail stopped meanwhile);
    /// prints the tag.
    Snapshot {
        /// The jail (e.g. clawdiedb).
        jail: String,
        /// The tag; default warden-YYYYmmdd-HHMMSS (UTC).
        tag: Option<String>,
        /// The host backend (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
    /// Roll a jail back to a snapshot (FreeBSD: the jail stopped, later snapshots destroyed; Linux: the jail
    /// restarted, snapshots kept).
    Rollback {
        /// The jail.
        jail: String,
        /// The tag; default the newest snapshot.
        tag: Option<String>,
        /// The host backend (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
    /// List a jail's snapshots, oldest first; or delete one (`--delete TAG`).
    Snapshots {
        /// The jail.
        jail: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Delete snapshot TAG instead of listing (FreeBSD: zfs destroy -r; Linux: its copy of the layer).
        #[arg(long, value_name = "TAG", conflicts_with = "json")]
        delete: Option<String>,
        /// The host backend (default: this OS's).
        #[arg(long, value_enum)]
        backend: Option<BackendName>,
    },
}

/// A jail's root: shared with the release (thin) or its own copy (thick).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShapeArg {
    /// overlayfs: a persistent upper directory over the release.
    Thin,
    /// A full copy of the release (on the host release: a root directory of its own).
    Thick,
}

#[derive(Debug, Subcommand)]
pub enum JailCommand {
    /// Create a stopped jail.
    Create(JailCreateArgs),
    /// Start a jail (long-lived init in new namespaces); returns once it is up.
    Start {
        /// The jail.
        name: String,
    },
    /// Stop a jail: a fast shutdown of its PostgreSQL if one runs, SIGTERM to its processes, SIGKILL after the timeout.
    Stop {
        /// The jail.
        name: String,
        /// Time before SIGKILL (e.g. 10s).
        #[arg(long, default_value = "10s")]
        timeout: String,
    },
    /// Destroy a jail (stopping it first); its data goes with it.
    Destroy {
        /// The jail.
        name: String,
        /// Destroy even a thick jail or one with files of its own in its upper directory.
        #[arg(long)]
        force: bool,
    },
    /// List the jails: state, address, release, shape.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside a running jail, stdio passed through; exits with its status.
    Exec(JailExecArgs),
    /// Change a jail's devices; applies from its next start.
    Set {
        /// The jail.
        name: String,
        /// `/dev/net/tun` in the jail (on: it may run its own tailscaled).
        #[arg(long, value_parser = ["on", "off"])]
        tun: String,
    },
}

#[derive(Debug, Args)]
pub struct JailCreateArgs {
    /// Jail name ([a-z0-9], at most 11); with --slot, defaults to the layout's name for the slot.
    pub name: Option<String>,
    /// A service slot of the layout (git, cms, ai, db): its address (and name, if none is given).
    #[arg(long, conflicts_with = "addr")]
    pub slot: Option<String>,
    /// A fixed address on the bridge (inside the subnet, outside the worker range).
    #[arg(long)]
    pub addr: Option<std::net::Ipv4Addr>,
    /// Release: `host` or a bootstrapped one (`warden release list`).
    #[arg(long, default_value = "host")]
    pub release: String,
    /// Shape; default: the slot's shape (db is thick), else thin.
    #[arg(long, value_enum)]
    pub shape: Option<ShapeArg>,
    /// Memory limit (e.g. 1G); default unlimited.
    #[arg(long)]
    pub memory: Option<String>,
    /// Process limit; default unlimited.
    #[arg(long)]
    pub pids: Option<u64>,
    /// CPU limit as a fraction of one core (e.g. 1.5); default unlimited.
    #[arg(long)]
    pub cpu: Option<f64>,
    /// A host directory bound read-only into the jail, SOURCE:TARGET (repeatable; created if missing).
    #[arg(long, value_name = "SOURCE:TARGET")]
    pub bind: Vec<String>,
    /// Give the jail `/dev/net/tun` (it may run its own tailscaled).
    #[arg(long)]
    pub tun: bool,
}

#[derive(Debug, Args)]
pub struct JailExecArgs {
    /// The jail.
    pub name: String,
    /// Run as the jail's root (a reduced capability set); default an unprivileged user.
    #[arg(long)]
    pub root: bool,
    /// Working directory inside the jail.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment, NAME=VALUE (repeatable).
    #[arg(long)]
    pub env: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Bootstrap a release (`debian`: debootstrap bookworm minbase; slow, downloads).
    Bootstrap {
        /// The release.
        name: String,
        /// Make it again even if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Build the service jails' release (`debian`: debootstrap plus the db, git and cms packages by apt inside
    /// it), journaled and resumable, into `jails.release_cache`; nothing to do when it is built. Downloads.
    Build {
        /// The release (`debian`).
        name: String,
    },
    /// List the releases: host, then the bootstrapped ones with size and date.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a bootstrapped release (refused while a thin jail runs on it).
    Destroy {
        /// The release.
        name: String,
    },
}
