//! The wait: pumping the command's output to the helper's stdout/stderr and enforcing the
//! limits (timeout, memory, pids, output) until the command ends or the worker's init dies.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::wait::WaitStatus;

use super::Helper;
use crate::error::{Error, Result};
use crate::proto::LIFELINE_FD;
use crate::spec::{ExitKind, LimitKind, Limits, Outcome};
use crate::sys::{fd_open, mono_us, pidfd_open, set_nonblocking};

/// How often a jail's supervisor checks that the jail's directory still exists.
const JAIL_DIR_CHECK_MS: i64 = 1000;

/// How often the cgroup counters (OOM kills, pids.max hits) are read when a limit needs them.
const COUNTER_CHECK_MS: u64 = 10;

/// How long the command's remaining processes may still write after it ended: the init kills
/// them right after reporting.
const DRAIN_US: u64 = 2_000_000;

/// The command's output on its way to the helper's stdout (1) and stderr (2), counted against
/// the output cap.
struct Output {
    /// The read ends of the command's stdout and stderr; `None` once at EOF (or broken).
    streams: [Option<OwnedFd>; 2],
    written: [u64; 2],
    buf: Vec<u8>,
    cap: Option<u64>,
}

impl Output {
    fn new(out_r: OwnedFd, err_r: OwnedFd, cap: Option<u64>) -> Output {
        set_nonblocking(out_r.as_raw_fd());
        set_nonblocking(err_r.as_raw_fd());
        Output {
            streams: [Some(out_r), Some(err_r)],
            written: [0; 2],
            buf: vec![0u8; 16384],
            cap,
        }
    }

    /// Whether either stream can still deliver output.
    fn open(&self) -> bool {
        self.streams.iter().any(Option::is_some)
    }

    /// Which stream `fd` is (0: stdout, 1: stderr).
    fn index_of(&self, fd: i32) -> usize {
        usize::from(
            self.streams[1]
                .as_ref()
                .is_some_and(|s| s.as_raw_fd() == fd),
        )
    }

    /// Reads once from stream `idx` and forwards to our fd 1 or 2 within the output cap.
    /// Returns false at EOF or when nothing was available.
    fn pump(&mut self, idx: usize, limit_hit: &mut Option<LimitKind>) -> bool {
        let Some(fd) = self.streams[idx].as_ref() else {
            return false;
        };
        let buf = &mut self.buf;
        // SAFETY: reading into our buffer from a descriptor we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            self.streams[idx] = None;
            return false;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                self.streams[idx] = None;
            }
            return false;
        }
        let mut n = n as u64;
        if let Some(cap) = self.cap {
            let total = self.written[0] + self.written[1];
            if total + n > cap {
                n = cap.saturating_sub(total);
                limit_hit.get_or_insert(LimitKind::Output);
            }
        }
        write_all_raw(idx as i32 + 1, &self.buf[..n as usize]);
        self.written[idx] += n;
        true
    }

    /// Forwards everything still readable on both streams.
    fn drain(&mut self, limit_hit: &mut Option<LimitKind>) {
        for idx in 0..2 {
            while self.pump(idx, limit_hit) {}
        }
    }
}

/// Writes `bytes` to our descriptor `fd`, retrying on EINTR, giving up on any other error (a
/// reader that went away must not stop the worker's wait).
fn write_all_raw(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: writing our buffer to our own stdout/stderr.
        let w = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if w <= 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break;
        }
        bytes = &bytes[w as usize..];
    }
}

/// One wait's state: what is still open, what has happened, and when to look again.
struct Watch {
    /// The worker's init (pid 1 of its namespaces): killing it kills every process in them.
    pid: i32,
    pidfd: OwnedFd,
    output: Output,
    /// The init's report of the command's wait status; `None` once read.
    exit_pipe: Option<File>,
    limits: Limits,
    /// When the timeout expires (monotonic µs).
    deadline: Option<u64>,
    /// The cgroup counters' check interval (ms), when a limit needs them.
    check: Option<u64>,
    next_check: u64,
    /// A jail: no lifeline, no counter checks, but a watch on its directory.
    jail: bool,
    lifeline_open: bool,
    command_status: Option<i32>,
    init_dead: bool,
    limit_hit: Option<LimitKind>,
    jail_dir_gone: bool,
    /// Set once the command's status is known: the wait ends when its output is drained or at
    /// this time, whichever comes first.
    drain_deadline: Option<u64>,
}

