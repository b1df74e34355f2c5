//! Persistent service jails: each exists, runs, has its slot's address and hostname, reaches the gateway and
//! resolves names; patch-level drift between the host and each jail, and between thin jails and their release
//! (seeds 002 and 004: updating the host patches no jail userland; thin jails follow the release tree).

use std::time::{Duration, Instant};

use warden_core::layout::{Service, Shape};
use warden_freebsd::datasets;
use warden_host::Output;

use crate::report::Check;
use crate::{said, Ctx};

const SIMULATED: &str = "simulated host: no traffic flows between simulated jails";

/// A command inside a running Linux jail (what `warden jail exec NAME -- ARGV` does), output captured: the exec
/// spec from `warden_linux::jail`, run by this binary's exec helper (`<exe> __worker exec SPEC`), as the jail's
/// unprivileged user. The helper is killed after `limit`.
fn linux_exec(
    ctx: &Ctx,
    jail: &str,
    argv: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Result<Output, String> {
    use std::process::{Command, Stdio};
    use warden_linux::jail::{exec_spec, ExecOpts};
    let opts = ExecOpts {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        cwd: None,
        root: false,
    };
    let spec = exec_spec(&ctx.opts.state_dir, jail, &opts).map_err(|e| one_line(&e))?;
    let json = serde_json::to_string(&spec).map_err(|e| e.to_string())?;
    // The helper is this very binary (`warden`), re-executed: the same way `warden jail exec` starts it.
    let mut child = Command::new("/proc/self/exe")
        .arg(warden_linux::HELPER_ARG)
        .arg(warden_linux::jail_exec::EXEC_ARG)
        .arg(json)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to start the exec helper: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {} ms", limit.as_millis()));
            }
            Err(e) => return Err(format!("failed to wait for the exec helper: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("failed to read the exec helper's output: {e}"))?;
    Ok(Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// An error and its causes on one line, without `fix:` lines (a check's remedy says what to do).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg.lines().next().unwrap_or("").to_string()
}

/// Linux: every check of one service jail (`warden_linux::jail`): it exists with its slot's address, runs, has
/// that address live and its name as hostname, reaches the gateway and resolves its name through it.
pub fn linux_jail(ctx: &Ctx, jail: &str) -> Vec<Check> {
    use warden_linux::jail::{self as lj, State};
    let layout = ctx.layout();
    let n = |what: &str| format!("jail.{jail}.{what}");
    let Some(svc) = layout.jails().find(|s| s.jail == jail) else {
        return vec![Check::fail(
            n("exists"),
            "a jail of the layout",
            format!("{jail} is not in the layout"),
            "",
        )];
    };
    let state_dir = &ctx.opts.state_dir;
    let w = &ctx.opts.warden;
    let mut out = Vec::new();
    let exists_expected = format!("{} jail {jail} at {}/24", svc.role.name(), svc.addr);
    if !lj::names(state_dir).iter().any(|j| j == jail) {
        out.push(Check::fail(
            n("exists"),
            exists_expected,
            format!("no jail {jail} in {}", lj::jails_dir(state_dir).display()),
            ctx.setup("jails"),
        ));
        return out;
    }
    let record = match lj::load(state_dir, jail) {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::fail(
                n("exists"),
                exists_expected,
                one_line(&e),
                format!("{w} jail destroy --force {jail} && {}", ctx.setup("jails")),
            ));
            return out;
        }
    };
    let addr = record.network.as_ref().map(|net| net.addr);
    out.push(Check::verdict(
        n("exists"),
        addr == Some(svc.addr),
        exists_expected,
        format!(
            "{jail} at {} on release {}",
            addr.map(|a| a.to_string())
                .unwrap_or_else(|| "no address".into()),
            record.release
        ),
        // Recreating is the only way to move a jail; its data goes with it, so the remedy says --force.
        format!("{w} jail destroy --force {jail} && {}", ctx.setup("jails")),
    ));

    let run_expected = format!("{jail} running");
    let running = lj::state(state_dir, &record) == State::Running;
    out.push(Check::verdict(
        n("running"),
        running,
        run_expected,
        if running { "running" } else { "stopped" },
        format!("{w} jail start {jail}"),
    ));
    let dep = [n("running")];
    let dep: Vec<&str> = dep.iter().map(String::as_str).collect();
    let in_jail: [(&str, String); 4] = [
        ("addr", format!("{}/24 on the jail's interface", svc.addr)),
        ("hostname", format!("hostname {jail}")),
        (
            "gateway",
            format!("reaches the gateway {} (TCP port 53)", layout.gateway),
        ),
        (
            "dns",
            format!("resolves {} to {} inside the jail", svc.fqdn, svc.addr),
        ),
    ];
    if !running {
        for (what, expected) in in_jail {
            out.push(
                Check::skip(n(what), expected, format!("{jail} is not running")).depends(&dep),
            );
        }
        return out;
    }
    let restart = format!("{w} jail stop {jail} && {w} jail start {jail}");
    let [addr_c, hostname_c, gateway_c, dns_c] = in_jail;
    let gateway_name = n(gateway_c.0);
    let want = format!("{}/24", svc.addr);
    let gw = layout.gateway.to_string();
    let connect = format!("exec 3<>/dev/tcp/{gw}/53");
    // A lost first query would otherwise wait out glibc's 5 s retry; quick tries fit the limit.
    let resolver = [("RES_OPTIONS", "timeout:1 attempts:2")];
    let limit = ctx.opts.timeout * 3 / 4;

    // Address, live.
    let addr_check = || match linux_exec(ctx, jail, &["ip", "-4", "-o", "addr", "show"], &[], limit)
    {
        Ok(o) if o.ok() => {
            let addrs: Vec<&str> = o
                .stdout
                .lines()
                .filter_map(|l| {
                    let mut words = l.split_whitespace();
                    words.find(|w| *w == "inet")?;
                    words.next()
                })
                .filter(|a| !a.starts_with("127."))
                .collect();
            let seen = if addrs.is_empty() {
                "no IPv4 address but loopback".to_string()
            } else {
                addrs.join(", ")
            };
            Check::verdict(
                n(addr_c.0),
                addrs.contains(&want.as_str()),
                addr_c.1.clone(),
                seen,
                restart.clone(),
            )
        }
        Ok(o) => Check::fail(
            n(addr_c.0),
            addr_c.1.clone(),
            format!("ip addr → {}", said(&o)),
            restart.clone(),
        ),
        Err(e) => Check::fail(n(addr_c.0), addr_c.1.clone(), e, restart.clone()),
    };

    // Hostname.
    let hostname_check =
        || match linux_exec(ctx, jail, &["cat", "/proc/sys/kernel/hostname"], &[], limit) {
            Ok(o) if o.ok() => {
                let h = o.stdout.trim().to_string();
                Check::verdict(
                    n(hostname_c.0),
                    h == jail,
                    hostname_c.1.clone(),
                    format!("hostname {h}"),
                    restart.clone(),
                )
            }
            Ok(o) => Check::fail(
                n(hostname_c.0),
                hostname_c.1.clone(),
                format!("hostname → {}", said(&o)),
                restart.clone(),
            ),
            Err(e) => Check::fail(n(hostname_c.0), hostname_c.1.clone(), e, restart.clone()),
        };

    // The gateway: a TCP connection to its dnsmasq (no ping in a minimal root; ICMP needs privileges). Two
    // seconds let TCP resend a SYN lost to a stale neighbour entry (it does after one).
    let gateway_check = || {
        let argv = ["timeout", "2", "bash", "-c", &connect];
        match linux_exec(ctx, jail, &argv, &[], limit) {
            Ok(o) => Check::verdict(
                n(gateway_c.0),
                o.ok(),
                gateway_c.1.clone(),
                if o.ok() {
                    "connected".to_string()
                } else {
                    said(&o)
                },
                ctx.setup("host"),
            ),
            Err(e) => Check::fail(n(gateway_c.0), gateway_c.1.clone(), e, ctx.setup("host")),
        }
    };

    // The resolver: the jail's resolv.conf names the gateway; its /etc/hosts holds only its own name.
    let dns_check = || {
        let argv = ["getent", "hosts", svc.fqdn.as_str()];
        match linux_exec(ctx, jail, &argv, &resolver, limit) {
            Ok(o) if o.ok() => {
                let seen = o.stdout.lines().next().unwrap_or("").trim().to_string();
                let hit = seen.split_whitespace().next() == Some(svc.addr.to_string().as_str());
                Check::verdict(n(dns_c.0), hit, dns_c.1.clone(), seen, ctx.setup("dns"))
            }
            Ok(o) => Check::fail(
                n(dns_c.0),
                dns_c.1.clone(),
                format!("getent hosts {} → {}", svc.fqdn, said(&o)),
                ctx.setup("dns"),
            ),
            Err(e) => Check::fail(n(dns_c.0), dns_c.1.clone(), e, ctx.setup("dns")),
        }
    };

    // Each check is one command in the jail; they run at once, so the jail costs one round trip.
    let panicked =
        |name: String, expected: &str| Check::fail(name, expected, "the check panicked", "");
    let [addr, hostname, gateway, dns] = std::thread::scope(|s| {
        let a = s.spawn(addr_check);
        let h = s.spawn(hostname_check);
        let g = s.spawn(gateway_check);
        let d = s.spawn(dns_check);
        [
            a.join()
                .unwrap_or_else(|_| panicked(n(addr_c.0), &addr_c.1)),
            h.join()
                .unwrap_or_else(|_| panicked(n(hostname_c.0), &hostname_c.1)),
            g.join()
                .unwrap_or_else(|_| panicked(n(gateway_c.0), &gateway_c.1)),
            d.join().unwrap_or_else(|_| panicked(n(dns_c.0), &dns_c.1)),
        ]
    });
    out.push(addr);
    out.push(hostname);
    out.push(gateway.depends(&["network.bridge", "dns.service"]));
    out.push(dns.depends(&[
        "network.bridge",
        "dns.service",
        "dns.resolve.gateway",
        &gateway_name,
    ]));
    out
}

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

    let running = ctx.run(&["jls", "-j", jail, "jid"]);
    let run_expected = format!("{jail} running (jls -j {jail})");
    let is_running = match &running {
        Ok(o) if o.ok() => {
            out.push(Check::ok(
                n("running"),
                run_expected,
                format!("jid {}", o.stdout.trim()),
            ));
            true
        }
        Ok(o) => {
            out.push(Check::fail(
                n("running"),
                run_expected,
                format!("not running ({})", said(o)),
                format!("bastille start {jail}"),
            ));
            false
        }
        Err(e) => {
            out.push(Check::fail(
                n("running"),
                run_expected,
                e.to_string(),
                format!("bastille start {jail}"),
            ));
            false
        }
    };
    let dep = [n("running")];
    let dep: Vec<&str> = dep.iter().map(String::as_str).collect();
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
        for (what, expected) in in_jail {
            out.push(
                Check::skip(n(what), expected, format!("{jail} is not running")).depends(&dep),
            );
        }
        return out;
    }
    let restart = format!("bastille restart {jail}");
    let [addr, hostname, gateway, dns, patch] = in_jail;

    // Address.
    let want = format!("{}/24", svc.addr);
    out.push(match jexec(ctx, jail, &["ifconfig", "-f", "inet:cidr"]) {
        Ok(o) if o.ok() => {
            let addrs = warden_freebsd::parse::ifconfig::inet_addrs(&o.stdout);
            if addrs.is_empty() && ctx.simulated() {
                simulated_addr(ctx, jail, &want, &n(addr.0), addr.1, &restart)
            } else {
                let seen = if addrs.is_empty() {
                    "no IPv4 address".to_string()
                } else {
                    addrs.join(", ")
                };
                Check::verdict(
                    n(addr.0),
                    addrs.contains(&want),
                    addr.1,
                    seen,
                    restart.clone(),
                )
            }
        }
        Ok(o) => Check::fail(
            n(addr.0),
            addr.1,
            format!("jexec … ifconfig → {}", said(&o)),
            restart.clone(),
        ),
        Err(e) => Check::fail(n(addr.0), addr.1, e, restart.clone()),
    });

    // Hostname.
    out.push(match jexec(ctx, jail, &["hostname"]) {
        Ok(o) if o.ok() => {
            let h = o.stdout.trim().to_string();
            Check::verdict(
                n(hostname.0),
                h == jail || h.starts_with(&format!("{jail}.")),
                hostname.1,
                format!("hostname {h}"),
                restart.clone(),
            )
        }
        Ok(o) => Check::fail(
            n(hostname.0),
            hostname.1,
            format!("jexec … hostname → {}", said(&o)),
            restart.clone(),
        ),
        Err(e) => Check::fail(n(hostname.0), hostname.1, e, restart.clone()),
    });

    // Gateway and resolver: real traffic, so only on a real host.
    let gw = layout.gateway.to_string();
    if ctx.simulated() {
        out.push(Check::skip(n(gateway.0), gateway.1, SIMULATED));
        out.push(Check::skip(n(dns.0), dns.1, SIMULATED));
    } else {
        out.push(
            match jexec(ctx, jail, &["ping", "-c", "1", "-t", "2", &gw]) {
                Ok(o) => Check::verdict(
                    n(gateway.0),
                    o.ok(),
                    gateway.1,
                    if o.ok() {
                        "ping answered".into()
                    } else {
                        said(&o)
                    },
                    restart.clone(),
                ),
                Err(e) => Check::fail(n(gateway.0), gateway.1, e, restart.clone()),
            }
            .depends(&["network.bridge"]),
        );
        out.push(
            match jexec(ctx, jail, &["host", "-W", "2", &svc.fqdn]) {
                Ok(o) if o.ok() => {
                    let hit = o.stdout.lines().any(|l| {
                        l.contains("has address") && l.trim_end().ends_with(&svc.addr.to_string())
                    });
                    let seen = o.stdout.lines().next().unwrap_or("").trim().to_string();
                    Check::verdict(n(dns.0), hit, dns.1, seen, ctx.setup("dns"))
                }
                Ok(o) => Check::fail(
                    n(dns.0),
                    dns.1,
                    format!("host {} → {}", svc.fqdn, said(&o)),
                    ctx.setup("dns"),
                ),
                Err(e) => Check::fail(n(dns.0), dns.1, e, ctx.setup("dns")),
            }
            .depends(&["dns.service", "dns.resolve.gateway"]),
        );
    }

    // Patch level: host userland vs jail userland. A difference is expected right after a host update, so it is a
    // warning naming the update that closes it.
    let host_v = ctx
        .run(&["freebsd-version", "-ku"])
        .map_err(|e| e.to_string());
    let jail_v = jexec(ctx, jail, &["freebsd-version", "-u"]);
    let update = match svc.shape {
        Shape::Thick => format!("bastille update {jail}"),
        _ => format!(
            "bastille update {} && bastille restart {jail}",
            layout.release
        ),
    };
    out.push(match (host_v, jail_v) {
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
                Check::ok(n(patch.0), patch.1, seen)
            } else if patch_level(&jail_u) > patch_level(&host_u) {
                // The jail is ahead: the host is the one to update (pkgbase, seed 002).
                Check::warn(
                    n(patch.0),
                    patch.1,
                    format!("drift, host behind: {seen}"),
                    "pkg upgrade -y -r FreeBSD-base",
                )
            } else {
                Check::warn(
                    n(patch.0),
                    patch.1,
                    format!("drift, jail behind: {seen}"),
                    update,
                )
            }
        }
        (Ok(h), _) if !h.ok() => Check::warn(
            n(patch.0),
            patch.1,
            format!("freebsd-version -ku → {}", said(&h)),
            "",
        ),
        (_, Ok(j)) => Check::warn(
            n(patch.0),
            patch.1,
            format!("jexec … freebsd-version -u → {}", said(&j)),
            "",
        ),
        (Err(e), _) | (_, Err(e)) => Check::warn(n(patch.0), patch.1, e.to_string(), ""),
    });
    out
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
