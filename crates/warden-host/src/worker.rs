//! The backend-neutral contract for ephemeral workers: what to run ([`Work`]), how it reports while it runs
//! ([`Events`]), how it is stopped ([`Cancel`]) and how it ended ([`Outcome`], mapped onto the one exit table in
//! [`crate::exit`]). `warden-linux` (namespaces) and `warden-freebsd` (jails on ZFS clones) implement
//! [`Workers`]; the CLI's `run` and the server's turn runner use only this, with no OS branching.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::exit;

/// A worker's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// No network at all (only loopback).
    None,
    /// The host's own network stack (no isolation).
    Shared,
    /// Its own stack on the workers' bridge with a leased address (Linux veth, FreeBSD epair + vnet).
    Vnet,
}

/// Resource limits; `None` means not limited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory (Linux cgroup `memory.max`, FreeBSD `rctl memoryuse:deny`).
    pub memory_bytes: Option<u64>,
    /// Processes (Linux `pids.max`, FreeBSD `rctl maxproc:deny`).
    pub pids: Option<u64>,
    /// Wall clock.
    pub timeout: Option<Duration>,
    /// stdout and stderr together.
    pub output_bytes: Option<u64>,
}

/// A host directory mounted into the worker (Linux bind mount, FreeBSD nullfs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host directory.
    pub source: PathBuf,
    /// Where it appears inside the worker.
    pub target: PathBuf,
    /// Read-write (otherwise read-only).
    pub writable: bool,
}

/// The worker's standard streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stdio {
    /// The caller's own stdin, stdout and stderr (the CLI); [`Events::output`] is not called.
    Inherit,
    /// These bytes on stdin (then end of file); output handed to [`Events::output`] as it arrives.
    Stream(Vec<u8>),
}

/// One command to run in a fresh worker, which is destroyed afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The command.
    pub argv: Vec<String>,
    /// Extra environment (the worker starts from a minimal one).
    pub env: Vec<(String, String)>,
    /// Working directory inside the worker; `None`: the backend's default.
    pub cwd: Option<PathBuf>,
    /// Limits.
    pub limits: Limits,
    /// Network.
    pub network: Network,
    /// Host directories mounted in.
    pub mounts: Vec<Mount>,
    /// Release to run on; `None`: the backend's default (Linux: the host's; FreeBSD: the layout's).
    pub release: Option<String>,
    /// Run as root inside the worker instead of the unprivileged worker user.
    pub root: bool,
    /// Standard streams.
    pub stdio: Stdio,
}

impl Work {
    /// `argv` with no network, no mounts, streamed stdio with empty stdin and the given limits.
    pub fn new(argv: Vec<String>, limits: Limits) -> Work {
        Work {
            argv,
            env: Vec::new(),
            cwd: None,
            limits,
            network: Network::None,
            mounts: Vec::new(),
            release: None,
            root: false,
            stdio: Stdio::Stream(Vec::new()),
        }
    }
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout.
    Stdout,
    /// stderr.
    Stderr,
}

/// What a running worker reports, called on the thread that runs it.
pub trait Events {
    /// The worker has its name and is about to run the command (called once, before any output).
    fn started(&mut self, worker: &str);
    /// A chunk of output (only with [`Stdio::Stream`]).
    fn output(&mut self, stream: Stream, bytes: &[u8]);
}

/// [`Events`] that keep nothing.
pub struct Ignore;

impl Events for Ignore {
    fn started(&mut self, _: &str) {}
    fn output(&mut self, _: Stream, _: &[u8]) {}
}

/// Asks a running worker to stop: once set, the backend kills the worker and its run returns soon after.
/// Cheap to clone; every clone is the same request.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<(Mutex<bool>, Condvar)>);

impl Cancel {
    /// A request not (yet) made.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Makes the request (idempotent) and wakes whoever waits on it.
    pub fn cancel(&self) {
        let (flag, cv) = &*self.0;
        *flag.lock().unwrap_or_else(|p| p.into_inner()) = true;
        cv.notify_all();
    }

    /// Whether the request was made.
    pub fn is_cancelled(&self) -> bool {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits up to `timeout` for the request; true if it was made.
    pub fn wait(&self, timeout: Duration) -> bool {
        let (flag, cv) = &*self.0;
        let guard = flag.lock().unwrap_or_else(|p| p.into_inner());
        let (guard, _) = cv
            .wait_timeout_while(guard, timeout, |set| !*set)
            .unwrap_or_else(|p| p.into_inner());
        *guard
    }
}

/// The limit a killed worker went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// Wall clock.
    Timeout,
    /// Memory.
    Memory,
    /// Processes.
    Pids,
    /// Output cap.
    Output,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// It exited by itself with this code.
    Exited(i32),
    /// A signal no limit explains killed it (including a cancel).
    Signaled(i32),
    /// It went over a limit and was killed.
    Limit(LimitKind),
}

