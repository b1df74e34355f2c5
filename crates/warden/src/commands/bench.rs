//! `warden bench`: cold turns, pooled turns and concurrent throughput of `true`, through the
//! library path the CLI uses (default) or through the HTTP API (`--api`: a server on
//! 127.0.0.1, in this process, with its own state directory); bwrap and runc doing the same work
//! in the same run when installed; host memory per parked worker; the phase breakdown.
//!
//! It runs in whatever network namespace it is started in: Vnet numbers need a `warden0` bridge
//! there (start it with `nsenter --net=/run/netns/NAME`), and are skipped without one.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_linux::pool::{Pool, PoolKey, SlotConfig};
use warden_linux::{ExitKind, NetworkMode, Outcome, ReleaseRef, Timings, Turn, Vnet, WorkerSpec};

use crate::cli::{BenchArgs, Global};
use crate::context;
use crate::exit::Exit;

/// Latencies of one series, ms.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    failures: usize,
    wall: Duration,
    /// Through the API: turns that ran on a parked worker (the rest found none and ran cold).
    pooled: Option<usize>,
    /// Share of the host's CPU time that was busy during the series (0–1), when measured.
    cpu_busy: Option<f64>,
}

/// Busy and total CPU time of the host so far, in clock ticks (from `/proc/stat`).
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// The busy share between two [`cpu_ticks`] readings.
fn busy_between(a: (u64, u64), b: (u64, u64)) -> Option<f64> {
    let total = b.1.checked_sub(a.1)?;
    (total > 0).then(|| b.0.saturating_sub(a.0) as f64 / total as f64)
}

impl Series {
    fn pct(&self, p: f64) -> f64 {
        if self.ms.is_empty() {
            return 0.0;
        }
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    fn json(&self) -> Value {
        let mut o = json!({
            "turns": self.ms.len(),
            "failures": self.failures,
            "p50_ms": round(self.pct(0.50)),
            "p95_ms": round(self.pct(0.95)),
            "p99_ms": round(self.pct(0.99)),
        });
        if let Some(p) = self.pooled {
            o["ran_pooled"] = json!(p);
        }
        if let Some(b) = self.cpu_busy {
            o["cpu_busy"] = json!(round(b));
        }
        if !self.wall.is_zero() {
            o["turns_per_s"] = json!(round(self.ms.len() as f64 / self.wall.as_secs_f64()));
        }
        o
    }
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

struct Env {
    state: PathBuf,
    vnet: Option<NetworkMode>,
    range: (Ipv4Addr, Ipv4Addr),
    pool_size: usize,
    layout: warden_core::Layout,
    /// This program and its global flags, for `warden run` as a process.
    cli: Vec<String>,
}

/// `<this program> [global flags…]`: the same layout and state directory for a child `warden`
/// as for `warden run` typed by the user — so a Vnet run uses the host network that is set up
/// (the bench's own state directory has no dnsmasq and must not start a second one).
fn cli_prefix(global: &Global) -> Vec<String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("warden"));
    let mut v = vec![exe.display().to_string()];
    for (flag, value) in [
        (
            "--config",
            global.config.as_ref().map(|p| p.display().to_string()),
        ),
        ("--subnet", global.subnet.clone()),
        ("--domain", global.domain.clone()),
        ("--bridge", global.bridge.clone()),
        ("--identity", global.identity.clone()),
        ("--state-dir", global.state_dir.clone()),
    ] {
        if let Some(value) = value {
            v.push(flag.to_string());
            v.push(value);
        }
    }
    v
}

