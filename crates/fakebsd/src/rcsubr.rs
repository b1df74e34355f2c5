//! rc.subr(8) for rc.d scripts fakebsd does not simulate itself (e.g. Warden's own `/usr/local/etc/rc.d/warden`):
//! the script is evaluated by this machine's sh with stand-ins for `load_rc_config` (rc.conf's variables) and
//! `run_rc_command` (which reports what rc.subr would run), then `start|stop|status|restart` act as rc.subr does:
//!
//! - `${rcvar}` must be YES for `start` (unless `one…`/`force…`); `${name}_program` replaces `$command`;
//! - `start` runs `$command ${name}_flags $command_args` (rc.subr's order: the flags go to `$command`);
//! - a process is running when `$pidfile` names a live process whose name is `procname`'s (default:
//!   `$command`) basename, as `check_pidfile` matches it; `stop` sends SIGTERM and waits for it to exit.
//!
//! Only scripts made of comments, assignments, `: ${var:=default}`, `. /etc/rc.subr`, `load_rc_config` and
//! `run_rc_command` are accepted (no functions, no command substitution); the script runs with an empty PATH.
//! The one `$command` simulated is `/usr/sbin/daemon` (fakebsd's `daemon`). Commands run with service(8)'s
//! clean environment: `HOME=/`, `PATH` = the simulated host's tools, `FAKEBSD_STATE`, and `WARDEN_HOST_ROOT`
//! (the simulated `/`, so a program under test finds the host's files where the simulation keeps them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::daemon;
use crate::state::Ctx;

/// One `service NAME ACTION` for an rc.subr script, taken while the state lock is held and run after it.
pub struct Job {
    name: String,
    action: String,
    script: String,
    text: String,
    rc_vars: BTreeMap<String, String>,
    state_dir: PathBuf,
    root: PathBuf,
}

/// What the script asks rc.subr to do.
#[derive(Debug, Default)]
struct Eval {
    name: String,
    rcvar: String,
    enabled: String,
    pidfile: String,
    procname: String,
    argv: Vec<String>,
}

/// A job when `args` are `NAME ACTION` on the host for a script this module runs, else `None`.
pub fn job(cx: &Ctx, args: &[String], rc_vars: BTreeMap<String, String>) -> Option<Job> {
    let [name, action] = args else {
        return None;
    };
    let verb = ["one", "force", "quiet"]
        .iter()
        .find_map(|p| action.strip_prefix(p))
        .unwrap_or(action);
    // Jails and non-root callers keep `service`'s own handling (which refuses the latter).
    if cx.jail.is_some()
        || !cx.is_root()
        || !matches!(verb, "start" | "stop" | "status" | "restart" | "poll")
    {
        return None;
    }
    let script = format!("/usr/local/etc/rc.d/{name}");
    let text = std::fs::read_to_string(cx.host_path(&script)).ok()?;
    // fakebsd's own stand-ins for package scripts are simulated by `service` itself.
    if text.contains("simulated by fakebsd") || !text.contains("run_rc_command") {
        return None;
    }
    Some(Job {
        name: name.clone(),
        action: action.clone(),
        script,
        text,
        rc_vars,
        state_dir: cx.root().parent().map(Path::to_path_buf)?,
        root: cx.root(),
    })
}

/// Runs the job; the exit status of `service`.
pub fn run(job: &Job) -> i32 {
    let ev = match evaluate(job) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let (prefix, verb) = ["one", "force", "quiet"]
        .iter()
        .find_map(|p| job.action.strip_prefix(p).map(|v| (*p, v)))
        .unwrap_or(("", job.action.as_str()));
    let enabled = matches!(
        ev.enabled.to_ascii_lowercase().as_str(),
        "yes" | "true" | "on" | "1"
    );
    let checked = verb != "status" && verb != "poll" && prefix != "one" && prefix != "force";
    // rc.subr lets `stop` through for a running service even when it is disabled.
    if checked && !enabled && (verb != "stop" || running(job, &ev).is_none()) {
        if prefix != "quiet" {
            println!("Cannot '{verb}' {n}. Set {r} to YES in /etc/rc.conf or use 'one{verb}' instead of '{verb}'.", n = ev.name, r = ev.rcvar);
        }
        return 0;
    }
    match verb {
        "status" | "poll" => match running(job, &ev) {
            Some(pid) => {
                println!("{} is running as pid {pid}.", ev.name);
                0
            }
            None => {
                println!("{} is not running.", ev.name);
                1
            }
        },
        "start" => start(job, &ev),
        "stop" => stop(job, &ev),
        _ => {
            if running(job, &ev).is_some() {
                let code = stop(job, &ev);
                if code != 0 {
                    return code;
                }
            }
            start(job, &ev)
        }
    }
}

