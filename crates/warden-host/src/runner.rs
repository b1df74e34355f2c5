//! The one way Warden touches a host: run an argv, read a file, write a file. A [`RecordingRunner`] stands in
//! for tests of ordering and idempotency without root.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

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
    /// The command ran past its deadline; it and its process group were killed.
    #[error("`{command}` did not finish within {} and was killed (with its process group)\n  fix: run it by hand to see why it hangs; if it only needs longer, raise setup.command_timeout (setup.install_timeout for installs, downloads and jail creation)", secs(.deadline))]
    Timeout {
        /// The command line.
        command: String,
        /// How long it was given.
        deadline: Duration,
    },
}

/// `d` as the config writes it: whole seconds, else milliseconds.
fn secs(d: &Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// How long a host command may run before it is killed, by kind: installs, downloads, builds and jail
/// creation are slow; everything else (queries, interfaces, firewall, services, files) is quick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Any other command.
    pub quick: Duration,
    /// A command with one of [`SLOW_WORDS`] among its words.
    pub slow: Duration,
}

/// Words that make a command slow wherever they stand in its argv (the program may be wrapped in `env`,
/// `jexec JAIL` or `warden jail exec`): package managers, downloads, release bootstraps, jail and cluster
/// creation.
pub const SLOW_WORDS: [&str; 13] = [
    "pkg",
    "apt-get",
    "apt",
    "npm",
    "pip",
    "pip3",
    "bootstrap",
    "debootstrap",
    "create",
    "fetch",
    "download",
    "initdb",
    "freebsd-update",
];

impl Default for Deadlines {
    /// Five minutes for a quick command, an hour for a slow one.
    fn default() -> Self {
        Deadlines {
            quick: Duration::from_secs(300),
            slow: Duration::from_secs(3600),
        }
    }
}

impl Deadlines {
    /// The deadline of `argv`'s kind.
    pub fn of(&self, argv: &[String]) -> Duration {
        let slow = argv.iter().any(|w| {
            let base = w.rsplit('/').next().unwrap_or(w);
            SLOW_WORDS.contains(&base)
        });
        if slow {
            self.slow
        } else {
            self.quick
        }
    }
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
    /// Removes a host file or directory tree; a path already gone is not an error.
    fn remove(&self, path: &str) -> Result<(), RunError> {
        Err(RunError::File {
            op: "remove",
            path: path.to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "this runner removes no files",
            ),
        })
    }

    /// Runs `argv` like [`Runner::run`], keeping at most `cap` bytes of stdout and stderr together; true when
    /// the command wrote more. A runner of real processes kills the command (SIGKILL) as soon as it goes over,
    /// so a chatty command cannot fill memory; this default (for stand-ins) runs it to the end and cuts after.
    fn run_capped(&self, argv: &[String], cap: u64) -> Result<(Output, bool), RunError> {
        let mut out = self.run(argv)?;
        let over = cut_to_cap(&mut out, cap);
        Ok((out, over))
    }

    /// Runs `argv` like [`Runner::run_capped`] with `deadline` in place of the runner's own deadline for its kind:
    /// `None` for none, where the caller ends the command itself (a FreeBSD worker's turn, which has its own
    /// timeout and cancel). This default (for stand-ins) is [`Runner::run_capped`].
    fn run_until(
        &self,
        argv: &[String],
        cap: u64,
        deadline: Option<Duration>,
    ) -> Result<(Output, bool), RunError> {
        let _ = deadline;
        self.run_capped(argv, cap)
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
    deadlines: Deadlines,
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
            deadlines: Deadlines::default(),
        }
    }

    /// The same runner with `deadlines` for its commands.
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> SystemRunner {
        self.deadlines = deadlines;
        self
    }

    /// The host path `path` as a local path. A path already under `root` is taken as it is (the convention of
    /// a simulated host's tools): Warden's state directory on such a host lives under its root, and both
    /// Warden's own file access and the runner's must reach the same directory.
    pub fn local(&self, path: &str) -> PathBuf {
        if Path::new(path).starts_with(&self.root) {
            return PathBuf::from(path);
        }
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

/// Reads `stream` on its own thread, taking from the shared `budget`; sends `(idx, kept bytes, went over)` as
/// an [`Event::Stream`].
/// Not scoped: after a kill, a process the command left behind may hold the pipe open (until the jail is
/// removed); the thread then ends on its own and nobody waits for it.
fn spawn_capped_reader(
    idx: usize,
    mut stream: impl std::io::Read + Send + 'static,
    budget: std::sync::Arc<std::sync::atomic::AtomicU64>,
    tx: std::sync::mpsc::Sender<Event>,
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
        let _ = tx.send(Event::Stream(idx, kept, over));
    });
}

