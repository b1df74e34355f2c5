//! `tailscale.mode` through the real `warden` binary: planned, applied, doctor-checked and torn down, on the
//! simulated FreeBSD host (fakebsd's `tailscale` and `tailscaled` service) here, and on Linux in a network
//! namespace of its own (`tailscale_linux.rs`).

use serde_json::Value;
use warden_testkit::fakebsd::text;
use warden_testkit::FakeBsdHost;

/// The doctor's `tailscale.*` checks as (name, status, seen, remedy).
fn tailscale_checks(out: &std::process::Output) -> Vec<(String, String, String, String)> {
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json: {e}: {}", text(out)));
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"].as_str().unwrap_or("").starts_with("tailscale."))
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("").to_string();
            (s("name"), s("status"), s("seen"), s("remedy"))
        })
        .collect()
}

fn status_of<'a>(checks: &'a [(String, String, String, String)], name: &str) -> &'a str {
    checks
        .iter()
        .find(|c| c.0 == name)
        .map(|c| c.1.as_str())
        .unwrap_or_else(|| panic!("no check {name} in {checks:#?}"))
}

/// `AdvertiseRoutes` of the simulated host's node (`tailscale debug prefs`).
fn advertised(h: &FakeBsdHost) -> Value {
    let out = h.tool(&["tailscale", "debug", "prefs"]);
    assert!(out.status.success(), "{}", text(&out));
    let prefs: Value = serde_json::from_slice(&out.stdout).unwrap();
    prefs["AdvertiseRoutes"].clone()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `subnet` on FreeBSD: setup installs and starts tailscaled, then refuses until the operator logs the host in
/// (`tailscale up`), then advertises the /24 once; the doctor sees the node, the approved route, forwarding and
/// pf's pass rule; teardown withdraws the route and keeps the operator's other one.
#[test]
fn subnet_mode_on_freebsd_against_fakebsd() {
    let h = FakeBsdHost::fresh();
    let env = [("WARDEN_TAILSCALE_MODE", "subnet")];
    let plan = h.warden_env(
        &env,
        &["plan", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(
        stdout(&plan).contains("$ env ASSUME_ALWAYS_YES=yes pkg install -y tailscale")
            && stdout(&plan).contains("$ service tailscaled start"),
        "{}",
        text(&plan)
    );
    for step in ["base", "host", "tailscale"] {
        let out = h.warden_env(&env, &["setup", "--backend", "bastille", "--step", step]);
        assert!(out.status.success(), "setup {step}: {}", text(&out));
    }
    // tailscaled runs, logged out: the step is blocked, naming `tailscale up`.
    let out = h.warden_env(
        &env,
        &["setup", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("not logged in to a tailnet (BackendState NeedsLogin)")
            && text(&out).contains("fix: tailscale up"),
        "{}",
        text(&out)
    );
    let doctor = h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]);
    let checks = tailscale_checks(&doctor);
    assert_eq!(status_of(&checks, "tailscale.up"), "fail", "{checks:#?}");
    assert!(
        checks.iter().any(|c| c.3.contains("tailscale up")),
        "{checks:#?}"
    );

    // The operator logs in, with a route of their own already advertised.
    let up = h.tool(&["tailscale", "up", "--advertise-routes=192.168.50.0/24"]);
    assert!(up.status.success(), "{}", text(&up));
    let out = h.warden_env(
        &env,
        &["setup", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        advertised(&h),
        serde_json::json!(["192.168.50.0/24", "10.0.1.0/24"])
    );
    let plan = h.warden_env(
        &env,
        &["plan", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(stdout(&plan).contains("nothing to do"), "{}", text(&plan));

    let doctor = h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]);
    let checks = tailscale_checks(&doctor);
    assert_eq!(checks.len(), 2, "{checks:#?}");
    assert_eq!(status_of(&checks, "tailscale.up"), "ok", "{checks:#?}");
    assert_eq!(status_of(&checks, "tailscale.routes"), "ok", "{checks:#?}");

    // The route gone behind Warden's back: the doctor says so and names the step that fixes it.
    let set = h.tool(&["tailscale", "set", "--advertise-routes=192.168.50.0/24"]);
    assert!(set.status.success(), "{}", text(&set));
    let checks =
        tailscale_checks(&h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]));
    let routes = checks.iter().find(|c| c.0 == "tailscale.routes").unwrap();
    assert_eq!(routes.1, "fail");
    assert!(routes.3.contains("--step tailscale"), "{routes:?}");
    let out = h.warden_env(
        &env,
        &["setup", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(out.status.success(), "{}", text(&out));

    let out = h.warden_env(&env, &["teardown", "--backend", "bastille"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(advertised(&h), serde_json::json!(["192.168.50.0/24"]));
    let again = h.warden_env(&env, &["teardown", "--backend", "bastille", "--dry-run"]);
    assert!(
        !stdout(&again).contains("tailscale set"),
        "{}",
        text(&again)
    );
}

/// `host` on FreeBSD: the node is checked; the listen check is skipped on a simulated host (nothing answers
/// on its addresses), not passed.
#[test]
fn host_mode_on_freebsd_against_fakebsd() {
    let h = FakeBsdHost::fresh();
    let env = [("WARDEN_TAILSCALE_MODE", "host")];
    for step in ["base", "host", "tailscale"] {
        let out = h.warden_env(&env, &["setup", "--backend", "bastille", "--step", step]);
        assert!(out.status.success(), "setup {step}: {}", text(&out));
    }
    let up = h.tool(&["tailscale", "up"]);
    assert!(up.status.success(), "{}", text(&up));
    let plan = h.warden_env(
        &env,
        &["plan", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(stdout(&plan).contains("nothing to do"), "{}", text(&plan));
    let checks =
        tailscale_checks(&h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]));
    assert_eq!(status_of(&checks, "tailscale.up"), "ok", "{checks:#?}");
    assert_eq!(
        status_of(&checks, "tailscale.listen"),
        "skip",
        "{checks:#?}"
    );
    // tailscaled stopped: the node does not answer, and the fix starts it.
    let stop = h.tool(&["service", "tailscaled", "stop"]);
    assert!(stop.status.success(), "{}", text(&stop));
    let checks =
        tailscale_checks(&h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]));
    let up = checks.iter().find(|c| c.0 == "tailscale.up").unwrap();
    assert_eq!(up.1, "fail");
    assert!(
        up.2.contains("doesn't appear to be running") && up.3.contains("--step tailscale"),
        "{up:?}"
    );
    // Off: no Tailscale check at all.
    let checks = tailscale_checks(&h.warden(&["doctor", "--backend", "bastille", "--json"]));
    assert!(checks.is_empty(), "{checks:#?}");
}

/// `jail` on FreeBSD: the jail gets devfs ruleset 14 and `allow.tun` through `bastille config` (its jail.conf
/// then equals Warden's rendering), a restart, and tailscaled inside; the operator logs the jail's node in, and
/// `tailscale0` lives in the jail's VNET stack. A jail without `allow.tun` cannot create it.
#[test]
fn jail_mode_on_freebsd_against_fakebsd() {
    let h = FakeBsdHost::fresh();
    let env = [
        ("WARDEN_TAILSCALE_MODE", "jail"),
        ("WARDEN_TAILSCALE_JAIL", "clawdiecms"),
        ("WARDEN_JAILS_AI", "false"),
    ];
    for step in ["base", "host", "jails", "tailscale"] {
        let out = h.warden_env(&env, &["setup", "--backend", "bastille", "--step", step]);
        assert!(out.status.success(), "setup {step}: {}", text(&out));
    }
    let conf =
        std::fs::read_to_string(h.path("/usr/local/bastille/jails/clawdiecms/jail.conf")).unwrap();
    let rendered = h.warden_env(&env, &["render", "jail.conf", "--jail", "clawdiecms"]);
    let rendered = stdout(&rendered);
    // The rendering's osrelease is the release name (Bastille's carries the patch level) and its console log
    // path is the newer Bastille's.
    let strip = |t: &str| -> String {
        t.lines()
            .filter(|l| {
                let l = l.trim_start();
                !l.starts_with("osrelease") && !l.starts_with("exec.consolelog")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&conf), strip(&rendered));
    let plan = h.warden_env(
        &env,
        &["plan", "--backend", "bastille", "--step", "tailscale"],
    );
    assert!(stdout(&plan).contains("nothing to do"), "{}", text(&plan));
    assert!(
        stdout(&plan).contains("jexec -l clawdiecms tailscale up"),
        "{}",
        text(&plan)
    );

    let checks =
        tailscale_checks(&h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]));
    assert_eq!(status_of(&checks, "tailscale.jail"), "ok", "{checks:#?}");
    assert_eq!(status_of(&checks, "tailscale.up"), "fail", "{checks:#?}");
    let up = h.tool(&["jexec", "-l", "-U", "root", "clawdiecms", "tailscale", "up"]);
    assert!(up.status.success(), "{}", text(&up));
    let checks =
        tailscale_checks(&h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]));
    assert_eq!(status_of(&checks, "tailscale.up"), "ok", "{checks:#?}");
    let state = h.state();
    assert_eq!(
        state["interfaces"]["tailscale0"]["vnet"], "clawdiecms",
        "{:#}",
        state["interfaces"]
    );
    let doctor = h.warden_env(&env, &["doctor", "--backend", "bastille", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let jail = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "jail.clawdiecms")
        .cloned()
        .unwrap_or_default();
    assert_ne!(jail["status"], "fail", "{jail:#}");

    // Another jail, without allow.tun, cannot create a tun interface.
    let pkg = h.tool(&[
        "jexec",
        "-l",
        "-U",
        "root",
        "clawdiegit",
        "env",
        "ASSUME_ALWAYS_YES=yes",
        "pkg",
        "install",
        "tailscale",
    ]);
    assert!(pkg.status.success(), "{}", text(&pkg));
    let start = h.tool(&[
        "jexec",
        "-l",
        "-U",
        "root",
        "clawdiegit",
        "service",
        "tailscaled",
        "onestart",
    ]);
    assert!(start.status.success(), "{}", text(&start));
    let up = h.tool(&["jexec", "-l", "-U", "root", "clawdiegit", "tailscale", "up"]);
    assert!(
        !up.status.success() && text(&up).contains("allow.tun"),
        "{}",
        text(&up)
    );

    let out = h.warden_env(&env, &["teardown", "--backend", "bastille", "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    let rules = std::fs::read_to_string(h.path("/etc/devfs.rules")).unwrap_or_default();
    assert!(!rules.contains("warden_tailscale"), "{rules}");
}
