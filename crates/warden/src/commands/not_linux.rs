//! `warden jail|release|bench` and Linux snapshots on an OS without the Linux backend: each says it runs only on Linux (the bench
//! runs its bastille part).

use crate::cli::{BenchArgs, Global, JailCommand, ReleaseCommand, SnapshotCommand};
use crate::exit::Exit;

/// `warden jail` (Linux persistent jails).
pub mod jail {
    use super::*;

    /// Not on this OS.
    pub fn run(_: &Global, _: &JailCommand) -> Result<u8, Exit> {
        Err(crate::backends::linux::unsupported())
    }
}

/// `warden release` (Linux releases).
pub mod release {
    use super::*;

    /// Not on this OS.
    pub fn run(_: &Global, _: &ReleaseCommand) -> Result<(), Exit> {
        Err(crate::backends::linux::unsupported())
    }
}

/// `warden snapshot|rollback|snapshots --backend linux`.
pub mod snapshot_linux {
    use super::*;

    /// Not on this OS.
    pub fn run(_: &Global, _: &SnapshotCommand) -> Result<(), Exit> {
        Err(crate::backends::linux::unsupported())
    }
}

/// `warden bench` (Linux workers).
pub mod bench {
    use super::*;

    /// The bastille bench (the default here); the Linux one is not on this OS.
    pub fn run(global: &Global, args: &BenchArgs) -> Result<(), Exit> {
        match args.backend {
            Some(crate::cli::BackendName::Linux) => Err(crate::backends::linux::unsupported()),
            _ => crate::commands::bench_bastille::run(global, args),
        }
    }
}