impl Watch {
    fn new(
        helper: &Helper,
        pid: i32,
        out_r: OwnedFd,
        err_r: OwnedFd,
        exit_r: OwnedFd,
    ) -> Result<Watch> {
        let pidfd = pidfd_open(pid).map_err(|e| Error::sys("open a pidfd for the worker", e))?;
        let output = Output::new(out_r, err_r, helper.spec.limits.output_bytes);
        let limits = helper.spec.limits.clone();
        let deadline = limits.timeout_ms.map(|ms| helper.started + ms * 1000);
        // OOM and pids.max are checked by polling the cgroup counters at this interval. A jail
        // lives on when one of its processes meets a limit (the kernel refuses or kills that one),
        // and has no lifeline: it outlives the command that started it.
        let jail = helper.spec.persistent.is_some();
        let check = (!jail && (limits.memory_bytes.is_some() || limits.max_pids.is_some()))
            .then_some(COUNTER_CHECK_MS);
        Ok(Watch {
            pid,
            pidfd,
            output,
            exit_pipe: Some(File::from(exit_r)),
            limits,
            deadline,
            check,
            // Counters are read at that interval, not at every wake-up (output, the command's end).
            next_check: mono_us() + check.unwrap_or(0) * 1000,
            jail,
            lifeline_open: !jail && fd_open(LIFELINE_FD),
            command_status: None,
            init_dead: false,
            limit_hit: None,
            jail_dir_gone: false,
            drain_deadline: None,
        })
    }

    /// Ends when the command's status is known and its output is drained (or the drain's time
    /// is up), or the init is dead.
    fn finished(&self) -> bool {
        self.init_dead
            || (self.command_status.is_some() && !self.output.open())
            || self.drain_deadline.is_some_and(|d| mono_us() >= d)
    }

    /// What to poll: the init's pidfd first, then the exit pipe, the output, the lifeline.
    fn pollfds(&self) -> Vec<libc::pollfd> {
        let readable = |fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let mut pfds = vec![readable(self.pidfd.as_raw_fd())];
        pfds.extend(self.exit_pipe.as_ref().map(|f| readable(f.as_raw_fd())));
        pfds.extend(
            self.output
                .streams
                .iter()
                .flatten()
                .map(|s| readable(s.as_raw_fd())),
        );
        if self.lifeline_open {
            pfds.push(readable(LIFELINE_FD));
        }
        pfds
    }

    /// How long one poll may sleep: until the deadline, the next counter check, a moment while
    /// a limit's kill or the drain is under way, or the jail directory's next check.
    fn poll_timeout_ms(&self) -> i64 {
        let now = mono_us();
        let mut timeout_ms: i64 = -1;
        if let Some(d) = self.deadline {
            timeout_ms = (d.saturating_sub(now) / 1000 + 1) as i64;
        }
        if let Some(c) = self.check {
            timeout_ms = if timeout_ms < 0 {
                c as i64
            } else {
                timeout_ms.min(c as i64)
            };
        }
        if self.limit_hit.is_some() || self.drain_deadline.is_some() {
            timeout_ms = 50;
        }
        if self.jail {
            timeout_ms = JAIL_DIR_CHECK_MS;
        }
        timeout_ms
    }

    /// Kills the worker's init, and with it every process of its namespaces.
    fn kill(&self, sig: libc::c_int) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid, sig) };
    }

    /// Acts on what `poll` reported (`pfds` as built by `pollfds`).
    fn handle(&mut self, pfds: &[libc::pollfd]) {
        for p in pfds[1..].iter().filter(|p| p.revents != 0) {
            if p.fd == LIFELINE_FD {
                // The caller is gone: nobody wants the result; kill and clean up.
                self.limit_hit.get_or_insert(LimitKind::Timeout);
                self.kill(libc::SIGKILL);
            } else if self
                .exit_pipe
                .as_ref()
                .is_some_and(|f| f.as_raw_fd() == p.fd)
            {
                self.read_command_status();
            } else {
                let idx = self.output.index_of(p.fd);
                if self.output.pump(idx, &mut self.limit_hit)
                    && self.limit_hit == Some(LimitKind::Output)
                {
                    self.kill(libc::SIGKILL);
                }
            }
        }
        if pfds[0].revents != 0 {
            self.init_dead = true;
        }
    }

    /// Reads the init's `X <status>` line: the command has ended.
    fn read_command_status(&mut self) {
        let mut line = String::new();
        let _ = self
            .exit_pipe
            .take()
            .map(|mut f| f.read_to_string(&mut line));
        self.command_status = line.trim().strip_prefix("X ").and_then(|v| v.parse().ok());
        // The init kills what is left right after reporting; allow a moment for their output,
        // no more.
        self.drain_deadline = Some(mono_us() + DRAIN_US);
    }
}

