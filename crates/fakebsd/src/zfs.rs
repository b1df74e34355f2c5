//! `zfs`: datasets and snapshots (reference/bastille.md §7.2, §1.7).
//!
//! A filesystem's data is the directory at its mountpoint under the fake root. A snapshot keeps a copy
//! of that directory (without child datasets) in `$FAKEBSD_STATE/zfs-snapshots/`, so `clone`, `rollback`
//! and `send | receive` move real files.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use crate::fsutil;
use crate::io::{fail, Io};
use crate::opts::{Parsed, Spec, Style, GETOPT};
use crate::state::{Ctx, Dataset};

const AVAIL: u64 = 100 * 1024 * 1024 * 1024;
const PROPS: &[&str] = &[
    "name",
    "type",
    "used",
    "avail",
    "available",
    "refer",
    "referenced",
    "mountpoint",
    "origin",
    "creation",
    "compression",
    "compress",
    "atime",
    "encryption",
    "clones",
    "canmount",
    "mounted",
    "jailed",
];

/// Whether dataset or snapshot `name` exists.
pub fn exists(cx: &Ctx, name: &str) -> bool {
    cx.st.datasets.contains_key(name)
}

fn parent(name: &str) -> Option<&str> {
    name.rsplit_once('/').map(|(p, _)| p)
}

fn is_snap(name: &str) -> bool {
    name.contains('@')
}

/// The effective value of a property: local, inherited from an ancestor, or the default.
fn inherited(cx: &Ctx, name: &str, prop: &str) -> Option<(String, String)> {
    let mut cur = Some(name);
    while let Some(n) = cur {
        if let Some(v) = cx.st.datasets.get(n).and_then(|d| d.props.get(prop)) {
            let src = if n == name {
                "local".to_string()
            } else {
                format!("inherited from {n}")
            };
            return Some((v.clone(), src));
        }
        cur = parent(n);
    }
    None
}

/// The effective mountpoint (None for `none`/`legacy` or snapshots).
pub fn mountpoint(cx: &Ctx, name: &str) -> Option<String> {
    if is_snap(name) {
        return None;
    }
    let mut suffix: Vec<&str> = vec![];
    let mut cur = name;
    loop {
        if let Some(v) = cx
            .st
            .datasets
            .get(cur)
            .and_then(|d| d.props.get("mountpoint"))
        {
            if v == "none" || v == "legacy" {
                return None;
            }
            let mut p = v.trim_end_matches('/').to_string();
            for s in suffix.iter().rev() {
                p.push('/');
                p.push_str(s);
            }
            return Some(if p.is_empty() { "/".into() } else { p });
        }
        match cur.rsplit_once('/') {
            Some((par, last)) => {
                suffix.push(last);
                cur = par;
            }
            None => {
                let mut p = format!("/{cur}");
                for s in suffix.iter().rev() {
                    p.push('/');
                    p.push_str(s);
                }
                return Some(p);
            }
        }
    }
}

fn data_dir(cx: &Ctx, name: &str) -> Option<PathBuf> {
    mountpoint(cx, name).map(|m| cx.host_path(&m))
}

fn snap_dir(cx: &Ctx, snap: &str) -> PathBuf {
    cx.dir
        .join("zfs-snapshots")
        .join(snap.replace('/', "%").replace('@', "+"))
}

/// Real paths of the direct child datasets' mountpoints (excluded from a dataset's own data).
fn child_dirs(cx: &Ctx, name: &str) -> Vec<PathBuf> {
    let prefix = format!("{name}/");
    cx.st
        .datasets
        .keys()
        .filter(|k| k.starts_with(&prefix) && !is_snap(k))
        .filter_map(|k| data_dir(cx, k))
        .collect()
}

fn descendants(cx: &Ctx, name: &str) -> Vec<String> {
    let p1 = format!("{name}/");
    let p2 = format!("{name}@");
    cx.st
        .datasets
        .keys()
        .filter(|k| k.starts_with(&p1) || k.starts_with(&p2))
        .cloned()
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/@".contains(c))
}

