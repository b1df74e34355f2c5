//! Tailscale, per `tailscale.mode` (`off`: no check):
//! - `tailscale.up` (`host`, `subnet`: the host's node; `jail`: the jail's): tailscaled answers, is logged in
//!   (`BackendState` `Running`), and `tailscale0` carries the node's IPv4 address;
//! - `tailscale.listen` (`host`): the control plane answers `/healthz` on that address;
//! - `tailscale.routes` (`subnet`): the Warden /24 is advertised, approved (the node is its primary router),
//!   forwarding is on, and the firewall lets `tailscale0` into the subnet;
//! - `tailscale.jail` (`jail`): the jail can open a tun device (FreeBSD: `allow.tun` and devfs ruleset 14 in
//!   its jail.conf, the ruleset in `/etc/devfs.rules`; Linux: `/dev/net/tun` inside the running jail).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use warden_core::tailscale::{self, Mode, Node, INTERFACE};

use crate::report::Check;
use crate::runner::Task;
use crate::{said, BackendKind, Ctx};

/// The tasks of the layout's mode, in report order.
pub fn tasks(ctx: &Arc<Ctx>) -> Vec<Task> {
    let mode = ctx.layout().tailscale.mode;
    let task = |name: &str, f: fn(&Ctx) -> Vec<Check>| {
        let c = Arc::clone(ctx);
        Task::new(name, move || f(&c))
    };
    match mode {
        Mode::Off => Vec::new(),
        Mode::Host => vec![
            task("tailscale.up", up),
            task("tailscale.listen", listen).depends(&["tailscale.up"]),
        ],
        Mode::Subnet => vec![
            task("tailscale.up", up),
            task("tailscale.routes", routes).depends(&["tailscale.up"]),
        ],
        Mode::Jail => vec![
            task("tailscale.jail", jail),
            task("tailscale.up", up).depends(&["tailscale.jail"]),
        ],
    }
}

/// The command prefix that runs `tailscale` where the mode's node is: nothing (the host), or inside the jail.
fn prefix(ctx: &Ctx) -> Vec<String> {
    let Some(jail) = ctx.layout().tailscale.jail() else {
        return Vec::new();
    };
    match ctx.opts.backend {
        BackendKind::Bastille => ["jexec", "-l", "-U", "root", jail]
            .map(str::to_string)
            .to_vec(),
        BackendKind::Linux => {
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "warden".into());
            vec![
                exe,
                "--state-dir".into(),
                ctx.opts.state_dir.display().to_string(),
                "jail".into(),
                "exec".into(),
                "--root".into(),
                jail.to_string(),
                "--".into(),
            ]
        }
    }
}

/// The mode's node, read through the runner.
fn node(ctx: &Ctx) -> Result<Node, String> {
    let prefix = prefix(ctx);
    let words: Vec<&str> = prefix.iter().map(String::as_str).collect();
    warden_host::tailscale::observe(ctx.runner.as_ref(), &words)
        .map_err(|e| e.to_string().lines().next().unwrap_or_default().to_string())
}

/// How the operator brings the mode's node up.
fn up_fix(ctx: &Ctx, node: &Node) -> String {
    let (start, login) = match (ctx.layout().tailscale.jail(), ctx.opts.backend) {
        (Some(j), BackendKind::Bastille) => {
            (ctx.setup("tailscale"), format!("jexec -l {j} tailscale up"))
        }
        (Some(j), BackendKind::Linux) => (
            ctx.setup("tailscale"),
            format!("{} jail exec --root {j} -- tailscale up", ctx.opts.warden),
        ),
        (None, BackendKind::Bastille) => (ctx.setup("tailscale"), "tailscale up".to_string()),
        (None, BackendKind::Linux) => (
            "systemctl enable --now tailscaled".to_string(),
            "tailscale up".to_string(),
        ),
    };
    if node.status.is_none() {
        format!("{start}; then {login} (log in with the URL it prints)")
    } else {
        format!("{login} (log in with the URL it prints)")
    }
}

