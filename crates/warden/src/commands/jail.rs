//! `warden jail create|start|stop|destroy|list|exec`: persistent jails on Linux (`warden_linux::jail`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use warden_core::layout::{parse_duration, parse_size, Shape as LayoutShape};
use warden_core::Layout;
use warden_linux::jail::{self, CreateOpts, ExecOpts, JailLimits, JailNet, State};
use warden_linux::Shape;

use crate::cli::{BackendName, Global, JailCommand, JailCreateArgs, JailExecArgs, ShapeArg};
use crate::context;
use crate::exit::{self, Exit};

/// The cgroup hierarchy jails are limited by (jail start, snapshots).
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

use warden_linux::error_chain as chain;

/// Bad names and specs are usage errors (nothing changed); everything else is a failure.
pub fn exit_for(e: warden_linux::Error) -> Exit {
    match e {
        warden_linux::Error::Spec { .. } | warden_linux::Error::Input { .. } => {
            Exit::usage(chain(&e))
        }
        other => Exit::failure(chain(&other)),
    }
}

/// Runs one jail verb; returns the exit code (`exec` passes the command's through).
pub fn run(global: &Global, command: &JailCommand) -> Result<u8, Exit> {
    let (_, layout) = context::layout(global)?;
    let state_dir = context::state_dir(&layout, BackendName::Linux);
    match command {
        JailCommand::Create(args) => create(&layout, &state_dir, args).map(|()| 0),
        JailCommand::Start { name } => {
            let t0 = Instant::now();
            let r = jail::start(&state_dir, name, Path::new(CGROUP_ROOT)).map_err(|e| {
                let mut x = exit_for(e);
                if x.message.contains("failed to find bridge") {
                    x.message.push_str(
                        "\n  fix: `warden setup --backend linux --step host` creates the bridge",
                    );
                }
                x
            })?;
            eprintln!(
                "warden: started jail {name} (init pid {}) in {} ms",
                r.started.init_pid,
                t0.elapsed().as_millis()
            );
            Ok(0)
        }
        JailCommand::Stop { name, timeout } => {
            let timeout = parse_duration(timeout).map_err(|e| {
                Exit::usage(format!(
                    "invalid --timeout {timeout:?}: {e}\n  fix: e.g. --timeout 10s"
                ))
            })?;
            if jail::stop(&state_dir, name, timeout).map_err(exit_for)? {
                eprintln!("warden: stopped jail {name}");
            } else {
                eprintln!("warden: jail {name} was not running");
            }
            Ok(0)
        }
        JailCommand::Destroy { name, force } => {
            jail::destroy(&state_dir, name, *force, std::time::Duration::from_secs(10))
                .map_err(exit_for)?;
            eprintln!("warden: destroyed jail {name}");
            Ok(0)
        }
        JailCommand::List { json } => {
            let jails = jail::list(&state_dir).map_err(exit_for)?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&jails).unwrap_or_default()
                );
            } else {
                println!(
                    "{:<12} {:<8} {:<15} {:<10} {:<6} PID",
                    "NAME", "STATE", "ADDRESS", "RELEASE", "SHAPE"
                );
                for j in jails {
                    println!(
                        "{:<12} {:<8} {:<15} {:<10} {:<6} {}",
                        j.name,
                        match j.state {
                            State::Running => "running",
                            State::Stopped => "stopped",
                        },
                        j.addr.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
                        j.release,
                        match j.shape {
                            Shape::Thin => "thin",
                            Shape::Thick => "thick",
                        },
                        j.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into())
                    );
                }
            }
            Ok(0)
        }
        JailCommand::Exec(args) => exec(&state_dir, args),
        JailCommand::Set { name, tun } => {
            let on = tun == "on";
            if jail::set_tun(&state_dir, name, on).map_err(exit_for)? {
                eprintln!("warden: jail {name}: /dev/net/tun {tun} from its next start");
            } else {
                eprintln!("warden: jail {name}: /dev/net/tun is {tun} already");
            }
            Ok(0)
        }
    }
}

