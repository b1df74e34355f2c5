//! Applies a plan exactly as shown: each action journaled before and after, its verification command run
//! afterwards (Bastille's exit codes are not reliable), and the first failure stops the run.

use warden_core::{Action, Op, Plan};

use crate::journal::{Journal, JournalError};
use crate::runner::{RunError, Runner};

/// Progress reports; the CLI draws them, the server logs them.
pub trait Progress {
    /// Action `index` of `total` is starting.
    fn start(&mut self, index: usize, total: usize, action: &Action);
    /// It finished (`ok` or not).
    fn finish(&mut self, index: usize, total: usize, action: &Action, ok: bool);
}

/// Reports nothing.
pub struct SilentProgress;

impl Progress for SilentProgress {
    fn start(&mut self, _: usize, _: usize, _: &Action) {}
    fn finish(&mut self, _: usize, _: usize, _: &Action, _: bool) {}
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    /// The journal's run id.
    pub run: i64,
    /// How many actions ran.
    pub applied: usize,
}

/// Why an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The journal failed; nothing further was run.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A command could not be started or a file not written.
    #[error("action {index} ({summary}) could not run: {source}")]
    Run {
        /// 1-based position in the plan.
        index: usize,
        /// The action's summary.
        summary: String,
        /// Why.
        source: RunError,
    },
    /// A command exited non-zero, or its verification failed.
    #[error("action {index} failed: {summary}\n  command: {command}\n  exit status {status}; stderr: {stderr}\n  fix: correct the cause above and run the same `warden setup` or `warden teardown` again; it continues from here")]
    Failed {
        /// 1-based position in the plan.
        index: usize,
        /// The action's summary.
        summary: String,
        /// The command that failed (the action or its verification).
        command: String,
        /// Its exit status.
        status: i32,
        /// What it printed on stderr (last lines).
        stderr: String,
    },
}

/// Applies `plan` on `runner`, journaling into `journal` under `backend`'s name.
pub fn apply(
    plan: &Plan,
    runner: &dyn Runner,
    journal: &Journal,
    backend: &str,
    progress: &mut dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    apply_from(plan, 0, runner, journal, backend, progress)
}

/// [`apply`] for the part of a setup that follows `before` already applied actions: positions (journal,
/// progress, messages, crash hooks) count on from there, so a setup applied in phases reads as one plan.
pub fn apply_from(
    plan: &Plan,
    before: usize,
    runner: &dyn Runner,
    journal: &Journal,
    backend: &str,
    progress: &mut dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    journal.close_interrupted()?;
    let run = journal.begin_run(backend)?;
    let total = before + plan.actions.len();
    for (i, action) in plan.actions.iter().enumerate() {
        let i = before + i;
        let index = i + 1;
        journal.started(run, i, action)?;
        progress.start(index, total, action);
        let result = run_one(runner, action);
        let (ok, detail) = match &result {
            Ok(()) => (true, String::new()),
            Err(e) => (false, e.to_string()),
        };
        journal.finished(run, i, ok, &detail)?;
        progress.finish(index, total, action, ok);
        if let Err(failure) = result {
            journal.end_run(run, "failed")?;
            return Err(match failure {
                OneError::Run(source) => ApplyError::Run {
                    index,
                    summary: action.summary.clone(),
                    source,
                },
                OneError::Status {
                    command,
                    status,
                    stderr,
                } => ApplyError::Failed {
                    index,
                    summary: action.summary.clone(),
                    command,
                    status,
                    stderr,
                },
            });
        }
    }
    journal.end_run(run, "complete")?;
    Ok(ApplyReport {
        run,
        applied: plan.actions.len(),
    })
}

enum OneError {
    Run(RunError),
    Status {
        command: String,
        status: i32,
        stderr: String,
    },
}

impl std::fmt::Display for OneError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OneError::Run(e) => write!(f, "{e}"),
            OneError::Status {
                command,
                status,
                stderr,
            } => write!(f, "{command}: exit {status}: {stderr}"),
        }
    }
}

fn run_one(runner: &dyn Runner, action: &Action) -> Result<(), OneError> {
    match &action.op {
        Op::Argv(argv) => check(runner, argv)?,
        Op::Remove(path) => runner.remove(path).map_err(OneError::Run)?,
        Op::File(f) => {
            let mode = u32::from_str_radix(f.mode.trim_start_matches("0o"), 8).unwrap_or(0o644);
            runner
                .write_file(&f.path, mode, &f.content)
                .map_err(OneError::Run)?;
        }
    }
    if let Some(verify) = &action.verify {
        check(runner, verify)?;
    }
    Ok(())
}

fn check(runner: &dyn Runner, argv: &[String]) -> Result<(), OneError> {
    let out = runner.run(argv).map_err(OneError::Run)?;
    if out.ok() {
        Ok(())
    } else {
        let tail: Vec<&str> = out.stderr.lines().rev().take(5).collect();
        let stderr = tail.into_iter().rev().collect::<Vec<_>>().join(" | ");
        Err(OneError::Status {
            command: warden_core::plan::shell_words(argv),
            status: out.status,
            stderr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Call, RecordingRunner};
    use warden_core::{Action, Step};

    fn plan() -> Plan {
        Plan {
            actions: vec![
                Action::file(Step::Host, "write", "/etc/x", "0644", "x\n".into()),
                Action::run(Step::Host, "one", &["true"]).verified_by(&["check"]),
                Action::run(Step::Dns, "two", &["false"]),
                Action::run(Step::Dns, "three", &["never"]),
            ],
            notes: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn stops_at_first_failure_and_journals_it() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let runner = RecordingRunner::new();
        runner.fail_program("false");
        let err = apply(&plan(), &runner, &journal, "test", &mut SilentProgress).unwrap_err();
        assert!(matches!(err, ApplyError::Failed { index: 3, .. }), "{err}");
        assert_eq!(
            runner.calls(),
            vec![
                Call::Write("/etc/x".into(), 0o644, "x\n".into()),
                Call::Run(vec!["true".into()]),
                Call::Run(vec!["check".into()]),
                Call::Run(vec!["false".into()]),
            ]
        );
        let states: Vec<String> = journal
            .entries(1)
            .unwrap()
            .into_iter()
            .map(|e| e.state)
            .collect();
        assert_eq!(states, ["done", "done", "failed"]);
        assert!(journal.interrupted().unwrap().is_empty());
    }

    #[test]
    fn failed_verification_fails_the_action() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("j.db")).unwrap();
        let runner = RecordingRunner::new();
        runner.fail_program("check");
        let err = apply(&plan(), &runner, &journal, "test", &mut SilentProgress).unwrap_err();
        assert!(
            matches!(err, ApplyError::Failed { index: 2, ref command, .. } if command == "check"),
            "{err}"
        );
    }
}
