//! The HTTP API path (`--api`): a `warden serve` in this process on 127.0.0.1 with its own state directory, once
//! without a pool (cold) and once with one (pooled, then throughput per client count).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::series::{busy_between, cpu_ticks, ms, Series};
use super::Env;

/// The API path: cold turns, pooled turns, and throughput per client count.
pub(super) fn bench_api(env: &Env, turns: usize, clients: &[usize]) -> Result<Value, String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("failed to start tokio: {e}"))?;
    let mut report = json!({"via": "api", "pool_size": env.pool_size});
    let max_clients = clients.iter().copied().max().unwrap_or(1);
    let mut failures = 0;
    // Cold: a server without a pool.
    let cold = rt.block_on(api_series(env, 0, max_clients, &[1], turns))?;
    failures += cold.iter().map(|(_, s)| s.failures).sum::<usize>();
    report["cold"] = cold[0].1.json();
    // Pooled: one client, then each client count for throughput.
    let mut counts = vec![1];
    counts.extend(clients.iter().copied());
    let pooled = rt.block_on(api_series(env, env.pool_size, max_clients, &counts, turns))?;
    failures += pooled.iter().map(|(_, s)| s.failures).sum::<usize>();
    report["pooled"] = pooled[0].1.json();
    let mut thr = json!({});
    for (c, s) in &pooled[1..] {
        thr[format!("clients_{c}")] = s.json();
    }
    report["throughput"] = thr;
    report["failures"] = json!(failures);
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(report)
}

/// Starts a server (pool of `pool` for network none), runs one series per client count in
/// `counts` (the first with one client waits for a full pool before each turn), stops it.
async fn api_series(
    env: &Env,
    pool: usize,
    max_clients: usize,
    counts: &[usize],
    turns: usize,
) -> Result<Vec<(usize, Series)>, String> {
    let state = env.state.join(format!("api-{pool}"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = start_server(env, &state, pool, max_clients, async move {
        let _ = stop_rx.await;
    })?;
    let serve_file = state.join("serve.json");
    let start = Instant::now();
    while !serve_file.exists() {
        if start.elapsed() > Duration::from_secs(20) || server.is_finished() {
            return Err("the benchmark's server did not start".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let client = warden_server::Client::from_state_dir(&state, 0).map_err(|e| e.to_string())?;
    // Let the pool fill before measuring.
    let full = Instant::now();
    while pool > 0 && parked_now(&client).await < pool && full.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..5 {
        let _ = client.run_remote("benchw", &["true".to_string()]).await;
    }
    let mut out = Vec::new();
    for (i, &c) in counts.iter().enumerate() {
        let total = if c == 1 { turns } else { turns.max(c) };
        let wait_full = i == 0 && pool > 0;
        let t0 = Instant::now();
        let cpu0 = cpu_ticks();
        let mut s = clients_series(&client, c, total, wait_full.then_some(pool)).await?;
        // The first series (one client waiting for a full pool) is latency, not throughput.
        if i > 0 {
            s.wall = t0.elapsed();
            s.cpu_busy = busy_between(cpu0, cpu_ticks());
        }
        out.push((c, s));
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(out)
}

/// A `warden serve` on 127.0.0.1 (any port) with its own state directory `state`, `pool` parked workers for
/// network none, until `stop` completes. Argv turns only: no npm install of pi competes with the measured turns.
fn start_server(
    env: &Env,
    state: &Path,
    pool: usize,
    max_clients: usize,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<tokio::task::JoinHandle<Result<(), warden_server::ServerError>>, String> {
    let mut opts = warden_server::ServeOptions::new(state);
    opts.listen = Some(vec!["127.0.0.1:0".parse().map_err(|e| format!("{e}"))?]);
    opts.concurrency = max_clients;
    opts.queue_size = 4096;
    opts.pi_dir = Some(state.join("no-pi"));
    std::fs::create_dir_all(state).map_err(|e| format!("{}: {e}", state.display()))?;
    let mut linux = warden_linux::LinuxOptions::new(state);
    linux.pool[0] = pool;
    linux.zygote = true;
    let workers = Arc::new(warden_linux::LinuxWorkers::new(&env.layout, linux));
    let layout = env.layout.clone();
    Ok(tokio::spawn(warden_server::serve_until(
        layout, opts, workers, stop,
    )))
}

/// `total` turns of `true` from `clients` concurrent clients, one tenant each; with `wait_for` each turn first
/// waits (up to 2 s) until the server has that many workers parked.
async fn clients_series(
    client: &warden_server::Client,
    clients: usize,
    total: usize,
    wait_for: Option<usize>,
) -> Result<Series, String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for k in 0..clients {
        let client = client.clone();
        let next = next.clone();
        // One tenant per client: a tenant's turns run one at a time.
        let tenant = format!("bench{k}");
        tasks.push(tokio::spawn(async move {
            let (mut times, mut failed, mut pooled) = (Vec::new(), 0, 0);
            while next.fetch_add(1, Ordering::Relaxed) < total {
                if let Some(pool) = wait_for {
                    // The server's own count (records also list workers being torn down).
                    let w = Instant::now();
                    while parked_now(&client).await < pool && w.elapsed() < Duration::from_secs(2) {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                }
                let t = Instant::now();
                match client.run_remote(&tenant, &["true".to_string()]).await {
                    Ok(v) if v.status.as_str() == "succeeded" => {
                        times.push(ms(t.elapsed()));
                        // Pooled workers are named `p…`, the server's cold ones `t…`.
                        if v.worker.as_deref().is_some_and(|w| w.starts_with('p')) {
                            pooled += 1;
                        }
                    }
                    _ => failed += 1,
                }
            }
            (times, failed, pooled)
        }));
    }
    let mut s = Series {
        pooled: Some(0),
        ..Series::default()
    };
    for t in tasks {
        let (ms, f, p) = t.await.map_err(|e| e.to_string())?;
        s.ms.extend(ms);
        s.failures += f;
        s.pooled = s.pooled.map(|n| n + p);
    }
    Ok(s)
}

/// Workers the server has parked for network none (its `/metrics` gauge; 0 if unreadable).
async fn parked_now(client: &warden_server::Client) -> usize {
    let text = client.metrics().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("warden_pool_parked{network=\"none\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
