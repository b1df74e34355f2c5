//! `warden run -- CMD…`: one command in an ephemeral worker, stdio passed through, the worker destroyed after.

use std::path::PathBuf;

use warden_core::layout::{parse_duration, parse_size};
use warden_core::Layout;
use warden_linux::{ExitKind, LimitKind, NetworkMode, ReleaseRef, Vnet, WorkerSpec};

use crate::backends;
use crate::cli::{BackendName, Global, NetworkArg, RunArgs};
use crate::context;
use crate::exit::{self, Exit};

/// Runs the command and returns the exit code `warden` should end with.
pub fn run(global: &Global, args: &RunArgs) -> Result<u8, Exit> {
    let (_, layout) = context::layout(global)?;
    let state_dir = context::state_dir(&layout, BackendName::Linux);
    context::ensure_state_dir(&state_dir)?;
    // A warden killed mid-run (even by SIGKILL) leaves a record; the next start cleans up after it.
    match warden_linux::reap_orphans(&state_dir) {
        Ok(cleaned) if !cleaned.is_empty() => eprintln!(
            "warden: reaped orphans of an earlier run: {}",
            cleaned.join(", ")
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warden: warning: failed to reap orphans: {e}"),
    }
    let mut lease = None;
    let network = match args.network {
        NetworkArg::None => NetworkMode::None,
        NetworkArg::Shared => NetworkMode::Shared,
        NetworkArg::Vnet => {
            ensure_host_network(global, &layout)?;
            let l = warden_linux::lease(&state_dir, layout.workers)
                .map_err(|e| Exit::failure(format!("failed to lease a worker address: {e}")))?;
            let vnet = Vnet {
                addr: l.addr(),
                prefix: 24,
                gateway: layout.gateway,
                bridge: layout.bridge.clone(),
                dns: layout.gateway,
                host_netns: None,
            };
            lease = Some(l);
            NetworkMode::Vnet(vnet)
        }
    };
    let name = match &lease {
        Some(l) => l.worker_name(),
        None => format!("r{:x}", std::process::id() & 0xfffffff),
    };
    let release = match args.release.as_str() {
        "host" => ReleaseRef::Host,
        other => {
            let dir = state_dir.join("releases").join(other);
            if !dir.join("usr").is_dir() {
                return Err(Exit::usage(format!(
                    "release {other:?} is not bootstrapped ({} has no usr/)\n  fix: `warden release bootstrap {other}`, or use --release host",
                    dir.display()
                )));
            }
            ReleaseRef::Dir(dir)
        }
    };
    let mut spec = WorkerSpec::new(&name, &[], &state_dir);
    spec.argv = args.command.clone();
    spec.release = release;
    spec.network = network;
    spec.limits.memory_bytes = Some(size(&args.memory, layout.limits.memory_bytes, "--memory")?);
    spec.limits.max_pids = Some(
        args.pids
            .map(u64::from)
            .unwrap_or(u64::from(layout.limits.pids)),
    );
    spec.limits.output_bytes = Some(size(&args.output, layout.limits.output_bytes, "--output")?);
    let timeout = match &args.timeout {
        Some(t) => parse_duration(t).map_err(|e| {
            Exit::usage(format!(
                "invalid --timeout {t:?}: {e}\n  fix: e.g. --timeout 30s"
            ))
        })?,
        None => layout.limits.timeout,
    };
    spec.limits.timeout_ms = Some(timeout.as_millis() as u64);
    if let Some(cwd) = &args.cwd {
        spec.cwd = PathBuf::from(cwd);
    }
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Exit::usage(format!("invalid --env {kv:?}\n  fix: use --env NAME=VALUE"))
        })?;
        spec.env.push((k.to_string(), v.to_string()));
    }
    if let Some(tenant) = &args.tenant {
        warden_core::names::check_label(tenant).map_err(|e| {
            Exit::usage(format!(
                "invalid --tenant {tenant:?}: {e}\n  fix: use a DNS label, e.g. --tenant atlas"
            ))
        })?;
        spec.env.push(("WARDEN_TENANT".into(), tenant.clone()));
    }
    if args.root {
        spec.user = Some((0, 0));
    }
    let outcome = warden_linux::run(&spec, warden_linux::Io::Inherit).map_err(|e| Exit {
        code: exit::INFRASTRUCTURE,
        message: format!("worker failed: {e}"),
    })?;
    drop(lease);
    if std::env::var_os("WARDEN_TIMINGS").is_some() {
        eprintln!(
            "warden: timings {}",
            serde_json::to_string(&outcome.timings).unwrap_or_default()
        );
    }
    Ok(match outcome.status {
        ExitKind::Exited(code) => code.clamp(0, 255) as u8,
        ExitKind::Signaled(sig) => (128 + sig).clamp(0, 255) as u8,
        ExitKind::Limit(kind) => {
            let (code, what) = match kind {
                LimitKind::Timeout => (
                    exit::LIMIT_TIMEOUT,
                    format!(
                        "wall-clock limit of {}",
                        args.timeout.as_deref().unwrap_or("the default")
                    ),
                ),
                LimitKind::Memory => (exit::LIMIT_MEMORY, "memory limit".to_string()),
                LimitKind::Pids => (exit::LIMIT_PIDS, "process limit".to_string()),
                LimitKind::Output => (exit::LIMIT_OUTPUT, "output cap".to_string()),
            };
            eprintln!("warden: worker {name} was killed: it went over its {what}");
            code
        }
    })
}

fn size(flag: &Option<String>, default: u64, name: &str) -> Result<u64, Exit> {
    match flag {
        None => Ok(default),
        Some(text) => parse_size(text).map_err(|e| {
            Exit::usage(format!(
                "invalid {name} {text:?}: {e}\n  fix: e.g. {name} 512M"
            ))
        }),
    }
}

/// VNET workers need the bridge, NAT and DNS: set them up (journaled, idempotent) if the host lacks them.
fn ensure_host_network(global: &Global, layout: &Layout) -> Result<(), Exit> {
    let chosen = backends::choose(Some(BackendName::Linux), layout)?;
    // Only the network: the plan's `jails` step (service jails) is `warden setup`'s business.
    let steps = [warden_core::Step::Host, warden_core::Step::Dns];
    let plan = warden_host::setup::filter_steps(
        chosen
            .backend
            .plan(layout)
            .map_err(|e| Exit::failure(format!("failed to observe the host: {e}")))?,
        &steps,
    );
    if plan.is_empty() {
        return Ok(());
    }
    eprintln!(
        "warden: the host network is not set up yet; applying steps host and dns ({} actions)",
        plan.actions.len()
    );
    let journal = warden_host::Journal::open(&chosen.state_dir.join("journal.db"))
        .map_err(|e| Exit::failure(e.to_string()))?;
    let _ = global;
    warden_host::setup::setup(
        chosen.backend.as_ref(),
        layout,
        &steps,
        &journal,
        &mut warden_host::SilentProgress,
    )
    .map_err(|e| Exit::failure(e.to_string()))?;
    Ok(())
}
