//! CPU priority of the work around turns.
//!
//! Parking a worker (the pool's refill: helper, init building the root, the command process
//! waiting) is background work; on a small host it used to run on the CPU a turn's processes
//! were woken on, and every wake-up of the turn (helper, command, caller) waited up to a
//! millisecond behind it. A parked helper therefore runs under `SCHED_IDLE`, inherited by its
//! init and command process: any ordinary task preempts it at once, and the scheduler counts a
//! CPU running only idle-class tasks as idle when it places a woken task. The turn's processes
//! are moved back to `SCHED_OTHER` the moment the turn arrives. Under a sustained load a
//! starved refill costs nothing but pooled turns (a turn without a parked worker runs cold, at
//! normal priority); nothing piles up.
//!
//! After a turn, the init's exit (where the kernel drops the worker's namespaces and mounts)
//! also starts in the idle class, so it does not take the CPU from the caller that just got the
//! report; the helper moves it back to normal after 50 ms, so under a sustained load teardowns
//! are late by at most that, and do not pile up.

/// Puts process `pid` (0: the caller) in the idle scheduling class.
pub(crate) fn idle(pid: libc::pid_t) -> bool {
    set(pid, libc::SCHED_IDLE)
}

/// Puts process `pid` (0: the caller) back in the normal scheduling class.
pub(crate) fn normal(pid: libc::pid_t) -> bool {
    set(pid, libc::SCHED_OTHER)
}

fn set(pid: libc::pid_t, policy: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads the parameter we own; a failure only leaves the policy.
    unsafe { libc::sched_setscheduler(pid, policy, &param) == 0 }
}
