//! The one way Warden touches a host: run an argv, read a file, write a file. A [`RecordingRunner`] stands in
//! for tests of ordering and idempotency without root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// What a finished command printed and returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// Exit status; -1 if killed by a signal.
    pub status: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Output {
    /// Whether the command exited 0.
    pub fn ok(&self) -> bool {
        self.status == 0
    }
}

/// Why a host operation could not even be attempted.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The program could not be started.
    #[error("failed to run {program}: {source}\n  fix: install it or put it on PATH")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be read or written.
    #[error("failed to {op} {path}: {source}")]
    File {
        /// `read` or `write`.
        op: &'static str,
        /// The host path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// An empty argv.
    #[error("refusing to run an empty command")]
    Empty,
}

/// Runs commands and reads/writes files on one host.
pub trait Runner: Send + Sync {
    /// Runs `argv` (no shell), stdin from `/dev/null`, and waits for it.
    fn run(&self, argv: &[String]) -> Result<Output, RunError>;
    /// Reads a host file; `None` if it does not exist.
    fn read_file(&self, path: &str) -> Result<Option<String>, RunError>;
    /// Writes a host file atomically (temp file + rename) with `mode`.
    fn write_file(&self, path: &str, mode: u32, content: &str) -> Result<(), RunError>;
    /// Mode bits of a host path, if it exists.
    fn mode(&self, path: &str) -> Result<Option<u32>, RunError>;
}

/// Runs real processes. Host paths are joined under `root` (`/` normally; a simulated host's root in tests).
#[derive(Debug, Clone)]
pub struct SystemRunner {
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl SystemRunner {
    /// A runner on the real host.
    pub fn new() -> SystemRunner {
        SystemRunner::with_root("/")
    }

    /// A runner whose file paths live under `root`.
    pub fn with_root(root: impl Into<PathBuf>) -> SystemRunner {
        // NO_COLOR keeps Bastille's output free of ANSI codes even where it thinks it has a terminal.
        SystemRunner {
            root: root.into(),
            env: vec![("NO_COLOR".into(), "1".into())],
        }
    }

    /// The host path `path` as a local path.
    pub fn local(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Default for SystemRunner {
    fn default() -> Self {
        SystemRunner::new()
    }
}

impl Runner for SystemRunner {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
        tracing::debug!(argv = ?argv, "run");
        let out = Command::new(program)
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RunError::Spawn {
                program: program.clone(),
                source,
            })?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn read_file(&self, path: &str) -> Result<Option<String>, RunError> {
        match std::fs::read(self.local(path)) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RunError::File {
                op: "read",
                path: path.to_string(),
                source,
            }),
        }
    }

    fn write_file(&self, path: &str, mode: u32, content: &str) -> Result<(), RunError> {
        let target = self.local(path);
        let err = |source| RunError::File {
            op: "write",
            path: path.to_string(),
            source,
        };
        write_atomic(&target, mode, content.as_bytes()).map_err(err)
    }

    fn mode(&self, path: &str) -> Result<Option<u32>, RunError> {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(self.local(path)) {
            Ok(m) => Ok(Some(m.permissions().mode() & 0o7777)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RunError::File {
                op: "read",
                path: path.to_string(),
                source,
            }),
        }
    }
}

/// Writes `bytes` to `target` through a synced temp file in the same directory and a rename, so a crash leaves
/// either the old or the new file, never a torn one.
pub fn write_atomic(target: &Path, mode: u32, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = target.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir)?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("file");
    let tmp = dir.join(format!(".{name}.warden-tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, target)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// One call a [`RecordingRunner`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A command.
    Run(Vec<String>),
    /// A file write.
    Write(String, u32, String),
}

/// Records calls instead of touching a host; commands succeed with empty output unless told otherwise.
#[derive(Debug, Default)]
pub struct RecordingRunner {
    calls: Mutex<Vec<Call>>,
    files: Mutex<std::collections::BTreeMap<String, String>>,
    failing: Mutex<Vec<String>>,
}

impl RecordingRunner {
    /// A runner with no files and no failures.
    pub fn new() -> RecordingRunner {
        RecordingRunner::default()
    }

    /// Makes every command whose program is `program` exit 1.
    pub fn fail_program(&self, program: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(program.to_string());
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Runner for RecordingRunner {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        if argv.is_empty() {
            return Err(RunError::Empty);
        }
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call::Run(argv.to_vec()));
        let fails = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&argv[0]);
        Ok(Output {
            status: i32::from(fails),
            stdout: String::new(),
            stderr: if fails {
                "failed".into()
            } else {
                String::new()
            },
        })
    }

    fn read_file(&self, path: &str) -> Result<Option<String>, RunError> {
        Ok(self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned())
    }

    fn write_file(&self, path: &str, mode: u32, content: &str) -> Result<(), RunError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call::Write(path.to_string(), mode, content.to_string()));
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_string(), content.to_string());
        Ok(())
    }

    fn mode(&self, path: &str) -> Result<Option<u32>, RunError> {
        Ok(self
            .files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(path)
            .then_some(0o644))
    }
}
