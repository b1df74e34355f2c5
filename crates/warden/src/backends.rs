//! Choosing the host backend: the only place in the CLI that knows which backends exist.

use std::path::PathBuf;

use warden_core::{Layout, Plan};
use warden_host::{Backend, HostError, RecordingRunner, Runner, SystemRunner};

use crate::cli::BackendName;
use crate::context;
use crate::exit::Exit;

/// A backend ready to plan (and maybe apply), with notes for stderr.
pub struct Chosen {
    /// The backend.
    pub backend: Box<dyn Backend>,
    /// Whether it may change the host (false when it only assumes a fresh host).
    pub can_apply: bool,
    /// Things to tell the operator (assumptions).
    pub notes: Vec<String>,
    /// Warden's state directory for this backend.
    pub state_dir: PathBuf,
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

/// The root under which host file paths live: `/`, or a simulated host's root (`WARDEN_HOST_ROOT`, e.g.
/// `$FAKEBSD_STATE/root` when running against fakebsd).
pub fn host_root() -> PathBuf {
    std::env::var_os("WARDEN_HOST_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// The host runner of the bastille backend for commands outside setup (snapshots, workers): host files under
/// [`host_root`], `bastille` calls serialised by the lock in `state_dir` — the same single lock
/// `BastilleBackend::new` puts around its runner.
pub fn bastille_runner(state_dir: &std::path::Path) -> warden_freebsd::BastilleLock<SystemRunner> {
    warden_freebsd::BastilleLock::new(SystemRunner::with_root(host_root()), state_dir)
}

/// Picks the backend named (or this OS's default).
pub fn choose(name: Option<BackendName>, layout: &Layout) -> Result<Chosen, Exit> {
    let name = name.unwrap_or_else(context::default_backend);
    let state_dir = context::state_dir(layout, name);
    match name {
        BackendName::Bastille if !on_path("bastille") => Ok(Chosen {
            backend: Box::new(FreshBastille {
                runner: RecordingRunner::new(),
            }),
            can_apply: false,
            notes: vec!["bastille is not on PATH: planning for a fresh FreeBSD host".into()],
            state_dir,
        }),
        BackendName::Bastille => {
            // BastilleBackend::new takes the Bastille lock itself; wrapping here as well deadlocked every
            // `bastille` call (two flocks on the same file from one thread).
            let runner = SystemRunner::with_root(host_root());
            Ok(Chosen {
                backend: Box::new(warden_freebsd::BastilleBackend::new(runner, &state_dir)),
                can_apply: true,
                notes: Vec::new(),
                state_dir,
            })
        }
        BackendName::Linux => Ok(Chosen {
            backend: Box::new(warden_linux::host::LinuxBackend::new(
                Box::new(SystemRunner::new()),
                &state_dir,
            )),
            can_apply: true,
            notes: Vec::new(),
            state_dir,
        }),
    }
}

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths).any(|dir| {
                std::fs::metadata(dir.join(program))
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
        })
        .unwrap_or(false)
}
