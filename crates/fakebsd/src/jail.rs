//! `jail`: jail.conf parsing, `jail -c` and `jail -r` (the start/stop engine under `bastille start/stop`).
//!
//! Hooks (`exec.prestart`, `exec.poststart`, `exec.prestop`, `exec.poststop`, `exec.created`,
//! `exec.release`) really run through /bin/sh with our tools first on PATH, so Bastille's epair
//! one-liner (§1.4) creates and renames interfaces. `exec.start`/`exec.stop` (the jail's /etc/rc) and
//! `command=` are not run: nothing here can run the jail's own FreeBSD userland.

use std::collections::BTreeMap;
use std::path::Path;

use crate::ifconfig;
use crate::io::{fail, Io};
use crate::opts::{Spec, GETOPT};
use crate::state::{Ctx, Inet, Jail, Mount};

/// Parameters of one jail: name → values (`+=` appends; a boolean has no values).
pub type Params = BTreeMap<String, Vec<String>>;

#[derive(Debug, PartialEq)]
enum Tok {
    Open,
    Close,
    Semi,
    Eq,
    PlusEq,
    Comma,
    Word(String),
}

/// Marks an escaped `$` so variable expansion leaves it alone.
const LITERAL_DOLLAR: char = '\u{1}';

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut toks = vec![];
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '#' || (c == '/' && chars.get(i + 1) == Some(&'/')) {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i + 1 < chars.len() && !(chars[i] == '*' && chars[i + 1] == '/') {
                if chars[i] == '\n' {
                    line += 1;
                }
                i += 1;
            }
            i += 2;
            continue;
        }
        match c {
            '{' => toks.push((line, Tok::Open)),
            '}' => toks.push((line, Tok::Close)),
            ';' => toks.push((line, Tok::Semi)),
            '=' => toks.push((line, Tok::Eq)),
            ',' => toks.push((line, Tok::Comma)),
            '+' if chars.get(i + 1) == Some(&'=') => {
                toks.push((line, Tok::PlusEq));
                i += 1;
            }
            '"' | '\'' => {
                let q = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(format!("line {line}: unterminated quoted string")),
                        Some(&x) if x == q => break,
                        Some('\\') if q == '"' => {
                            i += 1;
                            match chars.get(i) {
                                Some('$') => s.push(LITERAL_DOLLAR),
                                Some('n') => s.push('\n'),
                                Some(&x) => s.push(x),
                                None => {}
                            }
                        }
                        Some('$') if q == '\'' => s.push(LITERAL_DOLLAR),
                        Some(&x) => {
                            if x == '\n' {
                                line += 1;
                            }
                            s.push(x)
                        }
                    }
                    i += 1;
                }
                toks.push((line, Tok::Word(s)));
            }
            _ => {
                let mut s = String::new();
                while i < chars.len() && !chars[i].is_whitespace() && !"{};=,\"'".contains(chars[i])
                {
                    if chars[i] == '+' && chars.get(i + 1) == Some(&'=') {
                        break;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                toks.push((line, Tok::Word(s)));
                continue;
            }
        }
        i += 1;
    }
    Ok(toks)
}

fn parse_param(
    toks: &[(usize, Tok)],
    i: &mut usize,
    name: String,
    into: &mut Params,
) -> Result<(), String> {
    let line = toks.get(*i).map(|t| t.0).unwrap_or(0);
    match toks.get(*i).map(|t| &t.1) {
        Some(Tok::Semi) => {
            *i += 1;
            into.insert(name, vec![]);
            Ok(())
        }
        Some(Tok::Eq) | Some(Tok::PlusEq) => {
            let append = toks[*i].1 == Tok::PlusEq;
            *i += 1;
            let mut vals = vec![];
            loop {
                match toks.get(*i).map(|t| &t.1) {
                    Some(Tok::Word(w)) => vals.push(w.clone()),
                    _ => return Err(format!("line {line}: syntax error")),
                }
                *i += 1;
                match toks.get(*i).map(|t| &t.1) {
                    Some(Tok::Comma) => *i += 1,
                    Some(Tok::Semi) => {
                        *i += 1;
                        break;
                    }
                    _ => return Err(format!("line {line}: syntax error")),
                }
            }
            let e = into.entry(name).or_default();
            if append {
                e.extend(vals);
            } else {
                *e = vals;
            }
            Ok(())
        }
        _ => Err(format!("line {line}: syntax error")),
    }
}

