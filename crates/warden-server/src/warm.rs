//! Warm agents of `warden serve`: after a tenant's agent turn, a pi for that tenant is kept running in RPC
//! mode (`warden_agent::WarmAgent`) in a worker bound to the tenant's workspace and session from the start, so
//! the tenant's next turn pays only for the model. Its gateway token is minted at park time and opened only
//! by its turns (`warden_gateway::ParkedToken`).
//!
//! At most `agent.warm` agents are parked (least recently used evicted), each for at most `agent.warm_idle`.
//! A parked agent never coexists with another turn of its tenant: a turn takes the tenant's agent (or, if it
//! does not fit the turn's limits, network or environment, stops it and runs cold), and an agent is parked
//! again only if no turn started and no `/new` happened for the tenant meanwhile (the tenant's epoch), so
//! the session a warm pi holds is always the one on disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use warden_agent::WarmAgent;

use crate::request::{Network, TurnSpec};
use crate::sync::lock;

/// What a worker's pi presents to the model gateway.
#[derive(Debug)]
pub enum Credential {
    /// No gateway: pi talks to `agent.base_url` with no key.
    None,
    /// A cold turn's token, open for that turn only.
    Turn(warden_gateway::TurnToken),
    /// A warm agent's token, minted at park time and opened by each of its turns.
    Parked(warden_gateway::ParkedToken),
}

/// How long a stopped agent's pi may take to exit by itself before its worker is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);
/// The FIFO pi reads its commands from, in the tenant's agent dir.
pub const FIFO: &str = "rpc.in";

/// `agent.warm` and `agent.warm_idle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmOptions {
    /// Agents parked at most (0: none).
    pub max: usize,
    /// How long an agent may stay parked unused.
    pub idle: Duration,
}

impl Default for WarmOptions {
    fn default() -> Self {
        WarmOptions {
            max: 2,
            idle: Duration::from_secs(600),
        }
    }
}

/// What a turn must share with a parked agent for the agent to serve it (fixed when its worker started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fit {
    network: Network,
    memory_bytes: u64,
    pids: u64,
    env: BTreeMap<String, String>,
}

impl Fit {
    /// The fit of a turn.
    pub fn of(spec: &TurnSpec) -> Fit {
        Fit {
            network: spec.network,
            memory_bytes: spec.limits.memory_bytes,
            pids: spec.limits.pids,
            env: spec.env.clone(),
        }
    }
}

/// A parked (or taken) warm agent of one tenant.
pub struct Parked {
    /// The running pi.
    pub agent: WarmAgent,
    /// Its gateway token (opened by each turn).
    pub token: Credential,
    /// Whether pi answered a command yet.
    pub ready: bool,
    fit: Fit,
    used: Instant,
}

/// The warm agents of a server.
#[derive(Default)]
pub struct WarmPool {
    parked: Mutex<HashMap<String, Parked>>,
    /// Per tenant, bumped by every turn start and `/new`.
    epochs: Mutex<HashMap<String, u64>>,
    /// Stopping agents' threads (joined at shutdown, so no worker outlives the server).
    stopping: Mutex<Vec<JoinHandle<()>>>,
    /// Agents started.
    pub started: AtomicU64,
    served: AtomicU64,
    retired: AtomicU64,
}

impl Parked {
    /// A just-started agent for a turn of fit `fit`.
    pub fn new(agent: WarmAgent, token: Credential, fit: Fit) -> Parked {
        Parked {
            agent,
            token,
            ready: false,
            fit,
            used: Instant::now(),
        }
    }
}

impl WarmPool {
    /// A turn of `tenant` starts: its parked agent, if it fits the turn (one that does not is stopped), and the
    /// tenant's new epoch, which the agent must still hold to be parked again after the turn.
    pub fn begin(&self, tenant: &str, fit: &Fit) -> (Option<Parked>, u64) {
        let epoch = self.bump(tenant);
        let parked = lock(&self.parked).remove(tenant);
        match parked {
            Some(p) if p.fit == *fit => (Some(p), epoch),
            Some(p) => {
                tracing::info!(%tenant, "warm agent does not fit the turn; running cold");
                self.retire(p);
                (None, epoch)
            }
            None => (None, epoch),
        }
    }

