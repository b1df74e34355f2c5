//! Persistent service jails: each exists, runs, has its slot's address and hostname, reaches the gateway and
//! resolves names; patch-level drift between the host and each jail, and between thin jails and their release
//! (seeds 002 and 004: updating the host patches no jail userland; thin jails follow the release tree).

use warden_core::layout::{Service, Shape};
use warden_freebsd::datasets;
use warden_host::Output;

use crate::report::{Check, Status};
use crate::{said, Ctx};

const SIMULATED: &str = "simulated host: no traffic flows between simulated jails";

fn jexec(ctx: &Ctx, jail: &str, cmd: &[&str]) -> Result<Output, String> {
    let mut argv = vec!["jexec", "-l", "-U", "root", jail];
    argv.extend_from_slice(cmd);
    ctx.run(&argv).map_err(|e| e.to_string())
}

/// The `USERLAND_VERSION="…"` of a `bin/freebsd-version` script (how FreeBSD ships the userland version).
pub fn userland_version(script: &str) -> Option<String> {
    script.lines().find_map(|l| {
        let v = l.trim().strip_prefix("USERLAND_VERSION=")?;
        Some(v.trim_matches('"').to_string())
    })
}

/// `15.0-RELEASE-p3` → (`15.0-RELEASE`, 3); no `-pN` is patch 0.
pub fn patch_level(version: &str) -> (String, u32) {
    match version.rsplit_once("-p") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (base.to_string(), n.parse().unwrap_or(0))
        }
        _ => (version.to_string(), 0),
    }
}

/// The `osrelease` parameter of a jail.conf (`osrelease = "15.0-RELEASE-p2";` or unquoted).
pub fn conf_osrelease(conf: &str) -> Option<String> {
    conf.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("osrelease")?;
        let v = rest.trim_start().strip_prefix('=')?;
        Some(
            v.trim()
                .trim_end_matches(';')
                .trim()
                .trim_matches('"')
                .trim_matches('\'')
                .to_string(),
        )
    })
}

/// Every check of one service jail.
pub fn bastille_jail(ctx: &Ctx, jail: &str) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(svc) = layout.jails().find(|s| s.jail == jail) else {
        return vec![Check::fail(
            format!("jail.{jail}"),
            "a jail of the layout",
            format!("{jail} is not in the layout"),
            "",
        )];
    };
    let n = |what: &str| format!("jail.{jail}.{what}");
    let conf_path = format!("{}/{jail}/jail.conf", datasets::jails_dir(layout));
    let conf = match ctx.runner.read_file(&conf_path) {
        Ok(c) => c,
        Err(e) => {
            return vec![Check::fail(
                n("exists"),
                conf_path.clone(),
                e.to_string(),
                ctx.setup("jails"),
            )]
        }
    };
    let mut out = Vec::new();
    let Some(conf) = conf else {
        out.push(Check::fail(
            n("exists"),
            format!("{} jail {jail} ({conf_path})", svc.role.name()),
            format!("{conf_path} does not exist"),
            ctx.setup("jails"),
        ));
        return out;
    };
    out.push(Check::ok(
        n("exists"),
        format!("{} jail {jail}", svc.role.name()),
        conf_path.clone(),
    ));
    if svc.shape == Shape::Thin {
        out.push(release_drift(ctx, svc, &conf).depends(&[&n("exists")]));
    }
    let running = jail_running(ctx, jail, n("running"));
    let is_running = running.status == Status::Ok;
    out.push(running);
    let in_jail: [(&str, String); 5] = [
        ("addr", format!("{}/24 on the jail's interface", svc.addr)),
        ("hostname", format!("hostname {jail}")),
        ("gateway", format!("reaches the gateway {}", layout.gateway)),
        (
            "dns",
            format!("resolves {} to {} inside the jail", svc.fqdn, svc.addr),
        ),
        (
            "patch",
            "jail userland at the host's patch level (freebsd-version -u)".to_string(),
        ),
    ];
    if !is_running {
        let dep = n("running");
        for (what, expected) in in_jail {
            out.push(
                Check::skip(n(what), expected, format!("{jail} is not running"))
                    .depends(&[dep.as_str()]),
            );
        }
        return out;
    }
    let restart = format!("bastille restart {jail}");
    let [addr, hostname, gateway, dns, patch] = in_jail;
    out.push(addr_check(ctx, svc, &n(addr.0), addr.1, &restart));
    out.push(hostname_check(
        ctx,
        jail,
        n(hostname.0),
        hostname.1,
        &restart,
    ));
    // Gateway and resolver: real traffic, so only on a real host.
    if ctx.simulated() {
        out.push(Check::skip(n(gateway.0), gateway.1, SIMULATED));
        out.push(Check::skip(n(dns.0), dns.1, SIMULATED));
    } else {
        out.push(gateway_check(ctx, jail, n(gateway.0), gateway.1, &restart));
        out.push(dns_check(ctx, svc, n(dns.0), dns.1));
    }
    out.push(patch_check(ctx, svc, n(patch.0), patch.1));
    out
}

