//! `warden bench --agent`: what an agent turn costs beyond the model — its wall time minus the time the
//! provider spent answering (an instant mock provider on 127.0.0.1, one per tenant so each tenant's provider
//! time is its own) — for cold pi (node + pi started in a fresh worker per turn, json mode, as `warden serve`
//! runs a prompt turn today) and warm pi (pi started in `--mode rpc` in a worker before the turns, each turn
//! one `prompt` line on its stdin ending at `agent_end`), with 1 and 8 concurrent tenants. The warm series runs
//! twice: with a fresh key per turn that pi reads at request time (as a per-turn gateway token would reach a
//! parked pi) and with the key it started with.
//!
//! Workers run through the worker contract on the library path with the host's network (`shared`), so pi
//! reaches the mock directly; pi is the one setup's `agent` step installed under the state directory. The
//! warm pi reads its commands from a FIFO in its agent dir (the contract's stdin is bytes given up front).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{chown, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_agent::mock::{MockProvider, Reply, Script};
use warden_agent::{rpc, AgentConfig, EventParser, PiLauncher, RpcLine};
use warden_host::worker::{self, Cancel, Events, Mount, Stream, Workers};

use super::series::{ms, percentile, round};
use crate::cli::{BenchArgs, Global};
use crate::context;
use crate::exit::Exit;

/// Where the pi install, the workspace and the agent dir appear in a worker (as in `warden serve`).
const PI_MOUNT: &str = "/opt/pi";
const WORKSPACE: &str = "/workspace";
const AGENT_DIR: &str = "/var/pi";
/// The file in a warm pi's agent dir that holds the running turn's token (absent between turns).
const TOKEN_FILE: &str = "turn-token";
/// The longest any one turn or start may take before the bench counts it failed.
const DEADLINE: Duration = Duration::from_secs(120);
/// The series: cold pi, warm pi with a per-turn token, warm pi with a key fixed at its start.
const KINDS: [&str; 3] = ["cold", "warm", "warm_fixed_key"];
/// Concurrent tenants of each series.
const TENANTS: [usize; 2] = [1, 8];
/// The warm overhead the design aims at (issue 14), p50.
const GOAL_WARM_P50_MS: f64 = 50.0;

/// Overheads (and what they came from) of one series, ms.
#[derive(Default)]
struct Overheads {
    overhead: Vec<f64>,
    wall: Vec<f64>,
    provider: Vec<f64>,
    /// Warm only: how long each pi took to start and answer its first command (off the turn's path).
    start: Vec<f64>,
    failures: Vec<String>,
}

impl Overheads {
    fn merge(&mut self, other: Overheads) {
        self.overhead.extend(other.overhead);
        self.wall.extend(other.wall);
        self.provider.extend(other.provider);
        self.start.extend(other.start);
        self.failures.extend(other.failures);
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "turns": self.overhead.len(),
            "overhead_p50_ms": pct(&self.overhead, 0.50),
            "overhead_p95_ms": pct(&self.overhead, 0.95),
            "wall_p50_ms": pct(&self.wall, 0.50),
            "provider_p50_ms": pct(&self.provider, 0.50),
            "failures": self.failures.len(),
        });
        if !self.start.is_empty() {
            v["pi_start_p50_ms"] = json!(pct(&self.start, 0.50));
        }
        if let Some(first) = self.failures.first() {
            v["first_failure"] = json!(first);
        }
        v
    }
}

/// The `p`th quantile (0–1) of `samples` as the report shows it (ms to two decimals).
fn pct(samples: &[f64], p: f64) -> f64 {
    round(percentile(samples, p))
}

/// What every turn of the bench shares.
struct Bench {
    workers: Arc<dyn Workers>,
    state: PathBuf,
    pi_dir: PathBuf,
    launcher: PiLauncher,
    owner: (u32, u32),
}