/// `tailscale.up`: the node is logged in and `tailscale0` carries its IPv4 address.
pub fn up(ctx: &Ctx) -> Vec<Check> {
    let where_ = match ctx.layout().tailscale.jail() {
        Some(j) => format!("in {j}"),
        None => "on the host".into(),
    };
    let expected = format!(
        "tailscaled {where_} logged in (BackendState Running), {INTERFACE} up with its 100.x address"
    );
    let node = match node(ctx) {
        Ok(n) => n,
        Err(e) => return vec![Check::fail("tailscale.up", expected, e, "")],
    };
    let Some(status) = node.status.as_ref().filter(|_| node.running()) else {
        let fix = up_fix(ctx, &node);
        return vec![Check::fail(
            "tailscale.up",
            expected,
            node.state_text(),
            fix,
        )];
    };
    let Some(ip) = status.ipv4() else {
        let seen = "Running, but the node has no IPv4 address".to_string();
        return vec![Check::fail("tailscale.up", expected, seen, "tailscale up")];
    };
    let addrs = match interface_addrs(ctx) {
        Ok(a) => a,
        Err(seen) => {
            let fix = up_fix(ctx, &Node::default());
            return vec![Check::fail("tailscale.up", expected, seen, fix)];
        }
    };
    let tailnet = status
        .current_tailnet
        .as_ref()
        .map(|t| format!(" in tailnet {}", t.name))
        .unwrap_or_default();
    let seen = format!(
        "Running{tailnet} as {ip}; {INTERFACE} has {}",
        addrs.join(", ")
    );
    let has = addrs
        .iter()
        .any(|a| a.split('/').next() == Some(&ip.to_string()));
    vec![Check::verdict(
        "tailscale.up",
        has,
        expected,
        seen,
        format!("restart tailscaled ({})", up_fix(ctx, &Node::default())),
    )]
}

/// `tailscale0`'s IPv4 addresses (CIDR), where the mode's node is.
fn interface_addrs(ctx: &Ctx) -> Result<Vec<String>, String> {
    let mut argv = prefix(ctx);
    let show: &[&str] = match ctx.opts.backend {
        BackendKind::Linux => &["ip", "-j", "addr", "show", "dev", INTERFACE],
        BackendKind::Bastille => &["ifconfig", "-f", "inet:cidr", INTERFACE],
    };
    argv.extend(show.iter().map(|s| s.to_string()));
    let words: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ctx.run(&words).map_err(|e| e.to_string())?;
    if !out.ok() {
        return Err(format!("{INTERFACE} does not exist ({})", said(&out)));
    }
    Ok(match ctx.opts.backend {
        BackendKind::Linux => super::linux::parse_ip_addr_json(&out.stdout)?.1,
        BackendKind::Bastille => warden_freebsd::parse::ifconfig::inet_addrs(&out.stdout),
    })
}

/// `tailscale.listen` (`host`): `GET /healthz` on the node's address answers 200.
pub fn listen(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let expected = format!(
        "the control plane answers on the Tailscale address, port {}",
        layout.port
    );
    let remedy = format!(
        "{} serve (tailscale.mode = host adds the Tailscale address)",
        ctx.opts.warden
    );
    let ip: Option<Ipv4Addr> = node(ctx).ok().and_then(|n| n.status).and_then(|s| s.ipv4());
    let Some(ip) = ip else {
        let seen = "the node has no Tailscale IPv4 address".to_string();
        return vec![Check::fail("tailscale.listen", expected, seen, remedy)];
    };
    if ctx.simulated() {
        return vec![Check::skip(
            "tailscale.listen",
            expected,
            format!("simulated host: nothing answers on {ip}"),
        )];
    }
    let addr = SocketAddr::from((ip, layout.port));
    let check = match super::control_plane::http_get(addr, "/healthz", Duration::from_millis(800)) {
        Ok(line) if line.split_whitespace().nth(1) == Some("200") => {
            Check::ok("tailscale.listen", expected, format!("{addr}: {line}"))
        }
        Ok(line) => Check::fail(
            "tailscale.listen",
            expected,
            format!("{addr}: {line}"),
            remedy,
        ),
        Err(e) => Check::fail("tailscale.listen", expected, format!("{addr}: {e}"), remedy),
    };
    vec![check]
}

