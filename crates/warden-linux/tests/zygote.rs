//! Workers started through the zygote (as `warden serve` starts them): output, exit codes and
//! setup errors come back as from a re-exec'd helper, pooled turns work, a killed zygote is
//! replaced, and nothing is left behind.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use warden_linux::pool::{Pool, PoolKey, SlotConfig};
use warden_linux::{ExitKind, NetworkMode, ReleaseRef, Turn};

/// The zygotes this process started (children whose argv has `__zygote`).
fn my_zygotes() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1).map(str::to_string));
        if ppid.as_deref() == Some(me.as_str())
            && cmdline.split(|b| *b == 0).any(|a| a == b"__zygote")
        {
            found.push(pid);
        }
    }
    found
}

#[test]
fn zygote_workers_report_like_exec_ones_and_a_killed_zygote_is_replaced() {
    let Some(_guard) = root_test("zygote") else {
        return;
    };
    warden_linux::use_zygote();
    let state = state_dir();
    let mut names = Vec::new();

    let s = spec(
        &unique("z"),
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
        state.path(),
    );
    names.push(s.name.clone());
    let (o, out, err) = warden_linux::run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(3));
    assert_eq!(out, b"out\n");
    assert_eq!(err, b"err\n");
    let zygotes = my_zygotes();
    assert_eq!(zygotes.len(), 1, "one zygote started: {zygotes:?}");

    // A setup error travels back through the report pipe as before.
    let mut bad = spec(&unique("z"), &["true"], state.path());
    bad.cwd = "/no/such/dir".into();
    names.push(bad.name.clone());
    let e = warden_linux::run_captured(&bad).unwrap_err().to_string();
    assert!(e.contains("/no/such/dir"), "{e}");

    // Kill the zygote: the next worker still runs (a new zygote is started).
    kill(Pid::from_raw(zygotes[0]), Signal::SIGKILL).expect("kill the zygote");
    std::thread::sleep(Duration::from_millis(50));
    let s2 = spec(&unique("z"), &["echo", "again"], state.path());
    names.push(s2.name.clone());
    let (o, out, _) = warden_linux::run_captured(&s2).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0));
    assert_eq!(out, b"again\n");
    let after = my_zygotes();
    assert_eq!(after.len(), 1, "a new zygote: {after:?}");
    assert_ne!(after[0], zygotes[0]);

    // A pooled worker parked by a zygote-forked helper serves its turn.
    let mut template = spec("tpl", &["true"], state.path());
    template.network = NetworkMode::None;
    let pool = Pool::start(vec![SlotConfig {
        template,
        size: 1,
        lease_range: None,
        fillers: 1,
    }]);
    assert!(pool.wait_full(Duration::from_secs(20)), "pool never filled");
    let parked = pool
        .take(&PoolKey::new(&ReleaseRef::Host, &NetworkMode::None))
        .expect("a parked worker");
    names.push(parked.name().to_string());
    let t = Turn::from_spec(&spec("x", &["echo", "pooled"], state.path()));
    let mut out = Vec::new();
    let o = parked
        .run(
            &t,
            warden_linux::Io::Stream {
                stdin: Vec::new(),
                on_output: &mut |_, b| out.extend_from_slice(b),
            },
        )
        .unwrap();
    assert_eq!(o.status, ExitKind::Exited(0));
    assert_eq!(out, b"pooled\n");
    pool.shutdown();
    assert_no_residue(state.path(), &names, None);
}
