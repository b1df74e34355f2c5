//! Store behaviour across handles: crash recovery after an unclean stop, and concurrent writers under WAL.

use std::sync::Arc;
use std::thread;

use serde_json::json;
use warden_store::{
    EventKind, NewTurn, RecoveryPolicy, Store, TurnFilter, TurnId, TurnKind, TurnOutcome,
    TurnStatus,
};

fn new_turn(tenant: &str) -> NewTurn {
    NewTurn {
        tenant: tenant.into(),
        kind: TurnKind::Argv,
        request: json!({"argv": ["sleep", "100"]}),
    }
}

/// Leaves one turn running, one queued and one finished, then "crashes" (the handle is leaked, so
/// nothing is closed cleanly). Returns (running, queued, finished).
fn crashed_server(path: &std::path::Path) -> (TurnId, TurnId, TurnId) {
    let store = Store::open(path).unwrap();
    let running = store.create_turn(&new_turn("a")).unwrap().id;
    store.start_turn(&running, "w101").unwrap();
    store
        .append_event(&running, EventKind::Stdout, "partial output")
        .unwrap();
    let queued = store.create_turn(&new_turn("a")).unwrap().id;
    let finished = store.create_turn(&new_turn("b")).unwrap().id;
    store.start_turn(&finished, "w102").unwrap();
    let ok = TurnOutcome {
        status: Some(TurnStatus::Succeeded),
        exit_code: Some(0),
        ..TurnOutcome::default()
    };
    store.finish_turn(&finished, &ok).unwrap();
    std::mem::forget(store);
    (running, queued, finished)
}

#[test]
fn fail_all_after_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    let (running, queued, finished) = crashed_server(&path);
    let store = Store::open(&path).unwrap();
    let mut changed = store.mark_interrupted(RecoveryPolicy::FailAll).unwrap();
    changed.sort();
    let mut want = vec![running.clone(), queued.clone()];
    want.sort();
    assert_eq!(changed, want);
    for id in [&running, &queued] {
        let t = store.get_turn(id).unwrap().unwrap();
        assert_eq!(t.status, TurnStatus::Failed);
        assert_eq!(t.failure.as_deref(), Some("interrupted"));
        assert!(t.finished_ms.is_some());
    }
    assert_eq!(
        store.get_turn(&finished).unwrap().unwrap().status,
        TurnStatus::Succeeded
    );
    // Events written before the crash survive.
    assert_eq!(
        store.events_since(&running, 0).unwrap()[0].data,
        "partial output"
    );
    // Recovery is idempotent.
    assert!(store
        .mark_interrupted(RecoveryPolicy::FailAll)
        .unwrap()
        .is_empty());
}

#[test]
fn fail_running_keeps_queued() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    let (running, queued, _) = crashed_server(&path);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.mark_interrupted(RecoveryPolicy::FailRunning).unwrap(),
        vec![running.clone()]
    );
    assert_eq!(
        store.get_turn(&running).unwrap().unwrap().status,
        TurnStatus::Failed
    );
    assert_eq!(
        store.get_turn(&queued).unwrap().unwrap().status,
        TurnStatus::Queued
    );
}

#[test]
fn requeue_running() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    let (running, queued, _) = crashed_server(&path);
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store
            .mark_interrupted(RecoveryPolicy::RequeueRunning)
            .unwrap(),
        vec![running.clone()]
    );
    let t = store.get_turn(&running).unwrap().unwrap();
    assert_eq!(t.status, TurnStatus::Queued);
    assert_eq!(t.worker, None);
    assert_eq!(t.started_ms, None);
    let queue = TurnFilter {
        status: Some(TurnStatus::Queued),
        ..TurnFilter::default()
    };
    assert_eq!(store.list_turns(&queue, 10).unwrap().len(), 2);
    // A requeued turn can be started again.
    store.start_turn(&running, "w103").unwrap();
    assert_eq!(
        store.get_turn(&queued).unwrap().unwrap().status,
        TurnStatus::Queued
    );
}

#[test]
fn concurrent_writers_on_two_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warden.db");
    let setup = Store::open(&path).unwrap();
    let shared_turn = setup.create_turn(&new_turn("shared")).unwrap().id;
    drop(setup);
    const PER_THREAD: usize = 200;
    let handles: Vec<_> = (0..2)
        .map(|n| {
            let path = path.clone();
            let shared_turn = shared_turn.clone();
            thread::spawn(move || {
                // Each thread has its own connection: real cross-connection locking under WAL.
                let store = Store::open(&path).unwrap();
                let mut seqs = Vec::new();
                for i in 0..PER_THREAD {
                    let t = store.create_turn(&new_turn(&format!("t{n}"))).unwrap();
                    store.start_turn(&t.id, &format!("w{n}")).unwrap();
                    let appended = store
                        .append_event(&shared_turn, EventKind::Stdout, &format!("{n}:{i}"))
                        .unwrap();
                    seqs.push(appended.seq().unwrap());
                }
                seqs
            })
        })
        .collect();
    let mut all_seqs: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all_seqs.sort();
    // Every append got a distinct seq, with no gaps.
    assert_eq!(all_seqs, (1..=2 * PER_THREAD as u64).collect::<Vec<_>>());
    let store = Store::open(&path).unwrap();
    assert_eq!(
        store.events_since(&shared_turn, 0).unwrap().len(),
        2 * PER_THREAD
    );
    let running = TurnFilter {
        status: Some(TurnStatus::Running),
        ..TurnFilter::default()
    };
    assert_eq!(
        store.list_turns(&running, 1000).unwrap().len(),
        2 * PER_THREAD
    );
}

#[test]
fn one_handle_shared_between_threads() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let turn = store.create_turn(&new_turn("x")).unwrap().id;
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            let turn = turn.clone();
            thread::spawn(move || {
                for _ in 0..50 {
                    store.append_event(&turn, EventKind::Agent, "{}").unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.get_turn(&turn).unwrap().unwrap().event_count, 200);
}
