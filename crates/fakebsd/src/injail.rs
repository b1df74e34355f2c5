//! Commands run *inside* a jail (`jexec`, `bastille cmd`, and scripts run by the in-jail `sh`).
//!
//! Nothing here runs a program of this machine with a jail's paths: every command is a fakebsd built-in
//! working on the jail's files under the fake root (through `jailfs::JailFs`), and in-jail state lives
//! in the jail's own files (`/etc/passwd`, `/etc/group`, `/var/db/pkg/…`, `/var/db/postgres/data18/…`)
//! plus running services and simulated owners in `state.json`. The only real program started is bash (as `sh -c`, see
//! `shjail.rs`), with PATH holding only fakebsd's in-jail tools and a few harmless utilities.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use crate::hosttools::{INSTALL, ROUTE};
use crate::io::{fail, Io};
use crate::jailfs::{
    add_user, append_line, errno, groups, set_mode, set_owner, user, users, JailEnv, JailFs,
    Outcome, BIN_DIRS, ENV_JAIL_USER, HOST_UTILS, JAIL_TOOLS, RUN_COMPUTED,
};
use crate::opts::{Spec, GETOPT};
use crate::state::Ctx;

/// Runs one in-jail command. `argv[0]` may be a path (`/bin/sh`, `/usr/local/bin/psql`): only its
/// name counts, as every simulated command lives in the jail. Unknown programs fail like execvp.
pub fn dispatch(cx: &mut Ctx, je: &JailEnv, argv: &[String], io: &mut Io) -> Outcome {
    let Some(prog) = argv.first() else {
        return Outcome::Done(0);
    };
    let name = prog.rsplit('/').next().unwrap_or(prog).to_string();
    let args = &argv[1..];
    let Some(fs) = JailFs::new(cx, &je.name) else {
        return Outcome::Done(fail(io, &format!("jexec: jail \"{}\" not found", je.name)));
    };
    if name == RUN_COMPUTED {
        return run_computed(cx, je, args, io);
    }
    let saved = (cx.jail.clone(), cx.uid);
    cx.jail = Some(je.name.clone());
    cx.uid = user(cx, &fs, &je.user).map(|u| u.uid).unwrap_or(65534);
    if HOST_UTILS.contains(&name.as_str()) && !JAIL_TOOLS.contains(&name.as_str()) {
        // An allowed utility called directly: run it through the confined sh (`exec "$@"`).
        let mut sh_args: Vec<String> =
            vec!["-c".into(), "exec \"$@\"".into(), "sh".into(), name.clone()];
        sh_args.extend(args.iter().cloned());
        let saved = (cx.jail.clone(), cx.uid);
        cx.jail = Some(je.name.clone());
        let out = crate::shjail::sh(cx, &fs, je, &sh_args, io);
        cx.jail = saved.0;
        cx.uid = saved.1;
        return out;
    }
    let known = JAIL_TOOLS.contains(&name.as_str());
    // The PostgreSQL client programs exist only once the client package is installed.
    let present = match name.as_str() {
        "psql" | "createdb" => crate::pkg::installed(cx, &fs).contains_key("postgresql18-client"),
        "python3.11" => crate::pkg::installed(cx, &fs).contains_key("python311"),
        "git" => crate::pkg::installed(cx, &fs).contains_key("git"),
        // The node22 package's binary (see `jailnode.rs` for what runs).
        "node" => fs.exists(cx, "/usr/local/bin/node"),
        "tailscale" => fs.exists(cx, "/usr/local/bin/tailscale"),
        _ => known,
    };
    let out = if !present || (prog.contains('/') && prog != &format!("/{name}") && !plausible(prog))
    {
        // (unverified) jexec(8)'s execvp failure wording.
        Outcome::Done(fail(
            io,
            &format!("jexec: execvp: {prog}: No such file or directory"),
        ))
    } else {
        match name.as_str() {
            "env" => env(cx, je, args, io),
            "sh" => crate::shjail::sh(cx, &fs, je, args, io),
            "node" => crate::jailnode::node(cx, &fs, je, args, io),
            other => Outcome::Done(builtin(cx, &fs, je, other, args, io)),
        }
    };
    cx.jail = saved.0;
    cx.uid = saved.1;
    out
}