/// Runs `warden bench --agent` and prints its report.
pub fn run(global: &Global, args: &BenchArgs) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let pi_dir = context::state_dir(&layout, crate::cli::BackendName::Linux).join("pi");
    let cli = warden_agent::install::installed_pi(&pi_dir, warden_agent::PI_VERSION).ok_or_else(
        || {
            Exit::failure(format!(
                "pi {} is not installed in {}\n  fix: warden setup --backend linux --step agent",
                warden_agent::PI_VERSION,
                pi_dir.display()
            ))
        },
    )?;
    let node = warden_agent::find_node().map_err(|e| Exit::failure(e.to_string()))?;
    let cli_rel = cli
        .strip_prefix(&pi_dir)
        .map_err(|_| Exit::failure(format!("{} is outside {}", cli.display(), pi_dir.display())))?;
    warden_linux::use_zygote();
    let state = std::env::temp_dir().join(format!("warden-bench-agent-{}", std::process::id()));
    std::fs::create_dir_all(&state)
        .map_err(|e| Exit::failure(format!("failed to create {}: {e}", state.display())))?;
    let mut opts = warden_linux::LinuxOptions::new(&state);
    opts.zygote = true;
    let workers: Arc<dyn Workers> = Arc::new(warden_linux::LinuxWorkers::new(&layout, opts));
    let bench = Bench {
        owner: workers.file_owner(),
        workers,
        state: state.clone(),
        pi_dir: pi_dir.clone(),
        launcher: PiLauncher::node(&node, &Path::new(PI_MOUNT).join(cli_rel)),
    };
    let report = bench.report(args.turns.max(1));
    let _ = std::fs::remove_dir_all(&state);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print_human(&report);
    }
    match report["failures"].as_u64().unwrap_or(0) {
        0 => Ok(()),
        n => Err(Exit::failure(format!("{n} agent turns failed"))),
    }
}

