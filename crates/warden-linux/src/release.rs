//! Releases: the root file systems workers start from.
//!
//! - `host`: read-only binds of the host's `/usr`, `/bin`, `/lib*`, `/sbin` plus a generated
//!   minimal `/etc` (no copy, so it costs nothing to "install").
//! - `debian`: a `debootstrap --variant=minbase` tree, used as the lower layer of overlayfs.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use warden_core::linux_release::{self, BuildPaths, BuildState};

use crate::error::{Error, Result};
use crate::spec::{NetworkMode, ReleaseRef, WorkerSpec};

/// Host directories bound read-only into a host-release worker (the missing ones are skipped;
/// symlinks such as merged-usr `/bin -> usr/bin` are recreated as symlinks).
pub const HOST_DIRS: [&str; 7] = ["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// The host's account database, which the `host` release shows its workers (names only for their ids).
const HOST_PASSWD: &str = "/etc/passwd";
const HOST_GROUP: &str = "/etc/group";

/// `(uid, gid)` of account `name` in the host's `/etc/passwd`: the worker account (`workers.user`) setup's
/// base step creates.
pub fn host_user(name: &str) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(HOST_PASSWD).ok()?;
    warden_core::account::parse_passwd(&text)
        .into_iter()
        .find(|(n, ..)| n == name)
        .map(|(_, uid, gid)| (uid, gid))
}

/// The host's names of `uid` and `gid`, so `id -un` in a worker answers as on the host (`clawdie`);
/// `worker` when the host has none.
fn host_names(uid: u32, gid: u32) -> (String, String) {
    let user = std::fs::read_to_string(HOST_PASSWD)
        .ok()
        .and_then(|t| {
            warden_core::account::parse_passwd(&t)
                .into_iter()
                .find(|(_, u, _)| *u == uid)
                .map(|(n, ..)| n)
        })
        .unwrap_or_else(|| "worker".into());
    let group = std::fs::read_to_string(HOST_GROUP)
        .ok()
        .and_then(|t| {
            warden_core::account::parse_group(&t)
                .into_iter()
                .find(|(_, g)| *g == gid)
                .map(|(n, _)| n)
        })
        .unwrap_or_else(|| "worker".into());
    (user, group)
}

/// The `/etc` files generated for a host-release worker: `(name, contents)`.
pub fn host_etc(spec: &WorkerSpec) -> Vec<(&'static str, String)> {
    let (uid, gid) = spec.user_or_default();
    let mut passwd = String::from("root:x:0:0:root:/root:/bin/sh\n");
    let mut group = String::from("root:x:0:\n");
    let (user_name, group_name) = host_names(uid, gid);
    if (uid, gid) != (0, 0) && uid != 65534 {
        passwd.push_str(&format!(
            "{user_name}:x:{uid}:{gid}:{user_name}:/tmp:/bin/sh\n"
        ));
    }
    if gid != 0 && gid != 65534 {
        group.push_str(&format!("{group_name}:x:{gid}:\n"));
    }
    passwd.push_str("nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    group.push_str("nogroup:x:65534:\n");
    let mut files = vec![
        ("passwd", passwd),
        ("group", group),
        ("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n".to_string()),
    ];
    files.extend(network_etc(spec));
    files
}

/// `/etc` files that depend on the worker's name and network (written for every release).
pub fn network_etc(spec: &WorkerSpec) -> Vec<(&'static str, String)> {
    let mut hosts = format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{}\n",
        spec.hostname
    );
    let resolv = match &spec.network {
        NetworkMode::Vnet(v) => {
            hosts.push_str(&format!("{}\t{}\n", v.addr, spec.hostname));
            nameserver_line(v.dns)
        }
        NetworkMode::Shared => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
        NetworkMode::None => String::new(),
    };
    vec![
        ("hosts", hosts),
        ("resolv.conf", resolv),
        ("hostname", format!("{}\n", spec.hostname)),
    ]
}

