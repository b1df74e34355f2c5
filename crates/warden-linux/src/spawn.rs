//! The mechanics of starting the helper with pipes placed on its fixed descriptors (0–2
//! streams, 3 report, 4 lifeline, 5 control): the descriptor slots, placing them in a forked
//! child, and `posix_spawn` of `<exe> __worker …`. Which way a helper starts is `launch.rs`'s
//! choice; this module is the layer under it and under the zygote.
//!
//! Why not `std::process::Command`: placing descriptors needs a `pre_exec` hook, and with one
//! `Command` must `fork()` — copying the caller's page tables and making every later write of
//! the caller's other threads take a copy-on-write fault until the child execs. In a server
//! with a pool refilling beside running turns that cost milliseconds per worker. `posix_spawn`
//! (glibc: `clone(CLONE_VM | CLONE_VFORK)`) copies nothing, and its file actions do the
//! placing.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use crate::error::{Error, Result};
use crate::proto::{CONTROL_FD, LIFELINE_FD, REPORT_FD};
use crate::sys::{dev_null, pipe};

// `spawn` takes the slots as an array indexed by descriptor number.
const _: () = assert!(REPORT_FD == 3 && LIFELINE_FD == 4 && CONTROL_FD == 5);

extern "C" {
    static environ: *const *mut libc::c_char;
}

/// What one of the helper's descriptors 0–5 becomes.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    /// The caller's own descriptor of that number (stdio of a CLI).
    Inherit,
    /// Closed in the helper.
    Closed,
    /// This descriptor of the caller, duplicated onto the slot's number.
    Fd(RawFd),
}

/// A spawned helper; reap it with [`Helper::wait`] (or hand it to a reaper).
#[derive(Debug)]
pub(crate) struct Helper {
    pub pid: libc::pid_t,
    /// For a helper forked by the zygote (not our child): a pidfd to see it exit.
    pub pidfd: Option<OwnedFd>,
}

impl Helper {
    /// Waits for the helper to exit; returns its raw wait status (unknown for a zygote's).
    pub fn wait(&self) -> Option<i32> {
        if let Some(fd) = &self.pidfd {
            loop {
                let mut p = libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: polling one pollfd we own.
                let r = unsafe { libc::poll(&mut p, 1, -1) };
                if r > 0 {
                    return None;
                }
                if r < 0
                    && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted
                {
                    return None;
                }
            }
        }
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child.
            let r = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if r == self.pid {
                return Some(status);
            }
            if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return None;
        }
    }
}

