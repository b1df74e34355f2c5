//! One module per verb; each takes parsed arguments and returns an exit code or an [`crate::exit::Exit`].

pub mod bench;
pub mod config;
pub mod doctor;
pub mod init;
pub mod jail;
pub mod layout;
pub mod pi_config;
pub mod plan;
pub mod release;
pub mod render;
pub mod run;
pub mod serve;
pub mod snapshot;
pub mod turn;
pub mod turns;
