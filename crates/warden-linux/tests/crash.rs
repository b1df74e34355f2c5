//! Root tests: `kill -9` of the process that called `run` (and of its helper) mid-run, then
//! `reap_orphans` cleans everything and says what it cleaned.
#![cfg(target_os = "linux")]

mod common;

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_no_residue, root_test, spec, state_dir, test_net, TestNet, WorkerNet};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use warden_linux::record::{record_path, Record};
use warden_linux::{lease, reap_orphans};

/// Starts `warden-linux-test run <spec>` in its own process group and waits until its worker
/// is fully set up (record names the init, and the veth exists when networked).
#[allow(clippy::zombie_processes)] // the caller kills and waits for it
fn start_parent(
    s: &warden_linux::WorkerSpec,
    net: Option<&TestNet>,
) -> (std::process::Child, Record) {
    let child = Command::new(env!("CARGO_BIN_EXE_warden-linux-test"))
        .arg("run")
        .arg(serde_json::to_string(s).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let path = record_path(&s.state_dir, &s.name);
    let start = Instant::now();
    loop {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "worker never came up"
        );
        if let Ok(rec) = Record::load(&path) {
            let net_ready = net.is_none_or(|n| !n.links_matching("e0a_").is_empty());
            if rec.init_pid.is_some() && net_ready {
                // Give the init a moment to exec.
                std::thread::sleep(Duration::from_millis(100));
                return (child, rec);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn wait_dead(pid: i32) {
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z"))
            .unwrap_or(true);
        if zombie {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "pid {pid} survived"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn kill_9_of_parent_and_helper_then_reap_cleans_everything() {
    let Some(_lock) = root_test("kill_9_of_parent_and_helper_then_reap_cleans_everything") else {
        return;
    };
    let net = test_net();
    let state = state_dir();
    let l = lease(
        state.path(),
        (Ipv4Addr::new(10, 0, 1, 101), Ipv4Addr::new(10, 0, 1, 149)),
    )
    .unwrap();
    let name = l.worker_name();
    let mut s = spec(&name, &["sleep", "30"], state.path());
    s.network = net.vnet(l.addr());
    drop(l);
    let (mut parent, rec) = start_parent(&s, Some(&net));
    // The helper first, then the whole group: a group kill can reach the parent first, and a helper
    // that sees its lifeline close in that gap cleans up by itself (the other test's case).
    let _ = kill(Pid::from_raw(rec.owner_pid), Signal::SIGKILL);
    let _ = killpg(Pid::from_raw(parent.id() as i32), Signal::SIGKILL);
    let _ = parent.wait();
    wait_dead(rec.owner_pid);
    // The worker's init dies with its helper (PR_SET_PDEATHSIG): namespaces and mounts go too.
    wait_dead(rec.init_pid.unwrap());
    // Normally the record outlives the killed helper and the reaper must clean up. Under heavy load
    // the kill can land after the helper already finished its teardown; then there is nothing to reap,
    // and the property that matters, no residue, is checked below either way.
    if record_path(state.path(), &name).exists() {
        let cleaned = reap_orphans(state.path()).unwrap();
        assert!(cleaned.iter().any(|c| c.contains("cgroup")), "{cleaned:?}");
        assert!(
            cleaned.iter().any(|c| c == &format!("{name}: record")),
            "{cleaned:?}"
        );
    } else {
        eprintln!("note: the helper finished its teardown before the kill landed");
    }
    assert!(
        reap_orphans(state.path()).unwrap().is_empty(),
        "a second reap finds nothing"
    );
    assert_no_residue(state.path(), &[name], Some(&net));
}

#[test]
fn kill_9_of_the_parent_alone_makes_the_helper_clean_up() {
    let Some(_lock) = root_test("kill_9_of_the_parent_alone_makes_the_helper_clean_up") else {
        return;
    };
    let state = state_dir();
    let s = spec("crashp", &["sleep", "30"], state.path());
    let (mut parent, rec) = start_parent(&s, None);
    parent.kill().unwrap();
    let _ = parent.wait();
    // The helper sees its lifeline close, kills the worker and tears down by itself.
    wait_dead(rec.init_pid.unwrap());
    assert_no_residue(state.path(), &["crashp".to_string()], None);
    assert!(reap_orphans(state.path()).unwrap().is_empty());
}

#[test]
fn a_live_worker_is_not_reaped_and_its_name_is_taken() {
    let Some(_lock) = root_test("a_live_worker_is_not_reaped_and_its_name_is_taken") else {
        return;
    };
    let state = state_dir();
    let s = spec("busy", &["sleep", "1"], state.path());
    let s2 = s.clone();
    let h = std::thread::spawn(move || warden_linux::run_captured(&s2).unwrap());
    let start = Instant::now();
    while !record_path(state.path(), "busy").exists() {
        assert!(start.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(reap_orphans(state.path()).unwrap().is_empty());
    let err = warden_linux::run_captured(&s).unwrap_err();
    assert!(
        matches!(err, warden_linux::Error::NameInUse { .. }),
        "{err}"
    );
    h.join().unwrap();
    assert_no_residue(state.path(), &["busy".to_string()], None);
}
