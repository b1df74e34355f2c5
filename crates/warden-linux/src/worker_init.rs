//! The worker's init: the code that runs in the cloned child (pid 1 of the new pid namespace,
//! already inside its new mount, uts, ipc and net namespaces), builds its world, drops every
//! privilege and execs the command.
//!
//! It runs in a copy of the single-threaded helper, so allocating is fine; it reports to the
//! helper over a close-on-exec pipe: timings just before `execve`, or the error that stopped it.

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, RawFd};
use std::path::Path;

use crate::error::{Error, Result};
use crate::mounts;
use crate::netlink::Netlink;
use crate::spec::{NetworkMode, Turn, WorkerSpec};
use crate::sys::mono_us;

/// File descriptors the init inherits from the helper.
#[derive(Debug, Clone, Copy)]
pub struct InitFds {
    /// Read end: the helper writes one byte once cgroups and the veth are in place.
    pub go_r: RawFd,
    /// Write end (close-on-exec): timings or an error for the helper.
    pub status_w: RawFd,
    /// Write end (close-on-exec): the command's wait status, `X <status>`, when it ends.
    pub exit_w: RawFd,
    pub stdout_w: RawFd,
    pub stderr_w: RawFd,
}

/// Writes one status line in a single `write` (a line written piecemeal wakes the helper once
/// per piece, and each wake-up preempts the writer on a small host).
fn say(status: &mut std::fs::File, line: std::fmt::Arguments<'_>) {
    let _ = status.write_all(format!("{line}\n").as_bytes());
}

/// Entry of the cloned child, pid 1 of the worker. Builds the worker, starts the command
/// (pid 2, unprivileged) and stays as its reaper: when the command ends it reports the status
/// at once, kills and reaps whatever is left, and waits for the helper to kill it once the
/// caller has the report — so the namespace teardown that the kernel does at this exit is off
/// the caller's critical path. Keeping the command off pid 1 also gives it ordinary signal
/// semantics (pid 1 ignores signals it has no handler for).
pub fn main(spec: &WorkerSpec, fds: InitFds) -> isize {
    // SAFETY: status_w is a pipe end the helper gave to this process alone.
    let mut status = unsafe { std::fs::File::from_raw_fd(fds.status_w) };
    let (mounts_us, net_us) = match init_steps(spec, fds) {
        Ok(t) => t,
        Err(e) => {
            let err = crate::error::error_chain(&e).replace('\n', " ");
            say(&mut status, format_args!("E {err}"));
            return 127;
        }
    };
    if spec.persistent.is_some() {
        // A jail: up now. No command; this process stays as the jail's init. It keeps exit_w
        // open (never written) so the helper sees the pipe close only when the init is gone.
        say(
            &mut status,
            format_args!("T {mounts_us} {net_us} {}", mono_us()),
        );
        drop(status);
        // SAFETY: pointing our stdio at the jail's /dev/null and closing the output pipes,
        // so no reader waits on them.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            for fd in [0, 1, 2] {
                if null >= 0 {
                    libc::dup2(null, fd);
                }
            }
            if null > 2 {
                libc::close(null);
            }
            libc::close(fds.stdout_w);
            libc::close(fds.stderr_w);
        }
        return crate::jail_init::serve();
    }
    let parked = spec.parked;
    let child = if parked {
        // A parked worker forks its command process (pid 2) now, at park time; pid 2 does what
        // does not depend on the turn, then waits for its turn on the go pipe, so a turn is one
        // pipe write, a change of user and an exec.
        // SAFETY: the init is single-threaded (a copy of the single-threaded helper).
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Child) => {
                command_main(spec, fds, &mut status, (mounts_us, net_us))
            }
            Ok(nix::unistd::ForkResult::Parent { child }) => Ok(child.as_raw()),
            Err(e) => Err(e),
        }
    } else {
        // A cold worker's command execs at once: it borrows the init's memory until then
        // (CLONE_VM | CLONE_VFORK: the init waits) instead of copying it, which cost a page-table
        // copy, copy-on-write faults and, at its exec, the copy's teardown.
        let mut stack = match crate::sys::Stack::new(256 << 10) {
            Ok(s) => s,
            Err(e) => {
                say(&mut status, format_args!("E {e}"));
                return 127;
            }
        };
        let status_ref = &mut status;
        // SAFETY: the child runs on its own stack and the init is suspended until the child
        // execs or exits, so nothing else touches the memory they share meanwhile; the child
        // never returns (it execs or _exits). Signal handlers and descriptors are the child's
        // own (no CLONE_SIGHAND, no CLONE_FILES).
        unsafe {
            nix::sched::clone(
                Box::new(|| command_main(spec, fds, status_ref, (mounts_us, net_us))),
                stack.as_mut_slice(),
                nix::sched::CloneFlags::CLONE_VM | nix::sched::CloneFlags::CLONE_VFORK,
                Some(libc::SIGCHLD),
            )
        }
        .map(nix::unistd::Pid::as_raw)
    };
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            say(
                &mut status,
                format_args!("E failed to start the command: {e}"),
            );
            return 127;
        }
    };
    if parked {
        // Ready: the command process is forked and waits for its turn.
        say(&mut status, format_args!("P"));
    }
    drop(status);
    // SAFETY: closing the init's copies of the worker's stdio and of the go pipe (pid 2 has its
    // own).
    unsafe {
        for fd in [0, 1, 2, fds.stdout_w, fds.stderr_w] {
            libc::close(fd);
        }
        if parked {
            libc::close(fds.go_r);
        }
    }
    reap_until(child, fds.exit_w)
}