/// `zfs create [-p] [-o k=v]... NAME`.
pub fn create(
    cx: &mut Ctx,
    name: &str,
    parents: bool,
    props: &[(String, String)],
) -> Result<(), String> {
    if !valid_name(name) || is_snap(name) {
        return Err(format!("cannot create '{name}': invalid dataset name"));
    }
    let pool = name.split('/').next().unwrap_or(name);
    if !exists(cx, pool) {
        return Err(format!("cannot create '{name}': no such pool '{pool}'"));
    }
    if exists(cx, name) {
        return Err(format!("cannot create '{name}': dataset already exists"));
    }
    let par = parent(name).unwrap_or(pool);
    if !exists(cx, par) {
        if !parents {
            return Err(format!("cannot create '{name}': parent does not exist"));
        }
        create(cx, par, true, &[])?;
    }
    let created = cx.tick();
    let ds = Dataset {
        props: props.iter().cloned().collect(),
        origin: None,
        created,
    };
    cx.st.datasets.insert(name.to_string(), ds);
    if let Some(d) = data_dir(cx, name) {
        let _ = std::fs::create_dir_all(d);
    }
    Ok(())
}

/// `zfs snapshot [-r] DS@SNAP`.
pub fn snapshot(cx: &mut Ctx, snap: &str, recursive: bool) -> Result<(), String> {
    let Some((ds, tag)) = snap.split_once('@') else {
        return Err(format!(
            "cannot create snapshot '{snap}': missing '@' delimiter in snapshot name"
        ));
    };
    if tag.is_empty() || !valid_name(snap) {
        return Err(format!(
            "cannot create snapshot '{snap}': invalid character in snapshot name"
        ));
    }
    if !exists(cx, ds) {
        return Err(format!("cannot open '{ds}': dataset does not exist"));
    }
    if exists(cx, snap) {
        return Err(format!(
            "cannot create snapshot '{snap}': dataset already exists"
        ));
    }
    let mut targets = vec![ds.to_string()];
    if recursive {
        targets.extend(descendants(cx, ds).into_iter().filter(|d| !is_snap(d)));
    }
    for t in targets {
        let name = format!("{t}@{tag}");
        if exists(cx, &name) {
            continue;
        }
        let dst = snap_dir(cx, &name);
        let _ = fsutil::remove_any(&dst);
        if let Some(src) = data_dir(cx, &t) {
            let skip = child_dirs(cx, &t);
            if src.is_dir() {
                fsutil::copy_tree(&src, &dst, &skip)
                    .map_err(|e| format!("cannot create snapshot '{name}': {e}"))?;
            }
        }
        let created = cx.tick();
        cx.st.datasets.insert(
            name,
            Dataset {
                created,
                ..Dataset::default()
            },
        );
    }
    Ok(())
}

/// `zfs clone [-p] SNAP TARGET`.
pub fn clone(cx: &mut Ctx, snap: &str, target: &str, parents: bool) -> Result<(), String> {
    if !is_snap(snap) {
        return Err(format!(
            "cannot create '{target}': '{snap}' is not a snapshot"
        ));
    }
    if !exists(cx, snap) {
        return Err(format!("cannot open '{snap}': dataset does not exist"));
    }
    create(cx, target, parents, &[])?;
    if let Some(ds) = cx.st.datasets.get_mut(target) {
        ds.origin = Some(snap.to_string());
    }
    restore(cx, snap, target)
}

/// Replaces `target`'s data with snapshot `snap`'s.
fn restore(cx: &Ctx, snap: &str, target: &str) -> Result<(), String> {
    let Some(dst) = data_dir(cx, target) else {
        return Ok(());
    };
    let keep = child_dirs(cx, target);
    fsutil::clear_dir(&dst, &keep).map_err(|e| format!("cannot restore '{target}': {e}"))?;
    let src = snap_dir(cx, snap);
    if src.is_dir() {
        fsutil::copy_tree(&src, &dst, &[])
            .map_err(|e| format!("cannot restore '{target}': {e}"))?;
    }
    Ok(())
}

fn clones_of(cx: &Ctx, snap: &str) -> Vec<String> {
    cx.st
        .datasets
        .iter()
        .filter(|(_, d)| d.origin.as_deref() == Some(snap))
        .map(|(k, _)| k.clone())
        .collect()
}

