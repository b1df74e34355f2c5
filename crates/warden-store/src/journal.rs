//! The apply journal: each step of a host change is written as planned before it runs, then
//! marked started and done/failed, so a crashed run can be found and completed or cleaned up.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{now_ms, text_enum, Result, Store, StoreError};

text_enum! {
    /// Where a journal entry is.
    JournalState {
        /// Written, not yet run.
        Planned => "planned",
        /// Running (a crash here leaves it uncertain).
        Started => "started",
        /// Finished.
        Done => "done",
        /// Failed.
        Failed => "failed",
    }
}

/// One step of an apply run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The run.
    pub run_id: String,
    /// Position in the run, from 1.
    pub seq: u64,
    /// The setup step (`host`, `jails`, `dns`, ...).
    pub step: String,
    /// The action, as JSON.
    pub action: Value,
    /// Where it is.
    pub state: JournalState,
    /// The error, when failed.
    pub error: Option<String>,
    /// When it was planned, ms since epoch.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

/// All entries of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalRun {
    /// The run.
    pub run_id: String,
    /// Its entries in order.
    pub entries: Vec<JournalEntry>,
}

const COLUMNS: &str = "run_id, seq, step, action, state, error, created_ms, updated_ms";

fn entry_from_row(r: &Row<'_>) -> rusqlite::Result<JournalEntry> {
    let action: String = r.get(3)?;
    let action = serde_json::from_str(&action).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, e.into())
    })?;
    Ok(JournalEntry {
        run_id: r.get(0)?,
        seq: r.get::<_, i64>(1)?.max(0) as u64,
        step: r.get(2)?,
        action,
        state: r.get(4)?,
        error: r.get(5)?,
        created_ms: r.get(6)?,
        updated_ms: r.get(7)?,
    })
}

impl Store {
    /// Appends a planned step to `run_id`; returns its seq.
    pub fn journal_append(&self, run_id: &str, step: &str, action: &Value) -> Result<u64> {
        let action = serde_json::to_string(action)?;
        self.write(|tx| {
            let seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM journal WHERE run_id = ?1",
                [run_id],
                |r| r.get(0),
            )?;
            let now = now_ms();
            tx.execute(
                "INSERT INTO journal (run_id, seq, step, action, state, created_ms, updated_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![run_id, seq, step, action, JournalState::Planned, now],
            )?;
            Ok(seq.max(0) as u64)
        })
    }

    /// Moves an entry to `state`, with an error message for `failed`.
    pub fn journal_update(
        &self,
        run_id: &str,
        seq: u64,
        state: JournalState,
        error: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| {
            let n = tx.execute(
                "UPDATE journal SET state = ?3, error = ?4, updated_ms = ?5 WHERE run_id = ?1 AND seq = ?2",
                params![run_id, seq as i64, state, error, now_ms()],
            )?;
            if n == 0 {
                return Err(StoreError::JournalEntryNotFound {
                    run_id: run_id.to_string(),
                    seq,
                });
            }
            Ok(())
        })
    }

    /// The entries of `run_id` in order (empty if unknown).
    pub fn journal_run(&self, run_id: &str) -> Result<Vec<JournalEntry>> {
        let conn = self.conn();
        let sql = format!("SELECT {COLUMNS} FROM journal WHERE run_id = ?1 ORDER BY seq");
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([run_id], entry_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The most recent run with an entry still planned or started: what a crash interrupted.
    pub fn journal_last_incomplete_run(&self) -> Result<Option<JournalRun>> {
        let run_id: Option<String> = self
            .conn()
            .query_row(
                "SELECT run_id FROM journal WHERE state IN ('planned', 'started') \
                 ORDER BY created_ms DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match run_id {
            None => Ok(None),
            Some(run_id) => {
                let entries = self.journal_run(&run_id)?;
                Ok(Some(JournalRun { run_id, entries }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn append_update_and_find_incomplete() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.journal_last_incomplete_run().unwrap(), None);
        let a1 = store
            .journal_append("run-a", "host", &json!({"argv": ["ip", "link"]}))
            .unwrap();
        let a2 = store
            .journal_append("run-a", "dns", &json!({"write": "/etc/dnsmasq.conf"}))
            .unwrap();
        assert_eq!((a1, a2), (1, 2));
        store
            .journal_update("run-a", 1, JournalState::Started, None)
            .unwrap();
        store
            .journal_update("run-a", 1, JournalState::Done, None)
            .unwrap();
        store
            .journal_update("run-a", 2, JournalState::Started, None)
            .unwrap();
        // run-a is interrupted at step 2.
        let run = store.journal_last_incomplete_run().unwrap().unwrap();
        assert_eq!(run.run_id, "run-a");
        assert_eq!(run.entries[1].state, JournalState::Started);
        assert_eq!(run.entries[0].action["argv"][0], "ip");
        store
            .journal_update("run-a", 2, JournalState::Failed, Some("exit 1"))
            .unwrap();
        assert_eq!(store.journal_last_incomplete_run().unwrap(), None);
        assert_eq!(
            store.journal_run("run-a").unwrap()[1].error.as_deref(),
            Some("exit 1")
        );
        store.journal_append("run-b", "jails", &json!({})).unwrap();
        assert_eq!(
            store.journal_last_incomplete_run().unwrap().unwrap().run_id,
            "run-b"
        );
        assert!(matches!(
            store.journal_update("run-x", 9, JournalState::Done, None),
            Err(StoreError::JournalEntryNotFound { .. })
        ));
    }
}