/// A command word the in-jail `sh` computed at run time (`exec "$@"`): a path runs the in-jail command of that
/// name when it lives where FreeBSD commands do, else it is refused as a literal one would be; one of the
/// allowed utilities of this machine runs directly (through the jail's PATH).
fn run_computed(cx: &mut Ctx, je: &JailEnv, args: &[String], io: &mut Io) -> Outcome {
    let Some(prog) = args.first() else {
        return Outcome::Done(0);
    };
    let name = prog.rsplit('/').next().unwrap_or(prog);
    let known = JAIL_TOOLS.contains(&name) || HOST_UTILS.contains(&name);
    if prog.contains('/') && !(known && (prog == &format!("/{name}") || plausible(prog))) {
        io.err(&format!(
            "fakebsd: sh: refusing to run {prog}: only fakebsd's in-jail commands run inside jails"
        ));
        return Outcome::Done(126);
    }
    if HOST_UTILS.contains(&name) && !JAIL_TOOLS.contains(&name) {
        let mut c = std::process::Command::new(name);
        c.args(&args[1..]);
        return Outcome::Spawn(Box::new(c));
    }
    let mut argv = args.to_vec();
    argv[0] = name.to_string();
    dispatch(cx, je, &argv, io)
}

/// Whether an absolute program path is somewhere a FreeBSD command lives.
fn plausible(prog: &str) -> bool {
    let dir = prog.rsplit_once('/').map(|x| x.0).unwrap_or("");
    BIN_DIRS.contains(&dir)
}

fn builtin(
    cx: &mut Ctx,
    fs: &JailFs,
    je: &JailEnv,
    name: &str,
    args: &[String],
    io: &mut Io,
) -> i32 {
    match name {
        "true" => 0,
        "false" => 1,
        "echo" => {
            let (nl, rest) = match args.first().map(String::as_str) {
                Some("-n") => (false, &args[1..]),
                _ => (true, args),
            };
            io.out.push_str(&rest.join(" "));
            if nl {
                io.out.push('\n');
            }
            0
        }
        "hostname" => {
            const SPEC: Spec = Spec {
                tool: "hostname",
                flags: "fds",
                usage: "usage: hostname [-f] [-s | -d] [name-of-host]",
                ..GETOPT
            };
            let p = match SPEC.parse(args) {
                Ok(p) => p,
                Err(e) => return e.report(io),
            };
            if !p.operands.is_empty() {
                // allow.set_hostname is off in Bastille's jails.
                return fail(io, "hostname: sethostname: Operation not permitted");
            }
            let h = cx
                .st
                .jails
                .get(&je.name)
                .map(|j| j.hostname.clone())
                .unwrap_or_default();
            let short = p.has("s");
            io.out(if short {
                h.split('.').next().unwrap_or(&h)
            } else {
                &h
            });
            0
        }
        "whoami" => {
            io.out(&je.user);
            0
        }
        "id" => id(cx, fs, je, args, io),
        "test" => test(cx, fs, je, args, io, false),
        "[" => test(cx, fs, je, args, io, true),
        "mkdir" => mkdir(cx, fs, je, args, io),
        "install" => install(cx, fs, je, args, io),
        "cat" => cat(cx, fs, je, args, io),
        "pw" => pw(cx, fs, args, io),
        "pkg" => crate::pkg::pkg(cx, fs, je, args, io),
        "python3.11" => crate::pkg::python(cx, fs, args, io),
        "unzip" => crate::pkg::unzip(cx, fs, args, io),
        "createdb" => crate::pkg::createdb(cx, fs, je, args, io),
        "psql" => crate::pkg::psql(cx, fs, je, args, io),
        "sysrc" => crate::sysrc::run(cx, args, io),
        "service" => crate::service::run(cx, args, io),
        "ifconfig" => crate::ifconfig::run(cx, args, io),
        "tailscale" => crate::tailscale::run(cx, args, io),
        "freebsd-version" => crate::hosttools::freebsd_version(cx, args, io),
        "route" => route(cx, je, args, io),
        "git" => crate::gitjail::git(cx, fs, je, args, io),
        "rm" => crate::gitjail::rm(cx, fs, je, args, io),
        _ => fail(
            io,
            &format!("jexec: execvp: {name}: No such file or directory"),
        ),
    }
}

