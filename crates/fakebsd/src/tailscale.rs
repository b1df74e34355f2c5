//! `tailscale` and `tailscaled`: a stand-in for Tailscale's CLI and daemon, which cannot run here (no tailnet,
//! no coordination server). One implementation, two hosts:
//!
//! - **the simulated FreeBSD host** (`$FAKEBSD_STATE` set): the `security/tailscale` package brings
//!   `/usr/local/bin/tailscale` and the rc.d service `tailscaled` (on the host, or in a jail through `jexec`);
//!   the daemon "runs" when that service is started; `tailscale0` is an interface of the simulation (in the
//!   jail's VNET stack inside a jail, which needs `allow.tun` and a devfs ruleset that unhides `tun*`).
//! - **Linux** (`$FAKEBSD_STATE` unset, as in a Linux test namespace or jail): `tailscaled [--state=FILE]`
//!   records its pid and sleeps until killed; state lives in `$TAILSCALE_STANDIN_STATE`, else the directory of
//!   `--state`, else `/var/lib/tailscale`; `tailscale0` is a real tun interface made with `ip tuntap`
//!   (`/dev/net/tun` must be there) in the caller's network namespace.
//!
//! Faithful to Tailscale 1.86's documented behaviour: `tailscale status --json` prints `ipnstate.Status`
//! (`BackendState` `NeedsLogin`/`Stopped`/`Running`, `TailscaleIPs`, `Self` with `AllowedIPs` and
//! `PrimaryRoutes`, `CurrentTailnet`, …); `tailscale debug prefs` prints `ipn.Prefs` (`WantRunning`,
//! `AdvertiseRoutes`, …); `tailscale up` refuses to change settings without the other non-default flags
//! (`--reset` or `tailscale set` does); `set --advertise-routes` refuses a prefix with host bits; a CLI without
//! a daemon says `failed to connect to local tailscaled`.
//!
//! Not simulated (see the README): the login itself (`tailscale up` on a logged-out node logs it in at once, as
//! if the operator had opened the URL), route approval (advertised routes are approved at once, as an
//! `autoApprovers` rule would), peers, DERP, MagicDNS, packets over the tailnet.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::io::{fail, Io};
pub use crate::state::TailscaleNode as Node;

/// The version the stand-in reports.
const VERSION: &str = "1.86.2";
/// The interface tailscaled creates.
pub const INTERFACE: &str = "tailscale0";
/// The tailnet every stand-in node joins.
const TAILNET: &str = "clawdie.example";
/// Its MagicDNS suffix.
const SUFFIX: &str = "tail1234.ts.net";

/// Where a node's daemon and interface live.
pub trait Host {
    /// `Err(message)` when tailscaled does not run here.
    fn daemon(&self) -> Result<(), String>;
    /// Creates (or keeps) `tailscale0` with `ip/32`, up.
    fn iface_up(&mut self, ip: Ipv4Addr) -> Result<(), String>;
    /// Removes `tailscale0`, if there is one.
    fn iface_down(&mut self) -> Result<(), String>;
    /// `freebsd` or `linux`.
    fn os(&self) -> &'static str;
    /// What a missing daemon's message suggests.
    fn start_hint(&self) -> &'static str;
}

/// The node's address: the CGNAT range, fixed per host name (as a tailnet keeps a node's address).
pub fn ip_of(hostname: &str) -> Ipv4Addr {
    let h = hostname.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    });
    Ipv4Addr::new(
        100,
        64 + (h % 60) as u8,
        (h >> 8) as u8,
        1 + (h >> 16) as u8 % 250,
    )
}

