//! [`LinuxWorkers`]: this backend behind the backend-neutral worker contract (`warden_host::worker`), an adapter
//! over [`crate::run`] and the warm [`Pool`] of [`crate::Parked`] workers. It names workers, leases VNET
//! addresses, takes a parked worker for a plain argv turn when one is ready, and kills a worker's init when the
//! turn is cancelled.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use warden_core::Layout;
use warden_host::worker::{
    Cancel, End, Events, LimitKind as HostLimit, Network, Outcome as HostOutcome, Stdio, Stream,
    Work, WorkerError, WorkerInfo, Workers,
};

use crate::pool::{Pool, PoolKey, SlotConfig};
use crate::record::{self, Record};
use crate::spec::{
    Bind, ExitKind, LimitKind, Limits, NetworkMode, Outcome, ReleaseRef, Turn, Vnet, WorkerSpec,
    DEFAULT_USER,
};
use crate::worker::{Io, OutputStream};
use crate::Error;

/// How this host's Linux workers are made.
#[derive(Debug, Clone)]
pub struct LinuxOptions {
    /// Warden's state directory (records, leases, releases).
    pub state_dir: PathBuf,
    /// Root of the cgroup hierarchy.
    pub cgroup_root: PathBuf,
    /// The network namespace holding the bridge; `None`: warden's own.
    pub host_netns: Option<PathBuf>,
    /// `(uid, gid)` workers run as; `None`: nobody.
    pub user: Option<(u32, u32)>,
    /// Run workers even when a cgroup controller for their limits is missing (`workers.allow_unlimited`).
    pub allow_unlimited: bool,
    /// Parked workers kept warm per network mode (none, shared, vnet); all 0: no pool.
    pub pool: [usize; 3],
    /// Workers parked at once per mode while refilling (0: 2).
    pub pool_fillers: usize,
    /// Fork helpers from a zygote instead of exec'ing them (long-lived, multi-threaded callers).
    pub zygote: bool,
}

impl LinuxOptions {
    /// Defaults for a state directory: `/sys/fs/cgroup`, warden's own namespace, nobody, no pool, no zygote.
    pub fn new(state_dir: impl Into<PathBuf>) -> LinuxOptions {
        LinuxOptions {
            state_dir: state_dir.into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            host_netns: None,
            user: None,
            allow_unlimited: false,
            pool: [0; 3],
            pool_fillers: 0,
            zygote: false,
        }
    }
}

/// Linux workers behind the worker contract.
pub struct LinuxWorkers {
    opts: LinuxOptions,
    range: (Ipv4Addr, Ipv4Addr),
    gateway: Ipv4Addr,
    bridge: String,
    /// The layout's timezone, for `/etc/localtime` in host-release roots.
    timezone: String,
    pool: Option<Pool>,
    /// Feeds names of non-VNET workers; time-seeded so a restarted server does not reuse a name whose teardown
    /// may still be in flight.
    names: AtomicU64,
}