/// In a freshly forked child: puts `slots` on descriptors 0–5 and closes every other
/// descriptor (but `keep`, closed too once placed), and starts it with the signal state of a
/// new program (empty mask; SIGPIPE, SIGCHLD default).
///
/// # Safety
/// Only in a child of a fork, before it runs anything else.
pub(crate) unsafe fn place_slots(slots: &[Slot; 6], keep: Option<RawFd>) -> std::io::Result<()> {
    let mut copies = [-1; 6];
    for (i, slot) in slots.iter().enumerate() {
        if let Slot::Fd(src) = slot {
            // Above every target, so no dup2 below clobbers a source.
            copies[i] = libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 10);
            if copies[i] < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    if let Some(fd) = keep {
        libc::close(fd);
    }
    for (i, slot) in slots.iter().enumerate() {
        match slot {
            Slot::Inherit => {}
            Slot::Closed => {
                libc::close(i as RawFd);
            }
            Slot::Fd(_) => {
                if libc::dup2(copies[i], i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
    }
    // Nothing else of the parent's crosses (an exec would have closed them: all CLOEXEC).
    libc::syscall(libc::SYS_close_range, 6u32, u32::MAX, 0u32);
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    libc::signal(libc::SIGCHLD, libc::SIG_DFL);
    Ok(())
}

/// `posix_spawn` of `exe args…` with descriptor `i` of the child set from `slots[i]`: 0–2 the
/// standard streams, then [`REPORT_FD`], [`LIFELINE_FD`], [`CONTROL_FD`].
pub(crate) fn spawn(exe: &std::path::Path, args: &[&str], slots: [Slot; 6]) -> Result<Helper> {
    let fail = |e: std::io::Error| Error::io("start helper", exe, e);
    let c = |s: &str| CString::new(s).map_err(|_| fail(std::io::ErrorKind::InvalidInput.into()));
    let path = c(&exe.to_string_lossy())?;
    let mut argv_c = vec![path.clone()];
    for a in args {
        argv_c.push(c(a)?);
    }
    let mut argv: Vec<*mut libc::c_char> = argv_c.iter().map(|s| s.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    // Sources are first copied above the targets (≥ 10), so no dup2 onto 0–5 can clobber a
    // source that happens to sit on one of those numbers; the copies close at exec.
    let mut copies: Vec<OwnedFd> = Vec::new();
    let mut actions = FileActions::new()?;
    for (target, slot) in slots.iter().enumerate() {
        let target = target as RawFd;
        match slot {
            Slot::Inherit => {}
            Slot::Closed => check(
                // SAFETY: a valid, initialised file-actions object.
                unsafe { libc::posix_spawn_file_actions_addclose(&mut actions.0, target) },
            )?,
            Slot::Fd(src) => {
                // SAFETY: duplicating a descriptor the caller owns.
                let copy = unsafe { libc::fcntl(*src, libc::F_DUPFD_CLOEXEC, 10) };
                if copy < 0 {
                    return Err(Error::sys(
                        "duplicate a descriptor for the helper",
                        std::io::Error::last_os_error(),
                    ));
                }
                // SAFETY: the copy was just created and is owned here.
                copies.push(unsafe { OwnedFd::from_raw_fd(copy) });
                check(
                    // SAFETY: a valid, initialised file-actions object.
                    unsafe { libc::posix_spawn_file_actions_adddup2(&mut actions.0, copy, target) },
                )?;
            }
        }
    }
    let attr = Attr::new()?;
    let mut pid = 0;
    // SAFETY: every pointer is valid for the call; argv and environ are null-terminated.
    let rc = unsafe {
        libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &actions.0,
            &attr.0,
            argv.as_ptr(),
            environ.cast(),
        )
    };
    drop(copies);
    if rc != 0 {
        return Err(fail(std::io::Error::from_raw_os_error(rc)));
    }
    Ok(Helper { pid, pidfd: None })
}

/// The helper's standard streams as pipes: the caller's ends (`stdin` absent: the helper reads
/// `/dev/null`), and the helper's ends, to be dropped once it has started.
pub(crate) struct Streams {
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// The helper's ends: stdin, stdout, stderr.
    pub child: [OwnedFd; 3],
}

impl Streams {
    /// New pipes; `stdin_pipe` false gives the helper `/dev/null` as stdin.
    pub fn new(stdin_pipe: bool) -> Result<Streams> {
        let (stdin_r, stdin_w) = if stdin_pipe {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (dev_null()?, None)
        };
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        Ok(Streams {
            stdin: stdin_w,
            stdout: out_r,
            stderr: err_r,
            child: [stdin_r, out_w, err_w],
        })
    }

    /// The helper's descriptors 0–2.
    pub fn slots(&self) -> [Slot; 3] {
        self.child.each_ref().map(slot)
    }
}

/// Writes `bytes` to the command's stdin on a thread (a command may read only after writing
/// more than a pipe holds); with nothing to write, the pipe is closed here: EOF at once.
pub(crate) fn feed_stdin(
    sink: Option<OwnedFd>,
    bytes: Vec<u8>,
) -> Option<std::thread::JoinHandle<()>> {
    let sink = sink.filter(|_| !bytes.is_empty())?;
    Some(std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut std::fs::File::from(sink), &bytes);
    }))
}

/// The raw number of an owned descriptor, as a [`Slot`].
pub(crate) fn slot(fd: &OwnedFd) -> Slot {
    Slot::Fd(fd.as_raw_fd())
}

struct FileActions(libc::posix_spawn_file_actions_t);

impl FileActions {
    fn new() -> Result<Self> {
        // SAFETY: zeroed storage initialised by the call below before any use.
        let mut fa: libc::posix_spawn_file_actions_t = unsafe { std::mem::zeroed() };
        // SAFETY: initialising the object just allocated.
        let rc = unsafe { libc::posix_spawn_file_actions_init(&mut fa) };
        if rc != 0 {
            return Err(Error::sys(
                "prepare to start the helper",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        Ok(FileActions(fa))
    }
}

fn check(rc: libc::c_int) -> Result<()> {
    if rc == 0 {
        return Ok(());
    }
    Err(Error::sys(
        "prepare the helper's descriptors",
        std::io::Error::from_raw_os_error(rc),
    ))
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: destroying the object initialised in `new`.
        unsafe { libc::posix_spawn_file_actions_destroy(&mut self.0) };
    }
}

/// Spawn attributes: an empty signal mask and default dispositions for the signals a caller
/// may block or ignore (as `Command` does), so the helper starts like any program.
struct Attr(libc::posix_spawnattr_t);

impl Attr {
    fn new() -> Result<Self> {
        let err = |rc: libc::c_int| {
            Error::sys(
                "prepare to start the helper",
                std::io::Error::from_raw_os_error(rc),
            )
        };
        // SAFETY: zeroed storage initialised by posix_spawnattr_init before any use; the
        // signal sets are initialised by sigemptyset before use.
        unsafe {
            let mut attr: libc::posix_spawnattr_t = std::mem::zeroed();
            let rc = libc::posix_spawnattr_init(&mut attr);
            if rc != 0 {
                return Err(err(rc));
            }
            let attr = Attr(attr);
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            let mut defaults: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut defaults);
            libc::sigaddset(&mut defaults, libc::SIGPIPE);
            let mut a = attr;
            for rc in [
                libc::posix_spawnattr_setsigmask(&mut a.0, &empty),
                libc::posix_spawnattr_setsigdefault(&mut a.0, &defaults),
                libc::posix_spawnattr_setflags(
                    &mut a.0,
                    (libc::POSIX_SPAWN_SETSIGMASK | libc::POSIX_SPAWN_SETSIGDEF) as libc::c_short,
                ),
            ] {
                if rc != 0 {
                    return Err(err(rc));
                }
            }
            Ok(a)
        }
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: destroying the object initialised in `new`.
        unsafe { libc::posix_spawnattr_destroy(&mut self.0) };
    }
}