/// `tailscale.routes` (`subnet`): advertised, approved, forwarded and let through.
pub fn routes(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let cidr = layout.cidr();
    let expected = format!(
        "{cidr} advertised and approved (this node its primary router), forwarding on, {INTERFACE} let into {cidr}"
    );
    let setup = ctx.setup("tailscale");
    let node = match node(ctx) {
        Ok(n) => n,
        Err(e) => return vec![Check::fail("tailscale.routes", expected, e, setup)],
    };
    if !node.advertised().contains(&cidr) {
        let seen = format!("advertised: [{}]", node.advertised().join(", "));
        return vec![Check::fail("tailscale.routes", expected, seen, setup)];
    }
    if !node.status.as_ref().is_some_and(|s| s.routes(&cidr)) {
        let seen = format!("{cidr} advertised but not approved (not among Self.PrimaryRoutes)");
        let fix = format!("approve {cidr} for this machine in the Tailscale admin console (Machines → Edit route settings), or with an autoApprovers rule in the tailnet policy");
        return vec![Check::fail("tailscale.routes", expected, seen, fix)];
    }
    let forwarding = super::network::forwarding(ctx);
    if let Some(c) = forwarding.iter().find(|c| c.status != crate::Status::Ok) {
        let seen = format!("{cidr} approved, but {}", c.seen);
        return vec![Check::fail(
            "tailscale.routes",
            expected,
            seen,
            ctx.setup("host"),
        )];
    }
    let (argv, rule): (&[&str], String) = match ctx.opts.backend {
        BackendKind::Linux => (
            &[
                "nft",
                "list",
                "chain",
                "inet",
                warden_core::render::nftables::TABLE,
                "forward",
            ],
            warden_core::render::tailscale::nft_forward_rule(layout).unwrap_or_default(),
        ),
        BackendKind::Bastille => (&["pfctl", "-sr"], format!("pass quick on {INTERFACE}")),
    };
    let check = match ctx.run(argv) {
        Ok(out) if out.ok() && out.stdout.contains(&rule) => Check::ok(
            "tailscale.routes",
            expected,
            format!("{cidr} advertised and approved, forwarding on, `{rule}` loaded"),
        ),
        Ok(out) if out.ok() => Check::fail(
            "tailscale.routes",
            expected,
            format!("the loaded firewall lacks `{rule}`"),
            ctx.setup("host"),
        ),
        Ok(out) => Check::fail(
            "tailscale.routes",
            expected,
            format!("{} → {}", argv.join(" "), said(&out)),
            ctx.setup("host"),
        ),
        Err(e) => Check::fail(
            "tailscale.routes",
            expected,
            e.to_string(),
            ctx.setup("host"),
        ),
    };
    vec![check]
}

/// `tailscale.jail` (`jail`): the jail can open a tun device.
pub fn jail(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(jail) = layout.tailscale.jail() else {
        return Vec::new();
    };
    let fix = ctx.setup("tailscale");
    match ctx.opts.backend {
        BackendKind::Bastille => {
            let expected = format!(
                "{jail}'s jail.conf has allow.tun and devfs_ruleset = {}; /etc/devfs.rules has that ruleset with tun*",
                tailscale::DEVFS_RULESET
            );
            let path = warden_core::tailscale_plan::bastille_jail_conf(layout, jail);
            let conf = ctx
                .runner
                .read_file(&path)
                .ok()
                .flatten()
                .unwrap_or_default();
            let rules = ctx
                .runner
                .read_file(warden_core::bastille_plan::DEVFS_RULES)
                .ok()
                .flatten()
                .unwrap_or_default();
            let missing: Vec<String> = warden_core::tailscale_plan::jail_conf_lines()
                .into_iter()
                .filter(|l| !conf.lines().any(|c| c == l))
                .map(|l| l.trim().to_string())
                .collect();
            let check = if !missing.is_empty() {
                Check::fail(
                    "tailscale.jail",
                    expected,
                    format!("{path} lacks {}", missing.join(" and ")),
                    fix,
                )
            } else if !tailscale::has_devfs_rules(&rules) {
                Check::fail(
                    "tailscale.jail",
                    expected,
                    "/etc/devfs.rules has no warden_tailscale ruleset",
                    fix,
                )
            } else {
                Check::ok(
                    "tailscale.jail",
                    expected,
                    "allow.tun; devfs ruleset 14 unhides tun*",
                )
            };
            vec![check]
        }
        BackendKind::Linux => {
            let expected = format!("/dev/net/tun is a character device inside {jail}");
            let mut argv = prefix(ctx);
            argv.extend(["test", "-c", "/dev/net/tun"].map(str::to_string));
            let words: Vec<&str> = argv.iter().map(String::as_str).collect();
            let check = match ctx.run(&words) {
                Ok(out) if out.ok() => Check::ok("tailscale.jail", expected, "present"),
                Ok(out) => Check::fail(
                    "tailscale.jail",
                    expected,
                    format!("not in the running jail ({})", said(&out)),
                    fix,
                ),
                Err(e) => Check::fail("tailscale.jail", expected, e.to_string(), fix),
            };
            vec![check]
        }
    }
}
