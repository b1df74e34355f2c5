//! `jexec [-l] [-d DIR] [-e NAME=VALUE] [-u user | -U user] JAIL [command ...]` (reference/bastille.md
//! §7.1): runs the command *inside the simulation* — a fakebsd in-jail built-in (`injail.rs`) or, for
//! `sh -c`, bash confined to the jail's tools (`shjail.rs`). Nothing of this machine runs with the
//! jail's paths. The exit status is the command's own.

use std::collections::BTreeMap;

use crate::injail;
use crate::io::{fail, Io};
use crate::jail;
use crate::jailfs::{self, JailEnv, JailFs, Outcome};
use crate::state::Ctx;

const USAGE: &str = "usage: jexec [-l] [-d working-directory] [[-e name=value]\n             [-u username | -U username] jail [command ...]";

/// Validates the arguments and runs the command (built-ins now; `sh` comes back as a child to spawn
/// once the caller released the host lock).
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> Outcome {
    let mut login = false;
    let mut i = 0;
    let mut user: Option<String> = None;
    let mut dir: Option<String> = None;
    let mut extra: BTreeMap<String, String> = BTreeMap::new();
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        if args[i] == "--" {
            i += 1;
            break;
        }
        let a = args[i].clone();
        let chars: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < chars.len() {
            match chars[k] {
                'l' => login = true,
                c @ ('u' | 'U' | 'd' | 'e') => {
                    let rest: String = chars[k + 1..].iter().collect();
                    let v = if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                return Outcome::Done(fail(
                                    io,
                                    &format!("jexec: option requires an argument -- {c}\n{USAGE}"),
                                ))
                            }
                        }
                    };
                    match c {
                        'd' => dir = Some(v),
                        'e' => match v.split_once('=') {
                            Some((k, val)) if !k.is_empty() => {
                                extra.insert(k.to_string(), val.to_string());
                            }
                            _ => return Outcome::Done(fail(io, USAGE)),
                        },
                        _ => user = Some(v),
                    }
                    k = chars.len();
                    continue;
                }
                other => {
                    return Outcome::Done(fail(
                        io,
                        &format!("jexec: illegal option -- {other}\n{USAGE}"),
                    ));
                }
            }
            k += 1;
        }
        i += 1;
    }
    let Some(key) = args.get(i) else {
        return Outcome::Done(fail(io, USAGE));
    };
    let Some(name) = jail::find(cx, key).filter(|_| cx.jail.is_none()) else {
        return Outcome::Done(fail(io, &format!("jexec: jail \"{key}\" not found")));
    };
    if !cx.is_root() {
        return Outcome::Done(fail(
            io,
            &format!(
                "jexec: jail_attach({}): Operation not permitted",
                cx.st.jails[&name].jid
            ),
        ));
    }
    let Some(fs) = JailFs::new(cx, &name) else {
        return Outcome::Done(fail(io, &format!("jexec: jail \"{key}\" not found")));
    };
    let uname = user.unwrap_or("root".into());
    // (unverified) wording; the user must be in the jail's passwd (root always is).
    let Some(u) = jailfs::user(cx, &fs, &uname) else {
        return Outcome::Done(fail(io, &format!("jexec: getpwnam: {uname}: no such user")));
    };
    let mut env = jailfs::start_env(&u, login);
    env.extend(extra);
    let cwd = match dir {
        Some(d) => {
            if !fs.resolve(cx, &d, "/").is_ok_and(|(h, _)| h.is_dir()) {
                return Outcome::Done(fail(
                    io,
                    &format!("jexec: chdir: {d}: No such file or directory"),
                ));
            }
            if d.starts_with('/') {
                d
            } else {
                format!("/{d}")
            }
        }
        None => "/".into(),
    };
    let je = JailEnv {
        name,
        user: u.name,
        env,
        cwd,
        lock_held: std::env::var_os("FAKEBSD_LOCK_HELD").is_some(),
    };
    let argv: Vec<String> = if args.len() > i + 1 {
        args[i + 1..].to_vec()
    } else {
        vec!["/bin/sh".into()]
    };
    injail::dispatch(cx, &je, &argv, io)
}
