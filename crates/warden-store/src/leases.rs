//! Address leases: which worker (and process) holds which address, so a restart can reclaim them.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::{now_ms, Result, Store, StoreError};

/// One leased address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The address (e.g. `10.0.1.101`).
    pub addr: String,
    /// The holding worker's name.
    pub holder: String,
    /// The holding process, to detect dead holders.
    pub holder_pid: Option<u32>,
    /// When it was taken, ms since epoch.
    pub since_ms: i64,
}

fn lease_from_row(r: &Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        addr: r.get(0)?,
        holder: r.get(1)?,
        holder_pid: r.get(2)?,
        since_ms: r.get(3)?,
    })
}

impl Store {
    /// Sets the lease on `addr` to `holder`, whoever held it before.
    pub fn upsert_lease(&self, addr: &str, holder: &str, holder_pid: Option<u32>) -> Result<Lease> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO leases (addr, holder, holder_pid, since_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (addr) DO UPDATE SET holder = ?2, holder_pid = ?3, since_ms = ?4",
                params![addr, holder, holder_pid, now_ms()],
            )?;
            Ok(tx.query_row(
                "SELECT addr, holder, holder_pid, since_ms FROM leases WHERE addr = ?1",
                [addr],
                lease_from_row,
            )?)
        })
    }

    /// Takes `addr` for `holder` if it is free (or already theirs); otherwise `LeaseHeld`.
    /// Atomic across connections, so two allocators cannot both get one address.
    pub fn acquire_lease(
        &self,
        addr: &str,
        holder: &str,
        holder_pid: Option<u32>,
    ) -> Result<Lease> {
        self.write(|tx| {
            let current = tx
                .query_row(
                    "SELECT addr, holder, holder_pid, since_ms FROM leases WHERE addr = ?1",
                    [addr],
                    lease_from_row,
                )
                .optional()?;
            if let Some(lease) = current {
                if lease.holder != holder {
                    return Err(StoreError::LeaseHeld {
                        addr: addr.to_string(),
                        holder: lease.holder,
                    });
                }
            }
            tx.execute(
                "INSERT INTO leases (addr, holder, holder_pid, since_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (addr) DO UPDATE SET holder_pid = ?3",
                params![addr, holder, holder_pid, now_ms()],
            )?;
            Ok(tx.query_row(
                "SELECT addr, holder, holder_pid, since_ms FROM leases WHERE addr = ?1",
                [addr],
                lease_from_row,
            )?)
        })
    }

    /// Releases `addr`; returns whether a lease existed.
    pub fn release_lease(&self, addr: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM leases WHERE addr = ?1", [addr])? > 0))
    }

    /// Releases every lease of `holder`; returns how many.
    pub fn release_leases_of(&self, holder: &str) -> Result<usize> {
        self.write(|tx| Ok(tx.execute("DELETE FROM leases WHERE holder = ?1", [holder])?))
    }

    /// All leases, by address.
    pub fn list_leases(&self) -> Result<Vec<Lease>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT addr, holder, holder_pid, since_ms FROM leases ORDER BY addr")?;
        let rows = stmt.query_map([], lease_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_acquire_release_list() {
        let store = Store::open_in_memory().unwrap();
        let l = store.acquire_lease("10.0.1.101", "w101", Some(42)).unwrap();
        assert_eq!(l.holder_pid, Some(42));
        // Same holder again is fine; another holder is refused.
        store.acquire_lease("10.0.1.101", "w101", Some(43)).unwrap();
        assert!(matches!(
            store.acquire_lease("10.0.1.101", "w102", None),
            Err(StoreError::LeaseHeld { holder, .. }) if holder == "w101"
        ));
        store.upsert_lease("10.0.1.102", "w102", None).unwrap();
        store.upsert_lease("10.0.1.103", "w101", None).unwrap();
        let all = store.list_leases().unwrap();
        assert_eq!(
            all.iter().map(|l| l.addr.as_str()).collect::<Vec<_>>(),
            ["10.0.1.101", "10.0.1.102", "10.0.1.103"]
        );
        assert_eq!(all[0].holder_pid, Some(43));
        // upsert overrides the holder.
        assert_eq!(
            store
                .upsert_lease("10.0.1.102", "w109", Some(1))
                .unwrap()
                .holder,
            "w109"
        );
        assert_eq!(store.release_leases_of("w101").unwrap(), 2);
        assert!(store.release_lease("10.0.1.102").unwrap());
        assert!(!store.release_lease("10.0.1.102").unwrap());
        assert!(store.list_leases().unwrap().is_empty());
    }
}