/// `env [-i] [-u NAME] [NAME=VALUE…] [CMD…]`: prints the environment or runs CMD with it.
fn env(cx: &mut Ctx, je: &JailEnv, args: &[String], io: &mut Io) -> Outcome {
    const SPEC: Spec = Spec {
        tool: "env",
        flags: "0iv",
        valued: "uLUPS",
        usage: "usage: env [-0iv] [-L|-U user[/class]] [-P utilpath] [-S string]\n           [-u name] [name=value ...] [utility [argument ...]]",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return Outcome::Done(e.report(io)),
    };
    let mut je = je.clone();
    for (key, v) in &p.opts {
        match (*key, v) {
            ("i", _) => je.env.clear(),
            ("u", Some(n)) => {
                je.env.remove(n);
            }
            _ => {}
        }
    }
    // NAME=VALUE operands, and `-` (the old spelling of -i), come before the utility.
    let mut i = 0;
    for a in &p.operands {
        if a == "-" {
            je.env.clear();
        } else if let Some((k, v)) = a.split_once('=').filter(|(k, _)| !k.is_empty()) {
            je.env.insert(k.to_string(), v.to_string());
        } else {
            break;
        }
        i += 1;
    }
    let args = &p.operands;
    if i >= args.len() {
        for (k, v) in &je.env {
            io.out(&format!("{k}={v}"));
        }
        return Outcome::Done(0);
    }
    let cmd = &args[i..];
    let name = cmd[0].rsplit('/').next().unwrap_or(&cmd[0]);
    let ok = JAIL_TOOLS.contains(&name);
    if !ok {
        // env(1) reports its own exec failure with status 127.
        return Outcome::Done({
            io.err(&format!("env: {}: No such file or directory", cmd[0]));
            127
        });
    }
    dispatch(cx, &je, cmd, io)
}

fn id(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "id",
        flags: "AaGgMnPprcu",
        usage: "usage: id [user]\n       id -A\n       id -G [-n] [user]\n       id -M\n       id -P [user]\n       id -c\n       id -g [-nr] [user]\n       id -p [user]\n       id -u [-nr] [user]",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let (u, g, gs, n) = (p.has("u"), p.has("g"), p.has("G"), p.has("n"));
    let names = &p.operands;
    let who = names.first().cloned().unwrap_or(je.user.clone());
    let Some(usr) = user(cx, fs, &who) else {
        return fail(io, &format!("id: {who}: no such user"));
    };
    let grs = groups(cx, fs);
    let gname = |gid: u32| {
        grs.iter()
            .find(|x| x.gid == gid)
            .map(|x| x.name.clone())
            .unwrap_or(gid.to_string())
    };
    let mut all: Vec<u32> = vec![usr.gid];
    for x in &grs {
        if x.members.contains(&usr.name) && !all.contains(&x.gid) {
            all.push(x.gid);
        }
    }
    if u {
        io.out(&if n {
            usr.name.clone()
        } else {
            usr.uid.to_string()
        });
    } else if g {
        io.out(&if n {
            gname(usr.gid)
        } else {
            usr.gid.to_string()
        });
    } else if gs {
        let v: Vec<String> = all
            .iter()
            .map(|x| if n { gname(*x) } else { x.to_string() })
            .collect();
        io.out(&v.join(" "));
    } else {
        let v: Vec<String> = all.iter().map(|x| format!("{x}({})", gname(*x))).collect();
        io.out(&format!(
            "uid={}({}) gid={}({}) groups={}",
            usr.uid,
            usr.name,
            usr.gid,
            gname(usr.gid),
            v.join(",")
        ));
    }
    0
}

/// `test` outside jails (host `test`).
pub fn host_test(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    test(cx, fs, je, args, io, false)
}

