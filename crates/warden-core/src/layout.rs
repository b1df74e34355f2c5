//! The validated layout: slots, roles, jail names and DNS names, derived from a [`Config`].
//!
//! This is the registry of design.md's table. Only a `Layout` reaches the renderers and planners, so every rule
//! that relates config values (private /24, slot collisions, DNS labels, Bastille's jail-name limits) is checked
//! here, once, and all problems are reported together.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::config::{parse_subnet, Config, Loaded};
use crate::error::{ConfigError, Invalid, Source};
use crate::names::{check_domain, check_jail_name, check_label};

mod expose;
pub use expose::{Exposure, Proto, Via};

/// What a slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The host on the bridge: control plane and dnsmasq.
    Gateway,
    /// Shared Git Service.
    Git,
    /// Shared Web Service.
    Cms,
    /// Local AI Models (llama.cpp).
    Ai,
    /// PostgreSQL, the one thick jail.
    Db,
    /// The browser VM (bhyve; a separate executor class).
    Browser,
    /// Ephemeral networked workers.
    Worker,
    /// Ephemeral browser task clones.
    BrowserClone,
}

impl Role {
    /// The role's short name, used in jail names and DNS names.
    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::Git => "git",
            Role::Cms => "cms",
            Role::Ai => "ai",
            Role::Db => "db",
            Role::Browser => "browser",
            Role::Worker => "worker",
            Role::BrowserClone => "browser-clone",
        }
    }
}

/// How a jail's root filesystem is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// Shares the release read-only (Bastille nullfs; Linux overlayfs).
    Thin,
    /// Owns a copy of the release.
    Thick,
    /// A VM disk image.
    Image,
}

/// A persistent service jail (or VM) at a fixed slot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Service {
    /// What it is for.
    pub role: Role,
    /// Jail name: `<identity><role>` (letters and digits only; see [`crate::names::check_jail_name`]).
    pub jail: String,
    /// Its address on the bridge.
    pub addr: Ipv4Addr,
    /// Thin, thick or image.
    pub shape: Shape,
    /// Its DNS name.
    pub fqdn: String,
}

/// PostgreSQL's port on the db jail: what git and cms connect to.
pub const DB_PORT: u16 = 5432;
/// The git jail's smart HTTP port (the workers → git service path).
pub const GIT_HTTP_PORT: u16 = 80;

/// nginx's port on the cms jail: what workers and the doctor request vhosts on.
pub const CMS_HTTP_PORT: u16 = 80;

pub use crate::config::MODELS_PORT;

/// Host and port of an `http://` or `https://` URL (the scheme's port when none is written), or why not.
pub fn url_host_port(url: &str) -> Result<(String, u16), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("no scheme (want http:// or https://)")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        other => return Err(format!("scheme {other:?} (want http or https)")),
    };
    let authority = rest.split('/').next().unwrap_or("");
    if authority.is_empty() {
        return Err("no host".into());
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .map_err(|_| format!("bad port {port:?}"))?;
            Ok((host.to_string(), port))
        }
        None => Ok((authority.to_string(), default_port)),
    }
}

/// The fewest CIDR blocks that cover exactly `first..=last` (pf tables take networks, not ranges).
pub fn cidr_cover(first: Ipv4Addr, last: Ipv4Addr) -> Vec<String> {
    let (mut at, end) = (u64::from(u32::from(first)), u64::from(u32::from(last)));
    let mut out = Vec::new();
    while at <= end {
        // The largest aligned block starting at `at` that does not pass `end`.
        let mut size = if at == 0 {
            1u64 << 32
        } else {
            at & at.wrapping_neg()
        };
        while at + size - 1 > end {
            size /= 2;
        }
        out.push(format!(
            "{}/{}",
            Ipv4Addr::from(at as u32),
            32 - size.trailing_zeros()
        ));
        at += size;
    }
    out
}

/// Who may open connections on a [`ServicePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clients {
    /// Every networked worker (the layout's worker range).
    Workers,
    /// These service jails.
    Jails(Vec<Ipv4Addr>),
}

/// A TCP path between two ports of the bridge that the layout implies; every other path between two ports is
/// refused (traffic to and through the gateway is not between ports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePath {
    /// Who connects.
    pub clients: Clients,
    /// The service's address.
    pub server: Ipv4Addr,
    /// The service's TCP port.
    pub port: u16,
    /// Why the path exists, for the rendered comment.
    pub what: &'static str,
}

/// A tenant and its sites.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tenant {
    /// The tenant's label.
    pub name: String,
    /// `<tenant>.<domain>`.
    pub fqdn: String,
    /// `<site>.<tenant>.<domain>` for each site.
    pub sites: Vec<String>,
}

/// One name the local DNS answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Record {
    /// Fully qualified name.
    pub name: String,
    /// Its IPv4 address.
    pub addr: Ipv4Addr,
    /// Why it exists, e.g. `control plane`, `tenant atlas`.
    pub purpose: String,
}

