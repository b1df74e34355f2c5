//! `warden bench --backend bastille`: what one FreeBSD worker turn (`true`) costs the host, per network mode —
//! the commands Warden forks and execs (counted by a runner wrapped around the backend's, so the count is the
//! same on a real host and on fakebsd), the ZFS operations among them, and the wall time. With
//! `FAKEBSD_CALL_LOG` set (fakebsd, the simulated host), every turn's count is checked against the simulated
//! host's own log of the tool calls it received. The backend has no warm pool: every turn is cold.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use warden_host::worker::{self, Workers};
use warden_host::{Output, RunError, Runner};

use crate::backends;
use crate::cli::{BackendName, BenchArgs, Global};
use crate::context;
use crate::exit::Exit;

/// The backend's runner, recording the argv of every command it runs.
struct Counted {
    inner: Box<dyn Runner>,
    calls: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Counted {
    fn note(&self, argv: &[String]) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(argv.to_vec());
        }
    }
}

impl Runner for Counted {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        self.note(argv);
        self.inner.run(argv)
    }
    fn run_capped(&self, argv: &[String], cap: u64) -> Result<(Output, bool), RunError> {
        self.note(argv);
        self.inner.run_capped(argv, cap)
    }
    fn run_until(
        &self,
        argv: &[String],
        cap: u64,
        deadline: Option<std::time::Duration>,
    ) -> Result<(Output, bool), RunError> {
        self.note(argv);
        self.inner.run_until(argv, cap, deadline)
    }
    fn read_file(&self, path: &str) -> Result<Option<String>, RunError> {
        self.inner.read_file(path)
    }
    fn write_file(&self, path: &str, mode: u32, content: &str) -> Result<(), RunError> {
        self.inner.write_file(path, mode, content)
    }
    fn mode(&self, path: &str) -> Result<Option<u32>, RunError> {
        self.inner.mode(path)
    }
}

/// ZFS operations that change the pool (the ones that wait for a transaction group sync on a real host).
fn zfs_write(argv: &[String]) -> bool {
    argv.first().is_some_and(|p| p == "zfs")
        && argv.get(1).is_some_and(|s| {
            ["clone", "destroy", "snapshot", "create", "rollback"].contains(&s.as_str())
        })
}

/// The lines FAKEBSD_CALL_LOG holds (0 without one).
fn call_log_lines(log: Option<&Path>) -> Option<usize> {
    log.map(|p| {
        std::fs::read_to_string(p)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    })
}

/// What one series measured.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    failures: usize,
    /// Commands of each successful turn.
    turns: Vec<Vec<Vec<String>>>,
    /// Host tool calls the simulated host logged per successful turn (with FAKEBSD_CALL_LOG).
    logged: Vec<usize>,
}

impl Series {
    fn json(&self) -> Value {
        let mut ms = self.ms.clone();
        ms.sort_by(f64::total_cmp);
        let p50 = ms.get(ms.len() / 2).copied();
        // The last turn is the steady state: once per process (sysctl kern.racct.enable) and once per release
        // (the template snapshot) costs fall on the first.
        let last = self.turns.last().cloned().unwrap_or_default();
        let count = |f: &dyn Fn(&[String]) -> bool| last.iter().filter(|a| f(a)).count();
        json!({
            "turns": self.ms.len(),
            "failures": self.failures,
            "p50_ms": p50.map(|v| (v * 10.0).round() / 10.0),
            "first_turn_commands": self.turns.first().map(Vec::len),
            "commands_per_turn": last.len(),
            "zfs_ops_per_turn": count(&|a| a[0] == "zfs"),
            "zfs_writes_per_turn": count(&|a| zfs_write(a)),
            "jexec_per_turn": count(&|a| a[0] == "jexec"),
            "call_log_commands_per_turn": self.logged.last(),
            "commands": last.iter().map(|a| a.iter().take(3).cloned().collect::<Vec<_>>().join(" ")).collect::<Vec<_>>(),
        })
    }
}

