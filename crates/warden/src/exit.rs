//! Exit codes, documented in the README: the code is the contract for scripts. The table is the one in
//! `warden_host::exit`, shared with both worker backends and the server; this module adds the error type.

pub use warden_host::exit::{
    FAILURE, INFRASTRUCTURE, LIMIT_MEMORY, LIMIT_OUTPUT, LIMIT_PIDS, LIMIT_TIMEOUT, OK, USAGE,
};

/// An error that carries the exit code it should produce.
#[derive(Debug)]
pub struct Exit {
    /// The code.
    pub code: u8,
    /// The message for stderr (empty: print nothing).
    pub message: String,
}

impl Exit {
    /// A usage/config error (exit 2).
    pub fn usage(message: impl Into<String>) -> Exit {
        Exit {
            code: USAGE,
            message: message.into(),
        }
    }

    /// A runtime failure (exit 1).
    pub fn failure(message: impl Into<String>) -> Exit {
        Exit {
            code: FAILURE,
            message: message.into(),
        }
    }
}

impl From<warden_core::ConfigError> for Exit {
    fn from(e: warden_core::ConfigError) -> Exit {
        Exit::usage(e.to_string())
    }
}
