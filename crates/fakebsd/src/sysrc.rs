//! `sysrc`: read and edit rc.conf-style files.
//!
//! Output strings follow FreeBSD's sysrc(8) from memory: `NAME: OLD -> NEW` on set, `NAME: VALUE` on read,
//! `sysrc: unknown variable 'NAME'` (exit 1) for a variable set nowhere (including /etc/defaults/rc.conf).
//! (unverified: the exact wording, and that `-x` of an unset variable fails.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::io::{fail, Io};
use crate::opts::{Spec, GETOPT};
use crate::state::Ctx;

/// Reads variable `name` from `files` in order (later wins).
pub fn get_var(files: &[PathBuf], name: &str) -> Option<String> {
    let mut vars = BTreeMap::new();
    for f in files {
        fsutil::read_vars(f, &mut vars);
    }
    vars.get(name).cloned()
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

fn assigns(line: &str, name: &str) -> bool {
    let t = line.trim_start();
    t.strip_prefix(name).is_some_and(|r| r.starts_with('='))
}

/// Sets `name` in file `path` (replacing its last assignment or appending); returns the old value.
pub fn set_var(path: &Path, name: &str, value: &str) -> std::io::Result<Option<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let old = get_var(&[path.to_path_buf()], name);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let newline = format!("{name}={}", quote(value));
    match lines.iter().rposition(|l| assigns(l, name)) {
        Some(i) => lines[i] = newline,
        None => lines.push(newline),
    }
    let mut out = lines.join("\n");
    out.push('\n');
    fsutil::write_file(path, &out)?;
    Ok(old)
}

/// Removes every assignment of `name` from `path`; returns whether there was one.
pub fn delete_var(path: &Path, name: &str) -> std::io::Result<bool> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(false);
    };
    let before = text.lines().count();
    let kept: Vec<&str> = text.lines().filter(|l| !assigns(l, name)).collect();
    if kept.len() == before {
        return Ok(false);
    }
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    std::fs::write(path, out)?;
    Ok(true)
}

fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// sysrc(8)'s options (getopts `aAcdDeE:f:Fhij:nNqR:vxX`, as the simulation has them).
const SPEC: Spec = Spec {
    tool: "sysrc",
    flags: "aAcdDeFhinNqvxX",
    valued: "EfjR",
    usage: "Usage: sysrc [OPTIONS] name[[+|-]=value] ...",
    ..GETOPT
};

/// The `sysrc` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let files: Vec<String> = p
        .opts
        .iter()
        .filter(|(k, _)| *k == "f")
        .filter_map(|(_, v)| v.as_deref())
        .flat_map(|v| v.split(','))
        .map(str::to_string)
        .collect();
    let (only_value, delete, quiet, ignore) = (p.has("n"), p.has("x"), p.has("q"), p.has("i"));
    let jail = p.value("j").map(str::to_string);
    let operands = &p.operands;
    if operands.is_empty() {
        return fail(io, "Usage: sysrc [OPTIONS] name[[+|-]=value] ...\nTry `sysrc --help' for more information.");
    }
    let saved_jail = cx.jail.clone();
    if let Some(j) = jail {
        if !cx.st.jails.contains_key(&j) {
            return fail(io, &format!("sysrc: jail \"{j}\" not found"));
        }
        cx.jail = Some(j);
    }
    let explicit = !files.is_empty();
    let (read_files, write_file): (Vec<PathBuf>, PathBuf) = if explicit {
        let p: Vec<PathBuf> = files.iter().map(|f| cx.path(f)).collect();
        let w = p.last().cloned().unwrap_or_default();
        (p, w)
    } else {
        (
            [
                "/etc/defaults/rc.conf",
                "/etc/rc.conf",
                "/etc/rc.conf.local",
            ]
            .iter()
            .map(|f| cx.path(f))
            .collect(),
            cx.path("/etc/rc.conf"),
        )
    };
    let run = Run {
        read_files,
        write_file,
        only_value,
        delete,
        quiet,
        ignore,
    };
    let mut code = 0;
    for op in operands {
        if let Err(c) = operand(cx, &run, op, io) {
            code = c;
        }
    }
    cx.jail = saved_jail;
    code
}

/// What one `sysrc` call reads and writes, and how.
struct Run {
    read_files: Vec<PathBuf>,
    write_file: PathBuf,
    only_value: bool,
    delete: bool,
    quiet: bool,
    ignore: bool,
}

/// One operand: `NAME` (show), `NAME=V`, `NAME+=V`, `NAME-=V` (set), or `NAME` with `-x` (delete).
fn operand(cx: &mut Ctx, run: &Run, op: &str, io: &mut Io) -> Result<(), i32> {
    let (name, action, value) = if let Some((n, v)) = op.split_once("+=") {
        (n, "+", v)
    } else if let Some((n, v)) = op.split_once("-=") {
        (n, "-", v)
    } else if let Some((n, v)) = op.split_once('=') {
        (n, "=", v)
    } else {
        (op, "", "")
    };
    if !valid_name(name) {
        return Err(fail(
            io,
            &format!("sysrc: {name}: name contains characters not allowed in shell"),
        ));
    }
    let current = get_var(&run.read_files, name);
    let denied = |io: &mut Io| {
        fail(
            io,
            &format!("sysrc: {}: Permission denied", run.write_file.display()),
        )
    };
    if run.delete {
        if !cx.is_root() {
            return Err(denied(io));
        }
        let mut found = false;
        for f in run
            .read_files
            .iter()
            .filter(|f| !f.ends_with("defaults/rc.conf"))
        {
            found |= delete_var(f, name).unwrap_or(false);
        }
        if !found && !run.ignore {
            return Err(fail(io, &format!("sysrc: unknown variable '{name}'")));
        }
        if found && !run.quiet {
            io.out(&format!("{name}: {} -> ", current.unwrap_or_default()));
        }
        return Ok(());
    }
    if action.is_empty() {
        match current {
            Some(v) if run.only_value => io.out(&v),
            Some(v) => io.out(&format!("{name}: {v}")),
            None if !run.ignore => {
                return Err(fail(io, &format!("sysrc: unknown variable '{name}'")))
            }
            None => {}
        }
        return Ok(());
    }
    if !cx.is_root() {
        return Err(denied(io));
    }
    let old = current.clone().unwrap_or_default();
    let new = match action {
        "+" => {
            let mut words: Vec<&str> = old.split_whitespace().collect();
            for w in value.split_whitespace() {
                if !words.contains(&w) {
                    words.push(w);
                }
            }
            words.join(" ")
        }
        "-" => {
            let remove: Vec<&str> = value.split_whitespace().collect();
            old.split_whitespace()
                .filter(|w| !remove.contains(w))
                .collect::<Vec<_>>()
                .join(" ")
        }
        _ => value.to_string(),
    };
    if let Err(e) = set_var(&run.write_file, name, &new) {
        return Err(fail(
            io,
            &format!("sysrc: {}: {e}", run.write_file.display()),
        ));
    }
    if !run.quiet {
        if run.only_value {
            io.out(&new);
        } else {
            io.out(&format!("{name}: {old} -> {new}"));
        }
    }
    Ok(())
}