/// `jail.J.running`: `jls` knows the jail (ok means running).
fn jail_running(ctx: &Ctx, jail: &str, name: String) -> Check {
    let expected = format!("{jail} running (jls -j {jail})");
    match ctx.run(&["jls", "-j", jail, "jid"]) {
        Ok(o) if o.ok() => Check::ok(name, expected, format!("jid {}", o.stdout.trim())),
        Ok(o) => Check::fail(
            name,
            expected,
            format!("not running ({})", said(&o)),
            format!("bastille start {jail}"),
        ),
        Err(e) => Check::fail(
            name,
            expected,
            e.to_string(),
            format!("bastille start {jail}"),
        ),
    }
}

/// `jail.J.addr`: the slot's address on the jail's interface.
fn addr_check(ctx: &Ctx, svc: &Service, name: &str, expected: String, restart: &str) -> Check {
    let jail = svc.jail.as_str();
    let want = format!("{}/24", svc.addr);
    match jexec(ctx, jail, &["ifconfig", "-f", "inet:cidr"]) {
        Ok(o) if o.ok() => {
            let addrs = warden_freebsd::parse::ifconfig::inet_addrs(&o.stdout);
            if addrs.is_empty() && ctx.simulated() {
                simulated_addr(ctx, jail, &want, name, expected, restart)
            } else {
                let seen = if addrs.is_empty() {
                    "no IPv4 address".to_string()
                } else {
                    addrs.join(", ")
                };
                Check::verdict(name, addrs.contains(&want), expected, seen, restart)
            }
        }
        Ok(o) => Check::fail(
            name,
            expected,
            format!("jexec … ifconfig → {}", said(&o)),
            restart,
        ),
        Err(e) => Check::fail(name, expected, e, restart),
    }
}

/// `jail.J.hostname`: the jail's name, or a name under it.
fn hostname_check(ctx: &Ctx, jail: &str, name: String, expected: String, restart: &str) -> Check {
    match jexec(ctx, jail, &["hostname"]) {
        Ok(o) if o.ok() => {
            let h = o.stdout.trim().to_string();
            Check::verdict(
                name,
                h == jail || h.starts_with(&format!("{jail}.")),
                expected,
                format!("hostname {h}"),
                restart,
            )
        }
        Ok(o) => Check::fail(
            name,
            expected,
            format!("jexec … hostname → {}", said(&o)),
            restart,
        ),
        Err(e) => Check::fail(name, expected, e, restart),
    }
}

/// `jail.J.gateway`: one ping from the jail to the gateway.
fn gateway_check(ctx: &Ctx, jail: &str, name: String, expected: String, restart: &str) -> Check {
    let gw = ctx.layout().gateway.to_string();
    match jexec(ctx, jail, &["ping", "-c", "1", "-t", "2", &gw]) {
        Ok(o) => Check::verdict(
            name,
            o.ok(),
            expected,
            if o.ok() {
                "ping answered".into()
            } else {
                said(&o)
            },
            restart,
        ),
        Err(e) => Check::fail(name, expected, e, restart),
    }
    .depends(&["network.bridge"])
}

/// `jail.J.dns`: the jail resolves its own name to its slot's address.
fn dns_check(ctx: &Ctx, svc: &Service, name: String, expected: String) -> Check {
    match jexec(ctx, &svc.jail, &["host", "-W", "2", &svc.fqdn]) {
        Ok(o) if o.ok() => {
            let hit = o.stdout.lines().any(|l| {
                l.contains("has address") && l.trim_end().ends_with(&svc.addr.to_string())
            });
            let seen = o.stdout.lines().next().unwrap_or("").trim().to_string();
            Check::verdict(name, hit, expected, seen, ctx.setup("dns"))
        }
        Ok(o) => Check::fail(
            name,
            expected,
            format!("host {} → {}", svc.fqdn, said(&o)),
            ctx.setup("dns"),
        ),
        Err(e) => Check::fail(name, expected, e, ctx.setup("dns")),
    }
    .depends(&["dns.service", "dns.resolve.gateway"])
}

