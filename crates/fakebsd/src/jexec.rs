//! `jexec [-l] [-d DIR] [-e NAME=VALUE] [-u user | -U user] JAIL [command ...]` (reference/bastille.md
//! §7.1): runs the command *inside the simulation* — a fakebsd in-jail built-in (`injail.rs`) or, for
//! `sh -c`, bash confined to the jail's tools (`shjail.rs`); `node` is this machine's node chrooted into the
//! jail (`jailnode.rs`). The exit status is the command's own.

use std::collections::BTreeMap;

use crate::injail;
use crate::io::{fail, Io};
use crate::jail;
use crate::jailfs::{self, JailEnv, JailFs, Outcome};
use crate::opts::{Spec, GETOPT};
use crate::state::Ctx;

const USAGE: &str = "usage: jexec [-l] [-d working-directory] [[-e name=value]\n             [-u username | -U username] jail [command ...]";

/// Validates the arguments and runs the command (built-ins now; `sh` comes back as a child to spawn
/// once the caller released the host lock).
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> Outcome {
    let mut login = false;
    let mut user: Option<String> = None;
    let mut dir: Option<String> = None;
    let mut extra: BTreeMap<String, String> = BTreeMap::new();
    let spec = Spec {
        tool: "jexec",
        flags: "l",
        valued: "uUde",
        usage: USAGE,
        ..GETOPT
    };
    let p = match spec.parse(args) {
        Ok(p) => p,
        Err(e) => return Outcome::Done(e.report(io)),
    };
    for (key, v) in &p.opts {
        match *key {
            "l" => login = true,
            "d" => dir = v.clone(),
            "e" => match v.as_deref().and_then(|v| v.split_once('=')) {
                Some((k, val)) if !k.is_empty() => {
                    extra.insert(k.to_string(), val.to_string());
                }
                _ => return Outcome::Done(spec.usage().report(io)),
            },
            _ => user = v.clone(),
        }
    }
    // The operands: JAIL, then the command.
    let Some((key, command)) = p.operands.split_first() else {
        return Outcome::Done(spec.usage().report(io));
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
    let argv: Vec<String> = if command.is_empty() {
        vec!["/bin/sh".into()]
    } else {
        command.to_vec()
    };
    injail::dispatch(cx, &je, &argv, io)
}
