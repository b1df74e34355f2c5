//! `bastille start|stop|restart|destroy` (reference/bastille.md §3, §4.1–§4.3).

use super::{Bx, Version};
use crate::io::Io;
use crate::opts::{Spec, GETOPT};

/// Starts one jail as start.sh does: `jail -f jail.conf -c NAME`, status ignored (§3 start).
pub fn start_one(b: &mut Bx, name: &str) {
    b.info(&format!("\n[{name}]:"));
    if b.running(name) {
        b.error_notify("Jail is already running.");
        return;
    }
    let conf_path = format!("{}/jail.conf", b.jail_dir(name));
    let params = match crate::jail::conf_entry(b.cx, &conf_path, name) {
        Ok(p) => p,
        Err(e) => {
            b.io.err(&e);
            return;
        }
    };
    // Shared-IP jails: every ip4.addr interface must exist, else the jail is skipped (exit stays 0).
    let vnet = params.contains_key("vnet");
    if !vnet {
        for spec in params.get("ip4.addr").cloned().unwrap_or_default() {
            if let Some((ifn, _)) = spec.split_once('|') {
                if !b.cx.iface_visible(ifn) {
                    b.error_notify(&format!("[ERROR]: {ifn} interface does not exist."));
                    return;
                }
            }
        }
    }
    let mut io = Io::default();
    crate::jail::create(b.cx, name, params.clone(), &mut io);
    b.io.out.push_str(&io.out);
    b.io.err.push_str(&io.err);
    // pf table for shared-IP addresses not on a local subnet (§1.4).
    if b.running(name) && !vnet {
        let table = pf_table(b);
        for ip in b.cx.st.jails[name].ip4.clone() {
            let Ok(addr) = ip.parse() else { continue };
            let local = b.cx.st.interfaces.values().any(|i| {
                i.vnet.is_none() && i.inet.iter().any(|a| a.prefix < 32 && a.contains(addr))
            });
            if !local && crate::pfctl::loaded(b.cx) {
                crate::pfctl::table_edit(b.cx, &table, true, &[ip]);
            }
        }
    }
}

fn pf_table(b: &Bx) -> String {
    let t = b.conf.get("bastille_network_pf_table");
    if t.is_empty() {
        "jails".into()
    } else {
        t
    }
}

/// Stops one jail (stop.sh): `jail -f jail.conf -r NAME`, then drops its pf table entries.
pub fn stop_one(b: &mut Bx, name: &str) {
    b.info(&format!("\n[{name}]:"));
    if !b.running(name) {
        b.error_notify("Jail is already stopped.");
        return;
    }
    let ips = b.cx.st.jails[name].ip4.clone();
    let conf_path = format!("{}/jail.conf", b.jail_dir(name));
    let params = crate::jail::conf_entry(b.cx, &conf_path, name).ok();
    let mut io = Io::default();
    crate::jail::remove(b.cx, name, params, &mut io);
    b.io.out.push_str(&io.out);
    b.io.err.push_str(&io.err);
    let table = pf_table(b);
    if crate::pfctl::loaded(b.cx) && b.cx.st.pf.tables.contains_key(&table) {
        crate::pfctl::table_edit(b.cx, &table, false, &ips);
    }
}

/// stop + start.
pub fn restart_one(b: &mut Bx, name: &str) {
    stop_one(b, name);
    start_one(b, name);
}

/// The options of start, stop, restart and destroy: `flags` (ending with `x`, the debug flag) and the delay
/// `-d N` where `delayed`. Returns the letters given and the operands; `-h` prints `usage`.
fn parse_flags(
    b: &mut Bx,
    args: &[String],
    flags: &'static str,
    delayed: bool,
    usage: &str,
) -> Result<(String, Vec<String>), i32> {
    let spec = Spec {
        tool: "bastille",
        flags,
        valued: if delayed { "d" } else { "" },
        long: &[
            "help:h",
            "auto:a",
            "force:f",
            "yes:y",
            "boot:b",
            "ignore:i",
            "verbose:v",
            "no-cache:c",
            "delay:d",
            "debug:x",
        ],
        ..GETOPT
    };
    let p = b.parse_opts(spec, args, &[])?;
    if p.has("h") {
        b.error_notify(usage);
        return Err(1);
    }
    let letters = p.opts.iter().map(|(k, _)| *k).collect();
    Ok((letters, p.operands))
}