impl Node {
    fn backend_state(&self) -> &'static str {
        match (self.logged_in, self.want_running) {
            (false, _) => "NeedsLogin",
            (true, false) => "Stopped",
            (true, true) => "Running",
        }
    }

    fn running(&self) -> bool {
        self.logged_in && self.want_running
    }

    /// `ipnstate.Status` as `tailscale status --json` prints it.
    fn status_json(&self, os: &str) -> serde_json::Value {
        let ip = ip_of(&self.hostname).to_string();
        let ips = if self.logged_in {
            serde_json::json!([ip])
        } else {
            serde_json::Value::Null
        };
        let routes = if self.running() && !self.advertise_routes.is_empty() {
            serde_json::json!(self.advertise_routes)
        } else {
            serde_json::Value::Null
        };
        let mut allowed: Vec<String> = Vec::new();
        if self.logged_in {
            allowed.push(format!("{ip}/32"));
            if self.running() {
                allowed.extend(self.advertise_routes.iter().cloned());
            }
        }
        serde_json::json!({
            "Version": VERSION,
            "TUN": true,
            "BackendState": self.backend_state(),
            "HaveNodeKey": self.logged_in,
            "AuthURL": "",
            "TailscaleIPs": ips,
            "Self": {
                "ID": if self.logged_in { "nStandIn1CNTRL" } else { "" },
                "PublicKey": if self.logged_in { "nodekey:5ca1ab1e" } else { "nodekey:0000000000000000000000000000000000000000000000000000000000000000" },
                "HostName": self.hostname,
                "DNSName": if self.logged_in { format!("{}.{SUFFIX}.", self.hostname) } else { String::new() },
                "OS": os,
                "UserID": if self.logged_in { 1 } else { 0 },
                "TailscaleIPs": ips,
                "AllowedIPs": if allowed.is_empty() { serde_json::Value::Null } else { serde_json::json!(allowed) },
                "PrimaryRoutes": routes,
                "Addrs": serde_json::Value::Null,
                "CurAddr": "",
                "Relay": "",
                "RxBytes": 0,
                "TxBytes": 0,
                "Online": self.running(),
                "ExitNode": false,
                "ExitNodeOption": false,
                "Active": false,
            },
            "Health": if self.logged_in { serde_json::Value::Null } else { serde_json::json!(["You are logged out."]) },
            "MagicDNSSuffix": if self.logged_in { SUFFIX } else { "" },
            "CurrentTailnet": if self.logged_in {
                serde_json::json!({"Name": TAILNET, "MagicDNSSuffix": SUFFIX, "MagicDNSEnabled": true})
            } else {
                serde_json::Value::Null
            },
            "CertDomains": serde_json::Value::Null,
            "Peer": {},
            "User": serde_json::Value::Null,
            "ClientVersion": serde_json::Value::Null,
        })
    }

    /// `ipn.Prefs` as `tailscale debug prefs` prints it.
    fn prefs_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ControlURL": "https://controlplane.tailscale.com",
            "RouteAll": false,
            "ExitNodeID": "",
            "ExitNodeIP": "",
            "CorpDNS": true,
            "RunSSH": false,
            "WantRunning": self.want_running,
            "LoggedOut": !self.logged_in,
            "ShieldsUp": false,
            "AdvertiseTags": serde_json::Value::Null,
            "Hostname": "",
            "NotepadURLs": false,
            "AdvertiseRoutes": if self.advertise_routes.is_empty() { serde_json::Value::Null } else { serde_json::json!(self.advertise_routes) },
            "NoSNAT": false,
            "NetfilterMode": 2,
        })
    }
}

/// The value of `--NAME=V` or `--NAME V` in `args` at `i` (advancing `i` past a separate value).
fn flag_value(args: &[String], i: &mut usize, name: &str) -> Option<Option<String>> {
    let a = &args[*i];
    let long = format!("--{name}");
    let short = format!("-{name}");
    for prefix in [&long, &short] {
        if let Some(v) = a.strip_prefix(&format!("{prefix}=")) {
            return Some(Some(v.to_string()));
        }
        if a == prefix {
            *i += 1;
            return Some(args.get(*i).cloned());
        }
    }
    None
}

/// A `--advertise-routes` value: comma-separated IPv4 prefixes without host bits.
fn parse_routes(value: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for r in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let (addr, len) = r
            .split_once('/')
            .ok_or_else(|| format!("invalid IP address prefix \"{r}\""))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("invalid IP address prefix \"{r}\""))?;
        let len: u32 = len
            .parse()
            .ok()
            .filter(|l| *l <= 32)
            .ok_or_else(|| format!("invalid IP address prefix \"{r}\""))?;
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        let net = Ipv4Addr::from(u32::from(addr) & mask);
        if net != addr {
            return Err(format!(
                "{r} has non-address bits set; expected {net}/{len}"
            ));
        }
        out.push(r.to_string());
    }
    Ok(out)
}

