//! Installing the pinned pi package with npm, and finding a node that can run it.

use std::fs::{self, File};
use std::io;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::config::PI_PACKAGE;

/// pi 0.73.1 declares `"engines": {"node": ">=20.6.0"}`.
pub const MIN_NODE: (u32, u32, u32) = (20, 6, 0);

/// Errors from installing pi or locating node.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    /// A filesystem operation failed.
    #[error("failed to access {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// npm could not be started.
    #[error("failed to run npm (is it on PATH?): {0}")]
    NpmSpawn(io::Error),
    /// npm ran and failed.
    #[error("npm install {spec} failed with {status}: {stderr}")]
    NpmFailed {
        /// `package@version`.
        spec: String,
        /// npm's exit status.
        status: String,
        /// The end of npm's stderr.
        stderr: String,
    },
    /// npm succeeded but the package is not where it should be, or has another version.
    #[error("after npm install, {path} is missing or not version {version}")]
    NotInstalled {
        /// The package.json that was checked.
        path: PathBuf,
        /// The wanted version.
        version: String,
    },
    /// No node on PATH is new enough.
    #[error("no node >= {}.{}.{} found on PATH (pi needs it)", MIN_NODE.0, MIN_NODE.1, MIN_NODE.2)]
    NoNode,
}

/// Where npm puts a package under an install prefix.
pub fn package_dir(prefix: &Path, package: &str) -> PathBuf {
    let mut dir = prefix.join("node_modules");
    for part in package.split('/') {
        dir.push(part);
    }
    dir
}

/// The pi entry point (`dist/cli.js`) under an install prefix; run it with a node >= 20.6.
pub fn pi_cli_js(prefix: &Path) -> PathBuf {
    package_dir(prefix, PI_PACKAGE).join("dist").join("cli.js")
}

/// The npm bin link (`node_modules/.bin/pi`); its shebang uses whichever `node` is first on PATH.
pub fn pi_bin(prefix: &Path) -> PathBuf {
    prefix.join("node_modules").join(".bin").join("pi")
}

/// The version of `package` installed under `prefix`, if any.
pub fn installed_version(prefix: &Path, package: &str) -> Option<String> {
    let text = fs::read_to_string(package_dir(prefix, package).join("package.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("version")?.as_str().map(str::to_string)
}

/// Installs pi `version` into `prefix` (idempotent) and returns the path of its `dist/cli.js`.
pub fn install_pi(prefix: &Path, version: &str) -> Result<PathBuf, InstallError> {
    install_package(prefix, PI_PACKAGE, version)?;
    let cli = pi_cli_js(prefix);
    if !cli.is_file() {
        return Err(InstallError::NotInstalled {
            path: cli,
            version: version.to_string(),
        });
    }
    Ok(cli)
}

/// Runs `npm install --prefix <prefix> --no-audit --no-fund <package>@<version>` unless that exact
/// version is already there. An flock on `<prefix>/.warden-install.lock` serialises concurrent callers.
pub fn install_package(prefix: &Path, package: &str, version: &str) -> Result<(), InstallError> {
    if installed_version(prefix, package).as_deref() == Some(version) {
        return Ok(());
    }
    fs::create_dir_all(prefix).map_err(|source| InstallError::Io {
        path: prefix.to_path_buf(),
        source,
    })?;
    let lock_path = prefix.join(".warden-install.lock");
    let lock = File::create(&lock_path).map_err(|source| InstallError::Io {
        path: lock_path.clone(),
        source,
    })?;
    lock_exclusive(&lock).map_err(|source| InstallError::Io {
        path: lock_path,
        source,
    })?;
    // Another caller may have finished the install while we waited for the lock.
    if installed_version(prefix, package).as_deref() == Some(version) {
        return Ok(());
    }
    let spec = format!("{package}@{version}");
    let out = Command::new("npm")
        .arg("install")
        .arg("--prefix")
        .arg(prefix)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .arg(&spec)
        .output()
        .map_err(InstallError::NpmSpawn)?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: String = stderr
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        return Err(InstallError::NpmFailed {
            spec,
            status: out.status.to_string(),
            stderr: tail,
        });
    }
    if installed_version(prefix, package).as_deref() != Some(version) {
        return Err(InstallError::NotInstalled {
            path: package_dir(prefix, package).join("package.json"),
            version: version.to_string(),
        });
    }
    Ok(())
    // The lock is released when `lock` is dropped (or the process dies).
}

fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock on a valid, owned file descriptor has no memory-safety preconditions.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Parses `v20.20.2` (or `20.20.2`) into a version triple.
pub fn parse_node_version(text: &str) -> Option<(u32, u32, u32)> {
    let t = text.trim().trim_start_matches('v');
    let mut parts = t.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    let patch = parts
        .next()?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((major, minor, patch))
}

/// The version of the node at `path`, by running `node --version`.
pub fn node_version(path: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(path).arg("--version").output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_node_version(&String::from_utf8_lossy(&out.stdout))
}

/// The first `node` on PATH that is >= 20.6 (like `which -a node`, filtered by version).
pub fn find_node() -> Result<PathBuf, InstallError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("node");
        if candidate.is_file() && node_version(&candidate).is_some_and(|v| v >= MIN_NODE) {
            return Ok(candidate);
        }
    }
    Err(InstallError::NoNode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_versions_parse() {
        assert_eq!(parse_node_version("v20.20.2\n"), Some((20, 20, 2)));
        assert_eq!(parse_node_version("22.1.0-nightly"), Some((22, 1, 0)));
        assert_eq!(parse_node_version("garbage"), None);
        assert!(parse_node_version("v20.5.9").unwrap() < MIN_NODE);
    }

    #[test]
    fn paths_under_prefix() {
        let p = Path::new("/c");
        assert_eq!(
            pi_cli_js(p),
            Path::new("/c/node_modules/@mariozechner/pi-coding-agent/dist/cli.js")
        );
        assert_eq!(pi_bin(p), Path::new("/c/node_modules/.bin/pi"));
    }

    #[test]
    fn installed_version_reads_package_json() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(installed_version(dir.path(), PI_PACKAGE), None);
        let pkg = package_dir(dir.path(), PI_PACKAGE);
        fs::create_dir_all(&pkg).unwrap();
        fs::write(pkg.join("package.json"), r#"{"version":"0.73.1"}"#).unwrap();
        assert_eq!(
            installed_version(dir.path(), PI_PACKAGE).as_deref(),
            Some("0.73.1")
        );
        // Already there: no npm run needed.
        install_package(dir.path(), PI_PACKAGE, "0.73.1").unwrap();
    }
}
