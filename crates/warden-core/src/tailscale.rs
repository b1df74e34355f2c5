//! Tailscale (seeds 000, 001, 003): how the tailnet reaches Clawdie. `tailscale.mode` picks one of seed 001's
//! three ways, or none:
//!
//! - `off`: Warden does nothing with Tailscale and checks nothing.
//! - `host` (seed 003's preferred first step): the host is the tailnet node; the control plane also listens on
//!   the host's Tailscale address, so the tailnet reaches `warden serve` and nothing else.
//! - `subnet`: the host advertises the Warden /24 as a subnet route, forwards, and the firewall lets `tailscale0`
//!   into the subnet, so the tailnet reaches the jails through the host.
//! - `jail`: one named jail runs its own `tailscaled` (its own tailnet identity): on FreeBSD it gets `allow.tun`
//!   and a devfs ruleset that unhides `/dev/tun*` (seed 000's jail.conf additions); on Linux `/dev/net/tun`.
//!
//! Warden never logs a node in: `tailscale up` with a login URL or an auth key is the operator's. Here: the
//! mode, the part of `tailscale status --json` (Go's `ipnstate.Status`) and of `tailscale debug prefs`
//! (`ipn.Prefs`) Warden reads, and the devfs ruleset of `jail` mode (the firewall rules of `subnet` are in
//! [`crate::render::tailscale`]).

/// The interface tailscaled creates (a tun device on both systems).
pub const INTERFACE: &str = "tailscale0";
/// The devfs ruleset a Tailscale jail uses: Bastille's VNET ruleset (13) plus the tun devices.
pub const DEVFS_RULESET: u32 = 14;
/// The FreeBSD package, its daemon's rc.d service and the daemon's rc.conf switch.
pub const PKG: &str = "tailscale";
/// tailscaled's rc.d service name (FreeBSD).
pub const SERVICE: &str = "tailscaled";
/// tailscaled's rc.conf switch (FreeBSD).
pub const RC_ENABLE: &str = "tailscaled_enable";

/// How the tailnet reaches Clawdie.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No Tailscale.
    #[default]
    Off,
    /// The host is the node; the control plane listens on its Tailscale address too.
    Host,
    /// The host advertises the Warden /24.
    Subnet,
    /// One jail runs its own tailscaled.
    Jail,
}

impl Mode {
    /// Every mode, in the seeds' order of complexity.
    pub const ALL: [Mode; 4] = [Mode::Off, Mode::Host, Mode::Subnet, Mode::Jail];

    /// The mode's name in the config.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Host => "host",
            Mode::Subnet => "subnet",
            Mode::Jail => "jail",
        }
    }

    /// Parses a mode name.
    pub fn parse(text: &str) -> Option<Mode> {
        Mode::ALL.into_iter().find(|m| m.name() == text.trim())
    }

    /// Whether the host itself is a tailnet node in this mode.
    pub fn host_node(self) -> bool {
        matches!(self, Mode::Host | Mode::Subnet)
    }
}

/// The Tailscale part of the layout.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Settings {
    /// The mode.
    pub mode: Mode,
    /// `jail` mode: the jail that runs tailscaled (a jail of the layout).
    pub jail: Option<String>,
}

impl Settings {
    /// The jail of `jail` mode, if that is the mode.
    pub fn jail(&self) -> Option<&str> {
        match self.mode {
            Mode::Jail => self.jail.as_deref(),
            _ => None,
        }
    }
}

