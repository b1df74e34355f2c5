//! The in-jail `node` (`/usr/local/bin/node` of the `node22` package). A FreeBSD binary cannot run on this
//! machine, so fakebsd runs this machine's Linux node instead, with the jail's filesystem as its root: a helper
//! process (`fakebsd jail-node …`) enters a private mount namespace, bind-mounts the jail's nullfs mounts (pi's
//! shared directory, the tenant's workspace…) at their places in the jail's root, puts a minimal `/dev`
//! (tmpfs with null, zero, random, urandom: what devfs ruleset 4 exposes of use to node) and `/proc` there,
//! replaces the jail's `/lib` with this machine's C runtime and `/usr/local/bin/node` with this machine's
//! node (both only in that namespace), chroots into the jail, becomes the jail user and runs node through the
//! dynamic loader (node's own loader path, `/lib64`, does not exist in a FreeBSD tree). Nothing of the jail's
//! files changes. Networking is this machine's: node uses the network namespace fakebsd runs in (see the
//! README). Needs root (mounts, chroot).

use std::convert::Infallible;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[cfg(target_os = "linux")]
use nix::mount::{mount, MsFlags};

use crate::io::{fail, Io};
use crate::jailfs::{self, JailEnv, JailFs, Outcome};
use crate::state::{Ctx, ENV_JAIL};

/// The helper's subcommand (`fakebsd jail-node …`).
pub const HELPER: &str = "jail-node";
/// The dynamic loader of this machine's node (x86-64 glibc).
const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";
/// Where this machine's node is looked for.
const HOST_NODES: [&str; 2] = ["/usr/local/bin/node", "/usr/bin/node"];
/// Devices the jail's `/dev` gets (devfs ruleset 4 has them).
#[cfg(target_os = "linux")]
const DEVICES: [&str; 4] = ["null", "zero", "random", "urandom"];
/// The PATH of a jail user's login environment.
const JAIL_PATH: &str = "/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin";

/// The in-jail `node ARGS…`: starts the helper (after the caller releases the host lock).
pub fn node(cx: &Ctx, fs: &JailFs, je: &JailEnv, args: &[String], io: &mut Io) -> Outcome {
    let Some(host_node) = HOST_NODES.iter().map(Path::new).find(|p| p.is_file()) else {
        return Outcome::Done(fail(
            io,
            "fakebsd: node: the simulated node runs this machine's Node.js, and there is none (/usr/bin/node)",
        ));
    };
    let Ok(loader) = Path::new(LOADER).canonicalize() else {
        return Outcome::Done(fail(
            io,
            &format!("fakebsd: node: this machine has no {LOADER} to run its node with"),
        ));
    };
    let Some(user) = jailfs::user(cx, fs, &je.user) else {
        return Outcome::Done(fail(io, &format!("fakebsd: node: no user {}", je.user)));
    };
    let root = match fs.resolve(cx, "/", "/") {
        Ok((r, _)) => r,
        Err(e) => return Outcome::Done(fail(io, &format!("fakebsd: node: {e}"))),
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return Outcome::Done(fail(io, &format!("fakebsd: node: {e}"))),
    };
    let mut c = Command::new(exe);
    c.arg0("fakebsd").arg(HELPER);
    c.arg("--root").arg(&root);
    c.arg("--cwd").arg(&je.cwd);
    c.args([
        "--uid",
        &user.uid.to_string(),
        "--gid",
        &user.gid.to_string(),
    ]);
    c.arg("--node").arg(host_node);
    c.arg("--loader").arg(&loader);
    for (point, source, ro) in fs.nullfs(cx) {
        c.arg("--bind").arg(source).arg(point);
        c.arg(if ro { "ro" } else { "rw" });
    }
    c.arg("--").args(args);
    c.env_clear();
    c.envs(&je.env);
    c.env("PATH", JAIL_PATH);
    // Marks the process as the jail's (`run_inherit` tracks it for `jail -r`); the helper drops it.
    c.env(ENV_JAIL, &je.name);
    Outcome::Spawn(Box::new(c))
}

