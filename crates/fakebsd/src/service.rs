//! `service NAME ACTION` with rc.subr semantics (reference/bastille.md §7.6): `one*` skips the rcvar check,
//! `start` without `NAME_enable=YES` prints rc.subr's "Cannot 'start'" and returns 0, `status` is exempt.
//! Special services: `pf` (loads pf.ko, loads the rules, enables), `netif` (`cloneup`), `dnsmasq`
//! (refuses to start on a missing or unparsable config; uses `/usr/sbin/dnsmasq --test` when present).

use std::collections::BTreeMap;
use std::process::Command;

use crate::fsutil;
use crate::ifconfig;
use crate::io::{fail, Io};
use crate::opts::{Spec, GETOPT};
use crate::pfctl;
use crate::state::{Ctx, Service};

/// rc.d scripts a fresh host has, and where.
pub const HOST_SCRIPTS: &[&str] = &[
    "/etc/rc.d/netif",
    "/etc/rc.d/pf",
    "/etc/rc.d/routing",
    "/etc/rc.d/sshd",
    "/etc/rc.d/syslogd",
    "/etc/rc.d/cron",
    "/etc/rc.d/sendmail",
    "/etc/rc.d/devfs",
    "/etc/rc.d/jail",
    "/usr/local/etc/rc.d/dnsmasq",
    "/usr/local/etc/rc.d/bastille",
];

fn script_path(cx: &Ctx, name: &str) -> Option<String> {
    ["/etc/rc.d/", "/usr/local/etc/rc.d/"]
        .iter()
        .map(|d| format!("{d}{name}"))
        .find(|p| cx.path(p).is_file())
}

/// rc.conf's variables as rc.subr's load_rc_config sees them (defaults, rc.conf, rc.conf.local).
pub fn rc_vars(cx: &Ctx) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for f in [
        "/etc/defaults/rc.conf",
        "/etc/rc.conf",
        "/etc/rc.conf.local",
    ] {
        fsutil::read_vars(&cx.path(f), &mut vars);
    }
    vars
}

fn yes(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "yes" | "true" | "on" | "1"))
}

fn key(cx: &Ctx, name: &str) -> String {
    cx.service_key(name)
}

/// Whether service `name` runs in the current scope (pf: enabled).
pub fn running(cx: &Ctx, name: &str) -> Option<u32> {
    if name == "pf" {
        return (pfctl::loaded(cx) && cx.st.pf.enabled).then_some(0);
    }
    cx.st.services.get(&key(cx, name)).map(|s| s.pid)
}

/// Checks dnsmasq's config the way starting it would: missing file, or a syntax error reported by the
/// real `dnsmasq --test` (only messages naming a line count; file-access complaints about FreeBSD paths
/// that do not exist on this machine are ignored).
fn dnsmasq_check(cx: &Ctx, conf: &str) -> Result<(), String> {
    let real = cx.path(conf);
    if !real.is_file() {
        return Err(format!(
            "dnsmasq: cannot read {conf}: No such file or directory"
        ));
    }
    if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
        let out = Command::new("/usr/sbin/dnsmasq")
            .arg("--test")
            .arg("-C")
            .arg(&real)
            .output();
        if let Ok(out) = out {
            let text = String::from_utf8_lossy(&out.stderr).to_string();
            if !out.status.success() && text.contains(" at line ") {
                let real_s = real.display().to_string();
                return Err(text.trim().replace(&real_s, conf));
            }
        }
    }
    Ok(())
}

