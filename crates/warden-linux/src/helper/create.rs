//! Creating the worker: the name claimed and recorded, the worker's init cloned into its
//! namespaces, its cgroups and veth made, then "go" and the init's status (timings or the error
//! that stopped it). A parked worker waits for its turn in between (`park.rs`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sched::CloneFlags;

use super::Helper;
use crate::cgroup::{self, Cgroup};
use crate::error::{Error, Result};
use crate::mounts;
use crate::netlink::Netlink;
use crate::proto::{Report, Started, CONTROL_FD, LIFELINE_FD, REPORT_FD};
use crate::reaper;
use crate::record::{self, Record};
use crate::spec::{NetworkMode, Outcome};
use crate::sys::{mono_us, pipe, Stack};
use crate::veth;
use crate::worker_init::{self, InitFds};

/// The helper's ends of the pipes to the worker's init.
struct InitPipes {
    /// "go" (one byte), or a parked worker's turn.
    go_w: OwnedFd,
    /// The init's status: timings, or the error that stopped it.
    status_r: OwnedFd,
    out_r: OwnedFd,
    err_r: OwnedFd,
    /// The command's wait status, `X <status>`.
    exit_r: OwnedFd,
}

impl Helper {
    /// Creates the worker and runs its command (after its turn, for a parked worker); returns
    /// how the command ended. What was made is recorded in `self` for the teardown.
    pub(super) fn run(&mut self) -> Result<Outcome> {
        self.spec.validate()?;
        let vnet = match &self.spec.network {
            NetworkMode::Vnet(v) => Some(v.clone()),
            _ => None,
        };
        if let Some(path) = vnet.as_ref().and_then(|v| v.host_netns.as_ref()) {
            // Single-threaded process: joining the bridge's namespace here affects only us.
            veth::enter_netns(path)?;
        }
        // The cgroup name first: another warden (another state directory) may run a worker of
        // the same name, and creating or removing our cgroups would kill its processes.
        self.claim = Some(
            cgroup::claim(&self.spec.name)?.ok_or_else(|| Error::NameInUse {
                name: self.spec.name.clone(),
            })?,
        );
        let rec = self.prepare_record(vnet.is_some())?;
        std::fs::create_dir_all(mounts::mount_base(&self.spec.state_dir)).map_err(|e| {
            Error::io(
                "create directory",
                mounts::mount_base(&self.spec.state_dir),
                e,
            )
        })?;
        let t_rec = mono_us();
        let (pid_raw, pipes) = self.clone_init()?;
        self.init_pid = Some(pid_raw);
        let t_clone = mono_us();
        self.timings.clone_us = t_clone - t_rec;
        self.publish_record(rec, pid_raw)?;
        // Cgroups are made while the init builds its root on the other core; it runs nothing
        // of the worker's before it is inside them (it waits for "go").
        let cg = Cgroup::create(&self.spec.cgroup_root, &self.spec.name, &self.spec.limits)?;
        cg.add(pid_raw)?;
        self.cgroup = Some(cg);
        let t_cg = mono_us();
        self.timings.cgroup_us = t_cg - t_clone;
        if let Some(v) = &vnet {
            let nl = self.nl.insert(Netlink::open()?);
            self.veth_created = true;
            let isolated = self.spec.persistent.is_none();
            veth::create(nl, v, &self.spec.name, pid_raw as u32, isolated)?;
            self.timings.net_host_us = mono_us() - t_cg;
        }
        // Go: the init may now configure its network and exec.
        // If the init already failed, the write fails (EPIPE) and its status says why.
        let mut go = File::from(pipes.go_w);
        let go_result = go.write_all(b"g");
        let mut status_reader = std::io::BufReader::new(File::from(pipes.status_r));
        if self.spec.parked {
            self.park(&mut status_reader, go)?;
        } else {
            drop(go);
        }
        let mut status = String::new();
        status_reader
            .read_to_string(&mut status)
            .map_err(|e| Error::sys("read the worker's init status", e))?;
        let exec_at = self.parse_status(&status)?;
        go_result.map_err(|e| Error::sys("signal the worker's init", e))?;
        self.timings.exec_us = exec_at.saturating_sub(self.started);
        if self.spec.persistent.is_some() {
            self.report_started(pid_raw);
        }
        let outcome = self.wait(pid_raw, pipes.out_r, pipes.err_r, pipes.exit_r)?;
        Ok(outcome)
    }

