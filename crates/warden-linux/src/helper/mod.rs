//! The helper: `<exe> __worker <spec-json> <start-us>`, a small single-threaded process that
//! `run` re-execs for every worker (forking from a multi-threaded caller is unsafe).
//!
//! It owns the worker from start to end: record, cgroups, clone of the worker's init, veth
//! (`create.rs`), parking until a turn arrives (`park.rs`), the wait (limits, output pumping;
//! `wait.rs`), and — after it has sent the outcome — the teardown (`teardown.rs`), which is
//! therefore off the caller's critical path.
//!
//! Descriptors (`proto.rs`): 0 is the worker's stdin; 1/2 receive the worker's output (pumped,
//! counted); 3 is the report pipe to `run`; 4 is the lifeline (EOF/HUP = the caller is gone:
//! kill); 5 is a parked helper's control pipe.

mod create;
mod park;
mod teardown;
mod wait;

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cgroup::{self, Cgroup};
use crate::error::{error_chain, Error};
use crate::netlink::Netlink;
use crate::proto::{Report, CONTROL_FD, LIFELINE_FD, REPORT_FD};
use crate::record::Record;
use crate::spec::{Timings, WorkerSpec};
use crate::sys::{ignore_terminal_signals, mono_us, wait_hangup};

/// The helper proper, for `args` = `[exe, "__worker", spec-json, start-us]`; returns its exit
/// code. Runs in a re-exec'd process or in a child forked from a single-threaded one (the
/// zygote, a CLI) with descriptors 0–5 in place.
pub(crate) fn run_helper(args: &[String]) -> i32 {
    // The caller decides the worker's fate (lifeline); terminal signals must not kill the
    // helper half-way and leave resources behind.
    ignore_terminal_signals();
    for fd in [REPORT_FD, LIFELINE_FD, CONTROL_FD] {
        // Keep these out of the worker.
        // SAFETY: fcntl on a descriptor number; fails harmlessly if it is not open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let started = mono_us();
    let caller_start: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(started);
    let spec: std::result::Result<WorkerSpec, String> = args
        .get(2)
        .ok_or_else(|| "missing spec argument".to_string())
        .and_then(|s| serde_json::from_str(s).map_err(|e| format!("failed to decode spec: {e}")));
    if spec.as_ref().is_ok_and(|s| s.persistent.is_some()) {
        detach();
    }
    if spec.as_ref().is_ok_and(|s| s.parked) {
        // Parking is background work: never in the way of a running turn (sched.rs).
        crate::sched::idle(0);
    }
    // Opened now: at the end it replaces our stdout/stderr right when the caller waits.
    let null = File::options().write(true).open("/dev/null");
    let (report, helper) = match spec {
        Err(msg) => (Report::Failed(msg), None),
        Ok(spec) => {
            let mut h = Helper::new(spec, started);
            h.timings.spawn_us = started.saturating_sub(caller_start);
            let r = match h.run() {
                Ok(mut o) => {
                    // From the helper's start, or for a parked worker from its turn's arrival.
                    o.timings.report_us = mono_us() - h.started;
                    let netns_from = h.init_pid.filter(|pid| {
                        h.spec.recycles_netns() && crate::netns_stash::pristine(*pid)
                    });
                    Report::Done {
                        outcome: o,
                        netns_from,
                    }
                }
                Err(Error::NameInUse { .. }) => Report::NameInUse,
                Err(e) => Report::Failed(error_chain(&e)),
            };
            (r, Some(h))
        }
    };
    // Close our copies of the output so the caller sees EOF, then report.
    if let Ok(null) = null {
        // SAFETY: dup2 onto our own stdout/stderr.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
    // SAFETY: fd 3 is the report pipe the caller set up; if absent, the write fails harmlessly.
    let mut out = unsafe { File::from_raw_fd(REPORT_FD) };
    let _ = out.write_all(&serde_json::to_vec(&report).unwrap_or_default());
    drop(out);
    // The caller drops the lifeline once it has the report: tear down after that, so the
    // teardown (the init's exit destroys the namespaces) does not take the CPU the caller needs.
    wait_hangup(LIFELINE_FD, 1000);
    // SAFETY: the lifeline is no longer needed.
    unsafe { libc::close(LIFELINE_FD) };
    match helper {
        // A helper that lost the name owns nothing and must not touch the winner's record.
        Some(_) if matches!(report, Report::NameInUse) => 0,
        Some(mut h) => match h.teardown() {
            Ok(()) => 0,
            Err(_) => 1,
        },
        None => 2,
    }
}

/// Set by SIGTERM in a jail's supervisor: stop the jail (its wait forwards SIGTERM to the init).
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether this jail supervisor was asked to stop its jail (SIGTERM).
pub(super) fn stop_requested() -> bool {
    STOP_REQUESTED.load(Ordering::SeqCst)
}

/// A jail's helper outlives the command that started it, as the jail's supervisor: fork so the
/// caller reaps its child at once and the supervisor is adopted by init, in a session of its own
/// (no terminal signals). The report pipe goes with the supervisor. SIGTERM (a service manager,
/// `warden teardown`, `kill`) stops the jail as `warden jail stop` does, instead of being ignored.
fn detach() {
    // SAFETY: the helper is single-threaded; the parent leaves with _exit at once.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: setsid in the new child, which is not a group leader; then fd 4 (no
            // lifeline here) is taken by /dev/null so no pipe lands on the number the init
            // closes as the lifeline.
            unsafe {
                libc::setsid();
                if libc::fcntl(LIFELINE_FD, libc::F_GETFD) < 0 {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if null >= 0 && null != LIFELINE_FD {
                        libc::dup3(null, LIFELINE_FD, libc::O_CLOEXEC);
                        libc::close(null);
                    }
                }
                // No SA_RESTART: the wait's poll returns EINTR and acts on the flag at once.
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = request_stop as extern "C" fn(libc::c_int) as usize;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
            }
        }
        pid if pid > 0 => {
            // SAFETY: leaving without destructors; the child owns everything now.
            unsafe { libc::_exit(0) }
        }
        _ => {} // fork failed: supervise from here, still correct, only not detached.
    }
}

/// One worker's helper: what it has made so far, so that the teardown releases exactly that.
struct Helper {
    spec: WorkerSpec,
    started: u64,
    timings: Timings,
    record: Option<Record>,
    cgroup: Option<Cgroup>,
    init_pid: Option<i32>,
    /// A parked worker's command process (pid 2), found at park time.
    command_pid: Option<i32>,
    reaped: bool,
    veth_created: bool,
    nl: Option<Netlink>,
    /// The host-wide claim on the cgroup name, held until the cgroups are gone.
    claim: Option<cgroup::Claim>,
}

impl Helper {
    fn new(spec: WorkerSpec, started: u64) -> Self {
        Helper {
            spec,
            started,
            timings: Timings::default(),
            record: None,
            cgroup: None,
            init_pid: None,
            command_pid: None,
            reaped: false,
            veth_created: false,
            nl: None,
            claim: None,
        }
    }

    fn setup_err(&self, message: &str) -> Error {
        Error::Setup {
            name: self.spec.name.clone(),
            message: message.to_string(),
        }
    }
}
