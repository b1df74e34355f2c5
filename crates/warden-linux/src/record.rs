//! Records of live workers: `state_dir/workers/<name>.json`, written before any resource is
//! created and removed after the last one is gone, so a crash at any point leaves enough for
//! the reaper to finish the job. The record's exclusive creation also claims the worker name.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What one live worker holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The helper process that owns the worker (and tears it down).
    pub owner_pid: i32,
    /// Start time of `owner_pid` (clock ticks since boot), so a reused pid is not mistaken for it.
    pub owner_start: u64,
    /// The worker's init (pid 1 of its pid namespace), once cloned.
    pub init_pid: Option<i32>,
    pub init_start: Option<u64>,
    pub cgroups: Vec<PathBuf>,
    /// Host-side veth name, if any, and the namespace it lives in (`None` = the owner's).
    pub veth: Option<String>,
    pub host_netns: Option<PathBuf>,
    /// Directories to remove (none today: worker roots live in a tmpfs of the worker's own
    /// mount namespace and vanish with it).
    pub dirs: Vec<PathBuf>,
}

pub fn workers_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("workers")
}

pub fn record_path(state_dir: &Path, name: &str) -> PathBuf {
    workers_dir(state_dir).join(format!("{name}.json"))
}

/// Start time of a process in clock ticks since boot, or `None` if it does not exist.
pub fn process_start(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    // Field 22 overall is the 20th after "pid (comm)".
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when process `pid` exists and started at `start` (and is not a zombie).
pub fn is_alive(pid: i32, start: u64) -> bool {
    if process_start(pid) != Some(start) {
        return false;
    }
    let state = fs::read_to_string(format!("/proc/{pid}/stat")).ok();
    let zombie = state
        .as_deref()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(true);
    !zombie
}

impl Record {
    pub fn owner_alive(&self) -> bool {
        is_alive(self.owner_pid, self.owner_start)
    }

    /// Creates the record file; fails with `AlreadyExists` if the name is taken.
    pub fn create(&self, state_dir: &Path) -> std::io::Result<()> {
        let dir = workers_dir(state_dir);
        fs::create_dir_all(&dir)?;
        let path = record_path(state_dir, &self.name);
        let body = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        // Publish the whole record at once: a reaper must never see an empty or half-written file
        // (it would take it for a record torn by a crash and delete a live worker's record). The
        // hard link fails with AlreadyExists when the name is taken, like create_new did.
        // An unnamed file (O_TMPFILE) linked into place: one directory operation.
        if let Ok(mut f) = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(&dir)
        {
            f.write_all(&body)?;
            let fd_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&f));
            let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_encoded_bytes());
            let (from, to) = (c(Path::new(&fd_path))?, c(&path)?);
            // SAFETY: two NUL-terminated paths; linkat follows the /proc link to our open file.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    from.as_ptr(),
                    libc::AT_FDCWD,
                    to.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            return if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            };
        }
        // A file system without O_TMPFILE: a named temporary file, linked, then removed.
        let tmp = dir.join(format!(".{}.json.{}.new", self.name, std::process::id()));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&body)?;
        drop(f);
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        linked
    }

    /// Rewrites the record atomically (temp file + rename).
    pub fn update(&self, state_dir: &Path) -> Result<()> {
        let path = record_path(state_dir, &self.name);
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec(self).map_err(|e| Error::Json {
            op: "encode record",
            source: e,
        })?;
        fs::write(&tmp, body).map_err(|e| Error::io("write", &tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }

    pub fn load(path: &Path) -> Result<Record> {
        let body = fs::read(path).map_err(|e| Error::io("read", path, e))?;
        serde_json::from_slice(&body).map_err(|e| Error::Json {
            op: "decode record",
            source: e,
        })
    }

    pub fn remove(state_dir: &Path, name: &str) -> Result<()> {
        let path = record_path(state_dir, name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", &path, e)),
        }
    }
}

/// Names of all recorded workers.
pub fn list(state_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(workers_dir(state_dir)) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_alive_and_a_wrong_start_is_not() {
        let me = std::process::id() as i32;
        let start = process_start(me).unwrap();
        assert!(is_alive(me, start));
        assert!(!is_alive(me, start + 1));
        assert!(!is_alive(-1, 0));
    }

    #[test]
    fn create_claims_the_name_once() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Record {
            name: "w1".into(),
            owner_pid: 1,
            ..Default::default()
        };
        rec.create(dir.path()).unwrap();
        assert_eq!(
            rec.create(dir.path()).unwrap_err().kind(),
            ErrorKind::AlreadyExists
        );
        let mut rec2 = rec.clone();
        rec2.init_pid = Some(5);
        rec2.update(dir.path()).unwrap();
        assert_eq!(Record::load(&record_path(dir.path(), "w1")).unwrap(), rec2);
        assert_eq!(list(dir.path()), vec!["w1".to_string()]);
        Record::remove(dir.path(), "w1").unwrap();
        assert!(list(dir.path()).is_empty());
    }
}