/// The first thing keeping `name` busy: a running jail rooted in it or a mount beneath it.
fn busy(cx: &Ctx, name: &str) -> Option<String> {
    let mp = mountpoint(cx, name)?;
    let under = |p: &str| p == mp || p.starts_with(&format!("{}/", mp.trim_end_matches('/')));
    if cx.st.jails.values().any(|j| under(&j.path)) {
        return Some(mp);
    }
    if cx.st.mounts.iter().any(|m| under(&m.target)) {
        return Some(mp);
    }
    None
}

/// `zfs destroy [-r] [-R] [-f] NAME` (dataset or snapshot).
pub fn destroy(cx: &mut Ctx, name: &str, recursive: bool, force: bool) -> Result<(), String> {
    if !exists(cx, name) {
        return Err(format!("cannot open '{name}': dataset does not exist"));
    }
    if !name.contains('/') && !is_snap(name) {
        return Err(format!("cannot destroy '{name}': operation does not apply to pools\nuse 'zfs destroy -r {name}' to destroy all datasets in the pool\nuse 'zpool destroy {name}' to destroy the pool itself"));
    }
    if is_snap(name) {
        // `-r` on a snapshot: the snapshot of that name in every descendant file system too.
        let mut snaps = vec![name.to_string()];
        if recursive {
            let (base, tag) = name.split_once('@').unwrap_or((name, ""));
            snaps.extend(
                descendants(cx, base)
                    .into_iter()
                    .filter(|d| !is_snap(d))
                    .map(|d| format!("{d}@{tag}"))
                    .filter(|s| exists(cx, s)),
            );
        }
        for snap in &snaps {
            let clones = clones_of(cx, snap);
            if !clones.is_empty() {
                return Err(format!(
                    "cannot destroy '{snap}': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\n{}",
                    clones.join("\n")
                ));
            }
        }
        for snap in &snaps {
            cx.st.datasets.remove(snap.as_str());
            let _ = fsutil::remove_any(&snap_dir(cx, snap));
        }
        return Ok(());
    }
    let desc = descendants(cx, name);
    if !recursive && !desc.is_empty() {
        let kind = if desc.iter().any(|d| !is_snap(d)) {
            "filesystem has children"
        } else {
            "filesystem has dependent snapshots"
        };
        return Err(format!(
            "cannot destroy '{name}': {kind}\nuse '-r' to destroy the following datasets:\n{}",
            desc.join("\n")
        ));
    }
    let mut all = desc.clone();
    all.push(name.to_string());
    for d in &all {
        if is_snap(d) {
            let clones: Vec<String> = clones_of(cx, d)
                .into_iter()
                .filter(|c| !all.contains(c))
                .collect();
            if !clones.is_empty() {
                return Err(format!(
                    "cannot destroy '{d}': snapshot has dependent clones\nuse '-R' to destroy the following datasets:\n{}",
                    clones.join("\n")
                ));
            }
        }
    }
    for d in &all {
        if is_snap(d) {
            continue;
        }
        if let Some(mp) = busy(cx, d) {
            let jail_busy = cx.st.jails.values().any(|j| {
                j.path == mp
                    || j.path
                        .starts_with(&format!("{}/", mp.trim_end_matches('/')))
            });
            // -f force-unmounts nullfs/devfs mounts beneath; a running jail still holds it (unverified).
            if !force || jail_busy {
                return Err(format!("cannot unmount '{mp}': pool or dataset is busy"));
            }
            let prefix = format!("{}/", mp.trim_end_matches('/'));
            cx.st
                .mounts
                .retain(|m| !(m.target == mp || m.target.starts_with(&prefix)));
        }
    }
    let dir = data_dir(cx, name);
    for d in &all {
        cx.st.datasets.remove(d);
        if is_snap(d) {
            let _ = fsutil::remove_any(&snap_dir(cx, d));
        }
    }
    if let Some(dir) = dir {
        let _ = fsutil::remove_any(&dir);
    }
    Ok(())
}

