//! `warden release bootstrap|list|destroy`: the root file systems of Linux jails and workers.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Instant;

use warden_core::linux_release::{self, BuildPaths};
use warden_core::Action;
use warden_host::{Journal, Progress, SystemRunner};
use warden_linux::{jail, release};

use crate::cli::{BackendName, Global, ReleaseCommand};
use crate::commands::jail::exit_for;
use crate::context;
use crate::exit::Exit;

/// Runs one release verb.
pub fn run(global: &Global, command: &ReleaseCommand) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let state_dir = context::state_dir(&layout, BackendName::Linux);
    match command {
        ReleaseCommand::Bootstrap { name, force } => {
            let in_use = jail::users_of_release(&state_dir, name);
            let t0 = Instant::now();
            let mut phases = Phases::new(name);
            let info = release::bootstrap(&state_dir, name, *force, &in_use, &mut |line| {
                phases.line(line)
            })
            .map_err(exit_for)?;
            phases.finish();
            eprintln!(
                "warden: release {name} bootstrapped into {} ({}) in {} s",
                info.path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                human_size(info.size_bytes.unwrap_or(0)),
                t0.elapsed().as_secs()
            );
            // The worker account in the new release (and on the host), through setup's journaled base step.
            crate::commands::plan::setup_steps(global, &[warden_core::Step::Base])
        }
        ReleaseCommand::Build { name } => build(&layout, &state_dir, name),
        ReleaseCommand::List { json } => {
            let all = release::list(&state_dir);
            if *json {
                println!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
                return Ok(());
            }
            println!("{:<10} {:>9} {:<20} PATH", "NAME", "SIZE", "CREATED (UTC)");
            for r in all {
                println!(
                    "{:<10} {:>9} {:<20} {}",
                    r.name,
                    r.size_bytes.map(human_size).unwrap_or_else(|| "-".into()),
                    r.created
                        .map(warden_core::snapshot_tag::utc_text)
                        .unwrap_or_else(|| "-".into()),
                    r.path.map(|p| p.display().to_string()).unwrap_or_else(|| {
                        "(read-only binds of this host's /usr, /bin, /lib*, /sbin)".into()
                    })
                );
            }
            Ok(())
        }
        ReleaseCommand::Destroy { name } => {
            // Under the jail lock, so no jail is created on it meanwhile.
            let _lock = jail::lock(&state_dir).map_err(exit_for)?;
            let in_use = jail::users_of_release(&state_dir, name);
            release::destroy(&state_dir, name, &in_use).map_err(exit_for)?;
            eprintln!("warden: destroyed release {name}");
            Ok(())
        }
    }
}

/// `warden release build debian`: plans what is left of the build (debootstrap, apt inside the tree, the
/// worker account, the move into place), applies it through the journal, and checks nothing is left; one build
/// at a time per cache. How long each action took is printed (docs/PERFORMANCE.md).
fn build(layout: &warden_core::Layout, state_dir: &Path, name: &str) -> Result<(), Exit> {
    if name != linux_release::NAME {
        return Err(Exit::usage(format!(
            "unknown release to build: {name}\n  fix: `warden release build {}` (the service jails' release)",
            linux_release::NAME
        )));
    }
    let cache = linux_release::cache_dir(layout, &state_dir.display().to_string());
    let paths = BuildPaths::new(&cache);
    let _lock = release::lock_build(&paths).map_err(exit_for)?;
    let user = layout.worker_user.as_str();
    let mirror = release::mirror();
    let plan =
        linux_release::build_plan(&paths, &mirror, user, &release::observe_build(&paths, user));
    if plan.is_empty() {
        eprintln!(
            "warden: release {name} ({}) is built: {}",
            paths.key,
            paths.tree()
        );
        return Ok(());
    }
    context::ensure_state_dir(state_dir)?;
    let journal =
        Journal::open(&state_dir.join("journal.db")).map_err(|e| Exit::failure(e.to_string()))?;
    let runner = SystemRunner::new().with_deadlines(crate::backends::deadlines(layout));
    let t0 = Instant::now();
    let mut progress = Timed::default();
    let report = warden_host::apply(&plan, &runner, &journal, "linux", &mut progress)
        .map_err(|e| Exit::failure(e.to_string()))?;
    let left =
        linux_release::build_plan(&paths, &mirror, user, &release::observe_build(&paths, user));
    if !left.is_empty() {
        return Err(Exit::failure(format!(
            "the build of release {name} ran every action but is not complete:\n{}  fix: run `warden release build {name}` again; it continues from there",
            left.to_text()
        )));
    }
    eprintln!(
        "warden: release {name} ({}) built into {} ({}) in {} s by {} actions (journal run {})",
        paths.key,
        paths.tree(),
        human_size(release::tree_size(Path::new(&paths.tree()))),
        t0.elapsed().as_secs(),
        report.applied,
        report.run
    );
    Ok(())
}

/// `[n/total] summary … ok (12.3 s)` on stderr: the build's actions are slow, so each says how long it took.
#[derive(Default)]
struct Timed {
    started: Option<Instant>,
}

impl Progress for Timed {
    fn start(&mut self, index: usize, total: usize, action: &Action) {
        eprint!("[{index}/{total}] {} … ", action.summary);
        self.started = Some(Instant::now());
    }

    fn finish(&mut self, _: usize, _: usize, _: &Action, ok: bool) {
        let secs = self
            .started
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        eprintln!("{} ({secs:.1} s)", if ok { "ok" } else { "FAILED" });
    }
}

/// debootstrap's progress as one line per phase (`I: Retrieving …`, `I: Extracting …`, …); on a
/// terminal the current line is updated in place as well.
struct Phases {
    name: String,
    phase: String,
    tty: bool,
    count: usize,
}

impl Phases {
    fn new(name: &str) -> Phases {
        Phases {
            name: name.to_string(),
            phase: String::new(),
            tty: std::io::stderr().is_terminal(),
            count: 0,
        }
    }

    fn line(&mut self, line: &str) {
        let mut err = std::io::stderr().lock();
        let phase = match line.strip_prefix("I: ") {
            Some(rest) => rest.split_whitespace().next().unwrap_or("").to_string(),
            // Warnings, errors and warden's own lines are always shown in full.
            None => {
                let _ = writeln!(err, "{}warden: release {}: {line}", self.clear(), self.name);
                return;
            }
        };
        if phase != self.phase {
            let _ = writeln!(err, "{}warden: release {}: {line}", self.clear(), self.name);
            self.phase = phase;
            self.count = 0;
        } else if self.tty {
            self.count += 1;
            let shown: String = line.chars().take(70).collect();
            let _ = write!(err, "\r\x1b[K  … {} {shown}", self.count);
        }
    }

    fn clear(&self) -> &'static str {
        if self.tty {
            "\r\x1b[K"
        } else {
            ""
        }
    }

    fn finish(&self) {
        if self.tty {
            eprint!("\r\x1b[K");
        }
    }
}

fn human_size(bytes: u64) -> String {
    let units = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.1}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_sizes() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(3 << 20), "3.0M");
    }
}
