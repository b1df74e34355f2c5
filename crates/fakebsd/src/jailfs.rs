//! The jail as in-jail commands see it: its files (`JailFs` resolves paths the way the jail sees them:
//! its root, its nullfs mounts, symlinks followed inside the jail), its users and groups (`/etc/passwd`,
//! `/etc/group`), who runs a command (`JailEnv`) and the names answered inside a jail. The commands
//! themselves are above this: the built-ins in `injail`, packages in `pkg`, rc scripts in `service`,
//! the in-jail `sh` in `shjail`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::state::Ctx;

/// The directories FreeBSD's commands live in (an absolute command path outside them is not a command).
pub const BIN_DIRS: [&str; 6] = [
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
];

/// Names answered inside a jail (linked in `$FAKEBSD_STATE/jailbin`, the PATH of in-jail scripts).
pub const JAIL_TOOLS: &[&str] = &[
    "env",
    "python3.11",
    "unzip",
    "pkg",
    "pw",
    "id",
    "whoami",
    "install",
    "test",
    "[",
    "mkdir",
    "cat",
    "createdb",
    "psql",
    "service",
    "sysrc",
    "ifconfig",
    "route",
    "freebsd-version",
    "hostname",
    "echo",
    "true",
    "false",
    "sh",
    "node",
    "tailscale",
    "git",
    "rm",
    RUN_COMPUTED,
];

/// The in-jail `sh` runs a command word computed at run time (`exec "$@"`, `$CMD`) through this tool, which
/// applies the rule of a literal one: an absolute path runs the in-jail command of that name or is refused.
pub const RUN_COMPUTED: &str = "__fakebsd_exec";

/// Real utilities of this machine in-jail scripts may use: they only read stdin/argv or files, and
/// cannot write files or run other programs.
pub const HOST_UTILS: &[&str] = &[
    "printf", "head", "tail", "wc", "tr", "cut", "grep", "sleep", "basename", "dirname", "seq",
    "expr",
];

/// The in-jail user of a process started by the in-jail `sh`.
pub const ENV_JAIL_USER: &str = "FAKEBSD_JAIL_USER";
/// The real path of the jail's root, for the in-jail `sh`'s `cd`.
pub const ENV_JAIL_ROOT: &str = "FAKEBSD_JAIL_ROOT";

/// Who runs what, where, with which environment.
#[derive(Clone, Debug)]
pub struct JailEnv {
    /// Jail name.
    pub name: String,
    /// In-jail user name.
    pub user: String,
    /// The command's environment.
    pub env: BTreeMap<String, String>,
    /// Working directory inside the jail.
    pub cwd: String,
    /// Set when the caller holds the host lock (children must not take it).
    pub lock_held: bool,
}

/// What a dispatched command turned into.
pub enum Outcome {
    /// Ran as a built-in; its exit status.
    Done(i32),
    /// A real child (bash for `sh -c`) to run once the caller released the lock.
    Spawn(Box<Command>),
}

/// One passwd entry.
#[derive(Clone, Debug)]
pub struct User {
    /// Login name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// GECOS.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

/// One group entry.
#[derive(Clone, Debug)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// gid.
    pub gid: u32,
    /// Members.
    pub members: Vec<String>,
}

/// Text of an io::Error the way FreeBSD's `strerror` words it.
pub fn errno(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound => "No such file or directory".into(),
        AlreadyExists => "File exists".into(),
        PermissionDenied => "Permission denied".into(),
        NotADirectory => "Not a directory".into(),
        IsADirectory => "Is a directory".into(),
        DirectoryNotEmpty => "Directory not empty".into(),
        ReadOnlyFilesystem => "Read-only file system".into(),
        _ => e.to_string(),
    }
}

/// The jail's view of the filesystem: its root under the fake root, plus its nullfs mounts.
pub struct JailFs {
    /// The jail's path (FreeBSD host path).
    path: String,
    /// nullfs mounts: (mount point inside the jail, source FreeBSD host path, read-only).
    mounts: Vec<(String, String, bool)>,
}