/// `zfs rollback [-r] DS@SNAP`.
pub fn rollback(cx: &mut Ctx, snap: &str, recursive: bool) -> Result<(), String> {
    let Some((ds, _)) = snap.split_once('@') else {
        return Err(format!(
            "cannot open '{snap}': operation only applies to snapshots"
        ));
    };
    let Some(created) = cx.st.datasets.get(snap).map(|d| d.created) else {
        return Err(format!("cannot open '{snap}': dataset does not exist"));
    };
    let prefix = format!("{ds}@");
    let newer: Vec<String> = cx
        .st
        .datasets
        .iter()
        .filter(|(k, d)| k.starts_with(&prefix) && d.created > created)
        .map(|(k, _)| k.clone())
        .collect();
    if !newer.is_empty() {
        if !recursive {
            return Err(format!(
                "cannot rollback to '{snap}': more recent snapshots or bookmarks exist\nuse '-r' to force deletion of the following snapshots and bookmarks:\n{}",
                newer.join("\n")
            ));
        }
        for n in &newer {
            destroy(cx, n, false, false)?;
        }
    }
    restore(cx, snap, ds)
}

/// `zfs send SNAP | zfs receive DS` without the pipe (what `bastille create -T` does with ZFS).
pub fn receive(cx: &mut Ctx, snap: &str, target: &str, force: bool) -> Result<(), String> {
    if !exists(cx, snap) {
        return Err(format!("cannot open '{snap}': dataset does not exist"));
    }
    if exists(cx, target) {
        if !force {
            return Err(format!(
                "cannot receive new filesystem stream: destination '{target}' exists\nmust specify -F to overwrite it"
            ));
        }
    } else {
        let par = parent(target).unwrap_or(target);
        if !exists(cx, par) {
            return Err(format!(
                "cannot receive new filesystem stream: parent of '{target}' does not exist"
            ));
        }
        create(cx, target, false, &[])?;
    }
    restore(cx, snap, target)?;
    let tag = snap.split_once('@').map(|(_, t)| t).unwrap_or("");
    let copy = format!("{target}@{tag}");
    if !exists(cx, &copy) {
        snapshot(cx, &copy, false)?;
    }
    Ok(())
}

/// A property's value as `zfs get -H -o value` prints it (`-p` gives exact numbers).
pub fn prop(cx: &Ctx, name: &str, prop: &str, exact: bool) -> Option<(String, String)> {
    let ds = cx.st.datasets.get(name)?;
    let snap = is_snap(name);
    let size = |n: u64| if exact { n.to_string() } else { nicenum(n) };
    let v = match prop {
        "name" => (name.to_string(), "-".into()),
        "type" => (
            if snap { "snapshot" } else { "filesystem" }.into(),
            "-".into(),
        ),
        "used" => {
            let n = if snap {
                0
            } else {
                data_dir(cx, name)
                    .map(|d| fsutil::tree_size(&d))
                    .unwrap_or(0)
                    + 96 * 1024
            };
            (size(n), "-".into())
        }
        "refer" | "referenced" => {
            let n = if snap {
                fsutil::tree_size(&snap_dir(cx, name))
            } else {
                data_dir(cx, name)
                    .map(|d| fsutil::tree_size(&d))
                    .unwrap_or(0)
            } + 96 * 1024;
            (size(n), "-".into())
        }
        "avail" | "available" => (if snap { "-".into() } else { size(AVAIL) }, "-".into()),
        "mountpoint" => {
            if snap {
                ("-".into(), "-".into())
            } else {
                let src = inherited(cx, name, "mountpoint")
                    .map(|(_, s)| s)
                    .unwrap_or_else(|| "default".into());
                let v = match inherited(cx, name, "mountpoint") {
                    Some((v, _)) if v == "none" || v == "legacy" => v,
                    _ => mountpoint(cx, name).unwrap_or_else(|| "none".into()),
                };
                (v, src)
            }
        }
        "origin" => (ds.origin.clone().unwrap_or_else(|| "-".into()), "-".into()),
        "creation" => ((1_760_000_000 + ds.created).to_string(), "-".into()),
        "clones" => {
            let c = clones_of(cx, name);
            (if snap { c.join(",") } else { "-".into() }, "-".into())
        }
        "mounted" => (
            if snap {
                "-".into()
            } else if mountpoint(cx, name).is_some() {
                "yes".into()
            } else {
                "no".into()
            },
            "-".into(),
        ),
        "compress" | "compression" => local_or(cx, name, "compression", "compress", "off"),
        "atime" => local_or(cx, name, "atime", "atime", "on"),
        "encryption" => ("off".into(), "default".into()),
        "canmount" => match ds.props.get("canmount") {
            Some(v) => (v.clone(), "local".into()),
            None => ("on".into(), "default".into()),
        },
        "jailed" => local_or(cx, name, "jailed", "jailed", "off"),
        other => inherited(cx, name, other)?,
    };
    Some(v)
}

