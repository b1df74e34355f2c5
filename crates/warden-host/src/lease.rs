//! Worker address leases, shared by both backends: one lock file per address in `state_dir/leases/`.
//!
//! Why file locks and not SQLite: a lease is `flock(LOCK_EX)` on `leases/<addr>`, and the kernel
//! drops the lock when its holder exits for any reason, `kill -9` included — a dead holder can never
//! keep an address, with no clean-up needed and no shared database to open on the hot path (an open
//! and a flock, microseconds). Lock files are never deleted (deleting a lock file races with a process
//! that just opened it).
//!
//! A lease is unlocked explicitly (`LOCK_UN` when the [`Flock`] drops), not only by closing the file:
//! a `flock` belongs to the open file description, which a child forked by another thread shares
//! until it execs (or for good, if it never does), so closing our descriptor alone could leave the
//! address locked after the lease was dropped.
//!
//! Each lease file says who holds it: `<pid> <holder>`, where the backend chooses `holder` (the
//! Linux backend writes the process start time, so [`clear_dead`] can tell a reused pid).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Why no address could be leased.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// The lease directory or a lease file could not be used.
    #[error("failed to {op} lease file {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The range is not ascending inside one /24 (worker names are made of the last octet).
    #[error("failed to lease from {first}..={last}: the range must be ascending and inside one /24\n  fix: set slots.workers_first/last to addresses of one /24, first <= last")]
    Range {
        /// First address of the range.
        first: Ipv4Addr,
        /// Last address of the range.
        last: Ipv4Addr,
    },
    /// Every address of the range is taken.
    #[error("no free worker address in {first}..={last}: every one is leased\n  fix: wait for running workers to finish, or widen slots.workers_first/last")]
    Exhausted {
        /// First address of the range.
        first: Ipv4Addr,
        /// Last address of the range.
        last: Ipv4Addr,
    },
}

/// A leased address, released when dropped.
#[derive(Debug)]
pub struct Lease {
    addr: Ipv4Addr,
    file: Flock<File>,
}

impl Lease {
    /// The leased address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Forget the holder; the Flock's own drop then unlocks (see the module doc).
        let _ = self.file.set_len(0);
    }
}

/// The directory of the lease files.
pub fn leases_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("leases")
}

/// Takes the lock without waiting; `None` when another holder has it.
fn try_lock(file: File) -> Option<Flock<File>> {
    Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
}

/// Leases the lowest free address of `range` (inclusive). Safe across threads and processes.
pub fn lease(
    state_dir: &Path,
    range: (Ipv4Addr, Ipv4Addr),
    holder: &str,
) -> Result<Lease, LeaseError> {
    lease_unless(state_dir, range, holder, |_| false)
}

/// Like [`lease`], but also skips every address for which `in_use` is true; it is asked before
/// and again under the lock (a previous holder's worker may have been recorded in between).
pub fn lease_unless(
    state_dir: &Path,
    range: (Ipv4Addr, Ipv4Addr),
    holder: &str,
    in_use: impl Fn(Ipv4Addr) -> bool,
) -> Result<Lease, LeaseError> {
    let (first, last) = range;
    if first > last || first.octets()[..3] != last.octets()[..3] {
        return Err(LeaseError::Range { first, last });
    }
    let dir = leases_dir(state_dir);
    fs::create_dir_all(&dir).map_err(|source| LeaseError::Io {
        op: "create the directory of",
        path: dir.clone(),
        source,
    })?;
    let line = format!("{} {holder}\n", std::process::id());
    for n in u32::from(first)..=u32::from(last) {
        let addr = Ipv4Addr::from(n);
        if in_use(addr) {
            continue;
        }
        let path = dir.join(addr.to_string());
        let io = |op| {
            let path = path.clone();
            move |source| LeaseError::Io { op, path, source }
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io("open"))?;
        let Some(mut file) = try_lock(file) else {
            continue;
        };
        if in_use(addr) {
            continue;
        }
        file.set_len(0).map_err(io("truncate"))?;
        file.rewind().map_err(io("rewind"))?;
        file.write_all(line.as_bytes()).map_err(io("write"))?;
        return Ok(Lease { addr, file });
    }
    Err(LeaseError::Exhausted { first, last })
}