impl End {
    /// The code from the one exit table ([`crate::exit`]).
    pub fn exit_code(self) -> u8 {
        match self {
            End::Exited(c) => exit::exited(c),
            End::Signaled(s) => exit::signaled(s),
            End::Limit(LimitKind::Timeout) => exit::LIMIT_TIMEOUT,
            End::Limit(LimitKind::Memory) => exit::LIMIT_MEMORY,
            End::Limit(LimitKind::Pids) => exit::LIMIT_PIDS,
            End::Limit(LimitKind::Output) => exit::LIMIT_OUTPUT,
        }
    }

    /// The stored failure code of a turn that ended this way for a reason other than its own exit
    /// (`timeout`, `memory_limit`, `pids_limit`, `output_limit`, `signal`); `None` when it exited.
    pub fn failure(self) -> Option<&'static str> {
        match self {
            End::Exited(_) => None,
            End::Signaled(_) => Some("signal"),
            End::Limit(LimitKind::Timeout) => Some("timeout"),
            End::Limit(LimitKind::Memory) => Some("memory_limit"),
            End::Limit(LimitKind::Pids) => Some("pids_limit"),
            End::Limit(LimitKind::Output) => Some("output_limit"),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The worker's name.
    pub worker: String,
    /// How the command ended.
    pub end: End,
    /// Where the time went (backend-specific JSON, for `WARDEN_TIMINGS` and benchmarks).
    pub timings: serde_json::Value,
    /// Teardown steps that failed (the next start's reaper cleans what they left).
    pub cleanup_problems: Vec<String>,
}

/// Why a worker could not run (exit [`crate::exit::INFRASTRUCTURE`]).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The work is not acceptable; nothing was created.
    #[error("invalid worker {field}: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule and the fix.
        why: String,
    },
    /// The backend failed to create, run or tear down the worker.
    #[error("{0}")]
    Backend(String),
}

/// A live (or leftover) worker, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerInfo {
    /// Its name.
    pub name: String,
    /// Whether whoever runs it is alive.
    pub alive: bool,
    /// Backend details (pids, interfaces, datasets).
    pub detail: serde_json::Value,
}

/// Ephemeral workers of one backend on this host.
pub trait Workers: Send + Sync {
    /// The backend's name (`linux`, `bastille`).
    fn backend(&self) -> &'static str;

    /// Creates a worker, runs `work` in it until it ends, is cancelled or goes over a limit, destroys it and says
    /// how it ended. Blocks the calling thread.
    fn run(
        &self,
        work: &Work,
        events: &mut dyn Events,
        cancel: &Cancel,
    ) -> Result<Outcome, WorkerError>;

    /// Cleans what workers of a dead warden left behind (processes or jails, file systems, interfaces, leases);
    /// one line per thing cleaned.
    fn reap_orphans(&self) -> Result<Vec<String>, WorkerError>;

    /// The workers that exist now.
    fn list(&self) -> Vec<WorkerInfo>;

    /// `(uid, gid)` that owns what a worker writes in a mounted directory (tenant dirs are created for it).
    fn file_owner(&self) -> (u32, u32);

    /// The `node` program inside a worker, for agent turns.
    fn node(&self) -> Result<PathBuf, WorkerError>;

    /// Why this host cannot enforce memory and process limits (with the fix), if it cannot; the backend then runs
    /// workers without them.
    fn missing_limits(&self) -> Option<String> {
        None
    }

    /// Prometheus lines about the backend's own state (e.g. its warm pool), appended to `/metrics`.
    fn metrics(&self) -> String {
        String::new()
    }

    /// Stops background work (warm pools) and waits for it; called once at shutdown.
    fn shutdown(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_wakes_a_waiter_and_stays_set() {
        let c = Cancel::new();
        assert!(!c.wait(Duration::from_millis(1)));
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.wait(Duration::from_secs(30)));
        c.cancel();
        assert!(t.join().unwrap());
        assert!(c.is_cancelled());
    }

    #[test]
    fn ends_map_onto_the_one_table() {
        assert_eq!(End::Exited(3).exit_code(), 3);
        assert_eq!(End::Signaled(15).exit_code(), 143);
        assert_eq!(End::Limit(LimitKind::Timeout).exit_code(), 124);
        assert_eq!(End::Limit(LimitKind::Memory).exit_code(), 137);
        assert_eq!(End::Limit(LimitKind::Pids).exit_code(), 138);
        assert_eq!(End::Limit(LimitKind::Output).exit_code(), 141);
        assert_eq!(End::Exited(0).failure(), None);
        assert_eq!(End::Limit(LimitKind::Pids).failure(), Some("pids_limit"));
    }
}
