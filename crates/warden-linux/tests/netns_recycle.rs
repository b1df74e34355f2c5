//! Root test: a cold worker without a network whose namespace carried no packet hands that namespace
//! to the next one (`netns_stash`); a namespace that carried anything is never handed on, and a
//! handed-on namespace holds nothing of the turn before (no socket, no listener).
#![cfg(target_os = "linux")]

mod common;

use common::{assert_no_residue, root_test, spec, state_dir, unique};
use warden_linux::{netns_stash, run_captured, ExitKind};

/// Runs `script` in a new cold worker; returns its stdout.
fn run(state: &std::path::Path, names: &mut Vec<String>, script: &str) -> String {
    let name = unique("r");
    names.push(name.clone());
    let (o, out, err) = run_captured(&spec(&name, &["sh", "-c", script], state)).unwrap();
    assert_eq!(
        o.status,
        ExitKind::Exited(0),
        "{script}: {}",
        String::from_utf8_lossy(&err)
    );
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_namespace_that_carried_nothing_serves_the_next_cold_worker_and_no_other_does() {
    let Some(_lock) = root_test("netns_recycle") else {
        return;
    };
    let state = state_dir();
    let mut names = Vec::new();
    let ns = "readlink /proc/self/ns/net";
    let first = run(state.path(), &mut names, ns);
    assert_eq!(netns_stash::kept(), 1, "a quiet turn's namespace is kept");
    // The next worker runs in it; it listens on a port (no packet: still quiet) and leaves.
    let listen = "import socket; s = socket.socket(); s.bind(('127.0.0.1', 5555)); s.listen()";
    let second = run(
        state.path(),
        &mut names,
        &format!("{ns}; python3 -c \"{listen}\""),
    );
    assert_eq!(second, first, "the kept namespace was not used");
    assert_eq!(netns_stash::kept(), 1);
    // The third finds nothing of it: no socket in any table, only lo.
    let third = run(
        state.path(),
        &mut names,
        &format!("{ns}; tail -n +2 /proc/net/tcp /proc/net/udp /proc/net/tcp6 /proc/net/raw; tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"),
    );
    assert!(third.starts_with(&first), "{third}");
    assert!(
        !third.contains(":15B3"),
        "a listener of the turn before: {third}"
    );
    assert!(third.trim_end().ends_with("lo"), "{third}");
    // A turn that sends a packet (a refused connection on lo) does not hand its namespace on.
    let connect =
        "import socket\ntry: socket.create_connection(('127.0.0.1', 1), 1)\nexcept OSError: pass";
    let fourth = run(
        state.path(),
        &mut names,
        &format!("{ns}; python3 -c \"{connect}\""),
    );
    assert!(
        fourth.starts_with(&first),
        "the fourth took the kept namespace"
    );
    assert_eq!(
        netns_stash::kept(),
        0,
        "a namespace that carried a packet was kept"
    );
    let fifth = run(state.path(), &mut names, ns);
    assert_ne!(fifth, first, "the used namespace came back");
    assert_no_residue(state.path(), &names, None);
}
