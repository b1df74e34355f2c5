//! [`BastilleWorkers`]: FreeBSD workers (a ZFS clone, `jail -c`, rctl, an epair on the bridge for VNET; see
//! [`crate::worker`]) behind the backend-neutral worker contract (`warden_host::worker`). It names workers,
//! records who runs each (so a restarted warden reaps the jails, clones and epairs of a killed one), maps mounts
//! onto the jail's `mount.fstab` (nullfs), and ends a cancelled worker with `jail -r`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use warden_core::{account, Layout};
use warden_host::worker::{
    Cancel, End, Events, LimitKind, Network, Outcome, Stdio, Stream, Work, WorkerError, WorkerInfo,
    Workers,
};
use warden_host::Runner;

use crate::datasets;
use crate::worker::{self as fw, WorkerEnd, WorkerNetwork};

/// The directory of worker records: one file per live worker, named after it, holding the owner's pid.
fn records_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("bastille-workers")
}

/// Whether process `pid` exists (kill(2) with signal 0; EPERM means it exists under another user).
fn alive(pid: i32) -> bool {
    use nix::{errno::Errno, sys::signal::kill, unistd::Pid};
    pid > 0 && matches!(kill(Pid::from_raw(pid), None), Ok(()) | Err(Errno::EPERM))
}

/// `(uid, gid)` of the worker account (`workers.user`) as workers run: `jexec -U` resolves it in the worker
/// release's `/etc/passwd`, which setup's `jails` step writes with `account::WORKER_UID`/`WORKER_GID`. Files a
/// worker writes into a nullfs mount are owned by these ids, so the host creates its directories with them. A
/// release not set up yet (or unreadable) falls back to the account setup would create.
pub fn worker_account(runner: &dyn Runner, layout: &Layout) -> (u32, u32) {
    let passwd = format!(
        "{}/{}/etc/passwd",
        datasets::releases_dir(layout),
        layout.release
    );
    runner
        .read_file(&passwd)
        .ok()
        .flatten()
        .and_then(|text| {
            account::parse_passwd(&text)
                .into_iter()
                .find(|(name, _, _)| *name == layout.worker_user)
                .map(|(_, uid, gid)| (uid, gid))
        })
        .unwrap_or((account::WORKER_UID, account::WORKER_GID))
}

/// FreeBSD workers behind the worker contract.
pub struct BastilleWorkers {
    runner: Box<dyn Runner>,
    layout: Layout,
    state_dir: PathBuf,
    names: AtomicU64,
    racct: OnceLock<bool>,
}

impl BastilleWorkers {
    /// Workers of `layout` on the host `runner` drives, with records and leases in `state_dir`.
    pub fn new(
        runner: Box<dyn Runner>,
        layout: &Layout,
        state_dir: impl Into<PathBuf>,
    ) -> BastilleWorkers {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        BastilleWorkers {
            runner,
            layout: layout.clone(),
            state_dir: state_dir.into(),
            names: AtomicU64::new(seed >> 8),
            racct: OnceLock::new(),
        }
    }

