//! The Telegram channel's view of this server ([`warden_telegram::TurnHost`]): agent turns are
//! validated like `POST /v1/turns`, queued on the same per-tenant FIFO queue, waited for through
//! the same `finished` wake-ups, cancelled like `DELETE /v1/turns/{id}`; `/new` forgets the
//! tenant's pi session (the old file is kept beside it, renamed).

use std::sync::Arc;
use std::time::Duration;

use warden_store::{NewTurn, Turn, TurnId, TurnOutcome, TurnStatus};

use crate::agent_turn::tenant_dir;
use crate::request::TurnRequest;
use crate::state::{lock, App};

/// The server as the channel's [`warden_telegram::TurnHost`].
pub struct ServerTurns {
    /// The server.
    pub app: Arc<App>,
}

impl warden_telegram::TurnHost for ServerTurns {
    fn platform_tenant(&self) -> String {
        self.app.layout.namespace.clone()
    }

    fn agent_turn(&self, tenant: &str, prompt: &str) -> Result<NewTurn, String> {
        let req = TurnRequest {
            tenant: tenant.to_string(),
            prompt: Some(prompt.to_string()),
            ..TurnRequest::default()
        };
        let spec = req.validate(&self.app.layout).map_err(|e| e.message)?;
        Ok(NewTurn {
            tenant: spec.tenant.clone(),
            kind: spec.kind(),
            request: serde_json::to_value(&spec).map_err(|e| e.to_string())?,
        })
    }

    fn enqueue(&self, tenant: &str, id: &TurnId) {
        match self.app.store.get_turn(id) {
            Ok(Some(t)) if t.status == TurnStatus::Queued => {}
            _ => return,
        }
        {
            // The dispatcher moves a turn from the queue to `running` under the queue's lock.
            let mut q = lock(&self.app.queue);
            if q.contains(id) || lock(&self.app.running).contains_key(id) {
                return;
            }
            q.push(tenant, id.clone(), false);
        }
        crate::turn_runner::dispatch(&self.app);
    }

    async fn wait(&self, id: &TurnId) -> Option<Turn> {
        let mut finished = self.app.finished.subscribe();
        let mut shutdown = self.app.shutdown.subscribe();
        loop {
            finished.borrow_and_update();
            let turn = self.app.store.get_turn(id).ok()??;
            let stuck = *shutdown.borrow() && turn.status == TurnStatus::Queued;
            if turn.status.is_terminal() || stuck {
                return Some(turn);
            }
            tokio::select! {
                _ = finished.changed() => {}
                _ = shutdown.changed() => {}
                // A turn finished by another process (none today) would not wake us.
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    fn cancel(&self, id: &TurnId) -> bool {
        match self.app.cancel(id, "cancelled") {
            Ok(true) => true,
            // Stored but not queued yet (the chat's worker queues it in order): end it here.
            Ok(false) => match self.app.store.get_turn(id) {
                Ok(Some(t)) if t.status == TurnStatus::Queued => {
                    let outcome = TurnOutcome {
                        status: Some(TurnStatus::Cancelled),
                        failure: Some("cancelled".into()),
                        ..TurnOutcome::default()
                    };
                    self.app.finish(id, &outcome).is_some()
                }
                _ => false,
            },
            Err(_) => false,
        }
    }

    fn reset_session(&self, tenant: &str) -> Result<(), String> {
        let sessions = tenant_dir(&self.app.opts.state_dir, tenant)
            .join("pi")
            .join("sessions");
        // A warm pi holds the old session: it goes (and one in a turn now is not parked again).
        self.app.warm.reset(tenant);
        let file = sessions.join(format!("{tenant}.jsonl"));
        if file.exists() {
            let kept = sessions.join(format!("{tenant}.jsonl.{}.old", warden_store::now_ms()));
            std::fs::rename(&file, &kept)
                .map_err(|e| format!("failed to set the old session aside: {e}"))?;
        }
        self.app
            .store
            .delete_session(tenant)
            .map_err(|e| e.to_string())?;
        tracing::info!(%tenant, "telegram: new agent session");
        Ok(())
    }
}
