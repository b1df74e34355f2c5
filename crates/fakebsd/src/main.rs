//! `fakebsd`: a simulated FreeBSD 15 host for tests. One binary, dispatched on `argv[0]` (busybox style):
//! `bastille jls jexec jail zfs ifconfig sysctl sysrc pfctl service route netstat freebsd-version chflags
//! mount kldload kldstat daemon`, plus `fakebsd install|init|state`. State lives in `$FAKEBSD_STATE`.

#![forbid(unsafe_code)]

mod bastille;
mod crash;
mod daemon;
mod fsutil;
mod gitjail;
mod gitpkg;
mod hostpkg;
mod hosttools;
mod ifconfig;
mod init;
mod injail;
mod io;
mod jail;
mod jailfs;
mod jailnode;
mod jexec;
mod jls;
mod opts;
mod pf_conf;
mod pfctl;
mod pkg;
mod rcsubr;
mod service;
mod shjail;
mod state;
mod sysctl;
mod sysrc;
mod tailscale;
mod zfs;

use std::path::Path;

use io::Io;
use state::Ctx;

fn main() {
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let tool = Path::new(&argv0)
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let linux_tailscale = (tool == "tailscale" || tool == "tailscaled")
        && std::env::var_os(state::ENV_STATE).is_none();
    let code = if linux_tailscale {
        tailscale::linux_main(&tool, &args[1..])
    } else if tool == "fakebsd" || tool.starts_with("fakebsd-") {
        fakebsd_main(&args[1.min(args.len())..])
    } else {
        let code = run_tool(&tool, &args[1..]);
        crash::after_call(&tool, &args[1..]);
        code
    };
    std::process::exit(code);
}

fn usage() -> i32 {
    eprintln!("usage: fakebsd install DIR        link the tool names in DIR to this binary");
    eprintln!(
        "       fakebsd init [--bastille-version 1.3.2|1.4.4|master]   (needs FAKEBSD_STATE)"
    );
    eprintln!("       fakebsd state                print the simulated host as JSON");
    eprintln!("       fakebsd reboot               boot tunables of /boot/loader.conf take effect (kern.racct.enable)");
    eprintln!("       fakebsd TOOL [ARGS...]       run a tool (e.g. fakebsd jls)");
    2
}

