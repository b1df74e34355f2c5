//! The git jail's commands: the in-jail `git` of the `git` package (only what Warden runs: `init --bare`,
//! `-C DIR config KEY VALUE`, `--version`), `rm`, and the checks the rc.d scripts of nginx and Forgejo make
//! before a start (`nginx -t`, `forgejo doctor check`) as far as the simulation can make them.

use crate::io::{fail, Io};
use crate::jailfs::{self, set_owner, JailEnv, JailFs};
use crate::state::Ctx;

/// The version `git --version` reports (the catalogue's).
const GIT_VERSION: &str = "2.51.0";

/// `git [-C DIR] init|config|--version …` in a jail.
pub fn git(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    let mut cwd = je.cwd.clone();
    let mut i = 0;
    while let Some(a) = args.get(i) {
        match a.as_str() {
            "-C" => {
                let Some(d) = args.get(i + 1) else {
                    return fail(io, "error: no directory given for '-C' option");
                };
                cwd = if d.starts_with('/') {
                    d.clone()
                } else {
                    format!("{cwd}/{d}")
                };
                if !fs.resolve(cx, &cwd, "/").is_ok_and(|(h, _)| h.is_dir()) {
                    return fail(
                        io,
                        &format!("fatal: cannot change to '{d}': No such file or directory"),
                    );
                }
                i += 2;
            }
            "--version" => {
                io.out(&format!("git version {GIT_VERSION}"));
                return 0;
            }
            _ => break,
        }
    }
    match args.get(i).map(String::as_str) {
        Some("init") => init(cx, fs, je, &cwd, &args[i + 1..], io),
        Some("config") => config(cx, fs, &cwd, &args[i + 1..], io),
        Some(other) => fail(
            io,
            &format!("fakebsd: git {other} is not simulated (init, config, --version are)"),
        ),
        None => fail(io, "usage: git [-C <path>] <command> [<args>]"),
    }
}

/// `git init --bare [--quiet|-q] [--initial-branch=B|-b B] DIR`: the directories and files of a bare repository
/// (leading directories created, as git does), owned by the caller.
fn init(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, cwd: &str, args: &[String], io: &mut Io) -> i32 {
    let (mut bare, mut quiet, mut branch, mut dir) = (false, false, "master".to_string(), None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--bare" => bare = true,
            "--quiet" | "-q" => quiet = true,
            "-b" => branch = it.next().cloned().unwrap_or_default(),
            s if s.starts_with("--initial-branch=") => {
                branch = s["--initial-branch=".len()..].to_string()
            }
            s if s.starts_with('-') => return fail(io, &format!("error: unknown option `{s}'")),
            s => dir = Some(s.to_string()),
        }
    }
    if !bare {
        return fail(io, "fakebsd: only `git init --bare` is simulated");
    }
    let Some(dir) = dir else {
        return fail(io, "fakebsd: git init --bare needs a directory here");
    };
    let path = if dir.starts_with('/') {
        dir.clone()
    } else {
        format!("{cwd}/{dir}")
    };
    let grp = jailfs::user(cx, fs, &je.user)
        .and_then(|u| jailfs::groups(cx, fs).into_iter().find(|g| g.gid == u.gid))
        .map(|g| g.name)
        .unwrap_or_else(|| je.user.clone());
    let made = (|| -> Result<(), String> {
        let root = fs.mkdir_p(cx, &path, "/")?;
        for sub in [
            "objects/info",
            "objects/pack",
            "refs/heads",
            "refs/tags",
            "hooks",
            "info",
        ] {
            fs.mkdir_p(cx, &format!("{path}/{sub}"), "/")?;
        }
        if !fs.exists(cx, &format!("{path}/HEAD")) {
            fs.write(
                cx,
                &format!("{path}/HEAD"),
                &format!("ref: refs/heads/{branch}\n"),
            )?;
            fs.write(
                cx,
                &format!("{path}/config"),
                "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n",
            )?;
            fs.write(
                cx,
                &format!("{path}/description"),
                "Unnamed repository; edit this file 'description' to name the repository.\n",
            )?;
        }
        set_owner(cx, &root, &je.user, &grp);
        Ok(())
    })();
    match made {
        Ok(()) => {
            if !quiet {
                io.out(&format!("Initialized empty Git repository in {path}/"));
            }
            0
        }
        Err(e) => fail(io, &format!("fatal: cannot mkdir {path}: {e}")),
    }
}

/// `git config KEY VALUE` in a bare repository (its `config` file); `git config KEY` prints the value.
fn config(cx: &mut Ctx, fs: &JailFs, cwd: &str, args: &[String], io: &mut Io) -> i32 {
    let file = format!("{cwd}/config");
    let Some(text) = fs.read(cx, &file) else {
        return fail(io, "fatal: not in a git directory");
    };
    let Some((section, name)) = args.first().and_then(|k| k.split_once('.')) else {
        return fail(io, "error: key does not contain a section");
    };
    let line = |v: &str| format!("[{section}]\n\t{name} = {v}\n");
    match args.get(1) {
        None => {
            let want = format!("\t{name} = ");
            match text.lines().rev().find_map(|l| l.strip_prefix(&want)) {
                Some(v) => {
                    io.out(v);
                    0
                }
                None => 1,
            }
        }
        Some(v) => match fs.write(cx, &file, &format!("{text}{}", line(v))) {
            Ok(()) => 0,
            Err(e) => fail(
                io,
                &format!("error: could not write config file {file}: {e}"),
            ),
        },
    }
}

