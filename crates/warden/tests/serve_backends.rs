//! One set of control-plane cases, run through the real `warden serve` binary against both worker backends: Linux
//! namespaces on this machine, and FreeBSD jails on the simulated host (`crates/fakebsd`, as `fakebsd_cli.rs`
//! sets it up). Each case takes a [`Backend`]: argv turns end to end, cancel of a running turn, and `kill -9` of
//! serve followed by a restart that reaps the orphaned worker and settles its turn as `interrupted`, with nothing
//! of any worker left (Linux: records; FreeBSD: jails, clones, epairs, records). A prompt turn (pi in a vnet
//! worker, the model gateway, the mock provider) runs on both too, each in a network namespace of its own.
//!
//! On the simulated host Warden's state directory lives under the simulated root (`/var/db/warden` there), as
//! on FreeBSD: setup's files (pi's shared directory) and serve's (tenant directories) are the same ones the
//! simulated jails mount.
#![cfg(target_os = "linux")]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::server::{enter, root_test, test_net, Provider};
use common::Serve;
use warden_agent::mock::{Reply, Script};
use warden_server::{TurnRequest, TurnView};
use warden_testkit::FakeBsdHost;

/// Where a case runs `warden serve`.
enum Backend {
    /// Linux workers on this machine (no network: no bridge needed).
    Linux(tempfile::TempDir),
    /// FreeBSD workers on a fakebsd host set up by `warden setup --backend bastille`.
    Bastille(FakeBsdHost),
}

impl Backend {
    fn linux() -> Backend {
        common::ensure_worker_account();
        Backend::Linux(tempfile::tempdir().unwrap())
    }

    fn bastille() -> Backend {
        Backend::bastille_with(&["base", "host", "jails"])
    }

    /// A fakebsd host set up by `warden setup --backend bastille --step S` for each of `steps` (the agent step
    /// installs pi from the shared pi cache, fakebsd's stand-in for the npm registry).
    fn bastille_with(steps: &[&str]) -> Backend {
        let h = FakeBsdHost::fresh();
        let state = bsd_state_dir(&h);
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mirror = steps.contains(&"agent").then(common::pi_cache_installed);
        for step in steps {
            let mut cmd = h.cmd(common::warden_bin());
            cmd.arg("--state-dir").arg(&state).args([
                "setup",
                "--backend",
                "bastille",
                "--step",
                step,
            ]);
            if let Some(m) = &mirror {
                cmd.env("FAKEBSD_NPM_MIRROR", m);
            }
            let out = common::output_within(&mut cmd, common::WARDEN_LIMIT);
            assert!(
                out.status.success(),
                "setup --step {step}: {}",
                common::text(&out)
            );
        }
        // loader.conf's kern.racct.enable=1 (the base step) takes effect: workers get their rctl limits.
        assert!(h.tool(&["fakebsd", "reboot"]).status.success());
        Backend::Bastille(h)
    }

    fn state_dir(&self) -> PathBuf {
        match self {
            Backend::Linux(d) => d.path().join("warden"),
            Backend::Bastille(h) => bsd_state_dir(h),
        }
    }

    /// `warden serve --backend B` on 127.0.0.1 (an ephemeral port), its log in the state directory.
    fn serve(&self) -> Serve {
        self.serve_in(None, &[])
    }

    /// [`Backend::serve`] inside the network namespace `ns` (when given), with `env` added.
    fn serve_in(&self, ns: Option<&Path>, env: &[(&str, &str)]) -> Serve {
        let state = self.state_dir();
        let mut cmd = common::serve_command(ns, &state, &[]);
        match self {
            Backend::Linux(_) => cmd.args(["--backend", "linux"]),
            Backend::Bastille(h) => h.with_env(&mut cmd).args(["--backend", "bastille"]),
        };
        cmd.envs(env.iter().copied());
        Serve::spawn(cmd, &state)
    }

