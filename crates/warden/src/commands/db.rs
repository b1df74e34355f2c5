//! `warden db url NAME`, and the two hidden verbs setup's db step runs so that no password is ever in a plan,
//! an argv, the journal or an error: `db passwords` (generate the missing files, mode 0600) and `db sync`
//! (roles, databases and passwords as SQL on psql's stdin). Both backends use them. Linux's also runs `db
//! wait` (until the server accepts connections) when it finds a server still starting.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use warden_core::{db, Layout};
use warden_host::db_secrets;

use crate::cli::{DbCommand, Global};
use crate::context;
use crate::exit::Exit;

/// Runs one `warden db` verb.
pub fn run(global: &Global, command: &DbCommand) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    match command {
        DbCommand::Url { name, backend } => {
            let backend = backend.unwrap_or_else(context::default_backend);
            let state = context::state_dir(&layout, backend);
            let url = url(&layout, &state, name)?;
            println!("{url}");
            Ok(())
        }
        DbCommand::Passwords { roles } => {
            let state = context::verb_state_dir(&layout);
            db_secrets::generate(&state, roles).map_err(|e| Exit::failure(e.to_string()))
        }
        DbCommand::Sync { roles, psql } => {
            let state = context::verb_state_dir(&layout);
            db_secrets::sync(&state, roles, psql).map_err(|e| Exit::failure(e.to_string()))
        }
        DbCommand::Wait {
            timeout,
            log,
            probe,
        } => wait_ready(probe, Duration::from_secs(*timeout), log),
    }
}

/// Runs `probe` (pg_isready, which bounds its own connect with `-t`) every half second until it exits 0, or
/// fails after `timeout` with its last answer. Exit 3 (bad arguments) fails at once: waiting cannot help.
fn wait_ready(probe: &[String], timeout: Duration, log: &str) -> Result<(), Exit> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = Command::new(&probe[0])
            .args(&probe[1..])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Exit::failure(format!("failed to start {}: {e}", probe[0])))?;
        if out.status.success() {
            return Ok(());
        }
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let said = said.trim();
        let code = out.status.code();
        if code == Some(3) || Instant::now() >= deadline {
            return Err(Exit::failure(format!(
                "PostgreSQL in the db jail did not accept connections within {} s (pg_isready exited {}: {said})\n  fix: read the server's log {log} in the db jail; `warden jail stop` and `warden jail start` the db jail, then `warden setup --step db`",
                timeout.as_secs(),
                code.map_or("on a signal".to_string(), |c| c.to_string()),
            )));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn url(layout: &Layout, state: &Path, name: &str) -> Result<String, Exit> {
    let roles = db::roles(layout);
    if !roles.iter().any(|r| r == name) {
        return Err(Exit::usage(format!(
            "no database role {name:?} in this layout\n  fix: one of {}",
            roles.join(", ")
        )));
    }
    let state = state.display().to_string();
    let password =
        db_secrets::read_password(&state, name).map_err(|e| Exit::failure(e.to_string()))?;
    db::url(layout, name, &password)
        .ok_or_else(|| Exit::usage("the layout has no db jail (slots.db)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn waits_until_the_probe_answers_ready() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("n");
        // Refuses twice (as a server in recovery does), then accepts.
        let script = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; [ $n -ge 3 ]",
            count.display()
        );
        wait_ready(&sh(&script), Duration::from_secs(10), "/log").unwrap();
        assert_eq!(std::fs::read_to_string(&count).unwrap().trim(), "3");
    }

    #[test]
    fn gives_up_at_the_deadline_naming_the_answer_and_the_log() {
        let t0 = Instant::now();
        let e = wait_ready(
            &sh("echo '/tmp:5432 - rejecting connections'; exit 1"),
            Duration::from_secs(1),
            "/var/lib/postgresql/server.log",
        )
        .unwrap_err();
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(1) && waited < Duration::from_secs(5),
            "{waited:?}"
        );
        assert!(
            e.message
                .contains("within 1 s (pg_isready exited 1: /tmp:5432 - rejecting connections)"),
            "{}",
            e.message
        );
        assert!(
            e.message.contains("/var/lib/postgresql/server.log"),
            "{}",
            e.message
        );
        // Bad arguments (exit 3) cannot get better by waiting.
        let t0 = Instant::now();
        let e = wait_ready(&sh("exit 3"), Duration::from_secs(30), "/log").unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(e.message.contains("exited 3"), "{}", e.message);
    }
}
