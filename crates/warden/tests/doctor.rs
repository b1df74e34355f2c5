//! `warden doctor` end to end: on the Linux backend inside network namespaces this test creates, and on the
//! simulated FreeBSD host (fakebsd). Each test sets the host up with `warden setup`, checks it is healthy, then
//! breaks one thing at a time, expects exactly the checks that thing breaks to fail (with the right remedy), runs
//! the printed remedy, and expects a healthy report again.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use common::text;
use serde_json::Value;
use warden_testkit::FakeBsdHost;

fn names_with(report: &Value, status: &str) -> BTreeSet<String> {
    report["checks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["status"] == status)
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Something a test host can do: run warden and shell commands in its world.
trait Host {
    fn doctor_out(&self) -> Output;
    fn sh(&self, cmd: &str) -> Output;

    fn doctor(&self) -> (i32, Value) {
        let out = self.doctor_out();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(&out)));
        (out.status.code().unwrap_or(-1), v)
    }

    fn sh_ok(&self, cmd: &str) {
        let out = self.sh(cmd);
        assert!(out.status.success(), "`{cmd}` failed: {}", text(&out));
    }

    /// Runs `breaker`, expects exactly `want` (check → remedy fragment) to fail, runs each remedy (mapped through
    /// `map`), and expects no failure afterwards.
    fn break_and_fix(&self, breaker: &str, want: &[(&str, &str)], map: &dyn Fn(&str) -> String) {
        self.sh_ok(breaker);
        let (code, report) = self.doctor();
        let names: Vec<&str> = want.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names_with(&report, "fail"),
            set(&names),
            "after `{breaker}`: {report:#}"
        );
        assert_eq!(code, 1, "a failing check exits 1");
        let mut remedies: Vec<String> = Vec::new();
        for (name, fragment) in want {
            let c = check(&report, name);
            let remedy = c["remedy"].as_str().unwrap_or("").to_string();
            assert!(
                remedy.contains(fragment),
                "{name}: remedy {remedy:?} lacks {fragment:?}"
            );
            assert!(
                !c["expected"].as_str().unwrap_or("").is_empty()
                    && !c["seen"].as_str().unwrap_or("").is_empty()
            );
            if !remedies.contains(&remedy) {
                remedies.push(remedy);
            }
        }
        for remedy in remedies {
            let cmd = map(&remedy);
            let out = self.sh(&cmd);
            // `warden setup` is resumable and says so when an action fails (a loaded machine can fail
            // an action once), so a resumable failure gets the one re-run it asks for.
            if !out.status.success()
                && String::from_utf8_lossy(&out.stderr).contains("it continues from here")
            {
                std::thread::sleep(Duration::from_millis(200));
                self.sh_ok(&cmd);
            } else {
                assert!(out.status.success(), "`{cmd}` failed: {}", text(&out));
            }
        }
        let (code, report) = self.doctor();
        assert_eq!(
            names_with(&report, "fail"),
            BTreeSet::new(),
            "after the remedy for `{breaker}`: {report:#}"
        );
        assert_eq!(code, 0);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Linux

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use common::bin_dir;
    use common::Netns;
    use std::process::{Child, Command, Stdio};
    use std::time::Instant;

    /// A namespace with `warden setup --backend linux` applied, an "outside" namespace behind a veth pair with a TCP
    /// listener (the outbound probe target), and a state directory.
    struct LinuxHost {
        /// Dropped first: destroys the jails while the namespace exists.
        host: common::linux_host::LinuxHost,
        _outside: Netns,
        listener: Child,
        probe: String,
    }

    impl std::ops::Deref for LinuxHost {
        type Target = common::linux_host::LinuxHost;
        fn deref(&self) -> &common::linux_host::LinuxHost {
            &self.host
        }
    }

    impl LinuxHost {
        fn new() -> LinuxHost {
            // No ai jail: its `ai` step (a model server and its model) is not part of this test, and `ai.models`
            // would rightly fail on an ai jail with no server (crates/warden/tests/offline_turn.rs covers it).
            let host = common::linux_host::LinuxHost::new("linux doctor", "wdoctor", 't')
                .with_env("WARDEN_JAILS_AI", "false");
            let outside = Netns::new();
            let ns = &host.ns;
            ns.exec_ok(&[
                "ip",
                "link",
                "add",
                "wup0",
                "type",
                "veth",
                "peer",
                "name",
                "wdn0",
                "netns",
                &outside.name,
            ]);
            ns.exec_ok(&["ip", "addr", "add", "192.168.250.1/24", "dev", "wup0"]);
            ns.exec_ok(&["ip", "link", "set", "wup0", "up"]);
            outside.exec_ok(&["ip", "addr", "add", "192.168.250.2/24", "dev", "wdn0"]);
            outside.exec_ok(&["ip", "link", "set", "wdn0", "up"]);
            let server = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
                          s.bind(('0.0.0.0',8099))\ns.listen(64)\nwhile True:\n    c,_=s.accept()\n    c.close()\n";
            let mut argv = outside.prefix();
            argv.extend(["python3".to_string(), "-c".to_string(), server.to_string()]);
            let listener = Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(Stdio::null())
                .spawn()
                .expect("python3");
            let host = LinuxHost {
                host,
                _outside: outside,
                listener,
                probe: "192.168.250.2:8099".into(),
            };
            // Wait for the listener (it is in the other namespace; poll from there).
            let t0 = Instant::now();
            while !host
                ._outside
                .exec(&["sh", "-c", "grep -q ':1FA3 00000000:0000 0A' /proc/net/tcp"])
                .status
                .success()
            {
                assert!(
                    t0.elapsed() < Duration::from_secs(5),
                    "probe listener did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            // The service jails' cgroups are named by jail name machine-wide; the unique identity keeps them apart
            // from other tests' jails. Drop destroys them.
            host.setup_steps(&["host", "jails", "db", "git", "cms", "dns"]);
            host
        }

        fn dnsmasq_pid(&self) -> Option<String> {
            std::fs::read_to_string(self.dir.path().join("dnsmasq.pid"))
                .ok()
                .map(|s| s.trim().to_string())
        }
    }

    impl Host for LinuxHost {
        fn doctor_out(&self) -> Output {
            self.warden(&[
                "doctor",
                "--backend",
                "linux",
                "--json",
                "--probe",
                &self.probe,
            ])
        }

        fn sh(&self, cmd: &str) -> Output {
            let mut argv = self.ns.prefix();
            argv.extend(["sh".to_string(), "-c".to_string(), cmd.to_string()]);
            let path = format!(
                "{}:{}",
                bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            );
            common::output_within(
                Command::new(&argv[0])
                    .args(&argv[1..])
                    .env("PATH", path)
                    // The same layout as `warden` above (no ai jail) for the remedies it runs.
                    .env("WARDEN_JAILS_AI", "false"),
                common::WARDEN_LIMIT,
            )
        }
    }

    impl Drop for LinuxHost {
        fn drop(&mut self) {
            let _ = self.listener.kill();
            let _ = self.listener.wait();
        }
    }

    #[test]
    fn linux_doctor_finds_each_break_and_its_remedy_fixes_it() {
        let h = LinuxHost::new();
        let (code, report) = h.doctor();
        assert_eq!(code, 0, "{report:#}");
        for name in [
            "network.bridge",
            "network.forwarding",
            "network.nat",
            "dns.service",
            "dns.listen.loopback",
            "dns.listen.gateway",
            "dns.zone",
            "dns.resolve.loopback",
            "dns.resolve.gateway",
            "outbound",
            "state_dir.perms",
        ] {
            assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
        }
        for jail in ["git", "cms", "db"].map(|r| h.jail(r)) {
            for what in ["exists", "running", "addr", "hostname", "gateway", "dns"] {
                let name = format!("jail.{jail}.{what}");
                assert_eq!(check(&report, &name)["status"], "ok", "{name}: {report:#}");
            }
        }
        assert_eq!(
            check(&report, "hosts.block")["status"],
            "skip",
            "Linux does not manage /etc/hosts"
        );
        // How long a healthy run takes is measured, not asserted here (a test with a time limit
        // fails on a busy machine; docs/PERFORMANCE.md has the numbers). It is printed for the log.
        let ms = report["summary"]["duration_ms"].as_u64().unwrap();
        eprintln!("healthy doctor run: {ms} ms");

        // The table for people: no colour when stdout is not a terminal.
        let table = h.warden(&["doctor", "--backend", "linux", "--probe", &h.probe]);
        let t = String::from_utf8_lossy(&table.stdout);
        assert!(
            table.status.success()
                && t.contains("network.bridge")
                && t.contains("healthy")
                && !t.contains('\x1b'),
            "{t}"
        );

        let state = h.state();
        let id = |s: &str| s.to_string();
        // A stopped service jail: its remedy (`warden … jail start NAME`, with this run's flags) starts it again.
        let git = format!("{}git", h.identity);
        let running = format!("jail.{git}.running");
        let start = format!("--identity {} jail start {git}", h.identity);
        // Its nginx and fcgiwrap do not start with it: `setup --step git` starts them (git.http, skipped while
        // the jail is down, says so once it is up).
        let then_git = |s: &str| {
            format!(
                "{s} && warden --state-dir {state} --identity {} setup --backend linux --step git",
                h.identity
            )
        };
        h.break_and_fix(
            &format!(
                "warden --state-dir {state} --identity {} jail stop {git}",
                h.identity
            ),
            &[(running.as_str(), start.as_str())],
            &then_git,
        );
        h.break_and_fix(
            "ip addr del 10.0.1.1/24 dev warden0",
            &[("network.bridge", "setup --backend linux --step host")],
            &id,
        );
        let pid = h.dnsmasq_pid().expect("dnsmasq pid");
        h.break_and_fix(
            &format!("kill {pid}; while kill -0 {pid} 2>/dev/null; do sleep 0.01; done"),
            &[("dns.service", "setup --backend linux --step dns")],
            &id,
        );
        h.break_and_fix(
            "nft delete table inet warden",
            &[("network.nat", "setup --backend linux --step host")],
            &id,
        );
        h.break_and_fix(
            "nft delete table bridge warden",
            &[("network.paths", "setup --backend linux --step host")],
            &id,
        );
        h.break_and_fix(
            "sysctl -q -w net.ipv4.ip_forward=0",
            &[("network.forwarding", "setup --backend linux --step host")],
            &id,
        );
        h.break_and_fix(
            &format!("sed -i '/host-record=git/d' {state}/dnsmasq.conf"),
            &[("dns.zone", "setup --backend linux --step dns")],
            &id,
        );

        // The hosts block, in a file named with --hosts-file.
        let hosts = h.dir.path().join("hosts");
        let block = h.warden(&["render", "hosts"]);
        assert!(block.status.success(), "{}", text(&block));
        std::fs::write(
            &hosts,
            format!(
                "127.0.0.1\tlocalhost\n{}",
                String::from_utf8_lossy(&block.stdout)
            ),
        )
        .unwrap();
        let hosts_s = hosts.display().to_string();
        let with_hosts = HostsFile {
            h: &h,
            path: &hosts_s,
        };
        let (code, report) = with_hosts.doctor();
        assert_eq!(
            (code, &check(&report, "hosts.block")["status"]),
            (0, &Value::from("ok")),
            "{report:#}"
        );
        with_hosts.break_and_fix(
            &format!("sed -i '/git.home.arpa/d' {hosts_s}"),
            &[("hosts.block", "render hosts >>")],
            &id,
        );
        assert!(
            std::fs::read_to_string(&hosts)
                .unwrap()
                .starts_with("127.0.0.1\tlocalhost\n"),
            "other lines are kept"
        );
    }

    /// The Linux host with `--hosts-file`.
    struct HostsFile<'a> {
        h: &'a LinuxHost,
        path: &'a str,
    }

    impl Host for HostsFile<'_> {
        fn doctor_out(&self) -> Output {
            self.h.warden(&[
                "doctor",
                "--backend",
                "linux",
                "--json",
                "--hosts-file",
                self.path,
            ])
        }
        fn sh(&self, cmd: &str) -> Output {
            self.h.sh(cmd)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// FreeBSD (simulated)

impl Host for FakeBsdHost {
    fn doctor_out(&self) -> Output {
        self.warden(&["doctor", "--backend", "bastille", "--json"])
    }

    fn sh(&self, cmd: &str) -> Output {
        common::output_within(
            self.cmd(Path::new("sh")).arg("-c").arg(cmd),
            common::WARDEN_LIMIT,
        )
    }
}

#[test]
fn bastille_doctor_on_the_simulated_host_finds_each_break_and_its_remedy_fixes_it() {
    let h = FakeBsdHost::fresh();
    // db, git and cms too: the simulated git jail's services (fcgiwrap, nginx, Forgejo on db) are what git.http
    // checks, and db.<role> connects from the git and cms jails (their psql) to db.
    for step in ["base", "host", "jails", "db", "git", "cms", "dns", "hosts"] {
        let out = h.warden(&["setup", "--backend", "bastille", "--step", step]);
        assert!(out.status.success(), "setup --step {step}: {}", text(&out));
    }
    let (code, report) = h.doctor();
    assert_eq!(code, 0, "{report:#}");
    let mut want_ok = vec![
        "network.bridge".to_string(),
        "network.forwarding".into(),
        "network.pf".into(),
        "network.nat".into(),
        "dns.service".into(),
        "dns.zone".into(),
        "hosts.block".into(),
        "bastille.conf".into(),
        "bastille.prefix".into(),
        "bastille.sharedir".into(),
        "bastille.zfs".into(),
        "git.http".into(),
    ];
    for j in ["clawdiegit", "clawdiecms", "clawdieai", "clawdiedb"] {
        for what in ["exists", "running", "hostname", "patch"] {
            want_ok.push(format!("jail.{j}.{what}"));
        }
    }
    for j in ["clawdiegit", "clawdiecms", "clawdieai"] {
        want_ok.push(format!("jail.{j}.release"));
    }
    let roles = common::DB_ROLES;
    want_ok.extend(roles.iter().map(|r| format!("db.{r}")));
    for name in &want_ok {
        assert_eq!(check(&report, name)["status"], "ok", "{name}: {report:#}");
    }
    // db.<role> from the jail that uses it, with psql there: jexec without -l, the password in its environment.
    for r in roles {
        let from = if r == "system_git" {
            "from clawdiegit (10.0.1.2) → 10.0.1.5:5432"
        } else {
            "from clawdiecms (10.0.1.3) → 10.0.1.5:5432"
        };
        let c = check(&report, &format!("db.{r}"));
        assert!(c["seen"].as_str().unwrap().contains(from), "{c}");
    }
    let calls = std::fs::read_to_string(h.p("calls.log")).unwrap();
    assert!(
        calls.contains("jexec clawdiecms /usr/local/bin/psql -X -A -t -w -h 10.0.1.5"),
        "{calls}"
    );
    let table = text(&h.warden(&["doctor", "--backend", "bastille"]));
    for r in roles {
        let pw = std::fs::read_to_string(h.state_dir().join(format!("db/{r}.password"))).unwrap();
        let pw = pw.trim();
        assert!(!pw.is_empty());
        for (what, t) in [
            ("the report", &report.to_string()),
            ("the table", &table),
            ("fakebsd's call log", &calls),
        ] {
            assert!(!t.contains(pw), "{r}'s password in {what}");
        }
    }
    // What the simulation cannot answer is skipped with the reason, never passed.
    for name in [
        "dns.resolve.loopback",
        "dns.resolve.gateway",
        "jail.clawdiegit.gateway",
        "jail.clawdiegit.dns",
    ] {
        let c = check(&report, name);
        assert_eq!(c["status"], "skip", "{name}");
        assert!(
            c["seen"].as_str().unwrap().contains("simulated host"),
            "{c}"
        );
    }
    assert_eq!(
        check(&report, "dns.listen.gateway")["status"],
        "skip",
        "no sockstat in fakebsd yet"
    );

    let root = h.root().display().to_string();
    let id = |s: &str| s.to_string();
    h.break_and_fix(
        "ifconfig warden0 inet -alias 10.0.1.1",
        &[("network.bridge", "setup --backend bastille --step host")],
        &id,
    );
    h.break_and_fix(
        "service dnsmasq onestop",
        &[("dns.service", "setup --backend bastille --step dns")],
        &id,
    );
    h.break_and_fix(
        "pfctl -F nat",
        &[("network.nat", "setup --backend bastille --step host")],
        &id,
    );
    h.break_and_fix(
        "pfctl -d",
        &[("network.pf", "setup --backend bastille --step host")],
        &id,
    );
    h.break_and_fix(
        &format!("sed -i '/git.home.arpa/d' {root}/etc/hosts"),
        &[("hosts.block", "setup --backend bastille --step hosts")],
        &id,
    );
    // A stopped server: every role fails naming the db step, which starts it again.
    let db_fix = "setup --backend bastille --step db";
    h.break_and_fix(
        "jexec clawdiedb service postgresql stop",
        &roles
            .map(|r| (format!("db.{r}"), db_fix))
            .iter()
            .map(|(n, f)| (n.as_str(), *f))
            .collect::<Vec<_>>(),
        // The remedy's command, without the words after it that say what it does.
        &|r: &str| r.split(" (").next().unwrap_or(r).to_string(),
    );
    let command = |r: &str| r.split(" (").next().unwrap_or(r).to_string();
    let data = format!("{root}/usr/local/bastille/jails/clawdiedb/root/var/db/postgres/data18");
    // A pg_hba.conf that no longer admits the cms slot: the cms's roles fail, git's passes; the db step
    // writes Warden's file again.
    let cms_roles: Vec<String> = roles
        .iter()
        .filter(|r| **r != "system_git")
        .map(|r| format!("db.{r}"))
        .collect();
    h.break_and_fix(
        &format!("sed -i '/10.0.1.3\\/32/d' {data}/pg_hba.conf"),
        &cms_roles
            .iter()
            .map(|n| (n.as_str(), db_fix))
            .collect::<Vec<_>>(),
        &command,
    );
    // A role whose password the server lost: the remedy removes the sync marker, so the db step syncs again.
    h.break_and_fix(
        &format!("sed -i '/^strapi_cms$/d' {data}/fakebsd-role-passwords"),
        &[("db.strapi_cms", "/warden/db/synced && ")],
        &command,
    );
    // A stopped git jail: db.system_git, probed from it, is skipped as blocked by it (not failed twice).
    h.break_and_fix(
        "bastille stop clawdiegit",
        &[("jail.clawdiegit.running", "bastille start clawdiegit")],
        &id,
    );
    h.break_and_fix(
        &format!("sed -i 's/^\\(USERLAND_VERSION=.*-p\\)2/\\13/' {root}/usr/local/bastille/releases/15.0-RELEASE/bin/freebsd-version"),
        &[
            ("jail.clawdiegit.release", "bastille config clawdiegit set osrelease 15.0-RELEASE-p3"),
            ("jail.clawdiecms.release", "bastille config clawdiecms set osrelease 15.0-RELEASE-p3"),
            ("jail.clawdieai.release", "bastille config clawdieai set osrelease 15.0-RELEASE-p3"),
        ],
        &id,
    );
    // Now the thin jails run p3 on a p2 host: a warning that names the host update, not a failure.
    let (_, report) = h.doctor();
    let patch = check(&report, "jail.clawdiegit.patch");
    assert_eq!(patch["status"], "warn", "{patch}");
    assert!(
        patch["seen"].as_str().unwrap().contains("host behind"),
        "{patch}"
    );
    assert_eq!(
        check(&report, "jail.clawdiedb.patch")["status"],
        "ok",
        "the thick jail keeps its own userland"
    );

    // bastille_prefix must be 0750. The remedy names the FreeBSD path; on the simulated host it lives under root.
    h.break_and_fix(
        &format!("chmod 0755 {root}/usr/local/bastille"),
        &[("bastille.prefix", "chmod 0750 /usr/local/bastille")],
        &|r: &str| {
            r.replace(
                " /usr/local/bastille",
                &format!(" {root}/usr/local/bastille"),
            )
        },
    );
}

#[test]
fn doctor_rejects_a_bad_probe_and_pi_config_reports_json() {
    let out = common::warden(&["doctor", "--probe", "nope"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("IP:PORT"));
    // Without --probe, the config key doctor.probe (environment over file) is used, and named when bad.
    let out = common::warden(&["doctor"], &[("WARDEN_DOCTOR_PROBE", "nope")]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("doctor.probe (env WARDEN_DOCTOR_PROBE)"),
        "{}",
        text(&out)
    );
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("warden.toml");
    std::fs::write(&cfg, "[doctor]\nprobe = \"10.9.9.9\"\n").unwrap();
    let cfg_s = cfg.display().to_string();
    let out = common::warden(&["--config", &cfg_s, "doctor"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("doctor.probe (file {cfg_s})")),
        "{}",
        text(&out)
    );
    let shown = common::warden(
        &["--config", &cfg_s, "config", "show", "--json"],
        &[("WARDEN_DOCTOR_PROBE", "10.9.9.9:53")],
    );
    let v: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        v["keys"]["doctor.probe"]["source"],
        "env WARDEN_DOCTOR_PROBE"
    );

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let out = common::warden(&["--state-dir", &state, "pi-config", "--json"], &[]);
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));
    assert_eq!(
        v["models_json"]["providers"]["local"]["models"][0]["id"],
        "smollm2"
    );
    let pi = check(&v, "agent.pi_installed");
    assert_eq!(
        pi["status"], "fail",
        "nothing is installed in an empty state dir"
    );
    assert!(pi["remedy"].as_str().unwrap().contains(&format!(
        "--state-dir {state} setup --backend linux --step agent"
    )));
    assert_eq!(out.status.code(), Some(1), "a failing check exits 1");
    let human = common::warden(&["--state-dir", &state, "pi-config"], &[]);
    let t = String::from_utf8_lossy(&human.stdout);
    assert!(
        t.contains("models.json:") && t.contains("agent.pi_installed"),
        "{t}"
    );
}