/// The Debian mirror apt uses on this host, read from `<etc_apt>/sources.list` and
/// `<etc_apt>/sources.list.d/*` (one-line and deb822 formats); security mirrors are skipped.
pub fn apt_mirror(etc_apt: &Path) -> Option<String> {
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
            .collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        for line in text.lines().map(str::trim) {
            let url = if let Some(rest) = line.strip_prefix("URIs:") {
                rest.split_whitespace().next()
            } else if let Some(rest) = line.strip_prefix("deb ") {
                rest.split_whitespace().find(|w| w.contains("://"))
            } else {
                None
            };
            if let Some(url) = url {
                if !url.contains("security") {
                    return Some(url.to_string());
                }
            }
        }
    }
    None
}

/// Builds a Debian bookworm minbase tree in `dir` with debootstrap from the mirror apt uses,
/// reporting each line debootstrap prints. Slow (minutes); run once per release.
pub fn bootstrap_debian(dir: &Path, progress: &mut dyn FnMut(&str)) -> Result<()> {
    let mirror = mirror();
    progress(&format!(
        "debootstrap --variant=minbase bookworm {} {mirror}",
        dir.display()
    ));
    let mut child = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(dir)
        .arg(&mirror)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io("run debootstrap into", dir, e))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            progress(&line);
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("wait for debootstrap into", dir, e))?;
    if !status.success() {
        return Err(Error::Setup {
            name: "debian".into(),
            message: format!("debootstrap into {} exited with {status}", dir.display()),
        });
    }
    Ok(())
}

/// How far a build of the service release in `paths` has got (files only; nothing runs).
pub fn observe_build(paths: &BuildPaths, worker_user: &str) -> BuildState {
    let b = PathBuf::from(paths.building());
    let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    let (user, group) = linux_release::has_account(
        &read(b.join("etc/passwd")),
        &read(b.join("etc/group")),
        worker_user,
    );
    BuildState {
        ready: Path::new(&paths.tree()).join("usr").is_dir(),
        building: b.exists(),
        // debootstrap removes its own work directory last, on success.
        bootstrapped: b.join("usr/bin/apt-get").is_file() && !b.join("debootstrap").exists(),
        installed: linux_release::installed_packages(&read(b.join("var/lib/dpkg/status"))),
        policy: b.join("usr/sbin/policy-rc.d").exists(),
        user,
        group,
        manifest: std::fs::read_to_string(paths.manifest()).ok(),
        debs: Path::new(&paths.debs()).is_dir(),
    }
}

/// Takes the build lock of a release cache, waiting while another build (another test, another state
/// directory) holds it; released when the file is dropped.
pub fn lock_build(paths: &BuildPaths) -> Result<std::fs::File> {
    let dir = Path::new(&paths.cache);
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let lock_path = PathBuf::from(paths.lock());
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io("open", &lock_path, e))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped or we die.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            "lock",
            &lock_path,
            std::io::Error::last_os_error(),
        ));
    }
    Ok(lock)
}

/// The Debian mirror of this host's apt (debootstrap downloads from it), else deb.debian.org.
pub fn mirror() -> String {
    apt_mirror(Path::new("/etc/apt")).unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

/// The releases `warden release bootstrap` knows how to make.
pub const BOOTSTRAPPABLE: [&str; 1] = ["debian"];

/// `<state_dir>/releases`.
pub fn releases_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("releases")
}

/// Metadata kept beside a release (not inside: the tree is a jail's `/`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReleaseMeta {
    /// Unix time the bootstrap finished.
    pub created: u64,
    /// Bytes in the tree when it was made (releases are never modified afterwards).
    pub size_bytes: u64,
}

/// One line of `warden release list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReleaseInfo {
    pub name: String,
    /// `None` for `host` (read-only binds of this host).
    pub path: Option<PathBuf>,
    pub size_bytes: Option<u64>,
    pub created: Option<u64>,
}

fn meta_path(state_dir: &Path, name: &str) -> PathBuf {
    releases_dir(state_dir).join(format!(".{name}.json"))
}