/// `tailscale ARGS…` on `node`, living on `host`. Returns the exit status; the caller saves `node`.
pub fn cli(node: &mut Node, host: &mut dyn Host, args: &[String], io: &mut Io) -> i32 {
    let Some(cmd) = args.first().map(String::as_str) else {
        return fail(
            io,
            "USAGE\n  tailscale [flags] <subcommand> [command flags]",
        );
    };
    if cmd == "version" {
        io.out(&format!("{VERSION}\n  go version: go1.24.6"));
        return 0;
    }
    if let Err(e) = host.daemon() {
        return fail(io, &e);
    }
    let rest = &args[1..];
    match cmd {
        "status" => {
            if rest.iter().any(|a| a == "--json" || a == "-json") {
                io.out(&serde_json::to_string_pretty(&node.status_json(host.os())).unwrap_or_default());
                return 0;
            }
            match node.backend_state() {
                "NeedsLogin" => {
                    io.out("Logged out.");
                    1
                }
                "Stopped" => {
                    io.out("Tailscale is stopped.");
                    1
                }
                _ => {
                    io.out(&format!(
                        "{:<15} {:<15} {:<15} {:<7} -",
                        ip_of(&node.hostname),
                        node.hostname,
                        "ops@",
                        host.os()
                    ));
                    0
                }
            }
        }
        "ip" => {
            if !node.logged_in {
                return fail(io, "no current Tailscale IPs; state: NeedsLogin");
            }
            io.out(&ip_of(&node.hostname).to_string());
            0
        }
        "debug" if rest.first().map(String::as_str) == Some("prefs") => {
            io.out(&serde_json::to_string_pretty(&node.prefs_json()).unwrap_or_default());
            0
        }
        "up" | "set" | "login" => up_or_set(node, host, cmd, rest, io),
        "down" => {
            node.want_running = false;
            match host.iface_down() {
                Ok(()) => 0,
                Err(e) => fail(io, &e),
            }
        }
        "logout" => {
            node.logged_in = false;
            node.want_running = false;
            match host.iface_down() {
                Ok(()) => 0,
                Err(e) => fail(io, &e),
            }
        }
        other => fail(
            io,
            &format!("tailscale: unknown subcommand: {other} (the stand-in knows status, ip, up, set, login, down, logout, debug prefs, version)"),
        ),
    }
}

/// `tailscale up|set|login [--advertise-routes=R] [--hostname=H] [--auth-key=K] [--reset]`.
fn up_or_set(node: &mut Node, host: &mut dyn Host, cmd: &str, args: &[String], io: &mut Io) -> i32 {
    let mut routes: Option<Vec<String>> = None;
    let mut hostname = None;
    let mut reset = false;
    let mut i = 0;
    while i < args.len() {
        if let Some(v) = flag_value(args, &mut i, "advertise-routes") {
            match parse_routes(&v.unwrap_or_default()) {
                Ok(r) => routes = Some(r),
                Err(e) => return fail(io, &e),
            }
        } else if let Some(v) = flag_value(args, &mut i, "hostname") {
            hostname = v;
        } else if flag_value(args, &mut i, "auth-key").is_some()
            || flag_value(args, &mut i, "authkey").is_some()
        {
            // Accepted (a `file:` path or the key); never printed.
        } else if args[i] == "--reset" && cmd == "up" {
            reset = true;
        } else {
            return fail(
                io,
                &format!("flag provided but not defined: {} (the stand-in knows --advertise-routes, --hostname, --auth-key, --reset)", args[i]),
            );
        }
        i += 1;
    }
    if cmd == "up" && !reset && routes.is_none() && !node.advertise_routes.is_empty() {
        return fail(
            io,
            &format!(
                "Error: changing settings via 'tailscale up' requires mentioning all\nnon-default flags. To proceed, either re-run your command with --reset or\nuse the command below to explicitly mention the current value of\nall non-default settings:\n\n\ttailscale up --advertise-routes={}",
                node.advertise_routes.join(",")
            ),
        );
    }
    if let Some(h) = hostname {
        node.hostname = h;
    }
    if let Some(r) = routes {
        node.advertise_routes = r;
    } else if reset {
        node.advertise_routes.clear();
    }
    if cmd == "set" {
        return 0;
    }
    // Logging in is the operator's: the stand-in completes it at once.
    node.logged_in = true;
    node.want_running = true;
    match host.iface_up(ip_of(&node.hostname)) {
        Ok(()) => 0,
        Err(e) => fail(io, &e),
    }
}