/// Go's `null` for an empty slice reads as empty.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + serde::Deserialize<'de>,
{
    use serde::Deserialize;
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The part of `tailscale status --json` (`ipnstate.Status`) Warden reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Status {
    /// The client's version.
    #[serde(default)]
    pub version: String,
    /// `NoState`, `NeedsLogin`, `NeedsMachineAuth`, `Stopped`, `Starting` or `Running`.
    #[serde(default)]
    pub backend_state: String,
    /// The node's Tailscale addresses (IPv4 `100.x.y.z` first, then IPv6).
    #[serde(default, rename = "TailscaleIPs", deserialize_with = "nullable")]
    pub tailscale_ips: Vec<String>,
    /// This node as the tailnet sees it.
    #[serde(default, rename = "Self")]
    pub self_node: Option<PeerStatus>,
    /// The tailnet it is logged in to.
    #[serde(default)]
    pub current_tailnet: Option<Tailnet>,
    /// Health warnings, one sentence each.
    #[serde(default, deserialize_with = "nullable")]
    pub health: Vec<String>,
}

/// The part of an `ipnstate.PeerStatus` Warden reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PeerStatus {
    /// The node's host name.
    #[serde(default)]
    pub host_name: String,
    /// Its MagicDNS name (with a final dot).
    #[serde(default, rename = "DNSName")]
    pub dns_name: String,
    /// Its Tailscale addresses.
    #[serde(default, rename = "TailscaleIPs", deserialize_with = "nullable")]
    pub tailscale_ips: Vec<String>,
    /// What the tailnet routes to it: its own addresses and its approved subnet routes.
    #[serde(default, rename = "AllowedIPs", deserialize_with = "nullable")]
    pub allowed_ips: Vec<String>,
    /// The subnet routes it is the primary router of (advertised and approved).
    #[serde(default, deserialize_with = "nullable")]
    pub primary_routes: Vec<String>,
    /// Whether the coordination server sees it online.
    #[serde(default)]
    pub online: bool,
}

/// `ipnstate.TailnetStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tailnet {
    /// The tailnet's name.
    #[serde(default)]
    pub name: String,
    /// Its MagicDNS suffix.
    #[serde(default, rename = "MagicDNSSuffix")]
    pub magic_dns_suffix: String,
}

/// The part of `tailscale debug prefs` (`ipn.Prefs`) Warden reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Prefs {
    /// Whether the node should be connected.
    #[serde(default)]
    pub want_running: bool,
    /// The subnet routes this node advertises (`--advertise-routes`).
    #[serde(default, deserialize_with = "nullable")]
    pub advertise_routes: Vec<String>,
}

/// Parses `tailscale status --json`.
pub fn parse_status(json: &str) -> Result<Status, String> {
    serde_json::from_str(json).map_err(|e| format!("not ipnstate.Status JSON: {e}"))
}

/// Parses `tailscale debug prefs`.
pub fn parse_prefs(json: &str) -> Result<Prefs, String> {
    serde_json::from_str(json).map_err(|e| format!("not ipn.Prefs JSON: {e}"))
}

impl Status {
    /// Whether the node is logged in and connected.
    pub fn running(&self) -> bool {
        self.backend_state == "Running"
    }

    /// The node's Tailscale IPv4 address.
    pub fn ipv4(&self) -> Option<std::net::Ipv4Addr> {
        self.tailscale_ips.iter().find_map(|a| a.parse().ok())
    }

    /// Whether `cidr` is an approved route this node serves.
    pub fn routes(&self, cidr: &str) -> bool {
        self.self_node
            .as_ref()
            .is_some_and(|s| s.primary_routes.iter().any(|r| r == cidr))
    }
}

/// A tailscaled (the host's, or a jail's) as observed through its CLI.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// The `tailscale` program is there.
    pub installed: bool,
    /// tailscaled answered `tailscale status --json`; `None`: it did not (see `error`).
    pub status: Option<Status>,
    /// `tailscale debug prefs`, when tailscaled answered.
    pub prefs: Option<Prefs>,
    /// Why tailscaled did not answer (the CLI's first line), when it did not.
    pub error: String,
}

impl Node {
    /// Whether it is logged in and connected.
    pub fn running(&self) -> bool {
        self.status.as_ref().is_some_and(Status::running)
    }

    /// The backend state, or why there is none, for messages.
    pub fn state_text(&self) -> String {
        match (&self.status, self.installed) {
            (_, false) => "tailscale is not installed".into(),
            (Some(s), _) => format!("BackendState {}", s.backend_state),
            (None, _) => format!("tailscaled does not answer ({})", self.error),
        }
    }

    /// The routes it advertises.
    pub fn advertised(&self) -> &[String] {
        self.prefs
            .as_ref()
            .map(|p| p.advertise_routes.as_slice())
            .unwrap_or(&[])
    }
}

/// What Tailscale looks like on a host: the host's node and, in `jail` mode, the jail's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Observed {
    /// The host's tailscaled (observed in `host` and `subnet` modes, and for teardown in every mode).
    pub host: Node,
    /// The tailscale jail's tailscaled (`jail` mode, while the jail runs).
    pub jail: Node,
}

/// `--advertise-routes=` for `tailscale set`: `routes` in order, comma-separated.
pub fn advertise_flag(routes: &[String]) -> String {
    format!("--advertise-routes={}", routes.join(","))
}

