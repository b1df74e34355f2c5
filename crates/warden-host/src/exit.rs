//! The one exit-code table (README "Exit codes"): the CLI, both worker backends and the server map how
//! something ended onto these codes and no others, so a script reads the same code on Linux and FreeBSD.

/// Success.
pub const OK: u8 = 0;
/// A check or an action failed (doctor found a failure, setup could not finish, a turn failed).
pub const FAILURE: u8 = 1;
/// Bad input: invalid config, flags or arguments; nothing was changed.
pub const USAGE: u8 = 2;

/// A worker went over its wall-clock limit (as timeout(1)).
pub const LIMIT_TIMEOUT: u8 = 124;
/// Warden could not create or run the worker (nothing of the command's own status is known).
pub const INFRASTRUCTURE: u8 = 125;
/// A worker went over its memory limit (killed, as by SIGKILL).
pub const LIMIT_MEMORY: u8 = 137;
/// A worker went over its process limit.
pub const LIMIT_PIDS: u8 = 138;
/// A worker went over its output cap (as SIGPIPE).
pub const LIMIT_OUTPUT: u8 = 141;

/// The code for a command that exited by itself with `code` (clamped into 0..=255).
pub fn exited(code: i32) -> u8 {
    code.clamp(0, 255) as u8
}

/// The code for a command killed by signal `sig` that no limit explains: 128 + the signal, as a shell reports it.
pub fn signaled(sig: i32) -> u8 {
    (128 + sig).clamp(0, 255) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_codes_are_distinct_and_outside_the_usual_signal_codes_they_mimic() {
        let codes = [
            LIMIT_TIMEOUT,
            INFRASTRUCTURE,
            LIMIT_MEMORY,
            LIMIT_PIDS,
            LIMIT_OUTPUT,
        ];
        for (i, a) in codes.iter().enumerate() {
            for b in &codes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(signaled(9), LIMIT_MEMORY, "memory mimics SIGKILL");
        assert_eq!(signaled(13), LIMIT_OUTPUT, "output mimics SIGPIPE");
        assert_eq!(exited(300), 255);
        assert_eq!(exited(-1), 0);
    }
}
