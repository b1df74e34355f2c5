//! `warden jail exec`: a command inside a running jail. A freshly re-exec'd, single-threaded
//! helper (`<exe> __worker exec <json>`) joins the jail's cgroups, enters every namespace of the
//! jail's init at once (`setns` on a pidfd, so a recycled pid cannot redirect it), chroots to
//! the init's root, forks the command into the jail's pid namespace with the worker path's
//! privilege drop, and exits with its status. Stdio is passed straight through.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::{error_chain, Error, Result};
use crate::proto::{helper_exe, HELPER_ARG};
use crate::record;
use crate::spec::DEFAULT_USER;
use crate::worker_init::{self, JAIL_ROOT_CAPS};

/// The argv[2] (after `__worker`) that selects the exec helper.
pub const EXEC_ARG: &str = "exec";

/// Exit code of the exec helper when it could not run the command at all.
pub const EXEC_FAILED: i32 = 125;

/// One command to run in a running jail.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecSpec {
    /// The jail's name (for messages).
    pub name: String,
    /// The jail's init and its start time (guards against a recycled pid).
    pub init_pid: i32,
    pub init_start: u64,
    /// The jail's cgroups, joined first so its limits cover the command.
    pub cgroups: Vec<PathBuf>,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    /// Run as the jail's root (keeping [`JAIL_ROOT_CAPS`]) instead of nobody.
    pub root: bool,
    /// The jail's root also keeps CAP_NET_ADMIN ([`JAIL_TUN_CAP`]): a jail with `/dev/net/tun` (`--tun`), whose
    /// tailscaled creates and configures `tailscale0` in the jail's own network namespace.
    #[serde(default)]
    pub net_admin: bool,
}

/// CAP_NET_ADMIN: what a jail's root keeps besides [`JAIL_ROOT_CAPS`] when the jail has the tun device. It
/// reaches only the jail's network namespace (its interfaces, addresses, routes and firewall), as a FreeBSD
/// VNET jail's root configures its own stack; entering another namespace needs CAP_SYS_ADMIN, never kept.
pub const JAIL_TUN_CAP: u32 = 12;

/// Runs `spec` in its jail with this process's stdio; returns the command's exit code (128 +
/// signal when killed), or [`EXEC_FAILED`] after printing why on stderr. Replaces nothing: the
/// caller may be multi-threaded, the helper it starts is not.
pub fn exec(spec: &ExecSpec) -> Result<i32> {
    if spec.argv.is_empty() || spec.argv.iter().any(|a| a.contains('\0')) {
        return Err(Error::Refused {
            op: "run a command in jail",
            name: spec.name.clone(),
            why: "the command is empty or contains a NUL byte".into(),
        });
    }
    let json = serde_json::to_string(spec).map_err(|e| Error::Json {
        op: "encode exec spec",
        source: e,
    })?;
    let exe = helper_exe();
    let status = Command::new(exe)
        .arg(HELPER_ARG)
        .arg(EXEC_ARG)
        .arg(json)
        .status()
        .map_err(|e| Error::io("start helper", exe, e))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        _ => EXEC_FAILED,
    })
}

/// Like [`exec`] but replaces the calling process with the helper (the CLI: one process less,
/// and the exit status is the helper's own). Returns only on failure to start it.
pub fn exec_replace(spec: &ExecSpec) -> Error {
    let json = match serde_json::to_string(spec) {
        Ok(j) => j,
        Err(e) => {
            return Error::Json {
                op: "encode exec spec",
                source: e,
            }
        }
    };
    let exe = helper_exe();
    let e = Command::new(exe)
        .arg(HELPER_ARG)
        .arg(EXEC_ARG)
        .arg(json)
        .exec();
    Error::io("start helper", exe, e)
}

/// Entry of the exec helper. Never returns.
pub(crate) fn exec_main(json: Option<&str>) -> ! {
    let spec = json
        .ok_or_else(|| "missing exec spec argument".to_string())
        .and_then(|s| {
            serde_json::from_str::<ExecSpec>(s)
                .map_err(|e| format!("failed to decode exec spec: {e}"))
        });
    let code = match spec {
        Err(msg) => {
            eprintln!("warden: error: {msg}");
            EXEC_FAILED
        }
        Ok(spec) => match enter_and_run(&spec) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("warden: error: {}", error_chain(&e));
                EXEC_FAILED
            }
        },
    };
    std::process::exit(code)
}