/// Splits a path into components.
fn comps(p: &str) -> Vec<String> {
    p.split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

impl JailFs {
    /// The plain tree at FreeBSD path `root` ("" for the host's own `/`): no nullfs mounts (host `pkg`, `pw -R`).
    pub fn at(root: &str) -> JailFs {
        JailFs {
            path: root.trim_end_matches('/').to_string(),
            mounts: Vec::new(),
        }
    }

    /// The view of running jail `name` (None when it does not run).
    pub fn new(cx: &Ctx, name: &str) -> Option<JailFs> {
        let j = cx.st.jails.get(name)?;
        let path = j.path.trim_end_matches('/').to_string();
        let prefix = format!("{path}/");
        let mut mounts: Vec<(String, String, bool)> = cx
            .st
            .mounts
            .iter()
            .filter(|m| m.fstype == "nullfs" && m.target.starts_with(&prefix))
            .map(|m| {
                (
                    m.target[path.len()..].trim_end_matches('/').to_string(),
                    m.source.trim_end_matches('/').to_string(),
                    m.opts.split(',').any(|o| o == "ro"),
                )
            })
            .collect();
        // Longest mount point first.
        mounts.sort_by_key(|m| std::cmp::Reverse(m.0.len()));
        Some(JailFs { path, mounts })
    }

    /// The jail's nullfs mounts: (mount point inside the jail, real source path, read-only).
    pub fn nullfs(&self, cx: &Ctx) -> Vec<(String, PathBuf, bool)> {
        self.mounts
            .iter()
            .map(|(point, src, ro)| (point.clone(), cx.host_path(src), *ro))
            .collect()
    }

    /// Real path and read-only flag of a jail-absolute path given as components (no symlinks followed).
    fn host_of(&self, cx: &Ctx, cs: &[String]) -> (PathBuf, bool) {
        let p = format!("/{}", cs.join("/"));
        for (mp, src, ro) in &self.mounts {
            if p == *mp || p.starts_with(&format!("{mp}/")) {
                return (cx.host_path(&format!("{src}{}", &p[mp.len()..])), *ro);
            }
        }
        let fb = if p == "/" && self.path.is_empty() {
            "/".to_string()
        } else if p == "/" {
            self.path.clone()
        } else {
            format!("{}{p}", self.path)
        };
        (cx.host_path(&fb), false)
    }

    /// Resolves `p` (absolute, or relative to `cwd`) inside the jail, following symlinks the way the
    /// jail would (absolute targets are relative to the jail's root). Returns the real path and whether
    /// it lies on a read-only mount.
    pub fn resolve(&self, cx: &Ctx, p: &str, cwd: &str) -> Result<(PathBuf, bool), String> {
        let full = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{cwd}/{p}")
        };
        let mut todo: std::collections::VecDeque<String> = comps(&full).into();
        let mut cur: Vec<String> = vec![];
        let mut hops = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_str() {
                "." => continue,
                ".." => {
                    cur.pop();
                    continue;
                }
                _ => {}
            }
            cur.push(c);
            let (host, _) = self.host_of(cx, &cur);
            let is_link = std::fs::symlink_metadata(&host)
                .map(|m| m.file_type().is_symlink())
                .unwrap_or(false);
            if is_link {
                hops += 1;
                if hops > 32 {
                    return Err("Too many levels of symbolic links".into());
                }
                let target = std::fs::read_link(&host)
                    .map_err(|e| errno(&e))?
                    .to_string_lossy()
                    .into_owned();
                cur.pop();
                if target.starts_with('/') {
                    cur.clear();
                }
                for (i, t) in comps(&target).into_iter().enumerate() {
                    todo.insert(i, t);
                }
            }
        }
        Ok(self.host_of(cx, &cur))
    }

    /// `mkdir -p` inside the jail; returns the real path of the last directory.
    pub fn mkdir_p(&self, cx: &Ctx, p: &str, cwd: &str) -> Result<PathBuf, String> {
        let full = if p.starts_with('/') {
            p.to_string()
        } else {
            format!("{cwd}/{p}")
        };
        let cs = comps(&full);
        let mut last = self.resolve(cx, "/", "/")?.0;
        for i in 1..=cs.len() {
            let sub = format!("/{}", cs[..i].join("/"));
            let (host, ro) = self.resolve(cx, &sub, "/")?;
            if host.is_dir() {
                last = host;
                continue;
            }
            if host.exists() {
                return Err("File exists".into());
            }
            if ro {
                return Err("Read-only file system".into());
            }
            std::fs::create_dir(&host).map_err(|e| errno(&e))?;
            last = host;
        }
        Ok(last)
    }

    /// Reads a file inside the jail.
    pub fn read(&self, cx: &Ctx, p: &str) -> Option<String> {
        let (h, _) = self.resolve(cx, p, "/").ok()?;
        std::fs::read_to_string(h).ok()
    }

    /// Writes a file inside the jail (parents created).
    pub fn write(&self, cx: &Ctx, p: &str, text: &str) -> Result<(), String> {
        let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
        let d = self.mkdir_p(cx, if dir.is_empty() { "/" } else { dir }, "/")?;
        let (h, ro) = self.resolve(cx, p, "/")?;
        if ro {
            return Err("Read-only file system".into());
        }
        let target = if h.parent() == Some(d.as_path()) || h.exists() {
            h
        } else {
            d.join(name)
        };
        std::fs::write(target, text).map_err(|e| errno(&e))
    }

    /// Whether `p` exists inside the jail.
    pub fn exists(&self, cx: &Ctx, p: &str) -> bool {
        self.resolve(cx, p, "/").is_ok_and(|(h, _)| h.exists())
    }
}

