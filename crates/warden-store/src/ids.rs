//! Time-ordered ids: 12 hex digits of milliseconds, then 20 hex digits of randomness.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A turn's id; sorts by creation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TurnId(pub String);

impl TurnId {
    /// A fresh id.
    pub fn new() -> Self {
        TurnId(new_id())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TurnId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TurnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for TurnId {
    fn from(s: &str) -> Self {
        TurnId(s.to_string())
    }
}

impl rusqlite::types::ToSql for TurnId {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl rusqlite::types::FromSql for TurnId {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Ok(TurnId(v.as_str()?.to_string()))
    }
}

/// A 32-hex-digit id, sortable by creation time (ULID-like, without a dependency): 48 bits of
/// milliseconds, then 80 random bits. Within one process ids are strictly increasing (as in monotonic
/// ULIDs, the random part is incremented when the clock has not moved). Randomness comes from std's
/// per-process random hasher keys: unique, not secret.
pub fn new_id() -> String {
    static LAST: Mutex<(u64, u128)> = Mutex::new((0, 0));
    const RAND_MASK: u128 = (1 << 80) - 1;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as u64 & 0xffff_ffff_ffff;
    let mut last = match LAST.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
    let (ms, rand) = if ms <= last.0 {
        // Same millisecond (or the clock went back): stay on the last one and count up.
        (last.0, (last.1 + 1) & RAND_MASK)
    } else {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(now.as_nanos());
        h.write_u32(std::process::id());
        let a = h.finish();
        h.write_u64(a);
        // Keep headroom below 2^80 so counting up within a millisecond does not wrap.
        let b = h.finish() & 0x7fff;
        (ms, ((b as u128) << 64) | a as u128)
    };
    *last = (ms, rand);
    format!("{ms:012x}{rand:020x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_fixed_width_and_time_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids, "strictly increasing within a process");
        assert!(ids
            .iter()
            .all(|i| i.len() == 32 && i.chars().all(|c| c.is_ascii_hexdigit())));
        let later = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_id() > later);
    }
}
