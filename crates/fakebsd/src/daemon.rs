//! `daemon(8)`: runs a program of the simulated host detached, under a supervisor process that writes the
//! pidfiles, restarts the program with `-r`, and forwards SIGTERM/SIGINT/SIGHUP to it (and, once told to
//! terminate, exits when the program does instead of restarting it).
//!
//! The program and every absolute-path argument that exists under the simulated root are taken from there
//! (`/usr/local/bin/warden` is `$FAKEBSD_STATE/root/usr/local/bin/warden`), as they would be on the host. `-S`
//! appends the program's output to the simulated `/var/log/messages` (no syslog formatting), `-o FILE` to that
//! file. The supervisor is this binary run again as `daemon` (its process title starts with `daemon`, which is
//! what rc.subr matches a `-P` pidfile's process by).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, Signal};
use nix::unistd::Pid;

use crate::opts::{Spec, GETOPT};
use crate::state;

/// Set in the supervisor's environment: it is the detached half, not the caller's.
const ENV_SUPERVISOR: &str = "FAKEBSD_DAEMON_SUPERVISOR";

const USAGE: &str = "usage: daemon [-cfHrS] [-p child_pidfile] [-P supervisor_pidfile]\n              [-u user] [-o output_file] [-t title]\n              [-l syslog_facility] [-s syslog_priority]\n              [-T syslog_tag] [-m output_mask] [-R restart_delay_secs]\ncommand arguments ...";

/// The options of one `daemon` call.
#[derive(Debug, Default)]
struct Opts {
    child_pidfile: Option<String>,
    supervisor_pidfile: Option<String>,
    restart: bool,
    restart_delay: u64,
    syslog: bool,
    output: Option<String>,
    argv: Vec<String>,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        restart_delay: 1,
        ..Opts::default()
    };
    let spec = Spec {
        tool: "daemon",
        flags: "cfHrS",
        valued: "pPutlsTmoR",
        usage: USAGE,
        ..GETOPT
    };
    let p = spec.parse(args).map_err(|e| e.to_string())?;
    for (key, v) in &p.opts {
        let v = v.clone();
        match *key {
            "r" => o.restart = true,
            "S" => o.syslog = true,
            "p" => o.child_pidfile = v,
            "P" => o.supervisor_pidfile = v,
            "o" => o.output = v,
            "R" => {
                o.restart = true;
                o.restart_delay = v
                    .unwrap_or_default()
                    .parse()
                    .map_err(|_| "daemon: invalid restart delay".to_string())?;
            }
            // -c -f -H, and values not simulated (user, title, syslog facility/priority/tag, output mask).
            _ => {}
        }
    }
    o.argv = p.operands;
    if o.argv.is_empty() {
        return Err(USAGE.into());
    }
    Ok(o)
}

/// `daemon ARGS…`.
pub fn main(args: &[String]) -> i32 {
    let opts = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let root = match state::state_dir() {
        Ok(d) => d.join("root"),
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if std::env::var_os(ENV_SUPERVISOR).is_some() {
        return supervise(&opts, &root);
    }
    for pidfile in opts.supervisor_pidfile.iter().chain(&opts.child_pidfile) {
        if let Some(pid) = pid_in(&host(&root, pidfile)).filter(|p| alive(*p)) {
            // pidfile_open(3) finds the file locked by a running daemon.
            eprintln!("daemon: process already running, pid: {pid}");
            return 3;
        }
    }
    start_supervisor(args, &opts, &root)
}

/// Starts the detached supervisor and returns once it has written its pidfile (real daemon(8) returns
/// right after fork; waiting closes the window in which `service X status` would not see it yet).
fn start_supervisor(args: &[String], opts: &Opts, root: &Path) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("daemon: {e}");
            return 1;
        }
    };
    let mut cmd = Command::new(exe);
    std::os::unix::process::CommandExt::arg0(&mut cmd, "daemon");
    let mut child = match cmd
        .args(args)
        .env(ENV_SUPERVISOR, "1")
        .env_remove(state::ENV_LOCK_HELD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("daemon: fork: {e}");
            return 1;
        }
    };
    let Some(pidfile) = opts
        .supervisor_pidfile
        .as_ref()
        .or(opts.child_pidfile.as_ref())
    else {
        return 0;
    };
    let pidfile = host(root, pidfile);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if pid_in(&pidfile).is_some() {
            return 0;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return status.code().unwrap_or(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "daemon: the supervisor did not write {} within 10 s",
        pidfile.display()
    );
    1
}