impl Bench {
    /// Cold and warm series at each tenant count: warm runs `turns` turns per series, cold a tenth of them
    /// (at least 8: each costs pi's whole start-up).
    fn report(&self, turns: usize) -> Value {
        let cold_turns = (turns / 10).max(8);
        let mut report = json!({
            "via": "library",
            "provider": "mock (instant, 127.0.0.1)",
            "network": "shared",
            "pi": warden_agent::PI_VERSION,
            "goal_warm_overhead_p50_ms": GOAL_WARM_P50_MS,
        });
        let mut failures = 0;
        for (kind, total) in KINDS
            .iter()
            .map(|&k| (k, if k == "cold" { cold_turns } else { turns }))
        {
            for n in TENANTS {
                let s = self.series(kind, n, total.max(n));
                failures += s.failures.len();
                report[kind][format!("tenants_{n}")] = s.json();
            }
        }
        report["failures"] = json!(failures);
        report["load_avg"] = json!(std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "));
        report
    }

    /// `total` turns spread over `tenants` tenants running at once, each its turns one after another.
    fn series(&self, kind: &str, tenants: usize, total: usize) -> Overheads {
        let per = total.div_ceil(tenants);
        let mut all = Overheads::default();
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..tenants)
                .map(|k| {
                    let tenant = format!("{kind}{tenants}t{k}");
                    scope.spawn(move || match kind {
                        "cold" => self.cold_tenant(&tenant, per),
                        "warm" => self.warm_tenant(&tenant, per, true),
                        _ => self.warm_tenant(&tenant, per, false),
                    })
                })
                .collect();
            for h in handles {
                match h.join() {
                    Ok(s) => all.merge(s),
                    Err(_) => all.failures.push("a tenant's thread panicked".into()),
                }
            }
        });
        all
    }

    /// A tenant's workspace and agent dir (owned by the worker user) and its mock provider.
    fn tenant(
        &self,
        tenant: &str,
        api_key: &str,
    ) -> Result<(PathBuf, MockProvider, AgentConfig), String> {
        let base = self.state.join("tenants").join(tenant);
        for dir in [base.join("workspace"), base.join("pi").join("sessions")] {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        for dir in [
            base.join("workspace"),
            base.join("pi"),
            base.join("pi/sessions"),
        ] {
            chown(&dir, Some(self.owner.0), Some(self.owner.1))
                .map_err(|e| format!("failed to chown {}: {e}", dir.display()))?;
        }
        let script = Script::new(vec![Reply::Text {
            text: "ok".to_string(),
        }]);
        let mock = MockProvider::start("127.0.0.1:0", script)
            .map_err(|e| format!("failed to start the mock provider: {e}"))?;
        let cfg = AgentConfig {
            base_url: mock.base_url(),
            api_key: api_key.to_string(),
            ..AgentConfig::default()
        };
        warden_agent::write_agent_dir(&cfg, &base.join("pi"))
            .map_err(|e| format!("failed to write pi's agent dir: {e}"))?;
        Ok((base, mock, cfg))
    }

    /// The worker's part of a tenant's turn (`argv` is pi's, json or rpc mode).
    fn work(&self, base: &Path, argv: Vec<String>, stdin: Vec<u8>) -> worker::Work {
        let limits = worker::Limits {
            memory_bytes: None,
            pids: None,
            timeout: Some(DEADLINE),
            output_bytes: None,
        };
        let mut w = worker::Work::new(argv, limits);
        w.network = worker::Network::Shared;
        w.env = warden_agent::pi_env(Path::new(AGENT_DIR));
        w.env.push(("HOME".into(), AGENT_DIR.into()));
        w.cwd = Some(PathBuf::from(WORKSPACE));
        w.mounts = vec![
            Mount {
                source: self.pi_dir.clone(),
                target: PI_MOUNT.into(),
                writable: false,
            },
            Mount {
                source: base.join("workspace"),
                target: WORKSPACE.into(),
                writable: true,
            },
            Mount {
                source: base.join("pi"),
                target: AGENT_DIR.into(),
                writable: true,
            },
        ];
        w.stdio = worker::Stdio::Stream(stdin);
        w
    }

    fn session(tenant: &str) -> PathBuf {
        Path::new(AGENT_DIR)
            .join("sessions")
            .join(format!("{tenant}.jsonl"))
    }

    /// `turns` cold turns of one tenant: a fresh worker with node + pi (json mode) each.
    fn cold_tenant(&self, tenant: &str, turns: usize) -> Overheads {
        let mut s = Overheads::default();
        let (base, mock, cfg) = match self.tenant(tenant, "none") {
            Ok(t) => t,
            Err(e) => {
                s.failures.push(e);
                return s;
            }
        };
        let argv = warden_agent::pi_argv(&cfg, &self.launcher, &Self::session(tenant));
        for i in 0..turns {
            let work = self.work(&base, argv.clone(), format!("turn {i}").into_bytes());
            let mut sink = ColdSink(EventParser::new());
            let busy0 = mock.busy();
            let t = Instant::now();
            let run = self.workers.run(&work, &mut sink, &Cancel::new());
            let wall = t.elapsed();
            let provider = mock.busy().saturating_sub(busy0);
            let verdict = match run {
                Ok(o) => {
                    let code = match o.end {
                        worker::End::Exited(c) => Some(c),
                        _ => None,
                    };
                    let r = sink.0.finish_with_exit(code);
                    match (&r.failure, r.reply.is_empty()) {
                        (None, false) => Ok(()),
                        (Some(f), _) => Err(format!("pi failed: {f}")),
                        (None, true) => Err("pi gave an empty reply".to_string()),
                    }
                }
                Err(e) => Err(format!("failed to run the worker: {e}")),
            };
            s.record(verdict, wall, provider);
        }
        s
    }

    /// One tenant's warm pi: started in `--mode rpc` before the turns (its start is timed apart), then
    /// `turns` prompts, each timed from the line written to its `agent_end`. With `per_turn_token`, each turn's
    /// key is written at turn time and pi reads it per request (the gateway's guarantee kept); without, the
    /// key is fixed at start (what a token minted at park time and activated by the gateway would cost).
    fn warm_tenant(&self, tenant: &str, turns: usize, per_turn_token: bool) -> Overheads {
        let mut s = Overheads::default();
        if let Err(e) = self.warm_turns(tenant, turns, per_turn_token, &mut s) {
            s.failures.push(e);
        }
        s
    }

    fn warm_turns(
        &self,
        tenant: &str,
        turns: usize,
        per_turn_token: bool,
        s: &mut Overheads,
    ) -> Result<(), String> {
        // A per-turn gateway token as a warm agent in `warden serve` would get it: written at turn time, read by
        // pi on every request (pi resolves a `!command` key uncached), removed at the turn's end.
        let key = match per_turn_token {
            true => format!("!cat {AGENT_DIR}/{TOKEN_FILE}"),
            false => "none".to_string(),
        };
        let (base, mock, cfg) = self.tenant(tenant, &key)?;
        let fifo = base.join("pi").join("rpc.in");
        mkfifo(&fifo, self.owner)?;
        let mut argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            // The contract gives stdin up front; a warm pi reads its commands from the FIFO instead.
            format!("exec \"$0\" \"$@\" < {AGENT_DIR}/rpc.in"),
        ];
        argv.extend(rpc::pi_rpc_argv(
            &cfg,
            &self.launcher,
            &Self::session(tenant),
        ));
        let work = self.work(&base, argv, Vec::new());
        // Read and write: opening never blocks waiting for pi, and pi sees end of file only when it closes.
        let mut commands = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .map_err(|e| format!("failed to open {}: {e}", fifo.display()))?;
        let (tx, rx) = channel();
        let cancel = Cancel::new();
        let pi = self.start_warm(work, tx, cancel.clone());
        let started = Instant::now();
        let ready = send(&mut commands, &rpc::ready_line("ready")).and_then(|()| {
            wait_for(
                &rx,
                |l| matches!(l, RpcLine::Response { id, .. } if id == "ready"),
            )
        });
        s.start.push(ms(started.elapsed()));
        if ready.is_ok() {
            for i in 0..turns {
                let busy0 = mock.busy();
                let t = Instant::now();
                let granted = match per_turn_token {
                    true => self.grant(&base, &format!("turn-token-{i}")),
                    false => Ok(()),
                };
                let done = granted
                    .and_then(|()| {
                        let line = rpc::prompt_line(&format!("p{i}"), &format!("turn {i}"));
                        send(&mut commands, &line)
                    })
                    .and_then(|()| wait_for(&rx, |l| *l == RpcLine::AgentEnd));
                let wall = t.elapsed();
                let _ = std::fs::remove_file(base.join("pi").join(TOKEN_FILE));
                s.record(done, wall, mock.busy().saturating_sub(busy0));
            }
            let checked = match per_turn_token {
                true => tokens_reached(&mock, turns),
                false => Ok(()),
            };
            if let Err(e) = checked {
                s.failures.push(e);
            }
        } else if let Err(e) = ready {
            s.failures.push(format!("warm pi did not start: {e}"));
        }
        drop(commands);
        finish_warm(pi, &cancel)
    }

    /// Writes a turn's token where the warm pi's `!cat` key command reads it (owner-only, the worker's user).
    fn grant(&self, base: &Path, token: &str) -> Result<(), String> {
        let path = base.join("pi").join(TOKEN_FILE);
        std::fs::write(&path, token)
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)))
            .and_then(|()| chown(&path, Some(self.owner.0), Some(self.owner.1)))
            .map_err(|e| format!("failed to write {}: {e}", path.display()))
    }

    /// Runs the warm pi's worker on its own thread; its stdout lines go to `tx`.
    fn start_warm(
        &self,
        work: worker::Work,
        tx: Sender<RpcLine>,
        cancel: Cancel,
    ) -> JoinHandle<String> {
        let workers = self.workers.clone();
        std::thread::spawn(move || {
            let mut sink = WarmSink {
                tx,
                buf: Vec::new(),
            };
            match workers.run(&work, &mut sink, &cancel) {
                Ok(o) => format!("{:?}", o.end),
                Err(e) => format!("failed to run the worker: {e}"),
            }
        })
    }
}