impl Helper {
    /// Pumps output and enforces limits until the command ends (the init reports its status)
    /// or the init dies (killed at a limit); returns the outcome. The init's own exit — and
    /// with it the kernel's namespace teardown — is left to `teardown`.
    pub(super) fn wait(
        &mut self,
        pid: i32,
        out_r: OwnedFd,
        err_r: OwnedFd,
        exit_r: OwnedFd,
    ) -> Result<Outcome> {
        let exec_at = self.started + self.timings.exec_us;
        let mut w = Watch::new(self, pid, out_r, err_r, exit_r)?;
        while !w.finished() {
            let mut pfds = w.pollfds();
            // SAFETY: pfds is a valid array of pollfd for the call.
            let n = unsafe {
                libc::poll(
                    pfds.as_mut_ptr(),
                    pfds.len() as libc::nfds_t,
                    w.poll_timeout_ms() as i32,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::sys("poll the worker", e));
            }
            w.handle(&pfds);
            self.check_jail_dir(&mut w);
            self.check_limits(&mut w);
        }
        let exit_at = mono_us();
        self.timings.wait_us = exit_at.saturating_sub(exec_at);
        let mut init_status = None;
        if w.init_dead {
            init_status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).ok();
            self.reaped = true;
            // Every process of the pid namespace is gone with its init: drain what they wrote.
            w.output.drain(&mut w.limit_hit);
        }
        let status = self.exit_kind(&w, init_status);
        self.timings.teardown_us = mono_us() - exit_at;
        Ok(Outcome {
            status,
            stdout_bytes: w.output.written[0],
            stderr_bytes: w.output.written[1],
            timings: self.timings.clone(),
        })
    }

    /// A jail whose directory was removed under it (its state directory deleted) could no
    /// longer be started, stopped or destroyed, so it stops itself; so does a jail whose
    /// supervisor got SIGTERM (SIGTERM to its init: the jail's processes get their grace).
    fn check_jail_dir(&self, w: &mut Watch) {
        if w.jail
            && !w.jail_dir_gone
            && (super::stop_requested()
                || self.spec.persistent.as_ref().is_some_and(|d| !d.exists()))
        {
            w.jail_dir_gone = true;
            w.kill(libc::SIGTERM);
        }
    }

    /// While the command runs and no limit was met: the timeout, then (at the check interval)
    /// the cgroup's OOM kills and pids.max hits. A limit met kills the worker.
    fn check_limits(&self, w: &mut Watch) {
        if w.command_status.is_some() || w.init_dead || w.limit_hit.is_some() {
            return;
        }
        let now = mono_us();
        let mut kind = None;
        if w.deadline.is_some_and(|d| now >= d) {
            kind = Some(LimitKind::Timeout);
        } else if let (Some(cg), true) = (&self.cgroup, now >= w.next_check) {
            w.next_check = now + w.check.unwrap_or(0) * 1000;
            if w.limits.memory_bytes.is_some() && cg.oom_kills() > 0 {
                kind = Some(LimitKind::Memory);
            } else if w.limits.max_pids.is_some() && cg.pids_max_hits() > 0 {
                kind = Some(LimitKind::Pids);
            }
        }
        if let Some(k) = kind {
            w.limit_hit = Some(k);
            w.kill(libc::SIGKILL);
        }
    }

    /// How the command ended: a limit met (seen during the wait or in the cgroup's counters
    /// now), else its status as the init reported it, else the init's own.
    fn exit_kind(&self, w: &Watch, init_status: Option<WaitStatus>) -> ExitKind {
        let counted = |hit: fn(&crate::cgroup::Cgroup) -> u64| {
            self.cgroup.as_ref().is_some_and(|cg| hit(cg) > 0)
        };
        if let Some(k) = w.limit_hit {
            ExitKind::Limit(k)
        } else if w.limits.memory_bytes.is_some() && counted(crate::cgroup::Cgroup::oom_kills) {
            ExitKind::Limit(LimitKind::Memory)
        } else if w.limits.max_pids.is_some() && counted(crate::cgroup::Cgroup::pids_max_hits) {
            ExitKind::Limit(LimitKind::Pids)
        } else if let Some(st) = w.command_status {
            if libc::WIFSIGNALED(st) {
                ExitKind::Signaled(libc::WTERMSIG(st))
            } else {
                ExitKind::Exited(libc::WEXITSTATUS(st))
            }
        } else {
            match init_status {
                Some(WaitStatus::Signaled(_, sig, _)) => ExitKind::Signaled(sig as i32),
                Some(WaitStatus::Exited(_, code)) => ExitKind::Exited(code),
                _ => ExitKind::Exited(-1),
            }
        }
    }
}
