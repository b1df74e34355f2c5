//! The db role's secrets on the host: setup's `db passwords` action (generate the missing password files, mode
//! 0600 in a 0700 directory) and `db sync` (roles, databases and passwords as SQL on psql's stdin, then the sync
//! marker). Passwords never reach an argv, the journal or an error message: psql's output is shown with each of
//! them replaced by `<hidden>`. The `warden` CLI and the FreeBSD test driver both call these.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warden_core::db;

/// How long psql may take over the sync before it is killed.
const SYNC_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a db secrets operation failed (never containing a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A role name that is not a plain identifier.
    #[error("role name {0:?} is not lowercase letters, digits and _")]
    BadRole(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// psql failed or did not finish.
    #[error("{0}")]
    Psql(String),
}

/// The password of `role`, checked to be one Warden generated (its content is never shown).
pub fn read_password(state: &str, role: &str) -> Result<String, DbError> {
    let path = db::password_path(state, role);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        DbError::Io(format!(
            "failed to read the password of {role} ({path}): {e}\n  fix: `warden setup --step db` generates it"
        ))
    })?;
    let pw = text.trim().to_string();
    if !db::valid_password(&pw) {
        return Err(DbError::Io(format!(
            "the password file {path} does not hold a password Warden generated (32-128 lowercase hex digits)\n  fix: remove it and run `warden setup --step db` (a new one is generated and set)"
        )));
    }
    Ok(pw)
}

fn check_roles(roles: &[String]) -> Result<(), DbError> {
    match roles.iter().find(|r| !db::valid_name(r)) {
        Some(bad) => Err(DbError::BadRole(bad.clone())),
        None => Ok(()),
    }
}

/// Creates `<state>/db` (0700) and every missing `<role>.password` (see
/// [`crate::secrets::ensure_password_file`]); a new password unmarks the sync.
pub fn generate(state: &str, roles: &[String]) -> Result<(), DbError> {
    check_roles(roles)?;
    let dir = db::secrets_dir(state);
    for role in roles {
        if crate::secrets::ensure_password_file(&dir, &db::password_path(state, role))
            .map_err(DbError::Io)?
        {
            let _ = std::fs::remove_file(db::synced_marker(state));
        }
    }
    Ok(())
}

/// Feeds [`db::sync_sql`] to `psql` on its stdin; on success writes the sync marker. psql's output is shown
/// only with every password replaced by `<hidden>`.
pub fn sync(state: &str, roles: &[String], psql: &[String]) -> Result<(), DbError> {
    check_roles(roles)?;
    let mut pairs = Vec::new();
    for role in roles {
        pairs.push((role.clone(), read_password(state, role)?));
    }
    let sql = db::sync_sql(&pairs);
    let hide = |text: &str| {
        pairs.iter().fold(text.to_string(), |t, (_, pw)| {
            t.replace(pw.as_str(), "<hidden>")
        })
    };
    let mut child = Command::new(&psql[0])
        .args(&psql[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DbError::Psql(format!("failed to start {}: {e}", psql[0])))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let writer = std::thread::spawn(move || stdin.write_all(sql.as_bytes()));
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let reader = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        if let Some(s) = out.as_mut() {
            let _ = s.read_to_string(&mut o);
        }
        if let Some(s) = err.as_mut() {
            let _ = s.read_to_string(&mut e);
        }
        (o, e)
    });
    let deadline = Instant::now() + SYNC_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DbError::Psql(format!(
                    "psql did not finish the role sync within {} s (killed)\n  fix: check the server in the db jail, then `warden setup --step db`",
                    SYNC_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(DbError::Psql(format!("failed to wait for psql: {e}"))),
        }
    };
    let _ = writer.join();
    let (o, e) = reader.join().unwrap_or_default();
    if !status.success() {
        return Err(DbError::Psql(format!(
            "psql failed ({status}) while creating the roles and databases: {}{}",
            hide(e.trim()),
            hide(o.trim())
        )));
    }
    let marker = db::synced_marker(state);
    std::fs::write(&marker, db::synced_content(roles))
        .map_err(|e| DbError::Io(format!("failed to write {marker}: {e}")))
}