/// `turns` turns of `true` on `network`, one after the other.
fn series(
    workers: &dyn Workers,
    calls: &Mutex<Vec<Vec<String>>>,
    layout: &warden_core::Layout,
    network: worker::Network,
    turns: usize,
    log: Option<&Path>,
) -> Series {
    let mut s = Series::default();
    for _ in 0..turns {
        let limits = worker::Limits {
            memory_bytes: Some(layout.limits.memory_bytes),
            pids: Some(u64::from(layout.limits.pids)),
            timeout: Some(std::time::Duration::from_secs(30)),
            output_bytes: Some(layout.limits.output_bytes),
        };
        let mut work = worker::Work::new(vec!["true".into()], limits);
        work.network = network;
        work.stdio = worker::Stdio::Stream(Vec::new());
        if let Ok(mut c) = calls.lock() {
            c.clear();
        }
        let logged_before = call_log_lines(log);
        let t = Instant::now();
        let r = workers.run(&work, &mut worker::Ignore, &worker::Cancel::new());
        let ms = t.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok(o) if matches!(o.end, worker::End::Exited(0)) && o.cleanup_problems.is_empty() => {
                s.ms.push(ms);
                s.turns
                    .push(calls.lock().map(|c| c.clone()).unwrap_or_default());
                if let (Some(a), Some(b)) = (logged_before, call_log_lines(log)) {
                    s.logged.push(b - a);
                }
            }
            Ok(o) => {
                tracing::warn!(end = ?o.end, problems = ?o.cleanup_problems, "bench turn failed");
                s.failures += 1;
            }
            Err(e) => {
                tracing::warn!(error = %e, "bench turn failed");
                s.failures += 1;
            }
        }
    }
    s
}

/// Runs the bench and prints it.
pub fn run(global: &Global, args: &BenchArgs) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let state_dir = context::state_dir(&layout, BackendName::Bastille);
    context::ensure_state_dir(&state_dir)?;
    let calls = Arc::new(Mutex::new(Vec::new()));
    let runner = Counted {
        inner: Box::new(backends::bastille_runner(&state_dir)),
        calls: calls.clone(),
    };
    let workers = backends::bastille_workers(&layout, &state_dir, Box::new(runner))?;
    if let Err(e) = workers.reap_orphans() {
        return Err(Exit::failure(format!("failed to reap orphan workers: {e}")));
    }
    if let Some(why) = workers.missing_limits() {
        if !layout.allow_unlimited {
            return Err(Exit::failure(format!("workers would be refused: {why}")));
        }
    }
    let log = std::env::var_os("FAKEBSD_CALL_LOG").map(std::path::PathBuf::from);
    let mut report =
        json!({"backend": "bastille", "pooled": null, "pool": "none: every FreeBSD turn is cold"});
    let mut failures = 0;
    for (label, network) in [
        ("none", worker::Network::None),
        ("shared", worker::Network::Shared),
        ("vnet", worker::Network::Vnet),
    ] {
        let s = series(
            &workers,
            &calls,
            &layout,
            network,
            args.turns.max(2),
            log.as_deref(),
        );
        failures += s.failures;
        if let (Some(&logged), Some(counted)) = (s.logged.last(), s.turns.last()) {
            if logged != counted.len() {
                return Err(Exit::failure(format!(
                    "{label}: Warden ran {} commands in the last turn, the simulated host logged {logged}",
                    counted.len()
                )));
            }
        }
        report["cold"][label] = s.json();
    }
    report["failures"] = json!(failures);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for (label, s) in report["cold"].as_object().into_iter().flatten() {
            println!(
                "cold {label:<7} p50 {:>8} ms   {} commands/turn ({} zfs, {} zfs writes, {} jexec)",
                s["p50_ms"],
                s["commands_per_turn"],
                s["zfs_ops_per_turn"],
                s["zfs_writes_per_turn"],
                s["jexec_per_turn"]
            );
        }
        println!("pooled: none (no warm pool on the bastille backend)");
    }
    if failures > 0 {
        return Err(Exit::failure(format!("{failures} turns failed")));
    }
    Ok(())
}
