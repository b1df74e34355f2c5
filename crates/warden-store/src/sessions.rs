//! Agent sessions: each tenant's pi session file and workspace, and how many turns used it.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::{now_ms, Result, Store};

/// A tenant's persistent agent session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Owning tenant (one session per tenant).
    pub tenant: String,
    /// pi `--session` file path.
    pub session_file: String,
    /// Workspace (cwd) path; must stay stable because pi stores it in the session.
    pub workspace: String,
    /// Turns run on this session.
    pub turn_count: u64,
    /// Creation time, ms since epoch.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

fn session_from_row(r: &Row<'_>) -> rusqlite::Result<Session> {
    Ok(Session {
        tenant: r.get(0)?,
        session_file: r.get(1)?,
        workspace: r.get(2)?,
        turn_count: r.get::<_, i64>(3)?.max(0) as u64,
        created_ms: r.get(4)?,
        updated_ms: r.get(5)?,
    })
}

const COLUMNS: &str = "tenant, session_file, workspace, turn_count, created_ms, updated_ms";

impl Store {
    /// The tenant's session, if any.
    pub fn get_session(&self, tenant: &str) -> Result<Option<Session>> {
        let sql = format!("SELECT {COLUMNS} FROM sessions WHERE tenant = ?1");
        Ok(self
            .conn()
            .query_row(&sql, [tenant], session_from_row)
            .optional()?)
    }

    /// Creates the tenant's session or updates its paths (the turn count is kept).
    pub fn upsert_session(
        &self,
        tenant: &str,
        session_file: &str,
        workspace: &str,
    ) -> Result<Session> {
        self.write(|tx| {
            let now = now_ms();
            tx.execute(
                "INSERT INTO sessions (tenant, session_file, workspace, turn_count, created_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, 0, ?4, ?4) \
                 ON CONFLICT (tenant) DO UPDATE SET session_file = ?2, workspace = ?3, updated_ms = ?4",
                params![tenant, session_file, workspace, now],
            )?;
            let sql = format!("SELECT {COLUMNS} FROM sessions WHERE tenant = ?1");
            Ok(tx.query_row(&sql, [tenant], session_from_row)?)
        })
    }

    /// Counts one more turn on the tenant's session; returns the new count (`None` if no session).
    pub fn record_session_turn(&self, tenant: &str) -> Result<Option<u64>> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE sessions SET turn_count = turn_count + 1, updated_ms = ?2 WHERE tenant = ?1",
                params![tenant, now_ms()],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let count: i64 =
                tx.query_row("SELECT turn_count FROM sessions WHERE tenant = ?1", [tenant], |r| r.get(0))?;
            Ok(Some(count.max(0) as u64))
        })
    }

    /// Forgets the tenant's session (the next turn starts a new one); returns whether one existed.
    pub fn delete_session(&self, tenant: &str) -> Result<bool> {
        self.write(|tx| Ok(tx.execute("DELETE FROM sessions WHERE tenant = ?1", [tenant])? > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_get_count_delete() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.get_session("acme").unwrap(), None);
        assert_eq!(store.record_session_turn("acme").unwrap(), None);
        let s = store
            .upsert_session("acme", "/var/pi/sessions/acme.jsonl", "/workspace/group")
            .unwrap();
        assert_eq!(s.turn_count, 0);
        assert_eq!(store.record_session_turn("acme").unwrap(), Some(1));
        assert_eq!(store.record_session_turn("acme").unwrap(), Some(2));
        let s2 = store
            .upsert_session("acme", "/var/pi/sessions/acme2.jsonl", "/workspace/group")
            .unwrap();
        assert_eq!(s2.turn_count, 2);
        assert_eq!(s2.session_file, "/var/pi/sessions/acme2.jsonl");
        assert_eq!(s2.created_ms, s.created_ms);
        assert_eq!(store.get_session("acme").unwrap(), Some(s2));
        assert!(store.delete_session("acme").unwrap());
        assert!(!store.delete_session("acme").unwrap());
    }
}