impl Overheads {
    fn record(&mut self, verdict: Result<(), String>, wall: Duration, provider: Duration) {
        match verdict {
            Ok(()) => {
                self.wall.push(ms(wall));
                self.provider.push(ms(provider));
                self.overhead.push(ms(wall.saturating_sub(provider)));
            }
            Err(e) => self.failures.push(e),
        }
    }
}

/// Each of the `turns` completion requests carried its own turn's token, in order: the warm pi read the key at
/// request time, not at start.
fn tokens_reached(mock: &MockProvider, turns: usize) -> Result<(), String> {
    let seen: Vec<String> = mock
        .completion_requests()
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        })
        .collect();
    let want: Vec<String> = (0..turns)
        .map(|i| format!("Bearer turn-token-{i}"))
        .collect();
    if seen == want {
        Ok(())
    } else {
        Err(format!(
            "the provider saw the keys {seen:?}, not one fresh turn token per turn"
        ))
    }
}

/// Waits for the warm pi to exit after its stdin closed; cancels its worker if it does not.
fn finish_warm(pi: JoinHandle<String>, cancel: &Cancel) -> Result<(), String> {
    let t = Instant::now();
    while !pi.is_finished() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if !pi.is_finished() {
        cancel.cancel();
    }
    match pi.join() {
        Ok(end) if end == "Exited(0)" => Ok(()),
        Ok(end) => Err(format!("warm pi ended with {end}")),
        Err(_) => Err("the warm pi's thread panicked".into()),
    }
}