impl LinuxWorkers {
    /// Workers on `layout`'s bridge and worker range; starts the warm pool when `opts.pool` asks for one.
    pub fn new(layout: &Layout, opts: LinuxOptions) -> LinuxWorkers {
        if opts.zygote {
            crate::use_zygote();
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let mut w = LinuxWorkers {
            range: layout.workers,
            gateway: layout.gateway,
            bridge: layout.bridge.clone(),
            timezone: layout.timezone.clone(),
            pool: None,
            names: AtomicU64::new(seed >> 8),
            opts,
        };
        w.pool = w.start_pool(layout);
        w
    }

    /// The warm pool, if any (benchmarks read its counters).
    pub fn pool(&self) -> Option<&Pool> {
        self.pool.as_ref()
    }

    fn mode(&self, network: Network, addr: Ipv4Addr) -> NetworkMode {
        match network {
            Network::None => NetworkMode::None,
            Network::Shared => NetworkMode::Shared,
            Network::Vnet => NetworkMode::Vnet(Vnet {
                addr,
                prefix: 24,
                gateway: self.gateway,
                bridge: self.bridge.clone(),
                dns: self.gateway,
                host_netns: self.opts.host_netns.clone(),
            }),
        }
    }

    fn start_pool(&self, layout: &Layout) -> Option<Pool> {
        let nets = [Network::None, Network::Shared, Network::Vnet];
        let mut slots = Vec::new();
        for (size, network) in self.opts.pool.into_iter().zip(nets) {
            if size == 0 {
                continue;
            }
            let mut template = WorkerSpec::new("pool", &["true"], &self.opts.state_dir);
            template.network = self.mode(network, Ipv4Addr::UNSPECIFIED);
            template.cgroup_root = self.opts.cgroup_root.clone();
            template.timezone = Some(self.timezone.clone());
            // The layout's default turn limits, so a default turn writes no cgroup file.
            template.limits = Limits {
                memory_bytes: Some(layout.limits.memory_bytes),
                max_pids: Some(u64::from(layout.limits.pids)),
                cpu: None,
                timeout_ms: Some(layout.limits.timeout.as_millis() as u64),
                output_bytes: Some(layout.limits.output_bytes),
                allow_unlimited: self.opts.allow_unlimited,
            };
            slots.push(SlotConfig {
                template,
                size,
                lease_range: Some(self.range),
                fillers: if self.opts.pool_fillers == 0 {
                    2
                } else {
                    self.opts.pool_fillers
                },
            });
        }
        (!slots.is_empty()).then(|| Pool::start(slots))
    }

    fn next_name(&self) -> String {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        format!("t{:010x}", n & 0xff_ffff_ffff)
    }

    /// The Linux spec of `work` for a worker called `name`.
    fn spec(
        &self,
        work: &Work,
        name: &str,
        network: NetworkMode,
    ) -> Result<WorkerSpec, WorkerError> {
        let argv: Vec<&str> = work.argv.iter().map(String::as_str).collect();
        let mut w = WorkerSpec::new(name, &argv, &self.opts.state_dir);
        w.timezone = Some(self.timezone.clone());
        w.release = match work.release.as_deref() {
            None | Some("host") => ReleaseRef::Host,
            Some(other) => {
                let dir = self.opts.state_dir.join("releases").join(other);
                if !dir.join("usr").is_dir() {
                    return Err(WorkerError::Invalid {
                        field: "release",
                        why: format!(
                            "release {other:?} is not bootstrapped ({} has no usr/)\n  fix: `warden release bootstrap {other}`, or use --release host",
                            dir.display()
                        ),
                    });
                }
                ReleaseRef::Dir(dir)
            }
        };
        w.network = network;
        w.cgroup_root = self.opts.cgroup_root.clone();
        w.user = if work.root {
            Some((0, 0))
        } else {
            self.opts.user
        };
        w.limits = Limits {
            memory_bytes: work.limits.memory_bytes,
            max_pids: work.limits.pids,
            cpu: None,
            timeout_ms: work.limits.timeout.map(|t| t.as_millis() as u64),
            output_bytes: work.limits.output_bytes,
            allow_unlimited: self.opts.allow_unlimited,
        };
        w.env.extend(work.env.iter().cloned());
        if let Some(cwd) = &work.cwd {
            w.cwd = cwd.clone();
        }
        w.binds = work
            .mounts
            .iter()
            .map(|m| Bind {
                source: m.source.clone(),
                target: m.target.clone(),
                writable: m.writable,
            })
            .collect();
        Ok(w)
    }

    /// A parked worker for a plain argv turn (host release, no mounts, nothing on stdin), if one is ready.
    fn take_parked(&self, work: &Work) -> Option<crate::Parked> {
        let pool = self.pool.as_ref()?;
        let plain = work.mounts.is_empty()
            && matches!(work.release.as_deref(), None | Some("host"))
            && matches!(&work.stdio, Stdio::Stream(input) if input.is_empty());
        if !plain {
            return None;
        }
        let mode = self.mode(work.network, Ipv4Addr::UNSPECIFIED);
        pool.take(&PoolKey::new(&ReleaseRef::Host, &mode))
    }
}

/// Kills the worker `name`'s init (pid 1 of its namespaces: everything in it dies) if it is recorded and alive.
fn kill_worker(state_dir: &Path, name: &str) {
    let Ok(rec) = Record::load(&record::record_path(state_dir, name)) else {
        return;
    };
    if let (Some(pid), Some(start)) = (rec.init_pid, rec.init_start) {
        if record::is_alive(pid, start) {
            // A pid whose start time was just checked.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Runs `body` while a watcher kills the worker `name` for as long as `cancel` is set: the record may not name
/// the init yet when the cancel arrives, so it retries until `body` returns. The watcher looks at `cancel` every
/// 50 ms but wakes at once when `body` returns (dropping `done`): the turn does not wait out its interval
/// (a wait on `cancel` itself added up to 50 ms to every turn).
fn with_cancel<T>(state_dir: &Path, name: &str, cancel: &Cancel, body: impl FnOnce() -> T) -> T {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = finished.recv_timeout(CANCEL_POLL) {
                if cancel.is_cancelled() {
                    kill_worker(state_dir, name);
                }
            }
        });
        let r = body();
        drop(done);
        r
    })
}

