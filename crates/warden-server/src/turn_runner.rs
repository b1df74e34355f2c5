//! Runs one turn on a worker: builds the [`WorkerSpec`], streams output into the store as
//! events, kills the worker on cancel, and records the outcome.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use warden_linux::{ExitKind, Io, LimitKind, NetworkMode, OutputStream, Vnet, WorkerSpec};
use warden_store::{EventKind, Store, TurnId, TurnOutcome, TurnStatus};

use crate::agent_turn::{self, AgentPrep};
use crate::request::{Network, TurnSpec, Work};
use crate::state::{lock, App, RunningTurn};

/// Everything the worker produced, gathered on the blocking thread that runs it.
struct Sink {
    store: Arc<Store>,
    id: TurnId,
    events: tokio::sync::watch::Sender<u64>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    cap: usize,
    parser: Option<warden_agent::EventParser>,
    /// An incomplete UTF-8 sequence at the end of the last chunk, per stream (stdout, stderr).
    partial: [Vec<u8>; 2],
}

/// Splits `bytes` (after `carry`) into the longest valid UTF-8 text and a short incomplete tail,
/// so a character cut between two reads is not stored as two replacement characters.
fn take_text(carry: &mut Vec<u8>, bytes: &[u8]) -> String {
    carry.extend_from_slice(bytes);
    let cut = match std::str::from_utf8(carry) {
        Ok(_) => carry.len(),
        // An incomplete sequence at the very end: keep it for the next chunk.
        Err(e) if e.error_len().is_none() && carry.len() - e.valid_up_to() < 4 => e.valid_up_to(),
        Err(_) => carry.len(),
    };
    let rest = carry.split_off(cut);
    let text = String::from_utf8_lossy(carry).into_owned();
    *carry = rest;
    text
}

impl Sink {
    fn on_output(&mut self, stream: OutputStream, bytes: &[u8]) {
        let (buf, kind) = match stream {
            OutputStream::Stdout => (&mut self.stdout, EventKind::Stdout),
            OutputStream::Stderr => (&mut self.stderr, EventKind::Stderr),
        };
        let room = self.cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..room.min(bytes.len())]);
        match (&mut self.parser, stream) {
            // pi's stdout is its event stream: store typed agent events instead of raw chunks.
            (Some(parser), OutputStream::Stdout) => {
                for ev in parser.feed(bytes) {
                    if let Ok(json) = serde_json::to_string(&ev) {
                        self.append(EventKind::Agent, &json);
                    }
                }
            }
            _ => {
                let idx = usize::from(stream == OutputStream::Stderr);
                let text = take_text(&mut self.partial[idx], bytes);
                if !text.is_empty() {
                    self.append(kind, &text);
                }
            }
        }
    }

    fn append(&self, kind: EventKind, data: &str) {
        if let Err(e) = self.store.append_event(&self.id, kind, data) {
            tracing::warn!(turn = %self.id, error = %e, "failed to store an event");
        }
        self.events.send_modify(|n| *n += 1);
    }
}

/// Runs the turn `id` (already handed out by the queue) to its end and records it.
pub async fn run(app: Arc<App>, id: &TurnId, handle: Arc<RunningTurn>) {
    let outcome = match run_inner(&app, id, &handle).await {
        Ok(o) => o,
        Err(message) => {
            tracing::warn!(turn = %id, %message, "turn failed before or around its worker");
            TurnOutcome {
                status: Some(TurnStatus::Failed),
                failure: Some("infrastructure".into()),
                stderr: Some(format!("warden: {message}\n")),
                ..TurnOutcome::default()
            }
        }
    };
    // Answer the turn's waiters first; its `end` event, metrics and log line after they ran.
    if let Some(view) = app.finish_turn(id, &outcome) {
        tokio::task::yield_now().await;
        app.finish_end(&view);
    }
}