fn fakebsd_main(args: &[String]) -> i32 {
    let Some(cmd) = args.first() else {
        return usage();
    };
    match cmd.as_str() {
        "install" => match args.get(1) {
            Some(dir) => match init::install(Path::new(dir)) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("fakebsd: install: {e}");
                    1
                }
            },
            None => usage(),
        },
        "init" => {
            const SPEC: opts::Spec = opts::Spec {
                tool: "fakebsd init",
                long: &["bastille-version="],
                ..opts::GETOPT
            };
            let version = match SPEC.parse(&args[1..]) {
                Ok(p) if p.operands.is_empty() => p.value("bastille-version").map(str::to_string),
                Ok(_) => return usage(),
                Err(e) => {
                    eprintln!("{e}");
                    return usage();
                }
            };
            match init::init(version) {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            }
        }
        jailnode::HELPER => jailnode::helper_main(&args[1..]),
        "reboot" => match Ctx::open() {
            Ok(mut cx) => {
                hostpkg::reboot(&mut cx);
                match cx.save() {
                    Ok(()) => 0,
                    Err(e) => {
                        eprintln!("{e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        "state" => match Ctx::open() {
            Ok(cx) => match serde_json::to_string_pretty(&cx.st) {
                Ok(s) => {
                    // Through `Io`, which treats a closed pipe (`fakebsd state | head`) as a normal end.
                    let mut io = Io::default();
                    io.out(&s);
                    io.flush();
                    0
                }
                Err(e) => {
                    eprintln!("fakebsd: {e}");
                    1
                }
            },
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        "-h" | "--help" | "help" => {
            usage();
            0
        }
        tool if state::TOOLS.contains(&tool) => run_tool(tool, &args[1..]),
        _ => usage(),
    }
}

/// With `FAKEBSD_CALL_LOG=FILE`, appends each host tool call (one line: the tool and its arguments) to FILE, so a
/// test or a bench can count the commands and ZFS operations a unit of work costs.
fn log_call(tool: &str, args: &[String]) {
    use std::io::Write;
    let Some(path) = std::env::var_os("FAKEBSD_CALL_LOG") else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{tool} {}", args.join(" "));
    }
}

/// Runs one simulated tool: take the lock, load the state, run, save, print.
fn run_tool(tool: &str, args: &[String]) -> i32 {
    // Inside a jail (a process started by the in-jail sh), or a jail-only name: the in-jail tools.
    let in_jail = std::env::var(state::ENV_JAIL).is_ok_and(|j| !j.is_empty());
    if !in_jail {
        log_call(tool, args);
    }
    if jailfs::JAIL_TOOLS.contains(&tool) && (in_jail || !state::TOOLS.contains(&tool)) {
        return injail::tool_main(tool, args);
    }
    if !state::TOOLS.contains(&tool) {
        eprintln!(
            "fakebsd: unknown tool name '{tool}' (argv[0]); expected one of: {}",
            state::TOOLS.join(" ")
        );
        return 1;
    }
    if tool == "daemon" {
        // Its supervisor runs for long and holds no lock; its program calls the tools (which lock).
        return daemon::main(args);
    }
    let mut cx = match Ctx::open() {
        Ok(cx) => cx,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    if tool == "service" {
        // An rc.subr script's start/stop waits on a program that calls the tools: run it after the lock.
        if let Some(job) = rcsubr::job(&cx, args, service::rc_vars(&cx)) {
            drop(cx);
            return rcsubr::run(&job);
        }
    }
    let mut io = Io::default();
    if tool == "jexec" {
        // Built-ins run under the lock; a spawned sh runs after it is released (it may run for long,
        // and its tools take the lock themselves).
        let out = jexec::run(&mut cx, args, &mut io);
        if let Err(e) = cx.save() {
            io.err(&e);
        }
        drop(cx);
        io.flush();
        return match out {
            jailfs::Outcome::Done(code) => code,
            jailfs::Outcome::Spawn(cmd) => injail::run_inherit(*cmd),
        };
    }
    let code = match tool {
        // Not installed yet: what a shell says of a missing program (the runner of a real host gets ENOENT).
        "bastille" if !hostpkg::bastille_installed(&cx) => {
            io.err("bastille: not found");
            127
        }
        "bastille" => bastille::run(&mut cx, args, &mut io),
        "jls" => jls::run(&mut cx, args, &mut io),
        "jail" => jail::run(&mut cx, args, &mut io),
        "zfs" => zfs::run(&mut cx, args, &mut io),
        "ifconfig" => ifconfig::run(&mut cx, args, &mut io),
        "sysctl" => sysctl::run(&mut cx, args, &mut io),
        "sysrc" => sysrc::run(&mut cx, args, &mut io),
        "pfctl" => pfctl::run(&mut cx, args, &mut io),
        "service" => service::run(&mut cx, args, &mut io),
        "route" => hosttools::route(&mut cx, args, &mut io),
        "netstat" => hosttools::netstat(&mut cx, args, &mut io),
        "freebsd-version" => hosttools::freebsd_version(&mut cx, args, &mut io),
        "kldload" => hosttools::kldload(&mut cx, args, &mut io),
        "kldstat" => hosttools::kldstat(&mut cx, args, &mut io),
        "mount" => hosttools::mount(&mut cx, args, &mut io),
        "chflags" => hosttools::chflags(&mut cx, args, &mut io),
        "install" => hosttools::install(&mut cx, args, &mut io),
        "pkg" => hostpkg::pkg(&mut cx, args, &mut io),
        "pw" => hostpkg::pw(&mut cx, args, &mut io),
        "rctl" => hostpkg::rctl(&mut cx, args, &mut io),
        "npm" => hostpkg::npm(&mut cx, args, &mut io),
        // Not installed yet: what a shell says of a missing program.
        "tailscale" if !cx.host_path("/usr/local/bin/tailscale").exists() => {
            io.err("tailscale: not found");
            127
        }
        "tailscale" => tailscale::run(&mut cx, args, &mut io),
        "test" => hostpkg::test(&mut cx, args, &mut io),
        _ => 1,
    };
    if let Err(e) = cx.save() {
        io.err(&e);
    }
    drop(cx);
    io.flush();
    code
}
