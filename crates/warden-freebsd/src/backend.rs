//! [`BastilleBackend`]: the production backend. `plan` = observe the host + `warden_core::bastille_plan::plan`.

use std::path::{Path, PathBuf};

use warden_core::plan::{PlanOptions, TeardownOptions};
use warden_core::{Layout, Plan};
use warden_host::{Backend, HostError, Runner};

use crate::lock::BastilleLock;
use crate::observe::{observe, Observation};

/// Default state directory on FreeBSD (journal, leases, the Bastille lock) when the layout names none.
pub const DEFAULT_STATE_DIR: &str = warden_core::bastille_agent::DEFAULT_STATE_DIR;

/// The FreeBSD + Bastille backend. All host access goes through one runner wrapped in the Bastille lock.
#[derive(Debug)]
pub struct BastilleBackend<R> {
    runner: BastilleLock<R>,
    state_dir: PathBuf,
    options: PlanOptions,
}

impl<R: Runner> BastilleBackend<R> {
    /// A backend on `runner`, keeping its lock file (and, for the caller, journal and leases) in `state_dir`,
    /// a local path.
    pub fn new(runner: R, state_dir: &Path) -> BastilleBackend<R> {
        BastilleBackend {
            runner: BastilleLock::new(runner, state_dir),
            state_dir: state_dir.to_path_buf(),
            options: PlanOptions::default(),
        }
    }

    /// The same backend planning with `options` (e.g. `--no-install`).
    pub fn with_options(mut self, options: PlanOptions) -> BastilleBackend<R> {
        self.options = options;
        self
    }

    /// The state directory for `layout`: its `state_dir`, else [`DEFAULT_STATE_DIR`].
    pub fn state_dir_for(layout: &Layout) -> PathBuf {
        PathBuf::from(warden_core::bastille_agent::state_dir(layout))
    }

    /// The local state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The runner without the lock (tests read recorded calls through it).
    pub fn inner(&self) -> &R {
        self.runner.inner()
    }

    /// Observes the host, and what of it lives in the local state directory (the db passwords).
    pub fn observe(&self, layout: &Layout) -> Result<Observation, HostError> {
        let mut seen = observe(&self.runner, layout)?;
        let host = &mut seen.host;
        host.state_dir = self.state_dir.display().to_string();
        // setup's own actions run this very binary, wherever it is installed.
        host.warden_exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for role in warden_core::db::roles(layout) {
            if Path::new(&warden_core::db::password_path(&host.state_dir, &role)).exists() {
                host.db_passwords.insert(role);
            }
        }
        host.db_synced =
            std::fs::read_to_string(warden_core::db::synced_marker(&host.state_dir)).ok();
        for owner in warden_core::git::owners(layout) {
            if Path::new(&warden_core::git::password_path(&host.state_dir, &owner)).exists() {
                host.git_passwords.insert(owner);
            }
        }
        Ok(seen)
    }
}

impl<R: Runner> Backend for BastilleBackend<R> {
    fn name(&self) -> &'static str {
        "bastille"
    }

    fn runner(&self) -> &dyn Runner {
        &self.runner
    }

    fn plan(&self, layout: &Layout) -> Result<Plan, HostError> {
        let seen = self.observe(layout)?;
        let mut plan = warden_core::bastille_plan::plan_with(layout, &seen.host, &self.options);
        // Observation caveats first: they explain why the plan looks like a fresh host's.
        let mut notes = seen.notes;
        notes.append(&mut plan.notes);
        plan.notes = notes;
        Ok(plan)
    }

    fn teardown_plan(&self, layout: &Layout, options: &TeardownOptions) -> Result<Plan, HostError> {
        let seen = self.observe(layout)?;
        let mut plan = warden_core::bastille_teardown::plan(layout, &seen.host, options);
        let mut notes = seen.notes;
        notes.append(&mut plan.notes);
        plan.notes = notes;
        Ok(plan)
    }
}