/// Bastille's settings that Warden writes into `bastille.conf`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BastilleSettings {
    /// `bastille_prefix`.
    pub prefix: String,
    /// `bastille_zfs_zpool`.
    pub zfs_pool: String,
    /// `bastille_zfs_prefix`.
    pub zfs_prefix: String,
    /// `bastille_network_pf_table`.
    pub pf_table: String,
    /// `bastille_network_loopback`.
    pub loopback: String,
}

/// Resource limits of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Maximum number of processes.
    pub pids: u32,
    /// Wall-clock limit.
    #[serde(with = "duration_ms")]
    pub timeout: Duration,
    /// Combined stdout+stderr cap in bytes.
    pub output_bytes: u64,
}

mod duration_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let ms: u64 = serde::Deserialize::deserialize(d)?;
        Ok(Duration::from_millis(ms))
    }
}

/// The whole validated layout.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Layout {
    /// Service identity (`clawdie`).
    pub identity: String,
    /// Platform namespace (`system`).
    pub namespace: String,
    /// Timezone for jails.
    pub timezone: String,
    /// State directory override (empty: the backend's default).
    pub state_dir: String,
    /// Network address of the /24.
    pub network: Ipv4Addr,
    /// `<subnet>.1`, the host on the bridge.
    pub gateway: Ipv4Addr,
    /// Bridge name.
    pub bridge: String,
    /// Uplink interface.
    pub ext_if: String,
    /// Local zone.
    pub domain: String,
    /// The host's FQDN.
    pub internal_domain: String,
    /// FreeBSD release.
    pub release: String,
    /// The service jails (git, cms, ai, db) and the browser VM, in slot order.
    pub services: Vec<Service>,
    /// First and last networked-worker address.
    pub workers: (Ipv4Addr, Ipv4Addr),
    /// First and last browser task clone address.
    pub browser_clones: (Ipv4Addr, Ipv4Addr),
    /// Tenants and sites.
    pub tenants: Vec<Tenant>,
    /// Public ports exposed to service slots (`[[expose]]`), in the config's order.
    pub exposures: Vec<Exposure>,
    /// Every name the local DNS answers, in a stable order.
    pub records: Vec<Record>,
    /// Bastille settings.
    pub bastille: BastilleSettings,
    /// Control plane port.
    pub port: u16,
    /// Control plane listen addresses.
    pub listen: Vec<Ipv4Addr>,
    /// Default worker limits.
    pub limits: Limits,
    /// User workers run as.
    pub worker_user: String,
    /// Parked workers per release and network mode.
    pub pool_size: u32,
    /// Whether workers may start where their memory and process limits cannot be enforced.
    pub allow_unlimited: bool,
    /// The pinned pi version the `agent` step installs.
    pub pi_version: String,
    /// The models server's port on the ai jail: `agent.base_url`'s when it names the ai jail, else
    /// [`MODELS_PORT`].
    pub models_port: u16,
    /// The model gateway's port on the gateway address (`gateway.port`); workers reach only it for models.
    pub gateway_port: u16,
    /// `gateway.tenant_token_budget` (0: unlimited).
    pub gateway_tenant_token_budget: u64,
    /// `gateway.flatten_content`.
    pub gateway_flatten_content: bool,
    /// `ai.wheel_cache`.
    pub ai_wheel_cache: String,
    /// `jails.service_release` (Linux): the release of the db, git and cms jails.
    pub service_release: String,
    /// `jails.release_cache` (Linux; empty: `<state_dir>/releases`).
    pub release_cache: String,
    /// `setup.command_timeout`: a host command's deadline.
    pub command_timeout: Duration,
    /// `setup.install_timeout`: the deadline of an install, download, bootstrap or creation.
    pub install_timeout: Duration,
    /// `agent.warm`: warm agents `warden serve` keeps parked (0: none).
    pub agent_warm: u32,
    /// `agent.warm_idle`: how long a warm agent may stay parked unused.
    pub agent_warm_idle: Duration,
    /// How the tailnet reaches Clawdie (`tailscale.mode`, `tailscale.jail`).
    pub tailscale: crate::tailscale::Settings,
}

impl Layout {
    /// The address `<subnet>.<octet>`.
    pub fn addr(&self, octet: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.network.octets();
        Ipv4Addr::new(a, b, c, octet)
    }

    /// The subnet as `a.b.c.0/24`.
    pub fn cidr(&self) -> String {
        format!("{}/24", self.network)
    }

    /// The service with `role`, if it is part of the layout.
    pub fn service(&self, role: Role) -> Option<&Service> {
        self.services.iter().find(|s| s.role == role)
    }

