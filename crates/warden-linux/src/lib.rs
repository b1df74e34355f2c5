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
//! init (`jail_init`) runs no command; [`jail_exec`] enters a running one; [`snapshot`] copies and
//! restores what a jail wrote.
//!
//! Modules, from the bottom layer up: `error`, `sys` (clock, pipes, pidfds, a clone's stack),
//! `spec` (what to run / what happened), `proto` (the helper's argv, descriptors and reports),
//! `mounts`, `cgroup`, `netlink`, `veth`, `record`, `runtime` (the tmpfs for records and claims),
//! `lease`, `release`, `netns_stash` (quiet network namespaces for the next cold worker), `reaper`;
//! `jail_init` (a jail's init) under `worker_init` (the worker's init, in the cloned child); `helper`
//! (the re-exec'd process that creates, waits for and tears down one worker); `spawn` (descriptor
//! slots, `posix_spawn`), `zygote`, `launch` (the cheapest way to start a helper); `worker` (`run`,
//! caller side), `parked` (a worker built up to its command, waiting for a [`Turn`]), `pool` (keeps
//! parked workers per release and network mode), `jail_layer` (a jail's writable layer and its crash-safe
//! replacement), `jail`, `jail_exec`, `snapshot` (copies of a jail's layer, rollback), `workers` (this backend
//! behind the worker contract of `warden_host::worker`); `entry` ([`helper_main`]) on top.
//!
//! Linux only: on any other OS the crate is empty, so the workspace builds there.
#![cfg(target_os = "linux")]

pub mod cgroup;
mod entry;
mod error;
mod helper;
pub mod host;
mod host_cms;
pub mod jail;
pub mod jail_exec;
mod jail_init;
mod jail_layer;
mod launch;
pub mod lease;
mod mounts;
mod netlink;
pub mod netns_stash;
pub mod parked;
pub mod pool;
mod proto;
pub mod reaper;
pub mod record;
pub mod release;
pub mod runtime;
mod sched;
pub mod snapshot;
mod spawn;
mod spec;
mod sys;
pub mod veth;
mod worker;
mod worker_init;
pub mod workers;
mod zygote;

pub use entry::helper_main;
pub use error::error_chain;
pub use error::{Error, Result};
pub use lease::{lease, Lease};
pub use parked::Parked;
pub use pool::{Pool, PoolKey, SlotConfig};
pub use proto::{set_helper_exe, Started, HELPER_ARG};
pub use reaper::reap_orphans;
pub use release::bootstrap_debian;
pub use spec::{
    validate_name, Bind, ExitKind, LimitKind, Limits, NetworkMode, Outcome, ReleaseRef, Shape,
    Timings, Turn, Vnet, WorkerSpec, DEFAULT_USER, MAX_NAME_LEN,
};
pub use worker::{run, run_captured, wait_torn_down, Io, OutputStream};
pub use workers::{LinuxOptions, LinuxWorkers};
pub use zygote::use_zygote;
