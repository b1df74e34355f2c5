//! Root tests: a worker over a limit is killed and the outcome names the limit; nothing is left.
#![cfg(target_os = "linux")]

mod common;

use std::time::Instant;

use common::{assert_no_residue, root_test, spec, state_dir, unique};
use warden_linux::{run_captured, ExitKind, LimitKind};

#[test]
fn memory_limit_kills_with_limit_memory() {
    let Some(_lock) = root_test("memory_limit_kills_with_limit_memory") else {
        return;
    };
    let state = state_dir();
    let name = unique("mem");
    // tail keeps an endless "line" of zeros in memory.
    let mut s = spec(&name, &["tail", "/dev/zero"], state.path());
    s.limits.memory_bytes = Some(32 << 20);
    let (o, _, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Limit(LimitKind::Memory));
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn memory_limit_reported_when_a_child_is_oom_killed() {
    let Some(_lock) = root_test("memory_limit_reported_when_a_child_is_oom_killed") else {
        return;
    };
    let state = state_dir();
    let name = unique("memc");
    let mut s = spec(
        &name,
        &["sh", "-c", "tail /dev/zero; sleep 5"],
        state.path(),
    );
    s.limits.memory_bytes = Some(32 << 20);
    let t = Instant::now();
    let (o, _, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Limit(LimitKind::Memory));
    assert!(
        t.elapsed().as_secs() < 4,
        "the whole worker was not killed at the OOM"
    );
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn pids_limit_kills_with_limit_pids() {
    let Some(_lock) = root_test("pids_limit_kills_with_limit_pids") else {
        return;
    };
    let state = state_dir();
    let name = unique("pid");
    let mut s = spec(
        &name,
        &["sh", "-c", "for i in $(seq 50); do sleep 10 & done; wait"],
        state.path(),
    );
    s.limits.max_pids = Some(8);
    let t = Instant::now();
    let (o, _, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Limit(LimitKind::Pids));
    assert!(t.elapsed().as_secs() < 5);
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn timeout_kills_the_whole_worker() {
    let Some(_lock) = root_test("timeout_kills_the_whole_worker") else {
        return;
    };
    let state = state_dir();
    let name = unique("to");
    let mut s = spec(&name, &["sh", "-c", "sleep 30 & sleep 30"], state.path());
    s.limits.timeout_ms = Some(300);
    let t = Instant::now();
    let (o, _, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Limit(LimitKind::Timeout));
    let ms = t.elapsed().as_millis();
    assert!((300..2000).contains(&ms), "took {ms} ms");
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn output_cap_stops_at_the_cap() {
    let Some(_lock) = root_test("output_cap_stops_at_the_cap") else {
        return;
    };
    let state = state_dir();
    let name = unique("out");
    let mut s = spec(&name, &["yes"], state.path());
    s.limits.output_bytes = Some(100_000);
    let (o, out, err) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Limit(LimitKind::Output));
    assert_eq!(o.stdout_bytes, 100_000);
    assert_eq!(out.len(), 100_000);
    assert!(err.is_empty());
    assert_no_residue(state.path(), &[name], None);
}

#[test]
fn cpu_quota_is_applied() {
    let Some(_lock) = root_test("cpu_quota_is_applied") else {
        return;
    };
    let state = state_dir();
    let name = unique("cpu");
    // Burn CPU for 400 ms of wall time at a 20% quota: at most ~25% of that is CPU time.
    let mut s = spec(&name, &["sh", "-c", "timeout 0.4 sh -c 'while :; do :; done'; grep -E '^(nr_throttled|throttled_time)' /sys/fs/cgroup/cpu/cpu.stat 2>/dev/null; cat /proc/self/stat >/dev/null"], state.path());
    s.limits.cpu = Some(0.2);
    let (o, _, _) = run_captured(&s).unwrap();
    assert_eq!(o.status, ExitKind::Exited(0));
    // The quota file is gone with the worker; check it through a live one instead.
    let live = unique("cpul");
    let mut s2 = spec(&live, &["sleep", "1"], state.path());
    s2.limits.cpu = Some(0.2);
    let state2 = state.path().to_path_buf();
    let h = std::thread::spawn(move || run_captured(&s2).unwrap());
    let quota = std::path::Path::new("/sys/fs/cgroup/cpu/warden")
        .join(&live)
        .join("cpu.cfs_quota_us");
    let v2 = std::path::Path::new("/sys/fs/cgroup/warden")
        .join(&live)
        .join("cpu.max");
    let start = Instant::now();
    let mut seen = String::new();
    while start.elapsed().as_millis() < 900 && seen.is_empty() {
        seen = std::fs::read_to_string(&quota)
            .or_else(|_| std::fs::read_to_string(&v2))
            .unwrap_or_default();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(seen.starts_with("20000"), "quota: {seen:?}");
    assert_eq!(h.join().unwrap().0.status, ExitKind::Exited(0));
    assert_no_residue(&state2, &[name, live], None);
}
