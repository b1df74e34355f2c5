//! Crash recovery at start-up: what a killed server left behind is cleaned before anything new
//! starts — orphaned workers reaped and leases of dead holders freed (the backend's reaper, through the worker
//! contract: Linux cgroups, veths and records; FreeBSD jails, clones and epairs), unfinished turns settled by the policy (warden-store), an `end`
//! event stored for every turn that was failed so SSE readers finish, and queued turns re-queued.

use warden_host::worker::Workers;
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
    workers: &dyn Workers,
    store: &Store,
    policy: RecoveryPolicy,
) -> Result<Recovered, ServerError> {
    let reaped = workers.reap_orphans().map_err(ServerError::Reap)?;
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
