//! The backend trait: one per host OS, chosen at start-up. Nothing outside a backend knows the OS.

use warden_core::plan::TeardownOptions;
use warden_core::{Layout, Plan};

use crate::runner::{RunError, Runner};

/// Why a backend could not observe or plan.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A command could not run.
    #[error(transparent)]
    Run(#[from] RunError),
    /// A tool printed something the parser does not understand.
    #[error("failed to parse the output of `{command}`: {reason}\n  output: {output}")]
    Parse {
        /// The command.
        command: String,
        /// What was wrong.
        reason: String,
        /// The output (shortened).
        output: String,
    },
    /// Anything else, already worded for the operator.
    #[error("{0}")]
    Other(String),
}

/// A host OS backend.
pub trait Backend {
    /// `bastille` or `linux`.
    fn name(&self) -> &'static str;
    /// The runner all of this backend's host access goes through.
    fn runner(&self) -> &dyn Runner;
    /// Observes the host and plans every step for `layout`.
    fn plan(&self, layout: &Layout) -> Result<Plan, HostError>;
    /// Observes the host and plans the reverse of every step (`warden teardown`); empty once nothing is left.
    fn teardown_plan(&self, layout: &Layout, options: &TeardownOptions) -> Result<Plan, HostError>;
}