/// The command process (pid 2): its stdio, privileges and signals, for a parked worker the
/// turn, then the exec. Never returns: on any failure it reports `E …` and exits 127.
fn command_main(
    spec: &WorkerSpec,
    fds: InitFds,
    status: &mut std::fs::File,
    (mounts_us, net_us): (u64, u64),
) -> ! {
    let prepared = command_prepare(fds);
    let turn_spec;
    let spec = if spec.parked && prepared.is_ok() {
        match read_turn(fds.go_r) {
            Ok(turn) => {
                let mut s = spec.clone();
                turn.apply(&mut s);
                turn_spec = s;
                &turn_spec
            }
            Err(e) => {
                let err = crate::error::error_chain(&e).replace('\n', " ");
                say(status, format_args!("E {err}"));
                // SAFETY: leave without running the init's destructors in the child.
                unsafe { libc::_exit(127) }
            }
        }
    } else {
        spec
    };
    let err = match prepared.and_then(|()| command_identity(spec)) {
        Ok(()) => {
            say(status, format_args!("T {mounts_us} {net_us} {}", mono_us()));
            exec(&spec.argv, &spec.env)
        }
        Err(e) => crate::error::error_chain(&e),
    };
    let err = err.replace('\n', " ");
    say(status, format_args!("E {err}"));
    // SAFETY: leave without running the init's destructors in the child.
    unsafe { libc::_exit(127) }
}

/// Reads a parked worker's [`Turn`]: the helper writes it on the go pipe, then closes it.
fn read_turn(go_r: RawFd) -> Result<Turn> {
    // SAFETY: go_r is a pipe end the helper gave to this process alone; the File owns it now.
    let mut pipe = unsafe { std::fs::File::from_raw_fd(go_r) };
    // Sized for a whole turn: read_to_end would otherwise read it in small growing pieces.
    let mut body = Vec::with_capacity(4096);
    std::io::Read::read_to_end(&mut pipe, &mut body)
        .map_err(|e| Error::sys("read the turn from the helper", e))?;
    serde_json::from_slice(&body).map_err(|e| Error::Json {
        op: "decode turn",
        source: e,
    })
}

