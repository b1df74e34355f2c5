//! The worker's root file system, built inside the worker's own mount namespace.
//!
//! Everything is mounted under a per-worker tmpfs that exists only in that namespace, so when
//! the worker's last process exits the kernel drops every mount and the tmpfs with it: nothing
//! to unmount or delete on the host, even after `kill -9`.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::error::{Error, Result};
use crate::release::{host_etc, network_etc, HOST_DIRS};
use crate::spec::{ReleaseRef, Shape, WorkerSpec};

/// The directory a worker's tmpfs is mounted on (shared by all workers: each mounts its own
/// tmpfs there in its private mount namespace).
pub fn mount_base(state_dir: &Path) -> PathBuf {
    state_dir.join("mnt")
}

fn mnt(
    src: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<()> {
    mount(src, target, fstype, flags, data).map_err(|e| {
        Error::sys(
            format!(
                "mount {} on {} ({})",
                src.map(|s| s.display().to_string())
                    .unwrap_or_else(|| fstype.unwrap_or("-").to_string()),
                target.display(),
                fstype.unwrap_or("bind")
            ),
            e,
        )
    })
}

fn mkdir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))
}

fn write_file(path: &Path, body: &str) -> Result<()> {
    fs::write(path, body).map_err(|e| Error::io("write", path, e))
}

