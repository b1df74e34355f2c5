//! `bastille cmd|config|service|sysrc|zfs|tags|setup` (reference/bastille.md §3).

use std::process::Stdio;

use super::{lifecycle, yes, Bx, Version};
use crate::io::Io;
use crate::opts::{Spec, GETOPT};

/// Splits a leading `-a|--auto` off; returns (auto, rest).
fn auto_flag(args: &[String]) -> (bool, Vec<String>) {
    match args.first().map(String::as_str) {
        Some("-a") | Some("--auto") => (true, args[1..].to_vec()),
        _ => (false, args.to_vec()),
    }
}

/// Ensures the jail runs (auto-starting with `-a`); prints the not-running lines otherwise.
fn ensure_running(b: &mut Bx, j: &str, auto: bool) -> bool {
    if b.running(j) {
        return true;
    }
    if auto {
        lifecycle::start_one(b, j);
        return b.running(j);
    }
    b.error_notify("Jail is not running.");
    b.error_notify("Use [-a|--auto] to auto-start the jail.");
    false
}

/// `bastille cmd [-a] TARGET command...`: exit 1 with a count when any command failed, 0 for a stopped
/// jail without -a; the command's own status is not passed through (§3 cmd).
pub fn cmd(b: &mut Bx, args: &[String]) -> i32 {
    let (auto, rest) = auto_flag(args);
    if rest.len() < 2 {
        b.error_notify("Usage: bastille cmd [option(s)] TARGET COMMAND");
        return 1;
    }
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(&rest[0], false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    let mut errors = 0;
    for j in jails {
        b.info(&format!("\n[{j}]:"));
        if !ensure_running(b, &j, auto) {
            continue;
        }
        if b.cx.save().is_err() {
            return 1;
        }
        // `jexec -l JAIL cmd…`: an in-jail built-in, or the confined sh (never a program of this machine).
        let Some(fs) = crate::jailfs::JailFs::new(b.cx, &j) else {
            continue;
        };
        let Some(u) = crate::jailfs::user(b.cx, &fs, "root") else {
            continue;
        };
        let je = crate::jailfs::JailEnv {
            name: j.clone(),
            user: "root".into(),
            env: crate::jailfs::start_env(&u, true),
            cwd: "/".into(),
            lock_held: true,
        };
        let code = match crate::injail::dispatch(b.cx, &je, &rest[1..], b.io) {
            crate::jailfs::Outcome::Done(c) => c,
            crate::jailfs::Outcome::Spawn(mut c) => {
                if b.cx.save().is_err() {
                    return 1;
                }
                c.stdin(Stdio::null());
                let code = match c.output() {
                    Ok(out) => {
                        b.io.out.push_str(&String::from_utf8_lossy(&out.stdout));
                        b.io.err.push_str(&String::from_utf8_lossy(&out.stderr));
                        out.status.code().unwrap_or(1)
                    }
                    Err(e) => {
                        b.io.err(&format!("jexec: execvp: {}: {e}", rest[1]));
                        1
                    }
                };
                let _ = b.cx.reload();
                code
            }
        };
        if code != 0 {
            errors += 1;
        }
    }
    if errors > 0 {
        return b.error_exit(&format!("[ERROR]: Command failed on {errors} jails."));
    }
    0
}

/// `bastille config TARGET get|set|remove PROP [VALUE]` — get always exits 0 (§3 config).
pub fn config(b: &mut Bx, args: &[String]) -> i32 {
    if args.len() < 3 {
        b.error_notify(
            "Usage: bastille config [option(s)] TARGET [get|set|add|remove] PROPERTY [VALUE]",
        );
        return 1;
    }
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(&args[0], false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    let action = args[1].as_str();
    let (prop, value) = match args[2].split_once('=') {
        Some((p, v)) => (p.to_string(), v.to_string()),
        None => (args[2].clone(), args[3..].join(" ")),
    };
    for j in jails {
        b.info(&format!("\n[{j}]:"));
        let settings_key = match prop.as_str() {
            "boot" => Some("boot"),
            "priority" | "prio" => Some("priority"),
            "depend" | "depends" => Some("depend"),
            _ => None,
        };
        let dir = b.jail_dir(&j);
        if let Some(k) = settings_key {
            let f = b.p(&format!("{dir}/settings.conf"));
            match action {
                "get" => {
                    let v = b.setting(&j, k);
                    b.data(&v);
                }
                "set" | "add" => {
                    let _ = crate::sysrc::set_var(&f, k, &value);
                }
                _ => {}
            }
            continue;
        }
        let conf_path = b.p(&format!("{dir}/jail.conf"));
        let text = std::fs::read_to_string(&conf_path).unwrap_or_default();
        match action {
            "get" => {
                let p = crate::jail::parse_conf(&text)
                    .ok()
                    .and_then(|m| m.get(&j).cloned())
                    .unwrap_or_default();
                let v = match p.get(&prop) {
                    None => "not set".to_string(),
                    Some(v) if v.is_empty() => "enabled".to_string(),
                    Some(v) => v.join(","),
                };
                b.data(&v);
            }
            "set" | "add" | "remove" => {
                if action != "remove"
                    && value
                        .chars()
                        .any(|c| !(c.is_ascii_alphanumeric() || "._/:| $!&%=(){}-".contains(c)))
                {
                    return b.error_exit("[ERROR]: Value contains unsupported characters");
                }
                let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
                if action == "remove" {
                    lines.retain(|l| !l.contains(&prop));
                } else {
                    let v = if value.contains(' ') {
                        format!("'{value}'")
                    } else {
                        value.clone()
                    };
                    let newline = if v.is_empty() {
                        format!("  {prop};")
                    } else {
                        format!("  {prop} = {v};")
                    };
                    let pos = lines.iter().position(|l| {
                        let t = l.trim_start();
                        t.starts_with(&format!("{prop} "))
                            || t.starts_with(&format!("{prop};"))
                            || t.starts_with(&format!("{prop}="))
                    });
                    match pos {
                        Some(i) => lines[i] = newline,
                        None => {
                            let close = lines
                                .iter()
                                .rposition(|l| l.trim() == "}")
                                .unwrap_or(lines.len());
                            lines.insert(close, newline);
                        }
                    }
                }
                let _ = std::fs::write(&conf_path, lines.join("\n") + "\n");
                b.info(
                    "A restart is required for the changes to be applied. See 'bastille restart'.",
                );
            }
            _ => {
                b.error_notify("Usage: bastille config [option(s)] TARGET [get|set|add|remove] PROPERTY [VALUE]");
                return 1;
            }
        }
    }
    0
}

/// Runs one of our tools "inside" jail `j` in-process.
fn in_jail(
    b: &mut Bx,
    j: &str,
    f: fn(&mut crate::state::Ctx, &[String], &mut Io) -> i32,
    args: &[String],
) -> i32 {
    let saved = b.cx.jail.replace(j.to_string());
    let mut io = Io::default();
    let code = f(b.cx, args, &mut io);
    b.cx.jail = saved;
    b.io.out.push_str(&io.out);
    b.io.err.push_str(&io.err);
    code
}

/// `bastille service [-a] TARGET SERVICE ACTION` (exactly 3 positional arguments).
pub fn service(b: &mut Bx, args: &[String]) -> i32 {
    let (auto, rest) = auto_flag(args);
    if rest.len() != 3 {
        b.error_notify("Usage: bastille service [option(s)] TARGET SERVICE_NAME ACTION");
        return 1;
    }
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(&rest[0], false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    let mut errors = 0;
    for j in jails {
        b.info(&format!("\n[{j}]:"));
        if !ensure_running(b, &j, auto) {
            continue;
        }
        if in_jail(b, &j, crate::service::run, &rest[1..]) != 0 {
            errors += 1;
        }
    }
    if errors > 0 {
        return b.error_exit(&format!("[ERROR]: Command failed on {errors} jails."));
    }
    0
}

/// `bastille sysrc [-a] TARGET args...`.
pub fn sysrc(b: &mut Bx, args: &[String]) -> i32 {
    let (auto, rest) = auto_flag(args);
    if rest.len() < 2 {
        b.error_notify("Usage: bastille sysrc [option(s)] TARGET ARGS");
        return 1;
    }
    if let Err(c) = b.root_check() {
        return c;
    }
    let jails = match b.set_target(&rest[0], false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    let mut errors = 0;
    for j in jails {
        b.info(&format!("\n[{j}]:"));
        if !ensure_running(b, &j, auto) {
            continue;
        }
        if in_jail(b, &j, crate::sysrc::run, &rest[1..]) != 0 {
            errors += 1;
        }
    }
    if errors > 0 {
        return b.error_exit(&format!("[ERROR]: Command failed on {errors} jails."));
    }
    0
}

/// `bastille zfs TARGET snapshot|rollback|destroy|df|get|set` — failures of snapshot, rollback and
/// destroy print `[ERROR]: Failed to …` and still exit 0 (§3 zfs, §4.1).
pub fn zfs(b: &mut Bx, args: &[String]) -> i32 {
    if args.len() < 2 {
        b.error_notify("Usage: bastille zfs [option(s)] TARGET [destroy_snap|(df|usage)|get|set|(snap|snapshot)|rollback] [VALUE]");
        return 1;
    }
    if let Err(c) = b.root_check() {
        return c;
    }
    if !yes(&b.conf.get("bastille_zfs_enable")) || b.conf.get("bastille_zfs_zpool").is_empty() {
        return b.error_exit("[ERROR]: ZFS not enabled.");
    }
    let jails = match b.set_target(&args[0], false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    let base = b.conf.zfs_base();
    for j in jails {
        b.info(&format!("\n[{j}]:"));
        let ds = format!("{base}/jails/{j}");
        match args[1].as_str() {
            "snap" | "snapshot" => {
                let tag = args
                    .get(2)
                    .cloned()
                    .unwrap_or_else(|| format!("bastille_{j}_{}", b.cx.tick()));
                if let Err(e) = crate::zfs::snapshot(b.cx, &format!("{ds}@{tag}"), true) {
                    b.io.err(&e);
                    b.error_notify(&format!("[ERROR]: Failed to snapshot jail: {j}"));
                }
            }
            "rollback" => zfs_rollback(b, &j, &ds, args.get(2)),
            "destroy" | "destroy_snap" | "destroy_snapshot" => {
                let Some(tag) = args.get(2) else {
                    return b.error_exit("[ERROR]: Snapshot tag required.");
                };
                zfs_destroy_snapshot(b, &ds, tag);
            }
            "df" | "usage" => {
                let mut io = Io::default();
                crate::zfs::run(
                    b.cx,
                    &[
                        "list".into(),
                        "-t".into(),
                        "all".into(),
                        "-o".into(),
                        "name,used,avail,refer,mountpoint,compress".into(),
                        "-r".into(),
                        ds,
                    ],
                    &mut io,
                );
                b.io.out.push_str(&io.out);
                b.io.err.push_str(&io.err);
            }
            "get" | "set" => {
                let mut a = vec![args[1].clone()];
                a.extend(args[2..].iter().cloned());
                a.push(ds);
                let mut io = Io::default();
                crate::zfs::run(b.cx, &a, &mut io);
                b.io.out.push_str(&io.out);
                b.io.err.push_str(&io.err);
            }
            other => return b.error_exit(&format!("[ERROR]: Unknown zfs action: {other}")),
        }
    }
    0
}

/// `bastille zfs TARGET rollback [TAG]`: to TAG, else to the newest `bastille_JAIL_*` snapshot (both datasets).
fn zfs_rollback(b: &mut Bx, j: &str, ds: &str, tag: Option<&String>) {
    let tag = match tag {
        Some(t) => t.clone(),
        None => {
            let prefix = format!("{ds}@bastille_{j}_");
            let newest =
                b.cx.st
                    .datasets
                    .iter()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .max_by_key(|(_, d)| d.created)
                    .map(|(k, _)| k.clone());
            let Some(n) = newest else {
                b.error_notify(&format!("[ERROR]: Failed to rollback jail: {j}"));
                return;
            };
            n.split_once('@')
                .map(|x| x.1.to_string())
                .unwrap_or_default()
        }
    };
    let r = crate::zfs::rollback(b.cx, &format!("{ds}@{tag}"), true).and_then(|_| {
        if crate::zfs::exists(b.cx, &format!("{ds}/root@{tag}")) {
            crate::zfs::rollback(b.cx, &format!("{ds}/root@{tag}"), true)
        } else {
            Ok(())
        }
    });
    if let Err(e) = r {
        b.io.err(&e);
        b.error_notify(&format!("[ERROR]: Failed to rollback jail: {j}"));
    }
}

/// `bastille zfs TARGET destroy_snap TAG`: the jail's snapshots TAG, its child datasets' too.
fn zfs_destroy_snapshot(b: &mut Bx, ds: &str, tag: &str) {
    let mut all = vec![format!("{ds}@{tag}")];
    let prefix = format!("{ds}/");
    let suffix = format!("@{tag}");
    all.extend(
        b.cx.st
            .datasets
            .keys()
            .filter(|k| k.starts_with(&prefix) && k.ends_with(&suffix))
            .cloned(),
    );
    let mut failed = false;
    for s in all {
        if let Err(e) = crate::zfs::destroy(b.cx, &s, false, false) {
            b.io.err(&e);
            failed = true;
        }
    }
    if failed {
        b.error_notify(&format!("[ERROR]: Failed to destroy snapshot: {tag}"));
    }
}

/// Adds comma-separated tags to `jails/NAME/tags` (sorted, unique).
pub fn tags_add(b: &mut Bx, name: &str, tags: &str) {
    let path = b.p(&format!("{}/tags", b.jail_dir(name)));
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let mut all: Vec<String> = old.split_whitespace().map(str::to_string).collect();
    all.extend(
        tags.split(',')
            .filter(|t| !t.is_empty())
            .map(str::to_string),
    );
    all.sort();
    all.dedup();
    let _ = std::fs::write(path, all.join("\n") + "\n");
}

/// `bastille tags TARGET add|delete|list a,b`.
pub fn tags(b: &mut Bx, args: &[String]) -> i32 {
    if args.len() < 2 {
        b.error_notify("Usage: bastille tags TARGET [add|delete|list] [tag1,tag2]");
        return 1;
    }
    let jails = match b.set_target(&args[0], false) {
        Ok(j) => j,
        Err(c) => return c,
    };
    for j in jails {
        match (args[1].as_str(), args.get(2)) {
            ("add", Some(t)) => tags_add(b, &j, t),
            ("delete", Some(t)) => {
                let path = b.p(&format!("{}/tags", b.jail_dir(&j)));
                let old = std::fs::read_to_string(&path).unwrap_or_default();
                let drop: Vec<&str> = t.split(',').collect();
                let kept: Vec<&str> = old
                    .split_whitespace()
                    .filter(|x| !drop.contains(x))
                    .collect();
                let _ = std::fs::write(path, kept.join("\n") + "\n");
            }
            ("list", _) => {
                let t = std::fs::read_to_string(b.p(&format!("{}/tags", b.jail_dir(&j))))
                    .unwrap_or_default();
                b.data(&format!(
                    "{j}: {}",
                    t.split_whitespace().collect::<Vec<_>>().join(" ")
                ));
            }
            _ => {
                b.error_notify("Usage: bastille tags TARGET [add|delete|list] [tag1,tag2]");
                return 1;
            }
        }
    }
    0
}

/// `bastille setup [vnet|bridge IF|loopback]` — minimal: the conf copy (done by the main script),
/// `vnet` writes devfs.rules (§3 setup), `loopback` clones lo1 as bastille0.
pub fn setup(b: &mut Bx, args: &[String]) -> i32 {
    if let Err(c) = b.root_check() {
        return c;
    }
    const SPEC: Spec = Spec {
        tool: "bastille",
        flags: "hyx",
        long: &["help:h", "yes:y", "debug:x"],
        ..GETOPT
    };
    let p = match b.parse_opts(SPEC, args, &[]) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let rest: Vec<&String> = p.operands.iter().collect();
    match rest.first().map(|s| s.as_str()) {
        None => {
            let rc = b.p("/etc/rc.conf");
            let _ = crate::sysrc::set_var(&rc, "bastille_enable", "YES");
            b.info("Bastille has been configured.");
            0
        }
        Some("vnet") | Some("bridge") => {
            let p = b.p("/etc/devfs.rules");
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if !text.contains("[bastille_vnet=13]") {
                let add = "\n[bastille_vnet=13]\nadd include $devfsrules_hide_all\nadd include $devfsrules_unhide_basic\nadd include $devfsrules_unhide_login\nadd include $devfsrules_jail\nadd include $devfsrules_jail_vnet\nadd path 'bpf*' unhide\n";
                let _ = crate::fsutil::write_file(&p, &(text + add));
            }
            if rest.first().map(|s| s.as_str()) == Some("bridge") {
                b.cx.st
                    .sysctls
                    .insert("net.inet.ip.forwarding".into(), "1".into());
            }
            0
        }
        Some("loopback") => {
            let rc = b.p("/etc/rc.conf");
            let old = crate::sysrc::get_var(std::slice::from_ref(&rc), "cloned_interfaces")
                .unwrap_or_default();
            if !old.split_whitespace().any(|w| w == "lo1") {
                let _ = crate::sysrc::set_var(
                    &rc,
                    "cloned_interfaces",
                    old.split_whitespace()
                        .chain(["lo1"])
                        .collect::<Vec<_>>()
                        .join(" ")
                        .as_str(),
                );
            }
            let _ = crate::sysrc::set_var(&rc, "ifconfig_lo1_name", "bastille0");
            let mut io = Io::default();
            crate::service::cloneup(b.cx, &mut io);
            b.io.out.push_str(&io.out);
            0
        }
        Some(other) => {
            if b.v == Version::Master {
                b.error_exit(&format!("[ERROR]: Unknown setup option: {other}"))
            } else {
                b.error_exit(&format!(
                    "[ERROR]: fakebsd does not simulate 'bastille setup {other}'"
                ))
            }
        }
    }
}
