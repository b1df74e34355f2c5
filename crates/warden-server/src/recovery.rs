//! Crash recovery at start-up: what a killed server left behind is cleaned before anything new
//! starts — orphaned workers reaped (their cgroups, veths, records) and leases of dead holders
//! freed (warden-linux's reaper), unfinished turns settled by the policy (warden-store), an `end`
//! event stored for every turn that was failed so SSE readers finish, and queued turns re-queued.

use std::path::Path;

use warden_store::{RecoveryPolicy, Store, TurnFilter, TurnId, TurnStatus};

use crate::error::ServerError;
use crate::view::TurnView;

/// What recovery did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recovered {
    /// One line per resource the reaper cleaned.
    pub reaped: Vec<String>,
    /// Turns the policy changed (failed or re-queued).
    pub interrupted: Vec<TurnId>,
    /// Queued turns to put back on the queue, oldest first, with their tenants.
    pub requeue: Vec<(String, TurnId)>,
    /// End events to store for turns that were failed: their results.
    pub ended: Vec<TurnView>,
}

/// Reaps orphans and settles unfinished turns.
pub fn recover(
    state_dir: &Path,
    store: &Store,
    policy: RecoveryPolicy,
) -> Result<Recovered, ServerError> {
    let reaped = warden_linux::reap_orphans(state_dir).map_err(ServerError::Reap)?;
    let interrupted = store.mark_interrupted(policy)?;
    let mut ended = Vec::new();
    for id in &interrupted {
        if let Some(t) = store.get_turn(id)? {
            if t.status.is_terminal() {
                ended.push(TurnView::from(&t));
            }
        }
    }
    let filter = TurnFilter {
        status: Some(TurnStatus::Queued),
        ..TurnFilter::default()
    };
    let mut queued = store.list_turns(&filter, usize::MAX)?;
    queued.reverse();
    let requeue = queued.into_iter().map(|t| (t.tenant, t.id)).collect();
    Ok(Recovered {
        reaped,
        interrupted,
        requeue,
        ended,
    })
}
