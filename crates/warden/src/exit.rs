//! Exit codes, documented in the README: the code is the contract for scripts.

/// Success.
pub const OK: u8 = 0;
/// A check or an action failed (doctor found a failure, setup could not finish, a turn failed).
pub const FAILURE: u8 = 1;
/// Bad input: invalid config, flags or arguments; nothing was changed.
pub const USAGE: u8 = 2;

/// `warden run`: the worker went over its wall-clock limit (as timeout(1)).
pub const LIMIT_TIMEOUT: u8 = 124;
/// `warden run`: Warden could not create or run the worker (nothing of the command's own status is known).
pub const INFRASTRUCTURE: u8 = 125;
/// `warden run`: the worker went over its memory limit (killed, as by SIGKILL).
pub const LIMIT_MEMORY: u8 = 137;
/// `warden run`: the worker went over its process limit.
pub const LIMIT_PIDS: u8 = 138;
/// `warden run`: the worker went over its output cap (as SIGPIPE).
pub const LIMIT_OUTPUT: u8 = 141;

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