fn cancelled_outcome(reason: &str) -> TurnOutcome {
    TurnOutcome {
        status: Some(TurnStatus::Cancelled),
        failure: Some(reason.to_string()),
        ..TurnOutcome::default()
    }
}

async fn run_inner(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
) -> Result<TurnOutcome, String> {
    let cached = lock(&app.specs).remove(id);
    let spec: TurnSpec = match cached {
        Some(s) => s,
        None => {
            let turn = app
                .store
                .get_turn(id)
                .map_err(|e| format!("failed to load turn: {e}"))?
                .ok_or_else(|| format!("turn {id} vanished from the store"))?;
            serde_json::from_value(turn.request.clone())
                .map_err(|e| format!("failed to decode the stored request: {e}"))?
        }
    };
    if let Some(reason) = handle.cancel_reason() {
        return Ok(cancelled_outcome(reason));
    }
    let agent = match &spec.work {
        Work::Prompt(_) => Some(agent_turn::prepare(app, &spec.tenant).await?),
        Work::Argv(_) => None,
    };
    // An argv turn takes a parked worker when the pool has one ready (never waits for one).
    if agent.is_none() {
        if let Some(parked) = take_parked(app, spec.network) {
            let name = parked.name().to_string();
            let wspec = worker_spec(app, &spec, &name, NetworkMode::None, None);
            let job = Job::Pooled(parked, warden_linux::Turn::from_spec(&wspec));
            // The turn is marked running while its worker already runs (off its critical path).
            return match run_worker(app, id, handle, job, Vec::new(), false, Some(&name)).await {
                Ok((outcome, sink)) => Ok(outcome_of(outcome, sink, handle)),
                Err(RunError::NameInUse) => Err(format!("worker name {name} is in use")),
                Err(RunError::Other(m)) => Err(m),
            };
        }
    }
    // A vnet worker is named after its leased address; the lease is held until `run` returns.
    let lease = match spec.network {
        Network::Vnet => Some(
            warden_linux::lease(&app.opts.state_dir, app.layout.workers)
                .map_err(|e| format!("failed to lease a worker address: {e}"))?,
        ),
        _ => None,
    };
    let mut attempts = 0;
    loop {
        attempts += 1;
        let name = match &lease {
            Some(l) => l.worker_name(),
            None => app.worker_name(),
        };
        let network = match (&lease, spec.network) {
            (Some(l), _) => NetworkMode::Vnet(Vnet {
                addr: l.addr(),
                prefix: 24,
                gateway: app.layout.gateway,
                bridge: app.layout.bridge.clone(),
                dns: app.layout.gateway,
                host_netns: app.opts.host_netns.clone(),
            }),
            (None, Network::Shared) => NetworkMode::Shared,
            (None, _) => NetworkMode::None,
        };
        let wspec = worker_spec(app, &spec, &name, network, agent.as_ref());
        let stdin = match &spec.work {
            Work::Prompt(p) => p.clone().into_bytes(),
            Work::Argv(_) => Vec::new(),
        };
        let job = Job::Cold(wspec);
        // Marked running (once) while the worker starts, as for a pooled turn.
        let mark = (attempts == 1).then_some(name.as_str());
        match run_worker(app, id, handle, job, stdin, agent.is_some(), mark).await {
            // Another live worker (a previous server's, being torn down) holds the name: pick another.
            Err(RunError::NameInUse) if lease.is_none() && attempts < 3 => continue,
            Err(RunError::NameInUse) => return Err(format!("worker name {name} is in use")),
            Err(RunError::Other(m)) => return Err(m),
            Ok((outcome, sink)) => {
                let outcome = outcome_of(outcome, sink, handle);
                if agent.is_some() && outcome.status == Some(TurnStatus::Succeeded) {
                    if let Err(e) = app.store.record_session_turn(&spec.tenant) {
                        tracing::warn!(turn = %id, error = %e, "failed to count the session turn");
                    }
                }
                return Ok(outcome);
            }
        }
    }
}