/// `service netif cloneup`: creates `cloned_interfaces`, applies `ifconfig_X_name` and `ifconfig_X`.
pub fn cloneup(cx: &mut Ctx, io: &mut Io) -> i32 {
    let vars = rc_vars(cx);
    let clones: Vec<String> = vars
        .get("cloned_interfaces")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let mut created = vec![];
    let mut code = 0;
    for c in clones {
        let final_name = vars
            .get(&format!("ifconfig_{c}_name"))
            .cloned()
            .unwrap_or(c.clone());
        if cx.iface_visible(&c) || cx.iface_visible(&final_name) {
            continue;
        }
        let made = match ifconfig::create(cx, &c) {
            Ok(n) => n,
            Err(e) => {
                code = fail(io, &e);
                continue;
            }
        };
        created.push(c.clone());
        let mut name = made.clone();
        if final_name != made {
            if let Err(e) = ifconfig::rename(cx, &made, &final_name) {
                code = fail(io, &e);
                continue;
            }
            name = final_name;
        }
        if let Some(args) = vars.get(&format!("ifconfig_{name}")) {
            let words: Vec<String> = args
                .split_whitespace()
                .filter(|w| !matches!(w.to_ascii_uppercase().as_str(), "DHCP" | "SYNCDHCP"))
                .map(str::to_string)
                .collect();
            let mut scratch = Io::default();
            if let Err(e) = ifconfig::configure(cx, &name, &words, &mut scratch) {
                code = fail(io, &e);
            }
        }
        if let Some(i) = cx.st.interfaces.get_mut(&name) {
            i.up = true;
        }
    }
    if !created.is_empty() {
        // (unverified) network.subr's clone_up message
        io.out(&format!("Created clone interfaces: {}.", created.join(" ")));
    }
    code
}

/// The `service` command line.
pub fn run(cx: &mut Ctx, args: &[String], io: &mut Io) -> i32 {
    const SPEC: Spec = Spec {
        tool: "service",
        flags: "ehlqrRv",
        valued: "j",
        usage: "usage: service [-j <jail name or id>] -e\n       service [-j <jail name or id>] -R\n       service [-j <jail name or id>] [-v] -l | -r\n       service [-j <jail name or id>] [-v] <rc.d script> start|stop|etc.\n       service -h",
        ..GETOPT
    };
    let p = match SPEC.parse(args) {
        Ok(p) => p,
        Err(e) => return e.report(io),
    };
    let saved = cx.jail.clone();
    if let Some(j) = p.value("j") {
        if !cx.st.jails.contains_key(j) {
            return fail(io, &format!("service: jail \"{j}\" not found"));
        }
        cx.jail = Some(j.to_string());
    }
    if p.has("e") {
        let vars = rc_vars(cx);
        for s in HOST_SCRIPTS {
            let n = s.rsplit('/').next().unwrap_or(s);
            if yes(vars.get(&format!("{n}_enable"))) {
                io.out(s);
            }
        }
        return 0;
    }
    let [name, action, ..] = p.operands.as_slice() else {
        return SPEC.usage().report(io);
    };
    let code = action_run(cx, name, action, io);
    cx.jail = saved;
    code
}