/// Reaps children until the command ends, reports its status, kills and reaps the rest, then
/// waits for the helper's SIGKILL (after its report): the kernel's teardown of the namespaces
/// at this process's exit then follows the report instead of delaying it.
fn reap_until(command: i32, exit_w: RawFd) -> isize {
    loop {
        let mut st = 0;
        // SAFETY: waitpid into a local.
        let pid = unsafe { libc::waitpid(-1, &mut st, 0) };
        if pid < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return 0;
        }
        if pid == command {
            let line = format!("X {st}\n");
            // SAFETY: writing our buffer to our pipe; then killing every process of our
            // pid namespace (kill(-1) from its init reaches all of them but the init).
            unsafe {
                libc::write(exit_w, line.as_ptr().cast(), line.len());
                libc::close(exit_w);
                libc::kill(-1, libc::SIGKILL);
            }
            // Reap the rest. Then only the init is left; it holds no output pipe, so the helper
            // sees the output end and reports. A helper that dies instead takes the init with
            // it (parent-death signal).
            // SAFETY: waitpid with a null status.
            while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
            loop {
                // SAFETY: pause only waits for a signal; the helper's is SIGKILL.
                unsafe { libc::pause() };
            }
        }
    }
}

fn init_steps(spec: &WorkerSpec, fds: InitFds) -> Result<(u64, u64)> {
    // If the helper dies, so does the worker (and with it every namespace and mount).
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let t0 = mono_us();
    mounts::build_root(spec)?;
    nix::unistd::sethostname(&spec.hostname).map_err(|e| Error::sys("set hostname", e))?;
    let t1 = mono_us();
    // Wait for the helper: cgroup membership and the veth must exist before anything runs.
    let mut byte = [0u8; 1];
    // SAFETY: reading one byte into a local buffer.
    let n = unsafe { libc::read(fds.go_r, byte.as_mut_ptr().cast(), 1) };
    if n != 1 {
        let e = if n < 0 {
            std::io::Error::last_os_error()
        } else {
            std::io::Error::from_raw_os_error(libc::EPIPE)
        };
        return Err(Error::sys("wait for the helper's go", e));
    }
    if !spec.parked {
        // SAFETY: closing descriptors this process owns.
        unsafe { libc::close(fds.go_r) };
    }
    let t2 = mono_us();
    configure_network(spec)?;
    let t3 = mono_us();
    Ok((t1 - t0, t3 - t2))
}

/// In the forked command, what does not depend on the turn (a parked worker's pid 2 does it at
/// park time): its stdio, the bounding set, signal dispositions and mask.
fn command_prepare(fds: InitFds) -> Result<()> {
    // SAFETY: dup2/close on descriptors this process owns.
    unsafe {
        if libc::dup2(fds.stdout_w, 1) < 0 || libc::dup2(fds.stderr_w, 2) < 0 {
            return Err(Error::sys(
                "redirect stdout/stderr",
                std::io::Error::last_os_error(),
            ));
        }
        libc::close(fds.stdout_w);
        libc::close(fds.stderr_w);
        libc::close(fds.exit_w);
    }
    drop_bounding_set(&[]);
    reset_signals();
    Ok(())
}

/// In the forked command, right before exec: its cwd and user, capabilities cleared.
fn command_identity(spec: &WorkerSpec) -> Result<()> {
    nix::unistd::chdir(&spec.cwd)
        .map_err(|e| Error::sys(format!("chdir {}", spec.cwd.display()), e))?;
    become_user(spec.user_or_default(), &[])
}

fn configure_network(spec: &WorkerSpec) -> Result<()> {
    if spec.network == NetworkMode::Shared {
        return Ok(());
    }
    let mut nl = Netlink::open()?;
    // lo is always index 1 in a fresh namespace.
    nl.set_up(1)?;
    if let NetworkMode::Vnet(v) = &spec.network {
        let index = nl
            .link_index(crate::veth::WORKER_IFNAME)?
            .ok_or_else(|| Error::Setup {
                name: spec.name.clone(),
                message: format!("{} missing in the worker", crate::veth::WORKER_IFNAME),
            })?;
        nl.set_up(index)?;
        nl.add_address(index, v.addr, v.prefix)?;
        nl.add_default_route(v.gateway, index)?;
    }
    Ok(())
}

