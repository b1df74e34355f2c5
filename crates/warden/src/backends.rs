//! Choosing the host backend: the only place that knows which backends exist.

use warden_core::{Layout, Plan};
use warden_host::{Backend, HostError, RecordingRunner, Runner};

use crate::cli::BackendName;
use crate::context;
use crate::exit::Exit;

/// A backend ready to plan (and maybe apply), with notes for stderr.
pub struct Chosen {
    /// Which one.
    pub name: BackendName,
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// Whether it may change the host (false when it only assumes a fresh host).
    pub can_apply: bool,
    /// Things to tell the operator (assumptions).
    pub notes: Vec<String>,
}

/// Plans against an assumed fresh host, for when the backend's tools are absent (e.g. `--backend bastille` on Linux).
struct FreshBastille {
    runner: RecordingRunner,
}

impl Backend for FreshBastille {
    fn name(&self) -> &'static str {
        "bastille"
    }
    fn runner(&self) -> &dyn Runner {
        &self.runner
    }
    fn plan(&self, layout: &Layout) -> Result<Plan, HostError> {
        Ok(warden_core::bastille_plan::plan(
            layout,
            &Default::default(),
        ))
    }
}

/// Picks the backend named (or this OS's default).
pub fn choose(name: Option<BackendName>, layout: &Layout) -> Result<Chosen, Exit> {
    let name = name.unwrap_or_else(context::default_backend);
    match name {
        BackendName::Bastille => {
            let _ = layout;
            Ok(Chosen {
                name,
                backend: Box::new(FreshBastille {
                    runner: RecordingRunner::new(),
                }),
                can_apply: false,
                notes: vec!["bastille is not on PATH: planning for a fresh FreeBSD host".into()],
            })
        }
        BackendName::Linux => Err(Exit::failure("the linux backend is not wired yet")),
    }
}