fn local_or(cx: &Ctx, name: &str, a: &str, b: &str, default: &str) -> (String, String) {
    inherited(cx, name, a)
        .or_else(|| inherited(cx, name, b))
        .unwrap_or_else(|| (default.into(), "default".into()))
}

/// Human-readable size as zfs prints it (`96K`, `1.23M`).
fn nicenum(n: u64) -> String {
    const UNITS: &[&str] = &["B", "K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.2}{}", UNITS[u])
    } else if v < 100.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

fn usage(io: &mut Io, sub: &str) -> i32 {
    io.err(&format!("usage:\n\tzfs {sub} ...\n\nFor the property list, run: zfs set|get\n\nFor the delegated permission list, run: zfs allow|unallow"));
    2
}

fn perm_denied(io: &mut Io, what: &str, name: &str) -> i32 {
    fail(io, &format!("cannot {what} '{name}': permission denied"))
}

/// A subcommand's options: letters without and with a value. Operands may stand between options, as the
/// simulation has always taken them; a bad option is zfs's message, the usage and exit status 2.
const fn spec(flags: &'static str, valued: &'static str) -> Spec {
    Spec {
        tool: "zfs",
        flags,
        valued,
        permute: true,
        status: 2,
        style: Style::Zfs,
        ..GETOPT
    }
}

/// Parses a subcommand's arguments; a bad option prints zfs's line and the usage of `sub_name`.
fn parse(spec: Spec, args: &[String], sub_name: &str, io: &mut Io) -> Result<Parsed, i32> {
    spec.parse(args).map_err(|e| {
        if let Some(line) = e.problem_line() {
            io.err(&line);
        }
        usage(io, sub_name)
    })
}

fn parse_props(o: &Parsed, io: &mut Io) -> Result<Vec<(String, String)>, i32> {
    let mut props = vec![];
    for (c, v) in &o.opts {
        if let (&"o", Some(v)) = (c, v) {
            match v.split_once('=') {
                Some((k, val)) => props.push((k.to_string(), val.to_string())),
                None => {
                    io.err("missing '=' for property=value argument");
                    return Err(2);
                }
            }
        }
    }
    Ok(props)
}

/// The `zfs` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let Some(sub) = args.first() else {
        io.err("usage: zfs command args ...");
        return 2;
    };
    let rest = &args[1..];
    let mutating = !matches!(sub.as_str(), "list" | "get" | "send");
    if mutating && !cx.is_root() {
        let target = rest.last().map(String::as_str).unwrap_or("");
        return perm_denied(io, sub, target);
    }
    match sub.as_str() {
        "list" => list(cx, rest, io),
        "get" => get(cx, rest, io),
        "send" => send(cx, rest, io),
        "create" => create_cmd(cx, rest, io),
        "snapshot" | "snap" => snapshot_cmd(cx, rest, io),
        "clone" => clone_cmd(cx, rest, io),
        "destroy" => destroy_cmd(cx, rest, io),
        "rollback" => rollback_cmd(cx, rest, io),
        "set" => set_cmd(cx, rest, io),
        "inherit" => inherit_cmd(cx, rest, io),
        "receive" | "recv" => receive_cmd(cx, rest, io),
        "mount" => mount_cmd(cx, rest, io),
        "unmount" | "umount" => 0,
        other => {
            io.err(&format!("unrecognized command '{other}'"));
            usage(io, "<command>")
        }
    }
}

/// The exit status of a subcommand's outcome: 0, or 1 with zfs's message.
fn status(io: &mut Io, res: Result<(), String>) -> i32 {
    match res {
        Ok(()) => 0,
        Err(e) => {
            io.err(&e);
            1
        }
    }
}

/// `zfs create [-p] [-o property=value] ... <filesystem>`.
fn create_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("pu", "o"), rest, "create", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let props = match parse_props(&o, io) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let [name] = o.operands.as_slice() else {
        return usage(io, "create [-p] [-o property=value] ... <filesystem>");
    };
    let res = create(cx, name, o.has("p"), &props);
    status(io, res)
}

