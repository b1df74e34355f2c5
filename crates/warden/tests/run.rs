//! `warden run` end to end through the CLI: exit statuses, limits, VNET with DNS, and no residue.

mod common;

#[cfg(target_os = "linux")]
use std::process::Command;

use common::{warden_bin, Netns};

fn run_in(ns: &Netns, state: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::ensure_worker_account();
    let mut full = vec![
        warden_bin().display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
        "run".into(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.exec(&refs)
}

/// A VNET test's world: the root-test lock (the VNET tests expect and hold particular addresses), a
/// namespace and a state directory; the dnsmasq `warden run --network vnet` started for it is stopped when the
/// test ends, however it ends.
#[cfg(target_os = "linux")]
struct VnetTest {
    _serial: warden_testkit::Serial,
    ns: Netns,
    dir: tempfile::TempDir,
}

#[cfg(target_os = "linux")]
impl VnetTest {
    fn new(name: &str) -> VnetTest {
        let serial = warden_testkit::root_test(name).expect("root_test never skips");
        VnetTest {
            _serial: serial,
            ns: Netns::new(),
            dir: tempfile::tempdir().unwrap(),
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for VnetTest {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("dnsmasq.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Nothing of a worker may remain: no records, no leases held, no veths, no worker mounts.
fn assert_no_residue(ns: &Netns, state: &std::path::Path) {
    // Teardown finishes in the helper after the CLI returns; give it a moment, then insist.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let records = std::fs::read_dir(state.join("workers"))
            .map(|d| d.count())
            .unwrap_or(0);
        let links = ns.exec_ok(&["ip", "-o", "link"]);
        let veths = links.lines().filter(|l| l.contains("e0a_")).count();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let worker_mounts = mounts
            .lines()
            .filter(|l| l.contains(&state.display().to_string()))
            .count();
        if records == 0 && veths == 0 && worker_mounts == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "residue: {records} records, {veths} veths, {worker_mounts} mounts\n{links}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn statuses_limits_and_output_pass_through() {
    let ns = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path();
    let o = run_in(&ns, state, &["--", "echo", "hi"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(0), "hi\n"));
    // Issue 18: workers run as the worker account setup created, with no override.
    let o = run_in(&ns, state, &["--", "id", "-un"]);
    assert_eq!(
        (o.status.code(), stdout(&o).as_str()),
        (Some(0), "clawdie\n")
    );
    let o = run_in(&ns, state, &["--", "id", "-u"]);
    assert_eq!(stdout(&o), "1500\n");
    let o = run_in(
        &ns,
        state,
        &[
            "--network",
            "none",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 7",
        ],
    );
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let o = run_in(&ns, state, &["--timeout", "300ms", "--", "sleep", "10"]);
    assert_eq!(
        o.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("wall-clock limit"));
    let o = run_in(
        &ns,
        state,
        &[
            "--memory",
            "32M",
            "--",
            "python3",
            "-c",
            "x = b'a' * (256 << 20)",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(137),
        "stderr: {} stdout: {}",
        String::from_utf8_lossy(&o.stderr),
        stdout(&o)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("memory limit"));
    let o = run_in(
        &ns,
        state,
        &["--output", "1K", "--", "sh", "-c", "yes | head -c 100000"],
    );
    assert_eq!(o.status.code(), Some(141));
    assert!(o.stdout.len() <= 1024, "{}", o.stdout.len());
    // A worker cannot see this process, nor read a host file outside its root.
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret").unwrap();
    let o = run_in(
        &ns,
        state,
        &[
            "--",
            "sh",
            "-c",
            &format!("cat {} 2>&1; ps -e -o pid= | wc -l", secret.display()),
        ],
    );
    let text = stdout(&o);
    assert!(!text.contains("s3cret"), "{text}");
    assert_no_residue(&ns, state);
    let bad = run_in(&ns, state, &["--memory", "lots", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[cfg(target_os = "linux")]
#[test]
fn vnet_worker_gets_a_lease_resolves_names_and_leaves_nothing() {
    // Serialised with the held-name test below, which holds w101 (the address this one expects).
    let t = VnetTest::new("vnet_worker_gets_a_lease");
    let (ns, state) = (&t.ns, t.dir.path());
    let o = run_in(
        ns,
        state,
        &[
            "--network",
            "vnet",
            "--",
            "sh",
            "-c",
            "ip -4 -o addr show eth0; getent hosts git.home.arpa",
        ],
    );
    let text = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(text.contains("10.0.1.101/24"), "{text}");
    assert!(
        text.contains("10.0.1.2") && text.contains("git.home.arpa"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("applying steps host and dns"));
    // The second run finds the host network ready and says nothing about it.
    let o = run_in(ns, state, &["--network", "vnet", "--", "true"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Later runs skip the full observation (a marker for this boot and namespace), but a bridge
    // gone since is noticed and the host network set up again.
    assert!(state.join("host-network.ok").is_file());
    let del = ns.exec(&["ip", "link", "del", "warden0"]);
    assert!(del.status.success(), "{del:?}");
    let o = run_in(ns, state, &["--network", "vnet", "--", "true"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("applying steps host"));
    assert_no_residue(ns, state);
}

/// Worker names are machine-wide (cgroups, claims) while leases are per state directory: when
/// another state directory's worker, or a killed server's not yet reaped, holds the name of the
/// first free address, the worker takes the next address instead of failing.
#[cfg(target_os = "linux")]
#[test]
fn a_vnet_worker_whose_name_is_held_elsewhere_takes_the_next_address() {
    let t = VnetTest::new("a_vnet_worker_whose_name_is_held_elsewhere");
    let (ns, state) = (&t.ns, t.dir.path());
    // Hold the claim on `w101` as another live worker's helper does (the same call). The previous
    // test's w101 may still be tearing down, holding it: wait for it, with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let claim = loop {
        if let Some(claim) = warden_linux::cgroup::claim("w101").unwrap() {
            break claim;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "w101's claim was never free"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let o = run_in(
        ns,
        state,
        &[
            "--network",
            "vnet",
            "--",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ],
    );
    claim.release();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(stdout(&o).contains("10.0.1.102/24"), "{}", stdout(&o));
    assert_no_residue(ns, state);
}
