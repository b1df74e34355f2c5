//! Choosing the host backend: the only place in the CLI that knows which backends exist, and the only one that
//! knows which of them this OS has (the Linux backend is compiled on Linux only; see [`linux`]).

use std::path::PathBuf;
use std::sync::Arc;

use warden_core::plan::PlanOptions;
use warden_core::{Layout, Plan};
use warden_host::worker::Workers;
use warden_host::{Backend, Deadlines, HostError, RecordingRunner, Runner, SystemRunner};

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
    fn teardown_plan(
        &self,
        layout: &Layout,
        options: &warden_core::plan::TeardownOptions,
    ) -> Result<Plan, HostError> {
        // A fresh host holds nothing of Warden's.
        Ok(warden_core::bastille_teardown::plan(
            layout,
            &Default::default(),
            options,
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
    // Its commands are quick ones and turns (which set their own deadline): the default deadlines.
    warden_freebsd::BastilleLock::new(SystemRunner::with_root(host_root()), state_dir)
}

/// The host commands' deadlines of `layout` (`setup.command_timeout`, `setup.install_timeout`).
pub fn deadlines(layout: &Layout) -> Deadlines {
    Deadlines {
        quick: layout.command_timeout,
        slow: layout.install_timeout,
    }
}

/// Picks the backend named (or this OS's default), installing missing packages.
pub fn choose(name: Option<BackendName>, layout: &Layout) -> Result<Chosen, Exit> {
    choose_with(name, layout, PlanOptions::default())
}

/// Picks the backend named (or this OS's default), planning with `options`.
pub fn choose_with(
    name: Option<BackendName>,
    layout: &Layout,
    options: PlanOptions,
) -> Result<Chosen, Exit> {
    let name = name.unwrap_or_else(context::default_backend);
    let state_dir = context::state_dir(layout, name);
    match name {
        // Not a FreeBSD host (sysrc is FreeBSD's own): plan for a fresh one, apply nothing. A FreeBSD host
        // without Bastille yet is planned for real: the base step installs it.
        BackendName::Bastille if !on_path("sysrc") => Ok(Chosen {
            backend: Box::new(FreshBastille {
                runner: RecordingRunner::new(),
            }),
            can_apply: false,
            notes: vec![
                "sysrc is not on PATH (not a FreeBSD host): planning for a fresh FreeBSD host"
                    .into(),
            ],
            state_dir,
        }),
        BackendName::Bastille => {
            // BastilleBackend::new takes the Bastille lock itself; wrapping here as well deadlocked every
            // `bastille` call (two flocks on the same file from one thread).
            let runner = SystemRunner::with_root(host_root()).with_deadlines(deadlines(layout));
            Ok(Chosen {
                backend: Box::new(
                    warden_freebsd::BastilleBackend::new(runner, &state_dir).with_options(options),
                ),
                can_apply: true,
                notes: Vec::new(),
                state_dir,
            })
        }
        BackendName::Linux => Ok(Chosen {
            backend: linux::host_backend(&state_dir, options, deadlines(layout))?,
            can_apply: true,
            notes: Vec::new(),
            state_dir,
        }),
    }
}

/// How a caller of [`workers`] runs them.
#[derive(Debug, Clone, Copy, Default)]
// Only the Linux workers read these (the bastille backend has no pool).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub struct WorkerUse {
    /// A long-lived, multi-threaded process (`warden serve`): Linux helpers come from a zygote.
    pub serve: bool,
    /// Parked workers kept warm per network mode (none, shared, vnet), where the backend has a pool.
    pub pool: [usize; 3],
}

/// The ephemeral workers of backend `name` (the one worker contract), with their state in `state_dir`.
pub fn workers(
    name: BackendName,
    layout: &Layout,
    state_dir: &std::path::Path,
    how: WorkerUse,
) -> Result<Arc<dyn Workers>, Exit> {
    match name {
        BackendName::Linux => linux::workers(layout, state_dir, how),
        BackendName::Bastille => Ok(Arc::new(bastille_workers(
            layout,
            state_dir,
            Box::new(bastille_runner(state_dir)),
        )?)),
    }
}

/// FreeBSD workers driving the host through `runner` (normally [`bastille_runner`]); fails when the jail tools
/// are missing.
pub fn bastille_workers(
    layout: &Layout,
    state_dir: &std::path::Path,
    runner: Box<dyn Runner>,
) -> Result<warden_freebsd::BastilleWorkers, Exit> {
    if let Some(missing) = ["zfs", "jail", "jexec", "jls"]
        .into_iter()
        .find(|p| !on_path(p))
    {
        return Err(Exit {
            code: crate::exit::INFRASTRUCTURE,
            message: format!("--backend bastille needs FreeBSD's jail tools, and {missing} is not on PATH\n  fix: run on the FreeBSD host, or use --backend linux"),
        });
    }
    Ok(warden_freebsd::BastilleWorkers::new(
        runner, layout, state_dir,
    ))
}

/// The Linux backend where it exists.
#[cfg(target_os = "linux")]
pub mod linux {
    use std::path::Path;
    use std::sync::Arc;

    use warden_core::plan::PlanOptions;
    use warden_core::Layout;
    use warden_host::worker::Workers;
    use warden_host::{Backend, Deadlines, SystemRunner};

    use super::WorkerUse;
    use crate::exit::Exit;

    /// Runs the worker helper and exits if this process was started as one (`warden __worker …`).
    pub fn helper_if_asked() {
        if std::env::args_os()
            .nth(1)
            .is_some_and(|a| a == warden_linux::HELPER_ARG)
        {
            warden_linux::helper_main();
        }
    }

    /// The Linux host backend (setup and observation), planning with `options`.
    pub fn host_backend(
        state_dir: &Path,
        options: PlanOptions,
        deadlines: Deadlines,
    ) -> Result<Box<dyn Backend>, Exit> {
        let runner = SystemRunner::new().with_deadlines(deadlines);
        Ok(Box::new(
            warden_linux::host::LinuxBackend::new(Box::new(runner), state_dir)
                .with_options(options),
        ))
    }

    /// Cleans the workers and leases whose owners died (one line per thing cleaned), as `warden run` does.
    pub fn reap_orphans(state_dir: &Path) -> Result<Vec<String>, Exit> {
        warden_linux::reap_orphans(state_dir).map_err(|e| {
            Exit::failure(format!(
                "failed to reap dead workers: {}",
                warden_linux::error_chain(&e)
            ))
        })
    }

    /// Linux workers.
    pub fn workers(
        layout: &Layout,
        state_dir: &Path,
        how: WorkerUse,
    ) -> Result<Arc<dyn Workers>, Exit> {
        let mut opts = warden_linux::LinuxOptions::new(state_dir);
        opts.zygote = how.serve;
        opts.pool = how.pool;
        // Workers run as the worker account setup's base step creates; never silently as nobody.
        opts.user = Some(worker_account(layout)?);
        opts.allow_unlimited = layout.allow_unlimited;
        Ok(Arc::new(warden_linux::LinuxWorkers::new(layout, opts)))
    }

    /// `(uid, gid)` of the worker account (`workers.user`) on this host; setup's base step creates it.
    pub fn worker_account(layout: &Layout) -> Result<(u32, u32), Exit> {
        warden_linux::release::host_user(&layout.worker_user).ok_or_else(|| Exit {
            code: crate::exit::INFRASTRUCTURE,
            message: format!(
                "the worker account {user} does not exist on this host\n  fix: `warden setup --backend linux --step base` creates it (uid {uid}), or set workers.user to an existing account",
                user = layout.worker_user,
                uid = warden_core::account::WORKER_UID
            ),
        })
    }

    /// The IPv4 address `interface` has here, if any (one ioctl).
    pub fn interface_ipv4(interface: &str) -> Option<std::net::Ipv4Addr> {
        warden_linux::host::interface_ipv4(interface)
    }
}

/// The Linux backend on any other OS: every entry point says it runs only on Linux.
#[cfg(not(target_os = "linux"))]
pub mod linux {
    use std::path::Path;
    use std::sync::Arc;

    use warden_core::plan::PlanOptions;
    use warden_core::Layout;
    use warden_host::worker::Workers;
    use warden_host::{Backend, Deadlines};

    use super::WorkerUse;
    use crate::exit::Exit;

    /// What every Linux-only entry point answers here.
    pub fn unsupported() -> Exit {
        Exit::usage(
            "the linux backend runs only on Linux\n  fix: use --backend bastille on FreeBSD",
        )
    }

    /// No worker helper exists here.
    pub fn helper_if_asked() {}

    /// Not on this OS.
    pub fn host_backend(_: &Path, _: PlanOptions, _: Deadlines) -> Result<Box<dyn Backend>, Exit> {
        Err(unsupported())
    }

    /// Not on this OS.
    pub fn reap_orphans(_: &Path) -> Result<Vec<String>, Exit> {
        Err(unsupported())
    }

    /// Not on this OS.
    pub fn workers(_: &Layout, _: &Path, _: WorkerUse) -> Result<Arc<dyn Workers>, Exit> {
        Err(unsupported())
    }

    /// Not on this OS.
    pub fn interface_ipv4(_: &str) -> Option<std::net::Ipv4Addr> {
        None
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