    /// Whether rctl can enforce limits (`kern.racct.enable` is a boot tunable, 1 when RACCT/RCTL is on).
    pub fn racct_enabled(&self) -> bool {
        *self.racct.get_or_init(|| {
            let argv: Vec<String> = ["sysctl", "-n", "kern.racct.enable"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            self.runner
                .run(&argv)
                .is_ok_and(|o| o.ok() && o.stdout.trim() == "1")
        })
    }

    fn next_name(&self) -> String {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        format!("b{:010x}", n & 0xff_ffff_ffff)
    }

    /// The FreeBSD spec of `work` for a worker called `name`.
    fn spec(&self, work: &Work, name: &str) -> fw::WorkerSpec {
        let argv: Vec<&str> = work.argv.iter().map(String::as_str).collect();
        let mut s = fw::WorkerSpec::new(&self.layout, name, &argv, &self.state_dir);
        s.network = match work.network {
            Network::None => WorkerNetwork::None,
            Network::Shared => WorkerNetwork::Shared,
            Network::Vnet => WorkerNetwork::Vnet,
        };
        // `host` (the Linux default) stands for the layout's release here: a jail always runs a FreeBSD release.
        s.release = work.release.clone().filter(|r| r != "host");
        let racct = self.racct_enabled();
        s.limits = fw::WorkerLimits {
            memory_bytes: work.limits.memory_bytes.filter(|_| racct),
            max_procs: work
                .limits
                .pids
                .filter(|_| racct)
                .map(|p| u32::try_from(p).unwrap_or(u32::MAX)),
            timeout: work.limits.timeout,
            output_bytes: work.limits.output_bytes,
        };
        s.env = work.env.clone();
        s.cwd = work.cwd.as_ref().map(|c| c.to_string_lossy().into_owned());
        if work.root {
            s.user = "root".into();
        }
        s.mounts = work
            .mounts
            .iter()
            .map(|m| fw::Nullfs {
                source: m.source.to_string_lossy().into_owned(),
                target: m.target.to_string_lossy().into_owned(),
                writable: m.writable,
            })
            .collect();
        if let Stdio::Stream(input) = &work.stdio {
            if !input.is_empty() {
                s.stdin = Some(String::from_utf8_lossy(input).into_owned());
            }
        }
        s
    }

    fn write_record(&self, name: &str) -> Result<PathBuf, WorkerError> {
        let dir = records_dir(&self.state_dir);
        std::fs::create_dir_all(&dir).map_err(|e| {
            WorkerError::Backend(format!("failed to create {}: {e}", dir.display()))
        })?;
        let path = dir.join(name);
        std::fs::write(&path, std::process::id().to_string()).map_err(|e| {
            WorkerError::Backend(format!("failed to write {}: {e}", path.display()))
        })?;
        Ok(path)
    }

    /// Workers recorded with their owner's liveness.
    fn records(&self) -> Vec<(String, Option<i32>)> {
        let Ok(entries) = std::fs::read_dir(records_dir(&self.state_dir)) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Option<i32>)> = entries
            .filter_map(|e| e.ok())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let pid = std::fs::read_to_string(e.path())
                    .ok()
                    .and_then(|t| t.trim().parse().ok());
                (name, pid)
            })
            .collect();
        out.sort();
        out
    }

    /// Names of worker clones that exist (`POOL/PREFIX/workers/NAME`).
    fn clones(&self) -> Vec<String> {
        let parent = format!("{}/workers", datasets::root(&self.layout));
        let argv: Vec<String> = ["zfs", "list", "-H", "-o", "name", "-d", "1", "-r", &parent]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let Ok(out) = self.runner.run(&argv) else {
            return Vec::new();
        };
        if !out.ok() {
            return Vec::new();
        }
        out.stdout
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix(&format!("{parent}/"))
                    .map(str::to_string)
            })
            .filter(|n| !n.is_empty() && !n.contains('/'))
            .collect()
    }
}

fn end_of(o: &fw::WorkerOutcome) -> End {
    match o.end {
        WorkerEnd::Exited => End::Exited(o.exit_code),
        WorkerEnd::TimedOut => End::Limit(LimitKind::Timeout),
        WorkerEnd::OutputCapped => End::Limit(LimitKind::Output),
        // The runner reports a death by signal without its number; SIGKILL (jail -r, the kernel) is the case.
        WorkerEnd::Killed | WorkerEnd::Cancelled => {
            End::Signaled(nix::sys::signal::Signal::SIGKILL as i32)
        }
    }
}

fn backend_err(e: fw::WorkerError) -> WorkerError {
    match e {
        fw::WorkerError::Spec {
            field: "user",
            value,
            why,
        } => WorkerError::Invalid {
            field: "user",
            why: format!("worker failed: invalid worker user {value:?}: {why}\n  fix: `warden setup --backend bastille --step jails` creates the worker account in the release, or pass --root"),
        },
        fw::WorkerError::Spec { field, value, why } => WorkerError::Invalid {
            field,
            why: format!("worker failed: invalid worker {field} {value:?}: {why}"),
        },
        fw::WorkerError::Failed { ref what, .. } if what.contains("template") => {
            WorkerError::Backend(format!(
                "{e}\n  fix: `warden setup --backend bastille --step jails` bootstraps the release"
            ))
        }
        e => WorkerError::Backend(e.to_string()),
    }
}

