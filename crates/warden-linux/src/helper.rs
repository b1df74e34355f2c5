//! The helper: `<exe> __worker <spec-json> <start-us>`, a small single-threaded process that
//! `run` re-execs for every worker (forking from a multi-threaded caller is unsafe).
//!
//! It owns the worker from start to end: record, cgroups, clone of the init, veth, the wait
//! (limits, output pumping), and — after it has sent the outcome — the teardown, which is
//! therefore off the caller's critical path.
//!
//! Descriptors: 0 is the worker's stdin; 1/2 receive the worker's output (pumped, counted);
//! 3 is the report pipe to `run`; 4 is the lifeline (EOF/HUP = the caller is gone: kill).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

use crate::cgroup::{self, Cgroup};
use crate::error::{Error, Result};
use crate::mounts;
use crate::namespaces::{self, mono_us, InitFds};
use crate::netlink::Netlink;
use crate::reaper;
use crate::record::{self, Record};
use crate::spec::{ExitKind, LimitKind, NetworkMode, Outcome, Timings, WorkerSpec};
use crate::veth;

/// The argv[1] that selects the helper.
pub const HELPER_ARG: &str = "__worker";
pub(crate) const REPORT_FD: RawFd = 3;
pub(crate) const LIFELINE_FD: RawFd = 4;
/// A parked helper's control pipe: the pool writes one [`Turn`] (JSON) and closes it; EOF with
/// nothing written means the worker is discarded.
pub(crate) const CONTROL_FD: RawFd = 5;
/// The byte a parked helper writes on the report pipe once its worker is parked (before the
/// JSON report, which never starts with it).
pub(crate) const PARKED_BYTE: u8 = b'R';
/// How often a jail's supervisor checks that the jail's directory still exists.
const JAIL_DIR_CHECK_MS: i64 = 1000;

/// What the helper tells `run`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Report {
    /// The command ended; `netns_from`: the init (alive until the lifeline drops) of a worker whose
    /// network namespace carried nothing and may serve the next cold worker (`netns_stash`).
    Done {
        outcome: Outcome,
        #[serde(default)]
        netns_from: Option<i32>,
    },
    /// A persistent jail is up; its helper stays as its supervisor.
    Started(Started),
    /// Another live worker holds the name (kept apart: callers may retry with another name).
    NameInUse,
    Failed(String),
}

/// Entry of the re-exec'd helper; call it when `argv[1] == "__worker"`. Never returns.
pub fn helper_main() -> ! {
    let args: Vec<String> = std::env::args().collect();
    match args.get(2).map(String::as_str) {
        Some(crate::jail_exec::EXEC_ARG) => {
            crate::jail_exec::exec_main(args.get(3).map(String::as_str))
        }
        Some(crate::zygote::ZYGOTE_ARG) => crate::zygote::zygote_main(),
        _ => std::process::exit(run_helper(&args)),
    }
}

