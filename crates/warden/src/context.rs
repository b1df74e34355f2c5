//! Loading the config once per invocation: the file (flag, env, or the default path), the environment, flags.

use std::path::PathBuf;

use warden_core::{Layout, Loaded};

use crate::cli::{BackendName, Global};
use crate::exit::Exit;

/// The default config path on this OS.
pub fn default_config_path() -> PathBuf {
    if cfg!(target_os = "freebsd") {
        PathBuf::from("/usr/local/etc/warden.toml")
    } else {
        PathBuf::from("/etc/warden/warden.toml")
    }
}

/// The backend for this OS when none is named.
pub fn default_backend() -> BackendName {
    if cfg!(target_os = "freebsd") {
        BackendName::Bastille
    } else {
        BackendName::Linux
    }
}

/// The config file to read: the named one (which must exist), else the default path if present.
pub fn config_file(global: &Global) -> Result<Option<(PathBuf, String)>, Exit> {
    let (path, required) = match &global.config {
        Some(p) => (p.clone(), true),
        None => (default_config_path(), false),
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some((path, text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => Err(Exit::usage(format!(
            "failed to read config file {}: {e}\n  fix: pass an existing file to --config (or WARDEN_CONFIG), or create one with `warden init`",
            path.display()
        ))),
    }
}

/// Loads config from every source.
pub fn load(global: &Global) -> Result<Loaded, Exit> {
    let file = config_file(global)?;
    let file_ref = file
        .as_ref()
        .map(|(p, t)| (p.to_str().unwrap_or("warden.toml"), t.as_str()));
    let env = |name: &str| std::env::var(name).ok();
    Ok(warden_core::load(file_ref, &env, &global.overrides())?)
}

/// Loads and validates the layout.
pub fn layout(global: &Global) -> Result<(Loaded, Layout), Exit> {
    let loaded = load(global)?;
    let layout = Layout::from_loaded(&loaded)?;
    Ok((loaded, layout))
}

/// Warden's state directory for `backend`.
pub fn state_dir(layout: &Layout, backend: BackendName) -> PathBuf {
    if !layout.state_dir.is_empty() {
        return PathBuf::from(&layout.state_dir);
    }
    match backend {
        BackendName::Bastille => PathBuf::from("/var/db/warden"),
        BackendName::Linux => PathBuf::from("/var/lib/warden"),
    }
}

/// The state directory of setup's hidden verbs: the one setup passed (`--state-dir`), else this OS's default.
pub fn verb_state_dir(layout: &Layout) -> String {
    state_dir(layout, default_backend()).display().to_string()
}

/// Creates Warden's state directory if missing, mode 0700 (it holds the token, the journal and worker records).
pub fn ensure_state_dir(dir: &std::path::Path) -> Result<(), Exit> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            Exit::failure(format!(
                "failed to create the state directory {}: {e}",
                dir.display()
            ))
        })
}
