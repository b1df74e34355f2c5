//! `warden plan` and `warden setup`: observe, plan, print or apply.

use std::io::IsTerminal;

use warden_core::{Action, Layout, Plan, Step};
use warden_host::{Journal, Progress};

use crate::backends;
use crate::cli::{Global, PlanArgs, SetupArgs};
use crate::context;
use crate::exit::Exit;

fn parse_step(step: &Option<String>) -> Result<Option<Step>, Exit> {
    match step {
        None => Ok(None),
        Some(name) => Step::parse(name).map(Some).ok_or_else(|| {
            let all: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
            Exit::usage(format!(
                "unknown step {name:?}\n  fix: use one of {}",
                all.join(", ")
            ))
        }),
    }
}

fn make_plan(global: &Global, args: &PlanArgs) -> Result<(Layout, backends::Chosen, Plan), Exit> {
    let step = parse_step(&args.step)?;
    let (_, layout) = context::layout(global)?;
    let chosen = backends::choose(args.backend, &layout)?;
    let mut plan = chosen
        .backend
        .plan(&layout)
        .map_err(|e| Exit::failure(format!("failed to observe the host: {e}")))?;
    if let Some(step) = step {
        plan = plan.only(step);
    }
    Ok((layout, chosen, plan))
}

fn print_plan(plan: &Plan, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(plan).unwrap_or_default());
    } else {
        print!("{}", plan.to_text());
    }
}

/// `warden plan`.
pub fn plan(global: &Global, args: &PlanArgs) -> Result<(), Exit> {
    let (_, chosen, plan) = make_plan(global, args)?;
    for note in &chosen.notes {
        eprintln!("warden: {note}");
    }
    print_plan(&plan, args.json);
    Ok(())
}

/// Draws `[n/total] summary … ok` lines on stderr.
struct TermProgress {
    color: bool,
}

impl Progress for TermProgress {
    fn start(&mut self, index: usize, total: usize, action: &Action) {
        eprint!("[{index}/{total}] {} … ", action.summary);
    }

    fn finish(&mut self, _: usize, _: usize, _: &Action, ok: bool) {
        let (word, color) = if ok { ("ok", "32") } else { ("FAILED", "31") };
        if self.color {
            eprintln!("\x1b[{color}m{word}\x1b[0m");
        } else {
            eprintln!("{word}");
        }
    }
}

/// `warden setup`.
pub fn setup(global: &Global, args: &SetupArgs) -> Result<(), Exit> {
    if args.dry_run {
        return plan(global, &args.plan);
    }
    let (layout, chosen, plan) = make_plan(global, &args.plan)?;
    if !chosen.can_apply {
        return Err(Exit::failure(format!(
            "cannot apply: {}\n  fix: run on the target host with its tools installed, or use `warden plan` to read the plan",
            chosen.notes.join("; ")
        )));
    }
    let state = context::state_dir(&layout, chosen.name);
    let journal =
        Journal::open(&state.join("journal.db")).map_err(|e| Exit::failure(e.to_string()))?;
    for (run, last) in journal
        .interrupted()
        .map_err(|e| Exit::failure(e.to_string()))?
    {
        match last {
            Some(entry) => eprintln!(
                "warden: resuming after interrupted run {run}: action {} ({}) was {} but not confirmed; re-observing the host",
                entry.seq + 1,
                entry.summary,
                entry.state
            ),
            None => eprintln!("warden: resuming after interrupted run {run} (no action had started)"),
        }
    }
    if plan.is_empty() {
        eprintln!("warden: nothing to do: the host matches the layout");
        return Ok(());
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let report = warden_host::apply(
        &plan,
        chosen.backend.runner(),
        &journal,
        chosen.backend.name(),
        &mut TermProgress { color },
    )
    .map_err(|e| Exit::failure(e.to_string()))?;
    // Tools can report success and do nothing; the only proof is a fresh observation that plans nothing more.
    let mut again = chosen
        .backend
        .plan(&layout)
        .map_err(|e| Exit::failure(format!("failed to re-observe the host: {e}")))?;
    if let Some(step) = parse_step(&args.plan.step)? {
        again = again.only(step);
    }
    if !again.is_empty() {
        return Err(Exit::failure(format!(
            "applied {} actions, but the host still differs from the layout:\n{}",
            report.applied,
            again.to_text()
        )));
    }
    eprintln!(
        "warden: applied {} actions (journal run {}); the host matches the layout",
        report.applied, report.run
    );
    Ok(())
}