/// `bastille start [-b] [-d N] [-v] TARGET` — exit 0 even when a start failed (§4.1).
pub fn start_cmd(b: &mut Bx, args: &[String]) -> i32 {
    let (_, rest) = match parse_flags(
        b,
        args,
        "hbvx",
        true,
        "Usage: bastille start [option(s)] TARGET",
    ) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let [target] = rest.as_slice() else {
        b.error_notify("Usage: bastille start [option(s)] TARGET");
        return 1;
    };
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(target, false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    for j in jails {
        start_one(b, &j);
    }
    0
}

/// `bastille stop [-f] [-v] TARGET`.
pub fn stop_cmd(b: &mut Bx, args: &[String]) -> i32 {
    let (_, rest) = match parse_flags(
        b,
        args,
        "hfvx",
        false,
        "Usage: bastille stop [option(s)] TARGET",
    ) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let [target] = rest.as_slice() else {
        b.error_notify("Usage: bastille stop [option(s)] TARGET");
        return 1;
    };
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(target, true) {
        Ok(j) => j,
        Err(c) => return c,
    };
    for j in jails {
        stop_one(b, &j);
    }
    0
}

/// `bastille restart [-b] [-d N] [-i] [-v] TARGET`.
pub fn restart_cmd(b: &mut Bx, args: &[String]) -> i32 {
    let (flags, rest) = match parse_flags(
        b,
        args,
        "hbivx",
        true,
        "Usage: bastille restart [option(s)] TARGET",
    ) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let [target] = rest.as_slice() else {
        b.error_notify("Usage: bastille restart [option(s)] TARGET");
        return 1;
    };
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(target, false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    for j in jails {
        if flags.contains('i') && !b.running(&j) {
            continue;
        }
        restart_one(b, &j);
    }
    0
}

/// `bastille destroy -afy NAME` without output (create's cleanup path).
pub fn destroy_quiet(b: &mut Bx, name: &str) {
    let saved = std::mem::take(b.io);
    if b.running(name) {
        stop_one(b, name);
    }
    let _ = destroy_jail(b, name, true, true, false);
    *b.io = saved;
}

/// destroy_jail (destroy.sh); `Err` carries an exit status for error_exit paths.
fn destroy_jail(
    b: &mut Bx,
    name: &str,
    auto: bool,
    force: bool,
    announced: bool,
) -> Result<(), i32> {
    let base = b.jail_dir(name);
    if b.running(name) {
        if auto {
            stop_one(b, name);
        } else {
            b.info(&format!("\n[{name}]:"));
            b.error_notify("Jail is running.");
            b.error_notify("Use [-a|--auto] to auto-stop the jail.");
            return Ok(());
        }
    }
    if !announced {
        b.info(&format!("\n[{name}]:"));
    }
    if b.p(&base).is_dir() {
        let prefix = format!("{base}/root/");
        let mounted: Vec<String> =
            b.cx.st
                .mounts
                .iter()
                .filter(|m| m.target.starts_with(&prefix))
                .map(|m| m.target.clone())
                .collect();
        if !mounted.is_empty() {
            b.error_notify(&format!("[ERROR]: Failed to destroy jail: {name}"));
            b.error_notify(&format!(
                "Jail has mounted filesystems:\n{}",
                mounted.join("\n")
            ));
            return Ok(());
        }
        b.info("Destroying jail...");
        if b.conf.zfs() {
            let ds = format!("{}/jails/{name}", b.conf.zfs_base());
            if crate::zfs::exists(b.cx, &ds) {
                if let Err(e) = crate::zfs::destroy(b.cx, &ds, true, force) {
                    b.io.err(&e);
                    b.error_notify("[ERROR]: Jail dataset(s) appears to be busy, exiting.");
                    return Ok(());
                }
            }
        }
        let _ = crate::fsutil::remove_any(&b.p(&base));
        // In-jail state kept outside the jail's files: simulated owners, services.
        let prefix = format!("{base}/");
        b.cx.st.owners.retain(|k, _| !k.starts_with(&prefix));
        let scope = format!("{name}:");
        b.cx.st.services.retain(|k, _| !k.starts_with(&scope));
        let logs = b.conf.get("bastille_logsdir");
        let log = if b.v == Version::Master {
            format!("{logs}/{name}/console.log")
        } else {
            format!("{logs}/{name}_console.log")
        };
        if b.p(&log).is_file() {
            let _ = std::fs::rename(b.p(&log), b.p(&format!("{log}-archived")));
            b.info("Note: jail console logs archived.");
        }
        b.cx.st.pf.anchors.remove(&format!("rdr/{name}"));
    }
    Ok(())
}

fn destroy_release(b: &mut Bx, release: &str, force: bool) -> i32 {
    let rel = format!("{}/{release}", b.conf.releasesdir());
    b.info(&format!("\nAttempting to destroy release: {release}"));
    let mut has_child = false;
    for j in b.jails() {
        let fstab =
            std::fs::read_to_string(b.p(&format!("{}/fstab", b.jail_dir(&j)))).unwrap_or_default();
        let cloned = b.conf.zfs()
            && crate::zfs::prop(
                b.cx,
                &format!("{}/jails/{j}/root", b.conf.zfs_base()),
                "origin",
                true,
            )
            .is_some_and(|(o, _)| {
                o.starts_with(&format!("{}/releases/{release}@", b.conf.zfs_base()))
            });
        if fstab
            .split_whitespace()
            .any(|w| w.split('/').any(|p| p == release))
            || cloned
        {
            b.error_notify(&format!("[ERROR]: ({j}) depends on {release} base."));
            has_child = true;
        }
    }
    if !b.p(&rel).is_dir() {
        return b.error_exit("[ERROR]: Release base not found.");
    }
    if has_child {
        b.error_notify("[ERROR]: Cannot destroy base with child containers.");
        return 0;
    }
    b.info("Deleting release base...");
    if b.conf.zfs() {
        let ds = format!("{}/releases/{release}", b.conf.zfs_base());
        if let Err(e) = crate::zfs::destroy(b.cx, &ds, true, force) {
            b.io.err(&e);
        }
    }
    let _ = crate::fsutil::remove_any(&b.p(&rel));
    0
}

/// `bastille destroy [-a] [-c] [-f] [-y] JAIL|RELEASE`: prompts unless `-y` (§3 destroy).
pub fn destroy_cmd(b: &mut Bx, args: &[String]) -> i32 {
    let usage =
        "Usage: bastille destroy [option(s)] JAIL\n                                    RELEASE";
    let (flags, rest) = match parse_flags(b, args, "hacfyx", false, usage) {
        Ok(x) => x,
        Err(c) => return c,
    };
    let [target] = rest.as_slice() else {
        b.error_notify(usage);
        return 1;
    };
    if let Err(c) = b.root_check() {
        return c;
    }
    let force = flags.contains('f');
    let looks_release = {
        let up = target.to_ascii_uppercase();
        up.ends_with("-RELEASE")
            || up.contains("-RC")
            || up.contains("-BETA")
            || up.ends_with("-CURRENT")
    };
    if looks_release || b.p(&format!("{}/{target}", b.conf.releasesdir())).is_dir() {
        let rel = if looks_release {
            target.to_ascii_uppercase()
        } else {
            target.clone()
        };
        return destroy_release(b, &rel, force);
    }
    let jails = match b.set_target(target, true) {
        Ok(j) => j,
        Err(c) => return c,
    };
    for j in jails {
        if !flags.contains('y') {
            if b.running(&j) && !flags.contains('a') {
                let _ = destroy_jail(b, &j, false, force, false);
                continue;
            }
            b.info(&format!("\n[{j}]:"));
            b.warn(&format!("\nAttempting to destroy jail: {j}\n"));
            let answer = b.ask("Are you sure you want to continue? [y|n]:");
            match answer.to_ascii_lowercase().as_str() {
                "y" | "yes" => {}
                "n" | "no" => return b.error_exit("[ERROR]: Cancelled by user."),
                _ => return b.error_exit("[ERROR]: Invalid input. Please answer 'y' or 'n'."),
            }
        }
        if let Err(c) = destroy_jail(b, &j, flags.contains('a'), force, !flags.contains('y')) {
            return c;
        }
    }
    0
}
