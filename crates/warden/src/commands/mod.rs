//! One module per verb; each takes parsed arguments and returns an exit code or an [`crate::exit::Exit`].

// The Linux-only verbs are reached through `crate::backends::linux`, which has them on Linux only.
#[cfg(target_os = "linux")]
pub mod bench;
pub mod config;
pub mod doctor;
pub mod init;
#[cfg(target_os = "linux")]
pub mod jail;
pub mod layout;
pub mod pi_config;
pub mod plan;
#[cfg(target_os = "linux")]
pub mod release;
pub mod render;
pub mod run;
pub mod serve;
pub mod snapshot;
pub mod turn;
pub mod turns;
