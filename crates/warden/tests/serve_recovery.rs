//! Crash recovery (`kill -9` of the server mid-turn, then a restart) and graceful shutdown
//! (SIGTERM: running turns get a deadline, then are cancelled; queued turns survive).
#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::server::{
    assert_no_residue, enter, id_of, root_server, root_test, sse, start_server, state_dir,
    test_net, TestNet,
};
use common::Serve;
use serde_json::Value;

/// A server in `net` that runs interrupted turns again.
fn start_requeuing(net: &TestNet, state: &Path, extra: &[&str]) -> Serve {
    let mut args = vec!["--recovery", "requeue_running"];
    args.extend_from_slice(extra);
    start_server(net, state, &args, &[])
}

#[tokio::test]
async fn kill_9_mid_turn_then_restart_fails_running_requeues_queued_and_leaves_nothing() {
    let (_lock, net, state, mut srv) =
        root_server("kill_9_mid_turn_then_restart", &["--concurrency", "1"], &[]);
    let done = srv
        .post_id("/v1/turns?wait=true", r#"{"tenant":"a","argv":["true"]}"#)
        .await;
    // A vnet-less running turn and a networked (leased) one would both do; use shared+none.
    let running = srv
        .post_id(
            "/v1/turns",
            r#"{"tenant":"a","argv":["sh","-c","echo started; sleep 30"]}"#,
        )
        .await;
    let queued = srv
        .post_id(
            "/v1/turns",
            r#"{"tenant":"b","argv":["sh","-c","echo second"]}"#,
        )
        .await;
    let r = srv
        .wait_turn(&running, Duration::from_secs(10), |v| {
            v["stdout"] == "started\n" || v["status"] == "running"
        })
        .await;
    assert_eq!(r["status"], "running");
    // Wait for the output event, so the worker is surely up.
    let start = Instant::now();
    while !srv
        .get(&format!("/v1/turns/{running}"))
        .await
        .text
        .contains("running")
        || start.elapsed() < Duration::from_millis(300)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let worker = r["worker"].as_str().unwrap().to_string();
    assert!(
        warden_linux::record::list(state.path()).contains(&worker),
        "the worker is live"
    );
    srv.kill9();

    let srv = start_server(&net, state.path(), &["--concurrency", "1"], &[]);
    let r = srv.get(&format!("/v1/turns/{running}")).await.body;
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["failure"], "interrupted");
    // Its event stream ends (the restart stored an end event with the result).
    let evs = sse(&srv.base, &srv.token, &running, None).await;
    assert_eq!(evs.last().unwrap().1, "end");
    let end: Value = serde_json::from_str(&evs.last().unwrap().2).unwrap();
    assert_eq!(end["status"], "failed");
    // The queued turn was re-queued and ran.
    let q = srv
        .wait_turn(&queued, Duration::from_secs(20), |v| {
            v["status"] == "succeeded"
        })
        .await;
    assert_eq!(q["stdout"], "second\n");
    // No recorded turn was lost.
    let all = srv.get("/v1/turns").await.body;
    let ids: Vec<String> = all["turns"].as_array().unwrap().iter().map(id_of).collect();
    for id in [&done, &running, &queued] {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
    // The killed server's worker is gone: records, cgroups, leases.
    assert_no_residue(state.path());
}

#[tokio::test]
async fn kill_9_with_a_networked_worker_frees_its_lease() {
    let _lock = root_test("kill_9_with_a_networked_worker_frees_its_lease");
    let net = test_net();
    enter(&net);
    let state = state_dir();
    let mut srv = start_requeuing(&net, state.path(), &[]);
    let running = srv.post_id("/v1/turns", r#"{"tenant":"a","network":"vnet","argv":["sh","-c","ip -4 -o addr show eth0 | grep -q 10.0.1.101 && sleep 30"]}"#).await;
    let v = srv
        .wait_turn(&running, Duration::from_secs(10), |v| {
            v["status"] == "running"
        })
        .await;
    assert_eq!(v["worker"], "w101");
    tokio::time::sleep(Duration::from_millis(300)).await;
    srv.kill9();
    // The killed server's helper sees its lifeline close and tears the worker down; the address
    // is free once the worker's record is gone (the kernel's netns teardown can take a while
    // on a loaded machine, and a restart before it would rightly lease the next address).
    assert!(
        warden_linux::wait_torn_down(state.path(), "w101", Duration::from_secs(10)),
        "w101 still recorded 10 s after the kill"
    );
    let mut srv = start_requeuing(&net, state.path(), &["--shutdown-deadline", "200ms"]);
    // requeue_running: the interrupted turn runs again, on the same (freed) address.
    let v = srv
        .wait_turn(&running, Duration::from_secs(10), |v| {
            v["status"] == "running"
        })
        .await;
    assert_eq!(v["worker"], "w101", "the lease was freed");
    assert!(srv.terminate(Duration::from_secs(15)));
    assert_no_residue(state.path());
}

#[tokio::test]
async fn sigterm_lets_turns_finish_until_the_deadline_then_cancels() {
    let (_lock, net, state, mut srv) = root_server(
        "sigterm_lets_turns_finish_until_the_deadline_then_cancels",
        &["--concurrency", "2", "--shutdown-deadline", "1500ms"],
        &[],
    );
    let quick = srv
        .post_id("/v1/turns", r#"{"tenant":"a","argv":["sleep","0.5"]}"#)
        .await;
    let slow = srv
        .post_id("/v1/turns", r#"{"tenant":"b","argv":["sleep","30"]}"#)
        .await;
    let waiting = srv
        .post_id("/v1/turns", r#"{"tenant":"a","argv":["true"]}"#)
        .await;
    srv.wait_turn(&slow, Duration::from_secs(10), |v| v["status"] == "running")
        .await;
    let started = Instant::now();
    assert!(srv.terminate(Duration::from_secs(15)), "server exits");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    let srv = start_server(&net, state.path(), &["--concurrency", "2"], &[]);
    let q = srv.get(&format!("/v1/turns/{quick}")).await.body;
    assert_eq!(
        q["status"], "succeeded",
        "finished within the deadline: {q}"
    );
    let s = srv.get(&format!("/v1/turns/{slow}")).await.body;
    assert_eq!(s["status"], "cancelled", "{s}");
    assert_eq!(s["failure"], "shutdown");
    // The queued turn survived the shutdown and runs after the restart.
    srv.wait_turn(&waiting, Duration::from_secs(10), |v| {
        v["status"] == "succeeded"
    })
    .await;
    drop(srv);
    assert_no_residue(state.path());
}