    /// The paths between bridge ports the layout implies: git and cms → db, workers → git's and cms's HTTP. Workers reach models only through
    /// the model gateway on the host (`gateway_port`), never the ai jail itself.
    pub fn service_paths(&self) -> Vec<ServicePath> {
        let mut paths = Vec::new();
        if let Some(db) = self.service(Role::Db) {
            let clients: Vec<Ipv4Addr> = [Role::Git, Role::Cms]
                .into_iter()
                .filter_map(|r| self.service(r))
                .map(|s| s.addr)
                .collect();
            if !clients.is_empty() {
                paths.push(ServicePath {
                    clients: Clients::Jails(clients),
                    server: db.addr,
                    port: DB_PORT,
                    what: "git and cms use PostgreSQL",
                });
            }
        }
        if let Some(git) = self.service(Role::Git) {
            paths.push(ServicePath {
                clients: Clients::Workers,
                server: git.addr,
                port: GIT_HTTP_PORT,
                what: "agents in workers clone and push over HTTP",
            });
        }
        if let Some(cms) = self.service(Role::Cms) {
            paths.push(ServicePath {
                clients: Clients::Workers,
                server: cms.addr,
                port: CMS_HTTP_PORT,
                what: "agents in workers publish and check sites over HTTP",
            });
        }
        paths
    }

    /// The exposures that Warden's firewall redirects (`via = "firewall"`).
    pub fn firewall_exposures(&self) -> impl Iterator<Item = &Exposure> {
        self.exposures.iter().filter(|e| e.via == Via::Firewall)
    }

    /// Whether the db, git and cms jails run on the built `debian` release (Linux) rather than the host's packages.
    pub fn services_on_debian(&self) -> bool {
        self.service_release == "debian"
    }

    /// The registry's tenant names, comma-separated (for errors that list what is accepted).
    pub fn tenant_names(&self) -> String {
        let names: Vec<&str> = self.tenants.iter().map(|t| t.name.as_str()).collect();
        names.join(", ")
    }

    /// The service jails Bastille manages (everything but the browser VM), in slot order.
    pub fn jails(&self) -> impl Iterator<Item = &Service> {
        self.services.iter().filter(|s| s.shape != Shape::Image)
    }

    /// Builds and validates the layout; all problems are reported at once.
    pub fn from_loaded(loaded: &Loaded) -> Result<Layout, ConfigError> {
        let c: &Config = &loaded.config;
        let mut problems = Problems {
            loaded,
            list: Vec::new(),
        };
        let p = &mut problems;
        let network = network_of(c, p);
        check_names(loaded, p);
        let fixed = fixed_slots(c);
        check_slots(c, &fixed, p);
        let services = services_of(c, network, &fixed, p);
        let tenants = tenants_of(c, p);
        let exposures = expose::exposures_of(&c.expose, &services, p);
        let listen = listen_of(c, network, p);
        let limits = worker_limits(c, p);
        let (command_timeout, install_timeout) = setup_timeouts(c, p);
        let tailscale = tailscale_of(c, &services, p);
        let agent_warm_idle = parse_duration(&c.agent_warm_idle).unwrap_or_else(|rule| {
            p.bad(
                "agent.warm_idle",
                &c.agent_warm_idle,
                rule,
                "e.g. 10m or 600s",
            );
            Duration::ZERO
        });
        if !["debian", "host"].contains(&c.service_release.as_str()) {
            p.bad(
                "jails.service_release",
                &c.service_release,
                "is not a release the service jails can run on".into(),
                "debian, or host (this host's /usr and apt packages)",
            );
        }
        if !problems.list.is_empty() {
            return Err(ConfigError::Invalid(problems.list));
        }
        let [a, b, cc, _] = network.octets();
        let at = |o: u8| Ipv4Addr::new(a, b, cc, o);
        let mut layout = Layout {
            identity: c.identity.clone(),
            namespace: c.namespace.clone(),
            timezone: c.timezone.clone(),
            state_dir: c.state_dir.clone(),
            network,
            gateway: at(1),
            bridge: c.bridge.clone(),
            ext_if: c.ext_if.clone(),
            domain: c.domain.clone(),
            internal_domain: c.internal_domain.clone(),
            release: c.release.to_ascii_uppercase(),
            services,
            workers: (at(c.workers_first), at(c.workers_last)),
            browser_clones: (at(c.browser_clones_first), at(c.browser_clones_last)),
            tenants,
            exposures,
            records: Vec::new(),
            bastille: BastilleSettings {
                prefix: c.bastille_prefix.clone(),
                zfs_pool: c.zfs_pool.clone(),
                zfs_prefix: c.zfs_prefix.clone(),
                pf_table: c.pf_table.clone(),
                loopback: c.loopback.clone(),
            },
            port: c.port,
            listen,
            limits,
            worker_user: c.worker_user.clone(),
            pool_size: c.pool_size,
            allow_unlimited: c.allow_unlimited,
            pi_version: c.agent_pi_version.clone(),
            models_port: MODELS_PORT,
            gateway_port: c.gateway_port,
            gateway_tenant_token_budget: u64::from(c.gateway_tenant_token_budget),
            gateway_flatten_content: c.gateway_flatten_content,
            ai_wheel_cache: c.ai_wheel_cache.clone(),
            service_release: c.service_release.clone(),
            release_cache: c.release_cache.clone(),
            command_timeout,
            install_timeout,
            agent_warm: c.agent_warm,
            agent_warm_idle,
            tailscale,
        };
        layout.records = records(&layout);
        // The agent's provider is the ai jail when agent.base_url names it: the workers' path follows its port.
        if let (Some(ai), Some((host, port))) = (
            layout.service(Role::Ai),
            url_host_port(&c.agent_base_url).ok(),
        ) {
            if host == ai.addr.to_string() || host == ai.fqdn {
                layout.models_port = port;
            }
        }
        Ok(layout)
    }
}

