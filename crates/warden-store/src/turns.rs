//! Turns: one unit of work in a worker, from queued to a final status, and crash recovery.

use rusqlite::{params, OptionalExtension, Row, ToSql};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{now_ms, text_enum, Result, Store, StoreError, TurnId};

text_enum! {
    /// What a turn runs.
    TurnKind {
        /// A plain argv.
        Argv => "argv",
        /// An agent prompt (pi).
        Agent => "agent",
    }
}

text_enum! {
    /// Where a turn is in its life.
    TurnStatus {
        /// Waiting for a worker.
        Queued => "queued",
        /// On a worker.
        Running => "running",
        /// Finished with a usable result.
        Succeeded => "succeeded",
        /// Finished without one (see `failure`).
        Failed => "failed",
        /// Stopped on request.
        Cancelled => "cancelled",
    }
}

impl TurnStatus {
    /// Whether the status is final.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TurnStatus::Succeeded | TurnStatus::Failed | TurnStatus::Cancelled
        )
    }
}

/// The failure reason given to turns found unfinished after a crash.
pub const INTERRUPTED: &str = "interrupted";

/// A turn to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTurn {
    /// Owning tenant.
    pub tenant: String,
    /// argv or agent.
    pub kind: TurnKind,
    /// The request as received (argv/prompt, env, limits, ...).
    pub request: Value,
}

/// How a turn ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnOutcome {
    /// Final status; must be terminal (`None` means `failed`).
    pub status: Option<TurnStatus>,
    /// Process exit code.
    pub exit_code: Option<i32>,
    /// Why it failed (`timeout`, `empty_reply`, `interrupted`, ...).
    pub failure: Option<String>,
    /// Captured stdout (capped to `StoreLimits::max_output_bytes`).
    pub stdout: Option<String>,
    /// Captured stderr (capped likewise).
    pub stderr: Option<String>,
    /// Agent reply text.
    pub reply: Option<String>,
    /// Agent usage as JSON.
    pub usage: Option<Value>,
    /// Agent stop reason.
    pub stop_reason: Option<String>,
}

/// A stored turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Id, time-ordered.
    pub id: TurnId,
    /// Owning tenant.
    pub tenant: String,
    /// argv or agent.
    pub kind: TurnKind,
    /// The request JSON.
    pub request: Value,
    /// Current status.
    pub status: TurnStatus,
    /// Process exit code.
    pub exit_code: Option<i32>,
    /// Failure reason.
    pub failure: Option<String>,
    /// Captured stdout (capped).
    pub stdout: Option<String>,
    /// Captured stderr (capped).
    pub stderr: Option<String>,
    /// Agent reply.
    pub reply: Option<String>,
    /// Agent usage JSON.
    pub usage: Option<Value>,
    /// Agent stop reason.
    pub stop_reason: Option<String>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Creation time, ms since epoch.
    pub created_ms: i64,
    /// Start time.
    pub started_ms: Option<i64>,
    /// Finish time.
    pub finished_ms: Option<i64>,
    /// Events stored for it.
    pub event_count: u64,
    /// Whether its events hit the bound.
    pub events_truncated: bool,
}

/// Which turns `list_turns` returns; empty fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnFilter {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this status.
    pub status: Option<TurnStatus>,
    /// Only this kind.
    pub kind: Option<TurnKind>,
    /// Only turns with a smaller id (older), for paging.
    pub before: Option<TurnId>,
}

/// What `mark_interrupted` does with turns a dead server left unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryPolicy {
    /// Running and queued turns fail with reason `interrupted`.
    FailAll,
    /// Running turns fail (they may have had effects); queued ones stay queued.
    FailRunning,
    /// Running turns go back to the queue; queued ones stay queued.
    RequeueRunning,
}

const COLUMNS: &str =
    "id, tenant, kind, request, status, exit_code, failure, stdout, stderr, reply, usage, \
     stop_reason, worker, created_ms, started_ms, finished_ms, event_count, events_truncated";

