//! Benchmark of the API's hot path: `POST /v1/turns?wait=true` of `true` (argv turn, no
//! network, a cold worker each time) at 1 and 16 concurrent clients; prints p50, p95, turns/s.
//!
//! Run as root: `cargo run --release -p warden-server --example bench_api [-- TURNS]`.
//! The server runs in this process on 127.0.0.1 (an ephemeral port); this binary is also the
//! worker helper (`__worker`), as the `warden` binary is in production.

use std::time::{Duration, Instant};

fn main() {
    if std::env::args().nth(1).as_deref() == Some(warden_linux::HELPER_ARG) {
        warden_linux::helper_main();
    }
    let turns: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let state = tempfile::Builder::new()
        .prefix("wbench")
        .tempdir()
        .expect("state dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(bench(state.path(), turns));
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn bench(state: &std::path::Path, turns: usize) {
    let loaded = warden_core::load(None, &|_| None, &Vec::new()).expect("config");
    let layout = warden_core::Layout::from_loaded(&loaded).expect("layout");
    let mut opts = warden_server::ServeOptions::new(state);
    opts.listen = Some(vec!["127.0.0.1:0".parse().unwrap()]);
    opts.concurrency = 16;
    opts.queue_size = 1024;
    // No pi install in the background while measuring.
    opts.pi_dir = Some(state.join("no-pi"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(warden_server::serve_until(layout, opts, async move {
        let _ = stop_rx.await;
    }));
    let serve_file = state.join("serve.json");
    let start = Instant::now();
    while !serve_file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "server did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = warden_server::Client::from_state_dir(state, 0).expect("client");
    // Warm-up: page cache, first cgroup directories, connection.
    for _ in 0..10 {
        run_one(&client).await;
    }
    for clients in [1usize, 16] {
        let n = if clients == 1 { turns / 2 } else { turns };
        let t0 = Instant::now();
        let mut handles = Vec::new();
        for c in 0..clients {
            let client = client.clone();
            let mine = n / clients + usize::from(c < n % clients);
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(mine);
                for _ in 0..mine {
                    lat.push(run_one(&client).await);
                }
                lat
            }));
        }
        let mut lat: Vec<Duration> = Vec::new();
        for h in handles {
            lat.extend(h.await.expect("client task"));
        }
        let wall = t0.elapsed();
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "clients={clients:2} turns={:4} p50={:6.1} ms p95={:6.1} ms max={:6.1} ms turns/s={:6.1}",
            lat.len(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            lat.last().unwrap().as_secs_f64() * 1e3,
            lat.len() as f64 / wall.as_secs_f64()
        );
    }
    let _ = stop_tx.send(());
    let _ = server.await;
}

async fn run_one(client: &warden_server::Client) -> Duration {
    let t = Instant::now();
    let v = client
        .run_remote("bench", &["true".to_string()])
        .await
        .expect("turn");
    assert_eq!(v.status.as_str(), "succeeded", "{v:?}");
    t.elapsed()
}
