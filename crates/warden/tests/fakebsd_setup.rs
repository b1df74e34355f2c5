//! `warden setup --backend bastille` against the simulated FreeBSD host (`crates/fakebsd`), through the real
//! binary: every step from a fresh host then an empty second plan; a crash cut after each command setup runs on
//! the host, then a clean run that reports the interrupted action and reaches the same host; the same for
//! `warden teardown` from a set-up host; workers.
//!
//! Crashes are real ones: fakebsd's `FAKEBSD_KILL_PARENT_AFTER=N` SIGKILLs the `warden` that made the Nth tool
//! call, right after that call did its work (Warden has no test hook). An action that only writes a file runs
//! no command, so its cut is the next command's.

#![cfg(target_os = "linux")]

use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::Value;
use warden_testkit::fakebsd::{output_within, text, WARDEN_LIMIT};
use warden_testkit::FakeBsdHost;

/// `warden plan --backend bastille --json`'s action summaries.
fn planned(h: &FakeBsdHost) -> Vec<String> {
    let out = h.warden_ok(&["plan", "--backend", "bastille", "--json"]);
    let plan: Value = serde_json::from_slice(&out.stdout).expect("the plan as JSON");
    plan["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["summary"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// The simulated host's state less what differs between two equal hosts: the logical clock, pids (a crashed
/// run's extra queries advance them) and wall-clock times; with the configuration files setup writes.
fn converged(h: &FakeBsdHost) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in ["clock", "next_pid", "pid", "enabled_at"] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut state = h.state();
    strip(&mut state);
    let files: serde_json::Map<String, Value> = [
        "/etc/rc.conf",
        "/etc/pf.conf",
        "/boot/loader.conf",
        "/etc/hosts",
        "/usr/local/etc/bastille/bastille.conf",
        "/usr/local/etc/dnsmasq.conf",
        "/etc/devfs.rules",
        "/usr/local/etc/rc.d/warden",
    ]
    .iter()
    .map(|f| {
        let text = std::fs::read_to_string(h.path(f)).unwrap_or_default();
        (f.to_string(), Value::String(text))
    })
    .collect();
    serde_json::json!({ "state": state, "files": files })
}

/// How many tool calls `warden ARGS` makes itself on `h` (fakebsd counts them when asked to kill after one).
fn counted_calls(h: &FakeBsdHost, args: &[&str]) -> usize {
    let counter = h.p("fake/kill-count");
    let _ = std::fs::remove_file(&counter);
    let out = h.warden_env(&[("FAKEBSD_KILL_PARENT_AFTER", "0")], args);
    assert!(out.status.success(), "warden {args:?}: {}", text(&out));
    // No file means fakebsd counted nothing: a fakebsd built before FAKEBSD_KILL_PARENT_AFTER
    // (`cargo test -p warden` does not rebuild another package's binary; `cargo build -p fakebsd`).
    let n = std::fs::read_to_string(&counter).unwrap_or_else(|e| {
        panic!(
            "warden {args:?}: fakebsd counted no call ({}: {e}); is target/debug/fakebsd stale? `cargo build -p fakebsd`",
            counter.display()
        )
    });
    let _ = std::fs::remove_file(&counter);
    n.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {n:?}: {e}", counter.display()))
}

#[test]
fn full_setup_from_a_fresh_host_then_nothing_to_do() {
    let h = FakeBsdHost::fresh();
    let first = planned(&h);
    assert!(
        first.len() > 20,
        "a fresh host needs the whole setup: {first:#?}"
    );
    let out = h.warden_ok(&["setup", "--backend", "bastille"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains(&format!("warden: applied {} actions", first.len())),
        "{said}"
    );
    assert!(planned(&h).is_empty(), "the second plan must be empty");

    let state = h.state();
    for jail in ["clawdiegit", "clawdiecms", "clawdieai", "clawdiedb"] {
        assert!(
            state["jails"][jail]["jid"].is_u64(),
            "{jail} should run: {state:#}"
        );
    }
    assert_eq!(
        state["pf"]["enabled"],
        Value::Bool(true),
        "{:#}",
        state["pf"]
    );
    assert!(
        state["services"]["host:dnsmasq"].is_object(),
        "{:#}",
        state["services"]
    );
    let bridge = String::from_utf8_lossy(&h.tool(&["ifconfig", "warden0"]).stdout).to_string();
    assert!(
        bridge.contains("inet 10.0.1.1 netmask 0xffffff00"),
        "{bridge}"
    );
    // pf loaded the rule that keeps the host from routing between two workers.
    let rules = String::from_utf8_lossy(&h.tool(&["pfctl", "-sr"]).stdout).to_string();
    assert!(
        rules
            .contains("block drop quick on warden0 inet from <warden_workers> to <warden_workers>"),
        "{rules}"
    );
    // A second setup is a no-op that still confirms convergence.
    let out = h.warden_ok(&["setup", "--backend", "bastille"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing to do"),
        "{}",
        text(&out)
    );
}

/// What the next run must report of a run killed while it printed `said`: the progress line of the action
/// under way has no `ok` yet (`[K/TOTAL] summary … `); after an action's `ok` (the last one's too), the journal
/// has it done and the next run names no unconfirmed action.
fn unconfirmed(said: &str) -> Option<String> {
    let last = said.lines().rev().find(|l| l.starts_with('['))?;
    (!last.ends_with(" ok")).then(|| {
        let (k, rest) = last[1..].split_once('/').unwrap_or_default();
        let summary = rest.split_once("] ").map(|(_, s)| s).unwrap_or_default();
        format!(
            "action {k} ({}) was started but not confirmed",
            summary.trim_end_matches(" … ")
        )
    })
}

/// Kills `warden setup` after its `n`th call on a fresh host, then runs it again; returns what is wrong, if
/// anything: the crash did not happen, the clean run did not name the interrupted action, or the host differs.
fn crash_then_recover(n: usize, want: &Value) -> Option<String> {
    let h = FakeBsdHost::fresh();
    let mut crash = h.warden_cmd(&["setup", "--backend", "bastille"]);
    crash.env("FAKEBSD_KILL_PARENT_AFTER", n.to_string());
    let out = output_within(&mut crash, WARDEN_LIMIT);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.signal() != Some(9) {
        return Some(format!("call {n}: warden was not killed: {said}"));
    }
    // A run killed before its first progress line is still checked: the next run must converge all the same.
    let last = said
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .unwrap_or("(no progress line)");
    let unconfirmed = unconfirmed(&said);
    let out = h.warden(&["setup", "--backend", "bastille"]);
    let again = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Some(format!("call {n}: the clean run failed: {again}"));
    }
    if let Some(expect) = unconfirmed.filter(|e| !again.contains(e.as_str())) {
        return Some(format!("call {n}: no {expect:?} in {again}"));
    }
    let got = converged(&h);
    (got != *want)
        .then(|| format!("call {n} (after {last:?}): a different host: {got:#} vs {want:#}"))
}

/// Runs `case` for each call number in `first..=last`, two at a time (each case has a host of its own); what
/// the cases found wrong.
fn every_cut(
    first: usize,
    last: usize,
    case: &(dyn Fn(usize) -> Option<String> + Sync),
) -> Vec<String> {
    let failures = Mutex::new(Vec::new());
    let next = AtomicUsize::new(first);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n > last {
                    break;
                }
                if let Some(wrong) = case(n) {
                    failures.lock().unwrap().push(wrong);
                }
            });
        }
    });
    failures.into_inner().unwrap()
}