/// The problems `Layout::from_loaded` finds, in the order it checks, each with where its key's value came from.
struct Problems<'a> {
    loaded: &'a Loaded,
    list: Vec<Invalid>,
}

impl Problems<'_> {
    /// Records that `key` = `value` breaks `rule`, with the `fix` to offer.
    fn bad(&mut self, key: &str, value: &str, rule: String, fix: &str) {
        self.list.push(Invalid {
            key: key.to_string(),
            value: value.to_string(),
            origin: self.loaded.source(key),
            rule,
            fix: fix.to_string(),
        })
    }
}

/// The subnet's network address (a stand-in when it is invalid, so the other checks still run).
fn network_of(c: &Config, p: &mut Problems) -> Ipv4Addr {
    match parse_subnet(&c.subnet) {
        Ok(n) => n,
        Err(rule) => {
            p.bad(
                "network.subnet",
                &c.subnet,
                rule,
                "use a private /24, e.g. AGENT_SUBNET_BASE=10.0.1",
            );
            Ipv4Addr::new(10, 0, 1, 0)
        }
    }
}

/// Identity, domains, interface names and the release name.
fn check_names(loaded: &Loaded, p: &mut Problems) {
    let c = &loaded.config;
    if let Err(rule) = check_label(&c.identity) {
        p.bad(
            "identity",
            &c.identity,
            rule,
            "use letters and digits, e.g. identity = \"clawdie\"",
        );
    }
    if let Err(rule) = check_domain(&c.domain) {
        p.bad(
            "dns.domain",
            &c.domain,
            rule,
            "use a name under home.arpa, e.g. AGENT_DOMAIN=home.arpa",
        );
    }
    // Derived from identity unless set: then the identity check above already covers it.
    if !matches!(loaded.source("dns.internal_domain"), Source::Derived(_)) {
        if let Err(rule) = check_domain(&c.internal_domain) {
            p.bad(
                "dns.internal_domain",
                &c.internal_domain,
                rule,
                "use <agent>.home.arpa, e.g. AGENT_INTERNAL_DOMAIN=clawdie.home.arpa",
            );
        }
    }
    for (key, value) in [("network.bridge", &c.bridge), ("network.ext_if", &c.ext_if)] {
        if value.is_empty()
            || value.len() > 15
            || !value
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        {
            p.bad(
                key,
                value,
                "an interface name has 1 to 15 letters, digits or '_'".into(),
                "e.g. network.bridge = \"warden0\"",
            );
        }
    }
    if !is_release(&c.release) {
        p.bad(
            "jails.release",
            &c.release,
            "not a FreeBSD release name Bastille accepts (N.N-RELEASE, -RCn, -BETAn, -STABLE, -CURRENT)".into(),
            "e.g. WARDEN_RELEASE=15.0-RELEASE",
        );
    }
}