/// The devfs ruleset of a Tailscale jail (`/etc/devfs.rules`): Bastille's VNET rules and the tun devices
/// tailscaled opens.
pub fn devfs_rules() -> String {
    format!(
        "[warden_tailscale={DEVFS_RULESET}]\n\
         add include $devfsrules_hide_all\n\
         add include $devfsrules_unhide_basic\n\
         add include $devfsrules_unhide_login\n\
         add include $devfsrules_jail\n\
         add path 'bpf*' unhide\n\
         add path 'tun*' unhide\n"
    )
}

/// Whether `text` (devfs.rules) holds Warden's Tailscale ruleset.
pub fn has_devfs_rules(text: &str) -> bool {
    text.contains(&format!("[warden_tailscale={DEVFS_RULESET}]"))
}

/// `text` without Warden's Tailscale ruleset.
pub fn without_devfs_rules(text: &str) -> String {
    text.replace(&devfs_rules(), "")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tailscale status --json` of a logged-in subnet router, as tailscale 1.86 prints it (fields Warden
    /// does not read included, some `null`).
    const RUNNING: &str = r#"{
  "Version": "1.86.2-t1234abcd-gdeadbeef",
  "TUN": true,
  "BackendState": "Running",
  "HaveNodeKey": true,
  "AuthURL": "",
  "TailscaleIPs": ["100.101.102.103", "fd7a:115c:a1e0::1"],
  "Self": {
    "ID": "nXXXXXCNTRL",
    "PublicKey": "nodekey:abc",
    "HostName": "clawdie",
    "DNSName": "clawdie.tail1234.ts.net.",
    "OS": "freebsd",
    "UserID": 123,
    "TailscaleIPs": ["100.101.102.103", "fd7a:115c:a1e0::1"],
    "AllowedIPs": ["100.101.102.103/32", "fd7a:115c:a1e0::1/128", "10.0.1.0/24"],
    "PrimaryRoutes": ["10.0.1.0/24"],
    "Addrs": null,
    "Online": true,
    "ExitNode": false
  },
  "Health": null,
  "MagicDNSSuffix": "tail1234.ts.net",
  "CurrentTailnet": {"Name": "ops@example.com", "MagicDNSSuffix": "tail1234.ts.net", "MagicDNSEnabled": true},
  "CertDomains": null,
  "Peer": null,
  "User": null,
  "ClientVersion": null
}"#;

    #[test]
    fn status_reads_state_addresses_and_routes() {
        let s = parse_status(RUNNING).unwrap();
        assert!(s.running());
        assert_eq!(s.ipv4(), Some("100.101.102.103".parse().unwrap()));
        assert!(s.routes("10.0.1.0/24") && !s.routes("10.0.2.0/24"));
        assert_eq!(s.current_tailnet.unwrap().name, "ops@example.com");
        let logged_out = parse_status(
            r#"{"BackendState":"NeedsLogin","AuthURL":"","TailscaleIPs":null,"Self":{"TailscaleIPs":null,"PrimaryRoutes":null},"Health":["You are logged out."]}"#,
        )
        .unwrap();
        assert!(!logged_out.running() && logged_out.ipv4().is_none());
        assert_eq!(logged_out.health, ["You are logged out."]);
        assert!(parse_status("failed to connect").is_err());
    }

    #[test]
    fn prefs_read_advertised_routes() {
        let p = parse_prefs(r#"{"ControlURL":"https://controlplane.tailscale.com","RouteAll":false,"WantRunning":true,"AdvertiseRoutes":["10.0.1.0/24"],"NoSNAT":false}"#).unwrap();
        assert_eq!(p.advertise_routes, ["10.0.1.0/24"]);
        let none = parse_prefs(r#"{"WantRunning":false,"AdvertiseRoutes":null}"#).unwrap();
        assert!(none.advertise_routes.is_empty());
    }

    #[test]
    fn modes_parse_by_name() {
        for m in Mode::ALL {
            assert_eq!(Mode::parse(m.name()), Some(m));
        }
        assert_eq!(Mode::parse("exit-node"), None);
    }

    #[test]
    fn devfs_rules_come_and_go() {
        let base = "[bastille_vnet=13]\nadd path 'bpf*' unhide\n";
        let with = format!("{base}{}", devfs_rules());
        assert!(has_devfs_rules(&with) && !has_devfs_rules(base));
        assert_eq!(without_devfs_rules(&with), base);
    }
}