/// FreeBSD host path of a real path under the fake root (for the owners table).
pub fn freebsd_path(cx: &Ctx, real: &Path) -> String {
    match real.strip_prefix(cx.root()) {
        Ok(rest) => format!("/{}", rest.display()),
        Err(_) => real.display().to_string(),
    }
}

/// Writes an executable file (mode 0755) inside the jail, as a package installs its programs and rc.d scripts.
pub fn write_executable(cx: &Ctx, fs: &JailFs, p: &str, text: &str) -> Result<(), String> {
    fs.write(cx, p, text)?;
    if let Ok((h, _)) = fs.resolve(cx, p, "/") {
        set_mode(&h, 0o755);
    }
    Ok(())
}

/// Creates a port's account and its group with the fixed id `id` (the ports' UIDs/GIDs files) unless they exist,
/// as a package's pkg-install script does.
pub fn ensure_port_account(
    cx: &mut Ctx,
    fs: &JailFs,
    name: &str,
    id: u32,
    gecos: &str,
    home: &str,
) -> Result<(), String> {
    if !groups(cx, fs).iter().any(|g| g.name == name) {
        append_line(cx, fs, "/etc/group", &format!("{name}:*:{id}:"))?;
    }
    if user(cx, fs, name).is_none() {
        add_user(
            cx,
            fs,
            name,
            Some(id),
            Some(name),
            gecos,
            home,
            "/bin/sh",
            true,
        )
        .map_err(|e| e.1)?;
    }
    Ok(())
}

/// Records the simulated owner of a real path.
pub fn set_owner(cx: &mut Ctx, real: &Path, user: &str, group: &str) {
    let k = freebsd_path(cx, real);
    cx.st.owners.insert(k, format!("{user}:{group}"));
}

/// Parses the jail's `/etc/passwd`.
pub fn users(cx: &Ctx, fs: &JailFs) -> Vec<User> {
    let text = fs.read(cx, "/etc/passwd").unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(User {
                name: f[0].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                gecos: f[4].into(),
                home: f[5].into(),
                shell: f[6].into(),
            })
        })
        .collect()
}