/// The root file system of release `name`: `host`, or a bootstrapped tree.
pub fn resolve(state_dir: &Path, name: &str) -> Result<ReleaseRef> {
    if name == "host" {
        return Ok(ReleaseRef::Host);
    }
    crate::spec::validate_name(name)?;
    let dir = releases_dir(state_dir).join(name);
    if !dir.join("usr").is_dir() {
        return Err(Error::Refused {
            op: "use release",
            name: name.to_string(),
            why: format!(
                "it is not bootstrapped ({} has no usr/)\n  fix: `warden release bootstrap {name}`, or use the host release",
                dir.display()
            ),
        });
    }
    Ok(ReleaseRef::Dir(dir))
}

/// `host`, then every bootstrapped release.
pub fn list(state_dir: &Path) -> Vec<ReleaseInfo> {
    let mut out = vec![ReleaseInfo {
        name: "host".into(),
        path: None,
        size_bytes: None,
        created: None,
    }];
    let Ok(rd) = std::fs::read_dir(releases_dir(state_dir)) else {
        return out;
    };
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .filter(|n| releases_dir(state_dir).join(n).join("usr").is_dir())
        .collect();
    names.sort();
    for name in names {
        let meta: Option<ReleaseMeta> = std::fs::read(meta_path(state_dir, &name))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        out.push(ReleaseInfo {
            path: Some(releases_dir(state_dir).join(&name)),
            size_bytes: meta.as_ref().map(|m| m.size_bytes),
            created: meta.map(|m| m.created),
            name,
        });
    }
    out
}

/// Bytes of the regular files under `dir` (symlinks not followed, hard links counted once each).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(|e| e.ok()) {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Bootstraps release `name` (only `debian`) into `<state_dir>/releases/NAME`: into a temporary
/// directory first, renamed into place when complete, so a crash never leaves a half release
/// under the real name. Refuses if it exists unless `force`; never replaces a release a thin
/// jail runs on (`in_use` names them).
pub fn bootstrap(
    state_dir: &Path,
    name: &str,
    force: bool,
    in_use: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<ReleaseInfo> {
    if !BOOTSTRAPPABLE.contains(&name) {
        return Err(Error::Refused {
            op: "bootstrap release",
            name: name.to_string(),
            why: format!(
                "unknown release\n  fix: one of {} (`host` needs no bootstrap)",
                BOOTSTRAPPABLE.join(", ")
            ),
        });
    }
    let dir = releases_dir(state_dir).join(name);
    if dir.exists() && !force {
        return Err(Error::Refused {
            op: "bootstrap release",
            name: name.to_string(),
            why: format!(
                "it exists already ({})\n  fix: `warden release bootstrap --force {name}` to make it again",
                dir.display()
            ),
        });
    }
    if !in_use.is_empty() {
        return Err(Error::Refused {
            op: "bootstrap release",
            name: name.to_string(),
            why: format!(
                "thin jails run on it: {}\n  fix: destroy them first (their root is an overlay over this release)",
                in_use.join(", ")
            ),
        });
    }
    let parent = releases_dir(state_dir);
    std::fs::create_dir_all(&parent).map_err(|e| Error::io("create directory", &parent, e))?;
    // One bootstrap at a time per state directory (they share the temporary directory).
    let lock_path = parent.join(".lock");
    let lock = std::fs::File::create(&lock_path).map_err(|e| Error::io("open", &lock_path, e))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is dropped or we die.
    if unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&lock),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    } != 0
    {
        return Err(Error::Refused {
            op: "bootstrap release",
            name: name.to_string(),
            why: "another `warden release bootstrap` is running in this state directory\n  fix: wait for it to finish".into(),
        });
    }
    let tmp = parent.join(format!(".{name}.bootstrapping"));
    if tmp.exists() {
        progress(&format!(
            "removing the remains of an interrupted bootstrap: {}",
            tmp.display()
        ));
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io("remove", &tmp, e))?;
    }
    bootstrap_debian(&tmp, progress)?;
    let meta = ReleaseMeta {
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        size_bytes: tree_size(&tmp),
    };
    if dir.exists() {
        let old = parent.join(format!(".{name}.replaced"));
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(&dir, &old).map_err(|e| Error::io("rename away", &dir, e))?;
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("remove", &old, e))?;
    }
    let body = serde_json::to_vec(&meta).map_err(|e| Error::Json {
        op: "encode release metadata",
        source: e,
    })?;
    let mp = meta_path(state_dir, name);
    std::fs::write(&mp, body).map_err(|e| Error::io("write", &mp, e))?;
    std::fs::rename(&tmp, &dir).map_err(|e| Error::io("rename into place", &dir, e))?;
    Ok(ReleaseInfo {
        name: name.to_string(),
        path: Some(dir),
        size_bytes: Some(meta.size_bytes),
        created: Some(meta.created),
    })
}