/// `test`/`[`: unary file and string tests, binary string/integer comparisons, `!`.
fn test(
    cx: &mut Ctx,
    fs: &JailFs,
    je: &JailEnv,
    args: &[String],
    io: &mut Io,
    bracket: bool,
) -> i32 {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    if bracket {
        if a.last() != Some(&"]") {
            return {
                io.err("[: missing ]");
                2
            };
        }
        a.pop();
    }
    let me = if bracket { "[" } else { "test" };
    let mut neg = false;
    while a.len() > 1 && a[0] == "!" {
        neg = !neg;
        a.remove(0);
    }
    let file = |p: &str| fs.resolve(cx, p, &je.cwd).ok().map(|(h, _)| h);
    let r: Result<bool, String> = match a.as_slice() {
        [] => Ok(false),
        [s] => Ok(!s.is_empty()),
        [op, p] if op.len() == 2 && op.starts_with('-') => match &op[1..] {
            "e" => Ok(file(p).is_some_and(|h| h.exists())),
            "d" => Ok(file(p).is_some_and(|h| h.is_dir())),
            "f" => Ok(file(p).is_some_and(|h| h.is_file())),
            "s" => Ok(file(p).is_some_and(|h| h.metadata().is_ok_and(|m| m.len() > 0))),
            "r" | "w" | "x" => Ok(file(p).is_some_and(|h| h.exists())),
            "L" | "h" => Ok({
                let full = if p.starts_with('/') {
                    p.to_string()
                } else {
                    format!("{}/{p}", je.cwd)
                };
                let (dir, base) = full.rsplit_once('/').unwrap_or(("", &full));
                file(if dir.is_empty() { "/" } else { dir }).is_some_and(|d| {
                    std::fs::symlink_metadata(d.join(base))
                        .is_ok_and(|m| m.file_type().is_symlink())
                })
            }),
            "z" => Ok(p.is_empty()),
            "n" => Ok(!p.is_empty()),
            _ => Err(format!("{me}: {op}: unexpected operator")),
        },
        [x, op, y] => {
            let num = |s: &str| {
                s.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{me}: {s}: bad number"))
            };
            match *op {
                "=" | "==" => Ok(x == y),
                "!=" => Ok(x != y),
                "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" => match (num(x), num(y)) {
                    (Ok(a), Ok(b)) => Ok(match *op {
                        "-eq" => a == b,
                        "-ne" => a != b,
                        "-lt" => a < b,
                        "-le" => a <= b,
                        "-gt" => a > b,
                        _ => a >= b,
                    }),
                    (Err(e), _) | (_, Err(e)) => Err(e),
                },
                _ => Err(format!("{me}: {op}: unexpected operator")),
            }
        }
        _ => Err(format!(
            "{me}: too many arguments (fakebsd simulates simple tests only)"
        )),
    };
    match r {
        Ok(v) => i32::from(v == neg),
        Err(e) => {
            io.err(&e);
            2
        }
    }
}

/// Parses an octal mode (symbolic modes are not simulated).
fn parse_mode(m: &str) -> Option<u32> {
    u32::from_str_radix(m, 8).ok().filter(|v| *v <= 0o7777)
}

fn mkdir(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "mkdir",
        flags: "pv",
        valued: "m",
        usage: "usage: mkdir [-pv] [-m mode] directory_name ...",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let (parents, verbose) = (p.has("p"), p.has("v"));
    let mode = match p.value("m").map(|v| (v, parse_mode(v))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((v, None)) => return fail(io, &format!("mkdir: invalid file mode: {v}")),
    };
    if p.operands.is_empty() {
        return SPEC.usage().report(io);
    }
    let mut code = 0;
    for d in &p.operands {
        let r = if parents {
            fs.mkdir_p(cx, d, &je.cwd)
        } else {
            match fs.resolve(cx, d, &je.cwd) {
                Ok((h, _)) if h.exists() => Err("File exists".into()),
                Ok((_, true)) => Err("Read-only file system".into()),
                Ok((h, false)) => std::fs::create_dir(&h).map(|_| h).map_err(|e| errno(&e)),
                Err(e) => Err(e),
            }
        };
        match r {
            Ok(h) => {
                if let Some(m) = mode {
                    set_mode(&h, m);
                }
                if je.user != "root" {
                    let g = user(cx, fs, &je.user)
                        .and_then(|u| groups(cx, fs).into_iter().find(|g| g.gid == u.gid))
                        .map(|g| g.name)
                        .unwrap_or_default();
                    set_owner(cx, &h, &je.user, &g);
                }
                if verbose {
                    io.out(d);
                }
            }
            Err(e) => code = fail(io, &format!("mkdir: {d}: {e}")),
        }
    }
    code
}

/// `install -d [-o U] [-g G] [-m MODE] DIR…` and `install [-o U] [-g G] [-m MODE] SRC DST`, inside the
/// jail. Owners are recorded, not applied.
fn install(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    let p = match INSTALL.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let (dir_mode, verbose) = (p.has("d"), p.has("v"));
    let owner = p.value("o").map(str::to_string);
    let group = p.value("g").map(str::to_string);
    let mode = match p.value("m").map(|v| (v, parse_mode(v))) {
        None => None,
        Some((_, Some(m))) => Some(m),
        Some((v, None)) => {
            io.err(&format!("install: invalid file mode: {v}"));
            return 64;
        }
    };
    let ops = &p.operands;
    // install(1) looks the owner and group up first: EX_NOUSER (67).
    let usr = match &owner {
        Some(o) => match user(cx, fs, o) {
            Some(u) => Some(u),
            None if o.parse::<u32>().is_ok() => None,
            None => {
                io.err(&format!("install: unknown user {o}"));
                return 67;
            }
        },
        None => None,
    };
    let grs = groups(cx, fs);
    if let Some(g) = &group {
        if !grs.iter().any(|x| &x.name == g) && g.parse::<u32>().is_err() {
            io.err(&format!("install: unknown group {g}"));
            return 67;
        }
    }
    if (owner.is_some() || group.is_some()) && je.user != "root" {
        io.err(&format!(
            "install: {}: chown/chgrp: Operation not permitted",
            ops.first().cloned().unwrap_or_default()
        ));
        return 71;
    }
    let owner_group = (owner.is_some() || group.is_some()).then(|| {
        let o = owner.clone().unwrap_or("root".into());
        let g = group.clone().unwrap_or_else(|| {
            usr.as_ref()
                .and_then(|u| grs.iter().find(|x| x.gid == u.gid))
                .map(|x| x.name.clone())
                .unwrap_or("wheel".into())
        });
        (o, g)
    });
    let how = Installed {
        mode,
        owner_group,
        verbose,
    };
    if dir_mode {
        if ops.is_empty() {
            return INSTALL.usage().report(io);
        }
        return install_dirs(cx, fs, je, ops, &how, io);
    }
    if ops.len() < 2 {
        return INSTALL.usage().report(io);
    }
    install_files(cx, fs, je, ops, &how, io)
}

