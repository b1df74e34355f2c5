//! The protocol between a caller (`run`, the pool, `jail start`) and the helper it starts: the
//! helper's argv and binary, the descriptors it finds in place, and the reports it writes back.
//!
//! Both sides use it; it uses only `spec`, so neither side has to reach into the other.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::spec::{Outcome, Timings};

/// The argv[1] that selects the helper.
pub const HELPER_ARG: &str = "__worker";
/// The helper's report pipe to its caller.
pub(crate) const REPORT_FD: RawFd = 3;
/// The lifeline: EOF or HUP means the caller is gone, and the worker is killed.
pub(crate) const LIFELINE_FD: RawFd = 4;
/// A parked helper's control pipe: the pool writes one [`Turn`](crate::Turn) (JSON) and closes
/// it; EOF with nothing written means the worker is discarded.
pub(crate) const CONTROL_FD: RawFd = 5;
/// The byte a parked helper writes on the report pipe once its worker is parked (before the
/// JSON report, which never starts with it).
pub(crate) const PARKED_BYTE: u8 = b'R';

/// What the helper tells `run`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The command ended; `netns_from`: the init (alive until the lifeline drops) of a worker whose
    /// network namespace carried nothing and may serve the next cold worker (`netns_stash`).
    Done {
        outcome: Outcome,
        #[serde(default)]
        netns_from: Option<i32>,
    },
    /// A persistent jail is up; its helper stays as its supervisor.
    Started(Started),
    /// Another live worker holds the name (kept apart: callers may retry with another name).
    NameInUse,
    Failed(String),
}

/// What a jail's helper reports once the jail is up: who holds it, for `jail.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The supervising helper.
    pub owner_pid: i32,
    pub owner_start: u64,
    /// The jail's init: pid 1 of its namespaces, the target of `setns` and SIGTERM.
    pub init_pid: i32,
    pub init_start: u64,
    pub cgroups: Vec<std::path::PathBuf>,
    pub veth: Option<String>,
    pub timings: Timings,
}

static HELPER_EXE: OnceLock<PathBuf> = OnceLock::new();

/// Sets the binary re-exec'd as the helper (default `/proc/self/exe`, i.e. this program, whose
/// `main` must call [`crate::helper_main`] when `argv[1] == "__worker"`). Tests point it at
/// their small dispatch binary. Only the first call counts.
pub fn set_helper_exe(path: impl Into<PathBuf>) {
    let _ = HELPER_EXE.set(path.into());
}

/// The binary that is started as the helper.
pub(crate) fn helper_exe() -> &'static Path {
    HELPER_EXE.get_or_init(|| PathBuf::from(SELF_EXE))
}

const SELF_EXE: &str = "/proc/self/exe";

/// True when the helper is this program (its code can run in a fork of this process).
pub(crate) fn helper_is_self() -> bool {
    helper_exe() == Path::new(SELF_EXE)
}