/// Bind `src` on `dst` read-only (a bind ignores MS_RDONLY, hence the remount).
fn bind(src: &Path, dst: &Path, writable: bool) -> Result<()> {
    mnt(
        Some(src),
        dst,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    if !writable {
        mnt(
            None,
            dst,
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV,
            None,
        )?;
    }
    Ok(())
}

/// Builds the root under the worker's tmpfs and pivots into it. Runs as pid 1 of the new pid
/// namespace, in the new mount namespace, before privileges are dropped.
pub fn build_root(spec: &WorkerSpec) -> Result<()> {
    // Modes below are meant exactly (devices 0666); the worker gets a usual umask back later.
    nix::sys::stat::umask(Mode::empty());
    // Stop propagation both ways before mounting anything.
    mnt(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let base = mount_base(&spec.state_dir);
    mnt(
        None,
        &base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .or_else(|_| {
        // The base directory is created by the helper; retry with it made here in case it raced a reaper.
        mkdir(&base)?;
        mnt(
            None,
            &base,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )
    })?;
    let root = base.join("root");
    mkdir(&root)?;
    match (&spec.release, spec.shape) {
        _ if spec.persistent.is_some() => jail_root(
            spec,
            spec.persistent.as_deref().unwrap_or(&base),
            &base,
            &root,
        )?,
        (ReleaseRef::Host, _) => host_root(spec, &root)?,
        (ReleaseRef::Dir(dir), Shape::Thin) => {
            let (upper, work) = (base.join("upper"), base.join("work"));
            mkdir(&upper)?;
            mkdir(&work)?;
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                dir.display(),
                upper.display(),
                work.display()
            );
            mnt(None, &root, Some("overlay"), MsFlags::empty(), Some(&opts))?;
            write_etc(&root, &network_etc(spec))?;
        }
        (ReleaseRef::Dir(dir), Shape::Thick) => {
            let status = std::process::Command::new("cp")
                .arg("-a")
                .arg(format!("{}/.", dir.display()))
                .arg(&root)
                .status()
                .map_err(|e| Error::io("copy release", dir, e))?;
            if !status.success() {
                return Err(Error::Setup {
                    name: spec.name.clone(),
                    message: format!("cp -a {} exited with {status}", dir.display()),
                });
            }
            write_etc(&root, &network_etc(spec))?;
        }
    }
    // pivot_root needs the new root to be a mount point.
    mnt(
        Some(&root),
        &root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    special_mounts(&root)?;
    if spec.tun {
        tun_device(&root)?;
    }
    for b in &spec.binds {
        let target = root.join(b.target.strip_prefix("/").unwrap_or(&b.target));
        let meta =
            fs::metadata(&b.source).map_err(|e| Error::io("stat bind source", &b.source, e))?;
        if meta.is_dir() {
            mkdir(&target)?;
        } else {
            if let Some(parent) = target.parent() {
                mkdir(parent)?;
            }
            if !target.exists() {
                write_file(&target, "")?;
            }
        }
        bind(&b.source, &target, b.writable)?;
    }
    if spec.persistent.is_some() {
        // Run-time state of the jail's daemons (pid files, sockets) starts empty at every start.
        let run = root.join("run");
        mkdir(&run)?;
        mnt(
            None,
            &run,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some("mode=0755"),
        )?;
    } else if spec.release == ReleaseRef::Host {
        // The generated root stays read-only, like the host directories bound into it.
        mnt(
            None,
            &root,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID,
            None,
        )?;
    }
    pivot(&root)
}

fn write_etc(root: &Path, files: &[(&str, String)]) -> Result<()> {
    let etc = root.join("etc");
    mkdir(&etc)?;
    for (name, body) in files {
        let path = etc.join(name);
        // A release may ship these as symlinks (e.g. resolv.conf -> systemd); replace them.
        let _ = fs::remove_file(&path);
        write_file(&path, body)?;
    }
    Ok(())
}

fn host_root(spec: &WorkerSpec, root: &Path) -> Result<()> {
    host_skeleton(root)?;
    bind_host_dirs(root)?;
    write_etc(root, &host_etc(spec))?;
    host_userland(spec, root, true)
}

/// Host `/etc` directories a usable userland needs, bound read-only: Debian's alternatives (`awk`, `which`,
/// `editor`, `pager` are links through them) and the CA certificates. Never `/etc/ssl/private`, `shadow`, or
/// anything else of the host's `/etc`.
const HOST_ETC_DIRS: [&str; 2] = ["alternatives", "ssl/certs"];
/// Host `/etc` files bound read-only (public tables and OpenSSL's config).
const HOST_ETC_FILES: [&str; 4] = ["services", "protocols", "ssl/openssl.cnf", "mime.types"];

/// Makes a host-release root usable by an agent (what it writes is listed in `release::USERLAND_WRITTEN`): alternatives, CA certificates, network tables, the
/// timezone (`spec.timezone`, else the host's) and a UTF-8 locale. In a jail (`own_etc == false`) the jail's
/// own `/etc/localtime` and locale files win.
fn host_userland(spec: &WorkerSpec, root: &Path, own_etc: bool) -> Result<()> {
    let etc = root.join("etc");
    for d in HOST_ETC_DIRS {
        let host = Path::new("/etc").join(d);
        if host.is_dir() {
            let inside = etc.join(d);
            mkdir(&inside)?;
            bind(&host, &inside, false)?;
        }
    }
    for f in HOST_ETC_FILES {
        let host = Path::new("/etc").join(f);
        if host.is_file() {
            let inside = etc.join(f);
            if let Some(parent) = inside.parent() {
                mkdir(parent)?;
            }
            if !inside.exists() {
                write_file(&inside, "")?;
            }
            bind(&host, &inside, false)?;
        }
    }
    let localtime = etc.join("localtime");
    if !own_etc && fs::symlink_metadata(&localtime).is_ok() {
        return Ok(());
    }
    let zone = spec
        .timezone
        .as_deref()
        .filter(|tz| valid_zone(tz))
        .map(|tz| PathBuf::from("/usr/share/zoneinfo").join(tz))
        .or_else(|| fs::read_link("/etc/localtime").ok());
    if let Some(zone) = zone {
        let _ = fs::remove_file(&localtime);
        symlink(&zone, &localtime).map_err(|e| Error::io("create symlink", &localtime, e))?;
        if let Ok(name) = zone.strip_prefix("/usr/share/zoneinfo") {
            write_file(&etc.join("timezone"), &format!("{}\n", name.display()))?;
        }
    }
    mkdir(&etc.join("default"))?;
    // C.UTF-8 is built into glibc (no locale files needed).
    write_file(&etc.join("default/locale"), "LANG=C.UTF-8\n")
}

/// A zone name that names a file under /usr/share/zoneinfo (no `..`, no absolute path).
fn valid_zone(tz: &str) -> bool {
    !tz.is_empty()
        && !tz.starts_with('/')
        && !tz.split('/').any(|c| c == ".." || c.is_empty())
        && Path::new("/usr/share/zoneinfo").join(tz).is_file()
}

/// The directories and merged-usr symlinks of a host-release root (what exists is kept).
fn host_skeleton(root: &Path) -> Result<()> {
    for d in HOST_DIRS {
        let host = Path::new("/").join(d);
        let Ok(meta) = fs::symlink_metadata(&host) else {
            continue;
        };
        let inside = root.join(d);
        if fs::symlink_metadata(&inside).is_ok() {
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&host).map_err(|e| Error::io("read link", &host, e))?;
            symlink(&target, &inside).map_err(|e| Error::io("create symlink", &inside, e))?;
        } else if meta.is_dir() {
            mkdir(&inside)?;
        }
    }
    for d in ["root", "home", "var/tmp", "run", "mnt"] {
        mkdir(&root.join(d))?;
    }
    Ok(())
}

/// Binds the host's system directories read-only into a root made by [`host_skeleton`].
fn bind_host_dirs(root: &Path) -> Result<()> {
    for d in HOST_DIRS {
        let host = Path::new("/").join(d);
        let is_dir = fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir());
        let inside = root.join(d);
        if is_dir && fs::symlink_metadata(&inside).is_ok_and(|m| m.is_dir()) {
            bind(&host, &inside, false)?;
        }
    }
    Ok(())
}

/// The root of a persistent jail, whose data lives in `dir` (`<state_dir>/jails/NAME`):
/// - thin: overlayfs with the persistent `dir/upper` over the release (for the `host` release,
///   over a skeleton generated in the jail's tmpfs);
/// - thick: `dir/root`, the jail's own copy, bound writable.
///
/// On the `host` release the host's `/usr`, `/bin`, `/lib*`, `/sbin` are then bound read-only
/// over either shape: everything else (`/etc`, `/var`, `/srv`, `/home`, `/root`, `/opt`) is the
/// jail's own and persists; the host's system is shared, never copied (gigabytes, and it would
/// go stale).
fn jail_root(spec: &WorkerSpec, dir: &Path, base: &Path, root: &Path) -> Result<()> {
    let host = spec.release == ReleaseRef::Host;
    match spec.shape {
        Shape::Thin => {
            let lower = match &spec.release {
                ReleaseRef::Dir(release) => release.clone(),
                ReleaseRef::Host => {
                    let lower = base.join("lower");
                    mkdir(&lower)?;
                    host_skeleton(&lower)?;
                    write_etc_missing(&lower, &host_etc(spec))?;
                    lower
                }
            };
            let (upper, work) = (dir.join("upper"), dir.join("work"));
            mkdir(&upper)?;
            mkdir(&work)?;
            let opts = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            );
            mnt(None, root, Some("overlay"), MsFlags::empty(), Some(&opts))?;
        }
        Shape::Thick => {
            let own = dir.join("root");
            if !own.is_dir() {
                return Err(Error::Setup {
                    name: spec.name.clone(),
                    message: format!(
                        "failed to find the thick jail's root {}: the jail was not created completely; fix: `warden jail destroy {}` and create it again",
                        own.display(),
                        spec.name
                    ),
                });
            }
            bind(&own, root, true)?;
            if host {
                host_skeleton(root)?;
                write_etc_missing(root, &host_etc(spec))?;
            }
        }
    }
    if host {
        bind_host_dirs(root)?;
        host_userland(spec, root, false)?;
    }
    write_etc(root, &network_etc(spec))
}

