//! Crashes of the caller, as a real host sees them: with `FAKEBSD_KILL_PARENT_AFTER=N`, the tool calls a
//! `warden` process makes itself are counted (in `$FAKEBSD_STATE/kill-count`), and right after the Nth has done
//! its work, that `warden` is sent SIGKILL. Tests cut `warden setup` after each of its commands this way, with no
//! hook in Warden itself. Calls made by others (a jail's sh, rc scripts, the tests) are not counted.

use std::path::Path;

use nix::sys::signal::{kill, Signal};
use nix::unistd::{getppid, Pid};

/// The variable naming the call after which the calling `warden` is killed.
pub const ENV_KILL_AFTER: &str = "FAKEBSD_KILL_PARENT_AFTER";

/// Counts this call if `warden` made it, and kills that `warden` when it is the Nth.
pub fn after_call(tool: &str, args: &[String]) {
    let Some(n) = std::env::var(ENV_KILL_AFTER)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let parent = getppid();
    if !is_warden(parent) {
        return;
    }
    let Some(state) = std::env::var_os(crate::state::ENV_STATE) else {
        return;
    };
    // Setup runs its commands one at a time, but the doctor runs its checks at once: the counter is locked.
    let Some(count) = bump(&Path::new(&state).join("kill-count")) else {
        eprintln!(
            "fakebsd: {ENV_KILL_AFTER}: cannot count in {}",
            Path::new(&state).display()
        );
        return;
    };
    if count != n {
        return;
    }
    // A `warden` that runs another (setup's db actions run `warden db sync`) crashes as a whole: the outermost
    // first, so no caller sees its child die and reacts.
    let mut chain = vec![parent];
    while let Some(up) = parent_of(*chain.last().unwrap_or(&parent)).filter(|p| is_warden(*p)) {
        chain.push(up);
    }
    eprintln!(
        "fakebsd: {ENV_KILL_AFTER}={n}: killing warden (pids {chain:?}) after `{tool} {}`",
        args.join(" ")
    );
    for pid in chain.iter().rev() {
        if let Err(e) = kill(*pid, Signal::SIGKILL) {
            eprintln!("fakebsd: {ENV_KILL_AFTER}: kill {pid}: {e}");
        }
    }
}

/// Adds one to the number in `counter` (created at 0) under its lock; the new number.
fn bump(counter: &Path) -> Option<u64> {
    use std::io::{Read, Seek, Write};
    let mut f = std::fs::File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(counter)
        .ok()?;
    f.lock().ok()?;
    let mut text = String::new();
    f.read_to_string(&mut text).ok()?;
    let count = text.trim().parse::<u64>().unwrap_or(0) + 1;
    f.set_len(0).ok()?;
    f.rewind().ok()?;
    writeln!(f, "{count}").ok()?;
    Some(count)
}

/// Whether process `pid` runs `warden` (Linux's /proc: the simulated host runs on Linux).
fn is_warden(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == "warden")
}

/// The parent of `pid`, from /proc/PID/stat (the field after the state, which follows the `)` of the name).
fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let ppid: i32 = after.split_whitespace().nth(1)?.parse().ok()?;
    (ppid > 1).then(|| Pid::from_raw(ppid))
}