fn turn_from_row(row: &Row<'_>) -> rusqlite::Result<Turn> {
    let json = |idx: usize, text: Option<String>| -> rusqlite::Result<Option<Value>> {
        match text {
            None => Ok(None),
            Some(t) => serde_json::from_str(&t).map(Some).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    e.into(),
                )
            }),
        }
    };
    Ok(Turn {
        id: row.get(0)?,
        tenant: row.get(1)?,
        kind: row.get(2)?,
        request: json(3, row.get(3)?)?.unwrap_or(Value::Null),
        status: row.get(4)?,
        exit_code: row.get(5)?,
        failure: row.get(6)?,
        stdout: row.get(7)?,
        stderr: row.get(8)?,
        reply: row.get(9)?,
        usage: json(10, row.get(10)?)?,
        stop_reason: row.get(11)?,
        worker: row.get(12)?,
        created_ms: row.get(13)?,
        started_ms: row.get(14)?,
        finished_ms: row.get(15)?,
        event_count: row.get::<_, i64>(16)?.max(0) as u64,
        events_truncated: row.get(17)?,
    })
}

/// Keeps at most `max` bytes (on a char boundary) and says how much was cut.
pub(crate) fn cap_text(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while end > 0 && !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[truncated {} bytes]", &text[..end], text.len() - end)
}

fn get_in(conn: &rusqlite::Connection, id: &TurnId) -> Result<Option<Turn>> {
    // Cached statements: a turn's life runs these few statements many times.
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM turns WHERE id = ?1"))?;
    Ok(stmt.query_row([id], turn_from_row).optional()?)
}

/// Runs `UPDATE turns SET … WHERE id = ?1 AND <allowed status> RETURNING` the row (one
/// statement instead of a read, a write and a read back). No row: the turn is missing, or its
/// status does not allow the move to `to`, and the error says which.
fn update_returning(
    tx: &rusqlite::Connection,
    sql: &str,
    params: &[&dyn ToSql],
    id: &TurnId,
    to: TurnStatus,
) -> Result<Turn> {
    let mut stmt = tx.prepare_cached(&format!("{sql} RETURNING {COLUMNS}"))?;
    match stmt.query_row(params, turn_from_row).optional()? {
        Some(turn) => Ok(turn),
        None => Err(StoreError::InvalidTransition {
            id: id.clone(),
            from: require(tx, id)?.status,
            to,
        }),
    }
}

fn require(conn: &rusqlite::Connection, id: &TurnId) -> Result<Turn> {
    get_in(conn, id)?.ok_or_else(|| StoreError::TurnNotFound(id.clone()))
}

