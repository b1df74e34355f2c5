//! IP leases for networked workers: one lock file per address in `state_dir/leases/`.
//!
//! Why file locks and not SQLite: a lease is `flock(LOCK_EX)` on `leases/<addr>`, and the
//! kernel drops the lock when its holder exits for any reason, `kill -9` included — a dead
//! holder can never keep an address, with no clean-up needed and no shared database to open
//! on the hot path (one open + one flock, microseconds). Lock files are never deleted (deleting
//! a lock file races with a process that just opened it).
//!
//! A lease is unlocked explicitly (`LOCK_UN` when the [`Flock`] drops), not only by closing the
//! file: a `flock` belongs to the open file description, which a child forked by another thread
//! shares until it execs (or for good, if it never does), so closing our descriptor alone could
//! leave the address locked after the lease was dropped.
//!
//! An address is also skipped while a worker record named after it exists (`w<last octet>`):
//! that worker's teardown (the kernel destroying its veth) may still be running after `run`
//! returned, and reusing the name would collide with it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::record;

/// A leased address; released when dropped.
#[derive(Debug)]
pub struct Lease {
    addr: Ipv4Addr,
    file: Flock<File>,
}

impl Lease {
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The worker name that goes with the address: `w<last octet>` (e.g. `w101`).
    pub fn worker_name(&self) -> String {
        worker_name(self.addr)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Forget the holder; the Flock's own drop then unlocks (see the module doc).
        let _ = self.file.set_len(0);
    }
}

pub fn worker_name(addr: Ipv4Addr) -> String {
    format!("w{}", addr.octets()[3])
}

fn leases_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("leases")
}

/// Takes the lock without waiting; `None` when another holder has it.
fn try_lock(file: File) -> Option<Flock<File>> {
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// Leases the lowest free address of `range` (inclusive; within one /24 so names are unique).
/// Safe across threads and processes.
pub fn lease(state_dir: &Path, range: (Ipv4Addr, Ipv4Addr)) -> Result<Lease> {
    let (first, last) = range;
    if first > last || first.octets()[..3] != last.octets()[..3] {
        return Err(Error::Spec {
            field: "lease range",
            value: format!("{first}..={last}"),
            why: "must be ascending and inside one /24",
        });
    }
    let dir = leases_dir(state_dir);
    fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let me = std::process::id() as i32;
    let holder = format!("{me} {}\n", record::process_start(me).unwrap_or(0));
    for n in u32::from(first)..=u32::from(last) {
        let addr = Ipv4Addr::from(n);
        let name = worker_name(addr);
        if record::record_path(state_dir, &name).exists() {
            continue;
        }
        let path = dir.join(addr.to_string());
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lease", &path, e))?;
        let Some(mut file) = try_lock(file) else {
            continue;
        };
        // Re-check under the lock: a worker of the previous holder may have been recorded
        // between the first check and the lock.
        if record::record_path(state_dir, &name).exists() {
            continue;
        }
        file.set_len(0)
            .map_err(|e| Error::io("truncate lease", &path, e))?;
        file.rewind()
            .map_err(|e| Error::io("rewind lease", &path, e))?;
        file.write_all(holder.as_bytes())
            .map_err(|e| Error::io("write lease", &path, e))?;
        return Ok(Lease { addr, file });
    }
    Err(Error::LeasesExhausted { first, last })
}

/// Clears lease files whose recorded holder is dead (their locks are already free); reports them.
pub(crate) fn reap_dead(state_dir: &Path) -> Vec<String> {
    let mut cleaned = Vec::new();
    let Ok(entries) = fs::read_dir(leases_dir(state_dir)) else {
        return cleaned;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let Ok(file) = OpenOptions::new().read(true).write(true).open(entry.path()) else {
            continue;
        };
        let Some(mut file) = try_lock(file) else {
            continue;
        };
        let mut body = String::new();
        let _ = file.read_to_string(&mut body);
        let mut words = body.split_whitespace().map(|w| w.parse::<u64>().ok());
        if let (Some(Some(pid)), Some(Some(start))) = (words.next(), words.next()) {
            if !record::is_alive(pid as i32, start) {
                let _ = file.set_len(0);
                cleaned.push(format!(
                    "lease {} held by dead pid {pid}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range() -> (Ipv4Addr, Ipv4Addr) {
        ("10.0.1.101".parse().unwrap(), "10.0.1.103".parse().unwrap())
    }

    #[test]
    fn leases_are_distinct_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path(), range()).unwrap();
        let b = lease(dir.path(), range()).unwrap();
        let c = lease(dir.path(), range()).unwrap();
        assert_eq!(a.addr().to_string(), "10.0.1.101");
        assert_eq!(b.worker_name(), "w102");
        assert_eq!(c.addr().to_string(), "10.0.1.103");
        assert!(matches!(
            lease(dir.path(), range()),
            Err(Error::LeasesExhausted { .. })
        ));
        drop(b);
        assert_eq!(
            lease(dir.path(), range()).unwrap().addr().to_string(),
            "10.0.1.102"
        );
    }

    #[test]
    fn a_dropped_lease_is_free_while_a_child_still_shares_its_descriptor() {
        // What a child forked by another thread holds until it execs: the same open file
        // description. Closing the lease's own descriptor alone would leave the lock held.
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path(), range()).unwrap();
        let inherited = a.file.try_clone().unwrap();
        drop(a);
        assert_eq!(
            lease(dir.path(), range()).unwrap().addr().to_string(),
            "10.0.1.101"
        );
        drop(inherited);
    }

    #[test]
    fn a_recorded_worker_name_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("workers")).unwrap();
        fs::write(dir.path().join("workers/w101.json"), "{}").unwrap();
        assert_eq!(
            lease(dir.path(), range()).unwrap().addr().to_string(),
            "10.0.1.102"
        );
    }

    #[test]
    fn rejects_a_range_across_subnets() {
        let dir = tempfile::tempdir().unwrap();
        let r = ("10.0.1.200".parse().unwrap(), "10.0.2.5".parse().unwrap());
        assert!(matches!(lease(dir.path(), r), Err(Error::Spec { .. })));
    }

    #[test]
    fn a_dead_holder_is_reported_by_the_reaper() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("leases")).unwrap();
        fs::write(dir.path().join("leases/10.0.1.101"), "999999999 1\n").unwrap();
        let cleaned = reap_dead(dir.path());
        assert_eq!(
            cleaned,
            vec!["lease 10.0.1.101 held by dead pid 999999999".to_string()]
        );
        assert!(reap_dead(dir.path()).is_empty());
    }
}
