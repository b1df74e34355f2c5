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

    /// Runs `argv` like [`Runner::run`], keeping at most `cap` bytes of stdout and stderr together; true when
    /// the command wrote more. A runner of real processes kills the command (SIGKILL) as soon as it goes over,
    /// so a chatty command cannot fill memory; this default (for stand-ins) runs it to the end and cuts after.
    fn run_capped(&self, argv: &[String], cap: u64) -> Result<(Output, bool), RunError> {
        let mut out = self.run(argv)?;
        let over = cut_to_cap(&mut out, cap);
        Ok((out, over))
    }
}

/// Cuts `out`'s stdout, then its stderr, so together they hold at most `cap` bytes (at character
/// boundaries); true when anything was cut.
pub fn cut_to_cap(out: &mut Output, cap: u64) -> bool {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    if out.stdout.len().saturating_add(out.stderr.len()) <= cap {
        return false;
    }
    let cut = |s: &mut String, max: usize| {
        if s.len() > max {
            let mut at = max;
            while !s.is_char_boundary(at) {
                at -= 1;
            }
            s.truncate(at);
        }
    };
    cut(&mut out.stdout, cap);
    cut(&mut out.stderr, cap - out.stdout.len());
    true
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

impl SystemRunner {
    /// `argv` as a command with this runner's environment and stdin from `/dev/null`.
    fn command(&self, argv: &[String]) -> Result<(Command, String), RunError> {
        let (program, args) = argv.split_first().ok_or(RunError::Empty)?;
        let mut c = Command::new(program);
        c.args(args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        Ok((c, program.clone()))
    }
}

/// Reads `stream` on its own thread, taking from the shared `budget`; sends `(idx, kept bytes, went over)`.
/// Not scoped: after a kill, a process the command left behind may hold the pipe open (until the jail is
/// removed); the thread then ends on its own and nobody waits for it.
fn spawn_capped_reader(
    idx: usize,
    mut stream: impl std::io::Read + Send + 'static,
    budget: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tx: std::sync::mpsc::Sender<(usize, Vec<u8>, bool)>,
) {
    use std::sync::atomic::Ordering;
    std::thread::spawn(move || {
        let (mut kept, mut chunk) = (Vec::new(), vec![0u8; 64 * 1024]);
        let over = loop {
            let n = match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break false,
                Ok(n) => n as u64,
            };
            let took = budget
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                    Some(b.saturating_sub(n))
                })
                .unwrap_or(0);
            kept.extend_from_slice(&chunk[..took.min(n) as usize]);
            if n > took {
                break true;
            }
        };
        let _ = tx.send((idx, kept, over));
    });
}

impl Runner for SystemRunner {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        let (mut command, program) = self.command(argv)?;
        tracing::debug!(argv = ?argv, "run");
        let out = command
            .output()
            .map_err(|source| RunError::Spawn { program, source })?;
        Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn run_capped(&self, argv: &[String], cap: u64) -> Result<(Output, bool), RunError> {
        use std::sync::atomic::AtomicU64;
        use std::sync::{mpsc, Arc};
        let (mut command, program) = self.command(argv)?;
        tracing::debug!(argv = ?argv, cap, "run (output capped)");
        let spawned = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = spawned.map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
        // Both streams draw on one budget; a reader that finds it spent says so and stops reading.
        let budget = Arc::new(AtomicU64::new(cap));
        let (tx, rx) = mpsc::channel::<(usize, Vec<u8>, bool)>();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // Both are piped, so both are there.
        if let (Some(stdout), Some(stderr)) = (stdout, stderr) {
            spawn_capped_reader(0, stdout, budget.clone(), tx.clone());
            spawn_capped_reader(1, stderr, budget, tx.clone());
        }
        drop(tx);
        let (mut kept, mut over, mut done) = ([Vec::new(), Vec::new()], false, 0);
        while done < 2 {
            // After a kill, give the other stream a moment to end, not forever.
            let next = if over {
                rx.recv_timeout(std::time::Duration::from_secs(1)).ok()
            } else {
                rx.recv().ok()
            };
            let Some((idx, bytes, went_over)) = next else {
                break;
            };
            kept[idx] = bytes;
            done += 1;
            if went_over && !over {
                over = true;
                let _ = child.kill();
            }
        }
        let status = child
            .wait()
            .map_err(|source| RunError::Spawn { program, source })?;
        let mut out = Output {
            status: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&kept[0]).into_owned(),
            stderr: String::from_utf8_lossy(&kept[1]).into_owned(),
        };
        // Lossy decoding may have grown a cut character into U+FFFD: cut again to the exact cap.
        cut_to_cap(&mut out, cap);
        Ok((out, over))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    #[test]
    fn a_command_under_the_cap_keeps_all_its_output_and_status() {
        let (out, over) = SystemRunner::new()
            .run_capped(&sh("echo out; echo err >&2; exit 3"), 100)
            .unwrap();
        assert!(!over);
        assert_eq!(
            (out.status, out.stdout.as_str(), out.stderr.as_str()),
            (3, "out\n", "err\n")
        );
    }

    #[test]
    fn an_endless_writer_is_killed_at_the_cap_even_when_it_left_a_child_on_the_pipes() {
        let t = Instant::now();
        // `sleep` keeps both pipes open after `yes` is killed: the run must not wait for it.
        let (out, over) = SystemRunner::new()
            .run_capped(&sh("sleep 3 & exec yes"), 10_000)
            .unwrap();
        assert!(over);
        assert_eq!(out.stdout.len() + out.stderr.len(), 10_000);
        assert!(out.stdout.starts_with("y\ny\n"));
        assert_eq!(out.status, -1, "killed by a signal");
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    }

    #[test]
    fn both_streams_share_one_budget() {
        let (out, over) = SystemRunner::new()
            .run_capped(&sh("echo 0123456789; echo abcdefghij >&2; sleep 0.2"), 15)
            .unwrap();
        assert!(over);
        assert!(out.stdout.len() + out.stderr.len() <= 15, "{out:?}");
        let mut exact = Output {
            stdout: "0123456789\n".into(),
            stderr: "abcdefghij\n".into(),
            ..Output::default()
        };
        assert!(cut_to_cap(&mut exact, 15));
        assert_eq!(
            (exact.stdout.as_str(), exact.stderr.as_str()),
            ("0123456789\n", "abcd")
        );
        assert!(!cut_to_cap(&mut exact, 15));
    }
}
