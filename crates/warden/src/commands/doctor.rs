//! `warden doctor`: every check of `warden_doctor`, as a table (colour on a terminal, `NO_COLOR` honoured) or
//! JSON; exit 0 when nothing fails, 1 otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use warden_doctor::{BackendKind, Options};

use crate::backends;
use crate::cli::{BackendName, DoctorArgs, Global};
use crate::context;
use crate::exit::Exit;

/// `warden` plus the global flags of this invocation, so printed remedies act on the same config and state.
pub fn warden_prefix(global: &Global) -> String {
    let mut out = String::from("warden");
    if let Some(c) = &global.config {
        out.push_str(&format!(
            " --config {}",
            warden_doctor::sh_quote(&c.display().to_string())
        ));
    }
    for (flag, value) in [
        ("--subnet", &global.subnet),
        ("--domain", &global.domain),
        ("--bridge", &global.bridge),
        ("--state-dir", &global.state_dir),
        ("--identity", &global.identity),
    ] {
        if let Some(v) = value {
            out.push_str(&format!(" {flag} {}", warden_doctor::sh_quote(v)));
        }
    }
    out
}

/// Runs the checks and prints the report.
pub fn run(global: &Global, args: &DoctorArgs) -> Result<(), Exit> {
    let (loaded, layout) = context::layout(global)?;
    let name = args.backend.unwrap_or_else(context::default_backend);
    let state_dir = context::state_dir(&layout, name);
    let backend = match name {
        BackendName::Linux => BackendKind::Linux,
        BackendName::Bastille => BackendKind::Bastille,
    };
    let mut opts = Options::new(backend, layout, state_dir);
    if backend == BackendKind::Bastille {
        opts.host_root = backends::host_root();
    }
    opts.hosts_file = args.hosts_file.clone();
    // --probe, else doctor.probe (environment, then the config file); empty means no probe.
    let (probe, from) = match &args.probe {
        Some(p) => (p.clone(), "--probe".to_string()),
        None => (
            loaded.config.doctor_probe.clone(),
            format!("doctor.probe ({})", loaded.source("doctor.probe")),
        ),
    };
    opts.probe = if probe.trim().is_empty() {
        None
    } else {
        Some(warden_doctor::parse_probe(&probe).map_err(|e| Exit::usage(format!("{from}: {e}")))?)
    };
    if args.timeout_ms == 0 {
        return Err(Exit::usage(
            "--timeout-ms must be at least 1\n  fix: e.g. --timeout-ms 3000",
        ));
    }
    opts.timeout = Duration::from_millis(args.timeout_ms);
    opts.warden = warden_prefix(global);
    opts.telegram = crate::commands::telegram::config(&loaded)?;
    if warden_doctor::set_up_traces(&opts).is_empty() {
        let what = format!(
            "not set up: no bridge {}, no dnsmasq.conf, no firewall ruleset of Warden's on this host",
            opts.layout.bridge
        );
        if args.json {
            println!(
                "{}",
                serde_json::json!({"set_up": false, "backend": backend.name(), "message": what})
            );
        } else {
            println!("{what}");
        }
        return Err(Exit::failure(format!(
            "this host is not set up\n  fix: `{} setup --backend {}`",
            opts.warden,
            backend.name()
        )));
    }
    let report = warden_doctor::run(opts);
    if args.json {
        println!("{}", report.to_json());
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", report.to_table(color));
    }
    if report.failed() {
        Err(Exit::failure(String::new()))
    } else {
        Ok(())
    }
}

/// The state directory's `pi` directory for the default backend.
pub fn pi_dir(global: &Global) -> Result<PathBuf, Exit> {
    let (_, layout) = context::layout(global)?;
    Ok(context::state_dir(&layout, context::default_backend()).join("pi"))
}
