//! `tailscale.mode` on Linux for real, as root, in network namespaces of the test's own: the real `warden`
//! binary with the Tailscale stand-in (`fakebsd`'s `tailscale` and `tailscaled`, which make a real tun
//! `tailscale0` with `ip tuntap`) first on its PATH, the runner seam production uses for the real CLI.
//!
//! - `host`: `warden serve` answers `/healthz` on the node's 100.x address too (also when the node comes up
//!   after serve started); the doctor's `tailscale.up` and `tailscale.listen` pass, and `.listen` fails naming
//!   serve when it is stopped.
//! - `subnet`: the /24 is advertised, forwarding is on and the forward rule for `tailscale0` is loaded; a tailnet
//!   peer behind `tailscale0` reaches the cms jail while a peer behind another interface does not. The stand-in
//!   cannot carry packets over its tun (no tailnet), so for the traffic part the tun is replaced by a veth named
//!   `tailscale0` (carrying the node's address, so the stand-in still reports the node as up) whose other end is
//!   the peer's namespace.
//! - `jail`: the named jail gets `/dev/net/tun` and can create a tun interface in its own network namespace, a
//!   jail without `--tun` cannot; the jail's node comes up inside it.
//!
//! Each ends with `warden teardown`, which leaves no Warden rule for `tailscale0` and withdraws the /24.

#![cfg(target_os = "linux")]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::linux_host::LinuxHost;
use common::{http_get_in as get, text, Netns, Serve};
use serde_json::Value;

