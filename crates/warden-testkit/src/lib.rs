//! Helpers shared by the tests of the workspace: the simulated FreeBSD host every fakebsd-driven test starts
//! from (`FakeBsdHost`), and for the root tests of warden-linux and warden-server the skip rule and the
//! cross-process test lock, throwaway network namespaces (Drop guards) and the residue checks both suites make
//! (Linux only). What needs a warden type stays in each suite's `tests/common`.
#![forbid(unsafe_code)]

pub mod fakebsd;
#[cfg(target_os = "linux")]
mod linux;

pub use fakebsd::FakeBsdHost;
#[cfg(target_os = "linux")]
pub use linux::*;