fn worker_spec(
    app: &App,
    spec: &TurnSpec,
    name: &str,
    network: NetworkMode,
    agent: Option<&AgentPrep>,
) -> WorkerSpec {
    let argv: Vec<&str> = match (&spec.work, agent) {
        (Work::Argv(a), _) => a.iter().map(String::as_str).collect(),
        (Work::Prompt(_), Some(prep)) => prep.argv.iter().map(String::as_str).collect(),
        (Work::Prompt(_), None) => vec!["false"],
    };
    let mut w = WorkerSpec::new(name, &argv, &app.opts.state_dir);
    w.network = network;
    w.cgroup_root = app.opts.cgroup_root.clone();
    w.user = app.opts.worker_user;
    w.limits = warden_linux::Limits {
        memory_bytes: Some(spec.limits.memory_bytes),
        max_pids: Some(spec.limits.pids),
        cpu: None,
        timeout_ms: Some(spec.limits.timeout_ms),
        output_bytes: Some(spec.limits.output_bytes),
    };
    if let Some(prep) = agent {
        w.env.extend(prep.env.iter().cloned());
        w.binds = prep.binds.clone();
        w.cwd = prep.cwd.clone();
    }
    w.env
        .extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    w
}

/// A parked worker for a turn on `network`, if the pool has one ready.
fn take_parked(app: &App, network: Network) -> Option<warden_linux::Parked> {
    let pool = app.pool.as_ref()?;
    let mode = match network {
        Network::None => NetworkMode::None,
        Network::Shared => NetworkMode::Shared,
        Network::Vnet => NetworkMode::Vnet(Vnet {
            addr: std::net::Ipv4Addr::UNSPECIFIED,
            prefix: 24,
            gateway: app.layout.gateway,
            bridge: app.layout.bridge.clone(),
            dns: app.layout.gateway,
            host_netns: app.opts.host_netns.clone(),
        }),
    };
    pool.take(&warden_linux::PoolKey::new(
        &warden_linux::ReleaseRef::Host,
        &mode,
    ))
}

/// What runs a turn: a cold worker made for it, or a parked one from the pool.
enum Job {
    Cold(WorkerSpec),
    Pooled(warden_linux::Parked, warden_linux::Turn),
}

enum RunError {
    NameInUse,
    Other(String),
}