/// Parses jail.conf text into per-jail parameters (globals and `*` merged in).
pub fn parse_conf(text: &str) -> Result<BTreeMap<String, Params>, String> {
    let toks = lex(text)?;
    let mut globals = Params::new();
    let mut jails: Vec<(String, Params)> = vec![];
    let mut i = 0;
    while i < toks.len() {
        let (line, t) = &toks[i];
        let Tok::Word(w) = t else {
            return Err(format!("line {line}: syntax error"));
        };
        let w = w.clone();
        i += 1;
        if toks.get(i).map(|t| &t.1) == Some(&Tok::Open) {
            i += 1;
            let mut p = Params::new();
            loop {
                match toks.get(i).map(|t| &t.1) {
                    Some(Tok::Close) => {
                        i += 1;
                        break;
                    }
                    Some(Tok::Word(n)) => {
                        let n = n.clone();
                        i += 1;
                        parse_param(&toks, &mut i, n, &mut p)?;
                    }
                    _ => return Err(format!("line {line}: syntax error")),
                }
            }
            jails.push((w, p));
        } else {
            parse_param(&toks, &mut i, w, &mut globals)?;
        }
    }
    let star = jails
        .iter()
        .find(|(n, _)| n == "*")
        .map(|(_, p)| p.clone())
        .unwrap_or_default();
    let mut out = BTreeMap::new();
    for (name, p) in jails.into_iter().filter(|(n, _)| n != "*") {
        let mut all = globals.clone();
        for (k, v) in star.iter().chain(p.iter()) {
            all.insert(k.clone(), v.clone());
        }
        out.insert(name, all);
    }
    Ok(out)
}