fn action_run(cx: &mut Ctx, name: &str, action: &str, io: &mut Io) -> i32 {
    let Some(script) = script_path(cx, name) else {
        return fail(io, &format!("{name} does not exist in /etc/rc.d or the local startup directories (/usr/local/etc/rc.d), or is not executable"));
    };
    let (prefix, verb) = ["one", "force", "fast", "quiet"]
        .iter()
        .find_map(|p| action.strip_prefix(p).map(|v| (*p, v)))
        .unwrap_or(("", action));
    let vars = rc_vars(cx);
    // rc.subr's name: a script file `llama-server` sets name="llama_server".
    let rc_name = name.replace('-', "_");
    let rcvar = format!("{rc_name}_enable");
    let has_rcvar = name != "netif" && name != "routing" && name != "devfs";
    let enabled = !has_rcvar || yes(vars.get(&rcvar));
    let mutating = matches!(
        verb,
        "start" | "stop" | "restart" | "reload" | "enable" | "disable" | "cloneup" | "clonedown"
    );
    if mutating && !cx.is_root() {
        return fail(io, &format!("{script}: Permission denied"));
    }
    if let Some(code) = rc_conf_verb(cx, name, verb, &rcvar, enabled, io) {
        return code;
    }
    let known = matches!(
        verb,
        "start" | "stop" | "restart" | "status" | "reload" | "poll"
    ) || (name == "netif" && matches!(verb, "cloneup" | "clonedown"))
        || (name == "postgresql" && matches!(verb, "initdb" | "promote"))
        || (name == "pf" && matches!(verb, "check" | "resync"));
    if !known {
        return fail(io, &format!("Usage: {script} [fast|force|one|quiet](start|stop|restart|rcvar|enable|disable|delete|enabled|describe|extracommands|reload|status|poll)"));
    }
    // rc.subr: status is exempt from the rcvar check in current FreeBSD; stop only checks when not running.
    let checks = has_rcvar
        && prefix != "one"
        && prefix != "force"
        && verb != "status"
        && !(verb == "stop" && running(cx, name).is_some());
    if checks && !enabled {
        if prefix != "quiet" {
            io.out(&format!("Cannot '{verb}' {name}. Set {rcvar} to YES in /etc/rc.conf or use 'one{verb}' instead of '{verb}'."));
        }
        return 0;
    }
    if name == "postgresql" && cx.jail.is_some() {
        return postgresql(cx, verb, io);
    }
    match (name, verb) {
        ("netif", "cloneup") => cloneup(cx, io),
        ("netif", "start") | ("netif", "restart") => cloneup(cx, io),
        ("netif", _) => 0,
        ("pf", "status" | "check" | "start" | "restart" | "reload" | "resync" | "stop") => {
            pf(cx, verb, &vars, io)
        }
        (_, "status") | (_, "poll") => match running(cx, name) {
            Some(pid) => {
                io.out(&format!("{name} is running as pid {pid}."));
                0
            }
            None => {
                io.out(&format!("{name} is not running."));
                1
            }
        },
        (_, "start") => start(cx, name, &vars, &script, io),
        (_, "stop") => stop(cx, name, io),
        (_, "restart") => {
            if running(cx, name).is_some() {
                stop(cx, name, io);
            }
            start(cx, name, &vars, &script, io)
        }
        (_, "reload") => reload(cx, name, &vars, io),
        _ => 0,
    }
}

/// The verbs that only read or write rc.conf (`enable`, `disable`, `rcvar`, `enabled`); `None` for the others.
fn rc_conf_verb(
    cx: &mut Ctx,
    name: &str,
    verb: &str,
    rcvar: &str,
    enabled: bool,
    io: &mut Io,
) -> Option<i32> {
    match verb {
        "enable" | "disable" => {
            let v = if verb == "enable" { "YES" } else { "NO" };
            let path = cx.path("/etc/rc.conf");
            if let Err(e) = crate::sysrc::set_var(&path, rcvar, v) {
                return Some(fail(io, &format!("service: {e}")));
            }
            io.out(&format!("{name} {verb}d in /etc/rc.conf"));
            Some(0)
        }
        "rcvar" => {
            io.out(&format!(
                "# {name}\n#\n{rcvar}=\"{}\"",
                rc_vars(cx).get(rcvar).cloned().unwrap_or("NO".into())
            ));
            Some(0)
        }
        "enabled" => Some(if enabled { 0 } else { 1 }),
        _ => None,
    }
}

/// `service pf status|check|start|restart|reload|resync|stop` (rc.d/pf through pfctl).
fn pf(cx: &mut Ctx, verb: &str, vars: &BTreeMap<String, String>, io: &mut Io) -> i32 {
    let rules = vars
        .get("pf_rules")
        .cloned()
        .unwrap_or("/etc/pf.conf".into());
    match verb {
        "status" => {
            if !pfctl::loaded(cx) {
                io.out("pf.ko is not loaded");
                return 1;
            }
            pfctl::run(cx, &["-s".into(), "info".into()], io)
        }
        "check" => {
            io.out("Checking pf rules.");
            pfctl::run(cx, &["-n".into(), "-f".into(), rules], io)
        }
        "start" | "restart" | "reload" | "resync" => {
            let starts = verb == "start" || verb == "restart";
            cx.st.kmods.insert("pf".into());
            io.out(if starts {
                "Enabling pf."
            } else {
                "Reloading pf rules."
            });
            if let Err(lines) = pfctl::load_file(cx, &rules, None, false) {
                for l in lines {
                    io.err(&l);
                }
                if !starts {
                    return 1;
                }
            }
            if starts {
                cx.st.pf.enabled = true;
                cx.st.pf.enabled_at = pfctl::now_secs();
            }
            0
        }
        "stop" => {
            if !pfctl::loaded(cx) || !cx.st.pf.enabled {
                io.err("pfctl: pf not enabled");
                return 1;
            }
            io.out("Disabling pf.");
            cx.st.pf.enabled = false;
            0
        }
        _ => 0,
    }
}

