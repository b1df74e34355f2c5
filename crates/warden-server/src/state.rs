//! The server's shared state ([`App`]) and its options ([`ServeOptions`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use warden_agent::AgentConfig;
use warden_core::Layout;
use warden_host::worker::{Cancel, Workers};
use warden_store::{EventKind, RecoveryPolicy, Store, TurnId, TurnOutcome, TurnStatus};

use crate::metrics::Metrics;
use crate::scheduler::Queue;
use crate::view::TurnView;

/// How `warden serve` runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Warden's state directory: `control.db`, `token`, `tenants/`, `pi/`, worker records, leases.
    pub state_dir: PathBuf,
    /// Listen addresses; `None` means the layout's (`listen` × `port`).
    pub listen: Option<Vec<SocketAddr>>,
    /// Turns running at once.
    pub concurrency: usize,
    /// Turns waiting at most; one more is answered 429.
    pub queue_size: usize,
    /// How agent turns reach their model.
    pub agent: AgentConfig,
    /// On SIGTERM, how long running turns may go on before they are cancelled.
    pub shutdown_deadline: Duration,
    /// What a restart does with turns a dead server left unfinished.
    pub recovery: RecoveryPolicy,
    /// Where pi is installed (default `<state_dir>/pi`).
    pub pi_dir: Option<PathBuf>,
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// The Telegram channel, when a bot token is configured.
    pub telegram: Option<warden_telegram::TelegramConfig>,
    /// The model gateway: where it listens and what it forwards to. `None`: workers' pi talks to
    /// `agent.base_url` directly (no provider key is ever handed to a worker either way).
    pub gateway: Option<GatewayOptions>,
    /// Warm agents: how many, for how long (`agent.warm`, `agent.warm_idle`).
    pub warm: crate::warm::WarmOptions,
    /// An address that may appear after start (`tailscale.mode = host`: the node's IPv4 once it is up),
    /// asked for every few seconds until it is bound.
    pub late_listen: Option<LateListen>,
}

/// Asks where to listen once more (blocking: it may run a command); `None` while the address is not there.
#[derive(Clone)]
pub struct LateListen(pub Arc<dyn Fn() -> Option<SocketAddr> + Send + Sync>);

impl std::fmt::Debug for LateListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LateListen(..)")
    }
}

/// Where the model gateway listens and how it forwards.
#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Bound by the caller on the gateway address and `gateway.port`, in the network namespace of the
    /// bridge (a socket belongs to the namespace it was made in); or why it could not be bound.
    pub listener: Result<Arc<std::net::TcpListener>, String>,
    /// Upstream, key, flattening, budget.
    pub config: warden_gateway::GatewayConfig,
}

impl ServeOptions {
    /// Defaults for a state directory: concurrency 8, queue 256, fail-running recovery, 30 s
    /// shutdown deadline, the agent config's defaults.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        ServeOptions {
            state_dir: state_dir.into(),
            listen: None,
            concurrency: 8,
            queue_size: 256,
            agent: AgentConfig::default(),
            shutdown_deadline: Duration::from_secs(30),
            recovery: RecoveryPolicy::FailRunning,
            pi_dir: None,
            max_body_bytes: 1 << 20,
            telegram: None,
            gateway: None,
            warm: crate::warm::WarmOptions::default(),
            late_listen: None,
        }
    }

    /// Where pi lives.
    pub fn pi_dir(&self) -> PathBuf {
        self.pi_dir
            .clone()
            .unwrap_or_else(|| self.state_dir.join("pi"))
    }
}

/// A turn on a worker (or about to be): how to cancel it.
#[derive(Debug, Default)]
pub struct RunningTurn {
    /// Set once a cancel was asked for.
    pub cancelled: AtomicBool,
    /// Why (`cancelled` or `shutdown`).
    pub reason: Mutex<Option<&'static str>>,
    /// Handed to the worker: the backend kills it once set.
    pub stop: Cancel,
}

impl RunningTurn {
    /// Asks the runner to kill the worker; the first reason wins.
    pub fn cancel(&self, reason: &'static str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        self.cancelled.store(true, Ordering::SeqCst);
        self.stop.cancel();
    }