/// Expands `$name`/`${name}` from the jail's own parameters; escaped `\$` stays literal.
fn expand_vars(name: &str, p: &mut Params) -> Result<(), String> {
    let mut lookup = p.clone();
    lookup.insert("name".into(), vec![name.to_string()]);
    for vals in p.values_mut() {
        for v in vals.iter_mut() {
            let mut out = String::new();
            let mut chars = v.chars().peekable();
            while let Some(c) = chars.next() {
                if c != '$' {
                    out.push(c);
                    continue;
                }
                let mut var = String::new();
                if chars.peek() == Some(&'{') {
                    chars.next();
                    for x in chars.by_ref() {
                        if x == '}' {
                            break;
                        }
                        var.push(x);
                    }
                } else {
                    while let Some(&x) = chars.peek() {
                        if x.is_ascii_alphanumeric() || x == '_' || x == '.' {
                            var.push(x);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                match lookup.get(&var) {
                    Some(vs) => out.push_str(&vs.join(",")),
                    // (unverified) jail(8)'s wording for an unknown variable
                    None => return Err(format!("jail: {name}: unknown parameter \"{var}\"")),
                }
            }
            *v = out.replace(LITERAL_DOLLAR, "$");
        }
    }
    Ok(())
}

fn first<'a>(p: &'a Params, k: &str) -> Option<&'a str> {
    p.get(k).and_then(|v| v.first()).map(String::as_str)
}

/// Looks up a running jail by name or jid.
pub fn find(cx: &Ctx, key: &str) -> Option<String> {
    if cx.st.jails.contains_key(key) {
        return Some(key.to_string());
    }
    cx.st
        .jails
        .iter()
        .find(|(_, j)| j.jid.to_string() == key)
        .map(|(n, _)| n.clone())
}

fn run_hooks(cx: &mut Ctx, name: &str, p: &Params, hook: &str, io: &mut Io) -> Result<(), String> {
    for cmd in p.get(hook).cloned().unwrap_or_default() {
        if cx.run_shell(&cmd, io) != 0 {
            return Err(format!("jail: {name}: {hook} {cmd}: failed"));
        }
    }
    Ok(())
}

/// `jail -c` for `name` with resolved parameters. Prints `NAME: created`.
pub fn create(cx: &mut Ctx, name: &str, mut p: Params, io: &mut Io) -> i32 {
    if !cx.is_root() {
        return fail(io, "jail: jail_set: Operation not permitted");
    }
    if let Err(e) = expand_vars(name, &mut p) {
        return fail(io, &e);
    }
    if cx.st.jails.contains_key(name) {
        // (unverified) wording
        return fail(io, &format!("jail: {name}: already exists"));
    }
    let Some(path) = first(&p, "path").map(str::to_string) else {
        return fail(io, &format!("jail: {name}: path: no value"));
    };
    if !cx.host_path(&path).is_dir() {
        return fail(
            io,
            &format!("jail: {name}: path {path}: No such file or directory"),
        );
    }
    if let Some(log) = first(&p, "exec.consolelog") {
        let _ = crate::fsutil::write_file(&cx.host_path(log), "");
    }
    if let Err(e) = run_hooks(cx, name, &p, "exec.prestart", io) {
        return fail(io, &e);
    }
    let mounts = match mounts(cx, name, &p, &path, io) {
        Ok(m) => m,
        Err(c) => return c,
    };
    let vnet = p.contains_key("vnet") && first(&p, "vnet") != Some("inherit");
    let mut jail = Jail {
        path: path.clone(),
        hostname: first(&p, "host.hostname").unwrap_or(name).to_string(),
        vnet,
        persist: p.contains_key("persist"),
        osrelease: first(&p, "osrelease")
            .unwrap_or(crate::state::HOST_VERSION)
            .to_string(),
        params: p.iter().map(|(k, v)| (k.clone(), v.join(","))).collect(),
        ..Jail::default()
    };
    if !vnet {
        if let Err(c) = shared_ips(cx, name, &p, &mut jail, io) {
            return c;
        }
    }
    cx.st.next_jid += 1;
    jail.jid = cx.st.next_jid;
    cx.st.jails.insert(name.to_string(), jail);
    cx.st.mounts.extend(mounts);
    if vnet {
        if let Err(c) = vnet_interfaces(cx, name, &p, io) {
            return c;
        }
    }
    for hook in ["exec.created", "exec.poststart"] {
        if let Err(e) = run_hooks(cx, name, &p, hook, io) {
            return fail(io, &e);
        }
    }
    // exec.start ('/bin/sh /etc/rc') is not run, but what it would start of the simulated package
    // services (postgresql, nginx: enabled and ready) is started.
    if p.contains_key("exec.start") {
        crate::service::rc_autostart(cx, name);
    }
    io.out(&format!("{name}: created"));
    0
}

/// Mounts: mount.fstab then mount.devfs (jail(8) order); a missing source or mount point fails the create.
fn mounts(cx: &Ctx, name: &str, p: &Params, path: &str, io: &mut Io) -> Result<Vec<Mount>, i32> {
    let mut mounts = vec![];
    if let Some(fstab) = first(p, "mount.fstab") {
        let text = std::fs::read_to_string(cx.host_path(fstab)).unwrap_or_default();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() || f[0].starts_with('#') || f.len() < 4 {
                continue;
            }
            if !cx.host_path(f[1]).is_dir() || (f[2] == "nullfs" && !cx.host_path(f[0]).exists()) {
                let missing = if cx.host_path(f[1]).is_dir() {
                    f[0]
                } else {
                    f[1]
                };
                io.err(&format!(
                    "mount_{}: {missing}: No such file or directory",
                    f[2]
                ));
                return Err(fail(
                    io,
                    &format!(
                        "jail: {name}: /sbin/mount -t {} -o {} {} {}: failed",
                        f[2], f[3], f[0], f[1]
                    ),
                ));
            }
            mounts.push(Mount {
                source: f[0].into(),
                target: f[1].into(),
                fstype: f[2].into(),
                opts: f[3].into(),
            });
        }
    }
    if p.contains_key("mount.devfs") {
        let dev = format!("{}/dev", path.trim_end_matches('/'));
        if !cx.host_path(&dev).is_dir() {
            return Err(fail(
                io,
                &format!("jail: {name}: {dev}: No such file or directory"),
            ));
        }
        mounts.push(Mount {
            source: "devfs".into(),
            target: dev,
            fstype: "devfs".into(),
            opts: "rw".into(),
        });
    }
    Ok(mounts)
}

