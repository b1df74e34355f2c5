//! The setup flow: plan → apply (journaled) → observe again and confirm nothing is left for the chosen steps.
//!
//! The last part is not optional: Bastille's exit codes lie (reference/bastille.md §4.1, §8.2), so "every action
//! exited 0" proves little; only a fresh observation that plans nothing proves the host converged.

use crate::apply::{apply, apply_from, ApplyError, ApplyReport, Progress};
use crate::backend::{Backend, HostError};
use crate::journal::{Journal, JournalError};
use warden_core::plan::TeardownOptions;
use warden_core::{Layout, Plan, Step};

/// What a setup run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupReport {
    /// One sentence per earlier run that was interrupted (resumed by this one).
    pub resumed: Vec<String>,
    /// The plan that was applied (already filtered to the chosen steps).
    pub plan: Plan,
    /// The journal's id of this run.
    pub run: i64,
    /// How many actions ran.
    pub applied: usize,
}

/// Why setup stopped.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Observing or planning failed.
    #[error("failed to plan: {0}")]
    Plan(#[source] HostError),
    /// An action failed; the journal holds where.
    #[error("{0}")]
    Apply(#[from] ApplyError),
    /// The journal could not be read.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// A chosen step needs something setup does not do (nothing was changed).
    #[error("cannot run: the host lacks what these steps need (nothing was changed):\n{0}")]
    Blocked(String),
    /// Every action ran, yet the host still differs (a tool reported success falsely).
    #[error("{verb} ran every action but the host still differs in {count} place(s):\n{remaining}\n  fix: the tools above reported success without doing it; check their logs and run `warden {verb}` again")]
    NotConverged {
        /// `setup` or `teardown`.
        verb: String,
        /// How many actions a fresh plan still has.
        count: usize,
        /// Those actions, one per line.
        remaining: String,
    },
}

/// Keeps the actions (and blockers) of `steps` (all steps when `steps` is empty).
pub fn filter_steps(plan: Plan, steps: &[Step]) -> Plan {
    plan.only_steps(steps)
}

/// Reports the runs the journal shows as interrupted, in the words the operator sees.
pub fn interrupted_runs(journal: &Journal) -> Result<Vec<String>, JournalError> {
    let mut out = Vec::new();
    for (run, last) in journal.interrupted()? {
        out.push(match last {
            Some(e) if e.state == "started" => format!(
                "resuming after an interrupted run: action {} ({}) was started but not confirmed",
                e.seq + 1,
                e.summary
            ),
            Some(e) => format!(
                "resuming after an interrupted run: it stopped after action {} ({}), which was {}",
                e.seq + 1,
                e.summary,
                e.state
            ),
            None => {
                format!("resuming after an interrupted run ({run}) that had not started any action")
            }
        });
    }
    Ok(out)
}

/// Plans `steps` (all when empty) on `backend`, applies them, and confirms a second plan is empty.
///
/// The steps after `jails` observe inside the jails, which the `jails` step creates or starts: when it has
/// something to do, they are planned again once it is done (a stopped db jail kept by `warden teardown` holds
/// its cluster, which only a running jail shows).
pub fn setup(
    backend: &dyn Backend,
    layout: &Layout,
    steps: &[Step],
    journal: &Journal,
    progress: &mut dyn Progress,
) -> Result<SetupReport, SetupError> {
    converge(
        backend,
        journal,
        progress,
        "setup",
        &|| Ok(filter_steps(backend.plan(layout)?, steps)),
        Some(&|| {
            let rest: Vec<Step> = Step::ALL
                .into_iter()
                .filter(|s| *s > Step::Jails && (steps.is_empty() || steps.contains(s)))
                .collect();
            if rest.is_empty() {
                return Ok(Plan::default());
            }
            Ok(filter_steps(backend.plan(layout)?, &rest))
        }),
    )
}

/// Plans the reverse of every step on `backend` (`warden teardown`), applies it through the same journal, and
/// confirms a second teardown plan is empty. A crashed teardown is finished by the next one, which observes
/// what is left.
pub fn teardown(
    backend: &dyn Backend,
    layout: &Layout,
    options: &TeardownOptions,
    journal: &Journal,
    progress: &mut dyn Progress,
) -> Result<SetupReport, SetupError> {
    converge(
        backend,
        journal,
        progress,
        "teardown",
        &|| backend.teardown_plan(layout, options),
        None,
    )
}

/// Plans with `make_plan`, applies the plan, and plans again: anything left is [`SetupError::NotConverged`].
/// With `after_jails` (setup), the steps after `jails` are applied as `after_jails` plans them once the `jails`
/// step's actions are done.
fn converge(
    backend: &dyn Backend,
    journal: &Journal,
    progress: &mut dyn Progress,
    verb: &str,
    make_plan: &dyn Fn() -> Result<Plan, HostError>,
    after_jails: Option<&dyn Fn() -> Result<Plan, HostError>>,
) -> Result<SetupReport, SetupError> {
    let resumed = interrupted_runs(journal)?;
    for line in &resumed {
        tracing::warn!("{line}");
    }
    let mut plan = make_plan().map_err(SetupError::Plan)?;
    if !plan.blocked.is_empty() {
        return Err(SetupError::Blocked(plan.blocked_text()));
    }
    let split = plan.actions.iter().position(|a| a.step > Step::Jails);
    let jails_work = plan.actions.iter().any(|a| a.step == Step::Jails);
    let report = match (split, after_jails) {
        (Some(at), Some(after_jails)) if jails_work => {
            let first = Plan {
                actions: plan.actions[..at].to_vec(),
                ..Default::default()
            };
            apply(&first, backend.runner(), journal, backend.name(), progress)?;
            let rest = after_jails().map_err(SetupError::Plan)?;
            let report = apply_from(
                &rest,
                at,
                backend.runner(),
                journal,
                backend.name(),
                progress,
            )?;
            plan.actions.truncate(at);
            plan.actions.extend(rest.actions);
            ApplyReport {
                run: report.run,
                applied: plan.actions.len(),
            }
        }
        _ => apply(&plan, backend.runner(), journal, backend.name(), progress)?,
    };
    let again = make_plan().map_err(SetupError::Plan)?;
    if !again.is_empty() {
        let remaining = again
            .actions
            .iter()
            .map(|a| format!("  - [{}] {}", a.step, a.summary))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(SetupError::NotConverged {
            verb: verb.to_string(),
            count: again.actions.len(),
            remaining,
        });
    }
    Ok(SetupReport {
        resumed,
        plan,
        run: report.run,
        applied: report.applied,
    })
}