/// Writes the files of `files` that `root/etc` does not have yet (the jail's edits win).
fn write_etc_missing(root: &Path, files: &[(&str, String)]) -> Result<()> {
    let etc = root.join("etc");
    let missing: Vec<(&str, String)> = files
        .iter()
        .filter(|(name, _)| fs::symlink_metadata(etc.join(name)).is_err())
        .cloned()
        .collect();
    write_etc(root, &missing)
}

/// `/proc`, `/dev`, `/tmp`: fresh, private, minimal.
fn special_mounts(root: &Path) -> Result<()> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let proc_dir = root.join("proc");
    mkdir(&proc_dir)?;
    mnt(
        None,
        &proc_dir,
        Some("proc"),
        nosuid_nodev | MsFlags::MS_NOEXEC,
        None,
    )?;
    // Kernel tunables stay read-only even for a root worker.
    let sys = proc_dir.join("sys");
    bind(&sys, &sys, false)?;

    let dev = root.join("dev");
    mkdir(&dev)?;
    mnt(
        None,
        &dev,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("mode=0755,size=64k"),
    )?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = dev.join(name);
        // The umask is 0 here (set in build_root), so the mode is exactly 0666.
        mknod(
            &path,
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .map_err(|e| Error::sys(format!("create device {}", path.display()), e))?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    mnt(
        None,
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mnt(
        None,
        &shm,
        Some("tmpfs"),
        nosuid_nodev,
        Some("mode=1777,size=64m"),
    )?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev.join(link);
        symlink(target, &path).map_err(|e| Error::io("create symlink", &path, e))?;
    }

    let tmp = root.join("tmp");
    mkdir(&tmp)?;
    mnt(None, &tmp, Some("tmpfs"), nosuid_nodev, Some("mode=1777"))?;
    Ok(())
}

/// `/dev/net/tun` (character device 10:200), which tailscaled opens to create its interface. The jail's `/dev`
/// is its own tmpfs, so the device is there only for jails that ask for it.
fn tun_device(root: &Path) -> Result<()> {
    let net = root.join("dev/net");
    mkdir(&net)?;
    let path = net.join("tun");
    mknod(
        &path,
        SFlag::S_IFCHR,
        Mode::from_bits_truncate(0o666),
        makedev(10, 200),
    )
    .map_err(|e| Error::sys(format!("create device {}", path.display()), e))
}

/// Makes `root` the root and drops every trace of the old one.
fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).map_err(|e| Error::sys(format!("chdir {}", root.display()), e))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
    // removes the old root without needing a directory for it inside the worker.
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| Error::sys(format!("pivot_root into {}", root.display()), e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| Error::sys("detach the old root", e))?;
    nix::unistd::chdir("/").map_err(|e| Error::sys("chdir /", e))?;
    nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
    Ok(())
}
