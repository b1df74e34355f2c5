//! The library path: cold turns (one worker made per turn), the same through `warden run` as a process, pooled
//! turns one at a time, and throughput with concurrent clients — all through `warden_linux` as the CLI and the
//! server use it.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_linux::pool::{Pool, PoolKey, SlotConfig};
use warden_linux::{ExitKind, NetworkMode, Outcome, ReleaseRef, Timings, Turn, WorkerSpec};

use super::memory::parked_memory;
use super::series::{concurrent, ms, phases, Series};
use super::Env;

/// The library path; `only_throughput` leaves out the latency series (for profiling).
pub(super) fn bench_lib(
    env: &Env,
    turns: usize,
    clients: &[usize],
    only_throughput: bool,
) -> Result<Value, String> {
    let mut report = json!({"via": "cli", "pool_size": env.pool_size});
    let mut failures = 0;
    let lat_turns = if only_throughput { 0 } else { turns };
    // Cold: one worker made per turn.
    let (cold, cold_t) = cold_series(env, &NetworkMode::None, lat_turns);
    failures += cold.failures;
    report["cold"] = cold.json();
    report["phases_cold_us"] = phases(&cold_t);
    if let Some(v) = &env.vnet {
        let (s, ts) = cold_series(env, v, lat_turns);
        failures += s.failures;
        report["cold_vnet"] = s.json();
        report["phases_cold_vnet_us"] = phases(&ts);
    }
    // The same through the CLI, one process per turn (at most 100 each).
    failures += cli_series_all(env, lat_turns.min(100), &mut report);
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
        let (s, ts) = pooled_series(env, &pool, network, lat_turns);
        failures += s.failures;
        report[*label] = s.json();
        report[format!("phases_{label}_us")] = phases(&ts);
    }
    // Throughput: `c` clients back to back; a turn with no parked worker ready runs cold.
    let pool = Arc::new(pool);
    let (thr, thr_failures) = throughput(env, &pool, turns, clients);
    failures += thr_failures;
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

/// `n` cold turns on `network`, one after the other: their latencies and timings.
fn cold_series(env: &Env, network: &NetworkMode, n: usize) -> (Series, Vec<Timings>) {
    let mut s = Series::default();
    let mut ts = Vec::new();
    for i in 0..n {
        let t = Instant::now();
        match cold_turn(env, network, i) {
            Ok(o) if ok(&o) => {
                s.ms.push(ms(t.elapsed()));
                ts.push(o.timings);
            }
            _ => s.failures += 1,
        }
    }
    (s, ts)
}

/// `n` turns through `warden run` as a process, for network none and (with a bridge) vnet, into `report`;
/// returns the failures.
fn cli_series_all(env: &Env, n: usize, report: &mut Value) -> usize {
    if n == 0 {
        return 0;
    }
    // The CLI's workers lease from the same range under another state directory: let ours
    // finish their teardown first so no name or address is held twice.
    for name in warden_linux::record::list(&env.state) {
        warden_linux::wait_torn_down(&env.state, &name, Duration::from_secs(10));
    }
    let mut failures = 0;
    let s = cli_series(env, "none", n);
    failures += s.failures;
    report["cold_cli"] = s.json();
    if env.vnet.is_some() {
        let s = cli_series(env, "vnet", n);
        failures += s.failures;
        report["cold_cli_vnet"] = s.json();
    }
    failures
}

/// `n` pooled turns on `network`, each after waiting for a full pool: their latencies and timings.
fn pooled_series(
    env: &Env,
    pool: &Pool,
    network: &NetworkMode,
    n: usize,
) -> (Series, Vec<Timings>) {
    let mut s = Series::default();
    let mut ts = Vec::new();
    for i in 0..n {
        pool.wait_full(Duration::from_secs(5));
        let t = Instant::now();
        match pooled_turn(env, pool, network, i) {
            Ok((o, _)) if ok(&o) => {
                s.ms.push(ms(t.elapsed()));
                ts.push(o.timings);
            }
            _ => s.failures += 1,
        }
    }
    (s, ts)
}

/// Each client count of `clients`, back to back on the pool (network none): the report's `throughput` and the
/// failures.
fn throughput(env: &Env, pool: &Arc<Pool>, turns: usize, clients: &[usize]) -> (Value, usize) {
    let mut thr = json!({});
    let mut failures = 0;
    for &c in clients {
        pool.wait_full(Duration::from_secs(30));
        let (s, cold_fallbacks) = concurrent(c, turns.max(c), |n| {
            let t = Instant::now();
            pooled_turn(env, pool, &NetworkMode::None, n)
                .ok()
                .filter(|(o, _)| ok(o))
                .map(|(_, pooled)| (ms(t.elapsed()), pooled))
        });
        failures += s.failures;
        let mut j = s.json();
        j["cold_fallbacks"] = json!(cold_fallbacks);
        thr[format!("clients_{c}")] = j;
    }
    (thr, failures)
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
            s.ms.push(ms(t.elapsed()));
        } else {
            s.failures += 1;
        }
    }
    s
}

/// The bench's worker: `true` within the layout's limits and a 10 s timeout.
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

/// Whether the turn exited 0.
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

/// A pool of `size` workers for network none and, with a bridge, `vnet_size` for vnet.
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