/// `zfs snapshot [-r] <filesystem|volume>@<snap> ...`.
fn snapshot_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("r", "o"), rest, "snapshot", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    if o.operands.is_empty() {
        return usage(io, "snapshot [-r] <filesystem|volume>@<snap> ...");
    }
    let res = o
        .operands
        .iter()
        .try_for_each(|s| snapshot(cx, s, o.has("r")));
    status(io, res)
}

/// `zfs clone [-p] [-o property=value] ... <snapshot> <filesystem|volume>`.
fn clone_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("p", "o"), rest, "clone", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let props = match parse_props(&o, io) {
        Ok(p) => p,
        Err(c) => return c,
    };
    let [snap, target] = o.operands.as_slice() else {
        return usage(
            io,
            "clone [-p] [-o property=value] ... <snapshot> <filesystem|volume>",
        );
    };
    let res = clone(cx, snap, target, o.has("p")).map(|_| {
        if let Some(d) = cx.st.datasets.get_mut(target.as_str()) {
            d.props.extend(props);
        }
    });
    status(io, res)
}

/// `zfs destroy [-fnpRrv] <filesystem|volume>` (`-R` also destroys clones of its snapshots).
fn destroy_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("rRfnpv", ""), rest, "destroy", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let [name] = o.operands.as_slice() else {
        return usage(io, "destroy [-fnpRrv] <filesystem|volume>");
    };
    let r = o.has("r") || o.has("R");
    if o.has("R") {
        // -R also destroys clones of the snapshots being destroyed.
        let mut snaps = vec![name.clone()];
        snaps.extend(descendants(cx, name));
        for s in snaps.iter().filter(|s| is_snap(s)) {
            for c in clones_of(cx, s) {
                let _ = destroy(cx, &c, true, o.has("f"));
            }
        }
    }
    let res = destroy(cx, name, r, o.has("f"));
    status(io, res)
}

/// `zfs rollback [-rRf] <snapshot>`.
fn rollback_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("rRf", ""), rest, "rollback", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let [snap] = o.operands.as_slice() else {
        return usage(io, "rollback [-rRf] <snapshot>");
    };
    let res = rollback(cx, snap, o.has("r") || o.has("R"));
    status(io, res)
}

/// `zfs set <property=value> ... <filesystem|volume|snapshot> ...`.
fn set_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let (assigns, names): (Vec<&String>, Vec<&String>) = rest
        .iter()
        .partition(|a| a.contains('=') && !a.contains('/'));
    if assigns.is_empty() || names.is_empty() {
        return usage(
            io,
            "set <property=value> ... <filesystem|volume|snapshot> ...",
        );
    }
    let res = names.iter().try_for_each(|n| {
        if !exists(cx, n) {
            return Err(format!("cannot open '{n}': dataset does not exist"));
        }
        for a in &assigns {
            let (k, v) = a.split_once('=').unwrap_or((a.as_str(), ""));
            set_prop(cx, n, k, v);
        }
        Ok(())
    });
    status(io, res)
}

/// `zfs inherit [-rS] <property> <filesystem|volume|snapshot>`.
fn inherit_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("rS", ""), rest, "inherit", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let [p, name] = o.operands.as_slice() else {
        return usage(
            io,
            "inherit [-rS] <property> <filesystem|volume|snapshot> ...",
        );
    };
    let res = match cx.st.datasets.get_mut(name.as_str()) {
        Some(d) => {
            d.props.remove(p.as_str());
            Ok(())
        }
        None => Err(format!("cannot open '{name}': dataset does not exist")),
    };
    status(io, res)
}

/// `zfs receive [-Fu] <filesystem>`: a stream of this simulation's `zfs send` on stdin.
fn receive_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("Fuvdnesh", "ox"), rest, "receive", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let [target] = o.operands.as_slice() else {
        return usage(io, "receive [-vnsFhu] <filesystem|volume|snapshot>");
    };
    let mut input = String::new();
    let _ = std::io::stdin().read_to_string(&mut input);
    let res = match input
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("FAKEBSD-ZFS-SEND "))
    {
        Some(snap) => {
            let snap = snap.trim().to_string();
            receive(cx, &snap, target, o.has("F"))
        }
        None => Err("cannot receive: invalid stream (bad magic number)".to_string()),
    };
    status(io, res)
}

