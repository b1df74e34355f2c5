//! `warden bench --agent`: what an agent turn costs beyond the model — its wall time minus the time the
//! provider spent answering (an instant mock provider on 127.0.0.1, one per tenant so each tenant's provider
//! time is its own) — for cold pi (node + pi started in a fresh worker per turn, json mode, as `warden serve`
//! runs a prompt turn without a warm agent) and warm pi (`warden_agent::WarmAgent`, the warm agent `warden
//! serve` parks: pi started in `--mode rpc` in a worker before the turns, each turn one `prompt` ending at
//! `agent_end`), with 1 and 8 concurrent tenants. The warm series runs twice: `warm` as the server runs it
//! (pi's key is a token the model gateway minted at start and opens for each turn only; requests go through an
//! in-process gateway to the provider) and `warm_fixed_key` (pi talks to the provider directly).
//!
//! Workers run through the worker contract on the library path with the host's network (`shared`), so pi
//! reaches the mock (or the gateway) on 127.0.0.1; pi is the one setup's `agent` step installed under the state
//! directory.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use warden_agent::mock::{MockProvider, Reply, Script};
use warden_agent::{rpc, AgentConfig, EventParser, PiLauncher, TurnEnd, WarmAgent};
use warden_host::worker::{self, Cancel, Events, Mount, Stream, Workers};

use super::series::{ms, percentile, round};
use crate::cli::{BenchArgs, Global};
use crate::context;
use crate::exit::Exit;

/// Where the pi install, the workspace and the agent dir appear in a worker (as in `warden serve`).
const PI_MOUNT: &str = "/opt/pi";
const WORKSPACE: &str = "/workspace";
const AGENT_DIR: &str = "/var/pi";
/// The FIFO a warm pi reads its commands from, in its agent dir.
const FIFO: &str = "rpc.in";
/// The longest any one turn or start may take before the bench counts it failed.
const DEADLINE: Duration = Duration::from_secs(120);
/// The series: cold pi, warm pi as the server runs it (gateway token opened per turn), warm pi with a fixed key.
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
    /// Runs the warm series' model gateways.
    rt: tokio::runtime::Runtime,
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
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Exit::failure(format!("failed to start the runtime: {e}")))?;
    let bench = Bench {
        rt,
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
                    verdict(sink.0.finish_with_exit(code))
                }
                Err(e) => Err(format!("failed to run the worker: {e}")),
            };
            s.record(verdict, wall, provider);
        }
        s
    }

    /// One tenant's warm agent, started before the turns (its start is timed apart), then `turns` prompts, each
    /// timed from the prompt to its `agent_end`. `through_gateway`: as `warden serve` runs it (a token minted at
    /// start, opened by each turn; the bench fails unless the gateway billed each request to its own turn).
    fn warm_tenant(&self, tenant: &str, turns: usize, through_gateway: bool) -> Overheads {
        let mut s = Overheads::default();
        if let Err(e) = self.warm_turns(tenant, turns, through_gateway, &mut s) {
            s.failures.push(e);
        }
        s
    }

    fn warm_turns(
        &self,
        tenant: &str,
        turns: usize,
        through_gateway: bool,
        s: &mut Overheads,
    ) -> Result<(), String> {
        let (base, mock, mut cfg) = self.tenant(tenant, "none")?;
        let gateway = match through_gateway {
            true => Some(self.gateway(&mock)?),
            false => None,
        };
        if let Some(g) = &gateway {
            cfg.base_url = g.url.clone();
            cfg.api_key = g.token.as_str().to_string();
            warden_agent::write_agent_dir(&cfg, &base.join("pi"))
                .map_err(|e| format!("failed to write pi's agent dir: {e}"))?;
        }
        let argv = rpc::pi_rpc_argv(&cfg, &self.launcher, &Self::session(tenant));
        let work = self.work(&base, argv, Vec::new());
        let never = Cancel::new();
        let started = Instant::now();
        let mut agent = WarmAgent::start(
            self.workers.clone(),
            work,
            &base.join("pi").join(FIFO),
            &Path::new(AGENT_DIR).join(FIFO),
            self.owner,
        )?;
        let ready = agent.wait_ready(Instant::now() + DEADLINE, &never);
        s.start.push(ms(started.elapsed()));
        match ready {
            Err(e) => s.failures.push(format!("warm pi did not start: {e}")),
            Ok(()) => {
                for i in 0..turns {
                    let busy0 = mock.busy();
                    let t = Instant::now();
                    let open = gateway
                        .as_ref()
                        .map(|g| g.token.activate(&format!("{tenant}-{i}")));
                    let mut sink = ColdSink(EventParser::new());
                    let deadline = Instant::now() + DEADLINE;
                    let end = agent.turn(&format!("turn {i}"), &mut sink, deadline, None, &never);
                    drop(open);
                    let wall = t.elapsed();
                    let verdict = match &end {
                        TurnEnd::Done => verdict(sink.0.finish_with_exit(Some(0))),
                        other => Err(format!("the warm turn ended with {other:?}")),
                    };
                    s.record(verdict, wall, mock.busy().saturating_sub(busy0));
                    if !end.reusable() {
                        break;
                    }
                }
                if let Some(g) = &gateway {
                    if let Err(e) = g.billed_per_turn(tenant, turns) {
                        s.failures.push(e);
                    }
                }
            }
        }
        match agent.stop(Duration::from_secs(10))?.end {
            worker::End::Exited(0) => Ok(()),
            end => Err(format!("warm pi ended with {end:?}")),
        }
    }

    /// A model gateway in front of `mock` on 127.0.0.1, as `warden serve` runs one, and a token minted for a
    /// warm agent.
    fn gateway(&self, mock: &MockProvider) -> Result<BenchGateway, String> {
        let store = Arc::new(
            warden_store::Store::open_in_memory()
                .map_err(|e| format!("failed to open a store: {e}"))?,
        );
        let config = warden_gateway::GatewayConfig::new(mock.base_url());
        let gw = warden_gateway::Gateway::new(config, store.clone()).map_err(|e| e.to_string())?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| format!("failed to bind the gateway: {e}"))?;
        let url = format!(
            "http://{}/v1",
            listener
                .local_addr()
                .map_err(|e| format!("gateway address: {e}"))?
        );
        let router = warden_gateway::router(gw.clone());
        let _guard = self.rt.enter();
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| format!("failed to serve the gateway: {e}"))?;
        self.rt.spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let token = gw.mint("bench").map_err(|e| e.to_string())?;
        Ok(BenchGateway { url, token, store })
    }
}

/// An in-process model gateway for one tenant's warm agent.
struct BenchGateway {
    url: String,
    token: warden_gateway::ParkedToken,
    store: Arc<warden_store::Store>,
}

impl BenchGateway {
    /// Each turn's one request went through the gateway under that turn's grant.
    fn billed_per_turn(&self, tenant: &str, turns: usize) -> Result<(), String> {
        for i in 0..turns {
            let turn = format!("{tenant}-{i}");
            let n = self
                .store
                .turn_model_usage(&turn)
                .map_err(|e| e.to_string())?
                .requests;
            if n != 1 {
                return Err(format!("the gateway billed {n} requests to {turn}, not 1"));
            }
        }
        Ok(())
    }
}

/// A cold or warm pi's result: a non-empty reply and no failure.
fn verdict(r: warden_agent::TurnResult) -> Result<(), String> {
    match (&r.failure, r.reply.is_empty()) {
        (None, false) => Ok(()),
        (Some(f), _) => Err(format!("pi failed: {f}")),
        (None, true) => Err("pi gave an empty reply".to_string()),
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
