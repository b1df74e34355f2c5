//! `warden init`: the commented config, and the control plane's bearer token (mode 0600).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::cli::{Global, InitArgs};
use crate::context;
use crate::exit::Exit;

/// Name of the token file inside the state directory.
pub const TOKEN_FILE: &str = "token";

/// Writes the config (unless it exists and `--force` is absent) and the token (unless it exists).
pub fn run(global: &Global, args: &InitArgs) -> Result<(), Exit> {
    let text = warden_core::config::default_toml();
    if args.stdout {
        print!("{text}");
        return Ok(());
    }
    let path = global
        .config
        .clone()
        .unwrap_or_else(context::default_config_path);
    if path.exists() && !args.force {
        eprintln!(
            "warden: {} exists; kept it (use --force to overwrite)",
            path.display()
        );
    } else {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Exit::failure(format!("failed to create {}: {e}", dir.display())))?;
        }
        std::fs::write(&path, &text)
            .map_err(|e| Exit::failure(format!("failed to write {}: {e}", path.display())))?;
        eprintln!("warden: wrote {}", path.display());
    }
    let (_, layout) = context::layout(global)?;
    let state = context::state_dir(&layout, context::default_backend());
    context::ensure_state_dir(&state)?;
    let token = state.join(TOKEN_FILE);
    if token.exists() {
        eprintln!("warden: token {} exists; kept it", token.display());
    } else {
        write_token(&token)?;
        eprintln!("warden: wrote token {} (mode 0600)", token.display());
    }
    Ok(())
}

/// Creates a new random token file with mode 0600 (created with that mode, never widened).
pub fn write_token(path: &Path) -> Result<(), Exit> {
    let fail =
        |e: std::io::Error| Exit::failure(format!("failed to write token {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut bytes = [0u8; 32];
    let mut urandom = std::fs::File::open("/dev/urandom").map_err(fail)?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).map_err(fail)?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    writeln!(f, "{hex}").map_err(fail)?;
    Ok(())
}
