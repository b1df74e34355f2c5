//! The single-instance lock: one poller per state directory. A POSIX record lock (`fcntl
//! F_SETLK`) on `<state_dir>/telegram.lock`: it belongs to the process (workers forked from
//! `warden serve` do not inherit it), it goes away when the process dies (even by `kill -9`), and
//! `F_GETLK` tells another process which pid holds it (`warden doctor`, `warden telegram status`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg};

/// The lock file's name in the state directory.
pub const LOCK_FILE: &str = "telegram.lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct PollerLock {
    _file: File,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("another process (pid {pid}) is already polling Telegram for state directory {dir}: stop it first (two pollers make Telegram answer 409 to both)")]
    Held {
        /// The holder.
        pid: i32,
        /// The state directory.
        dir: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error("failed to lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// A whole-file record lock request of `kind` (nix has no constructor for the platform's `struct flock`).
fn flock(kind: libc::c_short) -> libc::flock {
    // SAFETY: flock is plain old data; all-zero is a valid value that is then filled in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| LockError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Takes the lock of `state_dir` and writes this pid into it.
pub fn acquire(state_dir: &Path) -> Result<PollerLock, LockError> {
    let path = state_dir.join(LOCK_FILE);
    let mut file = open(&path)?;
    let fl = flock(libc::F_WRLCK as libc::c_short);
    if let Err(errno) = fcntl(file.as_raw_fd(), FcntlArg::F_SETLK(&fl)) {
        let err = std::io::Error::from(errno);
        if let Some(pid) = holder(state_dir) {
            return Err(LockError::Held {
                pid,
                dir: state_dir.to_path_buf(),
            });
        }
        return Err(LockError::Io { path, source: err });
    }
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(PollerLock { _file: file })
}

/// The pid holding the lock of `state_dir`, if any process does.
pub fn holder(state_dir: &Path) -> Option<i32> {
    let path = state_dir.join(LOCK_FILE);
    let file = File::open(&path).ok()?;
    let mut fl = flock(libc::F_WRLCK as libc::c_short);
    // F_GETLK on a read-only descriptor is allowed; it reports a conflicting lock's owner.
    fcntl(file.as_raw_fd(), FcntlArg::F_GETLK(&mut fl)).ok()?;
    (fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Not a test of its own: the child process of the test below, holding the lock until killed.
    #[test]
    #[ignore = "run by a_lock_held_elsewhere_is_refused_until_its_holder_dies"]
    fn lock_holder_child() {
        if let Some(dir) = std::env::var_os("WARDEN_TG_LOCK_DIR") {
            let _lock = acquire(Path::new(&dir)).unwrap();
            println!("locked");
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }

    /// Another process (this test binary, running the test above) holds the lock: it is reported
    /// with its pid and refused; once it dies, the lock is free.
    #[test]
    fn a_lock_held_elsewhere_is_refused_until_its_holder_dies() {
        use std::io::{BufRead, BufReader};
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(holder(dir.path()), None);
        let path = dir.path().join(LOCK_FILE);
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "lock::tests::lock_holder_child",
                "--nocapture",
            ])
            .env("WARDEN_TG_LOCK_DIR", dir.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while line.trim() != "locked" {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the child ended without the lock"
            );
        }
        assert_eq!(holder(dir.path()), Some(child.id() as i32));
        match acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, child.id() as i32),
            other => panic!("expected Held, got {other:?}"),
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(holder(dir.path()), None);
        let _lock = acquire(dir.path()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
    }
}