    /// Clones the worker's init into its new namespaces (joining a given quiet network namespace
    /// first, if any) with the pipes between the two; returns the init's pid and the helper's
    /// ends of the pipes.
    fn clone_init(&self) -> Result<(i32, InitPipes)> {
        let (go_r, go_w) = pipe()?;
        let (status_r, status_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (exit_r, exit_w) = pipe()?;
        let fds = InitFds {
            go_r: go_r.as_raw_fd(),
            status_w: status_w.as_raw_fd(),
            exit_w: exit_w.as_raw_fd(),
            stdout_w: out_w.as_raw_fd(),
            stderr_w: err_w.as_raw_fd(),
        };
        let helper_ends = [
            go_w.as_raw_fd(),
            status_r.as_raw_fd(),
            out_r.as_raw_fd(),
            err_r.as_raw_fd(),
            exit_r.as_raw_fd(),
        ];
        let mut flags = CloneFlags::CLONE_NEWNS
            | CloneFlags::CLONE_NEWPID
            | CloneFlags::CLONE_NEWUTS
            | CloneFlags::CLONE_NEWIPC;
        // A cold worker without a network may have been given a namespace that carried nothing
        // (`netns_stash`): joined here, the init inherits it instead of making one.
        let joined = self.spec.recycles_netns() && join_given_netns();
        if self.spec.network != NetworkMode::Shared && !joined {
            flags |= CloneFlags::CLONE_NEWNET;
        }
        let spec = &self.spec;
        let parked = spec.parked;
        let claim_fd = self.claim.as_ref().and_then(cgroup::Claim::raw_fd);
        let mut stack = Stack::new(1 << 20)?;
        // SAFETY: this process is single-threaded, so the child (a copy of it, no shared
        // memory) may allocate and run ordinary Rust until it execs.
        let pid = unsafe {
            nix::sched::clone(
                Box::new(move || {
                    // The init outlives the command: it must not hold the report pipe, the
                    // lifeline or the helper's stdout/stderr, or the caller would wait for its
                    // exit (the kernel's namespace teardown) to see them close.
                    for fd in helper_ends.into_iter().chain([REPORT_FD, LIFELINE_FD]) {
                        libc::close(fd);
                    }
                    // Only a parked helper has a control pipe; otherwise fd 5 may be one of
                    // the init's own pipe ends.
                    if parked {
                        libc::close(CONTROL_FD);
                    }
                    if let Some(fd) = claim_fd {
                        libc::close(fd);
                    }
                    libc::dup2(fds.stdout_w, 1);
                    libc::dup2(fds.stderr_w, 2);
                    worker_init::main(spec, fds)
                }),
                stack.as_mut_slice(),
                flags,
                Some(libc::SIGCHLD),
            )
        }
        .map_err(|e| Error::sys("clone the worker's init", e))?;
        drop((go_r, status_w, out_w, err_w, exit_w));
        Ok((
            pid.as_raw(),
            InitPipes {
                go_w,
                status_r,
                out_r,
                err_r,
                exit_r,
            },
        ))
    }
    /// Tells the caller the jail is up, then detaches from the report pipe (fd 3 stays taken by
    /// /dev/null, so no later descriptor lands on it and receives the final report).
    fn report_started(&mut self, init_pid: i32) {
        let rec = self.record.clone().unwrap_or_default();
        self.timings.report_us = mono_us() - self.started;
        let started = Started {
            owner_pid: rec.owner_pid,
            owner_start: rec.owner_start,
            init_pid,
            init_start: rec.init_start.unwrap_or(0),
            cgroups: rec.cgroups,
            veth: rec.veth,
            timings: self.timings.clone(),
        };
        // SAFETY: fd 3 is the report pipe the caller set up; if absent, the write fails harmlessly.
        let mut out = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(REPORT_FD) });
        let _ = out.write_all(&serde_json::to_vec(&Report::Started(started)).unwrap_or_default());
        if let Ok(null) = File::options().read(true).write(true).open("/dev/null") {
            // SAFETY: replacing our own descriptor 3.
            unsafe { libc::dup2(null.as_raw_fd(), REPORT_FD) };
        }
    }

    /// The worker's record, not yet written: the name must be free (a live owner's record is
    /// `NameInUse`; a crashed run's is reaped first). It is written right after the clone,
    /// naming the init — one file operation instead of a write and a rewrite. Before it exists
    /// only the init exists, and that dies with this helper (parent-death signal, or EOF on its
    /// go pipe) and its mounts with its namespace.
    fn prepare_record(&mut self, vnet: bool) -> Result<Record> {
        let me = std::process::id() as i32;
        let rec = Record {
            name: self.spec.name.clone(),
            owner_pid: me,
            owner_start: record::process_start(me).unwrap_or(0),
            init_pid: None,
            init_start: None,
            cgroups: cgroup::paths_for(&self.spec.cgroup_root, &self.spec.name),
            veth: vnet.then(|| veth::host_ifname(&self.spec.name)),
            host_netns: match &self.spec.network {
                NetworkMode::Vnet(v) => v.host_netns.clone(),
                _ => None,
            },
            dirs: Vec::new(),
        };
        let path = record::record_path(&self.spec.state_dir, &self.spec.name);
        if let Ok(old) = Record::load(&path) {
            if old.owner_alive() {
                return Err(Error::NameInUse {
                    name: self.spec.name.clone(),
                });
            }
            // A crashed run left it: clean up what it held, then the name is ours.
            reaper::reap_record(&self.spec.state_dir, &old)?;
        }
        Ok(rec)
    }

    /// Writes the record once the init exists; a record that appeared meanwhile means another
    /// live helper won the name: our init is killed and the name given up.
    fn publish_record(&mut self, mut rec: Record, init_pid: i32) -> Result<()> {
        rec.init_pid = Some(init_pid);
        rec.init_start = record::process_start(init_pid);
        let path = record::record_path(&self.spec.state_dir, &self.spec.name);
        match rec.create(&self.spec.state_dir) {
            Ok(()) => {
                self.record = Some(rec);
                Ok(())
            }
            Err(e) => {
                // SAFETY: killing and reaping our own child, which has run nothing yet.
                unsafe { libc::kill(init_pid, libc::SIGKILL) };
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(init_pid), None);
                self.reaped = true;
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    return Err(Error::NameInUse {
                        name: self.spec.name.clone(),
                    });
                }
                Err(Error::io("create", &path, e))
            }
        }
    }

    fn parse_status(&mut self, status: &str) -> Result<u64> {
        let mut exec_at = None;
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix("T ") {
                let v: Vec<u64> = rest.split(' ').filter_map(|x| x.parse().ok()).collect();
                if v.len() == 3 {
                    self.timings.mounts_us = v[0];
                    self.timings.net_worker_us = v[1];
                    exec_at = Some(v[2]);
                }
            } else if let Some(msg) = line.strip_prefix("E ") {
                return Err(Error::Setup {
                    name: self.spec.name.clone(),
                    message: msg.to_string(),
                });
            }
        }
        exec_at.ok_or_else(|| Error::Setup {
            name: self.spec.name.clone(),
            message: "the worker's init died before exec".into(),
        })
    }
}

/// Joins the network namespace on descriptor 5 if it is one (a cold helper's control slot, otherwise
/// closed), then closes it. `NS_GET_NSTYPE` tells a namespace from anything else.
fn join_given_netns() -> bool {
    const NS_GET_NSTYPE: libc::c_ulong = 0xb703;
    // SAFETY: an ioctl that only reads the type of whatever descriptor 5 is; fails if it is none.
    let kind = unsafe { libc::ioctl(CONTROL_FD, NS_GET_NSTYPE as _) };
    if kind != libc::CLONE_NEWNET {
        return false;
    }
    // SAFETY: joining the namespace on a descriptor we were given; this process is single-threaded.
    let joined = unsafe { libc::setns(CONTROL_FD, libc::CLONE_NEWNET) } == 0;
    // SAFETY: the descriptor is ours and no longer needed.
    unsafe { libc::close(CONTROL_FD) };
    joined
}
