//! Small process and descriptor utilities every layer of the backend uses: the monotonic clock
//! that timings are measured in, pipes, pidfds, polling, a cloned child's stack and the terminal
//! signals that privileged processes ignore.
//!
//! The bottom layer: it uses nothing of the crate but its error type, so the helper, the
//! worker's init, the zygote and the caller's side can all stand on it.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};

/// Microseconds of CLOCK_MONOTONIC: comparable between the processes of one run.
pub(crate) fn mono_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000
}

/// A pipe whose two ends close on exec.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("create a pipe", e))
}

/// `/dev/null` for reading, to give the helper an empty stdin.
pub(crate) fn dev_null() -> Result<OwnedFd> {
    std::fs::File::open("/dev/null")
        .map(OwnedFd::from)
        .map_err(|e| Error::io("open", "/dev/null", e))
}

/// A pidfd for process `pid` (which then cannot be confused with a later process of that pid).
pub(crate) fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open with a pid and no flags; the result is checked.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the pidfd was just created and is owned here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes reads of `fd` return at once when nothing is there.
pub(crate) fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl flag update on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// Whether descriptor number `fd` is open in this process.
pub(crate) fn fd_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// Waits until the writer of pipe `fd` is gone (EOF), at most `timeout_ms`; returns at once if
/// `fd` is not open.
pub(crate) fn wait_hangup(fd: RawFd, timeout_ms: i32) {
    if fd_open(fd) {
        wait_readable(fd, timeout_ms);
    }
}

/// Whether `fd` (a pipe, a pidfd) became readable within `timeout_ms`.
pub(crate) fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = mono_us() + timeout_ms.max(0) as u64 * 1000;
    loop {
        let left = (deadline.saturating_sub(mono_us()) / 1000) as i32;
        // SAFETY: poll reads and writes one pollfd we own.
        match unsafe { libc::poll(&mut pfd, 1, left) } {
            n if n > 0 => return true,
            0 => return false,
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

/// Signals a terminal or a service manager sends that the helper and the zygote ignore (and a
/// worker's command gets back at their defaults).
pub(crate) const TERMINAL_SIGNALS: [libc::c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGPIPE,
];

/// Ignores [`TERMINAL_SIGNALS`] in this process.
pub(crate) fn ignore_terminal_signals() {
    for sig in TERMINAL_SIGNALS {
        // SAFETY: setting a disposition to SIG_IGN.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}

/// A cloned child's stack (the init's; a cold worker's command process): an anonymous mapping,
/// so only the pages it uses are ever touched (a zeroed heap buffer cost a 1 MiB memset per
/// worker, and copy-on-write faults in a forked helper whose heap pages were its zygote's).
pub(crate) struct Stack {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Stack {
    /// Maps `len` bytes.
    pub(crate) fn new(len: usize) -> Result<Stack> {
        // SAFETY: a fresh private anonymous mapping; checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::sys(
                "map a stack for a worker process",
                std::io::Error::last_os_error(),
            ));
        }
        Ok(Stack { ptr, len })
    }

    /// The mapping as a byte slice (for `clone`).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: the mapping is `len` bytes, readable and writable, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.cast(), self.len) }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping (the init has its own copy of it).
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
