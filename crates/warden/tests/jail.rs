//! `warden jail` and `warden release` end to end (as root, each test in a network namespace of its own, run
//! through `nsenter --net`): lifecycle and persistence, addresses, names and DNS, isolation between jails,
//! recovery after `kill -9`, `warden setup --step jails` converging — and nothing left behind.
//!
//! Jail cgroups are named after the jail alone, so the tests take one lock and use names of their own.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Netns;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Serialises this binary's tests with each other and with other runs of them.
struct Serial(#[allow(dead_code)] Flock<File>);

fn serial() -> Serial {
    common::require_root();
    let f = File::create("/tmp/warden-jail-cli-tests.lock").unwrap();
    Serial(Flock::lock(f, FlockArg::LockExclusive).expect("lock"))
}

/// A warden state directory inside a fresh network namespace (with the bridge set up), and the jails to clean.
struct Host {
    ns: Netns,
    dir: tempfile::TempDir,
    identity: String,
    jails: std::cell::RefCell<Vec<String>>,
}

fn suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{:x}", (n ^ std::process::id()) % 0xfffff)
}

impl Host {
    fn new() -> Host {
        let h = Host {
            ns: Netns::new(),
            dir: tempfile::Builder::new().prefix("wjail").tempdir().unwrap(),
            // Jail names derive from the identity: unique ones keep the tests' cgroups apart.
            identity: format!("t{:0>5}", &suffix()),
            jails: Default::default(),
        };
        let out = h.warden(&["setup", "--backend", "linux", "--step", "host"]);
        assert!(out.status.success(), "setup host: {}", err(&out));
        h
    }

    fn state(&self) -> &Path {
        self.dir.path()
    }

    fn warden(&self, args: &[&str]) -> Output {
        common::output_within(&mut self.command(args), common::WARDEN_LIMIT)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut full = vec!["--identity", self.identity.as_str()];
        full.extend(args);
        let mut cmd = self.ns.warden(self.state(), &full);
        // These tests are about jails, names and isolation: the service jails on the host release (the fallback)
        // keep them quick; db.rs, git.rs and doctor.rs run them on the built debian release.
        cmd.env("WARDEN_SERVICE_RELEASE", "host");
        cmd
    }

