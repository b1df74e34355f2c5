//! warden-linux: the Linux worker runtime.
//!
//! A worker is a process tree in new mount, pid, uts, ipc and (unless `Shared`) net namespaces,
//! rooted (pivot_root) in a per-worker tmpfs holding either read-only binds of the host or an
//! overlayfs over a release tree, limited by cgroups (v1 or v2), optionally on the `warden0`
//! bridge through an isolated veth port. [`run`] re-execs the current binary as a
//! single-threaded helper (`<exe> __worker …`, handled by [`helper_main`]) that creates the
//! worker, runs one command, reports the [`Outcome`] and tears everything down.
//!
//! Persistent jails ([`jail`]) are workers whose helper stays as their supervisor and whose
//! init (`init`) runs no command; [`jail_exec`] enters a running one.
//!
//! Modules: `spec` (what to run / what happened), `worker` (`run`, caller side), `helper`
//! (the re-exec'd process), `namespaces` (the worker's init), `init` (a jail's init), `jail`,
//! `jail_exec`, `parked` (a worker built up to its command, waiting for a [`Turn`]), `pool`
//! (keeps parked workers per release and network mode), `mounts`, `cgroup`, `veth`, `netlink`, `lease`, `record`, `runtime` (the tmpfs for
//! records and claims), `netns_stash` (quiet network namespaces for the next cold worker), `reaper`, `release`,
//! `workers` (this backend behind the worker contract of `warden_host::worker`).
//!
//! Linux only: on any other OS the crate is empty, so the workspace builds there.
#![cfg(target_os = "linux")]

pub mod cgroup;
mod error;
mod helper;
pub mod host;
mod init;
pub mod jail;
pub mod jail_exec;
pub mod lease;
mod mounts;
mod namespaces;
mod netlink;
pub mod netns_stash;
pub mod parked;
pub mod pool;
pub mod reaper;
pub mod record;
pub mod release;
pub mod runtime;
mod sched;
mod spawn;
mod spec;
pub mod veth;
mod worker;
pub mod workers;
mod zygote;

pub use error::{Error, Result};
pub use helper::{error_chain, helper_main, Started, HELPER_ARG};
pub use lease::{lease, Lease};
pub use parked::Parked;
pub use pool::{Pool, PoolKey, SlotConfig};
pub use reaper::reap_orphans;
pub use release::bootstrap_debian;
pub use spec::{
    validate_name, Bind, ExitKind, LimitKind, Limits, NetworkMode, Outcome, ReleaseRef, Shape,
    Timings, Turn, Vnet, WorkerSpec, DEFAULT_USER, MAX_NAME_LEN,
};
pub use worker::{run, run_captured, set_helper_exe, wait_torn_down, Io, OutputStream};
pub use workers::{LinuxOptions, LinuxWorkers};
pub use zygote::use_zygote;
