//! The init of a persistent jail: pid 1 of the jail's pid namespace once the jail is up. It runs
//! no command of its own; it reaps whatever is orphaned inside the jail (daemons started by
//! `warden jail exec` that detached) and, on SIGTERM, stops the jail: SIGTERM to every process,
//! a grace period, SIGKILL to what is left, then it exits and the kernel drops the jail's
//! mounts and namespaces.

use std::time::{Duration, Instant};

/// How long the processes of a stopping jail get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Serves as the jail's init until SIGTERM (or SIGINT); returns the init's exit code.
pub fn serve() -> isize {
    // SAFETY: building and installing a signal mask of our own (single-threaded process).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGCHLD] {
            // The helper ignored the terminal signals; an ignored signal is discarded even when
            // blocked on some paths, so restore the default before blocking.
            libc::signal(sig, libc::SIG_DFL);
            libc::sigaddset(&mut set, sig);
        }
        // Blocked signals are queued even for a pid-namespace init (which otherwise drops
        // signals it has no handler for), so sigwaitinfo sees the host's SIGTERM.
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    loop {
        // SAFETY: waiting on our own blocked set.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        match sig {
            libc::SIGTERM | libc::SIGINT => break,
            _ => reap_nohang(),
        }
    }
    stop_all(&set, STOP_GRACE);
    0
}

/// Reaps every child that has ended, without blocking.
fn reap_nohang() {
    // SAFETY: waitpid with a null status pointer.
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// True while any process other than this init is left in the pid namespace.
fn others_alive() -> bool {
    // kill(-1, 0) from a namespace's init addresses every other process of the namespace and
    // fails with ESRCH when there is none.
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(-1, 0) == 0 }
}

/// SIGTERM to everything, wait up to `grace`, SIGKILL what is left, reap.
fn stop_all(set: &libc::sigset_t, grace: Duration) {
    // SAFETY: signalling the processes of our own pid namespace.
    unsafe { libc::kill(-1, libc::SIGTERM) };
    let deadline = Instant::now() + grace;
    loop {
        reap_nohang();
        if !others_alive() {
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let wait = left.min(Duration::from_millis(50));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        // SAFETY: a timed wait on our own blocked set (SIGCHLD wakes it early).
        unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
    }
    // SAFETY: signalling and reaping the processes of our own pid namespace.
    unsafe { libc::kill(-1, libc::SIGKILL) };
    let until = Instant::now() + Duration::from_secs(2);
    while others_alive() && Instant::now() < until {
        reap_nohang();
        std::thread::sleep(Duration::from_millis(5));
    }
    reap_nohang();
}
