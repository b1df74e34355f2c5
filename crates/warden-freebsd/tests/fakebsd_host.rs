//! Integration tests against the simulated FreeBSD host (`crates/fakebsd`): full setup from a fresh host, an
//! empty second plan, a crash after each action followed by a clean run, workers and snapshots.
//!
//! Every test drives the `freebsd-setup-test` binary as a separate process (so `WARDEN_CRASH_AFTER` can abort it)
//! with `PATH` = an empty extra dir : fakebsd links : PATH and `FAKEBSD_STATE` set, and host files mapped under
//! `$FAKEBSD_STATE/root` (`SystemRunner::with_root`).
//!
//! Every step is covered: base (pkg install of Bastille and dnsmasq, the worker account, loader.conf), host,
//! jails, db, git, cms, ai, hosts, dns. fakebsd simulates the commands run inside
//! jails (pkg, sysrc, service, pw, install, createdb, psql) and `install -d` on the host, under its fake root.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const STEPS: [&str; 9] = [
    "base", "host", "jails", "db", "git", "cms", "ai", "hosts", "dns",
];

/// The fakebsd binary next to ours, built on demand; `None` (and a loud message) when it cannot be had.
fn fakebsd_bin() -> Option<PathBuf> {
    let ours = PathBuf::from(env!("CARGO_BIN_EXE_freebsd-setup-test"));
    let bin = ours.parent()?.join("fakebsd");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let _ = Command::new(cargo)
            .args(["build", "-p", "fakebsd"])
            .status();
    }
    // A test that cannot run fails loudly instead of passing without having run.
    assert!(
        bin.exists(),
        "fakebsd is not built ({}) and `cargo build -p fakebsd` did not produce it",
        bin.display()
    );
    Some(bin)
}

/// One fresh simulated host in a temp dir.
struct Host {
    _dir: tempfile::TempDir,
    links: PathBuf,
    shim: PathBuf,
    fake_state: PathBuf,
    warden_state: PathBuf,
}

