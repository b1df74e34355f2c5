//! `expose.<port>-<proto>`: one task per `[[expose]]` entry. `.rule`: the firewall redirects the public port
//! (Linux: the DNAT and its forward accept in `nft list table inet warden`, on an uplink that exists; FreeBSD:
//! the `rdr` in `pfctl -P -s nat`); entries through an existing proxy have no rule of Warden's. `.target`: the
//! slot accepts a TCP connection on its port from this host (skipped on a simulated host, where nothing
//! listens, and for udp, which has no connection to open).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use warden_core::layout::{Exposure, Proto, Via};
use warden_core::render::expose::{nft_dnat_line, nft_forward_line, pf_nat_rule, pf_rdr_line};
use warden_core::render::nftables::TABLE;

use crate::report::Check;
use crate::{said, BackendKind, Ctx};

/// The exposures to check, by their index in the layout.
pub fn indices(ctx: &Ctx) -> Vec<usize> {
    (0..ctx.layout().exposures.len()).collect()
}

/// The checks of exposure `index`.
pub fn check(ctx: &Ctx, index: usize) -> Vec<Check> {
    let Some(e) = ctx.layout().exposures.get(index) else {
        return Vec::new();
    };
    let name = e.check_name();
    let mut out = Vec::new();
    if e.via == Via::Firewall {
        let rule = match ctx.opts.backend {
            BackendKind::Linux => nft_rule(ctx, e, &format!("{name}.rule")),
            BackendKind::Bastille => {
                pf_rule(ctx, e, &format!("{name}.rule")).depends(&["network.pf"])
            }
        };
        out.push(rule);
    }
    out.push(target(ctx, e, &format!("{name}.target")).depends(&["network.bridge"]));
    out
}

/// Linux: the uplink exists, and table inet warden holds the exposure's DNAT and forward accept.
fn nft_rule(ctx: &Ctx, e: &Exposure, name: &str) -> Check {
    let layout = ctx.layout();
    let (dnat, forward) = (nft_dnat_line(layout, e), nft_forward_line(layout, e));
    let expected = format!("table inet {TABLE}: `{dnat}` and `{forward}`");
    let remedy = ctx.setup("host");
    let uplink = &layout.ext_if;
    match ctx.run(&["ip", "link", "show", "dev", uplink]) {
        Ok(out) if out.ok() => {}
        Ok(out) => {
            return Check::fail(
                name,
                expected,
                format!("the uplink {uplink} does not exist ({})", said(&out)),
                "set network.ext_if (or WARDEN_EXT_IF) to this host's uplink (`ip -br link`), then "
                    .to_string() + &remedy,
            )
        }
        Err(e) => return Check::fail(name, expected, e.to_string(), remedy),
    }
    match ctx.run(&["nft", "list", "table", "inet", TABLE]) {
        Ok(out) if out.ok() => {
            let has = |line: &str| out.stdout.lines().any(|l| l.trim() == line);
            let missing: Vec<&String> = [&dnat, &forward].into_iter().filter(|l| !has(l)).collect();
            match missing.first() {
                None => Check::ok(
                    name,
                    expected,
                    format!("DNAT and forward accept on {uplink}"),
                ),
                Some(m) => Check::fail(
                    name,
                    expected,
                    format!("table inet {TABLE} lacks `{m}`"),
                    remedy,
                ),
            }
        }
        Ok(out) => Check::fail(
            name,
            expected,
            format!("table inet {TABLE} is not loaded (nft → {})", said(&out)),
            remedy,
        ),
        Err(e) => Check::fail(name, expected, e.to_string(), remedy),
    }
}

/// FreeBSD: the loaded translation rules redirect the public port to the slot.
fn pf_rule(ctx: &Ctx, e: &Exposure, name: &str) -> Check {
    let ext_if = &ctx.layout().ext_if;
    let expected = format!(
        "pfctl -P -s nat: {}",
        pf_rdr_line(e).replace("$ext_if", ext_if)
    );
    let remedy = ctx.setup("host");
    match ctx.run(&["pfctl", "-P", "-s", "nat"]) {
        Ok(out) if out.ok() => match pf_nat_rule(&out.stdout, ext_if, e, true) {
            Some(l) => Check::ok(name, expected, l.to_string()),
            None => Check::fail(
                name,
                expected,
                format!("no rdr of {} in pfctl -s nat", e.describe()),
                remedy,
            ),
        },
        Ok(out) => Check::fail(
            name,
            expected,
            format!("pfctl -s nat → {}", said(&out)),
            remedy,
        ),
        Err(e) => Check::fail(name, expected, e.to_string(), remedy),
    }
}

/// The slot accepts a TCP connection on the target port.
fn target(ctx: &Ctx, e: &Exposure, name: &str) -> Check {
    let addr = SocketAddr::from((e.target, e.target_port));
    let expected = format!("{} accepts TCP connections on {addr}", e.role.name());
    if e.proto == Proto::Udp {
        return Check::skip(name, expected, "udp: no connection to open; not probed");
    }
    if let Some(why) = crate::checks::db::no_service_probe(ctx, "server") {
        return Check::skip(name, expected, why);
    }
    let limit = ctx.opts.timeout.min(Duration::from_secs(2));
    match TcpStream::connect_timeout(&addr, limit) {
        Ok(_) => Check::ok(name, expected, format!("{addr} accepted")),
        Err(err) => Check::fail(
            name,
            expected,
            format!("connect to {addr}: {err}"),
            ctx.setup(e.role.name()),
        ),
    }
}
