//! The result of a turn as the API shows it: `GET /v1/turns/{id}`, `?wait=true`, and the data of
//! the SSE `end` event (the same JSON, built from the stored row).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use warden_store::{Turn, TurnKind, TurnStatus};

/// Where a turn's time went, in milliseconds (from the stored timestamps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnTimings {
    /// Created → started (time in the queue).
    pub queued_ms: Option<i64>,
    /// Started → finished (time on a worker).
    pub run_ms: Option<i64>,
    /// Created → finished.
    pub total_ms: Option<i64>,
}

/// A turn and its result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnView {
    /// Turn id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// `argv` or `agent`.
    pub kind: TurnKind,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: TurnStatus,
    /// Exit code of the program (or of pi).
    pub exit_code: Option<i32>,
    /// Why it failed: `exit_code`, `timeout`, `memory_limit`, `pids_limit`, `output_limit`,
    /// `signal`, `cancelled`, `shutdown`, `interrupted`, `infrastructure`, or an agent failure
    /// (`provider_error`, `empty_reply`, `aborted`, …).
    pub failure: Option<String>,
    /// Captured stdout (capped).
    pub stdout: String,
    /// Captured stderr (capped).
    pub stderr: String,
    /// The agent's reply (agent turns).
    pub reply: Option<String>,
    /// Token use (agent turns).
    pub usage: Option<Value>,
    /// The agent's stop reason (agent turns).
    pub stop_reason: Option<String>,
    /// The worker that ran it.
    pub worker: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
    /// Start time.
    pub started_ms: Option<i64>,
    /// Finish time.
    pub finished_ms: Option<i64>,
    /// Durations derived from the timestamps.
    pub timings: TurnTimings,
    /// The validated request.
    pub request: Value,
}

impl From<&Turn> for TurnView {
    fn from(t: &Turn) -> Self {
        let diff = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(a), Some(b)) => Some((b - a).max(0)),
            _ => None,
        };
        TurnView {
            id: t.id.to_string(),
            tenant: t.tenant.clone(),
            kind: t.kind,
            status: t.status,
            exit_code: t.exit_code,
            failure: t.failure.clone(),
            stdout: t.stdout.clone().unwrap_or_default(),
            stderr: t.stderr.clone().unwrap_or_default(),
            reply: t.reply.clone(),
            usage: t.usage.clone(),
            stop_reason: t.stop_reason.clone(),
            worker: t.worker.clone(),
            created_ms: t.created_ms,
            started_ms: t.started_ms,
            finished_ms: t.finished_ms,
            timings: TurnTimings {
                queued_ms: diff(Some(t.created_ms), t.started_ms),
                run_ms: diff(t.started_ms, t.finished_ms),
                total_ms: diff(Some(t.created_ms), t.finished_ms),
            },
            request: t.request.clone(),
        }
    }
}

/// The short form of `POST /v1/turns` without `wait`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// Turn id.
    pub id: String,
    /// Its status (`queued`).
    pub status: TurnStatus,
}
