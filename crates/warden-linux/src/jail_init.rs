//! The init of a persistent jail: pid 1 of the jail's pid namespace once the jail is up. It runs
//! no command of its own; it reaps whatever is orphaned inside the jail (daemons started by
//! `warden jail exec` that detached) and, on SIGTERM, stops the jail: PostgreSQL's fast shutdown
//! first when the jail runs the layout's server, then SIGTERM to every process, a grace period,
//! SIGKILL to what is left; then it exits and the kernel drops the jail's mounts and namespaces.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long the processes of a stopping jail get between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a stopping jail's PostgreSQL gets for its fast shutdown (as `pg_ctl stop -m fast -t 60`).
pub const POSTGRES_STOP: Duration = Duration::from_secs(60);

/// The pid file of the layout's PostgreSQL cluster under a jail's root (`/` from inside the jail).
pub fn postmaster_pid(root: &Path) -> PathBuf {
    root.join(warden_core::linux_db::DATA.trim_start_matches('/'))
        .join("postmaster.pid")
}

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
    stop_postgres(&set);
    stop_all(&set, STOP_GRACE);
    0
}

/// PostgreSQL's fast shutdown (SIGINT to the postmaster, what `pg_ctl stop -m fast` sends), waited for up
/// to [`POSTGRES_STOP`]. SIGTERM to every process would be a smart shutdown, which waits for connected
/// clients, so the SIGKILL after the grace would cut its shutdown checkpoint: the next start (or a
/// snapshot's copy) would begin with crash recovery.
fn stop_postgres(set: &libc::sigset_t) {
    let Ok(text) = std::fs::read_to_string(postmaster_pid(Path::new("/"))) else {
        return;
    };
    let Some(pid) = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse::<libc::pid_t>().ok())
        .filter(|p| *p > 1)
    else {
        return;
    };
    // SAFETY: signalling a process of our own pid namespace (the pid file's, a stale one fails with ESRCH).
    if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
        return;
    }
    let deadline = Instant::now() + POSTGRES_STOP;
    // The postmaster is our child once its pg_ctl exited: reaped here, or kill(pid, 0) sees a zombie.
    // SAFETY: signal 0 only checks.
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        reap_nohang();
        timed_wait(set, Duration::from_millis(50));
    }
}

/// Waits up to `wait` for one of the blocked signals (SIGCHLD wakes it early).
fn timed_wait(set: &libc::sigset_t, wait: Duration) {
    let ts = libc::timespec {
        tv_sec: wait.as_secs() as libc::time_t,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    // SAFETY: a timed wait on our own blocked set.
    unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &ts) };
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
        timed_wait(set, left.min(Duration::from_millis(50)));
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