/// The capabilities a jail's root keeps (`warden jail exec --root`): Docker's default set, enough
/// to install packages, chown files, switch users and bind low ports; never CAP_SYS_ADMIN,
/// CAP_NET_ADMIN (kept only by a jail with the tun device: `jail_exec::JAIL_TUN_CAP`), CAP_SYS_MODULE or
/// anything else that reaches past the jail. Docker's
/// CAP_MKNOD (no device cgroup here: it would open the host's disks) and CAP_NET_RAW (spoofing
/// on the bridge) are left out too.
pub const JAIL_ROOT_CAPS: [u32; 12] = [
    0,  // CAP_CHOWN
    1,  // CAP_DAC_OVERRIDE
    3,  // CAP_FOWNER
    4,  // CAP_FSETID
    5,  // CAP_KILL
    6,  // CAP_SETGID
    7,  // CAP_SETUID
    8,  // CAP_SETPCAP
    10, // CAP_NET_BIND_SERVICE
    18, // CAP_SYS_CHROOT
    29, // CAP_AUDIT_WRITE
    31, // CAP_SETFCAP
];

/// Drops the bounding set (but `keep`), switches to `(uid, gid)`, clears the capability sets
/// (root keeps `keep`, granted again by execve from the bounding set) and forbids gaining
/// privileges again (setuid binaries, file capabilities).
pub(crate) fn drop_privileges(ids: (u32, u32), keep: &[u32]) -> Result<()> {
    drop_bounding_set(keep);
    become_user(ids, keep)
}

/// Drops every capability but `keep` from the bounding set (what an execve can grant).
fn drop_bounding_set(keep: &[u32]) {
    for cap in 0..64u32 {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        // EINVAL: past the kernel's last capability, so nothing more to drop.
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
            break;
        }
    }
}

/// Switches to `(uid, gid)` with no supplementary groups, clears the capability sets (root
/// keeps `keep`) and sets no_new_privs. The bounding set is [`drop_bounding_set`]'s.
fn become_user((uid, gid): (u32, u32), keep: &[u32]) -> Result<()> {
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    nix::unistd::setgroups(&[]).map_err(|e| Error::sys("clear supplementary groups", e))?;
    let g = nix::unistd::Gid::from_raw(gid);
    let u = nix::unistd::Uid::from_raw(uid);
    nix::unistd::setresgid(g, g, g).map_err(|e| Error::sys(format!("set gid {gid}"), e))?;
    nix::unistd::setresuid(u, u, u).map_err(|e| Error::sys(format!("set uid {uid}"), e))?;
    // A non-root uid already lost its capabilities in setresuid; root must clear them itself.
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let mut data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    if uid == 0 {
        for &cap in keep {
            let (i, bit) = ((cap / 32) as usize, 1u32 << (cap % 32));
            data[i].effective |= bit;
            data[i].permitted |= bit;
        }
    }
    // SAFETY: capset reads a v3 header and two data structs we own.
    if unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) } != 0 {
        return Err(Error::sys(
            "clear capabilities",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Error::sys(
            "set no_new_privs",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The helper ignores terminal signals; ignored dispositions survive execve, so undo them.
pub(crate) fn reset_signals() {
    for sig in crate::sys::TERMINAL_SIGNALS {
        // SAFETY: restoring the default disposition.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    // SAFETY: an empty set unblocks everything.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// execve of argv[0], searched in `env`'s PATH when it has no '/'. Returns only on failure.
pub(crate) fn exec(argv_in: &[String], env_in: &[(String, String)]) -> String {
    let cstr = |s: &str| CString::new(s).unwrap_or_default();
    let argv: Vec<CString> = argv_in.iter().map(|a| cstr(a)).collect();
    let env: Vec<CString> = env_in
        .iter()
        .map(|(k, v)| cstr(&format!("{k}={v}")))
        .collect();
    let Some(prog) = argv_in.first() else {
        return "failed to execute: no command given".into();
    };
    let candidates: Vec<String> = if prog.contains('/') {
        vec![prog.clone()]
    } else {
        let path = env_in
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_str())
            .unwrap_or("/usr/local/bin:/usr/bin:/bin");
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| format!("{d}/{prog}"))
            .collect()
    };
    let mut last = nix::errno::Errno::ENOENT;
    for c in candidates {
        if !Path::new(&c).exists() {
            continue;
        }
        match nix::unistd::execve(&cstr(&c), &argv, &env) {
            Ok(never) => match never {},
            Err(e) => last = e,
        }
    }
    format!("failed to execute {prog}: {last}")
}
