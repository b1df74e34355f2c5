//! The host network: the bridge and its gateway address, IPv4 forwarding, NAT (nftables on Linux, pf on
//! FreeBSD), and pf itself.

use warden_core::render::nftables::TABLE;

use crate::report::Check;
use crate::{said, BackendKind, Ctx};

/// `network.bridge`: the bridge exists, is up (Linux), and carries exactly `<gateway>/24`.
pub fn bridge(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let br = &layout.bridge;
    let want = format!("{}/24", layout.gateway);
    let expected = format!("{br} up with {want}");
    let remedy = ctx.setup("host");
    let argv: Vec<&str> = match ctx.opts.backend {
        BackendKind::Linux => vec!["ip", "-j", "addr", "show", "dev", br],
        BackendKind::Bastille => vec!["ifconfig", "-f", "inet:cidr", br],
    };
    let out = match ctx.run(&argv) {
        Ok(out) => out,
        Err(e) => {
            return vec![Check::fail(
                "network.bridge",
                expected,
                e.to_string(),
                remedy,
            )]
        }
    };
    if !out.ok() {
        let seen = format!("{br} does not exist ({} → {})", argv.join(" "), said(&out));
        return vec![Check::fail("network.bridge", expected, seen, remedy)];
    }
    let (up, addrs) = match ctx.opts.backend {
        BackendKind::Linux => match super::linux::parse_ip_addr_json(&out.stdout) {
            Ok(parsed) => parsed,
            Err(why) => {
                let seen = format!("cannot read `{}`: {why}", argv.join(" "));
                return vec![Check::fail("network.bridge", expected, seen, remedy)];
            }
        },
        BackendKind::Bastille => {
            let up = out
                .stdout
                .lines()
                .next()
                .is_some_and(|l| l.contains("<UP") || l.contains(",UP"));
            (up, warden_freebsd::parse::ifconfig::inet_addrs(&out.stdout))
        }
    };
    let shown = if addrs.is_empty() {
        "no IPv4 address".to_string()
    } else {
        addrs.join(", ")
    };
    let seen = format!("{br} {} with {shown}", if up { "up" } else { "down" });
    vec![Check::verdict(
        "network.bridge",
        up && addrs == [want.clone()],
        expected,
        seen,
        remedy,
    )]
}

/// `network.forwarding`: IPv4 forwarding is on.
pub fn forwarding(ctx: &Ctx) -> Vec<Check> {
    let remedy = ctx.setup("host");
    let expected = "IPv4 forwarding on (1)";
    let value = match ctx.opts.backend {
        // Per network namespace; read from /proc of this process, never through the simulated root.
        BackendKind::Linux => std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .map(|s| s.trim().to_string())
            .map_err(|e| format!("cannot read /proc/sys/net/ipv4/ip_forward: {e}")),
        BackendKind::Bastille => match ctx.run(&["sysctl", "-n", "net.inet.ip.forwarding"]) {
            Ok(out) if out.ok() => Ok(out.stdout.trim().to_string()),
            Ok(out) => Err(format!("sysctl -n net.inet.ip.forwarding → {}", said(&out))),
            Err(e) => Err(e.to_string()),
        },
    };
    let check = match value {
        Ok(v) => Check::verdict(
            "network.forwarding",
            v == "1",
            expected,
            format!("forwarding = {v}"),
            remedy,
        ),
        Err(e) => Check::fail("network.forwarding", expected, e, remedy),
    };
    vec![check]
}

/// `network.pf` (FreeBSD): pf is enabled.
pub fn pf(ctx: &Ctx) -> Vec<Check> {
    let remedy = ctx.setup("host");
    let expected = "pf enabled (pfctl -si: Status: Enabled)";
    let check = match ctx.run(&["pfctl", "-si"]) {
        Ok(out) if out.ok() => {
            let status = out
                .stdout
                .lines()
                .find(|l| l.starts_with("Status:"))
                .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| "no Status line".into());
            let on = warden_freebsd::parse::pfctl::enabled(&out.stdout);
            Check::verdict("network.pf", on, expected, status, remedy)
        }
        Ok(out) => Check::fail(
            "network.pf",
            expected,
            format!("pfctl -si → {}", said(&out)),
            remedy,
        ),
        Err(e) => Check::fail("network.pf", expected, e.to_string(), remedy),
    };
    vec![check]
}