/// A fixed slot: its role, config key, last octet and shape.
type FixedSlot = (Role, &'static str, u8, Shape);

/// The fixed slots of the enabled services, in octet order.
fn fixed_slots(c: &Config) -> Vec<FixedSlot> {
    let mut fixed: Vec<FixedSlot> = vec![
        (Role::Git, "slots.git", c.slot_git, Shape::Thin),
        (Role::Cms, "slots.cms", c.slot_cms, Shape::Thin),
    ];
    if c.ai_enabled {
        fixed.push((Role::Ai, "slots.ai", c.slot_ai, Shape::Thin));
    }
    if c.db_enabled {
        fixed.push((Role::Db, "slots.db", c.slot_db, Shape::Thick));
    }
    fixed.push((Role::Browser, "slots.browser", c.slot_browser, Shape::Image));
    fixed.sort_by_key(|f| f.2);
    fixed
}

/// Slots: every fixed slot distinct, not the gateway, and outside both dynamic ranges, which are
/// non-empty and apart.
fn check_slots(c: &Config, fixed: &[FixedSlot], p: &mut Problems) {
    let ranges = [
        ("slots.workers_first", c.workers_first, c.workers_last),
        (
            "slots.browser_clones_first",
            c.browser_clones_first,
            c.browser_clones_last,
        ),
    ];
    for (first_key, first, last) in ranges {
        if first > last {
            p.bad(
                first_key,
                &first.to_string(),
                format!("the range {first}..{last} is empty"),
                "first ≤ last, e.g. 101..149",
            );
        }
    }
    if ranges[0].1 <= ranges[1].2 && ranges[1].1 <= ranges[0].2 {
        p.bad(
            "slots.browser_clones_first",
            &c.browser_clones_first.to_string(),
            format!(
                "overlaps the worker range {}..{}",
                c.workers_first, c.workers_last
            ),
            "keep the ranges apart, e.g. workers 101..149 and browser clones 150..199",
        );
    }
    for (i, (role, key, octet, _)) in fixed.iter().enumerate() {
        if *octet == 1 {
            p.bad(
                key,
                "1",
                format!("slot .1 is the gateway; {} needs its own", role.name()),
                "e.g. 2..99",
            );
        }
        if let Some((other, ..)) = fixed[..i].iter().find(|f| f.2 == *octet) {
            p.bad(
                key,
                &octet.to_string(),
                format!("slot .{octet} is already taken by {}", other.name()),
                "give every service its own slot (defaults: git 2, cms 3, ai 4, db 5, browser 6)",
            );
        }
        for (_, first, last) in ranges {
            if (first..=last).contains(octet) {
                p.bad(
                    key,
                    &octet.to_string(),
                    format!("slot .{octet} lies in the dynamic range {first}..{last}"),
                    "e.g. 2..99",
                );
            }
        }
    }
}

/// The services of the fixed slots; the identity must make valid jail names for them.
fn services_of(
    c: &Config,
    network: Ipv4Addr,
    fixed: &[FixedSlot],
    p: &mut Problems,
) -> Vec<Service> {
    let services: Vec<Service> = fixed
        .iter()
        .map(|(role, _, octet, shape)| {
            let [a, b, cc, _] = network.octets();
            Service {
                role: *role,
                jail: format!("{}{}", c.identity, role.name()),
                addr: Ipv4Addr::new(a, b, cc, *octet),
                shape: *shape,
                fqdn: format!("{}.{}", service_label(*role), c.domain),
            }
        })
        .collect();
    for service in services.iter().filter(|s| s.shape != Shape::Image) {
        if let Err(rule) = check_jail_name(&service.jail) {
            p.bad(
                "identity",
                &c.identity,
                format!(
                    "it makes the {} jail name {:?}: {rule}",
                    service.role.name(),
                    service.jail
                ),
                "use at most 7 letters and digits, e.g. identity = \"clawdie\"",
            );
            break;
        }
    }
    services
}

/// Tenants: labels, no duplicates, no clash with a platform name; their sites likewise.
fn tenants_of(c: &Config, p: &mut Problems) -> Vec<Tenant> {
    let reserved: Vec<String> = ["ai", "git", "cms", "db", "models", "browser"]
        .iter()
        .map(|s| s.to_string())
        .chain([c.identity.clone()])
        .collect();
    let mut tenants = Vec::new();
    for (i, t) in c.tenants.iter().enumerate() {
        if let Err(rule) = check_label(&t.name) {
            p.bad(
                "tenants",
                &t.name,
                format!("tenant name: {rule}"),
                "use a DNS label, e.g. name = \"atlas\" (no '_')",
            );
            continue;
        }
        if c.tenants[..i].iter().any(|o| o.name == t.name) {
            p.bad(
                "tenants",
                &t.name,
                "duplicate tenant".into(),
                "name each tenant once",
            );
            continue;
        }
        if reserved.contains(&t.name) {
            p.bad(
                "tenants",
                &t.name,
                format!("{}.{} is a platform name", t.name, c.domain),
                "choose another tenant name",
            );
            continue;
        }
        tenants.push(Tenant {
            name: t.name.clone(),
            fqdn: format!("{}.{}", t.name, c.domain),
            sites: sites_of(&t.name, &t.sites, p),
        });
    }
    tenants
}

/// A tenant's sites: DNS labels, each once.
fn sites_of(tenant: &str, given: &[String], p: &mut Problems) -> Vec<String> {
    let mut sites = Vec::new();
    for (j, site) in given.iter().enumerate() {
        if let Err(rule) = check_label(site) {
            p.bad(
                "tenants",
                site,
                format!("site of tenant {tenant}: {rule}"),
                "use a DNS label, e.g. sites = [\"blog\"]",
            );
        } else if given[..j].contains(site) {
            p.bad(
                "tenants",
                site,
                format!("duplicate site of tenant {tenant}"),
                "name each site once",
            );
        } else {
            sites.push(site.clone());
        }
    }
    sites
}

/// The control plane's listen addresses (`gateway` is the subnet's .1).
fn listen_of(c: &Config, network: Ipv4Addr, p: &mut Problems) -> Vec<Ipv4Addr> {
    let mut listen = Vec::new();
    for item in &c.listen {
        if item == "gateway" {
            listen.push(Ipv4Addr::new(
                network.octets()[0],
                network.octets()[1],
                network.octets()[2],
                1,
            ));
        } else {
            match item.parse::<Ipv4Addr>() {
                Ok(a) => listen.push(a),
                Err(_) => p.bad(
                    "control_plane.listen",
                    item,
                    "not an IPv4 address or \"gateway\"".into(),
                    "e.g. listen = [\"127.0.0.1\", \"gateway\"]",
                ),
            }
        }
    }
    listen
}

/// `tailscale.mode` and, in `jail` mode, `tailscale.jail` (a jail of the layout; the browser VM is not one).
fn tailscale_of(c: &Config, services: &[Service], p: &mut Problems) -> crate::tailscale::Settings {
    use crate::tailscale::{Mode, Settings};
    let Some(mode) = Mode::parse(&c.tailscale_mode) else {
        let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
        p.bad(
            "tailscale.mode",
            &c.tailscale_mode,
            format!("not a Tailscale mode (one of {})", names.join(", ")),
            "e.g. WARDEN_TAILSCALE_MODE=host",
        );
        return Settings::default();
    };
    let jails: Vec<&str> = services
        .iter()
        .filter(|s| s.shape != Shape::Image)
        .map(|s| s.jail.as_str())
        .collect();
    let jail = c.tailscale_jail.trim();
    match mode {
        Mode::Jail if !jails.contains(&jail) => {
            let rule = if jail.is_empty() {
                "jail mode needs the jail that runs tailscaled".to_string()
            } else {
                "not a jail of the layout".to_string()
            };
            p.bad(
                "tailscale.jail",
                jail,
                rule,
                &format!(
                    "set tailscale.jail to one of {} (WARDEN_TAILSCALE_JAIL)",
                    jails.join(", ")
                ),
            );
        }
        Mode::Off | Mode::Host | Mode::Subnet if !jail.is_empty() => p.bad(
            "tailscale.jail",
            jail,
            format!(
                "only jail mode runs tailscaled in a jail, and tailscale.mode is {}",
                mode.name()
            ),
            "set tailscale.mode = \"jail\", or leave tailscale.jail empty",
        ),
        _ => {}
    }
    Settings {
        mode,
        jail: (mode == Mode::Jail).then(|| jail.to_string()),
    }
}

/// `setup.command_timeout` and `setup.install_timeout` (durations above zero).
fn setup_timeouts(c: &Config, p: &mut Problems) -> (Duration, Duration) {
    let mut one = |key: &str, text: &str, fix: &str| {
        parse_duration(text).unwrap_or_else(|rule| {
            p.bad(key, text, rule, fix);
            Duration::ZERO
        })
    };
    (
        one(
            "setup.command_timeout",
            &c.setup_command_timeout,
            "e.g. 300s or 5m",
        ),
        one(
            "setup.install_timeout",
            &c.setup_install_timeout,
            "e.g. 60m or 2h",
        ),
    )
}

/// The workers' limits, and their user's name.
fn worker_limits(c: &Config, p: &mut Problems) -> Limits {
    let memory_bytes = parse_size(&c.worker_memory).unwrap_or_else(|rule| {
        p.bad("workers.memory", &c.worker_memory, rule, "e.g. 512M or 2G");
        0
    });
    let output_bytes = parse_size(&c.worker_output).unwrap_or_else(|rule| {
        p.bad("workers.output", &c.worker_output, rule, "e.g. 8M");
        0
    });
    let timeout = parse_duration(&c.worker_timeout).unwrap_or_else(|rule| {
        p.bad(
            "workers.timeout",
            &c.worker_timeout,
            rule,
            "e.g. 300s or 5m",
        );
        Duration::ZERO
    });
    if !is_user_name(&c.worker_user) {
        p.bad(
            "workers.user",
            &c.worker_user,
            "not a Unix user name".into(),
            "e.g. workers.user = \"clawdie\"",
        );
    }
    Limits {
        memory_bytes,
        pids: c.worker_pids,
        timeout,
        output_bytes,
    }
}

/// The DNS label of a service: `models` for Local AI Models, because the seeds give `ai.` to the control plane.
pub fn service_label(role: Role) -> &'static str {
    match role {
        Role::Ai => "models",
        other => other.name(),
    }
}