fn mkfifo(path: &Path, owner: (u32, u32)) -> Result<(), String> {
    let ok = Command::new("mkfifo")
        .args(["-m", "0600"])
        .arg(path)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return Err(format!("mkfifo {} failed", path.display()));
    }
    chown(path, Some(owner.0), Some(owner.1))
        .map_err(|e| format!("failed to chown {}: {e}", path.display()))
}

fn send(to: &mut File, line: &str) -> Result<(), String> {
    to.write_all(line.as_bytes())
        .map_err(|e| format!("failed to write to pi: {e}"))
}

/// Waits (up to [`DEADLINE`]) for a line `want` accepts; a refused command or a gone pi is a failure.
fn wait_for(rx: &Receiver<RpcLine>, want: impl Fn(&RpcLine) -> bool) -> Result<(), String> {
    let until = Instant::now() + DEADLINE;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if want(&l) => return Ok(()),
            Ok(RpcLine::Response { error: Some(e), .. }) => {
                return Err(format!("pi refused a command: {e}"))
            }
            Ok(_) => {}
            Err(_) => return Err(format!("no answer from pi within {DEADLINE:?}")),
        }
    }
}

/// A cold turn's output: pi's json events.
struct ColdSink(EventParser);

impl Events for ColdSink {
    fn started(&mut self, _: &str) {}
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        if stream == Stream::Stdout {
            self.0.feed(bytes);
        }
    }
}

/// A warm pi's output: its stdout split into lines (LF only) and classified.
struct WarmSink {
    tx: Sender<RpcLine>,
    buf: Vec<u8>,
}

impl Events for WarmSink {
    fn started(&mut self, _: &str) {}
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        if stream != Stream::Stdout {
            return;
        }
        self.buf.extend_from_slice(bytes);
        while let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=end).collect();
            if let Some(l) = rpc::classify(&String::from_utf8_lossy(&line[..end])) {
                if l != RpcLine::Event {
                    let _ = self.tx.send(l);
                }
            }
        }
    }
}

fn print_human(r: &Value) {
    println!(
        "agent-turn overhead (wall time minus the provider's; pi {}, instant mock provider, load {})",
        r["pi"].as_str().unwrap_or(""),
        r["load_avg"].as_str().unwrap_or("")
    );
    for kind in KINDS {
        for n in TENANTS {
            let s = &r[kind][format!("tenants_{n}")];
            println!(
                "  {kind} {n} tenant(s): p50 {:.1} ms  p95 {:.1} ms  ({} turns, wall p50 {:.1} ms, provider p50 {:.2} ms, {} failed){}",
                s["overhead_p50_ms"].as_f64().unwrap_or(0.0),
                s["overhead_p95_ms"].as_f64().unwrap_or(0.0),
                s["turns"],
                s["wall_p50_ms"].as_f64().unwrap_or(0.0),
                s["provider_p50_ms"].as_f64().unwrap_or(0.0),
                s["failures"],
                s["pi_start_p50_ms"]
                    .as_f64()
                    .map(|v| format!(", pi start p50 {v:.0} ms off the turn's path"))
                    .unwrap_or_default()
            );
            if let Some(f) = s["first_failure"].as_str() {
                println!("    first failure: {f}");
            }
        }
    }
    println!("  goal: warm p50 ≤ {GOAL_WARM_P50_MS} ms");
}