    /// `/new` for `tenant`: its parked agent (on the old session) goes, and one in a turn is not parked again.
    pub fn reset(&self, tenant: &str) {
        self.bump(tenant);
        if let Some(p) = lock(&self.parked).remove(tenant) {
            self.retire(p);
        }
    }

    fn bump(&self, tenant: &str) -> u64 {
        let mut e = lock(&self.epochs);
        let n = e.entry(tenant.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    /// Parks `p` for `tenant` unless a turn or `/new` came since `epoch` or the pool is off; evicts the least
    /// recently used agent over `max`.
    pub fn park(&self, tenant: &str, mut p: Parked, epoch: u64, max: usize) {
        let current = lock(&self.epochs).get(tenant).copied();
        if max == 0 || current != Some(epoch) {
            self.retire(p);
            return;
        }
        p.used = Instant::now();
        let evicted = {
            let mut parked = lock(&self.parked);
            let old = parked.insert(tenant.to_string(), p);
            let mut evicted: Vec<Parked> = old.into_iter().collect();
            while parked.len() > max {
                let Some(lru) = parked
                    .iter()
                    .min_by_key(|(_, p)| p.used)
                    .map(|(t, _)| t.clone())
                else {
                    break;
                };
                evicted.extend(parked.remove(&lru));
            }
            evicted
        };
        for p in evicted {
            self.retire(p);
        }
    }

    /// Stops agents parked longer than `idle`.
    pub fn expire(&self, idle: Duration) {
        let old: Vec<Parked> = {
            let mut parked = lock(&self.parked);
            let stale: Vec<String> = parked
                .iter()
                .filter(|(_, p)| p.used.elapsed() >= idle)
                .map(|(t, _)| t.clone())
                .collect();
            stale.iter().filter_map(|t| parked.remove(t)).collect()
        };
        for p in old {
            tracing::info!(worker = ?p.agent.worker(), "warm agent idle too long; stopped");
            self.retire(p);
        }
    }

    /// Stops an agent on its own thread (its worker is torn down there).
    pub fn retire(&self, p: Parked) {
        self.retired.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("warm-stop".into())
            .spawn(move || {
                let Parked { agent, token, .. } = p;
                if let Err(e) = agent.stop(STOP_GRACE) {
                    tracing::warn!(error = %e, "warm agent's worker");
                }
                drop(token);
            });
        match spawned {
            Ok(h) => lock(&self.stopping).push(h),
            Err(e) => tracing::warn!(error = %e, "failed to start a thread to stop a warm agent"),
        }
    }

    /// Stops every agent and waits until their workers are gone (shutdown).
    pub fn drain(&self) {
        let all: Vec<Parked> = lock(&self.parked).drain().map(|(_, p)| p).collect();
        for p in all {
            self.retire(p);
        }
        let handles: Vec<JoinHandle<()>> = lock(&self.stopping).drain(..).collect();
        for h in handles {
            let _ = h.join();
        }
    }

    /// Counts a turn a warm agent served.
    pub fn served(&self) {
        self.served.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus lines: parked agents, agents started, turns served warm, agents stopped.
    pub fn metrics(&self) -> String {
        let parked = lock(&self.parked).len();
        // Finished stop threads need no join later.
        lock(&self.stopping).retain(|h| !h.is_finished());
        format!(
            "# HELP warden_warm_agents Warm agents (pi in RPC mode) parked now.\n# TYPE warden_warm_agents gauge\nwarden_warm_agents {parked}\n\
             # HELP warden_warm_agents_started_total Warm agents started.\n# TYPE warden_warm_agents_started_total counter\nwarden_warm_agents_started_total {}\n\
             # HELP warden_warm_turns_total Agent turns served by a warm agent.\n# TYPE warden_warm_turns_total counter\nwarden_warm_turns_total {}\n\
             # HELP warden_warm_agents_stopped_total Warm agents stopped (evicted, idle, unfit, failed turn, /new, shutdown).\n# TYPE warden_warm_agents_stopped_total counter\nwarden_warm_agents_stopped_total {}\n",
            self.started.load(Ordering::Relaxed),
            self.served.load(Ordering::Relaxed),
            self.retired.load(Ordering::Relaxed),
        )
    }
}
