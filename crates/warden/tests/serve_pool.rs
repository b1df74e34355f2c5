//! The warm pool in `warden serve` (`workers.pool`): argv turns run on parked workers (never reused), the pool
//! refills, and a server shutdown leaves nothing of the pool behind.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, Instant};

use common::server::{assert_no_residue, root_server};

#[tokio::test]
async fn argv_turns_take_parked_workers_and_shutdown_leaves_nothing() {
    let (_lock, _net, state, mut srv) = root_server(
        "argv_turns_take_parked_workers_and_shutdown_leaves_nothing",
        &[],
        &[("WARDEN_POOL_SIZE", "2")],
    );
    let parked = || {
        let mut names = warden_linux::record::list(state.path());
        names.retain(|n| n.starts_with('p'));
        names
    };
    let wait_parked = |n: usize| {
        let start = Instant::now();
        while parked().len() < n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "pool did not fill: {:?}",
                parked()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // A record is claimed when parking starts; give the helpers time to finish parking.
        std::thread::sleep(Duration::from_millis(1500));
    };
    wait_parked(2);
    let mut workers = Vec::new();
    for i in 0..3 {
        let a = srv
            .post(
                "/v1/turns?wait=true",
                &format!(r#"{{"tenant":"t{i}","argv":["sh","-c","hostname; echo $TURN"],"env":{{"TURN":"{i}"}}}}"#),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(a.body["status"], "succeeded", "{}", a.text);
        let worker = a.body["worker"].as_str().unwrap().to_string();
        assert!(worker.starts_with('p'), "turn {i} ran cold on {worker}");
        assert_eq!(a.body["stdout"], format!("{worker}\n{i}\n"));
        workers.push(worker);
        wait_parked(2);
    }
    workers.sort();
    workers.dedup();
    assert_eq!(workers.len(), 3, "a parked worker served two turns");
    let mut all = parked();
    all.extend(workers);
    assert!(
        srv.terminate(Duration::from_secs(20)),
        "server did not stop"
    );
    // The server waited for its parked workers' teardown before exiting.
    assert!(
        parked().is_empty(),
        "records left after shutdown: {:?}",
        parked()
    );
    for name in &all {
        for ctl in ["memory", "pids", "cpu"] {
            let dir = std::path::Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("warden")
                .join(name);
            assert!(!dir.exists(), "cgroup left: {}", dir.display());
        }
    }
    assert_no_residue(state.path());
}