impl Host {
    fn fresh() -> Option<Host> {
        let fakebsd = fakebsd_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let (links, shim, fake_state, warden_state) = (
            dir.path().join("bin"),
            dir.path().join("shim"),
            dir.path().join("fake"),
            dir.path().join("warden"),
        );
        for d in [&links, &shim, &fake_state, &warden_state] {
            std::fs::create_dir_all(d).unwrap();
        }
        let ok = Command::new(&fakebsd)
            .arg("install")
            .arg(&links)
            .status()
            .unwrap();
        assert!(ok.success(), "fakebsd install failed");
        let host = Host {
            _dir: dir,
            links,
            shim,
            fake_state,
            warden_state,
        };
        let out = host.cmd(&fakebsd).arg("init").output().unwrap();
        assert!(
            out.status.success(),
            "fakebsd init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(host)
    }

    fn cmd(&self, program: &Path) -> Command {
        let path = format!(
            "{}:{}:{}",
            self.shim.display(),
            self.links.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = Command::new(program);
        c.env("PATH", path)
            .env("FAKEBSD_STATE", &self.fake_state)
            .env_remove("WARDEN_CRASH_AFTER")
            .env_remove("WARDEN_CRASH_BEFORE");
        c
    }

    fn driver(&self, args: &[&str]) -> Command {
        let mut c = self.cmd(Path::new(env!("CARGO_BIN_EXE_freebsd-setup-test")));
        c.arg("--root")
            .arg(self.fake_state.join("root"))
            .arg("--state")
            .arg(&self.warden_state)
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.driver(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    fn with_steps(verb: &str) -> Vec<&str> {
        let mut args = vec![verb];
        for s in STEPS {
            args.extend(["--step", s]);
        }
        args
    }

    fn setup(&self) -> Value {
        self.json(&Host::with_steps("setup"))
    }

    fn plan(&self) -> Value {
        self.json(&Host::with_steps("plan"))
    }

    /// The observed host, less where this test keeps its state (a temporary directory per host).
    fn observed(&self) -> Value {
        let mut host = self.json(&["observe"])["host"].clone();
        if let Some(o) = host.as_object_mut() {
            o.remove("state_dir");
        }
        host
    }

    fn tool(&self, argv: &[&str]) -> String {
        let out = self
            .cmd(&self.links.join(argv[0]))
            .args(&argv[1..])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn actions(plan: &Value) -> Vec<String> {
    plan["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["summary"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn full_setup_from_fresh_host_then_nothing_to_do() {
    let Some(host) = Host::fresh() else { return };
    let first = host.plan();
    assert!(
        actions(&first).len() > 20,
        "a fresh host needs the whole setup: {first}"
    );
    let report = host.setup();
    assert_eq!(
        report["applied"].as_u64(),
        Some(actions(&first).len() as u64)
    );
    assert!(report["resumed"].as_array().is_some_and(|r| r.is_empty()));
    let again = host.plan();
    assert!(
        actions(&again).is_empty(),
        "second plan must be empty: {again}"
    );

    let seen = host.observed();
    for jail in ["clawdiegit", "clawdiecms", "clawdieai", "clawdiedb"] {
        assert_eq!(
            seen["jails"][jail]["running"],
            Value::Bool(true),
            "{jail} should run: {seen}"
        );
    }
    assert_eq!(seen["bridge_addrs"], serde_json::json!(["10.0.1.1/24"]));
    assert_eq!(seen["releases"], serde_json::json!(["15.0-RELEASE"]));
    assert_eq!(seen["pf_enabled"], Value::Bool(true));
    assert_eq!(seen["dnsmasq_running"], Value::Bool(true));
    assert_eq!(seen["prefix_mode"], serde_json::json!(0o750));
    // pf loaded the rule that keeps the host from routing between two workers.
    let rules = host.tool(&["pfctl", "-sr"]);
    assert!(
        rules
            .contains("block drop quick on warden0 inet from <warden_workers> to <warden_workers>"),
        "{rules}"
    );
    // A second setup is a no-op that still confirms convergence.
    assert_eq!(host.setup()["applied"].as_u64(), Some(0));
}

/// Runs a crashing setup then a clean one on a fresh host; returns the final observation and what the clean run
/// said about the interrupted one.
fn crash_then_recover(var: &str, n: usize) -> Option<(Value, Vec<String>)> {
    let host = Host::fresh()?;
    let out = host
        .driver(&Host::with_steps("setup"))
        .env(var, n.to_string())
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{var}={n} should abort the run: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("simulated crash"),
        "{var}={n}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = host.setup();
    assert!(actions(&host.plan()).is_empty(), "{var}={n}: not converged");
    let resumed = report["resumed"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some((host.observed(), resumed))
}

#[test]
fn crash_after_each_action_then_clean_run_reaches_the_same_state() {
    let Some(reference) = Host::fresh() else {
        return;
    };
    let total = actions(&reference.plan()).len();
    reference.setup();
    let want = reference.observed();
    let failures = std::sync::Mutex::new(Vec::new());
    // Two workers: each case is two short process runs on its own simulated host.
    let next = std::sync::atomic::AtomicUsize::new(1);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n > total {
                    break;
                }
                let Some((got, resumed)) = crash_then_recover("WARDEN_CRASH_AFTER", n) else {
                    break;
                };
                let said = resumed.iter().any(|l| l.contains(&format!("action {n} ")));
                if got != want || !said {
                    failures.lock().unwrap().push(format!(
                        "crash after action {n}: same state {}, resumed {resumed:?}",
                        got == want
                    ));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn crash_before_an_action_is_reported_as_unconfirmed() {
    let Some(reference) = Host::fresh() else {
        return;
    };
    let plan = reference.plan();
    let summaries = actions(&plan);
    reference.setup();
    let want = reference.observed();
    // The first action, the release bootstrap, the first jail create, and the last action.
    let bootstrap = summaries
        .iter()
        .position(|s| s.starts_with("bootstrap"))
        .unwrap()
        + 1;
    let create = summaries
        .iter()
        .position(|s| s.starts_with("create the git jail"))
        .unwrap()
        + 1;
    for n in [1, bootstrap, create, summaries.len()] {
        let Some((got, resumed)) = crash_then_recover("WARDEN_CRASH_BEFORE", n) else {
            return;
        };
        assert_eq!(got, want, "crash before action {n}");
        let expect = format!(
            "action {n} ({}) was started but not confirmed",
            summaries[n - 1]
        );
        assert!(
            resumed.iter().any(|l| l.contains(&expect)),
            "{resumed:?} lacks {expect:?}"
        );
    }
}

#[test]
fn workers_run_a_command_and_leave_nothing_behind() {
    let Some(host) = Host::fresh() else { return };
    host.json(&[
        "setup", "--step", "base", "--step", "host", "--step", "jails",
    ]);

    let out = host.run(&["worker", "--user", "nobody", "w1", "--", "echo", "hi"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["stdout"], "hi\n");
    assert_eq!(outcome["exit_code"], 0);
    assert_eq!(outcome["cleanup_problems"], serde_json::json!([]));

    // A networked worker gets .101, and the command's own exit status comes back.
    let out = host.run(&[
        "worker",
        "--vnet",
        "--user",
        "nobody",
        "w2",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (outcome["stdout"].as_str(), outcome["stderr"].as_str()),
        (Some("out\n"), Some("err\n"))
    );
    assert_eq!(outcome["addr"], "10.0.1.101");

    // A worker's port on the bridge is private (workers forward nothing to each other), seen while it runs.
    let mut busy = host
        .driver(&[
            "worker",
            "--vnet",
            "--user",
            "nobody",
            "w4",
            "--",
            "sh",
            "-c",
            "i=0; while (( i < 400000 )); do (( i++ )); done",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Between `addm` and `private` the port is briefly an ordinary member: wait for the flag.
    let mut member: Option<String> = None;
    let private = |m: &Option<String>| m.as_deref().is_some_and(|m| m.contains("PRIVATE"));
    while busy.try_wait().unwrap().is_none() && !private(&member) {
        if let Some(line) = host
            .tool(&["ifconfig", "warden0"])
            .lines()
            .find(|l| l.contains("member: e0a_w4 "))
        {
            member = Some(line.to_string());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(busy.wait().unwrap().success());
    let member = member.expect("the worker's port never showed on the bridge");
    assert!(
        member.contains("flags=943<LEARNING,DISCOVER,PRIVATE,"),
        "{member}"
    );

    // An unknown user is an infrastructure failure (125), not the command's exit 1.
    let out = host.run(&["worker", "--user", "nosuchuser", "w3", "--", "true"]);
    assert_eq!(
        out.status.code(),
        Some(125),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let datasets = host.tool(&["zfs", "list", "-H", "-o", "name"]);
    assert!(
        !datasets.lines().any(|d| d.contains("/workers/w")),
        "clone leaked: {datasets}"
    );
    let ifaces = host.tool(&["ifconfig", "-l"]);
    assert!(
        !ifaces.contains("_w1") && !ifaces.contains("_w2") && !ifaces.contains("epair"),
        "epair leaked: {ifaces}"
    );
    let jails = host.tool(&["jls", "name"]);
    assert!(
        !jails.lines().any(|j| j.starts_with('w')),
        "jail leaked: {jails}"
    );
    // The worker template snapshot stays for the next worker.
    assert!(host
        .tool(&["zfs", "list", "-H", "-o", "name", "-t", "snapshot"])
        .contains("releases/15.0-RELEASE@warden-worker"));
}

#[test]
fn snapshots_and_rollback_of_a_service_jail() {
    let Some(host) = Host::fresh() else { return };
    host.json(&[
        "setup", "--step", "base", "--step", "host", "--step", "jails",
    ]);
    host.json(&["snapshot", "clawdiegit", "before"]);
    let auto = host.json(&["snapshot", "clawdiegit"]);
    assert!(auto["tag"]
        .as_str()
        .is_some_and(|t| t.starts_with("warden-") && t.len() == "warden-20261123-173405".len()));
    let tags = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .filter(|s| !s["dataset"].as_str().unwrap().ends_with("/root"))
            .map(|s| s["tag"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        tags(&host.json(&["snapshots", "clawdiegit"])),
        vec!["before".to_string(), auto["tag"].as_str().unwrap().into()]
    );
    host.json(&["rollback", "clawdiegit", "before"]);
    assert_eq!(
        tags(&host.json(&["snapshots", "clawdiegit"])),
        vec!["before".to_string()]
    );
    let out = host.run(&["rollback", "clawdiegit", "missing"]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("does not exist")
    );
}