#[test]
fn a_crash_after_any_setup_command_is_completed_by_the_next_run() {
    // The reference: where setup's own commands start and end (after the plan's observation, before the
    // verify step's doctor), and the host a clean setup leaves.
    let reference = FakeBsdHost::fresh();
    let observe = counted_calls(&reference, &["plan", "--backend", "bastille"]);
    let setup = counted_calls(&reference, &["setup", "--backend", "bastille"]);
    let verify = counted_calls(&reference, &["doctor", "--backend", "bastille"]);
    let want = converged(&reference);
    let (first, last) = (observe + 1, setup - verify);
    assert!(
        last > first + 40,
        "setup's commands: {first}..={last} (observe {observe}, setup {setup}, verify {verify})"
    );
    // Each case is two short setups on its own simulated host.
    let failures = every_cut(first, last, &|n| crash_then_recover(n, &want));
    assert!(failures.is_empty(), "{failures:#?}");
}

/// What a finished `warden teardown` shows besides its host: an empty third plan and a doctor that says
/// "not set up" (exit 1).
fn torn_down(h: &FakeBsdHost) -> Result<(), String> {
    let out = h.warden(&["teardown", "--backend", "bastille", "--dry-run"]);
    if !out.status.success() || !String::from_utf8_lossy(&out.stdout).contains("nothing to do") {
        return Err(format!(
            "the plan after teardown is not empty: {}",
            text(&out)
        ));
    }
    let out = h.warden(&["doctor", "--backend", "bastille"]);
    if out.status.code() != Some(1) || !String::from_utf8_lossy(&out.stdout).contains("not set up")
    {
        return Err(format!("the doctor after teardown: {}", text(&out)));
    }
    Ok(())
}