/// Shared-IP addresses: jail(8) adds each as an alias on its interface.
fn shared_ips(
    cx: &mut Ctx,
    name: &str,
    p: &Params,
    jail: &mut Jail,
    io: &mut Io,
) -> Result<(), i32> {
    for spec in p.get("ip4.addr").cloned().unwrap_or_default() {
        for one in spec.split(',') {
            let (ifname, addr) = match one.split_once('|') {
                Some((i, a)) => (Some(i.to_string()), a.to_string()),
                None => (None, one.to_string()),
            };
            let (a, prefix) = match addr.split_once('/') {
                Some((a, n)) => (a.to_string(), n.parse().unwrap_or(32)),
                None => (addr.clone(), 32),
            };
            let Ok(ip) = a.parse() else {
                return Err(fail(
                    io,
                    &format!("jail: {name}: ip4.addr: {addr}: Invalid argument"),
                ));
            };
            if let Some(ifn) = ifname {
                if !cx.iface_visible(&ifn) {
                    io.err(&format!("ifconfig: interface {ifn} does not exist"));
                    return Err(fail(io, &format!("jail: {name}: /sbin/ifconfig {ifn} inet {a} netmask 255.255.255.255 alias: failed")));
                }
                let iface = cx.st.interfaces.get_mut(&ifn).expect("visible");
                if !iface.inet.iter().any(|x| x.addr == ip) {
                    iface.inet.push(Inet { addr: ip, prefix });
                    jail.aliases.push((ifn.clone(), a.clone()));
                }
            }
            jail.ip4.push(a);
        }
    }
    for spec in p.get("ip6.addr").cloned().unwrap_or_default() {
        for one in spec.split(',') {
            let a = one.split_once('|').map(|x| x.1).unwrap_or(one);
            jail.ip6.push(a.split('/').next().unwrap_or(a).to_string());
        }
    }
    Ok(())
}

/// A VNET jail's interfaces moved into it (the record is dropped again when one cannot be).
fn vnet_interfaces(cx: &mut Ctx, name: &str, p: &Params, io: &mut Io) -> Result<(), i32> {
    for ifn in p.get("vnet.interface").cloned().unwrap_or_default() {
        if !cx.iface_visible(&ifn) {
            io.err(&format!("ifconfig: interface {ifn} does not exist"));
            remove_record(cx, name);
            return Err(fail(
                io,
                &format!("jail: {name}: /sbin/ifconfig {ifn} vnet {name}: failed"),
            ));
        }
        if let Err(e) = ifconfig::move_vnet(cx, &ifn, name, true) {
            remove_record(cx, name);
            return Err(fail(io, &e));
        }
    }
    Ok(())
}

/// Drops a jail's kernel state: aliases, mounts under its root, VNET interfaces back to the host.
fn remove_record(cx: &mut Ctx, name: &str) {
    let Some(j) = cx.st.jails.remove(name) else {
        return;
    };
    // Every process of the jail dies with it: the simulated services and what jexec started.
    crate::injail::kill_jail_processes(&cx.dir, name);
    let scope = format!("{name}:");
    cx.st.services.retain(|k, _| !k.starts_with(&scope));
    for (ifn, a) in &j.aliases {
        if let Some(i) = cx.st.interfaces.get_mut(ifn) {
            i.inet.retain(|x| x.addr.to_string() != *a);
        }
    }
    let prefix = format!("{}/", j.path.trim_end_matches('/'));
    cx.st.mounts.retain(|m| !m.target.starts_with(&prefix));
    for i in cx.st.interfaces.values_mut() {
        if i.vnet.as_deref() == Some(name) {
            i.vnet = None;
            i.up = false;
        }
    }
}