fn records(layout: &Layout) -> Vec<Record> {
    let rec = |name: String, addr, purpose: &str| Record {
        name,
        addr,
        purpose: purpose.to_string(),
    };
    let mut out = vec![
        rec(
            format!("ai.{}", layout.domain),
            layout.gateway,
            "control plane",
        ),
        rec(layout.internal_domain.clone(), layout.gateway, "host"),
    ];
    for s in &layout.services {
        let purpose = match s.role {
            Role::Git => "git service",
            Role::Cms => "web service",
            Role::Ai => "local AI models",
            Role::Db => "database",
            Role::Browser => "browser VM",
            _ => "service",
        };
        out.push(rec(s.fqdn.clone(), s.addr, purpose));
    }
    // Tenant homes and sites are served by the shared Web Service.
    if let Some(cms) = layout.service(Role::Cms).map(|s| s.addr) {
        for t in &layout.tenants {
            out.push(rec(t.fqdn.clone(), cms, &format!("tenant {}", t.name)));
            for site in &t.sites {
                out.push(rec(
                    format!("{site}.{}", t.fqdn),
                    cms,
                    &format!("site of tenant {}", t.name),
                ));
            }
        }
    }
    out
}

fn is_release(release: &str) -> bool {
    let r = release.to_ascii_uppercase();
    let Some((version, kind)) = r.split_once('-') else {
        return false;
    };
    let Some((major, minor)) = version.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !(digits(major) && !major.starts_with('0') && minor.len() == 1 && digits(minor)) {
        return false;
    }
    matches!(kind, "RELEASE" | "STABLE" | "CURRENT")
        || ["RC", "BETA"].iter().any(|p| {
            kind.strip_prefix(p).is_some_and(|n| {
                n.len() == 1 && ('1'..='9').contains(&n.chars().next().unwrap_or('0'))
            })
        })
}

