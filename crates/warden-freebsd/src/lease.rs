//! Address leases for networked workers (`.101`–`.149`): one `flock`ed file per address in `state_dir/leases/`.
//! The kernel drops a lock when its holder exits for any reason, so a crashed worker never keeps an address.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

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
    _file: File,
}

impl Lease {
    /// The leased address.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }
}

/// Leases the lowest free address in `range` (inclusive).
pub fn lease(
    state_dir: &Path,
    range: (Ipv4Addr, Ipv4Addr),
    holder: &str,
) -> Result<Lease, LeaseError> {
    let dir = state_dir.join("leases");
    std::fs::create_dir_all(&dir).map_err(|source| LeaseError::Io {
        op: "create the directory of",
        path: dir.clone(),
        source,
    })?;
    for n in u32::from(range.0)..=u32::from(range.1) {
        let addr = Ipv4Addr::from(n);
        let path = dir.join(addr.to_string());
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| LeaseError::Io {
                op: "open",
                path: path.clone(),
                source,
            })?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        // The holder's name is for people reading the directory; the lock is what counts.
        let _ = file
            .set_len(0)
            .and_then(|_| file.write_all(format!("{holder} {}\n", std::process::id()).as_bytes()));
        return Ok(Lease { addr, _file: file });
    }
    Err(LeaseError::Exhausted {
        first: range.0,
        last: range.1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowest_free_then_exhausted_then_reused() {
        let dir = tempfile::tempdir().unwrap();
        let range = (Ipv4Addr::new(10, 0, 1, 101), Ipv4Addr::new(10, 0, 1, 102));
        let a = lease(dir.path(), range, "a").unwrap();
        let b = lease(dir.path(), range, "b").unwrap();
        assert_eq!((a.addr(), b.addr()), range);
        assert!(matches!(
            lease(dir.path(), range, "c"),
            Err(LeaseError::Exhausted { .. })
        ));
        drop(a);
        assert_eq!(lease(dir.path(), range, "d").unwrap().addr(), range.0);
    }
}
