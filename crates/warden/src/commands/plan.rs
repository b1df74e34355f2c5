//! `warden plan` and `warden setup`: observe, plan, print or apply.

use std::io::IsTerminal;

use warden_core::{Action, Plan, Step};
use warden_host::{Journal, Progress};

use crate::backends;
use crate::cli::{BackendName, Global, PlanArgs, SetupArgs, TeardownArgs};
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

fn make_plan(global: &Global, args: &PlanArgs) -> Result<(backends::Chosen, Plan), Exit> {
    let step = parse_step(&args.step)?;
    let (_, layout) = context::layout(global)?;
    let chosen = backends::choose_with(args.backend, &layout, options(args))?;
    let mut plan = chosen
        .backend
        .plan(&layout)
        .map_err(|e| Exit::failure(format!("failed to observe the host: {e}")))?;
    if let Some(step) = step {
        plan = plan.only(step);
    }
    Ok((chosen, plan))
}

fn options(args: &PlanArgs) -> warden_core::plan::PlanOptions {
    warden_core::plan::PlanOptions {
        no_install: args.no_install,
    }
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
    let (chosen, plan) = make_plan(global, args)?;
    for note in &chosen.notes {
        eprintln!("warden: {note}");
    }
    print_plan(&plan, args.json);
    if !plan.blocked.is_empty() {
        return Err(Exit::failure(format!(
            "setup cannot apply these steps yet:\n{}",
            plan.blocked_text()
        )));
    }
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
    let step = parse_step(&args.plan.step)?;
    if step == Some(Step::Verify) {
        return verify(global, args);
    }
    let (_, layout) = context::layout(global)?;
    let chosen = backends::choose_with(args.plan.backend, &layout, options(&args.plan))?;
    if !chosen.can_apply {
        return Err(Exit::failure(format!(
            "cannot apply: {}\n  fix: run on the target host with its tools installed, or use `warden plan` to read the plan",
            chosen.notes.join("; ")
        )));
    }
    context::ensure_state_dir(&chosen.state_dir)?;
    let journal = Journal::open(&chosen.state_dir.join("journal.db"))
        .map_err(|e| Exit::failure(e.to_string()))?;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let steps: Vec<Step> = step.into_iter().collect();
    for line in
        warden_host::setup::interrupted_runs(&journal).map_err(|e| Exit::failure(e.to_string()))?
    {
        eprintln!("warden: {line}");
    }
    let report = warden_host::setup::setup(
        chosen.backend.as_ref(),
        &layout,
        &steps,
        &journal,
        &mut TermProgress { color },
    )
    .map_err(|e| Exit::failure(e.to_string()))?;
    if report.applied == 0 {
        eprintln!("warden: nothing to do: the host matches the layout");
    } else {
        eprintln!(
            "warden: applied {} actions (journal run {}); the host matches the layout",
            report.applied, report.run
        );
    }
    if step.is_none() {
        return verify(global, args);
    }
    Ok(())
}

/// `warden teardown`: plan the reverse of setup, print it (`--dry-run`) or apply it through the journal.
pub fn teardown(global: &Global, args: &TeardownArgs) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let options = warden_core::plan::TeardownOptions { force: args.force };
    let chosen = backends::choose_with(args.backend, &layout, Default::default())?;
    for note in &chosen.notes {
        eprintln!("warden: {note}");
    }
    if args.dry_run {
        let plan = chosen
            .backend
            .teardown_plan(&layout, &options)
            .map_err(|e| Exit::failure(format!("failed to observe the host: {e}")))?;
        print_plan(&plan, args.json);
        return if plan.blocked.is_empty() {
            Ok(())
        } else {
            Err(Exit::failure(format!(
                "teardown cannot apply yet:\n{}",
                plan.blocked_text()
            )))
        };
    }
    if !chosen.can_apply {
        return Err(Exit::failure(format!(
            "cannot apply: {}\n  fix: run on the target host with its tools installed, or use `warden teardown --dry-run` to read the plan",
            chosen.notes.join("; ")
        )));
    }
    if args.backend.unwrap_or_else(context::default_backend) == BackendName::Linux {
        // Workers whose owner died hold bridge ports and cgroups: release them first, as `warden run` does.
        for line in backends::linux::reap_orphans(&chosen.state_dir)? {
            eprintln!("warden: reaped: {line}");
        }
    }
    context::ensure_state_dir(&chosen.state_dir)?;
    let journal = Journal::open(&chosen.state_dir.join("journal.db"))
        .map_err(|e| Exit::failure(e.to_string()))?;
    for line in
        warden_host::setup::interrupted_runs(&journal).map_err(|e| Exit::failure(e.to_string()))?
    {
        eprintln!("warden: {line}");
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let report = warden_host::setup::teardown(
        chosen.backend.as_ref(),
        &layout,
        &options,
        &journal,
        &mut TermProgress { color },
    )
    .map_err(|e| Exit::failure(e.to_string()))?;
    for note in &report.plan.notes {
        eprintln!("warden: note: {note}");
    }
    if report.applied == 0 {
        eprintln!("warden: nothing to tear down: no part of the layout is on this host");
    } else {
        eprintln!(
            "warden: applied {} actions (journal run {}); the layout is gone from this host",
            report.applied, report.run
        );
    }
    Ok(())
}

/// Applies `steps` on this OS's default backend (journaled), quietly unless there is something to do.
// Used by `warden release` (a Linux-only verb), so unused where the Linux backend does not exist.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn setup_steps(global: &Global, steps: &[Step]) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let chosen = backends::choose(None, &layout)?;
    context::ensure_state_dir(&chosen.state_dir)?;
    let journal = Journal::open(&chosen.state_dir.join("journal.db"))
        .map_err(|e| Exit::failure(e.to_string()))?;
    let report = warden_host::setup::setup(
        chosen.backend.as_ref(),
        &layout,
        steps,
        &journal,
        &mut TermProgress { color: false },
    )
    .map_err(|e| Exit::failure(e.to_string()))?;
    if report.applied > 0 {
        eprintln!(
            "warden: applied {} actions (journal run {})",
            report.applied, report.run
        );
    }
    Ok(())
}

/// Step `verify`: the doctor's checks on the same backend (exit 1 if any fails).
fn verify(global: &Global, args: &SetupArgs) -> Result<(), Exit> {
    eprintln!("warden: step verify: running the doctor's checks");
    let doctor = crate::cli::DoctorArgs {
        backend: args.plan.backend,
        json: false,
        // The doctor reads doctor.probe (WARDEN_DOCTOR_PROBE or the config file) itself.
        probe: None,
        hosts_file: None,
        timeout_ms: 3000,
    };
    crate::commands::doctor::run(global, &doctor)
}