/// `warden run --network NET -- true` as a process, `n` times: what a user types, with the
/// program's start, config load and exit included (issue 6's cold benchmark).
fn cli_series(env: &Env, network: &str, n: usize) -> Series {
    let mut s = Series::default();
    for _ in 0..n {
        let t = Instant::now();
        let ok = Command::new(&env.cli[0])
            .args(&env.cli[1..])
            .args(["run", "--network", network, "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
        if ok {
            s.ms.push(t.elapsed().as_secs_f64() * 1e3);
        } else {
            s.failures += 1;
        }
    }
    s
}

/// Runs the benchmark and prints it.
pub fn run(global: &Global, args: &BenchArgs) -> Result<(), Exit> {
    if !nix_is_root() {
        return Err(Exit::usage(
            "warden bench needs root (it creates namespaces and cgroups)",
        ));
    }
    if args.agent {
        return super::bench_agent::run(global, args);
    }
    let (_, layout) = context::layout(global)?;
    let clients = parse_clients(&args.clients)?;
    // Workers are started as `warden serve` starts them: forked by a zygote.
    warden_linux::use_zygote();
    let state = std::env::temp_dir().join(format!("warden-bench-{}", std::process::id()));
    std::fs::create_dir_all(&state)
        .map_err(|e| Exit::failure(format!("failed to create {}: {e}", state.display())))?;
    let bridge_here = Command::new("ip")
        .args(["-o", "link", "show", "dev", &layout.bridge])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let env = Env {
        vnet: bridge_here.then(|| {
            NetworkMode::Vnet(Vnet {
                addr: Ipv4Addr::UNSPECIFIED,
                prefix: 24,
                gateway: layout.gateway,
                bridge: layout.bridge.clone(),
                dns: layout.gateway,
                host_netns: None,
            })
        }),
        range: layout.workers,
        pool_size: args
            .pool
            .unwrap_or(clients.iter().copied().max().unwrap_or(8))
            .max(1),
        state: state.clone(),
        layout: layout.clone(),
        cli: cli_prefix(global),
    };
    let result = if args.api {
        bench_api(&env, args.turns, &clients)
    } else {
        bench_lib(&env, args.turns, &clients, args.throughput_only)
    };
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state);
            return Err(Exit::failure(e));
        }
    };
    if !args.no_compare {
        compare(&mut report, args.turns.min(200), &state);
    }
    report["load_avg"] = json!(std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "));
    let _ = std::fs::remove_dir_all(&state);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_human(&report);
    }
    let failures = report["failures"].as_u64().unwrap_or(0);
    if failures > 0 {
        return Err(Exit::failure(format!("{failures} turns failed")));
    }
    Ok(())
}

/// Effective uid 0, from /proc/self/status (`Uid: real effective saved fs`).
fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

fn parse_clients(s: &str) -> Result<Vec<usize>, Exit> {
    s.split(',')
        .map(|c| {
            c.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    Exit::usage(format!(
                        "--clients {s:?}: want numbers 1..=256, e.g. 1,8,32"
                    ))
                })
        })
        .collect()
}

fn template(env: &Env, network: NetworkMode) -> WorkerSpec {
    let mut s = WorkerSpec::new("bench", &["true"], &env.state);
    s.network = network;
    s.limits = warden_linux::Limits {
        memory_bytes: Some(env.layout.limits.memory_bytes),
        max_pids: Some(u64::from(env.layout.limits.pids)),
        cpu: None,
        timeout_ms: Some(10_000),
        output_bytes: Some(env.layout.limits.output_bytes),
        allow_unlimited: env.layout.allow_unlimited,
    };
    s
}

fn ok(o: &Outcome) -> bool {
    o.status == ExitKind::Exited(0)
}

/// One cold turn: a worker made for it (a leased address for Vnet).
fn cold_turn(env: &Env, network: &NetworkMode, n: usize) -> Result<Outcome, String> {
    let mut spec = template(env, network.clone());
    let lease = match &mut spec.network {
        NetworkMode::Vnet(v) => {
            let l = warden_linux::lease(&env.state, env.range).map_err(|e| e.to_string())?;
            v.addr = l.addr();
            spec.name = l.worker_name();
            Some(l)
        }
        _ => {
            spec.name = format!("c{:x}{:06x}", std::process::id() % 4096, n % 0xff_ffff);
            None
        }
    };
    spec.hostname = spec.name.clone();
    let r = warden_linux::run_captured(&spec).map(|(o, _, _)| o);
    drop(lease);
    r.map_err(|e| e.to_string())
}