/// Removes a bootstrapped release; refuses while thin jails (`in_use`) run on it.
pub fn destroy(state_dir: &Path, name: &str, in_use: &[String]) -> Result<()> {
    if name == "host" {
        return Err(Error::Refused {
            op: "destroy release",
            name: name.into(),
            why: "the host release is this machine's own system; there is nothing to remove".into(),
        });
    }
    crate::spec::validate_name(name)?;
    let dir = releases_dir(state_dir).join(name);
    if !dir.exists() {
        return Err(Error::Refused {
            op: "destroy release",
            name: name.into(),
            why: format!(
                "there is no such release ({} is missing)\n  fix: `warden release list`",
                dir.display()
            ),
        });
    }
    if !in_use.is_empty() {
        return Err(Error::Refused {
            op: "destroy release",
            name: name.into(),
            why: format!(
                "thin jails run on it: {}\n  fix: `warden jail destroy` them first",
                in_use.join(", ")
            ),
        });
    }
    let gone = releases_dir(state_dir).join(format!(".{name}.destroying"));
    std::fs::rename(&dir, &gone).map_err(|e| Error::io("rename away", &dir, e))?;
    let _ = std::fs::remove_file(meta_path(state_dir, name));
    std::fs::remove_dir_all(&gone).map_err(|e| Error::io("remove", &gone, e))
}

/// An address in dotted form for files; a helper kept here so `/etc` rendering stays in one place.
pub fn nameserver_line(dns: Ipv4Addr) -> String {
    format!("nameserver {dns}\n")
}

/// Files a jail's start writes into its root for the userland (`mounts::host_userland`: mount points of host
/// files, the timezone, the locale), relative to the root: Warden's, not the jail's data.
pub const USERLAND_WRITTEN: [&str; 7] = [
    "etc/services",
    "etc/protocols",
    "etc/ssl/openssl.cnf",
    "etc/mime.types",
    "etc/localtime",
    "etc/timezone",
    "etc/default/locale",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Vnet;

    #[test]
    fn finds_the_deb822_mirror_and_skips_security() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/debian.sources"),
            "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n",
        )
        .unwrap();
        assert_eq!(
            apt_mirror(dir.path()).as_deref(),
            Some("http://mirror.example/debian")
        );
        std::fs::write(
            dir.path().join("sources.list"),
            "deb [arch=amd64] http://one.example/debian bookworm main\n",
        )
        .unwrap();
        assert_eq!(
            apt_mirror(dir.path()).as_deref(),
            Some("http://one.example/debian")
        );
    }

    #[test]
    fn host_etc_names_the_worker_user_and_dns() {
        let mut spec = WorkerSpec::new("w101", &["true"], "/tmp/x");
        // An id this host has no name for (the worker account's own name comes from the host's passwd).
        spec.user = Some((64999, 64999));
        spec.network = NetworkMode::Vnet(Vnet {
            addr: "10.0.1.101".parse().unwrap(),
            prefix: 24,
            gateway: "10.0.1.1".parse().unwrap(),
            bridge: "warden0".into(),
            dns: "10.0.1.1".parse().unwrap(),
            host_netns: None,
        });
        let files = host_etc(&spec);
        let get = |n: &str| files.iter().find(|(k, _)| *k == n).unwrap().1.clone();
        assert!(get("passwd").contains("worker:x:64999:64999:"));
        assert!(get("group").contains("worker:x:64999:"));
        assert_eq!(
            get("resolv.conf"),
            nameserver_line("10.0.1.1".parse().unwrap())
        );
        assert!(get("hosts").contains("10.0.1.101\tw101"));
    }
}
