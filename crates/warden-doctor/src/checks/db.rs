//! `db.<role>`: `SELECT 1` in each database as its own role, with the password setup generated, from the
//! service jail that uses it (`<namespace>_git` from the git jail, every other role from the cms jail), so the
//! connection leaves the consuming jail's slot and crosses the bridge and its filter to the db slot exactly as
//! the real clients' do. One probe for both backends; only the way psql is entered into the jail differs
//! ([`psql_entry`]). The password goes to psql in its environment, never on a command line or in the report.

use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warden_core::layout::{Role, Service, DB_PORT};
use warden_core::{db, forgejo};

use crate::report::{Check, Status};
use crate::{BackendKind, Ctx};

/// psql in the FreeBSD jails (`postgresql18-client`, which the db, git and cms steps install).
pub const FREEBSD_PSQL: &str = "/usr/local/bin/psql";

/// Why the bridge cannot carry a probe, if it cannot (network.bridge fails: every connection across it would
/// only repeat that failure).
fn bridge_unusable(ctx: &Ctx) -> Option<String> {
    crate::checks::network::bridge(ctx)
        .iter()
        .any(|c| c.status == Status::Fail)
        .then(|| "the bridge is not usable (network.bridge fails)".to_string())
}

/// Why a service in a jail cannot be probed over the bridge from this host, if it cannot: a simulated host
/// (nothing answers in a simulated jail) or a broken bridge.
pub(crate) fn no_service_probe(ctx: &Ctx, server: &str) -> Option<String> {
    if ctx.simulated() {
        return Some(format!(
            "simulated host: no {server} answers in a simulated jail"
        ));
    }
    bridge_unusable(ctx)
}

/// The roles the layout's db jail should serve (one task each, so they run side by side).
pub fn role_names(ctx: &Ctx) -> Vec<String> {
    match ctx.layout().service(Role::Db) {
        Some(_) => db::roles(ctx.layout()),
        None => Vec::new(),
    }
}

/// The service jail that uses `role`'s database: the git jail for Forgejo's `<namespace>_git`, the cms jail
/// for the others; the other of the two when the layout lacks that one.
pub fn consumer<'a>(ctx: &'a Ctx, role: &str) -> Option<&'a Service> {
    let layout = ctx.layout();
    let (first, second) = if role == forgejo::db_role(layout) {
        (Role::Git, Role::Cms)
    } else {
        (Role::Cms, Role::Git)
    };
    layout.service(first).or_else(|| layout.service(second))
}

/// The checks whose failure `db.<role>` would only repeat: the bridge and both jails running.
pub fn depends_on(ctx: &Ctx, role: &str) -> Vec<String> {
    let mut d = vec!["network.bridge".to_string()];
    if let Some(from) = consumer(ctx, role) {
        d.push(format!("jail.{}.running", from.jail));
    }
    if let Some(svc) = ctx.layout().service(Role::Db) {
        d.push(format!("jail.{}.running", svc.jail));
    }
    d
}

/// How psql is entered into the consuming jail `jail`: the argv before psql's own arguments.
///
/// Linux: `nsenter --target PID --net --root -- <the jail's psql>` (see `checks::linux::psql_in_jail`).
/// FreeBSD: `jexec JAIL /usr/local/bin/psql`, WITHOUT `-l`: jexec(8) keeps the caller's environment unless
/// `-l` is given, so PGPASSWORD reaches psql inside the jail and appears on no command line.
/// Err is (seen, fix).
fn psql_entry(ctx: &Ctx, jail: &str) -> Result<Vec<String>, (String, String)> {
    match ctx.opts.backend {
        BackendKind::Linux => crate::checks::linux::psql_in_jail(ctx, jail),
        BackendKind::Bastille => Ok(vec!["jexec".into(), jail.into(), FREEBSD_PSQL.into()]),
    }
}

/// `db.<role>`: SELECT 1 in the role's database as the role, from the jail that uses it.
pub fn role(ctx: &Ctx, role: &str) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(svc) = layout.service(Role::Db) else {
        return Vec::new();
    };
    let deps = depends_on(ctx, role);
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    let name = format!("db.{role}");
    let Some(from) = consumer(ctx, role) else {
        let expected = format!("SELECT 1 in {role} as {role} → {}:{DB_PORT}", svc.addr);
        return vec![Check::skip(
            name,
            expected,
            "no git or cms jail in the layout to probe from",
        )];
    };
    let probe = Probe {
        role,
        from: &from.jail,
        from_addr: from.addr,
        from_step: if from.role == Role::Git { "git" } else { "cms" },
        db_addr: svc.addr,
        db_jail: &svc.jail,
    };
    let expected = format!(
        "SELECT 1 in {role} as {role} from {} ({}) → {}:{DB_PORT} answers 1",
        from.jail, from.addr, svc.addr
    );
    if let Some(why) = bridge_unusable(ctx) {
        return vec![Check::skip(name, expected, why).depends(&deps)];
    }
    vec![select_one(ctx, &probe, name, expected).depends(&deps)]
}

/// One probe: which role, from which jail, to which db slot.
struct Probe<'a> {
    role: &'a str,
    from: &'a str,
    from_addr: Ipv4Addr,
    /// The setup step of the consuming jail (`git`, `cms`).
    from_step: &'static str,
    db_addr: Ipv4Addr,
    db_jail: &'a str,
}