/// `jail.J.patch`: host userland vs jail userland. A difference is expected right after a host update, so it is a
/// warning naming the update that closes it.
fn patch_check(ctx: &Ctx, svc: &Service, name: String, expected: String) -> Check {
    let jail = svc.jail.as_str();
    let host_v = ctx
        .run(&["freebsd-version", "-ku"])
        .map_err(|e| e.to_string());
    let jail_v = jexec(ctx, jail, &["freebsd-version", "-u"]);
    let update = match svc.shape {
        Shape::Thick => format!("bastille update {jail}"),
        _ => format!(
            "bastille update {} && bastille restart {jail}",
            ctx.layout().release
        ),
    };
    match (host_v, jail_v) {
        (Ok(h), Ok(j)) if h.ok() && j.ok() => {
            // -ku prints the kernel then the userland; a simulated host may print one line.
            let host_u = h
                .stdout
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or("")
                .to_string();
            let jail_u = j.stdout.trim().to_string();
            let seen = format!("host {host_u}, jail {jail_u}");
            if host_u == jail_u {
                Check::ok(name, expected, seen)
            } else if patch_level(&jail_u) > patch_level(&host_u) {
                // The jail is ahead: the host is the one to update (pkgbase, seed 002).
                Check::warn(
                    name,
                    expected,
                    format!("drift, host behind: {seen}"),
                    "pkg upgrade -y -r FreeBSD-base",
                )
            } else {
                Check::warn(
                    name,
                    expected,
                    format!("drift, jail behind: {seen}"),
                    update,
                )
            }
        }
        (Ok(h), _) if !h.ok() => Check::warn(
            name,
            expected,
            format!("freebsd-version -ku → {}", said(&h)),
            "",
        ),
        (_, Ok(j)) => Check::warn(
            name,
            expected,
            format!("jexec … freebsd-version -u → {}", said(&j)),
            "",
        ),
        (Err(e), _) | (_, Err(e)) => Check::warn(name, expected, e.to_string(), ""),
    }
}

/// A simulated host does not run the jail's `/etc/rc`, so no VNET address is ever configured live. The jail's
/// `rc.conf` (what `/etc/rc` would apply) is checked instead; the live check is skipped, saying so.
fn simulated_addr(
    ctx: &Ctx,
    jail: &str,
    want: &str,
    name: &str,
    expected: String,
    restart: &str,
) -> Check {
    let rc = format!(
        "{}/{jail}/root/etc/rc.conf",
        datasets::jails_dir(ctx.layout())
    );
    let text = ctx.runner.read_file(&rc).ok().flatten().unwrap_or_default();
    let line = text
        .lines()
        .find(|l| l.starts_with("ifconfig_") && l.contains(&format!("inet {want}")));
    match line {
        Some(l) => Check::skip(
            name,
            expected,
            format!("simulated host: the jail's /etc/rc does not run, so no address is live; {rc} has {l}"),
        ),
        None => Check::fail(name, expected, format!("no live address, and {rc} assigns no inet {want}"), restart),
    }
}

/// `jail.J.release` (thin jails): the jail's `osrelease` is its release tree's userland version.
fn release_drift(ctx: &Ctx, svc: &Service, conf: &str) -> Check {
    let layout = ctx.layout();
    let name = format!("jail.{}.release", svc.jail);
    let script_path = format!(
        "{}/{}/bin/freebsd-version",
        datasets::releases_dir(layout),
        layout.release
    );
    let expected = format!(
        "osrelease in jail.conf = the userland of {}",
        layout.release
    );
    let release_v = match ctx.runner.read_file(&script_path) {
        Ok(Some(s)) => match userland_version(&s) {
            Some(v) => v,
            None => {
                return Check::warn(
                    name,
                    expected,
                    format!("{script_path} has no USERLAND_VERSION"),
                    "",
                )
            }
        },
        Ok(None) => {
            return Check::fail(
                name,
                expected,
                format!("{script_path} does not exist"),
                ctx.setup("jails"),
            )
        }
        Err(e) => return Check::fail(name, expected, e.to_string(), ""),
    };
    let Some(jail_v) = conf_osrelease(conf) else {
        return Check::warn(
            name,
            expected,
            "jail.conf sets no osrelease".to_string(),
            "",
        );
    };
    let seen = format!("release {release_v}, jail osrelease {jail_v}");
    if jail_v == release_v {
        Check::ok(name, expected, seen)
    } else {
        Check::fail(
            name,
            expected,
            format!("drift: {seen}"),
            format!(
                "bastille config {j} set osrelease {release_v} && bastille restart {j}",
                j = svc.jail
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions() {
        assert_eq!(
            userland_version("#!/bin/sh\nUSERLAND_VERSION=\"15.0-RELEASE-p2\"\necho x\n")
                .as_deref(),
            Some("15.0-RELEASE-p2")
        );
        assert_eq!(userland_version("nothing"), None);
        let conf = "git {\n  path = /x;\n  osrelease = \"15.0-RELEASE-p2\";\n}\n";
        assert_eq!(conf_osrelease(conf).as_deref(), Some("15.0-RELEASE-p2"));
        assert_eq!(
            conf_osrelease("  osrelease = 15.0-RELEASE-p3;\n").as_deref(),
            Some("15.0-RELEASE-p3")
        );
        assert_eq!(conf_osrelease("osreleasex = 1;"), None);
        assert_eq!(patch_level("15.0-RELEASE-p3"), ("15.0-RELEASE".into(), 3));
        assert_eq!(patch_level("15.0-RELEASE"), ("15.0-RELEASE".into(), 0));
        assert!(patch_level("15.0-RELEASE-p10") > patch_level("15.0-RELEASE-p9"));
    }
}