/// How `install` leaves what it makes: the mode, the owner and group recorded, whether it says so.
struct Installed {
    mode: Option<u32>,
    owner_group: Option<(String, String)>,
    verbose: bool,
}

impl Installed {
    fn apply(&self, cx: &mut Ctx, h: &Path, default_mode: u32) {
        set_mode(h, self.mode.unwrap_or(default_mode));
        if let Some((o, g)) = &self.owner_group {
            set_owner(cx, h, o, g);
        }
    }
}

/// `install -d DIR…`.
fn install_dirs(
    cx: &mut Ctx,
    fs: &JailFs,
    je: &JailEnv,
    dirs: &[String],
    how: &Installed,
    io: &mut Io,
) -> i32 {
    for d in dirs {
        match fs.mkdir_p(cx, d, &je.cwd) {
            Ok(h) => {
                how.apply(cx, &h, 0o755);
                if how.verbose {
                    io.out(&format!("install: mkdir {d}"));
                }
            }
            Err(e) => {
                // (unverified) err(EX_OSERR, "mkdir %s", path)
                io.err(&format!("install: mkdir {d}: {e}"));
                return 71;
            }
        }
    }
    0
}

/// `install SRC DST` and `install SRC… DIR`.
fn install_files(
    cx: &mut Ctx,
    fs: &JailFs,
    je: &JailEnv,
    ops: &[String],
    how: &Installed,
    io: &mut Io,
) -> i32 {
    let (srcs, dst) = ops.split_at(ops.len() - 1);
    let dst = &dst[0];
    let dst_dir = fs.resolve(cx, dst, &je.cwd).is_ok_and(|(h, _)| h.is_dir());
    if srcs.len() > 1 && !dst_dir {
        io.err(&format!("install: {dst}: Not a directory"));
        return 74;
    }
    for s in srcs {
        let src = match fs.resolve(cx, s, &je.cwd) {
            Ok((h, _)) if h.is_file() => h,
            _ => {
                io.err(&format!("install: {s}: No such file or directory"));
                return 66;
            }
        };
        let target = if dst_dir {
            format!("{dst}/{}", s.rsplit('/').next().unwrap_or(s))
        } else {
            dst.clone()
        };
        let (h, ro) = match fs.resolve(cx, &target, &je.cwd) {
            Ok(x) => x,
            Err(e) => {
                io.err(&format!("install: {target}: {e}"));
                return 71;
            }
        };
        if ro {
            io.err(&format!("install: {target}: Read-only file system"));
            return 73;
        }
        if let Err(e) = std::fs::copy(&src, &h) {
            io.err(&format!("install: {target}: {}", errno(&e)));
            return 73;
        }
        how.apply(cx, &h, 0o555);
        if how.verbose {
            io.out(&format!("install: {s} -> {target}"));
        }
    }
    0
}

fn cat(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "cat",
        flags: "belnstuv",
        usage: "usage: cat [-belnstuv] [file ...]",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let files: Vec<&String> = p.operands.iter().collect();
    let mut code = 0;
    if files.is_empty() || files.iter().all(|f| *f == "-") {
        let mut s = String::new();
        let _ = std::io::stdin().read_to_string(&mut s);
        io.out.push_str(&s);
        return 0;
    }
    for f in files {
        if f == "-" {
            let mut s = String::new();
            let _ = std::io::stdin().read_to_string(&mut s);
            io.out.push_str(&s);
            continue;
        }
        match fs.resolve(cx, f, &je.cwd) {
            Ok((h, _)) if h.is_dir() => code = fail(io, &format!("cat: {f}: Is a directory")),
            Ok((h, _)) => match std::fs::read(&h) {
                Ok(b) => io.out.push_str(&String::from_utf8_lossy(&b)),
                Err(e) => code = fail(io, &format!("cat: {f}: {}", errno(&e))),
            },
            Err(e) => code = fail(io, &format!("cat: {f}: {e}")),
        }
    }
    code
}

