//! `warden db url NAME`, and the two hidden verbs setup's db step runs so that no password is ever in a plan,
//! an argv, the journal or an error: `db passwords` (generate the missing files, mode 0600) and `db sync`
//! (roles, databases and passwords as SQL on psql's stdin). Both backends use them.

use std::path::Path;

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