/// The Linux stand-in's state directory (see the module docs).
fn linux_state_dir(state_flag: Option<&str>) -> PathBuf {
    if let Some(d) = std::env::var_os("TAILSCALE_STANDIN_STATE") {
        return PathBuf::from(d);
    }
    if let Some(parent) = state_flag.and_then(|f| std::path::Path::new(f).parent()) {
        return parent.to_path_buf();
    }
    PathBuf::from("/var/lib/tailscale")
}

/// A Linux network namespace and its state directory.
struct LinuxHost {
    dir: PathBuf,
}

impl LinuxHost {
    fn ip(args: &[&str]) -> Result<(), String> {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("tailscaled: ip {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tailscaled: ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Whether `tailscale0` exists in the caller's network namespace. Asked of `ip`, not `/sys/class/net`: a
    /// process that entered a namespace with `nsenter --net` still sees the sysfs of the namespace that mounted it.
    fn exists() -> bool {
        std::process::Command::new("ip")
            .args(["link", "show", "dev", INTERFACE])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Host for LinuxHost {
    fn daemon(&self) -> Result<(), String> {
        let pid = std::fs::read_to_string(self.dir.join("tailscaled.pid")).unwrap_or_default();
        let alive = pid
            .trim()
            .parse::<u32>()
            .is_ok_and(|p| std::path::Path::new(&format!("/proc/{p}")).exists());
        if alive {
            Ok(())
        } else {
            Err(format!(
                "failed to connect to local tailscaled; it doesn't appear to be running ({})",
                self.start_hint()
            ))
        }
    }

    fn iface_up(&mut self, ip: Ipv4Addr) -> Result<(), String> {
        if !Self::exists() {
            // tailscaled's CreateTUN: needs /dev/net/tun and CAP_NET_ADMIN here.
            Self::ip(&["tuntap", "add", "dev", INTERFACE, "mode", "tun"])?;
        }
        Self::ip(&["addr", "replace", &format!("{ip}/32"), "dev", INTERFACE])?;
        Self::ip(&["link", "set", INTERFACE, "up"])
    }

    fn iface_down(&mut self) -> Result<(), String> {
        if Self::exists() {
            Self::ip(&["link", "del", INTERFACE])?;
        }
        Ok(())
    }

    fn os(&self) -> &'static str {
        "linux"
    }

    fn start_hint(&self) -> &'static str {
        "sudo systemctl start tailscaled ?"
    }
}

/// `tailscale`/`tailscaled` as the Linux stand-in (no `$FAKEBSD_STATE`).
pub fn linux_main(tool: &str, args: &[String]) -> i32 {
    let mut io = Io::default();
    let code = if tool == "tailscaled" {
        linux_daemon(args, &mut io)
    } else {
        let dir = linux_state_dir(None);
        let path = dir.join("node.json");
        let mut node: Node = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_else(|| Node {
                hostname: hostname(),
                ..Default::default()
            });
        let before = node.clone();
        let mut host = LinuxHost { dir: dir.clone() };
        let code = cli(&mut node, &mut host, args, &mut io);
        if node != before {
            let text = serde_json::to_string_pretty(&node).unwrap_or_default();
            if let Err(e) = std::fs::write(&path, text) {
                io.err(&format!("tailscale: write {}: {e}", path.display()));
            }
        }
        code
    };
    io.flush();
    code
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "linux".into())
}

/// `tailscaled [--state=FILE] [--socket=PATH] [--tun=NAME]`: records its pid, brings `tailscale0` back for a
/// node that is logged in and up (as tailscaled does at start), then sleeps until killed.
fn linux_daemon(args: &[String], io: &mut Io) -> i32 {
    let mut state = None;
    for a in args {
        if let Some(v) = a.strip_prefix("--state=") {
            state = Some(v.to_string());
        } else if a.starts_with("--socket=") || a.starts_with("--tun=") || a == "--verbose=1" {
        } else {
            return fail(
                io,
                &format!("tailscaled: flag provided but not defined: {a}"),
            );
        }
    }
    let dir = linux_state_dir(state.as_deref());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(io, &format!("tailscaled: {}: {e}", dir.display()));
    }
    let node: Node = std::fs::read_to_string(dir.join("node.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut host = LinuxHost { dir: dir.clone() };
    if node.running() {
        if let Err(e) = host.iface_up(ip_of(&node.hostname)) {
            return fail(io, &e);
        }
    }
    if let Err(e) = std::fs::write(dir.join("tailscaled.pid"), std::process::id().to_string()) {
        return fail(io, &format!("tailscaled: {e}"));
    }
    io.flush();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// The simulated FreeBSD host (or one of its jails).
struct BsdHost<'a> {
    cx: &'a mut crate::state::Ctx,
}

impl Host for BsdHost<'_> {
    fn daemon(&self) -> Result<(), String> {
        match self.cx.service_pid("tailscaled") {
            Some(_) => Ok(()),
            None => Err(format!(
                "failed to connect to local tailscaled; it doesn't appear to be running ({})",
                self.start_hint()
            )),
        }
    }

    fn iface_up(&mut self, ip: Ipv4Addr) -> Result<(), String> {
        if let Some(jail) = self.cx.jail.clone() {
            tun_allowed(self.cx, &jail)?;
        }
        let scope = self.cx.jail_vnet_scope();
        if let Some(other) = self.cx.st.interfaces.get(INTERFACE) {
            if other.vnet != scope {
                return Err(format!(
                    "tailscaled: CreateTUN(\"{INTERFACE}\"): the simulation keeps one {INTERFACE} per host (in use by {})",
                    other.vnet.as_deref().unwrap_or("the host")
                ));
            }
        } else {
            let mac = self.cx.new_mac("00");
            let mut iface = crate::state::Iface::new(crate::state::IfKind::Tun, 0, mac);
            iface.mtu = 1280;
            iface.groups = vec!["tun".into()];
            iface.vnet = scope;
            self.cx.st.interfaces.insert(INTERFACE.into(), iface);
        }
        let iface = self
            .cx
            .st
            .interfaces
            .get_mut(INTERFACE)
            .ok_or("tailscaled: tailscale0 vanished")?;
        iface.up = true;
        iface.inet = vec![crate::state::Inet {
            addr: ip,
            prefix: 32,
        }];
        Ok(())
    }

    fn iface_down(&mut self) -> Result<(), String> {
        let scope = self.cx.jail_vnet_scope();
        if self
            .cx
            .st
            .interfaces
            .get(INTERFACE)
            .is_some_and(|i| i.vnet == scope)
        {
            self.cx.st.interfaces.remove(INTERFACE);
        }
        Ok(())
    }

    fn os(&self) -> &'static str {
        "freebsd"
    }