/// pw(8)'s options after the command (the name may stand before or after them); a usage error exits with
/// EX_USAGE.
const PW: Spec = Spec {
    tool: "pw",
    flags: "aDFimNoPqrUY",
    valued: "bcCdeEgGhHkLMnpsuwy",
    permute: true,
    usage: "usage:\n  pw [user|group|lock|unlock] [add|del|mod|show|next] [help|switches/values]",
    status: 64,
    ..GETOPT
};

/// `pw useradd|usershow|userdel|groupshow`.
pub fn pw(cx: &mut Ctx, fs: &JailFs, args: &[String], io: &mut Io) -> i32 {
    let Some((sub, rest)) = args.split_first() else {
        return PW.usage().report(io);
    };
    let p = match PW.parse(rest) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let opts: BTreeMap<char, String> = p
        .opts
        .iter()
        .filter_map(|(k, v)| Some((k.chars().next()?, v.clone()?)))
        .collect();
    let a = PwArgs {
        name: opts.get(&'n').cloned().or(p.operands.first().cloned()),
        flags: p
            .opts
            .iter()
            .filter(|(_, v)| v.is_none())
            .filter_map(|(k, _)| k.chars().next())
            .collect(),
        opts,
    };
    match sub.as_str() {
        "useradd" | "adduser" => pw_useradd(cx, fs, &a, io),
        "usershow" | "showuser" => pw_usershow(cx, fs, &a, io),
        "userdel" | "deluser" => pw_userdel(cx, fs, &a, io),
        "groupadd" | "addgroup" => pw_groupadd(cx, fs, &a, io),
        "groupshow" | "showgroup" => pw_groupshow(cx, fs, &a, io),
        other => {
            io.err(&format!(
                "pw: fakebsd simulates only useradd, usershow, userdel, groupadd, groupshow (not '{other}')"
            ));
            64
        }
    }
}

/// A `pw` command's options: values by letter, the letters without one, and the name (`-n` or operand).
struct PwArgs {
    opts: BTreeMap<char, String>,
    flags: Vec<char>,
    name: Option<String>,
}

/// `pw useradd NAME [-u UID] [-g GROUP] [-c GECOS] [-d HOME] [-s SHELL] [-m]`.
fn pw_useradd(cx: &mut Ctx, fs: &JailFs, a: &PwArgs, io: &mut Io) -> i32 {
    let Some(name) = a.name.clone() else {
        io.err("pw: user name or id required");
        return 64;
    };
    if !cx.is_root() {
        io.err("pw: you must be root to run this command");
        return 77;
    }
    let uid = match a.opts.get(&'u').map(|u| u.parse::<u32>()) {
        Some(Ok(u)) => Some(u),
        Some(Err(_)) => {
            io.err(&format!("pw: Bad id '{}': invalid", a.opts[&'u']));
            return 64;
        }
        None => None,
    };
    let home = a.opts.get(&'d').cloned().unwrap_or(format!("/home/{name}"));
    let shell = match a.opts.get(&'s').map(String::as_str) {
        None | Some("") => "/bin/sh".to_string(),
        Some(s) if s.starts_with('/') => s.to_string(),
        Some(s) => format!("/bin/{s}"),
    };
    let gecos = a.opts.get(&'c').cloned().unwrap_or("User &".into());
    match add_user(
        cx,
        fs,
        &name,
        uid,
        a.opts.get(&'g').map(String::as_str),
        &gecos,
        &home,
        &shell,
        a.flags.contains(&'m'),
    ) {
        Ok(_) => 0,
        Err((code, msg)) => {
            io.err(&msg);
            code
        }
    }
}

/// `pw usershow NAME|UID`: the passwd line.
fn pw_usershow(cx: &mut Ctx, fs: &JailFs, a: &PwArgs, io: &mut Io) -> i32 {
    let Some(name) = a.name.clone() else {
        io.err("pw: user name or id required");
        return 64;
    };
    match users(cx, fs)
        .into_iter()
        .find(|u| u.name == name || u.uid.to_string() == name)
    {
        Some(u) => {
            io.out(&format!(
                "{}:*:{}:{}::0:0:{}:{}:{}",
                u.name, u.uid, u.gid, u.gecos, u.home, u.shell
            ));
            0
        }
        None => {
            io.err(&format!("pw: no such user `{name}'"));
            67
        }
    }
}