/// `zfs mount` (lists) and `zfs mount DATASET` (nothing to do: datasets are always mounted).
fn mount_cmd(cx: &mut Ctx, rest: &[String], io: &mut Io) -> i32 {
    if rest.is_empty() {
        for name in cx.st.datasets.keys() {
            if let Some(m) = mountpoint(cx, name) {
                io.out(&format!("{name:<40}{m}"));
            }
        }
    }
    0
}

fn set_prop(cx: &mut Ctx, name: &str, k: &str, v: &str) {
    let old = data_dir(cx, name);
    if let Some(d) = cx.st.datasets.get_mut(name) {
        d.props.insert(k.to_string(), v.to_string());
    }
    if k == "mountpoint" {
        if let (Some(old), Some(new)) = (old, data_dir(cx, name)) {
            if old != new && old.exists() && !new.exists() {
                if let Some(p) = new.parent() {
                    let _ = std::fs::create_dir_all(p);
                }
                let _ = std::fs::rename(&old, &new);
            }
        }
    }
}

fn send(cx: &Ctx, args: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("DLPRbcehnpsvw", "iI"), args, "send", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let Some(snap) = o.operands.last() else {
        return usage(io, "send [-DLPRbcehnpsvw] [-[i|I] snapshot] <snapshot>");
    };
    if !exists(cx, snap) {
        return fail(io, &format!("cannot open '{snap}': dataset does not exist"));
    }
    if std::io::stdout().is_terminal() {
        return fail(
            io,
            "Error: Stream can not be written to a terminal.\nYou must redirect standard output.",
        );
    }
    io.out(&format!("FAKEBSD-ZFS-SEND {snap}"));
    0
}

fn list(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("Hpr", "odstS"), args, "list", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let scripted = o.has("H");
    let exact = o.has("p");
    let mut recursive = o.has("r");
    let mut depth: Option<usize> = None;
    let mut cols: Vec<String> = ["name", "used", "avail", "refer", "mountpoint"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types: Vec<String> = vec![];
    for (c, v) in &o.opts {
        let v = v.as_deref().unwrap_or_default();
        match *c {
            "o" => cols = v.split(',').map(str::to_string).collect(),
            "d" => {
                depth = v.parse().ok();
                recursive = true;
            }
            "t" => types = v.split(',').map(str::to_string).collect(),
            _ => {}
        }
    }
    for c in &cols {
        if !PROPS.contains(&c.as_str()) && !c.contains(':') {
            io.err(&format!("bad property list: invalid property '{c}'"));
            return usage(io, "list");
        }
    }
    let want_snap = types
        .iter()
        .any(|t| t == "snapshot" || t == "snap" || t == "all");
    let want_fs = types.is_empty()
        || types
            .iter()
            .any(|t| t == "filesystem" || t == "fs" || t == "all");
    let mut names: Vec<String> = vec![];
    if o.operands.is_empty() {
        names = cx
            .st
            .datasets
            .keys()
            .filter(|k| if is_snap(k) { want_snap } else { want_fs })
            .cloned()
            .collect();
    } else {
        for n in &o.operands {
            if !exists(cx, n) {
                return fail(io, &format!("cannot open '{n}': dataset does not exist"));
            }
            if !recursive || is_snap(n) {
                names.push(n.clone());
                continue;
            }
            let base = n.matches('/').count();
            let mut set = vec![n.clone()];
            set.extend(descendants(cx, n));
            for d in set {
                let dd = d.split('@').next().unwrap_or(&d).matches('/').count() - base
                    + usize::from(is_snap(&d));
                if depth.is_some_and(|m| dd > m) {
                    continue;
                }
                if (is_snap(&d) && want_snap) || (!is_snap(&d) && want_fs) {
                    names.push(d);
                }
            }
        }
    }
    names.sort_by_key(|a| order_key(cx, a));
    names.dedup();
    let mut rows: Vec<Vec<String>> = vec![];
    for n in &names {
        rows.push(
            cols.iter()
                .map(|c| {
                    prop(cx, n, c, exact)
                        .map(|v| v.0)
                        .unwrap_or_else(|| "-".into())
                })
                .collect(),
        );
    }
    print_table(io, &cols, &rows, scripted);
    0
}

/// Sort datasets by name, snapshots after their dataset in creation order.
fn order_key(cx: &Ctx, name: &str) -> (String, u64) {
    match name.split_once('@') {
        Some((ds, _)) => (
            format!("{ds}\u{1}"),
            cx.st.datasets.get(name).map(|d| d.created).unwrap_or(0),
        ),
        None => (name.to_string(), 0),
    }
}

fn print_table(io: &mut Io, cols: &[String], rows: &[Vec<String>], scripted: bool) {
    if scripted {
        for r in rows {
            io.out(&r.join("\t"));
        }
        return;
    }
    let header: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            "avail" | "available" => "AVAIL".to_string(),
            "refer" | "referenced" => "REFER".to_string(),
            "compression" | "compress" => "COMPRESS".to_string(),
            other => other.to_uppercase(),
        })
        .collect();
    let mut all = vec![header];
    all.extend(rows.iter().cloned());
    let widths: Vec<usize> = (0..cols.len())
        .map(|i| all.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for r in &all {
        let mut line = String::new();
        for (i, v) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(v);
            } else {
                line.push_str(&format!("{v:<w$}  ", w = widths[i]));
            }
        }
        io.out(line.trim_end());
    }
}

