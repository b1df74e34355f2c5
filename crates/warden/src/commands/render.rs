//! `warden render NAME [--jail JAIL]`.

use crate::cli::Global;
use crate::context;
use crate::exit::Exit;

/// Prints the rendered file to stdout.
pub fn run(global: &Global, name: &str, jail: Option<&str>) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let text =
        warden_core::render::render(&layout, name, jail).map_err(|e| Exit::usage(e.to_string()))?;
    print!("{text}");
    Ok(())
}