/// `rm [-f] [-r|-R] PATH…` inside the jail (read-only mounts refused).
pub fn rm(cx: &mut Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> i32 {
    let (mut force, mut recursive, mut i) = (false, false, 0);
    while let Some(a) = args.get(i).filter(|a| a.starts_with('-') && a.len() > 1) {
        for c in a[1..].chars() {
            match c {
                'f' => force = true,
                'r' | 'R' => recursive = true,
                other => {
                    return fail(
                        io,
                        &format!(
                        "rm: illegal option -- {other}\nusage: rm [-f | -i] [-dIPRrvWx] file ..."
                    ),
                    )
                }
            }
        }
        i += 1;
    }
    let mut code = 0;
    for p in &args[i..] {
        let (h, ro) = match fs.resolve(cx, p, &je.cwd) {
            Ok(x) => x,
            Err(e) => {
                code = fail(io, &format!("rm: {p}: {e}"));
                continue;
            }
        };
        let Ok(meta) = std::fs::symlink_metadata(&h) else {
            if !force {
                code = fail(io, &format!("rm: {p}: No such file or directory"));
            }
            continue;
        };
        if ro {
            code = fail(io, &format!("rm: {p}: Read-only file system"));
            continue;
        }
        let done = if meta.is_dir() && !recursive {
            Err(format!("rm: {p}: is a directory"))
        } else if meta.is_dir() {
            std::fs::remove_dir_all(&h).map_err(|e| format!("rm: {p}: {}", jailfs::errno(&e)))
        } else {
            std::fs::remove_file(&h).map_err(|e| format!("rm: {p}: {}", jailfs::errno(&e)))
        };
        if let Err(e) = done {
            code = fail(io, &e);
        } else {
            let gone = jailfs::freebsd_path(cx, &h);
            cx.st
                .owners
                .retain(|k, _| k != &gone && !k.starts_with(&format!("{gone}/")));
        }
    }
    code
}

/// What rc.d/nginx's `nginx -t` would say about the jail's nginx.conf: a missing file, unbalanced braces, or a
/// `user` directive naming an account the jail does not have.
pub fn nginx_check(cx: &Ctx, fs: &JailFs, conf: &str) -> Result<(), String> {
    let Some(text) = fs.read(cx, conf) else {
        return Err(format!(
            "nginx: [emerg] open() \"{conf}\" failed (2: No such file or directory)"
        ));
    };
    let (open, close) = (text.matches('{').count(), text.matches('}').count());
    if open != close {
        return Err(format!("nginx: [emerg] unexpected end of file, expecting \"}}\" in {conf} ({open} '{{', {close} '}}')"));
    }
    let user = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("user "))
        .and_then(|u| {
            u.trim_end_matches(';')
                .split_whitespace()
                .next()
                .map(str::to_string)
        });
    if let Some(u) = user.filter(|u| jailfs::user(cx, fs, u).is_none()) {
        return Err(format!("nginx: [emerg] getpwnam(\"{u}\") failed in {conf}"));
    }
    Ok(())
}

/// What the forgejo port's start_precmd (`forgejo doctor check` as `git`) would say, as far as the simulation
/// knows: app.ini present and the git account's, no `CHANGE_ME` left from the sample, PostgreSQL named, and
/// the role it names existing, with a password set, in a running jail's PostgreSQL whose address is `HOST`.
pub fn forgejo_check(cx: &mut Ctx, fs: &JailFs) -> Result<(), String> {
    let ini = "/usr/local/etc/forgejo/conf/app.ini";
    let Some(text) = fs.read(cx, ini) else {
        return Err(format!("{ini}: No such file or directory"));
    };
    let real = fs.resolve(cx, ini, "/").map(|(h, _)| h).unwrap_or_default();
    let owner = cx.st.owners.get(&jailfs::freebsd_path(cx, &real)).cloned();
    if owner.as_deref().map(|o| o.split(':').next()) != Some(Some("git")) {
        return Err(format!(
            "{ini}: permission denied for git (owner {})",
            owner.unwrap_or("root:wheel".into())
        ));
    }
    if text.contains("CHANGE_ME") {
        return Err(format!("{ini}: secrets still CHANGE_ME"));
    }
    let get = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    if get("DB_TYPE") != "postgres" {
        return Err(format!(
            "{ini}: DB_TYPE is {:?}, not postgres (fakebsd simulates PostgreSQL only)",
            get("DB_TYPE")
        ));
    }
    let (host, role) = (get("HOST"), get("USER"));
    let Some(ip) = host.strip_suffix(":5432") else {
        return Err(format!("database: HOST {host:?} is not ADDRESS:5432"));
    };
    let (_, db, data) = crate::pkg::server_at(cx, ip).map_err(|d| match d {
        crate::pkg::TcpDown::NoRoute => {
            format!("database: dial tcp {host}: connect: no route to host")
        }
        crate::pkg::TcpDown::Refused => {
            format!("database: dial tcp {host}: connect: connection refused")
        }
    })?;
    let listed = |f: &str| crate::pkg::listed(cx, &db, &data, f, &role);
    if !listed("fakebsd-roles") || !listed("fakebsd-role-passwords") {
        return Err(format!(
            "database: pq: password authentication failed for user \"{role}\""
        ));
    }
    Ok(())
}