/// Clears the lease files whose holder is dead (their locks are already free) and reports each as
/// `lease <addr> held by dead pid <pid>`. `is_alive(pid, holder)` gets the pid and the holder words.
pub fn clear_dead(state_dir: &Path, is_alive: impl Fn(u32, &str) -> bool) -> Vec<String> {
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
        let (pid, holder) = body.trim_end().split_once(' ').unwrap_or((&body, ""));
        let Ok(pid) = pid.trim().parse::<u32>() else {
            continue;
        };
        if !is_alive(pid, holder) {
            let _ = file.set_len(0);
            cleaned.push(format!(
                "lease {} held by dead pid {pid}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    cleaned
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;

    fn range() -> (Ipv4Addr, Ipv4Addr) {
        ("10.0.1.101".parse().unwrap(), "10.0.1.103".parse().unwrap())
    }

    #[test]
    fn leases_are_distinct_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path(), range(), "a").unwrap();
        let b = lease(dir.path(), range(), "b").unwrap();
        let c = lease(dir.path(), range(), "c").unwrap();
        assert_eq!(a.addr().to_string(), "10.0.1.101");
        assert_eq!(b.addr().to_string(), "10.0.1.102");
        assert_eq!(c.addr().to_string(), "10.0.1.103");
        assert!(matches!(
            lease(dir.path(), range(), "d"),
            Err(LeaseError::Exhausted { .. })
        ));
        drop(b);
        assert_eq!(
            lease(dir.path(), range(), "e").unwrap().addr().to_string(),
            "10.0.1.102"
        );
    }

    #[test]
    fn a_dropped_lease_is_free_while_a_child_still_shares_its_descriptor() {
        // What a child forked by another thread holds until it execs: the same open file
        // description. Closing the lease's own descriptor alone would leave the lock held.
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path(), range(), "a").unwrap();
        let inherited = a.file.try_clone().unwrap();
        drop(a);
        assert_eq!(
            lease(dir.path(), range(), "b").unwrap().addr().to_string(),
            "10.0.1.101"
        );
        drop(inherited);
    }

    #[test]
    fn an_address_in_use_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let first = range().0;
        let l = lease_unless(dir.path(), range(), "a", |a| a == first).unwrap();
        assert_eq!(l.addr().to_string(), "10.0.1.102");
    }

    #[test]
    fn rejects_a_range_across_subnets_or_descending() {
        let dir = tempfile::tempdir().unwrap();
        for r in [
            ("10.0.1.200".parse().unwrap(), "10.0.2.5".parse().unwrap()),
            ("10.0.1.9".parse().unwrap(), "10.0.1.8".parse().unwrap()),
        ] {
            let e = lease(dir.path(), r, "a").unwrap_err();
            assert!(matches!(e, LeaseError::Range { .. }), "{e}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
    }

    #[test]
    fn the_file_names_its_holder_and_a_dead_one_is_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let l = lease(dir.path(), range(), "w101 extra").unwrap();
        let body = fs::read_to_string(leases_dir(dir.path()).join("10.0.1.101")).unwrap();
        assert_eq!(body, format!("{} w101 extra\n", std::process::id()));
        // Held (locked): never cleared, whatever the callback says.
        assert!(clear_dead(dir.path(), |_, _| false).is_empty());
        drop(l);
        fs::write(leases_dir(dir.path()).join("10.0.1.102"), "999999999 1\n").unwrap();
        let cleaned = clear_dead(dir.path(), |pid, holder| {
            assert_eq!((pid, holder), (999_999_999, "1"));
            false
        });
        assert_eq!(cleaned, vec!["lease 10.0.1.102 held by dead pid 999999999"]);
        assert!(clear_dead(dir.path(), |_, _| false).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of leases and drops: every lease is the lowest address not held, inside
        /// the range, distinct from the others held; exhaustion exactly when all are held.
        #[test]
        fn leases_are_the_lowest_free_and_distinct(
            first in 0u8..=250,
            len in 1u8..=5,
            ops in proptest::collection::vec(any::<Option<u8>>(), 1..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let last = first.saturating_add(len - 1);
            let r = (Ipv4Addr::new(10, 9, 8, first), Ipv4Addr::new(10, 9, 8, last));
            let mut held: Vec<Lease> = Vec::new();
            for op in ops {
                match op {
                    Some(i) if !held.is_empty() => {
                        held.remove(usize::from(i) % held.len());
                    }
                    _ => {
                        let taken: BTreeSet<u8> = held.iter().map(|l| l.addr().octets()[3]).collect();
                        let lowest_free = (first..=last).find(|o| !taken.contains(o));
                        match (lease(dir.path(), r, "p"), lowest_free) {
                            (Ok(l), Some(o)) => {
                                prop_assert_eq!(l.addr().octets()[3], o);
                                held.push(l);
                            }
                            (Err(LeaseError::Exhausted { .. }), None) => {}
                            (got, want) => prop_assert!(false, "got {:?}, wanted {:?}", got, want),
                        }
                    }
                }
            }
        }
    }
}
