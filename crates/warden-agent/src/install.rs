//! Installing the pinned pi package with npm, and finding a node that can run it. What an install is (the
//! npm argv, the completion marker, the node it needs) is `warden_core::pi`'s, shared with setup's `agent` step.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

pub use warden_core::pi::MIN_NODE;
use warden_core::pi::{self, parse_node_version, PI_PACKAGE};

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
    /// The install was cancelled (the server is stopping); npm was killed.
    #[error("npm install {spec} was cancelled")]
    Cancelled {
        /// `package@version`.
        spec: String,
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
    pi::package_version(&text)
}

/// The path of pi `version`'s `dist/cli.js` under `prefix` if that version is completely installed there.
pub fn installed_pi(prefix: &Path, version: &str) -> Option<PathBuf> {
    let cli = pi_cli_js(prefix);
    (is_installed(prefix, version) && cli.is_file()).then_some(cli)
}

/// Installs pi `version` into `prefix` (idempotent) and returns the path of its `dist/cli.js`.
pub fn install_pi(prefix: &Path, version: &str) -> Result<PathBuf, InstallError> {
    install_pi_until(prefix, version, &AtomicBool::new(false))
}

/// [`install_pi`] that kills npm (its whole process group) and returns
/// [`InstallError::Cancelled`] once `cancel` is set: nothing of it outlives its caller.
pub fn install_pi_until(
    prefix: &Path,
    version: &str,
    cancel: &AtomicBool,
) -> Result<PathBuf, InstallError> {
    install_package(prefix, version, cancel)?;
    let cli = pi_cli_js(prefix);
    if !cli.is_file() {
        return Err(InstallError::NotInstalled {
            path: cli,
            version: version.to_string(),
        });
    }
    Ok(cli)
}

/// The file that says an install completed (`warden_core::pi::INSTALLED_MARKER`).
fn done_marker(prefix: &Path) -> PathBuf {
    prefix.join(pi::INSTALLED_MARKER)
}

fn is_installed(prefix: &Path, version: &str) -> bool {
    installed_version(prefix, PI_PACKAGE).as_deref() == Some(version)
        && fs::read_to_string(done_marker(prefix)).ok().as_deref()
            == Some(pi::marker_content(version).as_str())
}

/// Runs setup's `npm install` of pi `version` into `prefix` (`warden_core::pi::npm_install_argv`) unless that
/// exact version is already there. An flock on `<prefix>/.warden-install.lock` serialises concurrent callers.
fn install_package(prefix: &Path, version: &str, cancel: &AtomicBool) -> Result<(), InstallError> {
    if is_installed(prefix, version) {
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
    // Held until this function returns (or the process dies).
    let _lock = lock_exclusive(lock).map_err(|source| InstallError::Io {
        path: lock_path,
        source,
    })?;
    // Another caller may have finished the install while we waited for the lock.
    if is_installed(prefix, version) {
        return Ok(());
    }
    let spec = format!("{PI_PACKAGE}@{version}");
    let prefix_text = prefix.to_str().ok_or_else(|| InstallError::Io {
        path: prefix.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path is not UTF-8"),
    })?;
    let argv = pi::npm_install_argv(prefix_text, version);
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        // Its own process group, so a cancel reaches npm's node children too.
        .process_group(0)
        .spawn()
        .map_err(InstallError::NpmSpawn)?;
    let mut pipe = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(p) = pipe.as_mut() {
            let _ = io::Read::read_to_end(p, &mut text);
        }
        text
    });
    let status = loop {
        if cancel.load(Ordering::Relaxed) {
            // The process group npm leads (created above): npm and everything it started.
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            let _ = reader.join();
            return Err(InstallError::Cancelled { spec });
        }
        match child.try_wait().map_err(InstallError::NpmSpawn)? {
            Some(st) => break st,
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    let stderr_bytes = reader.join().unwrap_or_default();
    if !status.success() {
        let stderr = String::from_utf8_lossy(&stderr_bytes);
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
            status: status.to_string(),
            stderr: tail,
        });
    }
    if installed_version(prefix, PI_PACKAGE).as_deref() != Some(version) {
        return Err(InstallError::NotInstalled {
            path: package_dir(prefix, PI_PACKAGE).join("package.json"),
            version: version.to_string(),
        });
    }
    fs::write(done_marker(prefix), pi::marker_content(version)).map_err(|source| {
        InstallError::Io {
            path: done_marker(prefix),
            source,
        }
    })?;
    Ok(())
    // The lock is released when `lock` is dropped (or the process dies).
}

fn lock_exclusive(mut file: File) -> io::Result<Flock<File>> {
    loop {
        match Flock::lock(file, FlockArg::LockExclusive) {
            Ok(held) => return Ok(held),
            // A signal interrupted the wait: wait again.
            Err((f, Errno::EINTR)) => file = f,
            Err((_, e)) => return Err(e.into()),
        }
    }
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
        // A package.json alone may be a half-done install (npm killed): not installed.
        assert!(!is_installed(dir.path(), "0.73.1"));
        fs::write(done_marker(dir.path()), format!("{PI_PACKAGE}@0.73.1\n")).unwrap();
        assert!(is_installed(dir.path(), "0.73.1"));
        assert!(!is_installed(dir.path(), "0.73.2"));
        // Already there: no npm run needed.
        install_package(dir.path(), "0.73.1", &AtomicBool::new(false)).unwrap();
    }

    #[test]
    fn a_cancelled_install_kills_npm_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = AtomicBool::new(true);
        match install_package(dir.path(), "0.73.1", &cancel) {
            Err(InstallError::Cancelled { spec }) => assert!(spec.ends_with("@0.73.1")),
            Err(InstallError::NpmSpawn(_)) => {} // no npm on this machine: nothing to kill
            other => panic!("expected a cancelled install, got {other:?}"),
        }
        assert!(!is_installed(dir.path(), "0.73.1"));
    }
}
