//! Test driver for the FreeBSD backend against a simulated host, run as its own process so crash hooks
//! (`WARDEN_CRASH_AFTER=N`, `WARDEN_CRASH_BEFORE=N`) can abort it. Not an operator tool: `warden` is.
//!
//! ```text
//! freebsd-setup-test --root DIR --state DIR setup [--step NAME]…   # prints the report as JSON
//! freebsd-setup-test --root DIR --state DIR plan [--step NAME]…    # prints the plan as JSON
//! freebsd-setup-test --root DIR --state DIR observe                # prints the observed BastilleHost as JSON
//! freebsd-setup-test --root DIR --state DIR worker [--vnet] [--user U] NAME -- ARGV…   # prints the outcome as JSON
//! freebsd-setup-test --root DIR --state DIR snapshot JAIL [TAG] | snapshots JAIL | rollback JAIL TAG
//! freebsd-setup-test --state-dir DIR db passwords ROLE… | db sync --roles LIST -- PSQL…  # setup's db actions
//! ```
//! The layout comes from the environment (`WARDEN_*`, `AGENT_*`) over the defaults.

use std::path::PathBuf;
use std::process::ExitCode;

use warden_core::{Layout, Step};
use warden_freebsd::setup::filter_steps;
use warden_freebsd::worker::{exit_codes, WorkerNetwork};
use warden_freebsd::{run_worker, setup, BastilleBackend, WorkerSpec};
use warden_host::{Backend, Journal, SilentProgress, SystemRunner};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("freebsd-setup-test: {e}");
            ExitCode::from(1)
        }
    }
}

/// setup's db actions name the observing binary (`EXE --state-dir S db passwords ROLES…` and
/// `EXE --state-dir S db sync --roles LIST -- PSQL…`), so this driver answers them as `warden` does.
fn db_action(args: &[String]) -> Option<Result<ExitCode, String>> {
    let [flag, state, db, verb, rest @ ..] = args else {
        return None;
    };
    if flag != "--state-dir" || db != "db" {
        return None;
    }
    let done = match (verb.as_str(), rest) {
        ("passwords", roles) => warden_host::db_secrets::generate(state, roles),
        ("sync", [r, list, dash, psql @ ..]) if r == "--roles" && dash == "--" => {
            let roles: Vec<String> = list.split(',').map(str::to_string).collect();
            warden_host::db_secrets::sync(state, &roles, psql)
        }
        _ => return Some(Err(format!("unknown db action {verb:?}"))),
    };
    Some(done.map(|()| ExitCode::SUCCESS).map_err(|e| e.to_string()))
}

fn run() -> Result<ExitCode, String> {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if let Some(done) = db_action(&all) {
        return done;
    }
    let mut args = std::env::args().skip(1);
    let (mut root, mut state, mut verb, mut steps, mut rest) =
        (None, None, None, Vec::new(), Vec::new());
    let mut vnet = false;
    let mut user = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--root" => root = args.next().map(PathBuf::from),
            "--state" => state = args.next().map(PathBuf::from),
            "--step" => {
                let name = args.next().unwrap_or_default();
                steps.push(Step::parse(&name).ok_or_else(|| format!("unknown step {name:?}"))?);
            }
            "--vnet" => vnet = true,
            "--user" => user = args.next(),
            "--" => rest.extend(args.by_ref()),
            _ if verb.is_none() => verb = Some(a),
            _ => rest.push(a),
        }
    }
    let root = root.ok_or("--root is required")?;
    let state = state.ok_or("--state is required")?;
    let lookup = |name: &str| std::env::var(name).ok();
    let loaded =
        warden_core::load(None, &lookup, &Default::default()).map_err(|e| e.to_string())?;
    let layout = Layout::from_loaded(&loaded).map_err(|e| e.to_string())?;
    let backend = BastilleBackend::new(SystemRunner::with_root(&root), &state);
    let json =
        |v: serde_json::Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    match verb.as_deref() {
        Some("setup") => {
            let journal = Journal::open(&state.join("journal.db")).map_err(|e| e.to_string())?;
            let report = setup(&backend, &layout, &steps, &journal, &mut SilentProgress)
                .map_err(|e| e.to_string())?;
            json(serde_json::json!({
                "resumed": report.resumed, "run": report.run, "applied": report.applied, "plan": report.plan,
            }));
        }
        Some("plan") => {
            let plan = filter_steps(backend.plan(&layout).map_err(|e| e.to_string())?, &steps);
            json(serde_json::to_value(&plan).unwrap_or_default());
        }
        Some("observe") => {
            let seen = backend.observe(&layout).map_err(|e| e.to_string())?;
            json(
                serde_json::json!({ "host": seen.host, "version": seen.version, "notes": seen.notes }),
            );
        }
        Some("worker") => {
            let (name, argv) = rest.split_first().ok_or("worker needs NAME -- ARGV")?;
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let mut spec = WorkerSpec::new(&layout, name, &argv, &state);
            if let Some(user) = &user {
                spec.user = user.clone();
            }
            spec.network = if vnet {
                WorkerNetwork::Vnet
            } else {
                WorkerNetwork::Shared
            };
            // The simulated host has no rctl (FAKEBSD-NEEDS.md); limits other than time are off here.
            spec.limits.memory_bytes = None;
            spec.limits.max_procs = None;
            match run_worker(backend.runner(), &layout, &spec) {
                Ok(out) => {
                    json(serde_json::to_value(&out).unwrap_or_default());
                    return Ok(ExitCode::from(out.exit_code.clamp(0, 255) as u8));
                }
                Err(e) => {
                    eprintln!("freebsd-setup-test: {e}");
                    return Ok(ExitCode::from(exit_codes::INFRASTRUCTURE as u8));
                }
            }
        }
        Some("snapshot") => {
            let jail = rest.first().ok_or("snapshot needs JAIL [TAG]")?;
            let tag = warden_freebsd::snapshot(
                backend.runner(),
                &layout,
                jail,
                rest.get(1).map(String::as_str),
            )
            .map_err(|e| e.to_string())?;
            json(serde_json::json!({ "tag": tag }));
        }
        Some("snapshots") => {
            let jail = rest.first().ok_or("snapshots needs JAIL")?;
            let list = warden_freebsd::snapshots(backend.runner(), &layout, jail)
                .map_err(|e| e.to_string())?;
            json(serde_json::to_value(&list).unwrap_or_default());
        }
        Some("rollback") => {
            let (jail, tag) = (
                rest.first().ok_or("rollback needs JAIL TAG")?,
                rest.get(1).ok_or("rollback needs JAIL TAG")?,
            );
            warden_freebsd::rollback(backend.runner(), &layout, jail, tag)
                .map_err(|e| e.to_string())?;
            json(serde_json::json!({ "rolled_back": tag }));
        }
        other => {
            return Err(format!(
            "unknown verb {other:?} (setup, plan, observe, worker, snapshot, snapshots, rollback)"
        ))
        }
    }
    Ok(ExitCode::SUCCESS)
}