/// The helper proper, for `args` = `[exe, "__worker", spec-json, start-us]`; returns its exit
/// code. Runs in a re-exec'd process or in a child forked from a single-threaded one (the
/// zygote, a CLI) with descriptors 0–5 in place.
pub(crate) fn run_helper(args: &[String]) -> i32 {
    // The caller decides the worker's fate (lifeline); terminal signals must not kill the
    // helper half-way and leave resources behind.
    ignore_terminal_signals();
    for fd in [REPORT_FD, LIFELINE_FD, CONTROL_FD] {
        // Keep these out of the worker.
        // SAFETY: fcntl on a descriptor number; fails harmlessly if it is not open.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let started = mono_us();
    let caller_start: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(started);
    let spec: std::result::Result<WorkerSpec, String> = args
        .get(2)
        .ok_or_else(|| "missing spec argument".to_string())
        .and_then(|s| serde_json::from_str(s).map_err(|e| format!("failed to decode spec: {e}")));
    if spec.as_ref().is_ok_and(|s| s.persistent.is_some()) {
        detach();
    }
    if spec.as_ref().is_ok_and(|s| s.parked) {
        // Parking is background work: never in the way of a running turn (sched.rs).
        crate::sched::idle(0);
    }
    // Opened now: at the end it replaces our stdout/stderr right when the caller waits.
    let null = File::options().write(true).open("/dev/null");
    let (report, helper) = match spec {
        Err(msg) => (Report::Failed(msg), None),
        Ok(spec) => {
            let mut h = Helper::new(spec, started);
            h.timings.spawn_us = started.saturating_sub(caller_start);
            let r = match h.run() {
                Ok(mut o) => {
                    // From the helper's start, or for a parked worker from its turn's arrival.
                    o.timings.report_us = mono_us() - h.started;
                    let netns_from = h.init_pid.filter(|pid| {
                        h.spec.recycles_netns() && crate::netns_stash::pristine(*pid)
                    });
                    Report::Done {
                        outcome: o,
                        netns_from,
                    }
                }
                Err(Error::NameInUse { .. }) => Report::NameInUse,
                Err(e) => Report::Failed(error_chain(&e)),
            };
            (r, Some(h))
        }
    };
    // Close our copies of the output so the caller sees EOF, then report.
    if let Ok(null) = null {
        // SAFETY: dup2 onto our own stdout/stderr.
        unsafe {
            libc::dup2(null.as_raw_fd(), 1);
            libc::dup2(null.as_raw_fd(), 2);
        }
    }
    // SAFETY: fd 3 is the report pipe the caller set up; if absent, the write fails harmlessly.
    let mut out = unsafe { File::from_raw_fd(REPORT_FD) };
    let _ = out.write_all(&serde_json::to_vec(&report).unwrap_or_default());
    drop(out);
    // The caller drops the lifeline once it has the report: tear down after that, so the
    // teardown (the init's exit destroys the namespaces) does not take the CPU the caller needs.
    wait_hangup(LIFELINE_FD, 1000);
    // SAFETY: the lifeline is no longer needed.
    unsafe { libc::close(LIFELINE_FD) };
    match helper {
        // A helper that lost the name owns nothing and must not touch the winner's record.
        Some(_) if matches!(report, Report::NameInUse) => 0,
        Some(mut h) => match h.teardown() {
            Ok(()) => 0,
            Err(_) => 1,
        },
        None => 2,
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

/// How long a worker's init may take to exit in the idle class before it is moved back to the
/// normal one (see `Helper::teardown`).
const IDLE_EXIT_MS: i32 = 50;

/// Waits until the writer of pipe `fd` is gone (EOF), at most `timeout_ms`; returns at once if
/// `fd` is not open.
fn wait_hangup(fd: RawFd, timeout_ms: i32) {
    // SAFETY: F_GETFD only asks whether the descriptor is open.
    if unsafe { libc::fcntl(fd, libc::F_GETFD) } >= 0 {
        wait_readable(fd, timeout_ms);
    }
}

/// Whether `fd` (a pipe, a pidfd) became readable within `timeout_ms`.
fn wait_readable(fd: RawFd, timeout_ms: i32) -> bool {
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

/// A jail's helper outlives the command that started it, as the jail's supervisor: fork so the
/// caller reaps its child at once and the supervisor is adopted by init, in a session of its own
/// (no terminal signals). The report pipe goes with the supervisor.
fn detach() {
    // SAFETY: the helper is single-threaded; the parent leaves with _exit at once.
    match unsafe { libc::fork() } {
        0 => {
            // SAFETY: setsid in the new child, which is not a group leader; then fd 4 (no
            // lifeline here) is taken by /dev/null so no pipe lands on the number the init
            // closes as the lifeline.
            unsafe {
                libc::setsid();
                if libc::fcntl(LIFELINE_FD, libc::F_GETFD) < 0 {
                    let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                    if null >= 0 && null != LIFELINE_FD {
                        libc::dup3(null, LIFELINE_FD, libc::O_CLOEXEC);
                        libc::close(null);
                    }
                }
            }
        }
        pid if pid > 0 => {
            // SAFETY: leaving without destructors; the child owns everything now.
            unsafe { libc::_exit(0) }
        }
        _ => {} // fork failed: supervise from here, still correct, only not detached.
    }
}

/// An error with its causes, on one line (`a: b: c`).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    msg
}

/// What a jail's helper reports once the jail is up: who holds it, for `jail.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    /// The supervising helper.
    pub owner_pid: i32,
    pub owner_start: u64,
    /// The jail's init: pid 1 of its namespaces, the target of `setns` and SIGTERM.
    pub init_pid: i32,
    pub init_start: u64,
    pub cgroups: Vec<std::path::PathBuf>,
    pub veth: Option<String>,
    pub timings: Timings,
}

struct Helper {
    spec: WorkerSpec,
    started: u64,
    timings: Timings,
    record: Option<Record>,
    cgroup: Option<Cgroup>,
    init_pid: Option<i32>,
    /// A parked worker's command process (pid 2), found at park time.
    command_pid: Option<i32>,
    reaped: bool,
    veth_created: bool,
    nl: Option<Netlink>,
    /// The host-wide claim on the cgroup name, held until the cgroups are gone.
    claim: Option<cgroup::Claim>,
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

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::sys("create a pipe", e))
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl flag update on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

impl Helper {
    fn new(spec: WorkerSpec, started: u64) -> Self {
        Helper {
            spec,
            started,
            timings: Timings::default(),
            record: None,
            cgroup: None,
            init_pid: None,
            command_pid: None,
            reaped: false,
            veth_created: false,
            nl: None,
            claim: None,
        }
    }

    fn run(&mut self) -> Result<Outcome> {
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
                    namespaces::init_main(spec, fds)
                }),
                stack.as_mut_slice(),
                flags,
                Some(libc::SIGCHLD),
            )
        }
        .map_err(|e| Error::sys("clone the worker's init", e))?;
        drop((go_r, status_w, out_w, err_w, exit_w));
        let pid_raw = pid.as_raw();
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
        let mut go = File::from(go_w);
        let go_result = go.write_all(b"g");
        let mut status_reader = std::io::BufReader::new(File::from(status_r));
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
        let outcome = self.wait(pid_raw, out_r, err_r, exit_r)?;
        Ok(outcome)
    }

    /// A parked worker: waits for the init to say it is ready, tells the pool (one byte on the
    /// report pipe), waits for the turn on the control pipe and hands it to the init. From here
    /// on the worker runs like a cold one, timed from the turn's arrival.
    fn park(&mut self, status: &mut std::io::BufReader<File>, mut go: File) -> Result<()> {
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

    fn setup_err(&self, message: &str) -> Error {
        Error::Setup {
            name: self.spec.name.clone(),
            message: message.to_string(),
        }
    }

    /// Blocks until the pool sends the turn, or gives up on the worker: the pool closed the
    /// control pipe without a turn or the lifeline (discarded), or the init died.
    fn wait_turn(&mut self) -> Result<crate::spec::Turn> {
        let pid = self.init_pid.unwrap_or(0);
        let pidfd = crate::spawn::pidfd_open(pid)
            .map_err(|e| Error::sys("open a pidfd for the worker", e))?;
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

    /// Pumps output and enforces limits until the command ends (the init reports its status)
    /// or the init dies (killed at a limit); returns the outcome. The init's own exit — and
    /// with it the kernel's namespace teardown — is left to `teardown`.
    fn wait(
        &mut self,
        pid: i32,
        out_r: OwnedFd,
        err_r: OwnedFd,
        exit_r: OwnedFd,
    ) -> Result<Outcome> {
        let exec_at = self.started + self.timings.exec_us;
        let pidfd = crate::spawn::pidfd_open(pid)
            .map_err(|e| Error::sys("open a pidfd for the worker", e))?;
        set_nonblocking(out_r.as_raw_fd());
        set_nonblocking(err_r.as_raw_fd());
        let limits = self.spec.limits.clone();
        let deadline = limits.timeout_ms.map(|ms| self.started + ms * 1000);
        // OOM and pids.max are checked by polling the cgroup counters at this interval. A jail
        // lives on when one of its processes meets a limit (the kernel refuses or kills that one),
        // and has no lifeline: it outlives the command that started it.
        let jail = self.spec.persistent.is_some();
        let check = (!jail && (limits.memory_bytes.is_some() || limits.max_pids.is_some()))
            .then_some(10u64);
        // Counters are read at that interval, not at every wake-up (output, the command's end).
        let mut next_check = mono_us() + check.unwrap_or(0) * 1000;
        let lifeline_open = !jail && {
            // SAFETY: F_GETFD only inspects the descriptor.
            unsafe { libc::fcntl(LIFELINE_FD, libc::F_GETFD) >= 0 }
        };
        let mut streams = [Some(out_r), Some(err_r)];
        let mut written = [0u64; 2];
        let mut limit_hit: Option<LimitKind> = None;
        let mut buf = vec![0u8; 16384];
        let cap = limits.output_bytes;
        let mut exit_pipe = Some(File::from(exit_r));
        let mut command_status: Option<i32> = None;
        let mut init_dead = false;
        let mut jail_dir_gone = false;
        // Ends when the command's status is known and its output is drained, or the init is dead.
        let mut drain_deadline: Option<u64> = None;
        loop {
            let output_open = streams.iter().any(Option::is_some);
            if init_dead || (command_status.is_some() && !output_open) {
                break;
            }
            if drain_deadline.is_some_and(|d| mono_us() >= d) {
                break;
            }
            let mut pfds = vec![libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            if let Some(f) = &exit_pipe {
                pfds.push(libc::pollfd {
                    fd: f.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            for s in streams.iter().flatten() {
                pfds.push(libc::pollfd {
                    fd: s.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            if lifeline_open {
                pfds.push(libc::pollfd {
                    fd: LIFELINE_FD,
                    events: libc::POLLIN,
                    revents: 0,
                });
            }
            let now = mono_us();
            let mut timeout_ms: i64 = -1;
            if let Some(d) = deadline {
                timeout_ms = (d.saturating_sub(now) / 1000 + 1) as i64;
            }
            if let Some(c) = check {
                timeout_ms = if timeout_ms < 0 {
                    c as i64
                } else {
                    timeout_ms.min(c as i64)
                };
            }
            if limit_hit.is_some() || drain_deadline.is_some() {
                timeout_ms = 50;
            }
            if jail {
                timeout_ms = JAIL_DIR_CHECK_MS;
            }
            // SAFETY: pfds is a valid array of pollfd for the call.
            let n = unsafe {
                libc::poll(
                    pfds.as_mut_ptr(),
                    pfds.len() as libc::nfds_t,
                    timeout_ms as i32,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::sys("poll the worker", e));
            }
            for p in &pfds[1..] {
                if p.revents == 0 {
                    continue;
                }
                if p.fd == LIFELINE_FD {
                    // The caller is gone: nobody wants the result; kill and clean up.
                    limit_hit.get_or_insert(LimitKind::Timeout);
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    continue;
                }
                if exit_pipe.as_ref().is_some_and(|f| f.as_raw_fd() == p.fd) {
                    let mut line = String::new();
                    let _ = exit_pipe.take().map(|mut f| f.read_to_string(&mut line));
                    command_status = line.trim().strip_prefix("X ").and_then(|v| v.parse().ok());
                    // The init kills what is left right after reporting; allow a moment for
                    // their output, no more.
                    drain_deadline = Some(mono_us() + 2_000_000);
                    continue;
                }
                let idx = usize::from(streams[1].as_ref().is_some_and(|s| s.as_raw_fd() == p.fd));
                if self.pump(
                    &mut streams,
                    idx,
                    &mut buf,
                    &mut written,
                    cap,
                    &mut limit_hit,
                ) && limit_hit == Some(LimitKind::Output)
                {
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            if pfds[0].revents != 0 {
                init_dead = true;
            }
            if jail && !jail_dir_gone && self.spec.persistent.as_ref().is_some_and(|d| !d.exists())
            {
                // The jail's directory was removed under it (its state directory deleted): nothing
                // could start, stop or destroy it any more, so it stops itself.
                jail_dir_gone = true;
                // SAFETY: signalling our own child, the jail's init.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            if command_status.is_none() && !init_dead && limit_hit.is_none() {
                let now = mono_us();
                let mut kind = None;
                if deadline.is_some_and(|d| now >= d) {
                    kind = Some(LimitKind::Timeout);
                } else if let (Some(cg), true) = (&self.cgroup, now >= next_check) {
                    next_check = now + check.unwrap_or(0) * 1000;
                    if limits.memory_bytes.is_some() && cg.oom_kills() > 0 {
                        kind = Some(LimitKind::Memory);
                    } else if limits.max_pids.is_some() && cg.pids_max_hits() > 0 {
                        kind = Some(LimitKind::Pids);
                    }
                }
                if let Some(k) = kind {
                    limit_hit = Some(k);
                    // Killing pid 1 of the namespace kills every process in it.
                    // SAFETY: signalling our own child.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        let exit_at = mono_us();
        self.timings.wait_us = exit_at.saturating_sub(exec_at);
        let mut init_status = None;
        if init_dead {
            init_status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).ok();
            self.reaped = true;
            // Every process of the pid namespace is gone with its init: drain what they wrote.
            for idx in 0..2 {
                while self.pump(
                    &mut streams,
                    idx,
                    &mut buf,
                    &mut written,
                    cap,
                    &mut limit_hit,
                ) {}
            }
        }
        let status = if let Some(k) = limit_hit {
            ExitKind::Limit(k)
        } else if self
            .cgroup
            .as_ref()
            .is_some_and(|cg| limits.memory_bytes.is_some() && cg.oom_kills() > 0)
        {
            ExitKind::Limit(LimitKind::Memory)
        } else if self
            .cgroup
            .as_ref()
            .is_some_and(|cg| limits.max_pids.is_some() && cg.pids_max_hits() > 0)
        {
            ExitKind::Limit(LimitKind::Pids)
        } else if let Some(st) = command_status {
            if libc::WIFSIGNALED(st) {
                ExitKind::Signaled(libc::WTERMSIG(st))
            } else {
                ExitKind::Exited(libc::WEXITSTATUS(st))
            }
        } else {
            match init_status {
                Some(nix::sys::wait::WaitStatus::Signaled(_, sig, _)) => {
                    ExitKind::Signaled(sig as i32)
                }
                Some(nix::sys::wait::WaitStatus::Exited(_, code)) => ExitKind::Exited(code),
                _ => ExitKind::Exited(-1),
            }
        };
        self.timings.teardown_us = mono_us() - exit_at;
        Ok(Outcome {
            status,
            stdout_bytes: written[0],
            stderr_bytes: written[1],
            timings: self.timings.clone(),
        })
    }

    /// Reads once from stream `idx` and forwards to our fd 1 or 2 within the output cap.
    /// Returns false at EOF or when nothing was available.
    fn pump(
        &self,
        streams: &mut [Option<OwnedFd>; 2],
        idx: usize,
        buf: &mut [u8],
        written: &mut [u64; 2],
        cap: Option<u64>,
        limit_hit: &mut Option<LimitKind>,
    ) -> bool {
        let Some(fd) = streams[idx].as_ref() else {
            return false;
        };
        // SAFETY: reading into our buffer from a descriptor we own.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            streams[idx] = None;
            return false;
        }
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                streams[idx] = None;
            }
            return false;
        }
        let mut n = n as u64;
        if let Some(cap) = cap {
            let total = written[0] + written[1];
            if total + n > cap {
                n = cap.saturating_sub(total);
                limit_hit.get_or_insert(LimitKind::Output);
            }
        }
        let mut out = &buf[..n as usize];
        while !out.is_empty() {
            // SAFETY: writing our buffer to our own stdout/stderr.
            let w = unsafe { libc::write(idx as i32 + 1, out.as_ptr().cast(), out.len()) };
            if w <= 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            out = &out[w as usize..];
        }
        written[idx] += n;
        true
    }

    /// Releases everything the worker held. Runs after the outcome was sent.
    fn teardown(&mut self) -> Result<()> {
        let mut first_err: Option<Error> = None;
        if let (Some(pid), false) = (self.init_pid, self.reaped) {
            // The init waits for this after the command's end, or is stuck if setup failed:
            // either way it is done. Its exit is where the kernel drops the worker's mounts and
            // namespaces (≈ 0.2 ms of CPU). It exits in the idle class so that it yields to what
            // the host runs now (the caller that just got the report), but for at most
            // IDLE_EXIT_MS: under a sustained load it would starve and teardowns pile up.
            let pidfd = crate::spawn::pidfd_open(pid).ok();
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
