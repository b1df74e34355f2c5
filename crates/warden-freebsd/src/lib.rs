//! Warden's FreeBSD backend: observe a Bastille/ZFS/pf host ([`observe`]), plan and apply setup through
//! [`BastilleBackend`] and [`setup::setup`], run ephemeral workers on ZFS clones with `jail(8)` ([`worker`]), and
//! snapshot service jails ([`snapshot`]). Facts about Bastille and the FreeBSD tools come from
//! `shared/reference/bastille.md`; comments cite its sections.

#![forbid(unsafe_code)]

pub mod backend;
pub mod datasets;
pub mod lock;
pub mod observe;
pub mod parse;
pub mod setup;
pub mod snapshot;
pub mod worker;
pub mod workers;

/// Worker address leases: the one allocator, shared with the Linux backend.
pub use warden_host::lease;

pub use backend::BastilleBackend;
pub use lock::BastilleLock;
pub use observe::{observe, Observation};
pub use setup::{setup, SetupError, SetupReport};
pub use snapshot::{destroy, rollback, snapshot, snapshots, SnapshotError};
pub use worker::{run_worker, WorkerError, WorkerOutcome, WorkerSpec};
pub use workers::BastilleWorkers;