impl Probe<'_> {
    /// The command that fixes what psql said (`err`, its first line of stderr).
    fn remedy(&self, ctx: &Ctx, err: &str) -> String {
        let db_step = format!(
            "{} (starts PostgreSQL in {}, admits {} in pg_hba.conf, creates the role and its database, sets its password)",
            ctx.setup("db"),
            self.db_jail,
            self.from_addr
        );
        let lower = err.to_ascii_lowercase();
        if lower.contains(FREEBSD_PSQL) && lower.contains("no such file") {
            return format!(
                "{} (installs {} in {})",
                ctx.setup(self.from_step),
                db::FREEBSD_CLIENT_PKG,
                self.from
            );
        }
        if lower.contains("password authentication failed") {
            // The server has another password than the file: a sync sets each role's from its file, and
            // setup syncs when the marker is gone.
            let state = ctx.opts.state_dir.display().to_string();
            return format!(
                "rm {} && {} (sets each role's password from {})",
                db::synced_marker(&state),
                ctx.setup("db"),
                db::secrets_dir(&state)
            );
        }
        let dropped = lower.contains("timeout expired")
            || lower.contains("no route to host")
            || lower.contains("no answer within");
        if !dropped {
            return db_step;
        }
        // Nothing answered: the packets were dropped between the two slots (the server refuses with a reset,
        // not silence). The firewall's service path is what lets them through.
        match ctx.opts.backend {
            BackendKind::Linux => {
                let rules = ctx.opts.state_dir.join("nftables.conf");
                format!(
                    "nft -f {} (reloads Warden's ruleset, whose service path lets {} reach {}:{DB_PORT}; {} rewrites that file first when it differs)",
                    rules.display(),
                    self.from_addr,
                    self.db_addr,
                    ctx.setup("host")
                )
            }
            BackendKind::Bastille => format!(
                "{} (pf's service path lets {} reach {}:{DB_PORT})",
                ctx.setup("host"),
                self.from_addr,
                self.db_addr
            ),
        }
    }
}

/// The role's password, checked to be one Warden generated; else (seen, fix).
fn password(ctx: &Ctx, role: &str) -> Result<String, (String, String)> {
    let state = ctx.opts.state_dir.display().to_string();
    let path = db::password_path(&state, role);
    let fix = format!("{} (generates it)", ctx.setup("db"));
    match std::fs::read_to_string(&path) {
        Ok(p) if db::valid_password(p.trim()) => Ok(p.trim().to_string()),
        Ok(_) => Err((
            format!("{path} does not hold a password Warden generated"),
            format!("remove {path}, then {fix}"),
        )),
        Err(e) => Err((format!("no password file {path}: {e}"), fix)),
    }
}

fn select_one(ctx: &Ctx, p: &Probe<'_>, name: String, expected: String) -> Check {
    let password = match password(ctx, p.role) {
        Ok(pw) => pw,
        Err((seen, fix)) => return Check::fail(name, expected, seen, fix),
    };
    let entry = match psql_entry(ctx, p.from) {
        Ok(e) => e,
        Err((seen, fix)) => return Check::fail(name, expected, seen, fix),
    };
    // The connection's own limit stays under the task's, so a dropped path is reported as psql saw it.
    let limit = ctx.opts.timeout.saturating_sub(Duration::from_millis(300));
    let connect_s = limit.as_secs().saturating_sub(1).max(2);
    let t0 = Instant::now();
    let (addr, port) = (p.db_addr.to_string(), DB_PORT.to_string());
    let child = Command::new(&entry[0])
        .args(&entry[1..])
        .args(["-X", "-A", "-t", "-w", "-h", &addr, "-p", &port])
        .args(["-U", p.role, "-d", p.role, "-c", "SELECT 1"])
        .env("PGPASSWORD", &password)
        .env("PGCONNECT_TIMEOUT", connect_s.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let how = format!(
        "SELECT 1 in {r} as {r} from {} ({}) → {addr}:{port}",
        p.from,
        p.from_addr,
        r = p.role
    );
    let out = match child.and_then(|c| wait(c, limit)) {
        Ok(o) => o,
        Err(e) => {
            let seen = format!("{how}: {}: {e}", entry.join(" "));
            let fix = p.remedy(ctx, &seen);
            return Check::fail(name, expected, seen, fix);
        }
    };
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && said == "1" {
        return Check::ok(
            name,
            expected,
            format!("{how}: 1 in {} ms", t0.elapsed().as_millis()),
        );
    }
    let err = String::from_utf8_lossy(&out.stderr)
        .replace(&password, "<hidden>")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ");
    let fix = p.remedy(ctx, &err);
    Check::fail(
        name,
        expected,
        format!("{how}: psql exited {}: {err}{said}", out.status),
        fix,
    )
}

/// Waits for `child` at most `limit`, killing it after.
pub(crate) fn wait(
    mut child: std::process::Child,
    limit: Duration,
) -> std::io::Result<std::process::Output> {
    let deadline = Instant::now() + limit;
    while child.try_wait()?.is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms (killed)", limit.as_millis()),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output()
}