fn start(job: &Job, ev: &Eval) -> i32 {
    if let Some(pid) = running(job, ev) {
        eprintln!("{} already running?  (pid={pid}).", ev.name);
        return 1;
    }
    let Some(program) = ev.argv.first() else {
        eprintln!("{}: run_rc_command: no command", job.script);
        return 1;
    };
    if program != "/usr/sbin/daemon" {
        eprintln!(
            "fakebsd: service: {}: command {program} is not simulated (only /usr/sbin/daemon)",
            job.script
        );
        return 1;
    }
    println!("Starting {}.", ev.name);
    let path = format!(
        "{}:/usr/bin:/bin",
        job.state_dir.join("bin").to_string_lossy()
    );
    let status = Command::new(job.state_dir.join("bin").join("daemon"))
        .args(&ev.argv[1..])
        .env_clear()
        .env("HOME", "/")
        .env("PATH", path)
        .env(crate::state::ENV_STATE, &job.state_dir)
        .env("WARDEN_HOST_ROOT", &job.root)
        .status();
    match status {
        Ok(s) if s.success() => 0,
        _ => {
            eprintln!("{}: WARNING: failed to start {}", job.script, ev.name);
            1
        }
    }
}

fn stop(job: &Job, ev: &Eval) -> i32 {
    let Some(pid) = running(job, ev) else {
        eprintln!("{} not running? (check {}).", ev.name, ev.pidfile);
        return 1;
    };
    println!("Stopping {}.", ev.name);
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    println!("Waiting for PIDS: {pid}.");
    // rc.subr's wait_for_pids waits without end; a test must not hang.
    let deadline = Instant::now() + Duration::from_secs(60);
    while daemon::alive(pid) {
        if Instant::now() > deadline {
            eprintln!("fakebsd: service: pid {pid} still running 60 s after SIGTERM");
            return 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    0
}

/// check_pidfile: the pid in `$pidfile` when that process is alive and named as `procname`.
fn running(job: &Job, ev: &Eval) -> Option<i32> {
    if ev.pidfile.is_empty() {
        return None;
    }
    let pid = daemon::pid_in(&job.root.join(ev.pidfile.trim_start_matches('/')))?;
    if !daemon::alive(pid) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let arg0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    let arg0 = String::from_utf8_lossy(arg0);
    let base = |p: &str| {
        p.rsplit('/')
            .next()
            .unwrap_or(p)
            .trim_end_matches(':')
            .to_string()
    };
    let first = arg0.split_whitespace().next().unwrap_or_default();
    (base(first) == base(&ev.procname)).then_some(pid)
}

/// Whether a script line is one the evaluation accepts.
fn allowed(line: &str) -> bool {
    let l = line.trim();
    let assignment = l.split_once('=').is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    l.is_empty()
        || l.starts_with('#')
        || l == ". /etc/rc.subr"
        || l.starts_with("load_rc_config ")
        || l.starts_with("run_rc_command ")
        || (l.starts_with(": ${") && l.ends_with('}'))
        || assignment
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Runs the script with the stand-ins and reads what `run_rc_command` reported.
fn evaluate(job: &Job) -> Result<Eval, String> {
    let mut body = String::new();
    for (n, line) in job.text.lines().enumerate() {
        let code = !line.trim_start().starts_with('#');
        if code && (!allowed(line) || line.contains('`') || line.contains("$(")) {
            return Err(format!(
                "fakebsd: service: {}: line {} is not simulated: {}",
                job.script,
                n + 1,
                line.trim()
            ));
        }
        if line.trim() != ". /etc/rc.subr" {
            body.push_str(line);
            body.push('\n');
        }
    }
    let rc_conf: String = job
        .rc_vars
        .iter()
        .filter(|(k, _)| k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(k, v)| format!("{k}={}\n", sh_quote(v)))
        .collect();
    let program = format!(
        r#"load_rc_config() {{
{rc_conf}}}
run_rc_command() {{
eval "__flags=\${{${{name}}_flags}}"
eval "__program=\${{${{name}}_program}}"
command=${{__program:-$command}}
printf 'name=%s\n' "$name"
printf 'rcvar=%s\n' "$rcvar"
eval "printf 'enabled=%s\n' \"\${{$rcvar}}\""
printf 'pidfile=%s\n' "$pidfile"
printf 'procname=%s\n' "${{procname:-$command}}"
for __w in $command $__flags $command_args; do printf 'arg=%s\n' "$__w"; done
exit 0
}}
{body}"#
    );
    let out = Command::new("/bin/bash")
        .arg("--posix")
        .arg("-c")
        .arg(&program)
        .arg(&job.script)
        .arg(&job.action)
        .env_clear()
        .env("PATH", "/nonexistent")
        .output()
        .map_err(|e| format!("fakebsd: service: cannot run bash: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut ev = Eval::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let v = v.to_string();
        match k {
            "name" => ev.name = v,
            "rcvar" => ev.rcvar = v,
            "enabled" => ev.enabled = v,
            "pidfile" => ev.pidfile = v,
            "procname" => ev.procname = v,
            "arg" => ev.argv.push(v),
            _ => {}
        }
    }
    if !out.status.success() || ev.name.is_empty() {
        return Err(format!(
            "fakebsd: service: {} did not reach run_rc_command: {}",
            job.script,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if ev.name != job.name {
        // rc.subr itself does not care; a script whose name differs from its file is a bug worth seeing.
        eprintln!(
            "fakebsd: service: {} sets name={} (its file is {})",
            job.script, ev.name, job.name
        );
    }
    Ok(ev)
}