impl Workers for BastilleWorkers {
    fn backend(&self) -> &'static str {
        "bastille"
    }

    fn run(
        &self,
        work: &Work,
        events: &mut dyn Events,
        cancel: &Cancel,
    ) -> Result<Outcome, WorkerError> {
        // Limits rctl cannot enforce: refused, unless the operator opted in (workers.allow_unlimited) — the
        // rule the Linux backend applies to a missing cgroup controller.
        if !self.racct_enabled() && !self.layout.allow_unlimited {
            return Err(WorkerError::Invalid {
                field: "limits",
                why: format!(
                    "this host cannot enforce the worker's memory and process limits: {}",
                    self.missing_limits().unwrap_or_default()
                ),
            });
        }
        let name = self.next_name();
        let spec = self.spec(work, &name);
        // Recorded before anything exists, removed once it is all gone: a killed warden's workers are found.
        let record = self.write_record(&name)?;
        events.started(&name);
        let result = fw::run_worker_until(self.runner.as_ref(), &self.layout, &spec, cancel);
        let outcome = match result {
            Ok(o) => o,
            Err(e) => {
                let _ = std::fs::remove_file(&record);
                return Err(backend_err(e));
            }
        };
        if outcome.cleanup_problems.is_empty() {
            let _ = std::fs::remove_file(&record);
        }
        // jexec's output arrives when the command ends (the runner captures it).
        match &work.stdio {
            Stdio::Inherit => {
                use std::io::Write;
                let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
                let _ = std::io::stdout().flush();
                let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
            }
            Stdio::Stream(_) => {
                if !outcome.stdout.is_empty() {
                    events.output(Stream::Stdout, outcome.stdout.as_bytes());
                }
                if !outcome.stderr.is_empty() {
                    events.output(Stream::Stderr, outcome.stderr.as_bytes());
                }
            }
        }
        Ok(Outcome {
            worker: name,
            end: end_of(&outcome),
            timings: serde_json::json!({
                "elapsed_us": outcome.elapsed.as_micros() as u64,
                "addr": outcome.addr,
            }),
            cleanup_problems: outcome.cleanup_problems,
        })
    }

    fn reap_orphans(&self) -> Result<Vec<String>, WorkerError> {
        let records = self.records();
        let live: Vec<&str> = records
            .iter()
            .filter(|(_, pid)| pid.is_some_and(alive))
            .map(|(n, _)| n.as_str())
            .collect();
        let mut names: Vec<String> = records
            .iter()
            .filter(|(n, _)| !live.contains(&n.as_str()))
            .map(|(n, _)| n.clone())
            .collect();
        // A clone without a live record (its record was lost with a crash in between) is an orphan too.
        for c in self.clones() {
            if !live.contains(&c.as_str()) && !names.contains(&c) {
                names.push(c);
            }
        }
        let mut cleaned = Vec::new();
        for name in names {
            // The orphan's network is not recorded: look for an epair too.
            let problems = fw::teardown(self.runner.as_ref(), &self.layout, &name, true);
            if !problems.is_empty() {
                return Err(WorkerError::Backend(format!(
                    "failed to reap worker {name}: {}",
                    problems.join("; ")
                )));
            }
            let _ = std::fs::remove_file(records_dir(&self.state_dir).join(&name));
            cleaned.push(format!("{name}: jail, epair, rctl rules and clone"));
        }
        Ok(cleaned)
    }

    fn list(&self) -> Vec<WorkerInfo> {
        self.records()
            .into_iter()
            .map(|(name, pid)| WorkerInfo {
                alive: pid.is_some_and(alive),
                detail: serde_json::json!({
                    "owner_pid": pid,
                    "dataset": datasets::worker(&self.layout, &name),
                }),
                name,
            })
            .collect()
    }

    fn file_owner(&self) -> (u32, u32) {
        worker_account(self.runner.as_ref(), &self.layout)
    }

    fn node(&self) -> Result<PathBuf, WorkerError> {
        // The release's own node (the `agent` setup step installs it with pkg into the worker release).
        Ok(PathBuf::from("/usr/local/bin/node"))
    }

    fn missing_limits(&self) -> Option<String> {
        (!self.racct_enabled()).then(|| {
            "rctl is disabled (kern.racct.enable is not 1)\n  fix: `warden setup --backend bastille --step base` adds kern.racct.enable=1 to /boot/loader.conf, then reboot; or set workers.allow_unlimited = true (WARDEN_WORKERS_ALLOW_UNLIMITED=1) to run workers without those limits".to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_host::SystemRunner;

    fn layout() -> Layout {
        let loaded = warden_core::config::load(None, &|_| None, &vec![]).unwrap();
        Layout::from_loaded(&loaded).unwrap()
    }

    #[test]
    fn the_worker_account_is_read_from_the_release_as_jexec_sees_it() {
        let root = tempfile::tempdir().unwrap();
        let l = layout();
        let runner = SystemRunner::with_root(root.path());
        // No release yet: the account setup creates.
        assert_eq!(
            worker_account(&runner, &l),
            (account::WORKER_UID, account::WORKER_GID)
        );
        let etc = root.path().join(format!(
            "{}/{}/etc",
            datasets::releases_dir(&l).trim_start_matches('/'),
            l.release
        ));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("passwd"),
            format!(
                "root:*:0:0::0:0:Charlie &:/root:/bin/sh\nnobody:*:65534:65534::0:0:Unprivileged user:/nonexistent:/usr/sbin/nologin\n{}:*:2001:2002::0:0:x:/nonexistent:/usr/sbin/nologin\n",
                l.worker_user
            ),
        )
        .unwrap();
        assert_eq!(worker_account(&runner, &l), (2001, 2002));
    }
}
