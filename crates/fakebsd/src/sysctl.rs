//! `sysctl` (reference/bastille.md §7.4).

use std::collections::BTreeMap;

use crate::io::Io;
use crate::opts::{Spec, GETOPT};
use crate::state::{Ctx, HOST_VERSION};

/// OIDs that exist but cannot be set.
const READ_ONLY: &[&str] = &[
    "hw.machine",
    "hw.machine_arch",
    "hw.ncpu",
    "kern.osrelease",
    "kern.ostype",
    "security.jail.jailed",
    "kern.osreldate",
    // A boot tunable: /boot/loader.conf and a reboot (`fakebsd reboot`) change it.
    "kern.racct.enable",
];

/// The sysctls of a fresh host.
pub fn initial() -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("net.inet.ip.forwarding", "0"),
        ("net.inet6.ip6.forwarding", "0"),
        ("net.link.bridge.pfil_member", "1"),
        ("net.link.bridge.pfil_bridge", "1"),
        ("net.link.bridge.pfil_onlyip", "1"),
        // Proposed default for 15.0 (§7.3) — unverified.
        ("net.link.bridge.member_ifaddrs", "0"),
        ("security.jail.jailed", "0"),
        ("security.jail.allow_raw_sockets", "0"),
        ("hw.machine", "amd64"),
        ("hw.machine_arch", "amd64"),
        ("hw.ncpu", "2"),
        ("kern.ostype", "FreeBSD"),
        ("kern.osrelease", HOST_VERSION.trim_end_matches("-p2")),
        ("kern.osreldate", "1500068"),
        ("kern.hostname", "fakebsd"),
        // GENERIC has RACCT/RCTL compiled in but off until the loader tunable says 1.
        ("kern.racct.enable", "0"),
    ] {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

/// sysctl(8)'s options (`AabB:deFf:hiJNnoqtTwWxX`).
const SPEC: Spec = Spec {
    tool: "sysctl",
    flags: "AadeFhiJNnoqtTWwxX",
    valued: "Bf",
    usage: "usage: sysctl [-bdeFhiJNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...",
    ..GETOPT
};

/// The `sysctl` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let only_value = p.has("n");
    let ignore = p.has("i");
    let quiet = p.has("q");
    let operands = &p.operands;
    if operands.is_empty() {
        for (k, v) in &cx.st.sysctls {
            if only_value {
                io.out(v);
            } else {
                io.out(&format!("{k}: {v}"));
            }
        }
        return 0;
    }
    let mut code = 0;
    for op in operands {
        let (name, value) = match op.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (op.as_str(), None),
        };
        // A prefix lists every OID below it, as sysctl does for a node.
        let exact = cx.st.sysctls.get(name).cloned();
        let children: Vec<(String, String)> = cx
            .st
            .sysctls
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{name}.")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if exact.is_none() && children.is_empty() {
            if !ignore {
                io.err(&format!("sysctl: unknown oid '{name}'"));
                code = 1;
            }
            continue;
        }
        match (value, exact) {
            (None, Some(v)) => io.out(&if only_value {
                v
            } else {
                format!("{name}: {v}")
            }),
            (None, None) => {
                for (k, v) in children {
                    io.out(&if only_value { v } else { format!("{k}: {v}") });
                }
            }
            (Some(_), None) => {
                io.err(&format!("sysctl: oid '{name}' isn't a leaf node"));
                code = 1;
            }
            (Some(new), Some(old)) => {
                if READ_ONLY.contains(&name) {
                    io.err(&format!("sysctl: oid '{name}' is read only"));
                    code = 1;
                    continue;
                }
                if !cx.is_root() {
                    io.err(&format!("sysctl: {name}={new}: Operation not permitted"));
                    code = 1;
                    continue;
                }
                if old.parse::<i64>().is_ok() && new.parse::<i64>().is_err() {
                    io.err(&format!("sysctl: invalid integer '{new}'"));
                    code = 1;
                    continue;
                }
                cx.st.sysctls.insert(name.to_string(), new.to_string());
                if !quiet {
                    io.out(&if only_value {
                        new.to_string()
                    } else {
                        format!("{name}: {old} -> {new}")
                    });
                }
            }
        }
    }
    code
}