fn is_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Parses a size such as `512M`, `2G`, `65536` (bytes) or `64K`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, mult) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        None => (t, 1u64),
        Some((i, _)) => {
            let mult = match t[i..]
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                other => return Err(format!("unknown size unit {other:?} (use K, M, G or T)")),
            };
            (&t[..i], mult)
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| "a size is a whole number with an optional unit".to_string())?;
    n.checked_mul(mult)
        .filter(|v| *v > 0)
        .ok_or_else(|| "a size must be above 0 and fit in 64 bits".to_string())
}

/// Parses a duration such as `300s`, `5m`, `1h`, `250ms` or `30` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split]
        .parse()
        .map_err(|_| "a duration is a whole number with a unit (ms, s, m, h)".to_string())?;
    let d = match &t[split..] {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if d.is_zero() {
        return Err("a duration must be above 0".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load, TenantConfig};
    use proptest::prelude::*;

    fn layout_with(env: &[(&str, &str)]) -> Result<Layout, ConfigError> {
        let owned: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| {
            owned
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        Layout::from_loaded(&load(None, &lookup, &vec![])?)
    }

    #[test]
    fn default_layout_matches_design_table() {
        let l = layout_with(&[]).unwrap();
        assert_eq!(l.gateway, Ipv4Addr::new(10, 0, 1, 1));
        let slots: Vec<(Role, String, Ipv4Addr)> = l
            .services
            .iter()
            .map(|s| (s.role, s.jail.clone(), s.addr))
            .collect();
        assert_eq!(
            slots,
            vec![
                (Role::Git, "clawdiegit".into(), Ipv4Addr::new(10, 0, 1, 2)),
                (Role::Cms, "clawdiecms".into(), Ipv4Addr::new(10, 0, 1, 3)),
                (Role::Ai, "clawdieai".into(), Ipv4Addr::new(10, 0, 1, 4)),
                (Role::Db, "clawdiedb".into(), Ipv4Addr::new(10, 0, 1, 5)),
                (
                    Role::Browser,
                    "clawdiebrowser".into(),
                    Ipv4Addr::new(10, 0, 1, 6)
                ),
            ]
        );
        assert_eq!(l.service(Role::Db).unwrap().shape, Shape::Thick);
        assert_eq!(
            l.workers,
            (Ipv4Addr::new(10, 0, 1, 101), Ipv4Addr::new(10, 0, 1, 149))
        );
        assert_eq!(l.internal_domain, "clawdie.home.arpa");
        let names: Vec<&str> = l.records.iter().map(|r| r.name.as_str()).collect();
        assert!(
            names.contains(&"ai.home.arpa")
                && names.contains(&"git.home.arpa")
                && names.contains(&"models.home.arpa")
        );
    }

    #[test]
    fn setup_timeouts_default_parse_and_refuse_zero_or_nonsense() {
        let l = layout_with(&[]).unwrap();
        assert_eq!(
            (l.command_timeout, l.install_timeout),
            (Duration::from_secs(300), Duration::from_secs(3600))
        );
        let l = layout_with(&[("WARDEN_SETUP_COMMAND_TIMEOUT", "90s")]).unwrap();
        assert_eq!(l.command_timeout, Duration::from_secs(90));
        let err = layout_with(&[
            ("WARDEN_SETUP_COMMAND_TIMEOUT", "0s"),
            ("WARDEN_SETUP_INSTALL_TIMEOUT", "soon"),
        ])
        .unwrap_err()
        .to_string();
        for want in [
            "WARDEN_SETUP_COMMAND_TIMEOUT",
            "must be above 0",
            "WARDEN_SETUP_INSTALL_TIMEOUT",
            "e.g. 60m",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn bad_inputs_name_the_variable() {
        let err = layout_with(&[("AGENT_SUBNET_BASE", "8.8.8")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AGENT_SUBNET_BASE") && err.contains("private"),
            "{err}"
        );
        let err = layout_with(&[("AGENT_DOMAIN", "home.local")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("AGENT_DOMAIN") && err.contains(".local"),
            "{err}"
        );
        let err = layout_with(&[("TENANT_ID", "a_b")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("TENANT_ID") && err.contains("'_'"), "{err}");
        let err = layout_with(&[("WARDEN_IDENTITY", "clawdie-x")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("identity"), "{err}");
    }

    #[test]
    fn the_default_agent_base_url_is_this_layouts_ai_jail() {
        let base = |env: &[(&str, &str)]| {
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let lookup = move |n: &str| env.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            load(None, &lookup, &vec![]).unwrap().config.agent_base_url
        };
        assert_eq!(base(&[]), "http://10.0.1.4:8080/v1");
        assert_eq!(
            base(&[("WARDEN_SUBNET_BASE", "10.0.2")]),
            "http://10.0.2.4:8080/v1"
        );
        assert_eq!(
            base(&[("WARDEN_SUBNET_BASE", "10.0.2"), ("WARDEN_SLOT_AI", "9")]),
            "http://10.0.2.9:8080/v1"
        );
        assert_eq!(
            base(&[
                ("WARDEN_SUBNET_BASE", "10.0.2"),
                ("WARDEN_AGENT_BASE_URL", "https://api.example/v1")
            ]),
            "https://api.example/v1"
        );
    }

    #[test]
    fn the_models_path_follows_agent_base_url_when_it_names_the_ai_jail() {
        assert_eq!(
            url_host_port("http://10.0.1.4:8080/v1"),
            Ok(("10.0.1.4".into(), 8080))
        );
        assert_eq!(
            url_host_port("https://ai.home.arpa/v1"),
            Ok(("ai.home.arpa".into(), 443))
        );
        assert!(url_host_port("ftp://x").is_err());
        let port = |url: &str| {
            let mut loaded = load(None, &|_| None, &vec![]).unwrap();
            loaded.config.agent_base_url = url.into();
            let l = Layout::from_loaded(&loaded).unwrap();
            l.models_port
        };
        assert_eq!(port("http://10.0.1.4:8080/v1"), 8080);
        assert_eq!(port("http://10.0.1.4:18081/v1"), 18081);
        assert_eq!(port("http://models.home.arpa:9000/v1"), 9000);
        // ai.<domain> is the control plane on the gateway, not the models jail.
        assert_eq!(port("http://ai.home.arpa:9000/v1"), MODELS_PORT);
        // A provider elsewhere: the ai jail keeps the default port.
        assert_eq!(port("https://api.example.com/v1"), MODELS_PORT);
    }

    #[test]
    fn slot_collisions_are_reported() {
        let err = layout_with(&[("WARDEN_SLOT_CMS", "2")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("already taken by git"), "{err}");
        let err = layout_with(&[("WARDEN_SLOT_DB", "120")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("dynamic range"), "{err}");
        let err = layout_with(&[("WARDEN_SLOT_GIT", "1")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("gateway"), "{err}");
    }

    #[test]
    fn tenants_and_sites_resolve_to_cms() {
        let mut loaded = load(None, &|_| None, &vec![]).unwrap();
        loaded.config.tenants = vec![TenantConfig {
            name: "atlas".into(),
            sites: vec!["blog".into()],
        }];
        let l = Layout::from_loaded(&loaded).unwrap();
        let blog = l
            .records
            .iter()
            .find(|r| r.name == "blog.atlas.home.arpa")
            .unwrap();
        assert_eq!(blog.addr, Ipv4Addr::new(10, 0, 1, 3));
    }

    #[test]
    fn duplicate_tenants_are_refused() {
        let mut loaded = load(None, &|_| None, &vec![]).unwrap();
        loaded.config.tenants = vec![
            TenantConfig {
                name: "atlas".into(),
                sites: vec![],
            },
            TenantConfig {
                name: "atlas".into(),
                sites: vec![],
            },
        ];
        assert!(Layout::from_loaded(&loaded)
            .unwrap_err()
            .to_string()
            .contains("duplicate tenant"));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("x").is_err());
    }

    proptest! {
        #[test]
        fn cidr_cover_is_exactly_the_range(a in any::<u32>(), len in 0u32..5000) {
            let (first, last) = (a, a.saturating_add(len));
            let blocks = cidr_cover(Ipv4Addr::from(first), Ipv4Addr::from(last));
            let mut next = u64::from(first);
            for b in &blocks {
                let (addr, bits) = b.split_once('/').unwrap();
                let (addr, bits): (Ipv4Addr, u32) = (addr.parse().unwrap(), bits.parse().unwrap());
                let size = 1u64 << (32 - bits);
                prop_assert_eq!(u64::from(u32::from(addr)), next, "blocks are contiguous: {:?}", blocks);
                prop_assert_eq!(next % size, 0, "{} is aligned", b);
                next += size;
            }
            prop_assert_eq!(next, u64::from(last) + 1, "the cover ends at the range's end: {:?}", blocks);
            prop_assert!(blocks.len() <= 64);
        }

        #[test]
        fn any_subnet_env_never_panics(s in "\\PC{0,24}") {
            let _ = layout_with(&[("AGENT_SUBNET_BASE", &s)]);
        }

        #[test]
        fn any_private_24_gives_addresses_inside_it(a in 0u8..=255, b in 0u8..=255) {
            let base = format!("10.{a}.{b}");
            let l = layout_with(&[("AGENT_SUBNET_BASE", &base)]).unwrap();
            for r in &l.records {
                prop_assert_eq!(&r.addr.octets()[..3], &[10, a, b][..]);
            }
            prop_assert_eq!(l.gateway, Ipv4Addr::new(10, a, b, 1));
        }

        #[test]
        fn any_toml_never_panics(text in "\\PC{0,200}") {
            let _ = load(Some(("fuzz.toml", &text)), &|_| None, &vec![]).and_then(|l| Layout::from_loaded(&l));
        }

        #[test]
        fn any_env_values_never_panic(domain in "\\PC{0,40}", tenant in "\\PC{0,20}", slot in "\\PC{0,5}") {
            let _ = layout_with(&[("AGENT_DOMAIN", &domain), ("TENANT_ID", &tenant), ("WARDEN_SLOT_GIT", &slot)]);
        }
    }
}
