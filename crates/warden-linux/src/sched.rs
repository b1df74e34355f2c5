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

/// Moves `pid` and its direct children (a parked worker's init and its command process) back
/// to the normal class. Children are read from `/proc/<pid>/task/<pid>/children`.
pub(crate) fn normal_with_children(pid: libc::pid_t) {
    normal(pid);
    let children =
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
        normal(c);
    }
}
