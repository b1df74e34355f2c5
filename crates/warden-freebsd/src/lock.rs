//! The global Bastille lock: one `bastille` process at a time, across threads and processes.
//!
//! Every `bastille list` (which nearly every subcommand runs internally) starts with `rm -rf /tmp/bastille-list-*`,
//! so concurrent invocations break each other's output (reference/bastille.md §4.5). [`BastilleLock`] wraps a
//! runner and holds an exclusive `flock` on a lock file in Warden's state directory for the whole of each
//! `bastille` command; every other command passes straight through.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use warden_host::{Output, RunError, Runner};

/// A runner that serialises `bastille` invocations with a file lock.
#[derive(Debug)]
pub struct BastilleLock<R> {
    inner: R,
    lock_path: PathBuf,
}

impl<R: Runner> BastilleLock<R> {
    /// Wraps `inner`; the lock file is `state_dir/bastille.lock` (a local path, created on first use).
    pub fn new(inner: R, state_dir: &Path) -> BastilleLock<R> {
        BastilleLock {
            inner,
            lock_path: state_dir.join("bastille.lock"),
        }
    }

    /// The wrapped runner.
    pub fn inner(&self) -> &R {
        &self.inner
    }

    /// The lock file's path.
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    fn lock(&self) -> Result<Held, RunError> {
        let err = |source| RunError::File {
            op: "lock",
            path: self.lock_path.display().to_string(),
            source,
        };
        if let Some(dir) = self.lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        // A fresh open per call: flock locks belong to the open file description, so two threads of this process
        // exclude each other exactly as two processes do.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.lock_path)
            .map_err(err)?;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Ok(held) => return Ok(Held(held)),
                // A signal interrupted the wait: wait again.
                Err((f, Errno::EINTR)) => file = f,
                Err((_, e)) => return Err(err(std::io::Error::from(e))),
            }
        }
    }
}

/// A held lock; released when dropped (also when the process dies).
struct Held(#[allow(dead_code)] Flock<File>);

/// Whether `program` is Bastille (`bastille` or a path ending in `/bastille`).
pub fn is_bastille(program: &str) -> bool {
    Path::new(program)
        .file_name()
        .is_some_and(|n| n == "bastille")
}

impl<R: Runner> BastilleLock<R> {
    /// Runs `f` holding the lock when `argv` is a Bastille command.
    fn serialised<T>(
        &self,
        argv: &[String],
        f: impl FnOnce() -> Result<T, RunError>,
    ) -> Result<T, RunError> {
        let program = argv.first().ok_or(RunError::Empty)?;
        let _held = if is_bastille(program) {
            Some(self.lock()?)
        } else {
            None
        };
        f()
    }
}

impl<R: Runner> Runner for BastilleLock<R> {
    fn run(&self, argv: &[String]) -> Result<Output, RunError> {
        self.serialised(argv, || self.inner.run(argv))
    }

    fn run_capped(&self, argv: &[String], cap: u64) -> Result<(Output, bool), RunError> {
        // The inner runner's own capping (a real one kills the command at the cap): never the default's.
        self.serialised(argv, || self.inner.run_capped(argv, cap))
    }

    fn run_until(
        &self,
        argv: &[String],
        cap: u64,
        deadline: Option<std::time::Duration>,
    ) -> Result<(Output, bool), RunError> {
        self.serialised(argv, || self.inner.run_until(argv, cap, deadline))
    }

    fn read_file(&self, path: &str) -> Result<Option<String>, RunError> {
        self.inner.read_file(path)
    }

    fn write_file(&self, path: &str, mode: u32, content: &str) -> Result<(), RunError> {
        self.inner.write_file(path, mode, content)
    }

    fn mode(&self, path: &str) -> Result<Option<u32>, RunError> {
        self.inner.mode(path)
    }

    fn remove(&self, path: &str) -> Result<(), RunError> {
        self.inner.remove(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    /// Counts how many commands of each kind run at once.
    #[derive(Default)]
    struct Overlap {
        active: AtomicUsize,
        max_bastille: AtomicUsize,
        max_other: AtomicUsize,
    }

    struct Counting(Arc<Overlap>);

    impl Runner for Counting {
        fn run(&self, argv: &[String]) -> Result<Output, RunError> {
            let c = &self.0;
            let now = c.active.fetch_add(1, Ordering::SeqCst) + 1;
            let max = if is_bastille(&argv[0]) {
                &c.max_bastille
            } else {
                &c.max_other
            };
            max.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(30));
            c.active.fetch_sub(1, Ordering::SeqCst);
            Ok(Output::default())
        }
        fn read_file(&self, _: &str) -> Result<Option<String>, RunError> {
            Ok(None)
        }
        fn write_file(&self, _: &str, _: u32, _: &str) -> Result<(), RunError> {
            Ok(())
        }
        fn mode(&self, _: &str) -> Result<Option<u32>, RunError> {
            Ok(None)
        }
    }

    fn hammer(program: &str) -> Arc<Overlap> {
        let dir = tempfile::tempdir().unwrap();
        let counts = Arc::new(Overlap::default());
        let runner = BastilleLock::new(Counting(counts.clone()), &dir.path().join("state"));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| runner.run(&[program.to_string(), "list".into()]).unwrap());
            }
        });
        assert!(runner.lock_path().exists() == is_bastille(program));
        counts
    }

    #[test]
    fn bastille_runs_one_at_a_time() {
        let counts = hammer("/usr/local/bin/bastille");
        assert_eq!(counts.max_bastille.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn other_tools_are_not_serialised() {
        let counts = hammer("jls");
        assert!(
            counts.max_other.load(Ordering::SeqCst) > 1,
            "jls calls should overlap"
        );
    }

    #[test]
    fn names() {
        assert!(is_bastille("bastille") && is_bastille("/usr/local/bin/bastille"));
        assert!(!is_bastille("bastille2") && !is_bastille("jexec"));
    }
}
