//! Starting the helper in the cheapest way the caller allows:
//!
//! - through the zygote (`zygote.rs`) when the process enabled it (`warden serve`, `warden
//!   bench`: long-lived and multi-threaded): a fork of a small single-threaded process, no exec;
//! - by forking the caller itself when it is single-threaded (the CLI's `warden run`): no exec;
//! - otherwise by `posix_spawn` of `<exe> __worker …` (`spawn.rs`).

use crate::error::{Error, Result};
use crate::helper::run_helper;
use crate::proto::{helper_exe, helper_is_self};
use crate::spawn::{place_slots, spawn, Helper, Slot};

/// Starts the helper `helper_exe() args…` (args without argv[0]) with descriptor `i` set from
/// `slots[i]`, by the cheapest of the three ways (module docs).
pub(crate) fn spawn_helper(args: &[&str], slots: [Slot; 6]) -> Result<Helper> {
    if let Some(h) = crate::zygote::spawn(args, &slots) {
        return h;
    }
    if helper_is_self() && single_threaded() {
        return fork_helper(args, &slots);
    }
    spawn(helper_exe(), args, slots)
}

/// True when this process has one thread (read from `/proc/self/stat`).
fn single_threaded() -> bool {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Field 20 (num_threads), counted after the parenthesised command name.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        == Some("1")
}

/// Forks this single-threaded process; the child becomes the helper (no exec).
fn fork_helper(args: &[&str], slots: &[Slot; 6]) -> Result<Helper> {
    let mut argv: Vec<String> = vec![helper_exe().display().to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    // Anything buffered for our stdout must not be written a second time by the child.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    // SAFETY: the caller checked this process is single-threaded, so the child may run
    // ordinary Rust; it leaves with _exit.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: rearranging the child's own descriptors.
            if unsafe { place_slots(slots, None) }.is_err() {
                // SAFETY: leaving the child at once.
                unsafe { libc::_exit(125) };
            }
            let code = run_helper(&argv);
            // SAFETY: leaving the child without running the parent's atexit work.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => Ok(Helper { pid, pidfd: None }),
        _ => Err(Error::sys(
            "fork the helper",
            std::io::Error::last_os_error(),
        )),
    }
}
