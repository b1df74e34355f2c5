//! `warden pi-config`: shows and validates the agent's runtime config; exit 1 if a check fails.

use std::io::IsTerminal;

use crate::cli::Global;
use crate::commands::doctor::pi_dir;
use crate::context;
use crate::exit::Exit;

/// Prints the agent config, the models.json a worker gets, and the checks.
pub fn run(global: &Global, json: bool) -> Result<(), Exit> {
    let loaded = context::load(global)?;
    let shown = warden_doctor::pi_config::check(&loaded.config, &pi_dir(global)?);
    if json {
        println!("{}", shown.to_json());
    } else {
        let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        print!("{}", shown.to_text(color));
    }
    if shown.report.failed() {
        Err(Exit::failure(String::new()))
    } else {
        Ok(())
    }
}
