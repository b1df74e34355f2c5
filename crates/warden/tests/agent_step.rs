//! Issue 18: pi is installed by setup's `agent` step (journaled), never by `warden serve`. Without pi, serve
//! refuses a prompt turn at once with the fixing command; after `warden setup --step agent`, a prompt turn
//! starts in a `warden serve` that has no route to any registry (a network namespace without uplink, npm
//! pointed at a closed port) — pi runs and reaches its provider.

mod common;

use std::path::Path;
use std::process::Output;

use common::{text, warden, Netns, Serve};

/// `warden --state-dir STATE ARGS` inside the namespace, with `env`.
fn warden_in(ns: &Netns, state: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    common::output_within(
        ns.warden(state, args).envs(env.iter().copied()),
        common::WARDEN_LIMIT,
    )
}

#[test]
fn setup_installs_pi_and_a_prompt_turn_needs_no_registry() {
    common::require_root();
    let dir = warden_testkit_state();
    let state = dir.path();
    let s = state.to_str().unwrap();
    // No registry anywhere the server looks, and the provider is the gateway's TCP 53 (allowed to workers,
    // nothing listening: refused at once), so the turn ends as soon as pi has tried.
    let offline = [
        ("npm_config_registry", "http://127.0.0.1:9/"),
        ("WARDEN_AGENT_BASE_URL", "http://10.0.1.1:53/v1"),
    ];

    let plan = warden(
        &[
            "--state-dir",
            s,
            "plan",
            "--backend",
            "linux",
            "--step",
            "agent",
        ],
        &[],
    );
    let shown = common::ok_stdout(&plan);
    assert!(
        shown.contains(&format!(
            "$ npm install --prefix {s}/pi --no-audit --no-fund --prefer-offline --loglevel=error @mariozechner/pi-coding-agent@0.73.1"
        )),
        "{shown}"
    );

    let ns = Netns::new();
    let out = warden_in(
        &ns,
        state,
        &[],
        &["setup", "--backend", "linux", "--step", "host"],
    );
    assert!(out.status.success(), "{}", text(&out));

    // Before the agent step: refused at once, naming the command that fixes it.
    {
        let _serve = Serve::start(&ns, state, &offline);
        let out = warden_in(&ns, state, &offline, &["turn", "--tenant", "acme", "hello"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is not installed")
                && err.contains("warden setup --backend linux --step agent"),
            "{err}"
        );
    }

    // The step installs pi (this needs the registry: it runs outside the namespace), journaled. npm gets the
    // caller's HOME (its cache) and CA bundle, as an operator's shell would give it.
    let pass: Vec<(String, String)> = ["HOME", "NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect();
    let pass: Vec<(&str, &str)> = pass.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = warden(
        &[
            "--state-dir",
            s,
            "setup",
            "--backend",
            "linux",
            "--step",
            "agent",
        ],
        &pass,
    );
    assert!(out.status.success(), "{}", text(&out));
    let again = common::ok_stdout(&warden(
        &[
            "--state-dir",
            s,
            "plan",
            "--backend",
            "linux",
            "--step",
            "agent",
        ],
        &[],
    ));
    assert!(again.contains("nothing to do"), "{again}");

    let serve = Serve::start(&ns, state, &offline);
    let out = warden_in(
        &ns,
        state,
        &offline,
        &["turn", "--tenant", "acme", "--json", "hello"],
    );
    let view: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no turn JSON ({e}): {}", text(&out)));
    // pi ran: it reported its provider's failure (refused at once), not an install or infrastructure failure.
    assert_eq!(view["status"], "failed", "{view:#}");
    assert_eq!(view["failure"], "provider_error", "{view:#}");
    drop(serve);
    let log = std::fs::read_to_string(state.join("serve.log")).unwrap_or_default();
    assert!(!log.contains("npm"), "serve ran npm: {log}");
}

fn warden_testkit_state() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("wagent").tempdir().unwrap()
}