fn create(layout: &Layout, state_dir: &Path, args: &JailCreateArgs) -> Result<(), Exit> {
    let service =
        match &args.slot {
            None => None,
            Some(slot) => Some(layout.jails().find(|s| s.role.name() == slot).ok_or_else(
                || {
                    let all: Vec<&str> = layout.jails().map(|s| s.role.name()).collect();
                    Exit::usage(format!(
                        "unknown --slot {slot:?}\n  fix: use one of the layout's service slots: {}",
                        all.join(", ")
                    ))
                },
            )?),
        };
    let name = match (&args.name, service) {
        (Some(n), _) => n.clone(),
        (None, Some(s)) => s.jail.clone(),
        (None, None) => {
            return Err(Exit::usage(
                "a jail needs a name\n  fix: `warden jail create NAME`, or `--slot git` for the layout's git jail",
            ))
        }
    };
    let addr = match (args.addr, service) {
        (Some(a), _) => Some(check_addr(layout, a)?),
        (None, Some(s)) => Some(s.addr),
        (None, None) => None,
    };
    let shape = match (args.shape, service) {
        (Some(ShapeArg::Thin), _) => Shape::Thin,
        (Some(ShapeArg::Thick), _) => Shape::Thick,
        (None, Some(s)) if s.shape == LayoutShape::Thick => Shape::Thick,
        _ => Shape::Thin,
    };
    let memory_bytes = match &args.memory {
        None => None,
        Some(m) => Some(parse_size(m).map_err(|e| {
            Exit::usage(format!(
                "invalid --memory {m:?}: {e}\n  fix: e.g. --memory 1G"
            ))
        })?),
    };
    if args.cpu.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
        return Err(Exit::usage(
            "invalid --cpu: must be a positive fraction of one core\n  fix: e.g. --cpu 1.5",
        ));
    }
    let opts = CreateOpts {
        name: name.clone(),
        release: args.release.clone(),
        shape,
        network: addr.map(|addr| JailNet {
            addr,
            prefix: 24,
            gateway: layout.gateway,
            bridge: layout.bridge.clone(),
            dns: layout.gateway,
        }),
        limits: JailLimits {
            memory_bytes,
            max_pids: args.pids,
            cpu: args.cpu,
        },
        binds: args
            .bind
            .iter()
            .map(|b| warden_linux::jail::JailBind::parse(b))
            .collect::<Result<_, _>>()
            .map_err(|e| {
                Exit::usage(format!(
                    "{e}\n  fix: e.g. --bind /var/lib/warden/ai:/opt/warden-ai"
                ))
            })?,
        tun: args.tun,
    };
    let t0 = Instant::now();
    jail::create(state_dir, &opts).map_err(exit_for)?;
    eprintln!(
        "warden: created jail {name}: {} on release {}, {} ({} ms)",
        match shape {
            Shape::Thin => "thin",
            Shape::Thick => "thick",
        },
        args.release,
        addr.map(|a| format!("{a}/24 on {}", layout.bridge))
            .unwrap_or_else(|| "loopback only".into()),
        t0.elapsed().as_millis()
    );
    Ok(())
}

/// A fixed jail address must be a host of the subnet, and neither the gateway nor a worker's.
fn check_addr(layout: &Layout, addr: std::net::Ipv4Addr) -> Result<std::net::Ipv4Addr, Exit> {
    let [a, b, c, d] = addr.octets();
    let why = if layout.addr(d) != std::net::Ipv4Addr::new(a, b, c, d) {
        Some(format!("it is outside the subnet {}", layout.cidr()))
    } else if d == 0 || d == 255 {
        Some("it is the network or broadcast address".to_string())
    } else if addr == layout.gateway {
        Some("it is the gateway".to_string())
    } else if addr >= layout.workers.0 && addr <= layout.workers.1 {
        Some(format!(
            "it is in the worker range {}–{}",
            layout.workers.0, layout.workers.1
        ))
    } else {
        None
    };
    match why {
        None => Ok(addr),
        Some(why) => Err(Exit::usage(format!(
            "invalid --addr {addr}: {why}\n  fix: pick a free address of {} outside the worker range, or use --slot",
            layout.cidr()
        ))),
    }
}

fn exec(state_dir: &Path, args: &JailExecArgs) -> Result<u8, Exit> {
    let mut env = Vec::new();
    for kv in &args.env {
        let (k, v) = kv.split_once('=').ok_or_else(|| {
            Exit::usage(format!("invalid --env {kv:?}\n  fix: use --env NAME=VALUE"))
        })?;
        if k.is_empty() || k.contains('\0') || v.contains('\0') {
            return Err(Exit::usage(format!(
                "invalid --env {kv:?}\n  fix: use --env NAME=VALUE"
            )));
        }
        env.push((k.to_string(), v.to_string()));
    }
    if args.command.iter().any(|a| a.contains('\0')) {
        return Err(Exit::usage("the command contains a NUL byte"));
    }
    let opts = ExecOpts {
        argv: args.command.clone(),
        env,
        cwd: args.cwd.as_ref().map(PathBuf::from),
        root: args.root,
    };
    let spec = jail::exec_spec(state_dir, &args.name, &opts).map_err(|e| Exit {
        code: exit::INFRASTRUCTURE,
        message: chain(&e),
    })?;
    // Replaces this process with the exec helper: its exit status is the command's.
    let e = warden_linux::jail_exec::exec_replace(&spec);
    Err(Exit {
        code: exit::INFRASTRUCTURE,
        message: chain(&e),
    })
}
