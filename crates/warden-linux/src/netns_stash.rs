//! Network namespaces that carried nothing, kept for the next cold worker without a network.
//!
//! Making a network namespace and the kernel's work to destroy it were a sixth of all CPU at 32
//! concurrent turns (POOL.md). A worker with network `none` whose namespace's SNMP counters are all
//! zero when its command has ended saw no packet at all; every process in it but the paused init is
//! gone, so nothing of that turn is left in it (no socket, no TIME_WAIT, no neighbour, and without
//! CAP_NET_ADMIN a command cannot change its interfaces, routes or sysctls). Its helper says so in the
//! report; the caller, whose lifeline still keeps the init alive, opens `/proc/<init>/ns/net` and
//! keeps the descriptor here; the next cold worker's helper receives it on descriptor 5 and joins it
//! instead of making a namespace. A namespace that carried anything is destroyed as before.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;

/// Most namespaces kept: enough for a burst of concurrent turns, few enough not to matter.
const MAX: usize = 16;

static STASH: Mutex<Vec<OwnedFd>> = Mutex::new(Vec::new());

/// A kept namespace, if any.
pub(crate) fn take() -> Option<OwnedFd> {
    STASH.lock().ok()?.pop()
}

/// Keeps the network namespace of `init_pid` (alive: the caller holds its lifeline).
pub(crate) fn give(init_pid: i32) {
    let Ok(mut stash) = STASH.lock() else { return };
    if stash.len() >= MAX {
        return;
    }
    let Ok(path) = std::ffi::CString::new(format!("/proc/{init_pid}/ns/net")) else {
        return;
    };
    // SAFETY: opening a path we own the string of; the descriptor is owned below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd >= 0 {
        // SAFETY: a descriptor we just opened.
        stash.push(unsafe { OwnedFd::from_raw_fd(fd) });
    }
}

/// How many namespaces are kept (for tests and the benchmark).
pub fn kept() -> usize {
    STASH.lock().map(|s| s.len()).unwrap_or(0)
}

/// Whether the namespace of `pid` carried no packet: every counter of `/proc/<pid>/net/snmp` and
/// `snmp6` is zero, but the constants (`Ip: Forwarding DefaultTTL`, `Tcp: RtoAlgorithm RtoMin RtoMax
/// MaxConn`).
pub(crate) fn pristine(pid: i32) -> bool {
    const CONSTANTS: [&str; 6] = [
        "Ip:Forwarding",
        "Ip:DefaultTTL",
        "Tcp:RtoAlgorithm",
        "Tcp:RtoMin",
        "Tcp:RtoMax",
        "Tcp:MaxConn",
    ];
    let (Ok(snmp), Ok(snmp6)) = (
        std::fs::read_to_string(format!("/proc/{pid}/net/snmp")),
        std::fs::read_to_string(format!("/proc/{pid}/net/snmp6")),
    ) else {
        return false;
    };
    let lines: Vec<&str> = snmp.lines().collect();
    if lines.is_empty() || !lines.len().is_multiple_of(2) {
        return false;
    }
    for pair in lines.chunks(2) {
        let names: Vec<&str> = pair[0].split_whitespace().collect();
        let values: Vec<&str> = pair[1].split_whitespace().collect();
        if names.len() != values.len() || names.first() != values.first() {
            return false;
        }
        for (name, value) in names.iter().zip(&values).skip(1) {
            let key = format!("{}{name}", names[0]);
            if !CONSTANTS.contains(&key.as_str()) && *value != "0" {
                return false;
            }
        }
    }
    snmp6
        .lines()
        .all(|l| l.split_whitespace().nth(1).is_some_and(|v| v == "0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_namespace_is_pristine_and_one_packet_on_lo_is_not() {
        // A fresh namespace (a thread of a child made with unshare) reads all zeros; one packet on lo
        // changes that.
        let child = std::process::Command::new("unshare")
            .args([
                "-n",
                "sh",
                "-c",
                "ip link set lo up; sleep 0.1; echo $$; sleep 2",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = child;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        let pid: i32 = line.trim().parse().unwrap();
        assert!(pristine(pid), "a fresh namespace with lo up");
        let ping = std::process::Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-n", "python3", "-c"])
            .arg("import socket\ntry: socket.create_connection(('127.0.0.1', 1), 1)\nexcept OSError: pass")
            .status()
            .unwrap();
        assert!(ping.success());
        assert!(!pristine(pid), "a refused connection on lo counts");
        let _ = child.kill();
        let _ = child.wait();
    }
}
