//! Worker addresses for the Linux backend, from the shared allocator [`warden_host::lease`]: a
//! leased address also names its worker (`w<last octet>`), and an address is skipped while a worker
//! record of that name exists — that worker's teardown (the kernel destroying its veth) may still be
//! running after `run` returned, and reusing the name would collide with it.

use std::net::Ipv4Addr;
use std::path::Path;

use warden_host::lease as shared;

use crate::error::Result;
use crate::record;

/// A leased address; released when dropped.
#[derive(Debug)]
pub struct Lease(shared::Lease);

impl Lease {
    /// The leased address.
    pub fn addr(&self) -> Ipv4Addr {
        self.0.addr()
    }

    /// The worker name that goes with the address: `w<last octet>` (e.g. `w101`).
    pub fn worker_name(&self) -> String {
        worker_name(self.addr())
    }
}

/// The worker name of an address: `w<last octet>`.
pub fn worker_name(addr: Ipv4Addr) -> String {
    format!("w{}", addr.octets()[3])
}

/// Leases the lowest free address of `range` (inclusive; within one /24 so names are unique).
/// Safe across threads and processes.
pub fn lease(state_dir: &Path, range: (Ipv4Addr, Ipv4Addr)) -> Result<Lease> {
    // The holder words are the process start time, so the reaper can tell a reused pid.
    let start = record::process_start(std::process::id() as i32).unwrap_or(0);
    let recorded = |addr| record::record_path(state_dir, &worker_name(addr)).exists();
    Ok(Lease(shared::lease_unless(
        state_dir,
        range,
        &start.to_string(),
        recorded,
    )?))
}

/// Clears lease files whose recorded holder is dead (their locks are already free); reports them.
pub(crate) fn reap_dead(state_dir: &Path) -> Vec<String> {
    shared::clear_dead(state_dir, |pid, start| {
        // Unreadable holder words: leave the file alone, as if alive.
        start
            .parse::<u64>()
            .map_or(true, |start| record::is_alive(pid as i32, start))
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::error::Error;

    fn range() -> (Ipv4Addr, Ipv4Addr) {
        ("10.0.1.101".parse().unwrap(), "10.0.1.103".parse().unwrap())
    }

    #[test]
    fn leases_name_their_workers_and_exhaust() {
        let dir = tempfile::tempdir().unwrap();
        let a = lease(dir.path(), range()).unwrap();
        let b = lease(dir.path(), range()).unwrap();
        let _c = lease(dir.path(), range()).unwrap();
        assert_eq!(a.addr().to_string(), "10.0.1.101");
        assert_eq!(b.worker_name(), "w102");
        assert!(matches!(
            lease(dir.path(), range()),
            Err(Error::LeasesExhausted { .. })
        ));
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
        // A live holder (this process, with its start time) is not reported.
        let me = std::process::id() as i32;
        let start = record::process_start(me).unwrap();
        fs::write(
            dir.path().join("leases/10.0.1.102"),
            format!("{me} {start}\n"),
        )
        .unwrap();
        assert!(reap_dead(dir.path()).is_empty());
    }
}