/// Parses the jail's `/etc/group`.
pub fn groups(cx: &Ctx, fs: &JailFs) -> Vec<Group> {
    let text = fs.read(cx, "/etc/group").unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(Group {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Looks a user up; root always exists (jexec can always enter as root).
pub fn user(cx: &Ctx, fs: &JailFs, name: &str) -> Option<User> {
    users(cx, fs)
        .into_iter()
        .find(|u| u.name == name)
        .or_else(|| {
            (name == "root").then(|| User {
                name: "root".into(),
                uid: 0,
                gid: 0,
                gecos: "Charlie &".into(),
                home: "/root".into(),
                shell: "/bin/sh".into(),
            })
        })
}

/// Appends a line to a file in the jail.
pub fn append_line(cx: &Ctx, fs: &JailFs, p: &str, line: &str) -> Result<(), String> {
    let mut text = fs.read(cx, p).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    fs.write(cx, p, &text)
}

/// Adds a user (and its group) to the jail's passwd/group; used by `pw useradd` and packages.
#[allow(clippy::too_many_arguments)]
pub fn add_user(
    cx: &mut Ctx,
    fs: &JailFs,
    name: &str,
    uid: Option<u32>,
    group: Option<&str>,
    gecos: &str,
    home: &str,
    shell: &str,
    create_home: bool,
) -> Result<User, (i32, String)> {
    let us = users(cx, fs);
    if us.iter().any(|u| u.name == name) {
        return Err((65, format!("pw: user '{name}' already exists")));
    }
    let uid = match uid {
        Some(u) if us.iter().any(|x| x.uid == u) => {
            return Err((65, format!("pw: UID `{u}' has already been allocated")))
        }
        Some(u) => u,
        // pw.conf defaults: minuid 1000, no reuse → one past the highest uid in 1000..32000.
        None => us
            .iter()
            .map(|u| u.uid)
            .filter(|u| (1000..32000).contains(u))
            .max()
            .map(|m| m + 1)
            .unwrap_or(1000),
    };
    let grs = groups(cx, fs);
    let gid = match group {
        Some(g) => match grs.iter().find(|x| x.name == g || x.gid.to_string() == g) {
            Some(x) => x.gid,
            None => return Err((67, format!("pw: group `{g}' is not defined"))),
        },
        None => match grs.iter().find(|x| x.name == name) {
            Some(x) => x.gid,
            None => {
                let gid = if grs.iter().any(|x| x.gid == uid) {
                    grs.iter()
                        .map(|x| x.gid)
                        .filter(|g| (1000..32000).contains(g))
                        .max()
                        .map(|m| m + 1)
                        .unwrap_or(1000)
                } else {
                    uid
                };
                append_line(cx, fs, "/etc/group", &format!("{name}:*:{gid}:"))
                    .map_err(|e| (74, format!("pw: /etc/group: {e}")))?;
                gid
            }
        },
    };
    append_line(
        cx,
        fs,
        "/etc/passwd",
        &format!("{name}:*:{uid}:{gid}:{gecos}:{home}:{shell}"),
    )
    .map_err(|e| (74, format!("pw: /etc/passwd: {e}")))?;
    if create_home {
        match fs.mkdir_p(cx, home, "/") {
            Ok(h) => {
                set_mode(&h, 0o755);
                let gname = groups(cx, fs)
                    .into_iter()
                    .find(|g| g.gid == gid)
                    .map(|g| g.name)
                    .unwrap_or(gid.to_string());
                set_owner(cx, &h, name, &gname);
            }
            Err(e) => return Err((72, format!("pw: mkdir({home}): {e}"))),
        }
    }
    Ok(User {
        name: name.into(),
        uid,
        gid,
        gecos: gecos.into(),
        home: home.into(),
        shell: shell.into(),
    })
}

/// The environment a jexec'd command starts with: `-l` gives a clean login environment.
pub fn start_env(u: &User, login: bool) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = if login {
        BTreeMap::new()
    } else {
        std::env::vars()
            .filter(|(k, _)| !k.starts_with("FAKEBSD_"))
            .collect()
    };
    if login {
        env.insert("HOME".into(), u.home.clone());
        env.insert("SHELL".into(), u.shell.clone());
        env.insert("USER".into(), u.name.clone());
        env.insert(
            "PATH".into(),
            "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin:/root/bin".into(),
        );
        if let Ok(t) = std::env::var("TERM") {
            env.insert("TERM".into(), t);
        }
        env.insert("BLOCKSIZE".into(), "K".into());
        env.insert("MAIL".into(), format!("/var/mail/{}", u.name));
        env.insert("MM_CHARSET".into(), "UTF-8".into());
        env.insert("LANG".into(), "C.UTF-8".into());
    }
    env
}

/// Sets the permission bits of a real file (best effort, as the simulated `install -m` does).
pub fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode));
}