    fn start_hint(&self) -> &'static str {
        "service tailscaled start ?"
    }
}

/// A jail may create a tun interface when it has `allow.tun` and its devfs ruleset unhides `tun*` (seed 000).
fn tun_allowed(cx: &crate::state::Ctx, jail: &str) -> Result<(), String> {
    let params = cx
        .st
        .jails
        .get(jail)
        .map(|j| j.params.clone())
        .unwrap_or_default();
    if !params.contains_key("allow.tun") {
        return Err("tailscaled: CreateTUN(\"tailscale0\") failed; /dev/tun: Operation not permitted (the jail lacks allow.tun)".into());
    }
    let ruleset = params.get("devfs_ruleset").cloned().unwrap_or_default();
    let rules = std::fs::read_to_string(cx.host_path("/etc/devfs.rules")).unwrap_or_default();
    let mut inside = false;
    let mut unhides = false;
    for line in rules.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            inside = l.trim_end_matches(']').rsplit('=').next() == Some(ruleset.as_str());
        } else if inside && l.contains("'tun*'") && l.ends_with("unhide") {
            unhides = true;
        }
    }
    if unhides {
        Ok(())
    } else {
        Err(format!("tailscaled: CreateTUN(\"tailscale0\") failed; /dev/tun: No such file or directory (devfs ruleset {ruleset} hides tun*)"))
    }
}