/// Kills `warden teardown` after its `n`th call on a copy of the set-up host `set_up`, then runs it again:
/// that host, or what is wrong (as [`crash_then_recover`], and [`torn_down`]).
fn crash_then_finish_teardown(
    set_up: &FakeBsdHost,
    n: usize,
    want: &Value,
) -> Result<FakeBsdHost, String> {
    let h = set_up.copy();
    let mut crash = h.warden_cmd(&["teardown", "--backend", "bastille"]);
    crash.env("FAKEBSD_KILL_PARENT_AFTER", n.to_string());
    let out = output_within(&mut crash, WARDEN_LIMIT);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    if out.status.signal() != Some(9) {
        return Err(format!("call {n}: warden was not killed: {said}"));
    }
    let last = said
        .lines()
        .rev()
        .find(|l| l.starts_with('['))
        .unwrap_or("");
    let unconfirmed = unconfirmed(&said);
    let out = h.warden(&["teardown", "--backend", "bastille"]);
    let again = String::from_utf8_lossy(&out.stderr).to_string();
    if !out.status.success() {
        return Err(format!(
            "call {n} (after {last:?}): the next teardown failed: {again}"
        ));
    }
    if let Some(expect) = unconfirmed.filter(|e| !again.contains(e.as_str())) {
        return Err(format!("call {n}: no {expect:?} in {again}"));
    }
    let got = converged(&h);
    if got != *want {
        return Err(format!(
            "call {n} (after {last:?}): a different host: {got:#} vs {want:#}"
        ));
    }
    torn_down(&h).map_err(|e| format!("call {n} (after {last:?}): {e}"))?;
    Ok(h)
}

#[test]
fn a_crash_after_any_teardown_command_is_completed_by_the_next_run() {
    let set_up = FakeBsdHost::fresh();
    set_up.warden_ok(&["setup", "--backend", "bastille"]);
    assert!(
        !set_up.teardown_residue().is_empty(),
        "a set-up host shows what teardown removes"
    );
    // The reference: an uncrashed teardown on a copy, and where its own commands start and end (after the
    // plan's observation, before the re-plan that confirms it).
    let reference = set_up.copy();
    let dry = ["teardown", "--backend", "bastille", "--dry-run"];
    let observe = counted_calls(&reference, &dry);
    let teardown = counted_calls(&reference, &["teardown", "--backend", "bastille"]);
    let replan = counted_calls(&reference, &dry);
    let left = reference.teardown_residue();
    assert!(left.is_empty(), "{left:#?}");
    torn_down(&reference).unwrap();
    let want = converged(&reference);
    let (first, last) = (observe + 1, teardown - replan);
    assert!(
        last > first + 10,
        "teardown's commands: {first}..={last} (observe {observe}, teardown {teardown}, re-plan {replan})"
    );
    let kept = Mutex::new(None);
    // Each case is a copy of the set-up host and two short teardowns.
    let failures = every_cut(first, last, &|n| {
        match crash_then_finish_teardown(&set_up, n, &want) {
            Ok(h) if n == (first + last) / 2 => *kept.lock().unwrap() = Some(h),
            Ok(_) => {}
            Err(wrong) => return Some(wrong),
        }
        None
    });
    assert!(failures.is_empty(), "{failures:#?}");

    // Setup rebuilds the layout around the kept db jail on a host whose teardown was cut halfway.
    let h = kept.into_inner().unwrap().expect("the halfway case's host");
    h.warden_ok(&["setup", "--backend", "bastille"]);
    assert!(
        planned(&h).is_empty(),
        "the plan after setup again is not empty"
    );
}