/// The stand-in's programs (symlinks to `fakebsd`, which picks the tool by its name) and its state directory.
struct StandIn {
    bin: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl StandIn {
    fn new() -> StandIn {
        let fakebsd = warden_testkit::fakebsd::fakebsd_bin();
        let bin = tempfile::Builder::new()
            .prefix("wts-bin")
            .tempdir()
            .unwrap();
        for tool in ["tailscale", "tailscaled"] {
            std::os::unix::fs::symlink(&fakebsd, bin.path().join(tool)).unwrap();
        }
        let state = tempfile::Builder::new()
            .prefix("wts-state")
            .tempdir()
            .unwrap();
        StandIn { bin, state }
    }

    /// PATH with the stand-in first.
    fn path_var(&self) -> String {
        format!(
            "{}:{}",
            self.bin.path().display(),
            std::env::var("PATH").unwrap_or_default()
        )
    }

    /// `host` with the stand-in on the PATH of every `warden` it runs, and `tailscale.mode` (and `env`).
    fn host(&self, test: &str, letter: char, env: &[(&str, &str)]) -> LinuxHost {
        let mut h = LinuxHost::new(test, "wts", letter)
            .with_env("PATH", &self.path_var())
            .with_env(
                "TAILSCALE_STANDIN_STATE",
                &self.state.path().display().to_string(),
            )
            .with_env("WARDEN_JAILS_AI", "false")
            .with_env("WARDEN_POOL_SIZE", "0");
        for (k, v) in env {
            h = h.with_env(k, v);
        }
        h
    }

    /// `tailscale ARGS` (the operator's) in `ns`.
    fn cli(&self, ns: &Netns, args: &[&str]) -> Output {
        let mut argv = ns.prefix();
        argv.push(self.bin.path().join("tailscale").display().to_string());
        argv.extend(args.iter().map(|a| a.to_string()));
        common::output_within(
            Command::new(&argv[0])
                .args(&argv[1..])
                .env("TAILSCALE_STANDIN_STATE", self.state.path()),
            common::WARDEN_LIMIT,
        )
    }

    fn cli_ok(&self, ns: &Netns, args: &[&str]) -> String {
        let o = self.cli(ns, args);
        assert!(o.status.success(), "tailscale {args:?}: {}", text(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Starts tailscaled in `ns` (as the operator's `systemctl start tailscaled` would); killed on drop.
    fn daemon(&self, ns: &Netns) -> Daemon {
        let pid_file = self.state.path().join("tailscaled.pid");
        let _ = std::fs::remove_file(&pid_file);
        let mut argv = ns.prefix();
        argv.push(self.bin.path().join("tailscaled").display().to_string());
        argv.push(format!(
            "--state={}",
            self.state.path().join("tailscaled.state").display()
        ));
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .env("TAILSCALE_STANDIN_STATE", self.state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut d = Daemon(child);
        let t0 = Instant::now();
        while !pid_file.exists() {
            if let Ok(Some(st)) = d.0.try_wait() {
                panic!("tailscaled stand-in exited: {st}");
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "tailscaled did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        d
    }

    /// `AdvertiseRoutes` of the node (`tailscale debug prefs`).
    fn advertised(&self, ns: &Netns) -> Value {
        let prefs: Value = serde_json::from_str(&self.cli_ok(ns, &["debug", "prefs"])).unwrap();
        prefs["AdvertiseRoutes"].clone()
    }

    /// The node's IPv4 address (`tailscale ip`).
    fn ip(&self, ns: &Netns) -> String {
        self.cli_ok(ns, &["ip"]).trim().to_string()
    }
}

/// The stand-in tailscaled; killed and reaped on drop.
struct Daemon(Child);

impl Daemon {
    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The doctor's `tailscale.*` checks: name → (status, seen, remedy).
fn checks(h: &LinuxHost) -> std::collections::BTreeMap<String, (String, String, String)> {
    h.doctor_checks("tailscale.")
        .into_iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("name"), (s("status"), s("seen"), s("remedy")))
        })
        .collect()
}

/// Whether `/sys/class/net/NAME` exists in the namespace (or, for `None`, in this test's own).
fn has_link(ns: Option<&Netns>, name: &str) -> bool {
    match ns {
        Some(ns) => ns
            .exec(&["ip", "link", "show", "dev", name])
            .status
            .success(),
        None => Path::new("/sys/class/net").join(name).exists(),
    }
}

/// `plan --step tailscale` must be blocked (exit 1) saying `problem` and `fix`.
fn assert_blocked(h: &LinuxHost, problem: &str, fix: &str) {
    let o = h.warden(&["plan", "--backend", "linux", "--step", "tailscale"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains(problem) && text(&o).contains(fix),
        "want {problem:?} and {fix:?} in:\n{}",
        text(&o)
    );
}

#[test]
fn host_mode_serves_on_the_tailscale_address_and_the_doctor_checks_it() {
    let ts = StandIn::new();
    let h = ts.host("tailscale_host", 'h', &[("WARDEN_TAILSCALE_MODE", "host")]);
    let had_tailscale0 = has_link(None, "tailscale0");

    // No tailscaled: the step names starting it; a logged-out node: the step names `tailscale up`.
    assert_blocked(
        &h,
        "tailscaled does not answer",
        "systemctl enable --now tailscaled",
    );
    let _daemon = ts.daemon(&h.ns);
    assert_blocked(
        &h,
        "not logged in to a tailnet (BackendState NeedsLogin)",
        "tailscale up",
    );
    ts.cli_ok(&h.ns, &["up"]);
    let ip = ts.ip(&h.ns);
    assert!(ip.starts_with("100."), "{ip}");
    assert!(has_link(Some(&h.ns), "tailscale0"));
    assert_eq!(
        has_link(None, "tailscale0"),
        had_tailscale0,
        "the stand-in touched this machine"
    );
    h.setup_steps(&["host", "tailscale"]);
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "tailscale"]);
    assert!(plan.contains("nothing to do"), "{plan}");

    // serve listens on its usual address and on the node's.
    let serve = Serve::spawn(h.command(&["serve", "--backend", "linux"]), h.dir.path());
    let ts_addr = format!("{ip}:3100");
    for addr in ["127.0.0.1:3100", ts_addr.as_str()] {
        let got = get(h.ns.path(), addr, "/healthz", "warden");
        assert!(matches!(got, Ok((200, _))), "GET {addr}/healthz: {got:?}");
    }
    let c = checks(&h);
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(c["tailscale.up"].0, "ok", "{c:#?}");
    assert_eq!(c["tailscale.listen"].0, "ok", "{c:#?}");
    assert!(c["tailscale.listen"].1.contains(&ts_addr), "{c:#?}");

    // serve stopped: `.listen` fails naming serve.
    serve.stop();
    let c = checks(&h);
    assert_eq!(c["tailscale.up"].0, "ok", "{c:#?}");
    let (st, _, remedy) = &c["tailscale.listen"];
    assert_eq!(st, "fail", "{c:#?}");
    assert!(remedy.contains("serve"), "{c:#?}");

    // The node comes up after serve started: serve listens on its address once tailscale0 has it.
    ts.cli_ok(&h.ns, &["down"]);
    assert!(!has_link(Some(&h.ns), "tailscale0"));
    let serve = Serve::spawn(h.command(&["serve", "--backend", "linux"]), h.dir.path());
    assert!(get(h.ns.path(), &ts_addr, "/healthz", "warden").is_err());
    ts.cli_ok(&h.ns, &["up"]);
    let t0 = Instant::now();
    loop {
        match get(h.ns.path(), &ts_addr, "/healthz", "warden") {
            Ok((200, _)) => break,
            got => assert!(
                t0.elapsed() < Duration::from_secs(20),
                "serve did not start listening on {ts_addr} after `tailscale up`: {got:?}\n{}",
                serve.log_text()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    serve.stop();

    // Teardown: host mode changed nothing of Tailscale's (the login and tailscaled are the operator's).
    let o = h.warden(&["teardown", "--backend", "linux", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("kept tailscale"), "{}", text(&o));
    let rules = h.ns.exec_ok(&["nft", "list", "ruleset"]);
    assert!(!rules.contains("tailscale0"), "{rules}");
}

/// The tailnet peer and an outsider, each in a namespace behind a veth of the test host: the peer's host end is
/// named `tailscale0` (it replaces the stand-in's tun, keeping the node's address), the outsider's is not.
struct Peers {
    tailnet: Netns,
    outside: Netns,
}

const PEER_IP: &str = "100.127.0.2";

fn peers(h: &LinuxHost, node_ip: &str) -> Peers {
    assert_ne!(node_ip, PEER_IP);
    let tailnet = Netns::new();
    let outside = Netns::new();
    h.ns.exec_ok(&["ip", "link", "del", "tailscale0"]);
    h.ns.exec_ok(&[
        "ip",
        "link",
        "add",
        "tailscale0",
        "type",
        "veth",
        "peer",
        "name",
        "tsp0",
    ]);
    h.ns.exec_ok(&["ip", "link", "set", "tsp0", "netns", &tailnet.name]);
    h.ns.exec_ok(&[
        "ip",
        "addr",
        "add",
        &format!("{node_ip}/32"),
        "dev",
        "tailscale0",
    ]);
    h.ns.exec_ok(&["ip", "link", "set", "tailscale0", "up"]);
    // tailscaled routes the tailnet's addresses into tailscale0.
    h.ns.exec_ok(&[
        "ip",
        "route",
        "add",
        &format!("{PEER_IP}/32"),
        "dev",
        "tailscale0",
    ]);
    tailnet.exec_ok(&["ip", "addr", "add", &format!("{PEER_IP}/32"), "dev", "tsp0"]);
    tailnet.exec_ok(&["ip", "link", "set", "tsp0", "up"]);
    tailnet.exec_ok(&[
        "ip",
        "route",
        "add",
        &format!("{node_ip}/32"),
        "dev",
        "tsp0",
    ]);
    tailnet.exec_ok(&[
        "ip",
        "route",
        "add",
        "10.0.1.0/24",
        "via",
        node_ip,
        "dev",
        "tsp0",
    ]);

    h.ns.exec_ok(&[
        "ip", "link", "add", "wlan7", "type", "veth", "peer", "name", "wout0",
    ]);
    h.ns.exec_ok(&["ip", "link", "set", "wout0", "netns", &outside.name]);
    h.ns.exec_ok(&["ip", "addr", "add", "198.51.100.1/24", "dev", "wlan7"]);
    h.ns.exec_ok(&["ip", "link", "set", "wlan7", "up"]);
    outside.exec_ok(&["ip", "addr", "add", "198.51.100.2/24", "dev", "wout0"]);
    outside.exec_ok(&["ip", "link", "set", "wout0", "up"]);
    outside.exec_ok(&["ip", "route", "add", "10.0.1.0/24", "via", "198.51.100.1"]);
    Peers { tailnet, outside }
}

/// The handle of the forward rule that lets `tailscale0` in, if it is loaded.
fn tailscale_rule_handle(h: &LinuxHost) -> Option<String> {
    let chain =
        h.ns.exec_ok(&["nft", "-a", "list", "chain", "inet", "warden", "forward"]);
    chain
        .lines()
        .find(|l| l.contains("iifname \"tailscale0\""))
        .and_then(|l| l.rsplit("# handle ").next())
        .map(|h| h.trim().to_string())
}

#[test]
fn subnet_mode_lets_the_tailnet_and_nothing_else_into_the_subnet() {
    let ts = StandIn::new();
    let h = ts.host(
        "tailscale_subnet",
        's',
        &[
            ("WARDEN_TAILSCALE_MODE", "subnet"),
            ("WARDEN_SERVICE_RELEASE", "host"),
        ],
    );
    let _daemon = ts.daemon(&h.ns);
    ts.cli_ok(&h.ns, &["up", "--advertise-routes=192.168.50.0/24"]);
    let node_ip = ts.ip(&h.ns);
    h.setup_steps(&["host", "jails", "cms", "tailscale"]);
    assert_eq!(
        ts.advertised(&h.ns),
        serde_json::json!(["192.168.50.0/24", "10.0.1.0/24"])
    );
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "tailscale"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    assert_eq!(
        h.ns.exec_ok(&["cat", "/proc/sys/net/ipv4/ip_forward"])
            .trim(),
        "1"
    );
    assert!(tailscale_rule_handle(&h).is_some());
    let c = checks(&h);
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(c["tailscale.up"].0, "ok", "{c:#?}");
    assert_eq!(c["tailscale.routes"].0, "ok", "{c:#?}");

    // Traffic: the peer behind tailscale0 gets the cms page; the outsider, with the same route, does not.
    let p = peers(&h, &node_ip);
    let (status, page) =
        get(h.ns.path(), "10.0.1.3:80", "/", "cms.home.arpa").expect("cms from the host");
    assert_eq!(status, 200, "{page}");
    let from_tailnet = get(p.tailnet.path(), "10.0.1.3:80", "/", "cms.home.arpa");
    assert_eq!(from_tailnet, Ok((200, page.clone())), "tailnet peer → cms");
    let from_outside = get(p.outside.path(), "10.0.1.3:80", "/", "cms.home.arpa");
    assert!(
        from_outside.is_err(),
        "outsider reached cms: {from_outside:?}"
    );
    let c = checks(&h);
    assert_eq!(
        c["tailscale.up"].0, "ok",
        "the veth tailscale0 keeps the node's address: {c:#?}"
    );
    assert_eq!(c["tailscale.routes"].0, "ok", "{c:#?}");

    // The rule deleted behind Warden's back: the doctor fails naming the host step, which loads it again.
    let handle = tailscale_rule_handle(&h).unwrap();
    h.ns.exec_ok(&[
        "nft", "delete", "rule", "inet", "warden", "forward", "handle", &handle,
    ]);
    let c = checks(&h);
    let (st, seen, remedy) = &c["tailscale.routes"];
    assert_eq!(st, "fail", "{c:#?}");
    assert!(seen.contains("tailscale0"), "{c:#?}");
    assert!(
        remedy.contains("setup --backend linux --step host"),
        "{c:#?}"
    );
    assert!(get(p.tailnet.path(), "10.0.1.3:80", "/", "cms.home.arpa").is_err());
    h.setup_steps(&["host"]);
    assert!(
        tailscale_rule_handle(&h).is_some(),
        "the host step did not load the rule again"
    );
    assert_eq!(checks(&h)["tailscale.routes"].0, "ok");
    assert_eq!(
        get(p.tailnet.path(), "10.0.1.3:80", "/", "cms.home.arpa"),
        Ok((200, page))
    );

    // Teardown withdraws the /24 (the operator's route stays) and leaves no rule for tailscale0.
    let o = h.warden(&["teardown", "--backend", "linux", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(ts.advertised(&h.ns), serde_json::json!(["192.168.50.0/24"]));
    let rules = h.ns.exec_ok(&["nft", "list", "ruleset"]);
    assert!(!rules.contains("tailscale0"), "{rules}");
    assert!(get(p.tailnet.path(), "10.0.1.3:80", "/", "cms.home.arpa").is_err());
    let again = h.ok(&["teardown", "--backend", "linux", "--dry-run"]);
    assert!(!again.contains("tailscale set"), "{again}");
}

/// `warden jail exec [--root] JAIL -- ARGV` with `stdin`.
fn jail_exec(h: &LinuxHost, jail: &str, root: bool, argv: &[&str], stdin: Option<&Path>) -> Output {
    let mut args = vec!["jail", "exec"];
    if root {
        args.push("--root");
    }
    args.push(jail);
    args.push("--");
    args.extend(argv);
    let mut cmd = h.command(&args);
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
        None => Stdio::null(),
    });
    timeout_output(cmd, Duration::from_secs(60))
}

/// Runs `cmd`, killed after `limit` (the test fails saying so).
fn timeout_output(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("{cmd:?} did not finish within {limit:?}: {}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Installs the stand-in in `jail` (`/usr/local/bin/tailscale` and `tailscaled`), as apt would the real one.
fn install_in_jail(h: &LinuxHost, jail: &str) {
    let fakebsd = warden_testkit::fakebsd::fakebsd_bin();
    let o = jail_exec(
        h,
        jail,
        true,
        &[
            "sh",
            "-c",
            "cat > /usr/local/bin/tailscale && chmod 0755 /usr/local/bin/tailscale && ln -sf tailscale /usr/local/bin/tailscaled",
        ],
        Some(&fakebsd),
    );
    assert!(
        o.status.success(),
        "install the stand-in in {jail}: {}",
        text(&o)
    );
}

#[test]
fn jail_mode_gives_the_jail_a_tun_device_and_its_own_node() {
    let ts = StandIn::new();
    let h0 = ts.host(
        "tailscale_jail",
        'j',
        // No db jail: its thick copy of the release is most of the setup time and plays no part here.
        &[
            ("WARDEN_TAILSCALE_MODE", "jail"),
            ("WARDEN_JAILS_DB", "false"),
        ],
    );
    let jail = h0.jail("cms");
    let other = h0.jail("git");
    let h = h0.with_env("WARDEN_TAILSCALE_JAIL", &jail);
    h.setup_steps(&["host", "jails"]);
    assert_blocked(
        &h,
        &format!("tailscale is not installed in {jail}"),
        "apt repository",
    );
    install_in_jail(&h, &jail);
    install_in_jail(&h, &other);
    h.setup_steps(&["tailscale"]);

    // The device, 10:200, in the named jail only; a tun interface can be made there, not in the other jail.
    let dev = jail_exec(
        &h,
        &jail,
        true,
        &["stat", "-c", "%F %t:%T", "/dev/net/tun"],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&dev.stdout).trim(),
        "character special file a:c8",
        "{}",
        text(&dev)
    );
    let mk = jail_exec(
        &h,
        &jail,
        true,
        &["ip", "tuntap", "add", "dev", "tun9", "mode", "tun"],
        None,
    );
    assert!(
        mk.status.success(),
        "ip tuntap add in {jail}: {}",
        text(&mk)
    );
    let del = jail_exec(&h, &jail, true, &["ip", "link", "del", "tun9"], None);
    assert!(del.status.success(), "{}", text(&del));
    let none = jail_exec(&h, &other, true, &["test", "-c", "/dev/net/tun"], None);
    assert!(!none.status.success(), "{other} has /dev/net/tun");
    let mk = jail_exec(
        &h,
        &other,
        true,
        &["ip", "tuntap", "add", "dev", "tun9", "mode", "tun"],
        None,
    );
    assert!(
        !mk.status.success(),
        "{other} made a tun interface: {}",
        text(&mk)
    );

    // tailscaled runs in the jail; its node is logged out until the operator logs it in.
    let plan = h.ok(&["plan", "--backend", "linux", "--step", "tailscale"]);
    assert!(plan.contains("nothing to do"), "{plan}");
    assert!(
        plan.contains(&format!("jail exec {jail} -- tailscale up")),
        "{plan}"
    );
    let c = checks(&h);
    assert_eq!(c.len(), 2, "{c:#?}");
    assert_eq!(c["tailscale.jail"].0, "ok", "{c:#?}");
    assert_eq!(c["tailscale.up"].0, "fail", "{c:#?}");
    assert!(c["tailscale.up"].2.contains("tailscale up"), "{c:#?}");
    let up = jail_exec(&h, &jail, true, &["tailscale", "up"], None);
    assert!(up.status.success(), "tailscale up in {jail}: {}", text(&up));
    let c = checks(&h);
    assert_eq!(c["tailscale.up"].0, "ok", "{c:#?}");
    assert_eq!(c["tailscale.jail"].0, "ok", "{c:#?}");
    // tailscale0 is in the jail's network namespace, not the host's.
    let addr = jail_exec(
        &h,
        &jail,
        false,
        &["ip", "-br", "addr", "show", "dev", "tailscale0"],
        None,
    );
    assert!(
        addr.status.success() && text(&addr).contains("100."),
        "{}",
        text(&addr)
    );
    assert!(!has_link(Some(&h.ns), "tailscale0"));

    // The device taken away behind Warden's back: the doctor fails naming the step, which gives it back.
    h.ok(&["jail", "set", &jail, "--tun", "off"]);
    h.ok(&["jail", "stop", &jail]);
    h.ok(&["jail", "start", &jail]);
    let c = checks(&h);
    let (st, _, remedy) = &c["tailscale.jail"];
    assert_eq!(st, "fail", "{c:#?}");
    assert!(
        remedy.contains("setup --backend linux --step tailscale"),
        "{c:#?}"
    );
    h.setup_steps(&["tailscale"]);
    assert_eq!(checks(&h)["tailscale.jail"].0, "ok");

    // Teardown: the jails go, and with them the device and the jail's node.
    let o = h.warden(&["teardown", "--backend", "linux", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let rules = h.ns.exec_ok(&["nft", "list", "ruleset"]);
    assert!(!rules.contains("warden"), "{rules}");
    let gone = h.warden(&["jail", "exec", &jail, "--", "true"]);
    assert!(!gone.status.success(), "{jail} still runs");
    assert!(!has_link(Some(&h.ns), "tailscale0"));
}
