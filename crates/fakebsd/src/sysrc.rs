//! `sysrc`: read and edit rc.conf-style files.
//!
//! Output strings follow FreeBSD's sysrc(8) from memory: `NAME: OLD -> NEW` on set, `NAME: VALUE` on read,
//! `sysrc: unknown variable 'NAME'` (exit 1) for a variable set nowhere (including /etc/defaults/rc.conf).
//! (unverified: the exact wording, and that `-x` of an unset variable fails.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::io::{fail, Io};
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

/// The `sysrc` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    let mut files: Vec<String> = vec![];
    let (mut only_value, mut delete, mut quiet, mut ignore) = (false, false, false, false);
    let mut jail: Option<String> = None;
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        let a = &args[i];
        let chars: Vec<char> = a[1..].chars().collect();
        let mut j = 0;
        while j < chars.len() {
            match chars[j] {
                'f' | 'j' | 'R' => {
                    let rest: String = chars[j + 1..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                return fail(
                                    io,
                                    &format!("sysrc: option requires an argument -- {}", chars[j]),
                                )
                            }
                        }
                    };
                    match chars[j] {
                        'f' => files.extend(v.split(',').map(str::to_string)),
                        'j' => jail = Some(v),
                        _ => {}
                    }
                    j = chars.len();
                    continue;
                }
                'n' => only_value = true,
                'x' => delete = true,
                'q' => quiet = true,
                'i' => ignore = true,
                'v' | 'e' | 'd' | 'D' | 'c' | 'N' | 'A' | 'a' | 'F' | 'h' => {}
                other => {
                    return fail(io, &format!("sysrc: illegal option -- {other}\nUsage: sysrc [OPTIONS] name[[+|-]=value] ..."));
                }
            }
            j += 1;
        }
        i += 1;
    }
    let operands = &args[i..];
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
    let mut code = 0;
    for op in operands {
        let (name, action, value) = if let Some((n, v)) = op.split_once("+=") {
            (n, "+", v)
        } else if let Some((n, v)) = op.split_once("-=") {
            (n, "-", v)
        } else if let Some((n, v)) = op.split_once('=') {
            (n, "=", v)
        } else {
            (op.as_str(), "", "")
        };
        if !valid_name(name) {
            io.err(&format!(
                "sysrc: {name}: name contains characters not allowed in shell"
            ));
            code = 1;
            continue;
        }
        let current = get_var(&read_files, name);
        if delete {
            if !cx.is_root() {
                code = fail(
                    io,
                    &format!("sysrc: {}: Permission denied", write_file.display()),
                );
                continue;
            }
            let mut found = false;
            for f in read_files
                .iter()
                .filter(|f| !f.ends_with("defaults/rc.conf"))
            {
                found |= delete_var(f, name).unwrap_or(false);
            }
            if !found && !ignore {
                io.err(&format!("sysrc: unknown variable '{name}'"));
                code = 1;
            } else if found && !quiet {
                io.out(&format!("{name}: {} -> ", current.unwrap_or_default()));
            }
            continue;
        }
        if action.is_empty() {
            match current {
                Some(v) if only_value => io.out(&v),
                Some(v) => io.out(&format!("{name}: {v}")),
                None => {
                    if !ignore {
                        io.err(&format!("sysrc: unknown variable '{name}'"));
                        code = 1;
                    }
                }
            }
            continue;
        }
        if !cx.is_root() {
            code = fail(
                io,
                &format!("sysrc: {}: Permission denied", write_file.display()),
            );
            continue;
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
        if let Err(e) = set_var(&write_file, name, &new) {
            code = fail(io, &format!("sysrc: {}: {e}", write_file.display()));
            continue;
        }
        if !quiet {
            if only_value {
                io.out(&new);
            } else {
                io.out(&format!("{name}: {old} -> {new}"));
            }
        }
    }
    cx.jail = saved_jail;
    code
}
