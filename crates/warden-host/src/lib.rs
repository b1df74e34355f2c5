//! Warden's host seam: every command and file write goes through a [`runner::Runner`]; plans are applied by
//! [`apply::apply`], which journals each action before and after it runs ([`journal::Journal`]); a
//! [`backend::Backend`] observes a host and plans for it; [`lease`] hands out worker addresses to both
//! backends. [`worker::Workers`] is the one contract for ephemeral workers of both backends, and [`exit`] the
//! one exit-code table.

#![forbid(unsafe_code)]

pub mod apply;
pub mod backend;
pub mod db_secrets;
pub mod exit;
pub mod git_secrets;
pub mod journal;
pub mod lease;
pub mod runner;
pub mod secrets;
pub mod setup;
pub mod site;
pub mod tailscale;
pub mod worker;

pub use apply::{apply, ApplyError, ApplyReport, Progress, SilentProgress};
pub use backend::{Backend, HostError};
pub use journal::Journal;
pub use runner::{Deadlines, Output, RecordingRunner, RunError, Runner, SystemRunner};
