//! The `warden` command line against the simulated FreeBSD host (`crates/fakebsd`), as the README's "Running the
//! FreeBSD backend against the simulated host" does it: fakebsd's tool links first on PATH, `FAKEBSD_STATE`, and
//! `WARDEN_HOST_ROOT=$FAKEBSD_STATE/root`. Covers full setup, snapshots and `warden run --backend bastille`.

mod common;

use common::text;
use serde_json::Value;
use warden_testkit::FakeBsdHost;

#[test]
fn setup_doctor_and_snapshots_through_the_cli() {
    let h = FakeBsdHost::fresh();
    // The whole setup from a fresh host, then its verify step (the doctor) passes.
    let out = h.warden_ok(&["setup", "--backend", "bastille"]);
    let err = text(&out);
    assert!(
        err.contains("applied") && err.contains("step verify"),
        "{err}"
    );
    let out = h.warden_ok(&["plan", "--backend", "bastille"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "second plan: {}",
        text(&out)
    );
    h.warden_ok(&["doctor", "--backend", "bastille"]);

    // An unknown jail is bad input, answered with the jails there are.
    let out = h.warden(&["snapshot", "--backend", "bastille", "nosuchjail"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nosuchjail")
            && err.contains("clawdiecms, clawdiedb, clawdiegit")
            && err.contains("fix:"),
        "{err}"
    );

    let out = h.warden_ok(&["snapshot", "--backend", "bastille", "clawdiegit", "before"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "before");
    let marker = h
        .root()
        .join("usr/local/bastille/jails/clawdiegit/root/tmp/after-snapshot");
    std::fs::write(&marker, "x").unwrap();

    // A running jail is not rolled back under its services.
    let out = h.warden(&["rollback", "--backend", "bastille", "clawdiegit", "before"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bastille stop clawdiegit"));
    assert!(marker.exists());

    assert!(h.tool(&["bastille", "stop", "clawdiegit"]).status.success());
    h.warden_ok(&["rollback", "--backend", "bastille", "clawdiegit", "before"]);
    assert!(!marker.exists(), "the rollback must remove the file");
    let out = h.warden(&["rollback", "--backend", "bastille", "clawdiegit", "missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    assert!(h
        .tool(&["bastille", "start", "clawdiegit"])
        .status
        .success());

    let out = h.warden_ok(&["snapshots", "--backend", "bastille", "clawdiegit"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("before ")),
        "snapshots lists the tag: {table}"
    );
    let out = h.warden_ok(&["snapshots", "--backend", "bastille", "clawdiegit", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "zroot/clawdie-runtime/jails/clawdiegit@before"),
        "{list:#}"
    );
}

/// Issue 18: from a fresh simulated host with no Bastille installed, `warden setup --backend bastille` installs
/// it and the rest (journaled), creates the `clawdie` account on the host and in the release, and writes
/// `kern.racct.enable=1` to loader.conf; workers refuse to run without limits until the (simulated) reboot, then
/// run as `clawdie` with no environment override.
#[test]
fn fresh_host_setup_installs_bastille_and_workers_run_as_clawdie() {
    let h = FakeBsdHost::fresh();
    let out = h.tool(&["bastille", "-v"]);
    assert_eq!(
        out.status.code(),
        Some(127),
        "a fresh host has no Bastille: {}",
        text(&out)
    );
    let out = h.warden(&["plan", "--backend", "bastille", "--no-install"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fix: pkg install -y bastille") && err.contains("fix: pkg install -y dnsmasq"),
        "{err}"
    );
    let out = h.warden(&["setup", "--backend", "bastille", "--no-install"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nothing was changed"),
        "{}",
        text(&out)
    );
    assert_eq!(h.tool(&["bastille", "-v"]).status.code(), Some(127));

    let out = h.warden_ok(&["setup", "--backend", "bastille"]);
    let err = text(&out);
    assert!(
        err.contains("install bastille and dnsmasq (pkg) … ok")
            && err.contains("create the worker account clawdie (uid 1500")
            && err.contains("reboot needed"),
        "{err}"
    );
    assert!(h.tool(&["bastille", "-v"]).status.success());
    assert!(h.tool(&["pkg", "info", "-e", "dnsmasq"]).status.success());
    let out = h.tool(&["pw", "usershow", "-n", "clawdie"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("clawdie:*:1500:1500:"),
        "{}",
        text(&out)
    );
    let release = "/usr/local/bastille/releases/15.0-RELEASE";
    let out = h.tool(&["pw", "-R", release, "usershow", "-n", "clawdie"]);
    assert!(out.status.success(), "{}", text(&out));
    let loader = std::fs::read_to_string(h.root().join("boot/loader.conf")).unwrap();
    assert!(loader.contains("kern.racct.enable=1"), "{loader}");
    let out = h.warden_ok(&["plan", "--backend", "bastille"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        text(&out)
    );

    // Until the reboot, rctl cannot enforce limits: workers refuse, unless the operator opts in.
    let out = h.warden(&["run", "--backend", "bastille", "--", "id", "-un"]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("workers.allow_unlimited"),
        "{}",
        text(&out)
    );
    let out = h.warden_env(
        &[("WARDEN_WORKERS_ALLOW_UNLIMITED", "1")],
        &["run", "--backend", "bastille", "--", "id", "-un"],
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "clawdie\n",
        "{}",
        text(&out)
    );

    assert!(h.tool(&["fakebsd", "reboot"]).status.success());
    let out = h.warden_ok(&["doctor", "--backend", "bastille"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kern.racct.enable = 1"),
        "{}",
        text(&out)
    );
    let out = h.warden(&["run", "--backend", "bastille", "--", "id", "-un"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "clawdie\n");
}

#[test]
fn run_with_the_bastille_backend_keeps_the_exit_contract_and_leaves_nothing() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    assert!(h.tool(&["fakebsd", "reboot"]).status.success());
    // The release's account is the default workers.user: no override needed.
    let none: [(&str, &str); 0] = [];
    let out = h.warden_env(&none, &["run", "--backend", "bastille", "--", "echo", "hi"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    let out = h.warden_env(
        &none,
        &["run", "--backend", "bastille", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = h.warden_env(
        &none,
        &[
            "run",
            "--backend",
            "bastille",
            "--network",
            "vnet",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // Limits come from the same flags: bad ones are usage errors, the output cap exits 141.
    let out = h.warden_env(
        &none,
        &[
            "run",
            "--backend",
            "bastille",
            "--timeout",
            "soon",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = h.warden_env(
        &none,
        &[
            "run",
            "--backend",
            "bastille",
            "--output",
            "4",
            "--",
            "echo",
            "123456789",
        ],
    );
    assert_eq!(out.status.code(), Some(141), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1234");
    // An endless writer is stopped at the cap while it runs (not after it: it never ends by itself).
    let t = std::time::Instant::now();
    let out = h.warden_env(
        &none,
        &[
            "run",
            "--backend",
            "bastille",
            "--output",
            "1K",
            "--timeout",
            "60s",
            "--",
            "sh",
            "-c",
            "while :; do echo 0123456789; done",
        ],
    );
    assert_eq!(out.status.code(), Some(141), "{}", text(&out));
    assert_eq!(out.stdout.len(), 1024);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("went over its output cap"),
        "{}",
        text(&out)
    );
    assert!(
        t.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        t.elapsed()
    );

    // Nothing of the workers is left: no jail, no epair, no clone.
    let state = h.state();
    let jails: Vec<&String> = state["jails"].as_object().unwrap().keys().collect();
    assert!(
        jails.iter().all(|j| j.starts_with("clawdie")),
        "a worker jail leaked: {jails:?}"
    );
    let ifaces: Vec<&String> = state["interfaces"].as_object().unwrap().keys().collect();
    assert!(
        ifaces
            .iter()
            .all(|i| !i.starts_with("epair") && !i.starts_with("e0a_b")),
        "an epair leaked: {ifaces:?}"
    );
    let clones: Vec<&String> = state["datasets"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|d| d.contains("/workers/"))
        .collect();
    assert!(clones.is_empty(), "a clone leaked: {clones:?}");
}

/// Stops what `service warden start` left running when a test fails half-way (the supervisor forwards
/// SIGTERM to warden serve; SIGKILL of its session if that does not end it).
struct ServiceGuard(std::path::PathBuf);

impl Drop for ServiceGuard {
    fn drop(&mut self) {
        use nix::sys::signal::{kill, killpg, Signal};
        use nix::unistd::Pid;
        let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
        else {
            return;
        };
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while kill(Pid::from_raw(pid), None).is_ok() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// `service warden …` as an operator runs it (`sysrc warden_enable=YES`, `service warden start`): the rc.d
/// script setup's host step installs, run by rc.subr as fakebsd simulates it (rc.conf's `warden_enable`,
/// `warden_flags`, daemon(8) with its pidfile), starts the real `warden serve --backend bastille`, which runs an
/// argv turn in a worker jail; `status`, `restart` and `stop` act on the pidfile's process.
#[test]
fn rc_d_service_runs_warden_serve_under_daemon() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    assert!(h.tool(&["fakebsd", "reboot"]).status.success());
    let root = h.root();
    assert!(root.join("usr/local/etc/rc.d/warden").is_file());
    // The operator's install: the binary and a config naming the state directory.
    std::fs::create_dir_all(root.join("usr/local/bin")).unwrap();
    std::os::unix::fs::symlink(common::warden_bin(), root.join("usr/local/bin/warden")).unwrap();
    let state = h.p("warden");
    std::fs::write(
        root.join("usr/local/etc/warden.toml"),
        format!("state_dir = \"{}\"\n", state.display()),
    )
    .unwrap();
    let pidfile = root.join("var/run/warden.pid");
    let _guard = ServiceGuard(pidfile.clone());
    let service = |action: &str| h.tool(&["service", "warden", action]);

    // Setup's host step enabled it in rc.conf; switched off, rc.subr refuses with its hint and starts nothing.
    let out = h.tool(&["sysrc", "-n", "warden_enable"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "YES");
    assert!(h.tool(&["sysrc", "warden_enable=NO"]).status.success());
    let out = service("start");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Set warden_enable to YES"),
        "{}",
        text(&out)
    );
    assert!(!pidfile.exists());
    assert_eq!(service("status").status.code(), Some(1));

    assert!(h.tool(&["sysrc", "warden_enable=YES"]).status.success());
    assert!(h
        .tool(&["sysrc", "warden_flags=--listen 127.0.0.1:0"])
        .status
        .success());
    let _ = std::fs::remove_file(state.join("serve.json"));
    let out = service("start");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let first = read_pid(&pidfile);
    let out = service("status");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("warden is running as pid {first}.")
    );
    let out = service("start");
    assert_eq!(out.status.code(), Some(1), "a second start: {}", text(&out));

    // The daemon's warden serve answers and runs a turn in a FreeBSD worker.
    let client = serve_client(&state, &root);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let req = warden_server::TurnRequest {
        tenant: "atlas".into(),
        argv: Some(vec!["echo".into(), "from the service".into()]),
        ..Default::default()
    };
    let v = rt.block_on(client.submit_wait(&req)).unwrap();
    assert_eq!(v.exit_code, Some(0), "{v:?}");

    let _ = std::fs::remove_file(state.join("serve.json"));
    let out = service("restart");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let second = read_pid(&pidfile);
    assert_ne!(first, second, "restart kept the old daemon");
    serve_client(&state, &root);

    let out = service("stop");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("Waiting for PIDS: {second}.")));
    let out = service("status");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "warden is not running."
    );
    assert!(
        !pidfile.exists(),
        "daemon(8) removes its pidfile when it exits"
    );
    let out = service("stop");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

fn read_pid(pidfile: &std::path::Path) -> i32 {
    std::fs::read_to_string(pidfile)
        .unwrap_or_else(|e| panic!("{}: {e}", pidfile.display()))
        .trim()
        .parse()
        .unwrap()
}

/// A client of the serve the service started, once it has written serve.json (its log: /var/log/messages).
fn serve_client(state: &std::path::Path, root: &std::path::Path) -> warden_server::Client {
    let start = std::time::Instant::now();
    loop {
        let info = std::fs::read_to_string(state.join("serve.json")).unwrap_or_default();
        if let Ok(v) = serde_json::from_str::<Value>(&info) {
            let addr = v["listening"][0].as_str().unwrap().to_string();
            let token = std::fs::read_to_string(state.join("token")).unwrap();
            return warden_server::Client::new(format!("http://{addr}"), token.trim());
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "warden serve did not start: {}",
            std::fs::read_to_string(root.join("var/log/messages")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The FreeBSD `agent` step: node22 and npm-node22 on the host and in the worker release (`pkg --rootdir`), the
/// worker template taken before node was there destroyed (the next worker's clone has node), pi installed once
/// into `<state_dir>/pi` with its marker; a second plan is empty.
#[test]
fn agent_step_puts_node_in_the_release_and_pi_in_the_shared_dir() {
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    assert!(h.tool(&["fakebsd", "reboot"]).status.success());
    // A worker before the step takes the release's template snapshot, without node.
    let node = [
        "run",
        "--backend",
        "bastille",
        "--",
        "test",
        "-x",
        "/usr/local/bin/node",
    ];
    let out = h.warden(&node);
    assert_eq!(out.status.code(), Some(1), "no node yet: {}", text(&out));

    let out = h.warden_ok(&["plan", "--backend", "bastille", "--step", "agent"]);
    let plan = String::from_utf8_lossy(&out.stdout);
    for want in [
        "$ env ASSUME_ALWAYS_YES=yes pkg install -y node22 npm-node22",
        "$ env ASSUME_ALWAYS_YES=yes pkg --rootdir /usr/local/bastille/releases/15.0-RELEASE install -y node22 npm-node22",
        "$ zfs destroy zroot/clawdie-runtime/releases/15.0-RELEASE@warden-worker",
        "@mariozechner/pi-coding-agent@",
    ] {
        assert!(plan.contains(want), "{want} not in {plan}");
    }
    h.warden_ok(&["setup", "--backend", "bastille", "--step", "agent"]);
    let out = h.warden_ok(&["plan", "--backend", "bastille", "--step", "agent"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "second plan: {}",
        text(&out)
    );
    let pi = h.root().join(
        h.p("warden/pi/node_modules/@mariozechner/pi-coding-agent/dist/cli.js")
            .strip_prefix("/")
            .unwrap(),
    );
    assert!(pi.is_file(), "{}", pi.display());
    let out = h.tool(&[
        "pkg",
        "--rootdir",
        "/usr/local/bastille/releases/15.0-RELEASE",
        "info",
        "-e",
        "node22",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // The next worker clones the template taken again, now with node.
    let out = h.warden(&node);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The db step on the simulated host through the CLI: the port's server, Warden's `postgresql.conf` and
/// `pg_hba.conf` in the cluster, every role and its database made by psql in the jail (the SQL on its stdin),
/// passwords 0600 in the state directory and in no output; `warden db url`; a restart of the jail plans only the
/// server's start and the sync, and a second plan is empty; the doctor's `db.*` checks fail naming the git and
/// cms steps (which install psql there).
#[test]
fn db_step_serves_roles_on_the_simulated_host() {
    use std::os::unix::fs::PermissionsExt;
    let h = FakeBsdHost::fresh();
    for step in ["base", "host", "jails", "db"] {
        h.warden_ok(&["setup", "--backend", "bastille", "--step", step]);
    }
    let out = h.warden_ok(&["plan", "--backend", "bastille", "--step", "db"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        text(&out)
    );
    let roles = common::DB_ROLES;
    let mut passwords = Vec::new();
    for role in roles {
        let p = h.p("warden").join(format!("db/{role}.password"));
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        passwords.push(std::fs::read_to_string(&p).unwrap().trim().to_string());
    }
    let data = h
        .root()
        .join("usr/local/bastille/jails/clawdiedb/root/var/db/postgres/data18");
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    assert!(
        hba.contains("host    sameuser  all       10.0.1.3/32         scram-sha-256"),
        "{hba}"
    );
    let conf = std::fs::read_to_string(data.join("postgresql.conf")).unwrap();
    assert!(
        conf.contains("listen_addresses = '10.0.1.5,127.0.0.1'"),
        "{conf}"
    );
    let out = h.tool(&[
        "jexec",
        "-l",
        "-U",
        "postgres",
        "clawdiedb",
        "psql",
        "-Atc",
        "select rolname from pg_roles",
    ]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    for role in roles {
        assert!(listed.lines().any(|l| l == role), "{role}: {listed}");
    }
    let with_pw = std::fs::read_to_string(data.join("fakebsd-role-passwords")).unwrap();
    assert_eq!(with_pw.lines().count(), roles.len(), "{with_pw}");

    let out = h.warden_ok(&["db", "url", "strapi_cms", "--backend", "bastille"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "postgresql://strapi_cms:{}@10.0.1.5:5432/strapi_cms",
            passwords[5]
        )
    );

    // A restart of the jail: its rc starts PostgreSQL (postgresql_enable), the roles are still there, nothing to do.
    assert!(h
        .tool(&["bastille", "restart", "clawdiedb"])
        .status
        .success());
    let out = h.warden_ok(&["plan", "--backend", "bastille", "--step", "db"]);
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(plan.contains("nothing to do"), "{plan}");
    // A lost sync (the marker removed) is planned again and applied without a password in any output.
    std::fs::remove_file(h.p("warden").join("db/synced")).unwrap();
    let out = h.warden_ok(&["plan", "--backend", "bastille", "--step", "db", "--json"]);
    let plan = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(plan.contains("set the passwords"), "{plan}");
    let out = h.warden_ok(&["setup", "--backend", "bastille", "--step", "db"]);
    let said = text(&out);
    for pw in &passwords {
        assert!(!said.contains(pw.as_str()) && !plan.contains(pw.as_str()));
    }
    let out = h.warden_ok(&["plan", "--backend", "bastille", "--step", "db"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "{}",
        text(&out)
    );

    let out = h.warden(&["doctor", "--backend", "bastille", "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let db: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap_or("").starts_with("db."))
        .collect();
    assert_eq!(db.len(), roles.len(), "{report:#}");
    // db.<role> connects from the git and cms jails, whose steps (not run here) install psql: each fails
    // naming the step that does.
    for c in db {
        let step = if c["name"] == "db.system_git" {
            "setup --backend bastille --step git (installs postgresql18-client in clawdiegit)"
        } else {
            "setup --backend bastille --step cms (installs postgresql18-client in clawdiecms)"
        };
        assert!(
            c["status"] == "fail" && c["remedy"].as_str().unwrap().contains(step),
            "{c:#}"
        );
    }
}

/// `warden teardown --backend bastille` against the simulated host through the real binary: the plan shows
/// each step's undo, a crash halfway is finished by the next run, a second plan is empty, the host keeps only
/// the stopped db jail, the doctor says "not set up", and setup then rebuilds the layout.
#[test]
fn teardown_is_planned_applied_resumed_after_a_crash_and_undone_by_setup() {
    let h = FakeBsdHost::fresh();
    h.warden_ok(&["setup", "--backend", "bastille"]);
    let out = h.warden_ok(&["teardown", "--backend", "bastille", "--dry-run"]);
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    for want in [
        "$ service dnsmasq onestop",
        "$ sysrc -x dnsmasq_enable",
        "remove /usr/local/etc/dnsmasq.conf",
        "remove the managed block of /etc/hosts",
        "$ bastille destroy -afy clawdiegit",
        "$ bastille stop clawdiedb",
        "$ service pf onestop",
        "remove /etc/pf.conf",
        "$ ifconfig warden0 destroy",
        "$ sysrc cloned_interfaces-=bridge0",
        "$ sysrc -x pf_enable",
    ] {
        assert!(plan.contains(want), "{want:?} missing from:\n{plan}");
    }
    assert!(!plan.contains("destroy -afy clawdiedb"), "{plan}");
    let json: Value = serde_json::from_slice(
        &h.warden_ok(&["teardown", "--backend", "bastille", "--dry-run", "--json"])
            .stdout,
    )
    .unwrap();
    let total = json["actions"].as_array().unwrap().len();
    assert!(total >= 15, "{json:#}");

    // A real crash halfway: fakebsd SIGKILLs warden at its Nth tool call, N a few calls past the observation
    // (what the dry run makes) into the applying; the next run says so and finishes.
    let counter = h.p("fake/kill-count");
    let _ = std::fs::remove_file(&counter);
    let out = h.warden_env(
        &[("FAKEBSD_KILL_PARENT_AFTER", "0")],
        &["teardown", "--backend", "bastille", "--dry-run"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let observe: usize = std::fs::read_to_string(&counter)
        .unwrap_or_default()
        .trim()
        .parse()
        .expect("fakebsd counted the dry run's calls");
    let _ = std::fs::remove_file(&counter);
    let kill_at = (observe + total / 2).to_string();
    let out = h.warden_env(
        &[("FAKEBSD_KILL_PARENT_AFTER", kill_at.as_str())],
        &["teardown", "--backend", "bastille"],
    );
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        Some(9),
        "warden was not killed: {}",
        text(&out)
    );
    let out = h.warden_ok(&["teardown", "--backend", "bastille"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("resuming after an interrupted run"), "{err}");
    let out = h.warden_ok(&["teardown", "--backend", "bastille", "--dry-run"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "second plan: {}",
        text(&out)
    );

    // What is left: the stopped db jail; no bridge, rc.conf keys, dnsmasq.conf, pf.conf or hosts block.
    let left = h.teardown_residue();
    assert!(left.is_empty(), "{left:#?}");
    let out = h.warden(&["doctor", "--backend", "bastille"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not set up"),
        "{}",
        text(&out)
    );

    // Setup rebuilds the layout around the kept db jail.
    h.warden_ok(&["setup", "--backend", "bastille"]);
    let out = h.warden_ok(&["plan", "--backend", "bastille"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to do"),
        "plan after setup again: {}",
        text(&out)
    );
}