/// One pooled turn; without a parked worker ready it runs cold (and says so).
fn pooled_turn(
    env: &Env,
    pool: &Pool,
    network: &NetworkMode,
    n: usize,
) -> Result<(Outcome, bool), String> {
    let key = PoolKey::new(&ReleaseRef::Host, network);
    match pool.take(&key) {
        Some(p) => {
            let turn = Turn::from_spec(&template(env, network.clone()));
            let (mut out, mut err) = (Vec::new(), Vec::new());
            p.run(
                &turn,
                warden_linux::Io::Stream {
                    stdin: Vec::new(),
                    on_output: &mut |s, b| match s {
                        warden_linux::OutputStream::Stdout => out.extend_from_slice(b),
                        warden_linux::OutputStream::Stderr => err.extend_from_slice(b),
                    },
                },
            )
            .map(|o| (o, true))
            .map_err(|e| e.to_string())
        }
        None => cold_turn(env, network, n).map(|o| (o, false)),
    }
}

fn start_pool(env: &Env, size: usize, vnet_size: usize) -> Pool {
    let mut slots = vec![SlotConfig {
        template: template(env, NetworkMode::None),
        size,
        lease_range: None,
        fillers: 2,
    }];
    if let Some(v) = &env.vnet {
        slots.push(SlotConfig {
            template: template(env, v.clone()),
            size: vnet_size,
            lease_range: Some(env.range),
            fillers: 2,
        });
    }
    Pool::start(slots)
}

/// The library path; `only_throughput` leaves out the latency series (for profiling).
fn bench_lib(
    env: &Env,
    turns: usize,
    clients: &[usize],
    only_throughput: bool,
) -> Result<Value, String> {
    let mut report = json!({"via": "cli", "pool_size": env.pool_size});
    let mut failures = 0;
    let lat_turns = if only_throughput { 0 } else { turns };
    // Cold: one worker made per turn.
    let mut cold = Series::default();
    let mut cold_t = Vec::new();
    for n in 0..lat_turns {
        let t = Instant::now();
        match cold_turn(env, &NetworkMode::None, n) {
            Ok(o) if ok(&o) => {
                cold.ms.push(t.elapsed().as_secs_f64() * 1e3);
                cold_t.push(o.timings);
            }
            _ => cold.failures += 1,
        }
    }
    failures += cold.failures;
    report["cold"] = cold.json();
    report["phases_cold_us"] = phases(&cold_t);
    if let Some(v) = &env.vnet {
        let mut s = Series::default();
        let mut ts = Vec::new();
        for n in 0..lat_turns {
            let t = Instant::now();
            match cold_turn(env, v, n) {
                Ok(o) if ok(&o) => {
                    s.ms.push(t.elapsed().as_secs_f64() * 1e3);
                    ts.push(o.timings);
                }
                _ => s.failures += 1,
            }
        }
        failures += s.failures;
        report["cold_vnet"] = s.json();
        report["phases_cold_vnet_us"] = phases(&ts);
    }
    // The same through the CLI, one process per turn (at most 100 each).
    let n_cli = lat_turns.min(100);
    if n_cli > 0 {
        // The CLI's workers lease from the same range under another state directory: let ours
        // finish their teardown first so no name or address is held twice.
        for name in warden_linux::record::list(&env.state) {
            warden_linux::wait_torn_down(&env.state, &name, Duration::from_secs(10));
        }
        let s = cli_series(env, "none", n_cli);
        failures += s.failures;
        report["cold_cli"] = s.json();
        if env.vnet.is_some() {
            let s = cli_series(env, "vnet", n_cli);
            failures += s.failures;
            report["cold_cli_vnet"] = s.json();
        }
    }
    // Pooled, one at a time, waiting for a parked worker before each turn (the pool's latency,
    // not its refill rate).
    let pool = start_pool(env, env.pool_size, 4);
    if !pool.wait_full(Duration::from_secs(60)) {
        return Err("the pool did not fill within 60 s".into());
    }
    report["parked_worker"] = parked_memory(&pool, &env.state);
    let mut modes = vec![("pooled", NetworkMode::None)];
    if let Some(v) = &env.vnet {
        modes.push(("pooled_vnet", v.clone()));
    }
    for (label, network) in &modes {
        let mut s = Series::default();
        let mut ts = Vec::new();
        for n in 0..lat_turns {
            pool.wait_full(Duration::from_secs(5));
            let t = Instant::now();
            match pooled_turn(env, &pool, network, n) {
                Ok((o, _)) if ok(&o) => {
                    s.ms.push(t.elapsed().as_secs_f64() * 1e3);
                    ts.push(o.timings);
                }
                _ => s.failures += 1,
            }
        }
        failures += s.failures;
        report[*label] = s.json();
        report[format!("phases_{label}_us")] = phases(&ts);
    }
    // Throughput: `c` clients back to back; a turn with no parked worker ready runs cold.
    let pool = Arc::new(pool);
    let mut thr = json!({});
    for &c in clients {
        pool.wait_full(Duration::from_secs(30));
        let (s, cold_fallbacks) = concurrent(c, turns.max(c), |n| {
            let t = Instant::now();
            pooled_turn(env, &pool, &NetworkMode::None, n)
                .ok()
                .filter(|(o, _)| ok(o))
                .map(|(_, pooled)| (t.elapsed().as_secs_f64() * 1e3, pooled))
        });
        failures += s.failures;
        let mut j = s.json();
        j["cold_fallbacks"] = json!(cold_fallbacks);
        thr[format!("clients_{c}")] = j;
    }
    report["throughput"] = thr;
    report["failures"] = json!(failures);
    if only_throughput {
        if let Some(o) = report.as_object_mut() {
            o.retain(|k, _| {
                !k.starts_with("cold") && !k.starts_with("pooled") && !k.starts_with("phases")
            });
        }
    }
    drop(Arc::try_unwrap(pool).ok());
    Ok(report)
}

