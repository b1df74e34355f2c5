//! Small host tools Bastille shells out to: `route`, `netstat`, `freebsd-version`, `kldload`,
//! `kldstat`, `mount`, `chflags`.

use std::net::Ipv4Addr;

use crate::io::{fail, Io};
use crate::opts::{Spec, GETOPT};
use crate::state::{Ctx, HOST_VERSION};

/// route(8)'s options; a usage error exits with EX_USAGE. The host's and a jail's route.
pub const ROUTE: Spec = Spec {
    tool: "route",
    flags: "46dnqtv",
    usage: "usage: route [-46dnqtv] command [[modifiers] args]",
    status: 64,
    ..GETOPT
};

/// `route -n get IP` (Bastille's start.sh checks for a `gateway:` line, §1.4) and `route add default`.
pub fn route(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match ROUTE.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    // The command's own modifiers (`-net`, `-interface`) are not simulated.
    let ops: Vec<&str> = p
        .operands
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    match ops.as_slice() {
        ["get", target] => {
            let dest = if *target == "default" {
                "0.0.0.0"
            } else {
                target
            };
            let Ok(ip) = dest.parse::<Ipv4Addr>() else {
                return fail(io, &format!("route: bad address: {target}"));
            };
            let local = cx.st.interfaces.iter().find(|(_, i)| {
                i.vnet.is_none() && i.inet.iter().any(|a| a.contains(ip) && a.prefix > 0)
            });
            io.out(&format!("   route to: {dest}"));
            io.out(&format!(
                "destination: {}",
                if *target == "default" {
                    "default"
                } else {
                    dest
                }
            ));
            match (local, &cx.st.default_route) {
                (Some((n, _)), _) if *target != "default" => io.out(&format!("  interface: {n}")),
                (_, Some(r)) => {
                    io.out(&format!("    gateway: {}", r.gateway));
                    io.out(&format!("  interface: {}", r.interface));
                }
                _ => return fail(io, "route: route has not been found"),
            }
            io.out("      flags: <UP,GATEWAY,DONE,STATIC>");
            0
        }
        ["add", "default", gw] => {
            if !cx.is_root() {
                return fail(io, "route: must be root to alter routing table");
            }
            let iface = cx
                .st
                .default_route
                .as_ref()
                .map(|r| r.interface.clone())
                .unwrap_or("vtnet0".into());
            cx.st.default_route = Some(crate::state::Route {
                gateway: gw.to_string(),
                interface: iface,
            });
            io.out(&format!("add net default: gateway {gw}"));
            0
        }
        _ => ROUTE.usage().report(io),
    }
}

/// `netstat -rn` (Bastille reads the default gateway with `netstat -4rn | awk '/default/ {print $2}'`).
pub fn netstat(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "netstat",
        flags: "46AaBbdDgHhiLlmnoPQqRrSsTuWxz",
        valued: "cfIjMNpw",
        usage: "usage: netstat [-46AaCcLnRSTWx] [-f protocol_family | -p protocol]\n               [-M core] [-N system]",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    if !p.has("r") {
        return fail(io, "netstat: only -r is simulated");
    }
    io.out("Routing tables\n\nInternet:");
    io.out("Destination        Gateway            Flags         Netif Expire");
    if let Some(r) = &cx.st.default_route {
        io.out(&format!(
            "{:<18} {:<18} {:<13} {}",
            "default", r.gateway, "UGS", r.interface
        ));
    }
    io.out(&format!(
        "{:<18} {:<18} {:<13} {}",
        "127.0.0.1", "link#2", "UH", "lo0"
    ));
    for (n, i) in cx.st.interfaces.iter().filter(|(_, i)| i.vnet.is_none()) {
        for a in &i.inet {
            let net = Ipv4Addr::from(u32::from(a.addr) & a.mask());
            if a.prefix < 32 && n != "lo0" {
                io.out(&format!(
                    "{:<18} {:<18} {:<13} {}",
                    format!("{net}/{}", a.prefix),
                    format!("link#{}", i.unit + 1),
                    "U",
                    n
                ));
            }
        }
    }
    0
}

/// `freebsd-version [-kru]`: the host's version, or inside a jail its `osrelease`.
pub fn freebsd_version(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "freebsd-version",
        flags: "kru",
        valued: "j",
        usage: "usage: freebsd-version [-kru] [-j jail]",
        ..GETOPT
    };
    if let Err(e) = SPEC.parse(args) {
        return e.report(io);
    }
    let v = cx
        .jail
        .as_ref()
        .and_then(|j| cx.st.jails.get(j))
        .map(|j| j.osrelease.clone())
        .unwrap_or_else(|| HOST_VERSION.to_string());
    io.out(&v);
    0
}

/// `kldload [-n] MODULE` (the way pf.ko gets loaded).
pub fn kldload(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "kldload",
        flags: "nqv",
        usage: "usage: kldload [-nqv] file ...",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let quiet_if_loaded = p.has("n");
    let mods = &p.operands;
    if mods.is_empty() {
        return SPEC.usage().report(io);
    }
    if !cx.is_root() {
        return fail(io, "kldload: an error occurred while loading module pf. Please check dmesg(8) for more details.");
    }
    for m in mods {
        let name = m.trim_end_matches(".ko").to_string();
        if ![
            "pf",
            "pflog",
            "if_bridge",
            "if_epair",
            "nullfs",
            "zfs",
            "rctl",
            "vmm",
            "if_tuntap",
        ]
        .contains(&name.as_str())
        {
            return fail(
                io,
                &format!("kldload: can't load {m}: No such file or directory"),
            );
        }
        if !cx.st.kmods.insert(name.clone()) && !quiet_if_loaded {
            return fail(
                io,
                &format!("kldload: can't load {m}: module already loaded or in kernel"),
            );
        }
    }
    0
}