/// `network.paths` (Linux): the `bridge warden` table lets only the layout's service paths cross between two
/// ports of the bridge (jail ports are not isolated, so without it jails and workers would reach every jail).
pub fn paths(ctx: &Ctx) -> Vec<Check> {
    const DROP: &str = "ether type != arp drop";
    let layout = ctx.layout();
    let remedy = ctx.setup("host");
    let wanted: Vec<String> = layout
        .service_paths()
        .iter()
        .map(|p| format!("ip daddr {} tcp dport {} accept", p.server, p.port))
        .collect();
    let expected = format!(
        "nftables table bridge {TABLE}: {} service path(s), then `{DROP}`",
        wanted.len()
    );
    let check = match ctx.run(&["nft", "list", "table", "bridge", TABLE]) {
        Ok(out) if out.ok() => {
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|w| !out.stdout.contains(w.as_str()))
                .collect();
            if !out.stdout.contains(DROP) {
                Check::fail(
                    "network.paths",
                    expected,
                    format!(
                        "table bridge {TABLE} does not end with `{DROP}`: any jail is reachable"
                    ),
                    remedy,
                )
            } else if let Some(m) = missing.first() {
                Check::fail(
                    "network.paths",
                    expected,
                    format!("table bridge {TABLE} lacks `{m}`"),
                    remedy,
                )
            } else {
                Check::ok(
                    "network.paths",
                    expected,
                    format!("{} service path(s), everything else dropped", wanted.len()),
                )
            }
        }
        Ok(out) => Check::fail(
            "network.paths",
            expected,
            format!("table bridge {TABLE} is not loaded (nft → {})", said(&out)),
            remedy,
        ),
        Err(e) => Check::fail("network.paths", expected, e.to_string(), remedy),
    };
    vec![check.depends(&["network.bridge"])]
}

/// `network.nat`: the subnet is masqueraded (nftables `inet warden` on Linux, a pf `nat` rule on FreeBSD).
pub fn nat(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let cidr = layout.cidr();
    let remedy = ctx.setup("host");
    match ctx.opts.backend {
        BackendKind::Linux => {
            let expected =
                format!("nftables table inet {TABLE} with `ip saddr {cidr} … masquerade`");
            let check = match ctx.run(&["nft", "list", "table", "inet", TABLE]) {
                Ok(out) if out.ok() => {
                    let rule = out
                        .stdout
                        .lines()
                        .map(str::trim)
                        .find(|l| l.contains("masquerade") && l.contains(&cidr));
                    match rule {
                        Some(r) => Check::ok("network.nat", expected, r.to_string()),
                        None => Check::fail(
                            "network.nat",
                            expected,
                            format!(
                                "table inet {TABLE} is loaded but has no masquerade for {cidr}"
                            ),
                            remedy,
                        ),
                    }
                }
                Ok(out) => Check::fail(
                    "network.nat",
                    expected,
                    format!("table inet {TABLE} is not loaded (nft → {})", said(&out)),
                    remedy,
                ),
                Err(e) => Check::fail("network.nat", expected, e.to_string(), remedy),
            };
            vec![check]
        }
        BackendKind::Bastille => {
            let expected = format!("a pf nat rule for {cidr} on {}", layout.ext_if);
            let check = match ctx.run(&["pfctl", "-sn"]) {
                Ok(out) if out.ok() => {
                    let rule = out
                        .stdout
                        .lines()
                        .map(str::trim)
                        .find(|l| l.starts_with("nat ") && l.contains(&cidr));
                    match rule {
                        Some(r) => Check::ok("network.nat", expected, r.to_string()),
                        None => Check::fail(
                            "network.nat",
                            expected,
                            format!("no nat rule for {cidr} in pfctl -sn"),
                            remedy,
                        ),
                    }
                }
                Ok(out) => Check::fail(
                    "network.nat",
                    expected,
                    format!("pfctl -sn → {}", said(&out)),
                    remedy,
                ),
                Err(e) => Check::fail("network.nat", expected, e.to_string(), remedy),
            };
            vec![check.depends(&["network.pf"])]
        }
    }
}