fn get(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let o = match parse(spec("Hpr", "odst"), args, "get", io) {
        Ok(o) => o,
        Err(c) => return c,
    };
    let scripted = o.has("H");
    let exact = o.has("p");
    let mut fields = vec!["name", "property", "value", "source"];
    if let Some(v) = o.value("o") {
        fields = v
            .split(',')
            .map(|f| match f {
                "name" => "name",
                "property" => "property",
                "value" => "value",
                "received" => "received",
                _ => "source",
            })
            .collect();
    }
    let Some((props, names)) = o.operands.split_first() else {
        return usage(
            io,
            "get [-rHp] [-d max] [-o \"all\" | field[,...]] <\"all\" | property[,...]> ...",
        );
    };
    let props: Vec<String> = if props == "all" {
        PROPS
            .iter()
            .filter(|p| !["avail", "refer", "compress"].contains(p))
            .map(|s| s.to_string())
            .collect()
    } else {
        props.split(',').map(str::to_string).collect()
    };
    for p in &props {
        if !PROPS.contains(&p.as_str()) && !p.contains(':') {
            io.err(&format!("bad property list: invalid property '{p}'"));
            return usage(io, "get");
        }
    }
    let mut rows = vec![];
    for n in names {
        if !exists(cx, n) {
            return fail(io, &format!("cannot open '{n}': dataset does not exist"));
        }
        let mut set = vec![n.clone()];
        if o.has("r") {
            set.extend(descendants(cx, n));
        }
        for d in set {
            for p in &props {
                let (v, src) = prop(cx, &d, p, exact).unwrap_or_else(|| ("-".into(), "-".into()));
                let row: Vec<String> = fields
                    .iter()
                    .map(|f| match *f {
                        "name" => d.clone(),
                        "property" => p.clone(),
                        "value" => v.clone(),
                        "received" => "-".into(),
                        _ => src.clone(),
                    })
                    .collect();
                rows.push(row);
            }
        }
    }
    let cols: Vec<String> = fields.iter().map(|s| s.to_string()).collect();
    print_table(io, &cols, &rows, scripted);
    0
}

/// Default datasets of a fresh FreeBSD install on ZFS.
pub fn initial_datasets() -> BTreeMap<String, Dataset> {
    let mut m = BTreeMap::new();
    let mut add = |name: &str, mp: Option<&str>| {
        let mut d = Dataset::default();
        if let Some(mp) = mp {
            d.props.insert("mountpoint".into(), mp.into());
        }
        m.insert(name.to_string(), d);
    };
    add("zroot", Some("/zroot"));
    add("zroot/ROOT", Some("none"));
    add("zroot/ROOT/default", Some("/"));
    add("zroot/home", Some("/home"));
    add("zroot/tmp", Some("/tmp"));
    add("zroot/usr", Some("/usr"));
    add("zroot/var", Some("/var"));
    m
}
