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

/// The doctor's checks named `expose.*`, by name: (status, remedy).
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