async fn run_worker(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
    job: Job,
    stdin: Vec<u8>,
    agent: bool,
    mark_running: Option<&str>,
) -> Result<(warden_linux::Outcome, Sink), RunError> {
    let mut sink = Sink {
        store: app.store.clone(),
        id: id.clone(),
        events: app.events.clone(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        cap: app.store.limits().max_output_bytes,
        parser: agent.then(warden_agent::EventParser::new),
        partial: [Vec::new(), Vec::new()],
    };
    let name = match &job {
        Job::Cold(wspec) => wspec.name.clone(),
        Job::Pooled(parked, _) => parked.name().to_string(),
    };
    let state_dir = app.opts.state_dir.clone();
    let mut job = tokio::task::spawn_blocking(move || {
        let io = Io::Stream {
            stdin,
            on_output: &mut |s, b| sink.on_output(s, b),
        };
        let r = match job {
            Job::Cold(wspec) => warden_linux::run(&wspec, io),
            Job::Pooled(parked, turn) => parked.run(&turn, io),
        };
        (r, sink)
    });
    if let Some(worker) = mark_running {
        if let Err(e) = app.store.start_turn(id, worker) {
            // The worker runs regardless; the turn's end is still recorded.
            tracing::warn!(turn = %id, error = %e, "failed to mark the turn running");
        }
    }
    let joined = tokio::select! {
        j = &mut job => j,
        _ = handle.notify.notified() => {
            // Kill the worker's init until `run` reports: the record may not name it yet.
            loop {
                kill_worker(&state_dir, &name);
                tokio::select! {
                    j = &mut job => break j,
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                }
            }
        }
    };
    let (result, sink) =
        joined.map_err(|e| RunError::Other(format!("worker thread failed: {e}")))?;
    match result {
        Ok(o) => Ok((o, sink)),
        Err(warden_linux::Error::NameInUse { .. }) => Err(RunError::NameInUse),
        Err(e) => Err(RunError::Other(format!("failed to run the worker: {e}"))),
    }
}

/// SIGKILLs a worker's init (pid 1 of its namespace: everything in it dies) if it is recorded.
fn kill_worker(state_dir: &Path, name: &str) {
    let path = warden_linux::record::record_path(state_dir, name);
    let Ok(rec) = warden_linux::record::Record::load(&path) else {
        return;
    };
    if let (Some(pid), Some(start)) = (rec.init_pid, rec.init_start) {
        if warden_linux::record::is_alive(pid, start) {
            // SAFETY: kill(2) on a pid whose start time was just checked.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Maps how the worker ended (and, for agent turns, what pi said) onto the stored outcome.
fn outcome_of(o: warden_linux::Outcome, sink: Sink, handle: &RunningTurn) -> TurnOutcome {
    let exit_code = match o.status {
        ExitKind::Exited(c) => Some(c),
        _ => None,
    };
    let mut out = TurnOutcome {
        exit_code,
        stdout: Some(text(&sink.stdout)),
        stderr: Some(text(&sink.stderr)),
        ..TurnOutcome::default()
    };
    if let Some(reason) = handle.cancel_reason() {
        out.status = Some(TurnStatus::Cancelled);
        out.failure = Some(reason.to_string());
        return out;
    }
    let worker_failure = match o.status {
        ExitKind::Exited(_) => None,
        ExitKind::Signaled(_) => Some("signal"),
        ExitKind::Limit(LimitKind::Timeout) => Some("timeout"),
        ExitKind::Limit(LimitKind::Memory) => Some("memory_limit"),
        ExitKind::Limit(LimitKind::Pids) => Some("pids_limit"),
        ExitKind::Limit(LimitKind::Output) => Some("output_limit"),
    };
    match sink.parser {
        Some(parser) => {
            let r = parser.finish_with_exit(exit_code);
            out.reply = Some(r.reply.clone());
            out.usage = serde_json::to_value(r.usage).ok();
            out.stop_reason = r.stop_reason.as_ref().map(|s| s.as_str().to_string());
            let failure = worker_failure
                .map(str::to_string)
                .or_else(|| r.failure.as_ref().map(|f| f.code().to_string()));
            if let Some(f) = &r.failure {
                // The detail (e.g. the provider's error message) goes where people look for it.
                let stderr = out.stderr.get_or_insert_with(String::new);
                stderr.push_str(&format!("warden: agent turn failed: {f}\n"));
            }
            out.status = Some(if failure.is_none() {
                TurnStatus::Succeeded
            } else {
                TurnStatus::Failed
            });
            out.failure = failure;
        }
        None => {
            let failure = worker_failure.map(str::to_string).or(match exit_code {
                Some(0) => None,
                _ => Some("exit_code".to_string()),
            });
            out.status = Some(if failure.is_none() {
                TurnStatus::Succeeded
            } else {
                TurnStatus::Failed
            });
            out.failure = failure;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::take_text;

    #[test]
    fn a_character_split_between_chunks_is_kept_whole() {
        let mut carry = Vec::new();
        let e = "é".as_bytes();
        assert_eq!(take_text(&mut carry, &[b'a', e[0]]), "a");
        assert_eq!(take_text(&mut carry, &[e[1], b'b']), "éb");
        assert!(carry.is_empty());
        // Invalid bytes are not held back forever.
        assert_eq!(take_text(&mut carry, &[0xff, b'c']), "\u{fffd}c");
    }
}
