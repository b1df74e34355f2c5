//! Where runtime state lives: files that describe live workers (records, cgroup name claims) and so need not
//! outlive a reboot, which removes what they describe. Like runc's `/run/runc`, they go on a tmpfs: on ext4
//! each one (created and removed per worker) costs a fresh inode, and at hundreds of workers a second the
//! allocator's search past recently deleted inodes was 9 % of the workers' CPU (`perf`, 32 clients).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Candidates for the runtime root, in order: the first that is a tmpfs holds `warden/`. `/dev/shm` serves
/// hosts (containers, this project's CI) whose `/run` is on disk.
pub const PARENTS: [&str; 2] = ["/run", "/dev/shm"];

/// Where runtime state goes when no candidate is a tmpfs (or its `warden/` is not safely ours).
pub const FALLBACK: &str = "/run/warden";

/// `<tmpfs>/warden`, made if missing, when it is a real directory only this user can write (`/dev/shm` is
/// writable by all: a link or a directory someone else made there must not receive records). Decided once per
/// process, so every part of it (and every Warden on the host) agrees.
pub fn root() -> Option<&'static Path> {
    static ROOT: OnceLock<Option<PathBuf>> = OnceLock::new();
    ROOT.get_or_init(find_root).as_deref()
}

/// [`root`], or [`FALLBACK`] on disk.
pub fn root_or_fallback() -> &'static Path {
    root().unwrap_or(Path::new(FALLBACK))
}

fn find_root() -> Option<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let parent = PARENTS.into_iter().find(|p| is_tmpfs(Path::new(p)))?;
    let root = Path::new(parent).join("warden");
    let _ = fs::DirBuilder::new().mode(0o700).create(&root);
    let meta = fs::symlink_metadata(&root).ok()?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    (meta.is_dir() && meta.uid() == me && meta.mode() & 0o077 == 0).then_some(root)
}

/// Whether `path` is on a tmpfs.
pub fn is_tmpfs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills a zeroed struct of the right type from a NUL-terminated path.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type == libc::TMPFS_MAGIC
    }
}