/// `pw userdel NAME`.
fn pw_userdel(cx: &mut Ctx, fs: &JailFs, a: &PwArgs, io: &mut Io) -> i32 {
    let Some(name) = a.name.clone() else {
        io.err("pw: user name or id required");
        return 64;
    };
    if !users(cx, fs).iter().any(|u| u.name == name) {
        io.err(&format!("pw: no such user `{name}'"));
        return 67;
    }
    let text = fs.read(cx, "/etc/passwd").unwrap_or_default();
    let kept: String = text
        .lines()
        .filter(|l| l.split(':').next() != Some(name.as_str()))
        .map(|l| format!("{l}\n"))
        .collect();
    match fs.write(cx, "/etc/passwd", &kept) {
        Ok(()) => 0,
        Err(e) => {
            io.err(&format!("pw: /etc/passwd: {e}"));
            74
        }
    }
}

/// `pw groupadd NAME [-g GID]`.
fn pw_groupadd(cx: &mut Ctx, fs: &JailFs, a: &PwArgs, io: &mut Io) -> i32 {
    let Some(name) = a.name.clone() else {
        io.err("pw: group name required");
        return 64;
    };
    if !cx.is_root() {
        io.err("pw: you must be root to run this command");
        return 77;
    }
    let grs = groups(cx, fs);
    if grs.iter().any(|g| g.name == name) {
        io.err(&format!("pw: group name `{name}' already exists"));
        return 65;
    }
    // (unverified) pw's wording; gids from 1000 like uids.
    let gid = match a.opts.get(&'g').map(|g| g.parse::<u32>()) {
        Some(Ok(g)) if grs.iter().any(|x| x.gid == g) => {
            io.err(&format!("pw: gid `{g}' has already been allocated"));
            return 65;
        }
        Some(Ok(g)) => g,
        Some(Err(_)) => {
            io.err(&format!("pw: Bad id '{}': invalid", a.opts[&'g']));
            return 64;
        }
        None => grs
            .iter()
            .map(|x| x.gid)
            .filter(|g| (1000..32000).contains(g))
            .max()
            .map(|m| m + 1)
            .unwrap_or(1000),
    };
    match append_line(cx, fs, "/etc/group", &format!("{name}:*:{gid}:")) {
        Ok(()) => 0,
        Err(e) => {
            io.err(&format!("pw: /etc/group: {e}"));
            74
        }
    }
}

/// `pw groupshow NAME|GID`: the group line.
fn pw_groupshow(cx: &mut Ctx, fs: &JailFs, a: &PwArgs, io: &mut Io) -> i32 {
    let Some(name) = a.name.clone() else {
        io.err("pw: group name or id required");
        return 64;
    };
    match groups(cx, fs)
        .into_iter()
        .find(|g| g.name == name || g.gid.to_string() == name)
    {
        Some(g) => {
            io.out(&format!("{}:*:{}:{}", g.name, g.gid, g.members.join(",")));
            0
        }
        None => {
            io.err(&format!("pw: unknown group `{name}'"));
            67
        }
    }
}

/// `route add default GW` / `route -n get default` inside a jail: the jail's own default route.
fn route(cx: &mut Ctx, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    let p = match ROUTE.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    // The command's own modifiers (`-net`) are not simulated.
    let ops: Vec<&str> = p
        .operands
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let vnet = cx.st.jails.get(&je.name).is_some_and(|j| j.vnet);
    if !vnet {
        // A shared-IP jail sees the host's table and may not change it.
        if ops.first() == Some(&"get") {
            return crate::hosttools::route(cx, args, io);
        }
        return fail(
            io,
            "route: writing to routing socket: Operation not permitted",
        );
    }
    match ops.as_slice() {
        ["add", "default", gw] => {
            if !cx.is_root() {
                return fail(io, "route: must be root to alter routing table");
            }
            let Some(j) = cx.st.jails.get_mut(&je.name) else {
                return 1;
            };
            if j.gateway.is_some() {
                return fail(
                    io,
                    &format!("route: writing to routing socket: File exists\nadd net default: gateway {gw} fib 0: route already in table"),
                );
            }
            j.gateway = Some(gw.to_string());
            io.out(&format!("add net default: gateway {gw}"));
            0
        }
        ["delete", "default"] | ["delete", "default", _] => {
            let Some(j) = cx.st.jails.get_mut(&je.name) else {
                return 1;
            };
            match j.gateway.take() {
                Some(gw) => {
                    io.out(&format!("delete net default: gateway {gw}"));
                    0
                }
                None => fail(
                    io,
                    "route: route has not been found\ndelete net default: not in table",
                ),
            }
        }
        ["get", "default"] => match cx.st.jails.get(&je.name).and_then(|j| j.gateway.clone()) {
            Some(gw) => {
                io.out("   route to: default\ndestination: default");
                io.out(&format!("    gateway: {gw}"));
                io.out("      flags: <UP,GATEWAY,DONE,STATIC>");
                0
            }
            None => fail(io, "route: route has not been found"),
        },
        _ => fail(io, "usage: route [-46dnqtv] command [[modifiers] args]"),
    }
}