/// `kldstat [-q] [-m MODULE]`.
pub fn kldstat(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "kldstat",
        flags: "dhqv",
        valued: "imn",
        usage: "usage: kldstat [-dhqv] [-i id] [-n filename]\n       kldstat [-dq] [-m modname]",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let quiet = p.has("q");
    if let Some(m) = p.value("m").or(p.value("n")) {
        if cx.st.kmods.contains(m.trim_end_matches(".ko")) {
            if !quiet {
                io.out(&format!("Id Refs Name\n  1    1 {m}"));
            }
            return 0;
        }
        if !quiet {
            io.err(&format!(
                "kldstat: can't find module {m}: No such file or directory"
            ));
        }
        return 1;
    }
    io.out("Id Refs Address                Size Name");
    io.out(" 1   10 0xffffffff80200000  1f3c6c8 kernel");
    for (n, m) in cx.st.kmods.iter().enumerate() {
        io.out(&format!(
            "{:>2}    1 0xffffffff82{:06x}    10000 {m}.ko",
            n + 2,
            n * 0x10000
        ));
    }
    0
}

/// `mount` with no arguments lists nullfs/devfs mounts and ZFS datasets (`SRC on TARGET (TYPE, ...)`).
pub fn mount(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "mount",
        flags: "adflLnNprsuvw",
        valued: "Fot",
        usage: "usage: mount [-adflpruvw] [-F fstab] [-o options] [-t ufs | external_type]\n       mount [-dfpruvw] special | node\n       mount [-dfpruvw] [-o options] [-t ufs | external_type] special node",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    if !p.operands.is_empty() || p.opts.iter().any(|(k, _)| *k != "p") {
        return fail(io, "mount: only listing is simulated");
    }
    for name in cx.st.datasets.keys().filter(|k| !k.contains('@')) {
        if let Some(mp) = crate::zfs::mountpoint(cx, name) {
            io.out(&format!("{name} on {mp} (zfs, local, noatime, nfsv4acls)"));
        }
    }
    for m in &cx.st.mounts {
        io.out(&format!(
            "{} on {} ({}, local, {})",
            m.source, m.target, m.fstype, m.opts
        ));
    }
    0
}

/// `chflags` accepts and does nothing (no file flags on this filesystem).
pub fn chflags(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "chflags",
        flags: "fhvxRHLP",
        usage: "usage: chflags [-fhvx] [-R [-H | -L | -P]] flags file ...",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let [_flags, .., file] = p.operands.as_slice() else {
        return SPEC.usage().report(io);
    };
    if !cx.is_root() {
        return fail(io, &format!("chflags: {file}: Operation not permitted"));
    }
    0
}

/// install(1)'s options (`B:bCcD:df:g:h:l:M:m:N:o:pSsT:Uv`); a usage error exits with EX_USAGE. The host's
/// and a jail's install.
pub const INSTALL: Spec = Spec {
    tool: "install",
    flags: "bCcdpSsUv",
    valued: "BDfghlMmNoT",
    usage: "usage: install [-bCcpSsUv] [-f flags] [-g group] [-m mode] [-o owner]\n               [-M log] [-D dest] [-h hash] [-T tags]\n               [-B suffix] [-l linkflags] [-N dbdir]\n               file1 file2\n       install [-bCcpSsUv] [-f flags] [-g group] [-m mode] [-o owner]\n               [-M log] [-D dest] [-h hash] [-T tags]\n               [-B suffix] [-l linkflags] [-N dbdir]\n               file1 ... fileN directory\n       install -dU [-vU] [-g group] [-m mode] [-N dbdir] [-o owner]\n               [-M log] [-D dest] [-h hash] [-T tags]\n               directory ...",
    status: 64,
    ..GETOPT
};

/// `install -d [-m MODE] [-o OWNER] [-g GROUP] DIR…` on the host: creates directories under the fake root with
/// the mode asked for (owners are only checked to be given; this machine's users are not FreeBSD's). Warden's
/// host step uses it for `bastille_prefix` (mode 0750, reference/bastille.md §4.4). File installs are not
/// simulated on the host.
pub fn install(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    use std::os::unix::fs::PermissionsExt;
    let p = match INSTALL.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let mode = match p.value("m").map(|v| (v, u32::from_str_radix(v, 8))) {
        None => 0o755,
        Some((_, Ok(m))) if m <= 0o7777 => m,
        Some((v, _)) => return fail(io, &format!("install: {v}: invalid file mode")),
    };
    let dirs = &p.operands;
    if !p.has("d") || dirs.is_empty() {
        return fail(
            io,
            &format!(
                "fakebsd: only `install -d` is simulated on the host\n{}",
                INSTALL.usage
            ),
        );
    }
    if !cx.is_root() {
        return fail(
            io,
            &format!("install: chmod {}: Operation not permitted", dirs[0]),
        );
    }
    for d in dirs {
        let real = cx.host_path(d);
        if let Err(e) = std::fs::create_dir_all(&real)
            .and_then(|_| std::fs::set_permissions(&real, std::fs::Permissions::from_mode(mode)))
        {
            return fail(io, &format!("install: mkdir {d}: {e}"));
        }
    }
    0
}