/// Runs `total` calls of `one` on `clients` threads; `one` returns (ms, pooled) or None (failed).
fn concurrent(
    clients: usize,
    total: usize,
    one: impl Fn(usize) -> Option<(f64, bool)> + Sync,
) -> (Series, usize) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let t0 = Instant::now();
    let cpu0 = cpu_ticks();
    let results: Vec<(Vec<f64>, usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let (mut ms, mut failed, mut cold) = (Vec::new(), 0, 0);
                    loop {
                        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if n >= total {
                            break;
                        }
                        match one(n) {
                            Some((t, pooled)) => {
                                ms.push(t);
                                cold += usize::from(!pooled);
                            }
                            None => failed += 1,
                        }
                    }
                    (ms, failed, cold)
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let mut s = Series {
        wall: t0.elapsed(),
        cpu_busy: busy_between(cpu0, cpu_ticks()),
        ..Series::default()
    };
    let mut cold = 0;
    for (ms, f, c) in results {
        s.ms.extend(ms);
        s.failures += f;
        cold += c;
    }
    (s, cold)
}

fn bench_api(env: &Env, turns: usize, clients: &[usize]) -> Result<Value, String> {
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
    let mut opts = warden_server::ServeOptions::new(&state);
    opts.listen = Some(vec!["127.0.0.1:0".parse().map_err(|e| format!("{e}"))?]);
    opts.concurrency = max_clients;
    opts.queue_size = 4096;
    opts.pi_dir = Some(state.join("no-pi"));
    // Argv turns only: no npm install of pi competing with the measured turns.
    std::fs::create_dir_all(&state).map_err(|e| format!("{}: {e}", state.display()))?;
    let mut linux = warden_linux::LinuxOptions::new(&state);
    linux.pool[0] = pool;
    linux.zygote = true;
    let workers = Arc::new(warden_linux::LinuxWorkers::new(&env.layout, linux));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let layout = env.layout.clone();
    let server = tokio::spawn(warden_server::serve_until(
        layout,
        opts,
        workers,
        async move {
            let _ = stop_rx.await;
        },
    ));
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
        let t0 = Instant::now();
        let cpu0 = cpu_ticks();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for k in 0..c {
            let client = client.clone();
            let next = next.clone();
            let wait_full = i == 0 && pool > 0;
            tasks.push(tokio::spawn(async move {
                let (mut ms, mut failed, mut pooled) = (Vec::new(), 0, 0);
                // One tenant per client: a tenant's turns run one at a time.
                let tenant = format!("bench{k}");
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    if wait_full {
                        // The server's own count (records also list workers being torn down).
                        let w = Instant::now();
                        while parked_now(&client).await < pool
                            && w.elapsed() < Duration::from_secs(2)
                        {
                            tokio::time::sleep(Duration::from_millis(2)).await;
                        }
                    }
                    let t = Instant::now();
                    match client.run_remote(&tenant, &["true".to_string()]).await {
                        Ok(v) if v.status.as_str() == "succeeded" => {
                            ms.push(t.elapsed().as_secs_f64() * 1e3);
                            // Pooled workers are named `p…`, the server's cold ones `t…`.
                            if v.worker.as_deref().is_some_and(|w| w.starts_with('p')) {
                                pooled += 1;
                            }
                        }
                        _ => failed += 1,
                    }
                }
                (ms, failed, pooled)
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

/// Workers the server has parked for network none (its `/metrics` gauge; 0 if unreadable).
async fn parked_now(client: &warden_server::Client) -> usize {
    let text = client.metrics().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("warden_pool_parked{network=\"none\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Host memory of the parked workers: proportional set size of each helper and its init
/// (shared pages split between sharers), plus what each worker's memory cgroup holds (its
/// tmpfs root and /etc files, kernel objects charged to it).
fn parked_memory(pool: &Pool, state: &Path) -> Value {
    let pids = pool.parked_pids();
    if pids.is_empty() {
        return json!(null);
    }
    let mut pss_kb = 0u64;
    for pid in &pids {
        pss_kb += pss(*pid);
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for c in children
            .split_whitespace()
            .filter_map(|c| c.parse::<u32>().ok())
        {
            pss_kb += pss(c);
        }
    }
    let mut cg_bytes = 0u64;
    for name in warden_linux::record::list(state) {
        let f = Path::new("/sys/fs/cgroup/memory/warden")
            .join(&name)
            .join("memory.usage_in_bytes");
        cg_bytes += std::fs::read_to_string(f)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    let n = pids.len() as u64;
    let per = (pss_kb * 1024 + cg_bytes) / n;
    json!({
        "workers": n,
        "bytes": per,
        "mib": round(per as f64 / (1u64 << 20) as f64),
        "pss_bytes": pss_kb * 1024 / n,
        "cgroup_bytes": cg_bytes / n,
    })
}

fn pss(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Pss:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn phases(ts: &[Timings]) -> Value {
    if ts.is_empty() {
        return json!(null);
    }
    let med = |f: &dyn Fn(&Timings) -> u64| {
        let mut v: Vec<u64> = ts.iter().map(f).collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    json!({
        "spawn": med(&|t| t.spawn_us),
        "clone": med(&|t| t.clone_us),
        "cgroup": med(&|t| t.cgroup_us),
        "net_host": med(&|t| t.net_host_us),
        "mounts": med(&|t| t.mounts_us),
        "net_worker": med(&|t| t.net_worker_us),
        "exec": med(&|t| t.exec_us),
        "wait": med(&|t| t.wait_us),
        "report": med(&|t| t.report_us),
        "total": med(&|t| t.total_us),
    })
}

/// bwrap and runc on the same work (`true`), when installed; ratios against warden's numbers.
fn compare(report: &mut Value, n: usize, state: &Path) {
    let time = |cmd: &mut Command| -> Option<f64> {
        let t = Instant::now();
        let st = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()?;
        st.success().then(|| t.elapsed().as_secs_f64() * 1e3)
    };
    let mut others = json!({});
    if which("bwrap") {
        let mut s = Series::default();
        for _ in 0..n {
            match time(Command::new("bwrap").args(["--unshare-all", "--ro-bind", "/", "/", "true"]))
            {
                Some(ms) => s.ms.push(ms),
                None => s.failures += 1,
            }
        }
        others["bwrap"] = s.json();
    }
    if which("runc") {
        if let Some(bundle) = runc_bundle(state) {
            let mut s = Series::default();
            for i in 0..n {
                let id = format!("wbench{}-{i}", std::process::id());
                match time(
                    Command::new("runc")
                        .arg("run")
                        .arg("--bundle")
                        .arg(&bundle)
                        .arg(&id),
                ) {
                    Some(ms) => s.ms.push(ms),
                    None => s.failures += 1,
                }
            }
            others["runc"] = s.json();
        }
    }
    let mut ratios = json!({});
    for (mine, label) in [
        ("cold", "cold"),
        ("pooled", "pooled"),
        ("cold_vnet", "cold_vnet"),
        ("cold_cli", "cold_cli"),
        ("cold_cli_vnet", "cold_cli_vnet"),
    ] {
        for tool in ["bwrap", "runc"] {
            let (a, b) = (
                report[mine]["p50_ms"].as_f64(),
                others[tool]["p50_ms"].as_f64(),
            );
            if let (Some(a), Some(b)) = (a, b) {
                if b > 0.0 {
                    ratios[format!("{label}_vs_{tool}_p50")] = json!(round(a / b));
                }
            }
        }
    }
    report["others"] = others;
    report["ratios"] = ratios;
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// An OCI bundle whose rootfs is read-only binds of the host's system directories.
fn runc_bundle(state: &Path) -> Option<PathBuf> {
    let bundle = state.join("runc-bundle");
    std::fs::create_dir_all(bundle.join("rootfs/usr")).ok()?;
    let ok = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(&bundle)
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let path = bundle.join("config.json");
    let mut cfg: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = json!(["/usr/bin/true"]);
    cfg["root"]["readonly"] = true.into();
    let mounts = cfg["mounts"].as_array_mut()?;
    for d in ["usr", "bin", "lib", "lib64", "sbin"] {
        let host = Path::new("/").join(d);
        if host.is_symlink() {
            let target = std::fs::read_link(&host).ok()?;
            let _ = std::os::unix::fs::symlink(target, bundle.join("rootfs").join(d));
        } else if host.exists() {
            mounts.push(json!({"destination": format!("/{d}"), "type": "bind", "source": host, "options": ["rbind", "ro"]}));
        }
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&cfg).ok()?).ok()?;
    Some(bundle)
}

fn print_human(r: &Value) {
    println!(
        "warden bench (via {}, load {}, pool {})",
        r["via"].as_str().unwrap_or("?"),
        r["load_avg"].as_str().unwrap_or("?"),
        r["pool_size"]
    );
    let line = |label: &str, v: &Value| {
        if v.is_null() {
            return;
        }
        println!(
            "  {label:<22} p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms{}  ({} turns, {} failed)",
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p95_ms"].as_f64().unwrap_or(0.0),
            v["p99_ms"].as_f64().unwrap_or(0.0),
            v["turns_per_s"]
                .as_f64()
                .map(|t| format!("  {t:>7.1} turns/s"))
                .unwrap_or_default(),
            v["turns"],
            v["failures"],
        );
    };
    for k in [
        "cold",
        "cold_vnet",
        "cold_cli",
        "cold_cli_vnet",
        "pooled",
        "pooled_vnet",
    ] {
        line(k, &r[k]);
    }
    if let Some(t) = r["throughput"].as_object() {
        for (k, v) in t {
            line(&format!("throughput {k}"), v);
        }
    }
    if let Some(o) = r["others"].as_object() {
        for (k, v) in o {
            line(k, v);
        }
    }
    if !r["parked_worker"].is_null() {
        println!(
            "  parked worker: {} MiB of host memory (pss {} B + cgroup {} B, {} workers)",
            r["parked_worker"]["mib"],
            r["parked_worker"]["pss_bytes"],
            r["parked_worker"]["cgroup_bytes"],
            r["parked_worker"]["workers"]
        );
    }
    if let Some(o) = r["ratios"].as_object() {
        for (k, v) in o {
            println!("  ratio {k}: {v}");
        }
    }
    for k in [
        "phases_cold_us",
        "phases_cold_vnet_us",
        "phases_pooled_us",
        "phases_pooled_vnet_us",
    ] {
        if !r[k].is_null() {
            println!("  {k}: {}", r[k]);
        }
    }
}