/// Inserts a queued turn inside `tx` and returns it (callers that record more in the same
/// transaction, such as an accepted Telegram update, use this directly).
pub(crate) fn insert_turn(tx: &rusqlite::Connection, new: &NewTurn) -> Result<Turn> {
    let id = TurnId::new();
    let request = serde_json::to_string(&new.request)?;
    let created_ms = now_ms();
    tx.prepare_cached(
        "INSERT INTO turns (id, tenant, kind, request, status, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, new.tenant, new.kind, request, TurnStatus::Queued, created_ms])?;
    // What the row now holds, without reading it back.
    Ok(Turn {
        id,
        tenant: new.tenant.clone(),
        kind: new.kind,
        request: new.request.clone(),
        status: TurnStatus::Queued,
        exit_code: None,
        failure: None,
        stdout: None,
        stderr: None,
        reply: None,
        usage: None,
        stop_reason: None,
        worker: None,
        created_ms,
        started_ms: None,
        finished_ms: None,
        event_count: 0,
        events_truncated: false,
    })
}

impl Store {
    /// Creates a queued turn and returns it.
    pub fn create_turn(&self, new: &NewTurn) -> Result<Turn> {
        self.write(|tx| insert_turn(tx, new))
    }

    /// Moves a queued turn to running on `worker`.
    pub fn start_turn(&self, id: &TurnId, worker: &str) -> Result<Turn> {
        self.write(|tx| {
            update_returning(
                tx,
                "UPDATE turns SET status = ?2, worker = ?3, started_ms = ?4 \
                 WHERE id = ?1 AND status = 'queued'",
                params![id, TurnStatus::Running, worker, now_ms()],
                id,
                TurnStatus::Running,
            )
        })
    }

    /// Records a queued or running turn's final status and results (outputs capped).
    pub fn finish_turn(&self, id: &TurnId, outcome: &TurnOutcome) -> Result<Turn> {
        let status = outcome.status.unwrap_or(TurnStatus::Failed);
        let max = self.limits.max_output_bytes;
        let stdout = outcome.stdout.as_deref().map(|s| cap_text(s, max));
        let stderr = outcome.stderr.as_deref().map(|s| cap_text(s, max));
        let usage = outcome
            .usage
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        self.write(|tx| {
            if !status.is_terminal() {
                return Err(StoreError::InvalidTransition {
                    id: id.clone(),
                    from: require(tx, id)?.status,
                    to: status,
                });
            }
            update_returning(
                tx,
                "UPDATE turns SET status = ?2, exit_code = ?3, failure = ?4, stdout = ?5, stderr = ?6, \
                 reply = ?7, usage = ?8, stop_reason = ?9, finished_ms = ?10 \
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![
                    id,
                    status,
                    outcome.exit_code,
                    outcome.failure,
                    stdout,
                    stderr,
                    outcome.reply,
                    usage,
                    outcome.stop_reason,
                    now_ms()
                ],
                id,
                status,
            )
        })
    }

    /// The turn with this id, if any.
    pub fn get_turn(&self, id: &TurnId) -> Result<Option<Turn>> {
        get_in(&self.conn(), id)
    }

    /// Turns matching `filter`, newest first, at most `limit`.
    pub fn list_turns(&self, filter: &TurnFilter, limit: usize) -> Result<Vec<Turn>> {
        let mut clauses = Vec::new();
        let mut args: Vec<&dyn ToSql> = Vec::new();
        if let Some(t) = &filter.tenant {
            args.push(t);
            clauses.push(format!("tenant = ?{}", args.len()));
        }
        if let Some(s) = &filter.status {
            args.push(s);
            clauses.push(format!("status = ?{}", args.len()));
        }
        if let Some(k) = &filter.kind {
            args.push(k);
            clauses.push(format!("kind = ?{}", args.len()));
        }
        if let Some(b) = &filter.before {
            args.push(b);
            clauses.push(format!("id < ?{}", args.len()));
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        args.push(&limit);
        let where_sql = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM turns {where_sql} ORDER BY id DESC LIMIT ?{}",
            args.len()
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(args.as_slice(), turn_from_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// Crash recovery at start-up: applies `policy` to turns a dead server left running or queued
    /// and returns the ids it changed. Failed ones get reason `interrupted`.
    pub fn mark_interrupted(&self, policy: RecoveryPolicy) -> Result<Vec<TurnId>> {
        self.write(|tx| {
            let statuses: &[TurnStatus] = match policy {
                RecoveryPolicy::FailAll => &[TurnStatus::Running, TurnStatus::Queued],
                RecoveryPolicy::FailRunning | RecoveryPolicy::RequeueRunning => {
                    &[TurnStatus::Running]
                }
            };
            let mut ids = Vec::new();
            for status in statuses {
                let mut stmt = tx.prepare("SELECT id FROM turns WHERE status = ?1 ORDER BY id")?;
                let found = stmt
                    .query_map([status], |r| r.get::<_, TurnId>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                ids.extend(found);
            }
            let now = now_ms();
            for id in &ids {
                match policy {
                    RecoveryPolicy::RequeueRunning => tx.execute(
                        "UPDATE turns SET status = ?2, worker = NULL, started_ms = NULL WHERE id = ?1",
                        params![id, TurnStatus::Queued],
                    )?,
                    RecoveryPolicy::FailAll | RecoveryPolicy::FailRunning => tx.execute(
                        "UPDATE turns SET status = ?2, failure = ?3, finished_ms = ?4 WHERE id = ?1",
                        params![id, TurnStatus::Failed, INTERRUPTED, now],
                    )?,
                };
            }
            Ok(ids)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn new_turn(tenant: &str) -> NewTurn {
        NewTurn {
            tenant: tenant.into(),
            kind: TurnKind::Agent,
            request: json!({"prompt": "hi", "limits": {"wall_ms": 1000}}),
        }
    }

    #[test]
    fn lifecycle_round_trip() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_turn(&new_turn("acme")).unwrap();
        assert_eq!(t.status, TurnStatus::Queued);
        assert_eq!(t.request["limits"]["wall_ms"], 1000);
        let t = store.start_turn(&t.id, "w101").unwrap();
        assert_eq!(t.status, TurnStatus::Running);
        assert_eq!(t.worker.as_deref(), Some("w101"));
        assert!(t.started_ms.is_some());
        let outcome = TurnOutcome {
            status: Some(TurnStatus::Succeeded),
            exit_code: Some(0),
            stdout: Some("out".into()),
            reply: Some("Hello".into()),
            usage: Some(json!({"input": 10, "output": 2})),
            stop_reason: Some("stop".into()),
            ..TurnOutcome::default()
        };
        let done = store.finish_turn(&t.id, &outcome).unwrap();
        assert_eq!(done.status, TurnStatus::Succeeded);
        assert_eq!(done.reply.as_deref(), Some("Hello"));
        assert_eq!(done.usage, Some(json!({"input": 10, "output": 2})));
        assert!(done.finished_ms.unwrap() >= done.started_ms.unwrap());
        assert_eq!(store.get_turn(&t.id).unwrap(), Some(done));
        let json = serde_json::to_value(store.get_turn(&t.id).unwrap().unwrap()).unwrap();
        assert_eq!(json["status"], "succeeded");
        assert_eq!(json["kind"], "agent");
    }

    #[test]
    fn invalid_transitions_are_errors() {
        let store = Store::open_in_memory().unwrap();
        let t = store.create_turn(&new_turn("a")).unwrap();
        // The turn create_turn returns is the stored row (it is not read back).
        assert_eq!(store.get_turn(&t.id).unwrap(), Some(t.clone()));
        let fin = TurnOutcome {
            status: Some(TurnStatus::Cancelled),
            ..TurnOutcome::default()
        };
        store.finish_turn(&t.id, &fin).unwrap();
        assert!(matches!(
            store.start_turn(&t.id, "w"),
            Err(StoreError::InvalidTransition {
                from: TurnStatus::Cancelled,
                ..
            })
        ));
        assert!(matches!(
            store.finish_turn(&t.id, &fin),
            Err(StoreError::InvalidTransition { .. })
        ));
        let t2 = store.create_turn(&new_turn("a")).unwrap();
        let not_final = TurnOutcome {
            status: Some(TurnStatus::Running),
            ..TurnOutcome::default()
        };
        assert!(store.finish_turn(&t2.id, &not_final).is_err());
        assert!(matches!(
            store.start_turn(&TurnId::from("nope"), "w"),
            Err(StoreError::TurnNotFound(_))
        ));
        assert_eq!(store.get_turn(&TurnId::from("nope")).unwrap(), None);
    }

    #[test]
    fn outputs_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let limits = crate::StoreLimits {
            max_output_bytes: 10,
            ..crate::StoreLimits::default()
        };
        let store = Store::open_with(&dir.path().join("db"), limits).unwrap();
        let t = store.create_turn(&new_turn("a")).unwrap();
        let out = TurnOutcome {
            status: Some(TurnStatus::Failed),
            stdout: Some("ééééééééé".into()), // 18 bytes, 2 per char
            stderr: Some("short".into()),
            ..TurnOutcome::default()
        };
        let t = store.finish_turn(&t.id, &out).unwrap();
        assert_eq!(t.stdout.as_deref(), Some("ééééé\n[truncated 8 bytes]"));
        assert_eq!(t.stderr.as_deref(), Some("short"));
        assert_eq!(cap_text("abcdé", 5), "abcd\n[truncated 2 bytes]");
    }

    #[test]
    fn list_filters_and_pages_newest_first() {
        let store = Store::open_in_memory().unwrap();
        let a1 = store.create_turn(&new_turn("a")).unwrap();
        let b1 = store.create_turn(&new_turn("b")).unwrap();
        let a2 = store.create_turn(&new_turn("a")).unwrap();
        store.start_turn(&a2.id, "w").unwrap();
        let all = store.list_turns(&TurnFilter::default(), 10).unwrap();
        let ids: Vec<_> = all.iter().map(|t| t.id.clone()).collect();
        assert_eq!(ids, vec![a2.id.clone(), b1.id.clone(), a1.id.clone()]);
        let a = TurnFilter {
            tenant: Some("a".into()),
            ..TurnFilter::default()
        };
        assert_eq!(store.list_turns(&a, 10).unwrap().len(), 2);
        let running = TurnFilter {
            status: Some(TurnStatus::Running),
            ..TurnFilter::default()
        };
        assert_eq!(store.list_turns(&running, 10).unwrap()[0].id, a2.id);
        assert_eq!(
            store.list_turns(&TurnFilter::default(), 1).unwrap().len(),
            1
        );
        let older = TurnFilter {
            before: Some(b1.id.clone()),
            kind: Some(TurnKind::Agent),
            ..TurnFilter::default()
        };
        assert_eq!(store.list_turns(&older, 10).unwrap()[0].id, a1.id);
        let argv = TurnFilter {
            kind: Some(TurnKind::Argv),
            ..TurnFilter::default()
        };
        assert!(store.list_turns(&argv, 10).unwrap().is_empty());
    }
}