/// Entry for an in-jail tool started as its own process (by the in-jail `sh`): the jail comes from
/// `FAKEBSD_JAIL`, the user from `FAKEBSD_JAIL_USER`, the environment and cwd are the process's own.
pub fn tool_main(tool: &str, args: &[String]) -> i32 {
    let Some(jail) = std::env::var(crate::state::ENV_JAIL)
        .ok()
        .filter(|j| !j.is_empty())
    else {
        eprintln!("fakebsd: {tool} runs only inside a simulated jail (through jexec)");
        return 127;
    };
    let mut cx = match Ctx::open() {
        Ok(cx) => cx,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let mut io = Io::default();
    let Some(fs) = JailFs::new(&cx, &jail) else {
        eprintln!("jexec: jail \"{jail}\" not found");
        return 1;
    };
    // The jail-relative cwd, from the real one (outside the jail root: `/`).
    let root = fs.resolve(&cx, "/", "/").map(|x| x.0).unwrap_or_default();
    let cwd = std::env::current_dir()
        .ok()
        .and_then(|d| {
            d.strip_prefix(&root)
                .ok()
                .map(|r| format!("/{}", r.display()))
        })
        .unwrap_or("/".into());
    let env: BTreeMap<String, String> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("FAKEBSD_"))
        .collect();
    let je = JailEnv {
        name: jail,
        user: std::env::var(ENV_JAIL_USER).unwrap_or("root".into()),
        env,
        cwd,
        lock_held: std::env::var_os("FAKEBSD_LOCK_HELD").is_some(),
    };
    let mut argv = vec![tool.to_string()];
    argv.extend(args.iter().cloned());
    let out = dispatch(&mut cx, &je, &argv, &mut io);
    if let Err(e) = cx.save() {
        io.err(&e);
    }
    drop(cx);
    io.flush();
    match out {
        Outcome::Done(c) => c,
        Outcome::Spawn(cmd) => run_inherit(*cmd),
    }
}

/// Runs a spawned child with inherited stdio; returns its status (128+signal if killed).
///
/// The child of a top-level `jexec` (not already inside a jail's script) gets its own process group, recorded
/// in `$FAKEBSD_STATE/procs/JAIL/PGID` while it runs, so `jail -r JAIL` kills it as FreeBSD kills every process
/// of a removed jail.
pub fn run_inherit(mut cmd: Command) -> i32 {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let jail = cmd
        .get_envs()
        .find(|(k, _)| *k == crate::state::ENV_JAIL)
        .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()));
    let state = std::env::var_os(crate::state::ENV_STATE);
    // Only the outermost spawn tracks (nested `sh` runs inside that group already).
    let track = match (&jail, &state) {
        (Some(j), Some(st)) if std::env::var_os(crate::state::ENV_JAIL).is_none() => {
            Some(std::path::Path::new(st).join("procs").join(j))
        }
        _ => None,
    };
    if track.is_some() {
        cmd.process_group(0);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sh: {e}");
            return 127;
        }
    };
    let record = track.map(|dir| {
        let _ = std::fs::create_dir_all(&dir);
        let f = dir.join(child.id().to_string());
        let _ = std::fs::write(&f, "");
        f
    });
    let status = child.wait();
    if let Some(f) = record {
        let _ = std::fs::remove_file(f);
    }
    match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("sh: {e}");
            127
        }
    }
}

/// Kills every process group `jexec` started in `jail` (see [`run_inherit`]); `jail -r` calls it.
pub fn kill_jail_processes(state_dir: &std::path::Path, jail: &str) {
    let dir = state_dir.join("procs").join(jail);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        if let Some(pgid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            // kill(1) of the whole group this simulation started (this crate has no unsafe code); a gone group
            // is only an error message.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pgid}")])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = std::fs::remove_file(e.path());
    }
}