/// `service NAME reload`: a running service's config checked (dnsmasq's), else rc.subr's complaint.
fn reload(cx: &mut Ctx, name: &str, vars: &BTreeMap<String, String>, io: &mut Io) -> i32 {
    if running(cx, name).is_none() {
        return fail(
            io,
            &format!("{name} not running? (check /var/run/{name}.pid)."),
        );
    }
    if name == "nginx" && cx.jail.is_some() {
        return if nginx_test(cx, io) { 0 } else { 1 };
    }
    if name == "dnsmasq" {
        let conf = vars
            .get("dnsmasq_conf")
            .cloned()
            .unwrap_or("/usr/local/etc/dnsmasq.conf".into());
        if let Err(e) = dnsmasq_check(cx, &conf) {
            return fail(io, &e);
        }
    }
    0
}

fn start(
    cx: &mut Ctx,
    name: &str,
    vars: &BTreeMap<String, String>,
    script: &str,
    io: &mut Io,
) -> i32 {
    if let Some(pid) = running(cx, name) {
        return fail(io, &format!("{name} already running?  (pid={pid})."));
    }
    if name == "dnsmasq" {
        let conf = vars
            .get("dnsmasq_conf")
            .cloned()
            .unwrap_or("/usr/local/etc/dnsmasq.conf".into());
        io.out(&format!("Starting {name}."));
        if let Err(e) = dnsmasq_check(cx, &conf) {
            io.err(&e);
            io.err(&format!("{script}: WARNING: failed to start {name}"));
            return 1;
        }
    } else if name == "llama-server" {
        // The port's llama_server_precmd.
        let model = vars.get("llama_server_model").cloned().unwrap_or_default();
        if model.is_empty() {
            io.out("llama_server_model isn't set, it is required");
            return 1;
        }
        if !cx.path(&model).is_file() {
            io.out("llama_server_model isn't a file");
            return 1;
        }
        io.out(&format!("Starting {name}."));
    } else if name == "nginx" && cx.jail.is_some() {
        // rc.d/nginx's start_precmd: `nginx -t` (its output goes to stderr).
        io.out("Performing sanity check on nginx configuration:");
        if !nginx_test(cx, io) {
            return 1;
        }
        io.out(&format!("Starting {name}."));
    } else if name == "forgejo" && cx.jail.is_some() {
        // The port's start_precmd: `forgejo doctor check` as git.
        if let Err(e) = in_jail_fs(cx)
            .map(|fs| crate::gitjail::forgejo_check(cx, &fs))
            .unwrap_or(Ok(()))
        {
            io.err(&format!("cannot start {name} because of configuration errors. Run\n    su -m git -c '{name} doctor check'\nfor further details ({e})"));
            return 1;
        }
        io.out(&format!("Starting {name}."));
    } else {
        io.out(&format!("Starting {name}."));
    }
    cx.st.next_pid += 1;
    let pid = 1000 + cx.st.next_pid;
    cx.st.services.insert(key(cx, name), Service { pid });
    let _ = fsutil::write_file(
        &cx.path(&format!("/var/run/{name}.pid")),
        &format!("{pid}\n"),
    );
    0
}

/// The jail's file system, inside a jail.
fn in_jail_fs(cx: &Ctx) -> Option<crate::jailfs::JailFs> {
    crate::jailfs::JailFs::new(cx, cx.jail.as_deref()?)
}

/// rc.d/nginx's `nginx -t` before a start or reload (its output goes to stderr); whether it passed.
fn nginx_test(cx: &Ctx, io: &mut Io) -> bool {
    let conf = "/usr/local/etc/nginx/nginx.conf";
    let checked = in_jail_fs(cx)
        .map(|fs| crate::gitjail::nginx_check(cx, &fs, conf))
        .unwrap_or(Ok(()));
    match checked {
        Ok(()) => {
            io.err(&format!("nginx: the configuration file {conf} syntax is ok\nnginx: configuration file {conf} test is successful"));
            true
        }
        Err(e) => {
            io.err(&format!(
                "{e}\nnginx: configuration file {conf} test failed"
            ));
            false
        }
    }
}

