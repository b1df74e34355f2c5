//! `warden bench --backend bastille` through the binary against fakebsd: every turn of each network mode
//! succeeds, and the commands Warden counted per turn are exactly the tool calls the simulated host logged
//! (`FAKEBSD_CALL_LOG`), with the per-turn costs pinned so a new command per turn shows up here.

mod common;

use warden_testkit::FakeBsdHost;

#[test]
fn bench_bastille_counts_the_commands_of_a_turn() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    assert!(h.tool(&["fakebsd", "reboot"]).status.success());
    let log = h.p("calls.log");
    let out = h.warden_env(
        &[("FAKEBSD_CALL_LOG", log.to_str().unwrap())],
        &["bench", "--backend", "bastille", "--turns", "3", "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", common::text(&out)));
    assert!(out.status.success(), "{}", common::text(&out));
    assert_eq!(report["failures"], 0, "{report:#}");
    for (mode, commands, zfs, jexec) in [("none", 8, 2, 1), ("shared", 8, 2, 1), ("vnet", 17, 2, 3)]
    {
        let s = &report["cold"][mode];
        assert_eq!(s["turns"], 3, "{mode}: {s:#}");
        assert_eq!(
            s["commands_per_turn"], s["call_log_commands_per_turn"],
            "{mode}: Warden's count and the simulated host's log differ: {s:#}"
        );
        assert_eq!(
            (
                s["commands_per_turn"].as_u64(),
                s["zfs_ops_per_turn"].as_u64(),
                s["zfs_writes_per_turn"].as_u64(),
                s["jexec_per_turn"].as_u64()
            ),
            (Some(commands), Some(zfs), Some(2), Some(jexec)),
            "{mode}: {s:#}"
        );
    }
    assert!(report["pooled"].is_null(), "{report:#}");
    // Nothing of the bench's workers is left on the simulated host.
    let st = h.state();
    let left: Vec<&String> = st["datasets"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|d| d.contains("/workers/"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