/// `jail -r NAME`, running the hooks from `p` (the jail's conf entry, if any). Prints `NAME: removed`.
pub fn remove(cx: &mut Ctx, name: &str, p: Option<Params>, io: &mut Io) -> i32 {
    if !cx.is_root() {
        return fail(io, "jail: jail_remove: Operation not permitted");
    }
    let Some(real) = find(cx, name) else {
        return fail(io, &format!("jail: \"{name}\" not found"));
    };
    let mut p = p.unwrap_or_default();
    let _ = expand_vars(&real, &mut p);
    let _ = run_hooks(cx, &real, &p, "exec.prestop", io);
    remove_record(cx, &real);
    for hook in ["exec.poststop", "exec.release"] {
        if let Err(e) = run_hooks(cx, &real, &p, hook, io) {
            io.err(&e);
        }
    }
    io.out(&format!("{real}: removed"));
    0
}

/// Reads `conf` (FreeBSD path) and returns the parameters for `name`.
pub fn conf_entry(cx: &Ctx, conf: &str, name: &str) -> Result<Params, String> {
    let text = std::fs::read_to_string(cx.host_path(conf))
        .map_err(|_| format!("jail: {conf}: No such file or directory"))?;
    let all = parse_conf(&text).map_err(|e| format!("jail: {conf}: {e}"))?;
    all.get(name)
        .cloned()
        .ok_or_else(|| format!("jail: \"{name}\" not found"))
}

/// jail(8)'s options (`cdf:hiJ:lmrRs:u:U:v`, and `e`/`q` as the simulation had them).
const SPEC: Spec = Spec {
    tool: "jail",
    flags: "cdhilmqrRv",
    valued: "efJsuU",
    usage: "usage: jail [-dhilqv] [-J jid_file] [-u username] [-U username]\n            -[cmr] param=value ... [command=command ...]\n       jail [-dqv] [-f conf_file] -[cmr] [jail]",
    ..GETOPT
};

/// The `jail` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let conf = p.value("f").map(str::to_string);
    let mut mode: Option<&str> = None;
    for (key, _) in &p.opts {
        if ["c", "r", "R", "m"].contains(key) {
            if mode.is_some_and(|m| m != *key) {
                return fail(io, "jail: cannot specify more than one of -c, -m, -r, -R");
            }
            mode = Some(*key);
        }
    }
    let Some(mode) = mode else {
        return SPEC.usage().report(io);
    };
    let operands = &p.operands;
    let param_form = operands.iter().any(|o| o.contains('='));
    match mode {
        "c" if param_form => {
            let mut p = Params::new();
            for o in operands {
                match o.split_once('=') {
                    Some((k, v)) => {
                        p.entry(k.to_string()).or_default().push(v.to_string());
                    }
                    None => {
                        p.insert(o.clone(), vec![]);
                    }
                }
            }
            let Some(name) = first(&p, "name").map(str::to_string) else {
                return fail(io, "jail: name: no value");
            };
            create(cx, &name, p, io)
        }
        "c" => {
            let conf = conf.unwrap_or_else(|| "/etc/jail.conf".into());
            let mut code = 0;
            for name in operands {
                match conf_entry(cx, &conf, name) {
                    Ok(p) => code |= create(cx, name, p, io),
                    Err(e) => code = fail(io, &e),
                }
            }
            code
        }
        "r" | "R" => {
            if operands.is_empty() {
                return fail(io, "jail: no jail specified");
            }
            let mut code = 0;
            for name in operands {
                let p = if mode == "R" {
                    None
                } else {
                    let c = conf.clone().unwrap_or_else(|| "/etc/jail.conf".into());
                    if Path::new(&cx.host_path(&c)).exists() {
                        conf_entry(cx, &c, name).ok()
                    } else {
                        None
                    }
                };
                code |= remove(cx, name, p, io);
            }
            code
        }
        _ => fail(io, "jail: -m is not simulated"),
    }
}
