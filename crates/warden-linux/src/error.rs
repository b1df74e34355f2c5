//! Errors of the Linux worker runtime: every variant says what failed and on what.

use std::path::PathBuf;

/// An error of the worker runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on a path failed.
    #[error("failed to {op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A system call failed.
    #[error("failed to {op}")]
    Sys {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// A netlink request was refused by the kernel.
    #[error("failed to {op}: netlink error {errno} ({})", std::io::Error::from_raw_os_error(*errno))]
    Netlink { op: String, errno: i32 },
    /// The worker spec is not acceptable.
    #[error("failed to accept worker spec: {field} = {value:?}: {why}")]
    Spec {
        field: &'static str,
        value: String,
        why: &'static str,
    },
    /// The worker could not be set up (reported by the helper or the worker's init).
    #[error("failed to set up worker {name}: {message}")]
    Setup { name: String, message: String },
    /// A worker with this name is already live.
    #[error("failed to create worker {name}: a live worker already holds this name")]
    NameInUse { name: String },
    /// No free address is left in the lease range.
    #[error("failed to lease an address: all of {first}..={last} are in use")]
    LeasesExhausted {
        first: std::net::Ipv4Addr,
        last: std::net::Ipv4Addr,
    },
    /// A jail (or release) operation was refused; `why` says what is wrong and how to fix it.
    #[error("failed to {op} {name}: {why}")]
    Refused {
        op: &'static str,
        name: String,
        why: String,
    },
    /// A name given by the user is unknown or not acceptable (bad input: nothing was changed); `why` says
    /// what exists and how to fix it.
    #[error("{what} {name:?}: {why}")]
    Input {
        what: &'static str,
        name: String,
        why: String,
    },
    /// The jail is not running, so it cannot be entered.
    #[error("failed to enter jail {name}: it is not running\n  fix: `warden jail start {name}`")]
    NotRunning { name: String },
    /// Encoding or decoding JSON failed.
    #[error("failed to {op} JSON")]
    Json {
        op: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

impl From<warden_host::lease::LeaseError> for Error {
    fn from(e: warden_host::lease::LeaseError) -> Self {
        use warden_host::lease::LeaseError;
        match e {
            LeaseError::Io { op, path, source } => Error::Io { op, path, source },
            LeaseError::Range { first, last } => Error::Spec {
                field: "lease range",
                value: format!("{first}..={last}"),
                why: "must be ascending and inside one /24",
            },
            LeaseError::Exhausted { first, last } => Error::LeasesExhausted { first, last },
        }
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(op: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            op: op.into(),
            source: source.into(),
        }
    }
}

/// An error with its causes, on one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