    /// What is left of workers: names of anything a worker owned.
    fn residue(&self) -> Vec<String> {
        let mut left: Vec<String> = Vec::new();
        let records = match self {
            Backend::Linux(_) => self.state_dir().join("workers"),
            Backend::Bastille(_) => self.state_dir().join("bastille-workers"),
        };
        if let Ok(entries) = std::fs::read_dir(&records) {
            left.extend(
                entries
                    .flatten()
                    .map(|e| format!("record {:?}", e.file_name())),
            );
        }
        if let Backend::Bastille(h) = self {
            let st = h.state();
            for j in st["jails"].as_object().unwrap().keys() {
                if !j.starts_with("clawdie") {
                    left.push(format!("jail {j}"));
                }
            }
            for i in st["interfaces"].as_object().unwrap().keys() {
                if i.starts_with("e0a_b") || i.starts_with("e0b_b") || i.starts_with("epair") {
                    left.push(format!("interface {i}"));
                }
            }
            for d in st["datasets"].as_object().unwrap().keys() {
                if d.contains("/workers/") {
                    left.push(format!("dataset {d}"));
                }
            }
        }
        left
    }
}

/// Warden's state directory on the simulated host: `/var/db/warden` under its root.
fn bsd_state_dir(h: &FakeBsdHost) -> PathBuf {
    h.root().join("var/db/warden")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn argv(tenant: &str, argv: &[&str]) -> TurnRequest {
    TurnRequest {
        tenant: tenant.into(),
        argv: Some(argv.iter().map(|s| s.to_string()).collect()),
        ..TurnRequest::default()
    }
}

/// The turn as the client types it, once `pred` holds (common's `Serve::wait_turn` polls, failing after 20 s).
fn wait_turn(
    rt: &tokio::runtime::Runtime,
    srv: &Serve,
    id: &str,
    pred: impl Fn(&TurnView) -> bool,
) -> TurnView {
    let as_view = |v: &serde_json::Value| serde_json::from_value::<TurnView>(v.clone());
    let v = rt.block_on(srv.wait_turn(id, Duration::from_secs(20), |v| {
        as_view(v).is_ok_and(|t| pred(&t))
    }));
    as_view(&v).expect("a turn view")
}

/// Waits until nothing of any worker is left (once serve stopped: a running one keeps parked workers).
fn wait_no_residue(b: &Backend) {
    wait_gone(b, "");
}

/// Waits until nothing of the workers whose names contain `name` is left.
fn wait_gone(b: &Backend, name: &str) {
    let start = Instant::now();
    loop {
        let left: Vec<String> = b
            .residue()
            .into_iter()
            .filter(|r| r.contains(name))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// argv turns: output and exit status come back, a failing command fails with its code.
fn argv_turns_end_to_end(b: &Backend) {
    let rt = rt();
    let srv = b.serve();
    let v = rt
        .block_on(srv.client().submit_wait(&argv("a", &["echo", "hi"])))
        .unwrap();
    assert_eq!(
        (v.status.as_str(), v.exit_code, v.stdout.as_str()),
        ("succeeded", Some(0), "hi\n"),
        "{v:?}"
    );
    let v = rt
        .block_on(
            srv.client()
                .submit_wait(&argv("a", &["sh", "-c", "echo oops >&2; exit 3"])),
        )
        .unwrap();
    assert_eq!(
        (v.status.as_str(), v.exit_code, v.failure.as_deref()),
        ("failed", Some(3), Some("exit_code")),
        "{v:?}"
    );
    assert_eq!(v.stderr, "oops\n");
    srv.stop();
    wait_no_residue(b);
}

/// A running turn is cancelled through the worker contract: it ends `cancelled` promptly, its worker is gone.
fn cancel_a_running_turn(b: &Backend) {
    let rt = rt();
    let srv = b.serve();
    let (id, _) = rt
        .block_on(srv.client().submit(&argv("a", &["sh", "-c", "sleep 60"])))
        .unwrap();
    let running = wait_turn(&rt, &srv, &id, |v| v.status.as_str() == "running");
    let t = Instant::now();
    rt.block_on(srv.client().cancel(&id)).unwrap();
    let v = wait_turn(&rt, &srv, &id, |v| v.status.is_terminal());
    assert_eq!(v.status.as_str(), "cancelled", "{v:?}");
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "cancel took {:?}",
        t.elapsed()
    );
    wait_gone(b, running.worker.as_deref().unwrap());
    srv.stop();
    wait_no_residue(b);
}

/// `kill -9` of serve mid-turn: the next start reaps the orphaned worker and marks the turn `interrupted`.
fn kill_9_then_restart_reaps_and_interrupts(b: &Backend) {
    let rt = rt();
    let mut srv = b.serve();
    let (id, _) = rt
        .block_on(srv.client().submit(&argv("a", &["sh", "-c", "sleep 60"])))
        .unwrap();
    let running = wait_turn(&rt, &srv, &id, |v| v.status.as_str() == "running");
    let worker = running.worker.clone().unwrap();
    srv.kill9();
    let srv = b.serve();
    let v = wait_turn(&rt, &srv, &id, |v| v.status.is_terminal());
    assert_eq!(
        (v.status.as_str(), v.failure.as_deref()),
        ("failed", Some("interrupted")),
        "{v:?}"
    );
    // Reaped by the restart (the new server is still running).
    wait_gone(b, &worker);
    srv.stop();
    wait_no_residue(b);
}

/// A prompt turn: pi runs in a vnet worker with the tenant's agent dir and workspace mounted, reaches the model
/// gateway on the bridge address (10.0.1.1, in this test's namespace) with its turn token, and the gateway adds
/// the provider key the mock provider requires; the reply comes back through the API. The test thread enters
/// the namespace: call it last on a thread.
fn prompt_turn_reaches_the_provider_through_the_gateway(b: &Backend) {
    let net = test_net();
    enter(&net);
    let key = format!("sk-backends-{}", std::process::id());
    let script = Script::new(vec![Reply::Text {
        text: "Hello from the mock provider.".into(),
    }])
    .with_required_key(&key);
    let mock = Provider::start(net.path(), "127.0.0.1", script);
    let base_url = mock.base_url();
    // Made after entering the namespace: its threads are there too.
    let rt = rt();
    let srv = b.serve_in(
        Some(&net.path()),
        &[
            ("WARDEN_POOL_SIZE", "0"),
            ("WARDEN_AGENT_BASE_URL", &base_url),
            ("WARDEN_AGENT_MODEL", "mock-model"),
            ("WARDEN_AGENT_API_KEY_ENV", "TEST_PROVIDER_KEY"),
            ("TEST_PROVIDER_KEY", &key),
        ],
    );
    let v = rt.block_on(srv.client().turn("acme", "say hello")).unwrap();
    assert_eq!(
        (v.status.as_str(), v.reply.as_deref()),
        ("succeeded", Some("Hello from the mock provider.")),
        "{v:?}\nlog: {}",
        srv.log_text()
    );
    let reqs = mock.completion_requests();
    assert_eq!(reqs.len(), 1, "one request reached the keyed provider");
    assert_eq!(reqs[0].body["model"], "mock-model");
    // pi was pointed at the gateway, with a turn token and not the key.
    let tenant = b.state_dir().join("tenants/acme");
    let models = std::fs::read_to_string(tenant.join("pi/models.json")).unwrap();
    assert!(models.contains("http://10.0.1.1:8090"), "{models}");
    assert!(
        !models.contains(&key),
        "the provider key reached the worker"
    );
    // pi kept its session in the tenant's agent dir (mounted at /var/pi in the worker).
    assert!(
        tenant.join("pi/sessions/acme.jsonl").is_file(),
        "no session file under {}",
        tenant.display()
    );
    srv.stop();
    wait_no_residue(b);
    drop(mock);
}

/// A named case.
type Case = (&'static str, fn(&Backend));

const CASES: &[Case] = &[
    ("argv_turns_end_to_end", argv_turns_end_to_end),
    ("cancel_a_running_turn", cancel_a_running_turn),
    (
        "kill_9_then_restart_reaps_and_interrupts",
        kill_9_then_restart_reaps_and_interrupts,
    ),
];

#[test]
fn api_cases_on_bastille_against_fakebsd() {
    for (name, case) in CASES {
        eprintln!("bastille: {name}");
        case(&Backend::bastille());
    }
}

#[test]
fn prompt_turn_on_bastille_against_fakebsd() {
    let _lock = root_test("prompt_turn_on_bastille_against_fakebsd");
    let b = Backend::bastille_with(&["base", "host", "jails", "agent"]);
    prompt_turn_reaches_the_provider_through_the_gateway(&b);
}

#[test]
fn prompt_turn_on_linux() {
    let _lock = root_test("prompt_turn_on_linux");
    common::ensure_worker_account();
    let state = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(state.path().join("warden")).unwrap();
    std::os::unix::fs::symlink(common::pi_cache_installed(), state.path().join("warden/pi"))
        .unwrap();
    prompt_turn_reaches_the_provider_through_the_gateway(&Backend::Linux(state));
}

#[test]
fn api_cases_on_linux() {
    for (name, case) in CASES {
        eprintln!("linux: {name}");
        case(&Backend::linux());
    }
}