/// `tailscale ARGS…` on the simulated host or, through `jexec`, in a jail (`cx.jail`).
pub fn run(cx: &mut crate::state::Ctx, args: &[String], io: &mut Io) -> i32 {
    let scope = cx.scope();
    let mut node = cx
        .st
        .tailscale
        .get(&scope)
        .cloned()
        .unwrap_or_else(|| Node {
            hostname: match &cx.jail {
                Some(j) => j.clone(),
                None => "fakebsd".into(),
            },
            ..Default::default()
        });
    let code = cli(&mut node, &mut BsdHost { cx }, args, io);
    cx.st.tailscale.insert(scope, node);
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(bool, Option<Ipv4Addr>);

    impl Host for Mem {
        fn daemon(&self) -> Result<(), String> {
            if self.0 {
                Ok(())
            } else {
                Err("failed to connect to local tailscaled; it doesn't appear to be running".into())
            }
        }
        fn iface_up(&mut self, ip: Ipv4Addr) -> Result<(), String> {
            self.1 = Some(ip);
            Ok(())
        }
        fn iface_down(&mut self) -> Result<(), String> {
            self.1 = None;
            Ok(())
        }
        fn os(&self) -> &'static str {
            "linux"
        }
        fn start_hint(&self) -> &'static str {
            ""
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn login_routes_and_the_up_rule() {
        let mut node = Node {
            hostname: "h".into(),
            ..Default::default()
        };
        let mut host = Mem(false, None);
        let mut io = Io::default();
        assert_eq!(
            cli(&mut node, &mut host, &words("status --json"), &mut io),
            1
        );
        host.0 = true;
        let mut io = Io::default();
        assert_eq!(
            cli(&mut node, &mut host, &words("status --json"), &mut io),
            0
        );
        let v: serde_json::Value = serde_json::from_str(&io.out).unwrap();
        assert_eq!(v["BackendState"], "NeedsLogin");
        assert!(v["TailscaleIPs"].is_null());
        let mut io = Io::default();
        assert_eq!(cli(&mut node, &mut host, &words("up"), &mut io), 0);
        assert_eq!(host.1, Some(ip_of("h")));
        let mut io = Io::default();
        assert_eq!(
            cli(
                &mut node,
                &mut host,
                &words("set --advertise-routes=10.0.1.5/24"),
                &mut io
            ),
            1
        );
        assert!(io.err.contains("expected 10.0.1.0/24"), "{}", io.err);
        let mut io = Io::default();
        assert_eq!(
            cli(
                &mut node,
                &mut host,
                &words("set --advertise-routes=10.0.1.0/24"),
                &mut io
            ),
            0
        );
        let mut io = Io::default();
        assert_eq!(cli(&mut node, &mut host, &words("up"), &mut io), 1);
        assert!(io.err.contains("requires mentioning all"), "{}", io.err);
        let mut io = Io::default();
        cli(&mut node, &mut host, &words("status --json"), &mut io);
        let v: serde_json::Value = serde_json::from_str(&io.out).unwrap();
        assert_eq!(v["BackendState"], "Running");
        assert_eq!(
            v["Self"]["PrimaryRoutes"],
            serde_json::json!(["10.0.1.0/24"])
        );
        let mut io = Io::default();
        cli(&mut node, &mut host, &words("debug prefs"), &mut io);
        let v: serde_json::Value = serde_json::from_str(&io.out).unwrap();
        assert_eq!(v["AdvertiseRoutes"], serde_json::json!(["10.0.1.0/24"]));
    }
}
