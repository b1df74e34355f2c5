//! One module per verb; each takes parsed arguments and returns an exit code or an [`crate::exit::Exit`].

pub mod config;
pub mod init;
pub mod layout;
pub mod plan;
pub mod render;