    /// The cancel reason, if cancelled.
    pub fn cancel_reason(&self) -> Option<&'static str> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Everything the handlers and runners share.
pub struct App {
    /// The layout served.
    pub layout: Layout,
    /// The options.
    pub opts: ServeOptions,
    /// The store.
    pub store: Arc<Store>,
    /// The queue.
    pub queue: Mutex<Queue>,
    /// Turns handed to a runner, by id.
    pub running: Mutex<HashMap<TurnId, Arc<RunningTurn>>>,
    /// Bumped on every stored event (SSE readers wake on it).
    pub events: watch::Sender<u64>,
    /// Bumped on every finished turn (`?wait=true` wakes on it).
    pub finished: watch::Sender<u64>,
    /// Counters.
    pub metrics: Metrics,
    /// Becomes true when shutdown starts.
    pub shutdown: watch::Sender<bool>,
    /// Addresses bound, and those skipped with the reason.
    pub listening: Mutex<(Vec<SocketAddr>, Vec<String>)>,
    /// The workers' backend (the one worker contract, `warden_host::worker`).
    pub workers: Arc<dyn Workers>,
    /// `?wait=true` requests per turn, answered by [`App::finish`] with the stored result
    /// (no store read per waiter, no wake-up of every waiter at each turn's end).
    pub waiters: Mutex<HashMap<TurnId, Vec<oneshot::Sender<TurnView>>>>,
    /// Validated requests of turns submitted to this server, taken by their runner (saves
    /// reading and decoding the stored request; a turn recovered from the store has none).
    pub specs: Mutex<HashMap<TurnId, crate::request::TurnSpec>>,
    /// The model gateway and the base URL workers use for it, or why it is not serving.
    pub gateway: GatewaySlot,
    /// Warm agents parked per tenant.
    pub warm: crate::warm::WarmPool,
}

/// The model gateway and the base URL workers use for it, or why agent turns cannot use one.
pub type GatewaySlot = Result<(Arc<warden_gateway::Gateway>, String), String>;

pub use crate::sync::lock;

impl App {
    /// Records a turn's end: final row, `end` event (data = the stored result), metrics, wake-ups.
    pub fn finish(&self, id: &TurnId, outcome: &TurnOutcome) -> Option<TurnView> {
        let view = self.finish_turn(id, outcome)?;
        self.finish_end(&view);
        Some(view)
    }

    /// The first half of [`App::finish`]: the final row, then the waiters answered with it.
    pub fn finish_turn(&self, id: &TurnId, outcome: &TurnOutcome) -> Option<TurnView> {
        let turn = match self.store.finish_turn(id, outcome) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(turn = %id, error = %e, "failed to record the end of a turn");
                return None;
            }
        };
        let view = TurnView::from(&turn);
        // The turn's record is committed: answer its waiters now, the `end` event follows.
        if let Some(ws) = lock(&self.waiters).remove(id) {
            for w in ws {
                let _ = w.send(view.clone());
            }
        }
        lock(&self.specs).remove(id);
        Some(view)
    }

    /// The second half of [`App::finish`]: `end` event, metrics, wake-ups, log line.
    pub fn finish_end(&self, view: &TurnView) {
        let id = &view.id;
        self.append_end(view);
        let latency = view.timings.total_ms.unwrap_or(0) as f64 / 1000.0;
        self.metrics
            .turn_finished(view.status.as_str(), view.failure.as_deref(), latency);
        self.finished.send_modify(|n| *n += 1);
        tracing::info!(turn = %id, status = %view.status, failure = ?view.failure, "turn finished");
    }

    /// Stores the `end` event of a finished turn and wakes SSE readers.
    pub fn append_end(&self, view: &TurnView) {
        let data = serde_json::to_string(view).unwrap_or_default();
        if let Err(e) =
            self.store
                .append_event(&TurnId::from(view.id.as_str()), EventKind::End, &data)
        {
            tracing::error!(turn = %view.id, error = %e, "failed to store the end event");
        }
        self.events.send_modify(|n| *n += 1);
    }

    /// Cancels a turn: a queued one ends at once, a running one has its worker killed.
    /// `Ok(true)` if something was cancelled, `Ok(false)` if the turn had already finished.
    pub fn cancel(
        &self,
        id: &TurnId,
        reason: &'static str,
    ) -> Result<bool, warden_store::StoreError> {
        let removed = lock(&self.queue).remove(id);
        if removed {
            let outcome = TurnOutcome {
                status: Some(TurnStatus::Cancelled),
                failure: Some(reason.to_string()),
                ..TurnOutcome::default()
            };
            self.finish(id, &outcome);
            return Ok(true);
        }
        if let Some(handle) = lock(&self.running).get(id).cloned() {
            handle.cancel(reason);
            return Ok(true);
        }
        match self.store.get_turn(id)? {
            Some(t) if t.status.is_terminal() => Ok(false),
            Some(_) => Ok(false),
            None => Err(warden_store::StoreError::TurnNotFound(id.clone())),
        }
    }

    /// Turns running and queued now.
    pub fn load(&self) -> (usize, usize, usize) {
        let q = lock(&self.queue);
        (q.running(), q.queued(), q.concurrency())
    }
}
