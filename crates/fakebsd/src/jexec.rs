//! `jexec [-l] [-u user | -U user] JAIL [command ...]` (reference/bastille.md §7.1): runs the command on
//! this machine with cwd at the jail's root (under the fake root), `FAKEBSD_JAIL=NAME`, and our tools
//! first on PATH; the exit status is the command's own.

use std::process::Command;

use crate::io::{fail, Io};
use crate::jail;
use crate::state::{Ctx, ENV_JAIL, ENV_STATE};

/// What `jexec` should run once the lock is released.
pub struct Plan {
    /// The prepared child.
    pub cmd: Command,
    /// The program name (for error messages).
    pub prog: String,
}

/// Validates arguments and prepares the command; the caller releases the host lock and runs it.
pub fn prepare(cx: &Ctx, args: &[String], io: &mut Io) -> Result<Plan, i32> {
    let mut login = false;
    let mut i = 0;
    let mut user: Option<String> = None;
    while i < args.len() && args[i].starts_with('-') && args[i].len() > 1 {
        let a = args[i].clone();
        let chars: Vec<char> = a[1..].chars().collect();
        let mut k = 0;
        while k < chars.len() {
            match chars[k] {
                'l' => login = true,
                'u' | 'U' => {
                    let rest: String = chars[k + 1..].iter().collect();
                    user = Some(if !rest.is_empty() {
                        rest
                    } else {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                return Err(fail(io, "jexec: option requires an argument -- u"))
                            }
                        }
                    });
                    k = chars.len();
                    continue;
                }
                other => {
                    return Err(fail(io, &format!("jexec: illegal option -- {other}\nusage: jexec [-l] [-d working-directory] [[-e name=value]\n             [-u username | -U username] jail [command ...]")));
                }
            }
            k += 1;
        }
        i += 1;
    }
    let Some(key) = args.get(i) else {
        return Err(fail(io, "usage: jexec [-l] [-d working-directory] [[-e name=value]\n             [-u username | -U username] jail [command ...]"));
    };
    let Some(name) = jail::find(cx, key).filter(|_| cx.jail.is_none()) else {
        return Err(fail(io, &format!("jexec: jail \"{key}\" not found")));
    };
    if !cx.is_root() {
        return Err(fail(
            io,
            &format!(
                "jexec: jail_attach({}): Operation not permitted",
                cx.st.jails[&name].jid
            ),
        ));
    }
    let root = cx.host_path(&cx.st.jails[&name].path);
    if let Some(u) = &user {
        // A user must exist in the jail's passwd when it has one (unverified wording).
        let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap_or_default();
        if !passwd.is_empty()
            && !passwd
                .lines()
                .any(|l| l.split(':').next() == Some(u.as_str()))
        {
            return Err(fail(io, &format!("jexec: getpwnam: {u}: no such user")));
        }
    }
    let argv: Vec<String> = if args.len() > i + 1 {
        args[i + 1..].to_vec()
    } else {
        vec!["/bin/sh".into()]
    };
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).current_dir(&root);
    let host_path = std::env::var("PATH").unwrap_or_default();
    if login {
        cmd.env_clear();
        cmd.env("HOME", "/root")
            .env("SHELL", "/bin/sh")
            .env("USER", user.clone().unwrap_or("root".into()));
        if let Ok(t) = std::env::var("TERM") {
            cmd.env("TERM", t);
        }
        cmd.env(
            "PATH",
            format!(
                "{}:/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin",
                cx.bin_dir().display()
            ),
        );
    } else {
        cmd.env("PATH", format!("{}:{host_path}", cx.bin_dir().display()));
    }
    cmd.env(ENV_STATE, &cx.dir).env(ENV_JAIL, &name);
    Ok(Plan {
        cmd,
        prog: argv[0].clone(),
    })
}

/// Runs a prepared plan with inherited stdio; returns the command's status (128+signal if killed).
pub fn execute(mut plan: Plan) -> i32 {
    match plan.cmd.status() {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
        }
        Err(e) => {
            let msg = if e.kind() == std::io::ErrorKind::NotFound {
                "No such file or directory".to_string()
            } else {
                e.to_string()
            };
            eprintln!("jexec: execvp: {}: {msg}", plan.prog);
            1
        }
    }
}