fn enter_and_run(spec: &ExecSpec) -> Result<i32> {
    // The terminal delivers ^C and ^\ to the whole process group, the command included; the
    // helper only waits for its status.
    // SAFETY: setting dispositions to SIG_IGN.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGQUIT, libc::SIG_IGN);
    }
    // The start time is checked after the pidfd is held: from then on the pid cannot be reused.
    let pidfd = match crate::sys::pidfd_open(spec.init_pid) {
        Ok(fd) if record::is_alive(spec.init_pid, spec.init_start) => fd,
        _ => {
            return Err(Error::NotRunning {
                name: spec.name.clone(),
            })
        }
    };
    let root_path = format!("/proc/{}/root", spec.init_pid);
    let root = std::fs::File::open(&root_path).map_err(|e| Error::io("open", &root_path, e))?;
    for dir in &spec.cgroups {
        // The record names every cgroup the jail may have; a v1 cpu cgroup exists only with a
        // CPU limit. The others cannot be gone while the jail runs (a cgroup with processes in
        // it cannot be removed).
        if !dir.exists() {
            continue;
        }
        let procs = dir.join("cgroup.procs");
        std::fs::write(&procs, "0").map_err(|e| Error::io("join cgroup", &procs, e))?;
    }
    let mut flags = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWNET;
    let ours = std::fs::read_link("/proc/self/ns/user").ok();
    let theirs = std::fs::read_link(format!("/proc/{}/ns/user", spec.init_pid)).ok();
    if ours != theirs {
        // Re-entering one's own user namespace is refused (EINVAL), so only a different one.
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: setns on a pidfd we hold; this process is single-threaded.
    if unsafe { libc::setns(pidfd.as_raw_fd(), flags) } != 0 {
        return Err(Error::sys(
            format!("enter the namespaces of jail {}", spec.name),
            std::io::Error::last_os_error(),
        ));
    }
    nix::unistd::fchdir(root.as_raw_fd()).map_err(|e| Error::sys("chdir to the jail's root", e))?;
    nix::unistd::chroot(".").map_err(|e| Error::sys("chroot to the jail's root", e))?;
    drop(root);
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("create a pipe", e))?;
    let user = if spec.root { (0, 0) } else { DEFAULT_USER };
    let mut keep: Vec<u32> = if spec.root {
        JAIL_ROOT_CAPS.to_vec()
    } else {
        Vec::new()
    };
    if spec.root && spec.net_admin {
        keep.push(JAIL_TUN_CAP);
    }
    let keep = keep.as_slice();
    // SAFETY: single-threaded; the child only prepares and execs (or reports and _exits).
    match unsafe { nix::unistd::fork() }.map_err(|e| Error::sys("fork the command", e))? {
        nix::unistd::ForkResult::Child => {
            drop(err_r);
            let mut err = std::fs::File::from(err_w);
            // The command must not outlive the helper that reports its status.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            let msg = match nix::unistd::chdir(&spec.cwd)
                .map_err(|e| Error::sys(format!("chdir {}", spec.cwd.display()), e))
                .and_then(|()| worker_init::drop_privileges(user, keep))
            {
                Ok(()) => {
                    worker_init::reset_signals();
                    worker_init::exec(&spec.argv, &spec.env)
                }
                Err(e) => error_chain(&e),
            };
            let _ = err.write_all(msg.as_bytes());
            // SAFETY: leave without running the helper's destructors in the child.
            unsafe { libc::_exit(127) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(err_w);
            let mut msg = String::new();
            let _ = std::fs::File::from(err_r).read_to_string(&mut msg);
            let status = loop {
                match nix::sys::wait::waitpid(child, None) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    other => break other.map_err(|e| Error::sys("wait for the command", e))?,
                }
            };
            if !msg.is_empty() {
                eprintln!("warden: error: in jail {}: {msg}", spec.name);
            }
            Ok(match status {
                nix::sys::wait::WaitStatus::Exited(_, code) => code,
                nix::sys::wait::WaitStatus::Signaled(_, sig, _) => 128 + sig as i32,
                _ => EXEC_FAILED,
            })
        }
    }
}
