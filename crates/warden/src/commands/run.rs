//! `warden run -- CMD…`: one command in an ephemeral worker, stdio passed through, the worker destroyed after.

use std::path::PathBuf;

use warden_core::layout::{parse_duration, parse_size};
use warden_core::Layout;
use warden_host::worker;

use crate::backends;
use crate::cli::{BackendName, Global, NetworkArg, RunArgs};
use crate::context;
use crate::exit::{self, Exit};

/// Runs the command and returns the exit code `warden` should end with.
pub fn run(global: &Global, args: &RunArgs) -> Result<u8, Exit> {
    if args.remote {
        return run_remote(global, args);
    }
    let (_, layout) = context::layout(global)?;
    let backend = args.backend.unwrap_or_else(context::default_backend);
    let state_dir = context::state_dir(&layout, backend);
    context::ensure_state_dir(&state_dir)?;
    let workers = backends::workers(backend, &layout, &state_dir, Default::default())?;
    // A warden killed mid-run (even by SIGKILL) leaves a record; the next start cleans up after it.
    match workers.reap_orphans() {
        Ok(cleaned) if !cleaned.is_empty() => eprintln!(
            "warden: reaped orphans of an earlier run: {}",
            cleaned.join(", ")
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warden: warning: failed to reap orphans: {e}"),
    }
    if args.network == NetworkArg::Vnet && backend == BackendName::Linux {
        // The Linux bridge, NAT and DNS are set up on demand; a FreeBSD host's by `warden setup`.
        ensure_host_network(global, &layout)?;
    }
    let mut work = work_of(args, &layout)?;
    if let Some(why) = workers.missing_limits() {
        // Explicit limits are never dropped; the defaults only when the operator opted in
        // (workers.allow_unlimited), else the backend refuses the worker.
        if args.memory.is_some() || args.pids.is_some() {
            return Err(Exit {
                code: exit::INFRASTRUCTURE,
                message: format!("this host cannot enforce --memory or --pids: {why}, or run without --memory/--pids"),
            });
        }
        if layout.allow_unlimited {
            eprintln!("warden: warning: the worker runs without its memory and process limits (workers.allow_unlimited): {why}");
            work.limits.memory_bytes = None;
            work.limits.pids = None;
        }
    }
    let outcome = workers
        .run(&work, &mut worker::Ignore, &worker::Cancel::new())
        .map_err(|e| match e {
            // A release that is not there is bad input; everything else is the worker's failure.
            worker::WorkerError::Invalid {
                field: "release",
                why,
            } => Exit::usage(why),
            worker::WorkerError::Invalid { why, .. } => Exit {
                code: exit::INFRASTRUCTURE,
                message: why,
            },
            e => Exit {
                code: exit::INFRASTRUCTURE,
                message: format!("worker failed: {e}"),
            },
        })?;
    Ok(report(args, &outcome))
}

/// The command as [`worker::Work`]: the flags' limits (else the layout's), network, release, cwd, env, user.
fn work_of(args: &RunArgs, layout: &Layout) -> Result<worker::Work, Exit> {
    let timeout = match &args.timeout {
        Some(t) => parse_duration(t).map_err(|e| {
            Exit::usage(format!(
                "invalid --timeout {t:?}: {e}\n  fix: e.g. --timeout 30s"
            ))
        })?,
        None => layout.limits.timeout,
    };
    let limits = worker::Limits {
        memory_bytes: Some(size(&args.memory, layout.limits.memory_bytes, "--memory")?),
        pids: Some(
            args.pids
                .map(u64::from)
                .unwrap_or(u64::from(layout.limits.pids)),
        ),
        timeout: Some(timeout),
        output_bytes: Some(size(&args.output, layout.limits.output_bytes, "--output")?),
    };
    let mut work = worker::Work::new(args.command.clone(), limits);
    work.network = match args.network {
        NetworkArg::None => worker::Network::None,
        NetworkArg::Shared => worker::Network::Shared,
        NetworkArg::Vnet => worker::Network::Vnet,
    };
    // `host`: the backend's default release (Linux: the host's own; FreeBSD: the layout's).
    work.release = (args.release != "host").then(|| args.release.clone());
    work.cwd = args.cwd.as_ref().map(PathBuf::from);
    work.env = command_env(args)?;
    work.root = args.root;
    work.stdio = worker::Stdio::Inherit;
    Ok(work)
}

/// Says which limit killed the worker (if one did) and returns the code from the one exit table.
fn report(args: &RunArgs, outcome: &worker::Outcome) -> u8 {
    for p in &outcome.cleanup_problems {
        eprintln!("warden: warning: worker {} teardown: {p}", outcome.worker);
    }
    if std::env::var_os("WARDEN_TIMINGS").is_some() {
        eprintln!("warden: timings {}", outcome.timings);
    }
    if let worker::End::Limit(kind) = outcome.end {
        let what = match kind {
            worker::LimitKind::Timeout => format!(
                "wall-clock limit of {}",
                args.timeout.as_deref().unwrap_or("the default")
            ),
            worker::LimitKind::Memory => "memory limit".to_string(),
            worker::LimitKind::Pids => "process limit".to_string(),
            worker::LimitKind::Output => "output cap".to_string(),
        };
        eprintln!(
            "warden: worker {} was killed: it went over its {what}",
            outcome.worker
        );
    }
    outcome.end.exit_code()
}

/// `--remote`: the command as an argv turn of the running control plane (`warden serve`), with the flags'
/// limits, network and environment; its output printed, its exit status (or the documented codes) returned.
fn run_remote(global: &Global, args: &RunArgs) -> Result<u8, Exit> {
    use crate::commands::turn::{block_on, client, client_exit};

    let Some(tenant) = &args.tenant else {
        return Err(Exit::usage(
            "--remote needs --tenant: a control plane turn belongs to a tenant\n  fix: e.g. --remote --tenant atlas",
        ));
    };
    if args.release != "host" {
        return Err(Exit::usage(
            "--release cannot be used with --remote: the control plane runs turns on the host release\n  fix: drop --release, or run locally without --remote",
        ));
    }
    let size =
        |flag: &Option<String>, name: &str| -> Result<Option<warden_server::request::Size>, Exit> {
            match flag {
                None => Ok(None),
                Some(text) => parse_size(text)
                    .map(|b| Some(warden_server::request::Size::Bytes(b)))
                    .map_err(|e| {
                        Exit::usage(format!(
                            "invalid {name} {text:?}: {e}\n  fix: e.g. {name} 512M"
                        ))
                    }),
            }
        };
    let timeout_ms = match &args.timeout {
        None => None,
        Some(t) => Some(
            parse_duration(t)
                .map_err(|e| {
                    Exit::usage(format!(
                        "invalid --timeout {t:?}: {e}\n  fix: e.g. --timeout 30s"
                    ))
                })?
                .as_millis() as u64,
        ),
    };
    let mut env = std::collections::BTreeMap::new();
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Exit::usage(format!("invalid --env {kv:?}\n  fix: use --env NAME=VALUE"))
        })?;
        env.insert(k.to_string(), v.to_string());
    }
    let request = warden_server::TurnRequest {
        tenant: tenant.clone(),
        argv: Some(args.command.clone()),
        prompt: None,
        limits: Some(warden_server::LimitsRequest {
            memory: size(&args.memory, "--memory")?,
            pids: args.pids.map(u64::from),
            timeout_ms,
            output_bytes: size(&args.output, "--output")?,
        }),
        network: Some(match args.network {
            NetworkArg::None => warden_server::Network::None,
            NetworkArg::Shared => warden_server::Network::Shared,
            NetworkArg::Vnet => warden_server::Network::Vnet,
        }),
        env: (!env.is_empty()).then_some(env),
    };
    let c = client(global).map_err(|e| Exit {
        code: exit::INFRASTRUCTURE,
        ..e
    })?;
    let view = block_on(c.submit_wait(&request))?.map_err(|e| {
        let x = client_exit(e);
        if x.code == exit::USAGE {
            x
        } else {
            Exit {
                code: exit::INFRASTRUCTURE,
                message: x.message,
            }
        }
    })?;
    {
        use std::io::Write;
        let _ = std::io::stdout().write_all(view.stdout.as_bytes());
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().write_all(view.stderr.as_bytes());
    }
    let limit = |what: &str, code: u8| {
        eprintln!(
            "warden: turn {} was killed: it went over its {what}",
            view.id
        );
        code
    };
    Ok(match (view.status.as_str(), view.failure.as_deref()) {
        ("succeeded", _) | (_, Some("exit_code")) | (_, Some("signal")) => match view.exit_code {
            Some(code) => code.clamp(0, 255) as u8,
            None => exit::INFRASTRUCTURE,
        },
        (_, Some("timeout")) => limit("wall-clock limit", exit::LIMIT_TIMEOUT),
        (_, Some("memory_limit")) => limit("memory limit", exit::LIMIT_MEMORY),
        (_, Some("pids_limit")) => limit("process limit", exit::LIMIT_PIDS),
        (_, Some("output_limit")) => limit("output cap", exit::LIMIT_OUTPUT),
        (status, failure) => {
            eprintln!(
                "warden: turn {} {status}: {}",
                view.id,
                failure.unwrap_or("no reason given")
            );
            exit::INFRASTRUCTURE
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

/// What the host network was last set up (or found complete) for: this boot, this network
/// namespace, this bridge and gateway. A reboot or another namespace invalidates it.
fn host_network_fingerprint(layout: &Layout) -> String {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    use std::hash::{Hash, Hasher};
    let netns = std::fs::metadata("/proc/thread-self/ns/net").map_or(0, |m| m.ino());
    // What the host step loads: a new ruleset or zone (an upgrade, a changed layout) is applied again.
    let mut files = std::hash::DefaultHasher::new();
    warden_core::render::nftables::render(layout).hash(&mut files);
    warden_core::render::dnsmasq_conf::render(layout).hash(&mut files);
    format!(
        "boot {} netns {netns} bridge {} gateway {} domain {} files {:016x}\n",
        boot.trim(),
        layout.bridge,
        layout.gateway,
        layout.domain,
        files.finish()
    )
}

/// The command's environment from `--env NAME=VALUE` and `--tenant` (as `WARDEN_TENANT`).
fn command_env(args: &RunArgs) -> Result<Vec<(String, String)>, Exit> {
    let mut env = Vec::new();
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Exit::usage(format!("invalid --env {kv:?}\n  fix: use --env NAME=VALUE"))
        })?;
        env.push((k.to_string(), v.to_string()));
    }
    if let Some(tenant) = &args.tenant {
        warden_core::names::check_label(tenant).map_err(|e| {
            Exit::usage(format!(
                "invalid --tenant {tenant:?}: {e}\n  fix: use a DNS label, e.g. --tenant atlas"
            ))
        })?;
        env.push(("WARDEN_TENANT".into(), tenant.clone()));
    }
    Ok(env)
}

/// What the host network was last set up, NAT and DNS: set them up (journaled, idempotent) if the host lacks them.
///
/// Observing the whole host (`ip`, `nft list`) costs milliseconds a run, so once it was found or
/// made complete a marker records for what (`host_network_fingerprint`); later runs check only
/// that the bridge still has the gateway's address (one ioctl). A host broken behind Warden's
/// back after that is `warden doctor`'s to find.
fn ensure_host_network(global: &Global, layout: &Layout) -> Result<(), Exit> {
    let chosen = backends::choose(Some(BackendName::Linux), layout)?;
    let marker = chosen.state_dir.join("host-network.ok");
    let fingerprint = host_network_fingerprint(layout);
    if backends::linux::interface_ipv4(&layout.bridge) == Some(layout.gateway)
        && std::fs::read_to_string(&marker).ok().as_deref() == Some(fingerprint.as_str())
    {
        return Ok(());
    }
    ensure_host_network_observed(global, layout, &chosen)?;
    // Best effort: without the marker the next run observes again.
    let _ = std::fs::write(&marker, fingerprint);
    Ok(())
}

fn ensure_host_network_observed(
    global: &Global,
    layout: &Layout,
    chosen: &backends::Chosen,
) -> Result<(), Exit> {
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