/// What the helper was told.
#[derive(Default)]
struct Plan {
    root: PathBuf,
    cwd: String,
    uid: u32,
    gid: u32,
    node: PathBuf,
    loader: PathBuf,
    binds: Vec<(PathBuf, String, bool)>,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Result<Plan, String> {
    let mut p = Plan::default();
    let mut it = args.iter();
    let next = |it: &mut std::slice::Iter<String>, what: &str| {
        it.next()
            .cloned()
            .ok_or_else(|| format!("{what} needs a value"))
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--root" => p.root = next(&mut it, a)?.into(),
            "--cwd" => p.cwd = next(&mut it, a)?,
            "--uid" => p.uid = next(&mut it, a)?.parse().map_err(|_| "bad --uid")?,
            "--gid" => p.gid = next(&mut it, a)?.parse().map_err(|_| "bad --gid")?,
            "--node" => p.node = next(&mut it, a)?.into(),
            "--loader" => p.loader = next(&mut it, a)?.into(),
            "--bind" => {
                let src = next(&mut it, a)?;
                let point = next(&mut it, a)?;
                let ro = next(&mut it, a)? == "ro";
                p.binds.push((src.into(), point, ro));
            }
            "--" => {
                p.argv = it.cloned().collect();
                break;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if p.root.as_os_str().is_empty() || p.cwd.is_empty() {
        return Err("--root and --cwd are required".into());
    }
    Ok(p)
}

/// Bind-mounts `src` on `dst` (read-only when `ro`).
#[cfg(target_os = "linux")]
fn bind(src: &Path, dst: &Path, ro: bool) -> Result<(), String> {
    let what = |e: nix::Error| format!("mount {} on {}: {e}", src.display(), dst.display());
    mount(
        Some(src),
        dst,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(what)?;
    if ro {
        mount(
            None::<&str>,
            dst,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .map_err(what)?;
    }
    Ok(())
}

/// The jail's path `point` under the real root.
#[cfg(target_os = "linux")]
fn inside(root: &Path, point: &str) -> PathBuf {
    root.join(point.trim_start_matches('/'))
}

/// The simulation runs on Linux; elsewhere (a check build for FreeBSD) there is no mount namespace to make.
#[cfg(not(target_os = "linux"))]
fn mount_jail(_: &Plan) -> Result<(), String> {
    Err("the simulated node runs only on Linux".into())
}

/// Mounts the jail's view (see the module doc) in a new mount namespace.
#[cfg(target_os = "linux")]
fn mount_jail(p: &Plan) -> Result<(), String> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    // Nothing mounted here reaches this machine's mount table.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("make / private: {e}"))?;
    for (src, point, ro) in &p.binds {
        bind(src, &inside(&p.root, point), *ro)?;
    }
    let dev = inside(&p.root, "/dev");
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )
    .map_err(|e| format!("mount tmpfs on {}: {e}", dev.display()))?;
    for d in DEVICES {
        let f = dev.join(d);
        std::fs::write(&f, "").map_err(|e| format!("{}: {e}", f.display()))?;
        bind(&Path::new("/dev").join(d), &f, false)?;
    }
    let proc_dir = inside(&p.root, "/proc");
    if proc_dir.is_dir() {
        mount(
            Some("proc"),
            &proc_dir,
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        )
        .map_err(|e| format!("mount proc on {}: {e}", proc_dir.display()))?;
    }
    let libdir = p.loader.parent().unwrap_or(Path::new("/lib"));
    bind(libdir, &inside(&p.root, "/lib"), true)?;
    bind(&p.node, &inside(&p.root, "/usr/local/bin/node"), true)?;
    Ok(())
}

fn helper(args: &[String]) -> Result<Infallible, String> {
    let p = parse(args)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(
            "the simulated node needs root on this machine (a mount namespace and chroot)".into(),
        );
    }
    mount_jail(&p)?;
    nix::unistd::chroot(&p.root).map_err(|e| format!("chroot {}: {e}", p.root.display()))?;
    std::env::set_current_dir(&p.cwd).map_err(|e| format!("chdir {}: {e}", p.cwd))?;
    let (uid, gid) = (
        nix::unistd::Uid::from_raw(p.uid),
        nix::unistd::Gid::from_raw(p.gid),
    );
    nix::unistd::setgroups(&[gid]).map_err(|e| format!("setgroups: {e}"))?;
    nix::unistd::setgid(gid).map_err(|e| format!("setgid: {e}"))?;
    nix::unistd::setuid(uid).map_err(|e| format!("setuid: {e}"))?;
    let loader = Path::new("/lib").join(p.loader.file_name().unwrap_or_default());
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| !k.starts_with("FAKEBSD_"))
        .collect();
    let e = Command::new(loader)
        .args(["--argv0", "/usr/local/bin/node", "--library-path", "/lib"])
        .arg("/usr/local/bin/node")
        .args(&p.argv)
        .env_clear()
        .envs(env)
        .exec();
    Err(format!("exec node: {e}"))
}

/// `fakebsd jail-node …`: the helper [`node`] starts; exits 127 with the reason when node cannot start.
pub fn helper_main(args: &[String]) -> i32 {
    match helper(args) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("fakebsd: node: {e}");
            127
        }
    }
}
