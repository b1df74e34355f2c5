//! A parked worker: built up to its command, waiting for the pool's turn on the control pipe.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};

use super::Helper;
use crate::error::{Error, Result};
use crate::proto::{CONTROL_FD, LIFELINE_FD, PARKED_BYTE, REPORT_FD};
use crate::spec::Turn;
use crate::sys::{mono_us, pidfd_open};

impl Helper {
    /// A parked worker: waits for the init to say it is ready, tells the pool (one byte on the
    /// report pipe), waits for the turn on the control pipe and hands it to the init. From here
    /// on the worker runs like a cold one, timed from the turn's arrival.
    pub(super) fn park(
        &mut self,
        status: &mut std::io::BufReader<File>,
        mut go: File,
    ) -> Result<()> {
        use std::io::BufRead;
        let mut line = String::new();
        loop {
            line.clear();
            let n = status
                .read_line(&mut line)
                .map_err(|e| Error::sys("read the worker's init status", e))?;
            if n == 0 {
                return Err(self.setup_err("the worker's init died before parking"));
            }
            if line.starts_with('P') {
                break;
            }
            if let Some(msg) = line.trim_end().strip_prefix("E ") {
                return Err(self.setup_err(msg));
            }
        }
        // Found now so the turn's arrival and end do not have to look them up.
        if let Some(cg) = &self.cgroup {
            cg.open_counters();
        }
        self.command_pid = self.init_pid.and_then(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
                .ok()?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        });
        // SAFETY: writing one byte to the report pipe the caller set up.
        if unsafe { libc::write(REPORT_FD, [PARKED_BYTE].as_ptr().cast(), 1) } != 1 {
            return Err(Error::sys(
                "tell the pool the worker is parked",
                std::io::Error::last_os_error(),
            ));
        }
        let turn = self.wait_turn()?;
        let received = mono_us();
        // The turn's processes run at normal priority from here (the pool moved this helper
        // before sending the turn, so its own wake-up did not wait).
        for pid in [self.init_pid, self.command_pid].into_iter().flatten() {
            crate::sched::normal(pid);
        }
        turn.validate(&self.spec.name)?;
        if turn.limits != self.spec.limits {
            if let Some(cg) = &mut self.cgroup {
                if turn.limits.cpu.is_some() {
                    let (Some(init), Some(command)) = (self.init_pid, self.command_pid) else {
                        return Err(Error::Setup {
                            name: self.spec.name.clone(),
                            message: "the parked worker's processes are unknown, so its CPU \
                                      limit cannot be applied"
                                .into(),
                        });
                    };
                    cg.ensure_cpu(&self.spec.cgroup_root, &self.spec.name, &[init, command])?;
                }
                cg.set_limits(&turn.limits)?;
            }
        }
        turn.apply(&mut self.spec);
        self.started = received;
        self.timings.spawn_us = received.saturating_sub(turn.sent_us.min(received));
        let body = serde_json::to_vec(&turn).map_err(|e| Error::Json {
            op: "encode turn",
            source: e,
        })?;
        // The init reads the turn to EOF, so the pipe is closed right after.
        go.write_all(&body)
            .map_err(|e| Error::sys("hand the turn to the worker's init", e))?;
        Ok(())
    }

    /// Blocks until the pool sends the turn, or gives up on the worker: the pool closed the
    /// control pipe without a turn or the lifeline (discarded), or the init died.
    fn wait_turn(&mut self) -> Result<Turn> {
        let pid = self.init_pid.unwrap_or(0);
        let pidfd = pidfd_open(pid).map_err(|e| Error::sys("open a pidfd for the worker", e))?;
        loop {
            let mut pfds = [
                libc::pollfd {
                    fd: CONTROL_FD,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: LIFELINE_FD,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: pfds is a valid pollfd array.
            let n = unsafe { libc::poll(pfds.as_mut_ptr(), 3, -1) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::sys("wait for a turn", e));
            }
            if pfds[2].revents != 0 {
                // Say how it ended: a signal means something outside killed it.
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                self.reaped = true;
                return Err(self.setup_err(&format!(
                    "the parked worker's init died while parked ({st:?})"
                )));
            }
            if pfds[1].revents != 0 {
                return Err(self.setup_err("discarded while parked (the pool is gone)"));
            }
            if pfds[0].revents != 0 {
                // SAFETY: fd 5 is the control pipe the pool set up; ManuallyDrop keeps it open
                // for the descriptor table (it is closed below, once read).
                let mut control =
                    std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(CONTROL_FD) });
                // Sized for a whole turn: read_to_end would otherwise read it in small pieces.
                let mut body = Vec::with_capacity(4096);
                let read = control.read_to_end(&mut body);
                // SAFETY: closing our own descriptor; it is not used again.
                unsafe { libc::close(CONTROL_FD) };
                read.map_err(|e| Error::sys("read the turn", e))?;
                if body.is_empty() {
                    return Err(self.setup_err("discarded while parked"));
                }
                return serde_json::from_slice(&body).map_err(|e| Error::Json {
                    op: "decode turn",
                    source: e,
                });
            }
        }
    }
}