/// What the threads of one [`SystemRunner::exec`] report.
enum Event {
    /// A stream ended: its index (0 stdout, 1 stderr), the bytes kept, whether it went over the cap.
    Stream(usize, Vec<u8>, bool),
    /// The command exited.
    Exit(std::io::Result<ExitStatus>),
}

/// How long, after a kill, the pipes may take to close: a process outside the group may hold them open.
const AFTER_KILL: Duration = Duration::from_secs(1);

/// SIGKILL to every process of the group `pgid` (the command and whatever it started in its group).
fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pgid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

impl SystemRunner {
    /// Runs `argv` in a process group of its own, keeping at most `cap` bytes of output; kills the group when it
    /// goes over (true in the answer) or when `deadline` passes (a [`RunError::Timeout`]).
    fn exec(
        &self,
        argv: &[String],
        cap: u64,
        deadline: Option<Duration>,
    ) -> Result<(Output, bool), RunError> {
        use std::sync::atomic::AtomicU64;
        use std::sync::{mpsc, Arc};
        let (mut command, program) = self.command(argv)?;
        tracing::debug!(argv = ?argv, cap, ?deadline, "run");
        let end = deadline.map(|d| Instant::now() + d);
        let spawned = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        let mut child = spawned.map_err(|source| RunError::Spawn {
            program: program.clone(),
            source,
        })?;
        let group = child.id();
        // Both streams draw on one budget; a reader that finds it spent says so and stops reading.
        let budget = Arc::new(AtomicU64::new(cap));
        let (tx, rx) = mpsc::channel::<Event>();
        let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
        // Both are piped, so both are there.
        if let (Some(stdout), Some(stderr)) = (stdout, stderr) {
            spawn_capped_reader(0, stdout, budget.clone(), tx.clone());
            spawn_capped_reader(1, stderr, budget, tx.clone());
        }
        std::thread::spawn(move || {
            let _ = tx.send(Event::Exit(child.wait()));
        });
        let (mut kept, mut streams, mut status) = ([Vec::new(), Vec::new()], 0, None);
        let (mut over, mut timed_out, mut killed_at) = (false, false, None::<Instant>);
        while status.is_none() || streams < 2 {
            let wake = killed_at.map(|k| k + AFTER_KILL).or(end);
            let event = match wake {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(e) => Some(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(e) => Some(e),
                    Err(_) => break,
                },
            };
            match event {
                Some(Event::Stream(idx, bytes, went_over)) => {
                    kept[idx] = bytes;
                    streams += 1;
                    if went_over && killed_at.is_none() {
                        over = true;
                        kill_group(group);
                        killed_at = Some(Instant::now());
                    }
                }
                Some(Event::Exit(s)) => status = Some(s),
                // Killed a moment ago and still not all closed: stop waiting for it.
                None if killed_at.is_some() => break,
                None => {
                    timed_out = true;
                    kill_group(group);
                    killed_at = Some(Instant::now());
                }
            }
        }
        if let (true, Some(deadline)) = (timed_out, deadline) {
            return Err(RunError::Timeout {
                command: warden_core::plan::shell_words(argv),
                deadline,
            });
        }
        let code = match status {
            Some(Ok(s)) => s.code().unwrap_or(-1),
            Some(Err(source)) => return Err(RunError::Spawn { program, source }),
            None => -1,
        };
        let mut out = Output {
            status: code,
            stdout: String::from_utf8_lossy(&kept[0]).into_owned(),
            stderr: String::from_utf8_lossy(&kept[1]).into_owned(),
        };
        // Lossy decoding may have grown a cut character into U+FFFD: cut again to the exact cap.
        cut_to_cap(&mut out, cap);
        Ok((out, over))
    }
}

