//! The apply journal: every action is recorded as `started` before it runs and `done` or `failed` after, in
//! SQLite (WAL, synchronous=FULL), so a crash at any point leaves a record of exactly where it stopped.
//!
//! Recovery is roll-forward: the next `warden setup` observes the host again, plans what is still missing and
//! finishes the job; the journal tells the operator which action was interrupted (and may be half-done).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use warden_core::Action;

/// Why the journal could not be used.
#[derive(Debug, thiserror::Error)]
#[error("failed to {op} the journal at {path}: {source}")]
pub struct JournalError {
    op: &'static str,
    path: String,
    source: rusqlite::Error,
}

/// One journaled action of an earlier run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The run it belongs to.
    pub run: i64,
    /// Its position in that run's plan (0-based).
    pub seq: i64,
    /// `started`, `done` or `failed`.
    pub state: String,
    /// The action's summary.
    pub summary: String,
}

/// The journal file.
pub struct Journal {
    conn: Connection,
    path: String,
}

impl Journal {
    /// Opens (creating) the journal at `path`.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        let shown = path.display().to_string();
        let err = |op, source| JournalError {
            op,
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path).map_err(|e| err("open", e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS runs (
                 id INTEGER PRIMARY KEY, backend TEXT NOT NULL, started_ms INTEGER NOT NULL,
                 finished_ms INTEGER, outcome TEXT);
             CREATE TABLE IF NOT EXISTS actions (
                 run INTEGER NOT NULL REFERENCES runs(id), seq INTEGER NOT NULL, step TEXT NOT NULL,
                 summary TEXT NOT NULL, fingerprint TEXT NOT NULL, action TEXT NOT NULL, state TEXT NOT NULL,
                 started_ms INTEGER NOT NULL, finished_ms INTEGER, detail TEXT,
                 PRIMARY KEY (run, seq));",
        )
        .map_err(|e| err("initialise", e))?;
        Ok(Journal { conn, path: shown })
    }

    fn err(&self, op: &'static str) -> impl Fn(rusqlite::Error) -> JournalError + '_ {
        move |source| JournalError {
            op,
            path: self.path.clone(),
            source,
        }
    }

    /// Starts a run and returns its id.
    pub fn begin_run(&self, backend: &str) -> Result<i64, JournalError> {
        self.conn
            .execute(
                "INSERT INTO runs (backend, started_ms) VALUES (?1, ?2)",
                params![backend, now_ms()],
            )
            .map_err(self.err("begin a run in"))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Records that action `seq` of `run` is about to run.
    pub fn started(&self, run: i64, seq: usize, action: &Action) -> Result<(), JournalError> {
        let json = serde_json::to_string(action).unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO actions (run, seq, step, summary, fingerprint, action, state, started_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'started', ?7)",
                params![run, seq as i64, action.step.name(), action.summary, action.fingerprint(), json, now_ms()],
            )
            .map_err(self.err("record an action in"))?;
        Ok(())
    }

    /// Records how action `seq` of `run` ended.
    pub fn finished(
        &self,
        run: i64,
        seq: usize,
        ok: bool,
        detail: &str,
    ) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE actions SET state = ?3, finished_ms = ?4, detail = ?5 WHERE run = ?1 AND seq = ?2",
                params![run, seq as i64, if ok { "done" } else { "failed" }, now_ms(), detail],
            )
            .map_err(self.err("finish an action in"))?;
        Ok(())
    }

    /// Closes a run with its outcome (`complete`, `failed`).
    pub fn end_run(&self, run: i64, outcome: &str) -> Result<(), JournalError> {
        self.conn
            .execute(
                "UPDATE runs SET finished_ms = ?2, outcome = ?3 WHERE id = ?1",
                params![run, now_ms(), outcome],
            )
            .map_err(self.err("end a run in"))?;
        Ok(())
    }

    /// Runs that never ended (the process died), newest first, with the action each was in.
    pub fn interrupted(&self) -> Result<Vec<(i64, Option<Entry>)>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM runs WHERE finished_ms IS NULL ORDER BY id DESC")
            .map_err(self.err("read"))?;
        let ids: Vec<i64> = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.err("read"))?
            .collect::<Result<_, _>>()
            .map_err(self.err("read"))?;
        let mut out = Vec::new();
        for id in ids {
            let last = self
                .conn
                .query_row(
                    "SELECT run, seq, state, summary FROM actions WHERE run = ?1 ORDER BY seq DESC LIMIT 1",
                    params![id],
                    |r| Ok(Entry { run: r.get(0)?, seq: r.get(1)?, state: r.get(2)?, summary: r.get(3)? }),
                )
                .optional()
                .map_err(self.err("read"))?;
            out.push((id, last));
        }
        Ok(out)
    }

    /// Marks interrupted runs as `interrupted` once a new run has taken over.
    pub fn close_interrupted(&self) -> Result<(), JournalError> {
        self.conn
            .execute("UPDATE runs SET finished_ms = ?1, outcome = 'interrupted' WHERE finished_ms IS NULL", params![now_ms()])
            .map_err(self.err("close interrupted runs in"))?;
        Ok(())
    }

    /// Every entry of `run`, in order.
    pub fn entries(&self, run: i64) -> Result<Vec<Entry>, JournalError> {
        let mut stmt = self
            .conn
            .prepare("SELECT run, seq, state, summary FROM actions WHERE run = ?1 ORDER BY seq")
            .map_err(self.err("read"))?;
        let rows = stmt
            .query_map(params![run], |r| {
                Ok(Entry {
                    run: r.get(0)?,
                    seq: r.get(1)?,
                    state: r.get(2)?,
                    summary: r.get(3)?,
                })
            })
            .map_err(self.err("read"))?;
        rows.collect::<Result<_, _>>().map_err(self.err("read"))
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
