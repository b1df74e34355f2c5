//! Releasing what the worker held, after the outcome was sent: the init's exit (and with it the
//! kernel's namespace teardown), the cgroups, the cgroup name's claim, the veth, the record.

use std::os::fd::AsRawFd;
use std::time::Duration;

use super::Helper;
use crate::cgroup;
use crate::error::{Error, Result};
use crate::netlink::Netlink;
use crate::record::Record;
use crate::sys::{pidfd_open, wait_readable};
use crate::veth;

/// How long a worker's init may take to exit in the idle class before it is moved back to the
/// normal one (see `Helper::teardown`).
const IDLE_EXIT_MS: i32 = 50;

impl Helper {
    /// Releases everything the worker held. Runs after the outcome was sent.
    pub(super) fn teardown(&mut self) -> Result<()> {
        let mut first_err: Option<Error> = None;
        if let (Some(pid), false) = (self.init_pid, self.reaped) {
            // The init waits for this after the command's end, or is stuck if setup failed:
            // either way it is done. Its exit is where the kernel drops the worker's mounts and
            // namespaces (≈ 0.2 ms of CPU). It exits in the idle class so that it yields to what
            // the host runs now (the caller that just got the report), but for at most
            // IDLE_EXIT_MS: under a sustained load it would starve and teardowns pile up.
            let pidfd = pidfd_open(pid).ok();
            crate::sched::idle(pid);
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            if let Some(fd) = &pidfd {
                if !wait_readable(fd.as_raw_fd(), IDLE_EXIT_MS) {
                    crate::sched::normal(pid);
                }
            }
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
        // The record's list, not `self.cgroup`: a create that failed half-way left some.
        let cgroups = self
            .record
            .as_ref()
            .map(|r| r.cgroups.clone())
            .unwrap_or_default();
        for dir in &cgroups {
            if let Err(e) = cgroup::remove_dir(dir) {
                first_err.get_or_insert(e);
            }
        }
        if first_err.is_none() {
            if let Some(c) = self.claim.take() {
                c.release();
            }
        }
        if self.veth_created {
            let host = veth::host_ifname(&self.spec.name);
            let nl = match self.nl.take() {
                Some(nl) => Ok(nl),
                None => Netlink::open(),
            };
            if let Err(e) =
                nl.and_then(|mut nl| veth::wait_gone(&mut nl, &host, Duration::from_secs(2)))
            {
                first_err.get_or_insert(e);
            }
        }
        if self.record.is_some() && first_err.is_none() {
            Record::remove(&self.spec.state_dir, &self.spec.name)?;
        }
        first_err.map_or(Ok(()), Err)
    }
}
