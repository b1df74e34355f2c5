//! `db.<role>`: `SELECT 1` in each database as its own role, with the password setup generated, over TCP to
//! the db slot from this host (the gateway, which `pg_hba.conf` admits like the git and cms slots). The
//! password goes to psql in its environment, never on its command line or in the report.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warden_core::db;
use warden_core::layout::{Role, DB_PORT};

use crate::report::Check;
use crate::Ctx;

/// psql on this host: Debian's newest `/usr/lib/postgresql/N/bin/psql`, else `psql` on PATH.
fn psql() -> Option<PathBuf> {
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .map(|v| PathBuf::from(format!("/usr/lib/postgresql/{v}/bin/psql")))
        .filter(|p| p.is_file());
    newest.or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("psql"))
                .find(|p| p.is_file())
        })
    })
}

/// Why a service in a jail cannot be probed over the bridge from here, if it cannot: a simulated host (nothing
/// answers in a simulated jail) or a broken bridge (network.bridge's failure; every connection across it would
/// only repeat it).
pub(crate) fn no_service_probe(ctx: &Ctx, server: &str) -> Option<String> {
    if ctx.simulated() {
        return Some(format!(
            "simulated host: no {server} answers in a simulated jail"
        ));
    }
    crate::checks::network::bridge(ctx)
        .iter()
        .any(|c| c.status == crate::report::Status::Fail)
        .then(|| "the bridge is not usable (network.bridge fails)".to_string())
}

/// The roles the layout's db jail should serve (one task each, so they run side by side).
pub fn role_names(ctx: &Ctx) -> Vec<String> {
    match ctx.layout().service(Role::Db) {
        Some(_) => db::roles(ctx.layout()),
        None => Vec::new(),
    }
}

/// `db.<role>`: SELECT 1 in the role's database as the role.
pub fn role(ctx: &Ctx, role: &str) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(svc) = layout.service(Role::Db) else {
        return Vec::new();
    };
    let fix = format!(
        "{} (starts PostgreSQL in {}, creates the role and its database, sets its password)",
        ctx.setup("db"),
        svc.jail
    );
    let name = format!("db.{role}");
    let expected = format!(
        "SELECT 1 in database {role} as role {role} at {}:{DB_PORT} answers 1",
        svc.addr
    );
    if let Some(why) = no_service_probe(ctx, "PostgreSQL") {
        return vec![Check::skip(name, expected, why)];
    }
    let Some(psql) = psql() else {
        return vec![Check::skip(
            name,
            expected,
            "no psql on this host (Debian: apt-get install postgresql-client; FreeBSD: pkg install postgresql18-client)",
        )];
    };
    vec![select_one(
        ctx,
        &psql,
        role,
        &svc.addr.to_string(),
        name,
        expected,
        &fix,
    )]
}

fn select_one(
    ctx: &Ctx,
    psql: &Path,
    role: &str,
    addr: &str,
    name: String,
    expected: String,
    fix: &str,
) -> Check {
    let state = ctx.opts.state_dir.display().to_string();
    let path = db::password_path(&state, role);
    let password = match std::fs::read_to_string(&path) {
        Ok(p) if db::valid_password(p.trim()) => p.trim().to_string(),
        Ok(_) => {
            return Check::fail(
                name,
                expected,
                format!("{path} does not hold a password Warden generated"),
                format!("remove {path}, then {fix}"),
            )
        }
        Err(e) => return Check::fail(name, expected, format!("no password file {path}: {e}"), fix),
    };
    let t0 = Instant::now();
    let port = DB_PORT.to_string();
    let child = Command::new(psql)
        .args([
            "-X", "-A", "-t", "-h", addr, "-p", &port, "-U", role, "-d", role,
        ])
        .args(["-c", "SELECT 1"])
        .env("PGPASSWORD", &password)
        .env("PGCONNECT_TIMEOUT", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let out = match child.and_then(|c| wait(c, ctx.opts.timeout)) {
        Ok(o) => o,
        Err(e) => return Check::fail(name, expected, format!("{}: {e}", psql.display()), fix),
    };
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && said == "1" {
        return Check::ok(
            name,
            expected,
            format!("1 in {} ms", t0.elapsed().as_millis()),
        );
    }
    let err = String::from_utf8_lossy(&out.stderr)
        .replace(&password, "<hidden>")
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    Check::fail(
        name,
        expected,
        format!("psql exited {}: {err}{said}", out.status),
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