/// How often a running worker's watcher looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(20);

fn io<'a>(stdio: &Stdio, on_output: &'a mut dyn FnMut(OutputStream, &[u8])) -> Io<'a> {
    match stdio {
        Stdio::Inherit => Io::Inherit,
        Stdio::Stream(input) => Io::Stream {
            stdin: input.clone(),
            on_output,
        },
    }
}

/// The Linux output callback that hands chunks to `events`.
fn forward(events: &mut dyn Events) -> impl FnMut(OutputStream, &[u8]) + '_ {
    move |s, b| {
        let stream = match s {
            OutputStream::Stdout => Stream::Stdout,
            OutputStream::Stderr => Stream::Stderr,
        };
        events.output(stream, b)
    }
}

fn outcome(name: &str, o: Outcome) -> HostOutcome {
    let end = match o.status {
        ExitKind::Exited(c) => End::Exited(c),
        ExitKind::Signaled(s) => End::Signaled(s),
        ExitKind::Limit(LimitKind::Timeout) => End::Limit(HostLimit::Timeout),
        ExitKind::Limit(LimitKind::Memory) => End::Limit(HostLimit::Memory),
        ExitKind::Limit(LimitKind::Pids) => End::Limit(HostLimit::Pids),
        ExitKind::Limit(LimitKind::Output) => End::Limit(HostLimit::Output),
    };
    HostOutcome {
        worker: name.to_string(),
        end,
        timings: serde_json::to_value(&o.timings).unwrap_or_default(),
        cleanup_problems: Vec::new(),
    }
}

fn backend_err(e: Error) -> WorkerError {
    match e {
        Error::Spec { field, value, why } => WorkerError::Invalid {
            field,
            why: format!("worker failed: invalid worker {field} {value:?}: {why}"),
        },
        other => WorkerError::Backend(other.to_string()),
    }
}

