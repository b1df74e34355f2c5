//! `warden run --remote`: the command goes as a turn to a `warden serve` running in a network namespace this test
//! creates (entered with `nsenter --net`); output and exit status come back as with a local run.

mod common;

use std::path::Path;
use std::process::Output;

use common::{text, Netns, Serve};

fn warden_in(ns: &Netns, state: &Path, args: &[&str]) -> Output {
    common::output_within(&mut ns.warden(state, args), common::WARDEN_LIMIT)
}

#[test]
fn run_remote_passes_output_and_exit_status_through() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let _serve = Serve::start(&ns, state, &[]);

    let o = warden_in(
        &ns,
        state,
        &["run", "--remote", "--tenant", "atlas", "--", "echo", "hi"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hi\n");

    let o = warden_in(
        &ns,
        state,
        &[
            "run",
            "--remote",
            "--tenant",
            "atlas",
            "--env",
            "WHO=remote",
            "--",
            "sh",
            "-c",
            "echo $WHO; echo oops >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "remote\n");
    assert!(String::from_utf8_lossy(&o.stderr).contains("oops"));

    // The documented limit codes come back too.
    let o = warden_in(
        &ns,
        state,
        &[
            "run",
            "--remote",
            "--tenant",
            "atlas",
            "--timeout",
            "1s",
            "--",
            "sleep",
            "30",
        ],
    );
    assert_eq!(o.status.code(), Some(124), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("wall-clock limit"));

    // Bad input is exit 2; no control plane is 125 (Warden could not run the command).
    let o = warden_in(&ns, state, &["run", "--remote", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--tenant"));
    let empty = tempfile::tempdir().unwrap();
    let o = warden_in(
        &ns,
        empty.path(),
        &["run", "--remote", "--tenant", "atlas", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(125), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("warden serve"));
}