fn stop(cx: &mut Ctx, name: &str, io: &mut Io) -> i32 {
    match cx.st.services.remove(&key(cx, name)) {
        Some(s) => {
            io.out(&format!("Stopping {name}."));
            io.out(&format!("Waiting for PIDS: {}.", s.pid));
            let _ = fsutil::remove_any(&cx.path(&format!("/var/run/{name}.pid")));
            0
        }
        None => fail(
            io,
            &format!("{name} not running? (check /var/run/{name}.pid)."),
        ),
    }
}

/// rc.d/postgresql of the postgresql18-server port: every command is `su -l postgres -c "pg_ctl -D DATA
/// -w -s -m fast CMD"` (silent), `initdb` runs initdb(1). Runs inside a jail only.
fn postgresql(cx: &mut Ctx, verb: &str, io: &mut Io) -> i32 {
    let Some(jail) = cx.jail.clone() else {
        return 1;
    };
    let Some(fs) = crate::jailfs::JailFs::new(cx, &jail) else {
        return 1;
    };
    let pid = running(cx, "postgresql");
    match verb {
        "initdb" => crate::pkg::initdb(cx, &fs, io),
        "status" | "poll" => crate::pkg::pg_status(cx, pid, io),
        "start" => pg_start(cx, &fs, io),
        "stop" => pg_stop(cx, &fs, io),
        "restart" => {
            if pid.is_none() {
                io.err(&format!("pg_ctl: PID file \"{}/postmaster.pid\" does not exist\nIs server running?\ntrying to start server anyway", crate::pkg::pg_data(cx)));
            } else {
                pg_stop(cx, &fs, io);
            }
            pg_start(cx, &fs, io)
        }
        "reload" | "promote" => match pid {
            Some(_) if verb == "reload" => 0,
            Some(_) => fail(
                io,
                "pg_ctl: cannot promote server; server is not in standby mode",
            ),
            None => fail(
                io,
                &format!(
                    "pg_ctl: PID file \"{}/postmaster.pid\" does not exist\nIs server running?",
                    crate::pkg::pg_data(cx)
                ),
            ),
        },
        _ => 0,
    }
}

fn pg_start(cx: &mut Ctx, fs: &crate::jailfs::JailFs, io: &mut Io) -> i32 {
    if let Err(c) = crate::pkg::pg_can_start(cx, fs, running(cx, "postgresql"), io) {
        return c;
    }
    cx.st.next_pid += 1;
    let pid = 1000 + cx.st.next_pid;
    cx.st
        .services
        .insert(key(cx, "postgresql"), Service { pid });
    crate::pkg::pg_pidfile(cx, fs, Some(pid));
    0
}

fn pg_stop(cx: &mut Ctx, fs: &crate::jailfs::JailFs, io: &mut Io) -> i32 {
    match cx.st.services.remove(&key(cx, "postgresql")) {
        Some(_) => {
            crate::pkg::pg_pidfile(cx, fs, None);
            0
        }
        None => fail(
            io,
            &format!(
                "pg_ctl: PID file \"{}/postmaster.pid\" does not exist\nIs server running?",
                crate::pkg::pg_data(cx)
            ),
        ),
    }
}

/// What the jail's /etc/rc does at jail start for the simulated package services: starts those whose
/// `NAME_enable` is YES and whose preconditions hold (quietly; failures are only logged by rc).
pub fn rc_autostart(cx: &mut Ctx, jail: &str) {
    let saved = cx.jail.replace(jail.to_string());
    for name in ["postgresql", "fcgiwrap", "nginx", "forgejo", "llama-server"] {
        let mut scratch = Io::default();
        let rcvar = format!("{}_enable", name.replace('-', "_"));
        if script_path(cx, name).is_some() && yes(rc_vars(cx).get(&rcvar)) {
            let _ = action_run(cx, name, "start", &mut scratch);
        }
    }
    cx.jail = saved;
}
