//! `warden bench`: cold turns, pooled turns and concurrent throughput of `true`, through the
//! library path the CLI uses (default; `library.rs`) or through the HTTP API (`--api`: a server on
//! 127.0.0.1, in this process, with its own state directory; `api.rs`); bwrap and runc doing the same work
//! in the same run when installed (`others.rs`); host memory per parked worker (`memory.rs`); the phase
//! breakdown (`series.rs`). `--agent` measures agent turns instead (`agent.rs`).
//!
//! It runs in whatever network namespace it is started in: Vnet numbers need a `warden0` bridge
//! there (start it with `nsenter --net=/run/netns/NAME`), and are skipped without one.

mod agent;
mod api;
mod human;
mod library;
mod memory;
mod others;
mod series;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::json;
use warden_linux::{NetworkMode, Vnet};

use crate::cli::{BenchArgs, Global};
use crate::context;
use crate::exit::Exit;

/// What every series of one run shares.
struct Env {
    state: PathBuf,
    vnet: Option<NetworkMode>,
    range: (Ipv4Addr, Ipv4Addr),
    pool_size: usize,
    layout: warden_core::Layout,
    /// This program and its global flags, for `warden run` as a process.
    cli: Vec<String>,
}

/// `<this program> [global flags…]`: the same layout and state directory for a child `warden`
/// as for `warden run` typed by the user — so a Vnet run uses the host network that is set up
/// (the bench's own state directory has no dnsmasq and must not start a second one).
fn cli_prefix(global: &Global) -> Vec<String> {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("warden"));
    let mut v = vec![exe.display().to_string()];
    for (flag, value) in [
        (
            "--config",
            global.config.as_ref().map(|p| p.display().to_string()),
        ),
        ("--subnet", global.subnet.clone()),
        ("--domain", global.domain.clone()),
        ("--bridge", global.bridge.clone()),
        ("--identity", global.identity.clone()),
        ("--state-dir", global.state_dir.clone()),
    ] {
        if let Some(value) = value {
            v.push(flag.to_string());
            v.push(value);
        }
    }
    v
}

/// Runs the benchmark and prints it.
pub fn run(global: &Global, args: &BenchArgs) -> Result<(), Exit> {
    if args.backend == Some(crate::cli::BackendName::Bastille) {
        return super::bench_bastille::run(global, args);
    }
    if !nix_is_root() {
        return Err(Exit::usage(
            "warden bench needs root (it creates namespaces and cgroups)",
        ));
    }
    if args.agent {
        return agent::run(global, args);
    }
    let (_, layout) = context::layout(global)?;
    let clients = parse_clients(&args.clients)?;
    // Workers are started as `warden serve` starts them: forked by a zygote.
    warden_linux::use_zygote();
    let state = std::env::temp_dir().join(format!("warden-bench-{}", std::process::id()));
    std::fs::create_dir_all(&state)
        .map_err(|e| Exit::failure(format!("failed to create {}: {e}", state.display())))?;
    let bridge_here = Command::new("ip")
        .args(["-o", "link", "show", "dev", &layout.bridge])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let env = Env {
        vnet: bridge_here.then(|| {
            NetworkMode::Vnet(Vnet {
                addr: Ipv4Addr::UNSPECIFIED,
                prefix: 24,
                gateway: layout.gateway,
                bridge: layout.bridge.clone(),
                dns: layout.gateway,
                host_netns: None,
            })
        }),
        range: layout.workers,
        pool_size: args
            .pool
            .unwrap_or(clients.iter().copied().max().unwrap_or(8))
            .max(1),
        state: state.clone(),
        layout: layout.clone(),
        cli: cli_prefix(global),
    };
    let result = if args.api {
        api::bench_api(&env, args.turns, &clients)
    } else {
        library::bench_lib(&env, args.turns, &clients, args.throughput_only)
    };
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&state);
            return Err(Exit::failure(e));
        }
    };
    if !args.no_compare {
        others::compare(&mut report, args.turns.min(200), &state);
    }
    report["load_avg"] = json!(std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" "));
    let _ = std::fs::remove_dir_all(&state);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        human::print_human(&report);
    }
    let failures = report["failures"].as_u64().unwrap_or(0);
    if failures > 0 {
        return Err(Exit::failure(format!("{failures} turns failed")));
    }
    Ok(())
}

/// Effective uid 0, from /proc/self/status (`Uid: real effective saved fs`).
fn nix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .and_then(|l| l.split_whitespace().nth(2))
        == Some("0")
}

/// `--clients 1,8,32`: each count 1..=256.
fn parse_clients(s: &str) -> Result<Vec<usize>, Exit> {
    s.split(',')
        .map(|c| {
            c.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=256).contains(n))
                .ok_or_else(|| {
                    Exit::usage(format!(
                        "--clients {s:?}: want numbers 1..=256, e.g. 1,8,32"
                    ))
                })
        })
        .collect()
}