impl Runner for SystemRunner {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        let deadline = self.deadlines.of(argv);
        self.exec(argv, u64::MAX, Some(deadline))
            .map(|(out, _)| out)
    }

    fn run_capped(&self, argv: &[String], cap: u64) -> Result<(Output, bool), RunError> {
        self.exec(argv, cap, Some(self.deadlines.of(argv)))
    }

    fn run_until(
        &self,
        argv: &[String],
        cap: u64,
        deadline: Option<Duration>,
    ) -> Result<(Output, bool), RunError> {
        self.exec(argv, cap, deadline)
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

    fn remove(&self, path: &str) -> Result<(), RunError> {
        let local = self.local(path);
        // symlink_metadata: a link is removed itself, never followed into its target's tree.
        let removed = match std::fs::symlink_metadata(&local) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&local),
            Ok(_) => std::fs::remove_file(&local),
            Err(e) => Err(e),
        };
        match removed {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(RunError::File {
                op: "remove",
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
    /// A removal (file or tree).
    Remove(String),
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

    fn remove(&self, path: &str) -> Result<(), RunError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call::Remove(path.to_string()));
        self.files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
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
    fn host_paths_are_joined_under_the_root_once() {
        let r = SystemRunner::with_root("/sim/root");
        assert_eq!(r.local("/etc/rc.conf"), Path::new("/sim/root/etc/rc.conf"));
        // Already on the simulated host (Warden's state directory there): not rooted twice.
        assert_eq!(
            r.local("/sim/root/var/db/warden/pi"),
            Path::new("/sim/root/var/db/warden/pi")
        );
        // A sibling whose name only starts like the root is not under it.
        assert_eq!(r.local("/sim/rootx/a"), Path::new("/sim/root/sim/rootx/a"));
        assert_eq!(SystemRunner::new().local("/etc/x"), Path::new("/etc/x"));
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

    /// A runner whose quick commands get `quick` and slow ones half a minute.
    fn quick(quick: Duration) -> SystemRunner {
        SystemRunner::new().with_deadlines(Deadlines {
            quick,
            slow: Duration::from_secs(30),
        })
    }

    /// Whether `pid` has exited (gone, or a zombie waiting for its new parent to reap it).
    fn exited(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
            Err(_) => true,
        }
    }

    #[test]
    fn a_command_past_its_deadline_is_killed_with_its_process_group_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 60 & echo $! > {}; sleep 60", pidfile.display());
        let t = Instant::now();
        let err = quick(Duration::from_secs(1)).run(&sh(&script)).unwrap_err();
        let took = t.elapsed();
        assert!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(10),
            "{took:?}"
        );
        let msg = err.to_string();
        assert!(matches!(err, RunError::Timeout { .. }), "{msg}");
        assert!(msg.starts_with("`sh -c 'sleep 60 & echo"), "{msg}");
        assert!(msg.contains("did not finish within 1s"), "{msg}");
        assert!(
            msg.contains("fix: ") && msg.contains("setup.command_timeout"),
            "{msg}"
        );
        // The background sleep was in the command's group: killed too, not left running for a minute.
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let pid = pid.trim();
        let t = Instant::now();
        while !exited(pid) {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "sleep {pid} still runs"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_capped_run_has_the_deadline_too_and_a_sub_second_one_reads_in_ms() {
        let err = quick(Duration::from_millis(300))
            .run_capped(&sh("sleep 30"), 100)
            .unwrap_err();
        assert!(err.to_string().contains("within 300ms"), "{err}");
    }

    #[test]
    fn slow_commands_get_the_slow_deadline_and_run_until_none_has_none() {
        let runner = quick(Duration::from_millis(500));
        // `create` among the words (here sh's $0) makes it slow: 30 s.
        let argv: Vec<String> = ["sh", "-c", "sleep 1", "create"].map(String::from).to_vec();
        assert_eq!(runner.run(&argv).unwrap().status, 0);
        let (out, over) = runner
            .run_until(&sh("sleep 1; echo done"), 100, None)
            .unwrap();
        assert_eq!((out.stdout.as_str(), over), ("done\n", false));
        let d = Deadlines::default();
        for (argv, slow) in [
            (
                &["env", "ASSUME_ALWAYS_YES=yes", "pkg", "install", "-y", "x"][..],
                true,
            ),
            (
                &["jexec", "-l", "j", "python3.11", "-m", "pip", "download"],
                true,
            ),
            (&["/usr/bin/npm", "install"], true),
            (&["bastille", "bootstrap", "15.0-RELEASE"], true),
            (&["warden", "jail", "create", "x"], true),
            (&["service", "postgresql", "initdb"], true),
            (&["ip", "link", "set", "warden0", "up"], false),
            (&["sysrc", "pf_enable=YES"], false),
            (&["service", "dnsmasq", "start"], false),
            (&["/tmp/pkgs/tool"], false),
        ] {
            let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
            let want = if slow { d.slow } else { d.quick };
            assert_eq!(d.of(&argv), want, "{argv:?}");
        }
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