impl Workers for LinuxWorkers {
    fn backend(&self) -> &'static str {
        "linux"
    }

    fn run(
        &self,
        work: &Work,
        events: &mut dyn Events,
        cancel: &Cancel,
    ) -> Result<HostOutcome, WorkerError> {
        let state_dir = self.opts.state_dir.as_path();
        if let Some(parked) = self.take_parked(work) {
            let name = parked.name().to_string();
            let spec = self.spec(work, &name, NetworkMode::None)?;
            let turn = Turn::from_spec(&spec);
            // `started` before output: the caller marks the turn running with this name.
            events.started(&name);
            let mut on_output = forward(events);
            return with_cancel(state_dir, &name, cancel, || {
                parked.run(&turn, io(&work.stdio, &mut on_output))
            })
            .map(|o| outcome(&name, o))
            .map_err(backend_err);
        }
        // A VNET worker is named after its leased address; the lease is held until `run` returns.
        let take_lease = || {
            crate::lease(state_dir, self.range)
                .map_err(|e| WorkerError::Backend(format!("failed to lease a worker address: {e}")))
        };
        let mut lease = match work.network {
            Network::Vnet => Some(take_lease()?),
            _ => None,
        };
        // Leases skipped because their name was in use; held until `run` returns so the next
        // lease cannot pick them again.
        let mut skipped = Vec::new();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let (name, addr) = match &lease {
                Some(l) => (l.worker_name(), l.addr()),
                None => (self.next_name(), Ipv4Addr::UNSPECIFIED),
            };
            let spec = self.spec(work, &name, self.mode(work.network, addr))?;
            if attempts == 1 {
                events.started(&name);
            }
            let mut on_output = forward(events);
            let r = with_cancel(state_dir, &name, cancel, || {
                crate::run(&spec, io(&work.stdio, &mut on_output))
            });
            match r {
                // Another live worker (a previous server's, being torn down) holds the name: pick another.
                Err(Error::NameInUse { .. }) if lease.is_none() && attempts < 3 => continue,
                // Names are machine-wide while leases are per state directory: another state
                // directory's worker, or a killed server's not yet reaped, holds this address's name.
                // Lease the next address (the one held is skipped while we hold it).
                Err(Error::NameInUse { .. }) if lease.is_some() && attempts < 8 => {
                    let next = take_lease()?;
                    skipped.extend(lease.replace(next));
                    continue;
                }
                r => return r.map(|o| outcome(&name, o)).map_err(backend_err),
            }
        }
    }

    fn reap_orphans(&self) -> Result<Vec<String>, WorkerError> {
        crate::reap_orphans(&self.opts.state_dir).map_err(|e| WorkerError::Backend(e.to_string()))
    }

    fn list(&self) -> Vec<WorkerInfo> {
        let dir = &self.opts.state_dir;
        record::list(dir)
            .into_iter()
            .map(|name| {
                let rec = Record::load(&record::record_path(dir, &name)).ok();
                WorkerInfo {
                    alive: rec.as_ref().is_some_and(|r| r.owner_alive()),
                    detail: serde_json::json!({
                        "owner_pid": rec.as_ref().map(|r| r.owner_pid),
                        "init_pid": rec.as_ref().and_then(|r| r.init_pid),
                        "veth": rec.as_ref().and_then(|r| r.veth.clone()),
                    }),
                    name,
                }
            })
            .collect()
    }

    fn file_owner(&self) -> (u32, u32) {
        self.opts.user.unwrap_or(DEFAULT_USER)
    }

    fn node(&self) -> Result<PathBuf, WorkerError> {
        // A worker on the host release sees the host's /usr: the host's node is the worker's.
        warden_agent::find_node().map_err(|e| WorkerError::Backend(e.to_string()))
    }

    fn metrics(&self) -> String {
        use std::fmt::Write;
        let mut body = String::new();
        let Some(pool) = &self.pool else {
            return body;
        };
        let _ = writeln!(
            body,
            "# HELP warden_pool_parked Workers parked and ready, per network mode."
        );
        let _ = writeln!(body, "# TYPE warden_pool_parked gauge");
        for key in pool.keys() {
            let parked = pool.stats(&key).map_or(0, |s| s.parked);
            let mode = format!("{:?}", key.network).to_lowercase();
            let _ = writeln!(body, "warden_pool_parked{{network=\"{mode}\"}} {parked}");
        }
        body
    }

    fn shutdown(&self) {
        if let Some(pool) = &self.pool {
            pool.shutdown();
        }
    }
}
