//! One module per verb; each takes parsed arguments and returns an exit code or an [`crate::exit::Exit`].

// The Linux backend's own verbs exist on Linux; elsewhere `not_linux` answers for them.
#[cfg(target_os = "linux")]
pub mod bench;
pub mod bench_bastille;
pub mod config;
pub mod db;
pub mod doctor;
pub mod git;
pub mod init;
#[cfg(target_os = "linux")]
pub mod jail;
pub mod layout;
#[cfg(not(target_os = "linux"))]
mod not_linux;
pub mod pi_config;
pub mod plan;
#[cfg(target_os = "linux")]
pub mod release;
pub mod render;
pub mod run;
pub mod serve;
pub mod site;
pub mod snapshot;
#[cfg(target_os = "linux")]
pub mod snapshot_linux;
pub mod telegram;
pub mod turn;
pub mod turns;
#[cfg(not(target_os = "linux"))]
pub use not_linux::{bench, jail, release, snapshot_linux};