#[test]
fn workers_run_a_command_and_leave_nothing_behind() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    assert!(h.tool(&["fakebsd", "reboot"]).status.success());
    let run = |extra: &[&str], argv: &[&str]| {
        let mut args = vec!["run", "--backend", "bastille"];
        args.extend_from_slice(extra);
        args.push("--");
        args.extend_from_slice(argv);
        h.warden(&args)
    };
    let out = run(&[], &["echo", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    // A networked worker: the command's own exit status and both streams come back.
    let out = run(
        &["--network", "vnet"],
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("err\n"),
        "{}",
        text(&out)
    );

    // A worker's port on the bridge is private (workers forward nothing to each other), seen while it runs.
    let mut busy = h
        .warden_cmd(&[
            "run",
            "--backend",
            "bastille",
            "--network",
            "vnet",
            "--",
            "sh",
            "-c",
            "i=0; while (( i < 400000 )); do (( i++ )); done",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Between `addm` and `private` the port is briefly an ordinary member: wait for the flag.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut member: Option<String> = None;
    let private = |m: &Option<String>| m.as_deref().is_some_and(|m| m.contains("PRIVATE"));
    while busy.try_wait().unwrap().is_none() && !private(&member) {
        if std::time::Instant::now() > deadline {
            let _ = busy.kill();
            panic!("the busy worker did not end within 120 s");
        }
        let bridge = String::from_utf8_lossy(&h.tool(&["ifconfig", "warden0"]).stdout).to_string();
        if let Some(line) = bridge
            .lines()
            .find(|l| l.contains("member: e0a_") && !l.contains("clawdie"))
        {
            member = Some(line.to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = busy.kill();
    let _ = busy.wait();
    let member = member.expect("the worker's port never showed on the bridge");
    assert!(
        member.contains("flags=943<LEARNING,DISCOVER,PRIVATE,"),
        "{member}"
    );

    // An unknown user is an infrastructure failure (125), not the command's exit 1.
    let out = h.warden_env(
        &[("WARDEN_WORKER_USER", "nosuchuser")],
        &["run", "--backend", "bastille", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));

    let datasets =
        String::from_utf8_lossy(&h.tool(&["zfs", "list", "-H", "-o", "name"]).stdout).to_string();
    assert!(
        !datasets.lines().any(|d| d.contains("/workers/")),
        "clone leaked: {datasets}"
    );
    let ifaces = String::from_utf8_lossy(&h.tool(&["ifconfig", "-l"]).stdout).to_string();
    assert!(!ifaces.contains("epair"), "epair leaked: {ifaces}");
    let jails = String::from_utf8_lossy(&h.tool(&["jls", "name"]).stdout).to_string();
    assert!(
        jails.lines().all(|j| j.starts_with("clawdie")),
        "jail leaked: {jails}"
    );
    // The worker template snapshot stays for the next worker.
    let snaps = h.tool(&["zfs", "list", "-H", "-o", "name", "-t", "snapshot"]);
    assert!(
        String::from_utf8_lossy(&snaps.stdout).contains("releases/15.0-RELEASE@warden-worker"),
        "{}",
        text(&snaps)
    );
}

#[test]
fn a_snapshot_without_a_tag_is_named_by_its_time() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    let out = h.warden_ok(&["snapshot", "--backend", "bastille", "clawdiegit"]);
    let tag = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        tag.starts_with("warden-") && tag.len() == "warden-20261123-173405".len(),
        "{tag}"
    );
    let out = h.warden_ok(&["snapshots", "--backend", "bastille", "clawdiegit"]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with(&format!("{tag} "))),
        "{}",
        text(&out)
    );
    // Deleted with `zfs destroy -r`: the jail dataset's snapshot and its /root's; again it is bad input.
    let all = || text(&h.tool(&["zfs", "list", "-H", "-o", "name", "-t", "snapshot"]));
    assert!(
        all().contains(&format!("clawdiegit/root@{tag}")),
        "{}",
        all()
    );
    let delete = [
        "snapshots",
        "--backend",
        "bastille",
        "clawdiegit",
        "--delete",
        &tag,
    ];
    h.warden_ok(&delete);
    assert!(!all().contains(&format!("@{tag}")), "{}", all());
    let out = h.warden(&delete);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`warden snapshots clawdiegit`"),
        "{}",
        text(&out)
    );
}