/// The supervisor: own session, pidfiles, the program run (and restarted) until it is told to stop.
fn supervise(opts: &Opts, root: &Path) -> i32 {
    let _ = nix::unistd::setsid();
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGCHLD,
    ] {
        signals.add(s);
    }
    let own = opts.supervisor_pidfile.as_ref().map(|p| host(root, p));
    let child_pidfile = opts.child_pidfile.as_ref().map(|p| host(root, p));
    let mut terminating = false;
    loop {
        // The signals are blocked and taken with sigwait, except while the program is spawned: it inherits the
        // mask (without unsafe code there is no pre-exec hook to clear it). A SIGTERM in that instant would end
        // the supervisor alone; the pidfile is written only afterwards, so `service stop` cannot send one then.
        let _ = signals.thread_unblock();
        let child = spawn_program(opts, root);
        if signals.thread_block().is_err() {
            return 1;
        }
        if let Some(p) = &own {
            let _ = std::fs::write(p, format!("{}\n", std::process::id()));
        }
        if let (Some(c), Some(p)) = (&child, &child_pidfile) {
            let _ = std::fs::write(p, format!("{}\n", c.id()));
        }
        if let Some(mut c) = child {
            terminating |= wait_program(&mut c, &signals);
        }
        if terminating || !opts.restart {
            break;
        }
        // A SIGTERM arriving now stays pending and reaches the next program at once.
        std::thread::sleep(Duration::from_secs(opts.restart_delay));
    }
    for p in own.iter().chain(&child_pidfile) {
        let _ = std::fs::remove_file(p);
    }
    0
}

/// Waits for the program to exit, forwarding signals; true when the supervisor was told to terminate.
fn wait_program(child: &mut Child, signals: &SigSet) -> bool {
    let mut terminating = false;
    let pid = Pid::from_raw(child.id() as i32);
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return terminating;
        }
        match signals.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                terminating |= matches!(sig, Signal::SIGTERM | Signal::SIGINT);
                let _ = kill(pid, sig);
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn spawn_program(opts: &Opts, root: &Path) -> Option<Child> {
    let program = host(root, &opts.argv[0]);
    let sink = match (&opts.output, opts.syslog) {
        (Some(f), _) => Some(host(root, f)),
        (None, true) => Some(root.join("var/log/messages")),
        (None, false) => None,
    };
    let (out, err) = match sink.and_then(|p| {
        let _ = std::fs::create_dir_all(p.parent()?);
        OpenOptions::new().create(true).append(true).open(p).ok()
    }) {
        Some(f) => match f.try_clone() {
            Ok(g) => (Stdio::from(f), Stdio::from(g)),
            Err(_) => (Stdio::null(), Stdio::null()),
        },
        None => (Stdio::null(), Stdio::null()),
    };
    let args: Vec<PathBuf> = opts.argv[1..].iter().map(|a| mapped(root, a)).collect();
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .ok()
}

/// A FreeBSD path on the simulated host.
fn host(root: &Path, p: &str) -> PathBuf {
    if Path::new(p).starts_with(root) {
        return PathBuf::from(p);
    }
    root.join(p.trim_start_matches('/'))
}

/// An argument: an absolute path that exists on the simulated host is that file; anything else as given.
fn mapped(root: &Path, a: &str) -> PathBuf {
    let p = host(root, a);
    if a.starts_with('/') && p.exists() {
        p
    } else {
        PathBuf::from(a)
    }
}

/// The pid a pidfile holds.
pub fn pid_in(pidfile: &Path) -> Option<i32> {
    std::fs::read_to_string(pidfile)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 || kill(Pid::from_raw(pid), None).is_err() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the parenthesised command name.
    !stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}
