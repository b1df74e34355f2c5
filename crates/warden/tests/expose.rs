//! Exposure (`[[expose]]`, seed 003) through the real `warden` binary: on the simulated FreeBSD host the pf
//! `rdr` and `pass` rules are planned, pass `pfctl -nf` (a malformed rdr does not), load with the host step, show
//! in `pfctl -s nat`, and the doctor checks each exposure (and fails with the fix when the rules are gone).
//! On Linux (root, its own namespaces) a client in an "outside" namespace on the test host's uplink fetches the
//! cms page through the DNAT and reaches nothing else.

mod common;

use common::text;
use serde_json::Value;
use warden_testkit::FakeBsdHost;

const BSD_CONFIG: &str = r#"
[[expose]]
port = 80
to = "cms"

[[expose]]
port = 443
to = "cms"
target_port = 80
"#;

/// The doctor's checks named `expose.*`: (name, status, remedy).
fn expose_checks(out: &std::process::Output) -> Vec<(String, String, String)> {
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(out)));
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"].as_str().unwrap_or("").starts_with("expose."))
        .map(|c| {
            (
                c["name"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("").to_string(),
                c["remedy"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn exposure_on_fakebsd_is_planned_validated_loaded_and_doctor_checked() {
    let h = FakeBsdHost::fresh();
    let config = h.p("warden.toml");
    std::fs::write(&config, BSD_CONFIG).unwrap();
    let config = config.display().to_string();
    let warden = |args: &[&str]| {
        let mut all = vec!["--config", config.as_str()];
        all.extend(args);
        h.warden(&all)
    };

    let out = warden(&["plan", "--backend", "bastille", "--step", "host"]);
    let plan = text(&out);
    assert!(
        plan.contains("exposures 80/tcp → cms 10.0.1.3:80, 443/tcp → cms 10.0.1.3:80"),
        "{plan}"
    );

    // The rendered pf.conf passes pfctl -nf; with a redirect that lacks its address it does not.
    let out = warden(&["render", "pf.conf"]);
    assert!(out.status.success(), "{}", text(&out));
    let pf = String::from_utf8_lossy(&out.stdout).into_owned();
    std::fs::create_dir_all(h.path("/tmp")).unwrap();
    std::fs::write(h.path("/tmp/pf.conf"), &pf).unwrap();
    let out = h.tool(&["pfctl", "-nf", "/tmp/pf.conf"]);
    assert!(out.status.success(), "pfctl -nf: {}", text(&out));
    let bad_line = pf.lines().position(|l| l.starts_with("rdr on")).unwrap() + 1;
    let broken = pf.replacen("-> 10.0.1.3 port 80", "-> port 80", 1);
    std::fs::write(h.path("/tmp/bad.conf"), broken).unwrap();
    let out = h.tool(&["pfctl", "-nf", "/tmp/bad.conf"]);
    assert!(
        !out.status.success(),
        "a malformed rdr loaded: {}",
        text(&out)
    );
    assert!(
        text(&out).contains(&format!("/tmp/bad.conf:{bad_line}: syntax error")),
        "{}",
        text(&out)
    );

    // Applied by the host step: pfctl lists the redirects and their pass rules.
    let out = warden(&["setup", "--backend", "bastille", "--step", "host"]);
    assert!(out.status.success(), "setup --step host: {}", text(&out));
    let nat = text(&h.tool(&["pfctl", "-P", "-s", "nat"]));
    for want in [
        "rdr on vtnet0 inet proto tcp from any to (vtnet0) port = 80 -> 10.0.1.3 port 80",
        "rdr on vtnet0 inet proto tcp from any to (vtnet0) port = 443 -> 10.0.1.3 port 80",
    ] {
        assert!(nat.contains(want), "{want:?} not in pfctl -s nat:\n{nat}");
    }
    let rules = text(&h.tool(&["pfctl", "-s", "rules"]));
    assert!(
        rules.contains("pass in quick on vtnet0 inet proto tcp from any to 10.0.1.3 port 80"),
        "{rules}"
    );

    // The doctor: the rule of each exposure passes; the slot's port is not probed on a simulated host.
    let checks = expose_checks(&warden(&["doctor", "--backend", "bastille", "--json"]));
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c.0 == name)
            .unwrap_or_else(|| panic!("no {name} in {checks:?}"))
            .clone()
    };
    for port in ["80", "443"] {
        assert_eq!(
            status(&format!("expose.{port}-tcp.rule")).1,
            "ok",
            "{checks:?}"
        );
        assert_eq!(
            status(&format!("expose.{port}-tcp.target")).1,
            "skip",
            "{checks:?}"
        );
    }

    // A ruleset loaded behind Warden's back without the redirects (the file is unchanged): the doctor fails
    // naming the host step, which reloads pf.conf.
    let without: String = pf
        .lines()
        .filter(|l| !l.starts_with("rdr on"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(h.path("/tmp/without.conf"), without).unwrap();
    let out = h.tool(&["pfctl", "-f", "/tmp/without.conf"]);
    assert!(out.status.success(), "{}", text(&out));
    let checks = expose_checks(&warden(&["doctor", "--backend", "bastille", "--json"]));
    let (_, st, remedy) = checks.iter().find(|c| c.0 == "expose.80-tcp.rule").unwrap();
    assert_eq!(st, "fail", "{checks:?}");
    assert!(
        remedy.contains("setup --backend bastille --step host"),
        "{remedy}"
    );
    let plan = text(&warden(&[
        "plan",
        "--backend",
        "bastille",
        "--step",
        "host",
    ]));
    assert!(plan.contains("$ pfctl -f /etc/pf.conf"), "{plan}");
    let out = warden(&["setup", "--backend", "bastille", "--step", "host"]);
    assert!(out.status.success(), "{}", text(&out));
    let checks = expose_checks(&warden(&["doctor", "--backend", "bastille", "--json"]));
    assert!(
        checks
            .iter()
            .filter(|c| c.0.ends_with(".rule"))
            .all(|c| c.1 == "ok"),
        "{checks:?}"
    );
}

#[cfg(target_os = "linux")]
mod linux {
    use std::path::PathBuf;

    use super::common::linux_host::LinuxHost;
    use super::common::{text, Netns};
    use super::expose_checks;

    /// The test host's uplink (`network.ext_if`) and its peer in the outside namespace, on TEST-NET-1.
    const UPLINK: &str = "wup0";
    const HOST_IP: &str = "192.0.2.1";

    const CONFIG: &str = r#"
[network]
ext_if = "wup0"

[jails]
service_release = "host"

[[expose]]
port = 80
to = "cms"

[[expose]]
port = 8080
to = "cms"
target_port = 80
"#;

    /// GET / with `Host: cms.home.arpa` from inside the network namespace at `netns`: (status, body), or why the
    /// connection failed.
    fn get_from(netns: PathBuf, addr: &str) -> Result<(u16, String), String> {
        super::common::http_get_in(netns, addr, "/", "cms.home.arpa")
    }

    /// An "outside" namespace wired to the test host by a veth: the host's end is its uplink.
    fn outside_of(h: &LinuxHost) -> Netns {
        let outside = Netns::new();
        h.ns.exec_ok(&[
            "ip", "link", "add", UPLINK, "type", "veth", "peer", "name", "wout0",
        ]);
        h.ns.exec_ok(&["ip", "link", "set", "wout0", "netns", &outside.name]);
        h.ns.exec_ok(&["ip", "addr", "add", &format!("{HOST_IP}/24"), "dev", UPLINK]);
        h.ns.exec_ok(&["ip", "link", "set", UPLINK, "up"]);
        outside.exec_ok(&["ip", "addr", "add", "192.0.2.2/24", "dev", "wout0"]);
        outside.exec_ok(&["ip", "link", "set", "wout0", "up"]);
        // A route to the subnet, so the direct path is tried and must be refused by the host's rules.
        outside.exec_ok(&["ip", "route", "add", "10.0.1.0/24", "via", HOST_IP]);
        outside
    }

    #[test]
    fn exposure_on_linux_reaches_the_cms_page_from_outside_and_nothing_else() {
        let cfg = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(cfg.path(), CONFIG).unwrap();
        let h = LinuxHost::new("expose", "wexp", 'x')
            .with_env("WARDEN_CONFIG", &cfg.path().display().to_string());
        let outside = outside_of(&h);

        // An uplink this host does not have blocks the host step, naming the fix; nothing is changed.
        let mut plan = h.command(&["plan", "--backend", "linux", "--step", "host"]);
        plan.env("WARDEN_EXT_IF", "nosuch0");
        let o = crate::common::output_within(&mut plan, crate::common::WARDEN_LIMIT);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        assert!(
            text(&o).contains("\"nosuch0\", which is not an interface of this host")
                && text(&o).contains("network.ext_if"),
            "{}",
            text(&o)
        );

        let plan = h.ok(&["plan", "--backend", "linux", "--step", "host"]);
        assert!(
            plan.contains("exposures 80/tcp → cms 10.0.1.3:80, 8080/tcp → cms 10.0.1.3:80"),
            "{plan}"
        );
        h.setup_steps(&["host", "jails", "cms"]);

        // The page as the host sees it on the cms slot, then from outside through each DNAT.
        let (status, page) = get_from(h.ns.path(), "10.0.1.3:80").expect("cms from the host");
        assert_eq!(status, 200, "{page}");
        assert!(!page.is_empty());
        for port in [80, 8080] {
            let got = get_from(outside.path(), &format!("{HOST_IP}:{port}"));
            assert_eq!(got, Ok((200, page.clone())), "outside → {HOST_IP}:{port}");
        }
        // Nothing else: not the slots themselves (even routed), not another port of the uplink.
        for addr in [
            "10.0.1.3:80",
            "10.0.1.5:5432",
            "10.0.1.2:80",
            "192.0.2.1:81",
            "192.0.2.1:5432",
        ] {
            let got = get_from(outside.path(), addr);
            assert!(got.is_err(), "outside reached {addr}: {got:?}");
        }

        // The doctor checks each exposure; with the ruleset gone it fails naming the host step, which restores it.
        let checks = expose_checks(&h.warden(&["doctor", "--json"]));
        let names: Vec<&str> = checks.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "expose.80-tcp.rule",
                "expose.80-tcp.target",
                "expose.8080-tcp.rule",
                "expose.8080-tcp.target"
            ]
        );
        assert!(checks.iter().all(|c| c.1 == "ok"), "{checks:?}");

        // One DNAT deleted from the loaded table (the ruleset file unchanged): the doctor fails, and the host step
        // sees the loaded table lacks it and loads the ruleset again.
        let chain =
            h.ns.exec_ok(&["nft", "-a", "list", "chain", "inet", "warden", "prerouting"]);
        let handle = chain
            .lines()
            .find(|l| l.contains("dport 80 dnat"))
            .and_then(|l| l.rsplit("# handle ").next())
            .map(|n| n.trim().to_string())
            .unwrap_or_else(|| panic!("no DNAT of port 80 in {chain}"));
        h.ns.exec_ok(&[
            "nft",
            "delete",
            "rule",
            "inet",
            "warden",
            "prerouting",
            "handle",
            &handle,
        ]);
        let checks = expose_checks(&h.warden(&["doctor", "--json"]));
        let rule = checks.iter().find(|c| c.0 == "expose.80-tcp.rule").unwrap();
        assert_eq!(rule.1, "fail", "{checks:?}");
        assert!(get_from(outside.path(), &format!("{HOST_IP}:80")).is_err());
        let plan = h.ok(&["plan", "--backend", "linux", "--step", "host"]);
        assert!(plan.contains("the loaded table lacks"), "{plan}");
        h.setup_steps(&["host"]);
        let checks = expose_checks(&h.warden(&["doctor", "--json"]));
        assert!(checks.iter().all(|c| c.1 == "ok"), "{checks:?}");
        assert_eq!(
            get_from(outside.path(), &format!("{HOST_IP}:80")),
            Ok((200, page.clone()))
        );

        h.ns.exec_ok(&["nft", "delete", "table", "inet", "warden"]);
        let checks = expose_checks(&h.warden(&["doctor", "--json"]));
        let rule = checks.iter().find(|c| c.0 == "expose.80-tcp.rule").unwrap();
        assert_eq!(rule.1, "fail", "{checks:?}");
        assert!(
            rule.2.contains("setup --backend linux --step host"),
            "{checks:?}"
        );
        assert!(get_from(outside.path(), &format!("{HOST_IP}:80")).is_err());
        h.setup_steps(&["host"]);
        let checks = expose_checks(&h.warden(&["doctor", "--json"]));
        assert!(checks.iter().all(|c| c.1 == "ok"), "{checks:?}");
        assert_eq!(
            get_from(outside.path(), &format!("{HOST_IP}:80")),
            Ok((200, page))
        );
    }
}