    /// Runs `warden ARGS` in a process group of its own and SIGKILLs the group as soon as it prints the progress
    /// line of action `k` (`[k/TOTAL] …`): a crash with the actions before `k` done and `k` just started or
    /// under way. What it printed; fails if it ends first or takes over two minutes.
    fn crash_at(&self, args: &[&str], k: usize) -> String {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        let mut child = self
            .command(args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warden");
        let group = Pid::from_raw(-(child.id() as i32));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let (mark, deadline) = (format!("[{k}/"), Instant::now() + Duration::from_secs(120));
        let mut said = Vec::new();
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(chunk) => said.extend(chunk),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let status = child.wait().expect("wait for warden");
                    panic!(
                        "warden {args:?} ended ({status}) before action {k}: {}",
                        String::from_utf8_lossy(&said)
                    );
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if String::from_utf8_lossy(&said).contains(&mark) {
                break;
            }
            if Instant::now() > deadline {
                let _ = kill(group, Signal::SIGKILL);
                let _ = child.wait();
                panic!(
                    "warden {args:?} did not reach action {k} within 120 s: {}",
                    String::from_utf8_lossy(&said)
                );
            }
        }
        kill(group, Signal::SIGKILL).expect("kill warden's process group");
        let _ = child.wait();
        String::from_utf8_lossy(&said).into_owned()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.warden(args);
        assert!(
            out.status.success(),
            "warden {args:?} failed ({:?}): {}",
            out.status,
            err(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn track(&self, name: &str) {
        self.jails.borrow_mut().push(name.to_string());
    }

    /// The layout's service jails setup makes (git, cms, ai, db, named after the identity), tracked.
    fn track_service_jails(&self) -> Vec<String> {
        let names: Vec<String> = ["git", "cms", "ai", "db"]
            .iter()
            .map(|r| format!("{}{r}", self.identity))
            .collect();
        for n in &names {
            self.track(n);
        }
        names
    }

    /// `warden jail exec NAME [--root] -- sh -c SCRIPT`.
    fn sh(&self, name: &str, root: bool, script: &str) -> Output {
        let mut args = vec!["jail", "exec", name];
        if root {
            args.push("--root");
        }
        args.extend(["--", "sh", "-c", script]);
        self.warden(&args)
    }

    fn state_of(&self, name: &str) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["jail", "list", "--json"])).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|j| j["name"] == name)
            .map(|j| j["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "absent".into())
    }

    /// The first listed jail's init pid and its parent, the jail's supervisor.
    fn init_and_supervisor(&self) -> (i64, i32) {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["jail", "list", "--json"])).unwrap();
        let init = v[0]["pid"].as_i64().unwrap();
        let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
        let ppid = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (init, ppid)
    }

    fn kill_dnsmasq(&self) {
        if let Ok(pid) = std::fs::read_to_string(self.state().join("dnsmasq.pid")) {
            let _ = Command::new("kill").arg(pid.trim()).status();
        }
    }

    /// Nothing of the jails may remain: directories, records, cgroups, processes, veths, mounts.
    fn assert_no_residue(&self, names: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut left = Vec::new();
            let jails: Vec<_> = std::fs::read_dir(self.state().join("jails"))
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n != ".lock")
                        .collect()
                })
                .unwrap_or_default();
            if !jails.is_empty() {
                left.push(format!("jail dirs {jails:?}"));
            }
            let records = std::fs::read_dir(self.state().join("workers"))
                .map(|d| d.count())
                .unwrap_or(0);
            if records > 0 {
                left.push(format!("{records} worker records"));
            }
            for name in names {
                for ctl in ["memory", "pids", "cpu"] {
                    let d = Path::new("/sys/fs/cgroup")
                        .join(ctl)
                        .join("warden")
                        .join(name);
                    if d.exists() {
                        left.push(format!("cgroup {}", d.display()));
                    }
                }
            }
            let links = self.ns.exec_ok(&["ip", "-o", "link"]);
            if links.contains("e0a_") {
                left.push(format!("veths: {links}"));
            }
            let state = self.state().display().to_string();
            for mi in ["/proc/self/mountinfo", "/proc/1/mountinfo"] {
                let text = std::fs::read_to_string(mi).unwrap();
                if text.lines().any(|l| l.contains(&state)) {
                    left.push(format!("mounts in {mi}"));
                }
            }
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "residue: {left:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Whatever happened, stop and remove the jails before the namespace and the directory go.
        for name in self.jails.borrow().iter() {
            let _ = self.warden(&["jail", "destroy", "--force", name]);
        }
        self.kill_dnsmasq();
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn release_list_shows_host() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().display().to_string();
    let o = common::warden(&["--state-dir", &state, "release", "list"], &[]);
    let text = common::ok_stdout(&o);
    assert!(text.lines().nth(1).unwrap().starts_with("host "), "{text}");
    let o = common::warden(&["--state-dir", &state, "release", "list", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&common::ok_stdout(&o)).unwrap();
    assert_eq!(v[0]["name"], "host");
    assert_eq!(v.as_array().unwrap().len(), 1);
    let o = common::warden(&["--state-dir", &state, "release", "destroy", "host"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let o = common::warden(
        &["--state-dir", &state, "release", "bootstrap", "fedora"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("unknown release"), "{}", err(&o));
}

#[test]
fn thin_and_thick_jails_persist_across_restarts_and_leave_nothing() {
    let _s = serial();
    let h = Host::new();
    let sfx = suffix();
    let thin = format!("thin{sfx}");
    let thick = format!("thick{}", &sfx[..sfx.len().min(5)]);
    h.track(&thin);
    h.track(&thick);
    h.ok(&["jail", "create", &thin, "--addr", "10.0.1.20"]);
    h.ok(&[
        "jail",
        "create",
        &thick,
        "--addr",
        "10.0.1.21",
        "--shape",
        "thick",
        "--memory",
        "256M",
        "--pids",
        "200",
    ]);
    // Bad input is refused before anything changes.
    let o = h.warden(&["jail", "create", "Bad-Name", "--addr", "10.0.1.30"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let o = h.warden(&["jail", "create", "x1", "--addr", "10.0.1.120"]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    assert!(err(&o).contains("worker range"), "{}", err(&o));
    let o = h.warden(&["jail", "create", "x2", "--addr", "10.0.1.20"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("taken by jail"), "{}", err(&o));
    let list = h.ok(&["jail", "list"]);
    assert!(
        list.contains(&format!("{thin:<12} stopped  10.0.1.20")),
        "{list}"
    );
    assert!(list.contains("thick"), "{list}");

    let (mut starts, mut execs) = (Vec::new(), Vec::new());
    for (name, addr) in [(&thin, "10.0.1.20"), (&thick, "10.0.1.21")] {
        let t = Instant::now();
        h.ok(&["jail", "start", name]);
        starts.push(t.elapsed());
        assert_eq!(h.state_of(name), "running");
        let o = h.warden(&["jail", "start", name]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).contains("already running"), "{}", err(&o));
        for _ in 0..5 {
            let t = Instant::now();
            let o = h.warden(&["jail", "exec", name, "--", "true"]);
            execs.push(t.elapsed());
            assert!(o.status.success(), "{}", err(&o));
        }
        // Name, address, user, exit status, stdio.
        let o = h.sh(
            name,
            false,
            r"hostname; id -un; ip -4 -o addr show dev eth0 | sed 's/.*inet \([^ ]*\).*/\1/'; cat /etc/resolv.conf; echo to-stderr >&2; exit 9",
        );
        assert_eq!(o.status.code(), Some(9), "{}", err(&o));
        assert_eq!(
            out(&o),
            format!("{name}\nnobody\n{addr}/24\nnameserver 10.0.1.1\n")
        );
        assert_eq!(err(&o), "to-stderr\n");
        // stdin passes through too.
        let mut child = h
            .command(&["jail", "exec", name, "--", "cat"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"piped\n").unwrap();
        assert_eq!(out(&child.wait_with_output().unwrap()), "piped\n");
        // Root writes data of the jail's own; the host's /usr stays read-only.
        let o = h.sh(
            name,
            true,
            "mkdir -p /srv/data && echo kept > /srv/data/f && echo mine > /etc/mine && chown nobody /srv/data && ! touch /usr/x 2>/dev/null",
        );
        assert!(o.status.success(), "{}", err(&o));
        let o = h.warden(&["jail", "stop", name]);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(h.state_of(name), "stopped");
        let o = h.warden(&["jail", "exec", name, "--", "true"]);
        assert_eq!(o.status.code(), Some(125));
        assert!(err(&o).contains("is not running"), "{}", err(&o));
        assert!(err(&o).contains("warden jail start"), "{}", err(&o));
        h.ok(&["jail", "start", name]);
        let o = h.sh(
            name,
            false,
            "cat /srv/data/f /etc/mine; stat -c %U /srv/data",
        );
        assert_eq!(out(&o), "kept\nmine\nnobody\n", "{}", err(&o));
    }
    // The host (the release) was never written to.
    assert!(!Path::new("/srv/data/f").exists() && !Path::new("/etc/mine").exists());
    eprintln!(
        "jail start (CLI, median of {}): {:?}; jail exec of `true` (CLI, median of {}): {:?}",
        starts.len(),
        median(starts.clone()),
        execs.len(),
        median(execs.clone())
    );
    // Data keeps them from going quietly.
    for name in [&thin, &thick] {
        let o = h.warden(&["jail", "destroy", name]);
        assert_eq!(o.status.code(), Some(1), "{}", err(&o));
        assert!(err(&o).contains("--force"), "{}", err(&o));
        assert_eq!(h.state_of(name), "running");
        h.ok(&["jail", "destroy", "--force", name]);
        assert_eq!(h.state_of(name), "absent");
    }
    h.assert_no_residue(&[thin, thick]);
}

#[test]
fn kill_9_of_jail_start_midway_is_recovered_by_list_and_destroy() {
    let _s = serial();
    let h = Host::new();
    let name = format!("k{}", suffix());
    h.track(&name);
    h.ok(&["jail", "create", &name, "--addr", "10.0.1.40"]);
    for delay_ms in [0u64, 1, 2, 4, 8, 15, 30] {
        let mut child = h
            .command(&["jail", "start", &name])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        // Either the start got far enough for the supervisor to carry on, or nothing runs; both are clean states.
        let mut state = h.state_of(&name);
        if state == "stopped" {
            // A start whose supervisor is still coming up can look stopped for a moment; settle.
            std::thread::sleep(Duration::from_millis(200));
            state = h.state_of(&name);
        }
        match state.as_str() {
            "running" => {
                assert!(h.sh(&name, false, "true").status.success());
                h.ok(&["jail", "stop", &name]);
            }
            "stopped" => {}
            other => panic!("unexpected state {other}"),
        }
        // And it starts again normally.
        h.ok(&["jail", "start", &name]);
        h.ok(&["jail", "stop", &name]);
    }
    // kill -9 of the supervisor of a running jail: the jail dies with it; destroy cleans the rest.
    h.ok(&["jail", "start", &name]);
    let (_, ppid) = h.init_and_supervisor();
    kill(Pid::from_raw(ppid), Signal::SIGKILL).expect("kill the supervisor");
    let t = Instant::now();
    while h.state_of(&name) == "running" {
        assert!(t.elapsed() < Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(10));
    }
    h.ok(&["jail", "destroy", &name]);
    h.assert_no_residue(&[name]);
}

/// SIGTERM to a running jail's supervisor (what a service manager or `kill` sends) stops the jail as `warden
/// jail stop` does: the init and the supervisor exit, the cgroups, veth and record go, the jail stays created.
#[test]
fn sigterm_to_the_supervisor_stops_its_jail_cleanly() {
    let _s = serial();
    let h = Host::new();
    let name = format!("s{}", suffix());
    h.track(&name);
    h.ok(&["jail", "create", &name, "--addr", "10.0.1.41"]);
    h.ok(&["jail", "start", &name]);
    let (init, supervisor) = h.init_and_supervisor();
    kill(Pid::from_raw(supervisor), Signal::SIGTERM).expect("SIGTERM the supervisor");
    let t = Instant::now();
    while h.state_of(&name) != "stopped" || Path::new(&format!("/proc/{supervisor}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "SIGTERM to the supervisor {supervisor} did not stop jail {name}: {}",
            h.state_of(&name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !Path::new(&format!("/proc/{init}")).exists(),
        "the init {init} outlived the stop"
    );
    // It starts again, and destroy leaves nothing.
    h.ok(&["jail", "start", &name]);
    h.ok(&["jail", "destroy", "--force", &name]);
    h.assert_no_residue(&[name]);
}

#[test]
fn service_jails_from_setup_resolve_names_are_isolated_and_converge() {
    let _s = serial();
    let h = Host::new();
    let id = h.identity.clone();
    let names = h.track_service_jails();
    // The rest of the network's setup: host (done), jails, dns. (The agent step installs pi from the npm
    // registry, which this namespace cannot reach: `agent_step.rs` tests it.)
    let o = h.warden(&["setup", "--backend", "linux", "--step", "jails"]);
    assert!(o.status.success(), "setup: {}", err(&o));
    assert!(
        err(&o).contains(&format!("start the git jail {id}git")),
        "{}",
        err(&o)
    );
    let o = h.warden(&["setup", "--backend", "linux", "--step", "dns"]);
    assert!(o.status.success(), "setup: {}", err(&o));
    let o = h.warden(&["setup", "--backend", "linux", "--step", "dns"]);
    assert!(err(&o).contains("nothing to do"), "{}", err(&o));
    let o = h.warden(&["setup", "--backend", "linux", "--step", "jails"]);
    assert!(err(&o).contains("nothing to do"), "{}", err(&o));
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "jails"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    let v: serde_json::Value = serde_json::from_str(&h.ok(&["jail", "list", "--json"])).unwrap();
    let got: Vec<(String, String, String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap().to_string(),
                j["state"].as_str().unwrap().to_string(),
                j["addr"].as_str().unwrap().to_string(),
                j["shape"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = |r: &str, a: &str, s: &str| {
        (
            format!("{id}{r}"),
            "running".into(),
            a.to_string(),
            s.to_string(),
        )
    };
    assert_eq!(
        got,
        vec![
            want("ai", "10.0.1.4", "Thin"),
            want("cms", "10.0.1.3", "Thin"),
            want("db", "10.0.1.5", "Thick"),
            want("git", "10.0.1.2", "Thin"),
        ]
    );
    // Names resolve through the gateway's dnsmasq.
    let git = &names[0];
    let o = h.sh(
        git,
        false,
        "getent hosts git.home.arpa; getent hosts db.home.arpa",
    );
    let text = out(&o);
    assert!(
        text.contains("10.0.1.2") && text.contains("git.home.arpa"),
        "{text} {}",
        err(&o)
    );
    assert!(text.contains("10.0.1.5"), "{text}");
    // Between bridge ports only the layout's service paths cross (git/cms → db:5432; workers reach models
    // only through the gateway's model port); the gateway reaches every jail.
    let (cms, ai, db) = (&names[1], &names[2], &names[3]);
    let listen = |jail: &str, addr: &str, port: u16| {
        let o = h.sh(
            jail,
            false,
            &format!("python3 -m http.server {port} --bind {addr} >/dev/null 2>&1 & sleep 0.5; echo started"),
        );
        assert_eq!(out(&o), "started\n", "{}", err(&o));
    };
    // Connects to addr:port (from source port `from` unless 0) with a 1 s timeout.
    let script = |addr: &str, port: u16, from: u16| {
        format!(
            "import socket,sys\ns=socket.socket()\ns.settimeout(1)\nif {from}: s.bind(('', {from}))\n\
             try:\n    s.connect(('{addr}',{port}))\nexcept Exception:\n    sys.exit(1)\n"
        )
    };
    let from_jail = |jail: &str, addr: &str, port: u16, from: u16| {
        let o = h.warden(&[
            "jail",
            "exec",
            jail,
            "--",
            "python3",
            "-c",
            &script(addr, port, from),
        ]);
        o.status.success()
    };
    let from_worker = |addr: &str, port: u16| {
        let o = h.warden(&[
            "run",
            "--network",
            "vnet",
            "--",
            "python3",
            "-c",
            &script(addr, port, 0),
        ]);
        o.status.success()
    };
    listen(cms, "10.0.1.3", 8000);
    listen(ai, "10.0.1.4", 8080);
    assert!(
        h.ns.exec(&["python3", "-c", &script("10.0.1.3", 8000, 0)])
            .status
            .success(),
        "the gateway cannot reach cms:8000"
    );
    // The paths are checked with bridged frames seen by the bridge table only, and (where br_netfilter is
    // loaded, as on this project's machines) also by the inet forward chain.
    let paths = |how: &str| {
        // A server may answer from its service port but not open a connection from it.
        assert!(
            !from_jail(db, "10.0.1.3", 8000, 5432),
            "{how}: db opened a connection from port 5432"
        );
        listen(db, "10.0.1.5", 5432);
        assert!(
            from_jail(git, "10.0.1.5", 5432, 0),
            "{how}: git cannot reach db:5432"
        );
        assert!(
            from_jail(cms, "10.0.1.5", 5432, 0),
            "{how}: cms cannot reach db:5432"
        );
        assert!(
            !from_jail(ai, "10.0.1.5", 5432, 0),
            "{how}: ai reached db:5432"
        );
        assert!(
            !from_jail(git, "10.0.1.3", 8000, 0),
            "{how}: jail git reached cms:8000"
        );
        assert!(
            !from_jail(db, "10.0.1.3", 8000, 0),
            "{how}: jail db reached cms:8000"
        );
        assert!(
            !from_worker("10.0.1.4", 8080),
            "{how}: a worker reached ai:8080 (models go through the gateway only)"
        );
        assert!(
            !from_worker("10.0.1.5", 5432),
            "{how}: a worker reached db:5432"
        );
        assert!(
            !from_worker("10.0.1.3", 8000),
            "{how}: a worker reached cms:8000"
        );
        let o = h.sh(
            db,
            false,
            "pkill -f 'http[.]server 5432'; sleep 0.2; echo stopped",
        );
        assert_eq!(out(&o), "stopped\n", "{}", err(&o));
    };
    let br_nf = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    let sysctl = |v: &str| {
        h.ns.exec(&[
            "sh",
            "-c",
            &format!("[ ! -e {br_nf} ] || echo {v} > {br_nf}"),
        ])
    };
    assert!(sysctl("0").status.success());
    paths("bridge table alone");
    if std::path::Path::new(br_nf).exists() {
        assert!(sysctl("1").status.success());
        paths("bridge table and br_netfilter");
    }
    // A jail's daemon survives the exec that started it, and stop ends it.
    let o = h.sh(cms, false, "pgrep -f http.server >/dev/null && echo alive");
    assert_eq!(out(&o), "alive\n");
    for n in &names {
        h.ok(&["jail", "destroy", "--force", n]);
    }
    // Destroyed jails are planned again.
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "jails"]);
    assert!(plan.contains("jail create"), "{plan}");
    h.kill_dnsmasq();
    h.assert_no_residue(&names);
}

/// Every process whose command line names `needle` (a state directory: supervisors, dnsmasq, inits).
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains(needle) {
            found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
        }
    }
    found
}

/// `warden teardown` on Linux: the plan shows it, applying it leaves no link, rule, process, mount or cgroup of
/// the layout, keeps the thick db jail's data, makes the doctor say "not set up"; setup then works again, and
/// `--force` removes the db jail too.
#[test]
fn teardown_leaves_nothing_but_the_db_data_and_setup_restores_the_layout() {
    let _s = serial();
    let h = Host::new();
    let id = h.identity.clone();
    let names = h.track_service_jails();
    let db = names[3].clone();
    for step in ["jails", "dns"] {
        let o = h.warden(&["setup", "--backend", "linux", "--step", step]);
        assert!(o.status.success(), "setup {step}: {}", err(&o));
    }
    let o = h.sh(
        &db,
        true,
        "echo kept > /root/teardown-data && cat /root/teardown-data",
    );
    assert_eq!(out(&o), "kept\n", "{}", err(&o));
    let dnsmasq: i32 = std::fs::read_to_string(h.state().join("dnsmasq.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let plan = h.ok(&["teardown", "--backend", "linux", "--dry-run"]);
    for want in [
        "stop Warden's dnsmasq",
        &format!("stop and destroy the git jail {id}git"),
        &format!("stop the db jail {db} (thick: its data is kept)"),
        "delete the nftables table inet warden",
        "delete the bridge warden0",
    ] {
        assert!(plan.contains(want), "{want:?} missing from:\n{plan}");
    }
    assert!(
        !plan.contains(&format!("destroy the db jail {db}")),
        "{plan}"
    );
    // A crash (SIGKILL of warden's process group) as the third action starts; the next run resumes and finishes.
    let said = h.crash_at(&["teardown", "--backend", "linux", "--keep-data"], 3);
    let o = h.warden(&["teardown", "--backend", "linux", "--keep-data"]);
    assert!(o.status.success(), "teardown: {}", err(&o));
    assert!(
        err(&o).contains("resuming after an interrupted run"),
        "after a crash in {said:?}: {}",
        err(&o)
    );

    // No residue: links, nftables rules, processes, mounts, cgroups of the thin jails.
    let links = h.ns.exec_ok(&["ip", "-o", "link"]);
    assert!(
        !links.contains("warden0") && !links.contains("e0a_"),
        "{links}"
    );
    let rules = h.ns.exec_ok(&["nft", "list", "ruleset"]);
    assert!(!rules.contains("warden"), "{rules}");
    assert!(
        !Path::new(&format!("/proc/{dnsmasq}")).exists(),
        "dnsmasq {dnsmasq} still runs"
    );
    let state = h.state().display().to_string();
    let procs = processes_naming(&state);
    assert!(procs.is_empty(), "processes left: {procs:?}");
    for mi in ["/proc/self/mountinfo", "/proc/1/mountinfo"] {
        let text = std::fs::read_to_string(mi).unwrap();
        assert!(
            !text.lines().any(|l| l.contains(&state)),
            "mounts left in {mi}"
        );
    }
    for name in &names[..3] {
        for ctl in ["memory", "pids", "cpu"] {
            let d = Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("warden")
                .join(name);
            assert!(!d.exists(), "cgroup left: {}", d.display());
        }
    }
    for gone in ["dnsmasq.conf", "nftables.conf"] {
        assert!(!h.state().join(gone).exists(), "{gone} left");
    }
    assert_eq!(h.state_of(&db), "stopped");
    for n in &names[..3] {
        assert_eq!(h.state_of(n), "absent");
    }
    let o = h.warden(&["doctor", "--backend", "linux"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(out(&o).contains("not set up"), "{}", out(&o));
    let again = h.ok(&["teardown", "--backend", "linux", "--dry-run"]);
    assert!(again.contains("nothing to do"), "{again}");

    // Setup again gives a working layout, with the db data as it was.
    for step in ["host", "jails", "dns"] {
        let o = h.warden(&["setup", "--backend", "linux", "--step", step]);
        assert!(o.status.success(), "setup {step} again: {}", err(&o));
    }
    let o = h.sh(&db, true, "cat /root/teardown-data");
    assert_eq!(out(&o), "kept\n", "{}", err(&o));
    let o = h.sh(&names[0], false, "getent hosts db.home.arpa");
    assert!(out(&o).contains("10.0.1.5"), "{} {}", out(&o), err(&o));

    // --force: the db jail goes too, and nothing of any jail is left.
    // --force cut later, as its last action starts (the plan's length from its dry run).
    let plan = h.ok(&["teardown", "--backend", "linux", "--force", "--dry-run"]);
    let total = plan
        .lines()
        .filter(|l| {
            l.trim_start()
                .split_once(". ")
                .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
        })
        .count();
    assert!(total > 3, "{plan}");
    let said = h.crash_at(&["teardown", "--backend", "linux", "--force"], total);
    let o = h.warden(&["teardown", "--backend", "linux", "--force"]);
    assert!(o.status.success(), "teardown --force: {}", err(&o));
    assert!(
        err(&o).contains("resuming after an interrupted run"),
        "after a crash in {said:?}: {}",
        err(&o)
    );
    assert_eq!(h.state_of(&db), "absent");
    h.assert_no_residue(&names);
}
