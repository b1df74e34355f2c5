//! Runs one turn on a worker through the one worker contract (`warden_host::worker`, either backend): builds
//! the [`Work`], streams output into the store as events, cancels the worker through the contract, and records
//! the outcome.

use std::sync::Arc;
use std::time::Duration;

use warden_host::worker::{self, Events, Stdio, Stream};
use warden_store::{EventKind, Store, TurnId, TurnOutcome, TurnStatus};

use warden_agent::TurnEnd;

use crate::agent_turn::{self, AgentPrep};
use crate::request::{Network, TurnSpec, Work};
use crate::state::{lock, App, RunningTurn};
use crate::warm::{self, Credential, Fit, Parked};

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

impl Events for Sink {
    fn started(&mut self, worker: &str) {
        if let Err(e) = self.store.start_turn(&self.id, worker) {
            // The worker runs regardless; the turn's end is still recorded.
            tracing::warn!(turn = %self.id, error = %e, "failed to mark the turn running");
        }
    }

    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        let (buf, kind) = match stream {
            Stream::Stdout => (&mut self.stdout, EventKind::Stdout),
            Stream::Stderr => (&mut self.stderr, EventKind::Stderr),
        };
        let room = self.cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..room.min(bytes.len())]);
        match (&mut self.parser, stream) {
            // pi's stdout is its event stream: store typed agent events instead of raw chunks.
            (Some(parser), Stream::Stdout) => {
                for ev in parser.feed(bytes) {
                    if let Ok(json) = serde_json::to_string(&ev) {
                        self.append(EventKind::Agent, &json);
                    }
                }
            }
            _ => {
                let idx = usize::from(stream == Stream::Stderr);
                let text = take_text(&mut self.partial[idx], bytes);
                if !text.is_empty() {
                    self.append(kind, &text);
                }
            }
        }
    }
}

impl Sink {
    fn append(&self, kind: EventKind, data: &str) {
        if let Err(e) = self.store.append_event(&self.id, kind, data) {
            tracing::warn!(turn = %self.id, error = %e, "failed to store an event");
        }
        self.events.send_modify(|n| *n += 1);
    }
}

/// Starts as many queued turns as the limits allow, each on its own task; a finished turn dispatches again.
pub fn dispatch(app: &Arc<App>) {
    loop {
        let next = {
            let mut q = lock(&app.queue);
            let Some((tenant, id)) = q.start_next() else {
                return;
            };
            let handle = Arc::new(RunningTurn::default());
            lock(&app.running).insert(id.clone(), handle.clone());
            (tenant, id, handle)
        };
        let app = app.clone();
        tokio::spawn(async move {
            let (tenant, id, handle) = next;
            run(app.clone(), &id, handle).await;
            lock(&app.queue).done(&tenant);
            lock(&app.running).remove(&id);
            dispatch(&app);
        });
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
    match &spec.work {
        Work::Prompt(prompt) => run_agent(app, id, handle, &spec, prompt).await,
        Work::Argv(_) => run_cold(app, id, handle, &spec, None).await,
    }
}

/// An agent turn: on the tenant's warm agent when one is parked and fits, else cold; then a warm agent is
/// parked for the tenant (the same one after a warm turn that went well, else a new one).
async fn run_agent(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
    spec: &TurnSpec,
    prompt: &str,
) -> Result<TurnOutcome, String> {
    let (parked, epoch) = app.warm.begin(&spec.tenant, &Fit::of(spec));
    let mut again = None;
    let served = match parked {
        Some(p) => match run_warm(app, id, handle, spec, prompt, p).await? {
            Warm::Served(served) => {
                let (outcome, p) = *served;
                again = p;
                Some(outcome)
            }
            Warm::Unusable(why) => {
                tracing::warn!(turn = %id, %why, "warm agent unusable; running the turn cold");
                None
            }
        },
        None => None,
    };
    let outcome = match (served, handle.cancel_reason()) {
        (Some(o), _) => o,
        (None, Some(reason)) => return Ok(cancelled_outcome(reason)),
        (None, None) => {
            let prep = agent_turn::prepare(app, &spec.tenant, id.as_str()).await?;
            run_cold(app, id, handle, spec, Some(&prep)).await?
        }
    };
    if outcome.status == Some(TurnStatus::Succeeded) {
        if let Err(e) = app.store.record_session_turn(&spec.tenant) {
            tracing::warn!(turn = %id, error = %e, "failed to count the session turn");
        }
    }
    match again {
        Some(p) => app.warm.park(&spec.tenant, p, epoch, app.opts.warm.max),
        None => {
            if let Err(e) = start_and_park(app, spec, epoch) {
                tracing::warn!(turn = %id, error = %e, "failed to start a warm agent");
            }
        }
    }
    Ok(outcome)
}

/// A turn on a fresh worker (argv, or a cold pi with `agent`).
async fn run_cold(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
    spec: &TurnSpec,
    agent: Option<&AgentPrep>,
) -> Result<TurnOutcome, String> {
    let work = work_of(spec, agent);
    let (outcome, sink) = match run_worker(app, id, handle, work, agent.is_some()).await {
        Ok(r) => r,
        // Killed while it was being set up: the cancel is what happened, not an infrastructure failure.
        Err(e) => return handle.cancel_reason().map(cancelled_outcome).ok_or(e),
    };
    Ok(outcome_of(outcome, sink, handle))
}

/// What became of a turn offered to a warm agent.
enum Warm {
    /// The agent ran the turn; the agent again if it can take another.
    Served(Box<(TurnOutcome, Option<Parked>)>),
    /// The agent could not start the turn (it was stopped); run it cold.
    Unusable(String),
}

/// Runs the turn on a warm agent, on a blocking thread: its wall-clock and output limits are the turn's, its
/// gateway token is open only while it runs, its events go to the store as a cold pi's do.
async fn run_warm(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
    spec: &TurnSpec,
    prompt: &str,
    mut p: Parked,
) -> Result<Warm, String> {
    let mut sink = new_sink(app, id, true);
    let stop = handle.stop.clone();
    let timeout = std::time::Duration::from_millis(spec.limits.timeout_ms);
    let cap = spec.limits.output_bytes;
    let (prompt, turn) = (prompt.to_string(), id.to_string());
    let (p, result, sink) = tokio::task::spawn_blocking(move || {
        let r = warm_turn(&mut p, &turn, &prompt, &mut sink, timeout, cap, &stop);
        (p, r, sink)
    })
    .await
    .map_err(|e| format!("warm agent thread failed: {e}"))?;
    let end = match result {
        Ok(end) => end,
        Err(why) => {
            app.warm.retire(p);
            return Ok(Warm::Unusable(why));
        }
    };
    app.warm.served();
    tracing::debug!(turn = %id, ?end, "warm turn");
    let mut sink = sink;
    let worker_end = match &end {
        TurnEnd::Done => worker::End::Exited(0),
        TurnEnd::Cancelled => worker::End::Signaled(9),
        TurnEnd::Limit(k) => worker::End::Limit(*k),
        TurnEnd::Refused(e) => {
            sink.stderr
                .extend_from_slice(format!("warden: pi refused the prompt: {e}\n").as_bytes());
            worker::End::Exited(1)
        }
        TurnEnd::Died(Ok(e)) => *e,
        TurnEnd::Died(Err(e)) => {
            app.warm.retire(p);
            return Err(format!("the warm agent's worker failed: {e}"));
        }
    };
    let outcome = worker::Outcome {
        worker: p.agent.worker().unwrap_or_default().to_string(),
        end: worker_end,
        timings: serde_json::json!({"warm": true}),
        cleanup_problems: Vec::new(),
    };
    let again = match end.reusable() {
        true => Some(p),
        false => {
            app.warm.retire(p);
            None
        }
    };
    Ok(Warm::Served(Box::new((
        outcome_of(outcome, sink, handle),
        again,
    ))))
}

/// The blocking part of a warm turn; `Err` when the agent could not start the turn at all.
fn warm_turn(
    p: &mut Parked,
    turn: &str,
    prompt: &str,
    sink: &mut Sink,
    timeout: std::time::Duration,
    cap: u64,
    stop: &worker::Cancel,
) -> Result<TurnEnd, String> {
    // Waiting for a pi still starting counts against the turn's time limit, as its start does when cold.
    let deadline = std::time::Instant::now() + timeout;
    if !p.ready {
        p.agent.wait_ready(deadline, stop)?;
        p.ready = true;
    }
    if !p.agent.alive() {
        return Err("its worker ended while parked".into());
    }
    let worker = p.agent.worker().unwrap_or_default().to_string();
    let _open = match &p.token {
        Credential::Parked(t) => Some(t.activate(turn)),
        _ => None,
    };
    sink.started(&worker);
    Ok(p.agent.turn(prompt, sink, deadline, Some(cap), stop))
}

/// The network of a worker for a turn's network.
pub(crate) fn network(n: Network) -> worker::Network {
    match n {
        Network::None => worker::Network::None,
        Network::Shared => worker::Network::Shared,
        Network::Vnet => worker::Network::Vnet,
    }
}

/// The worker's part of a turn: argv (or pi's), limits, network, env, mounts, stdin (the prompt).
fn work_of(spec: &TurnSpec, agent: Option<&AgentPrep>) -> worker::Work {
    let argv = match (&spec.work, agent) {
        (Work::Argv(a), _) => a.clone(),
        (Work::Prompt(_), Some(prep)) => prep.argv.clone(),
        (Work::Prompt(_), None) => vec!["false".to_string()],
    };
    let limits = worker::Limits {
        memory_bytes: Some(spec.limits.memory_bytes),
        pids: Some(spec.limits.pids),
        timeout: Some(std::time::Duration::from_millis(spec.limits.timeout_ms)),
        output_bytes: Some(spec.limits.output_bytes),
    };
    let mut w = worker::Work::new(argv, limits);
    w.network = network(spec.network);
    if let Some(prep) = agent {
        w.env.extend(prep.env.iter().cloned());
        w.mounts = prep.mounts.clone();
        w.cwd = Some(prep.cwd.clone());
    }
    w.env
        .extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Work::Prompt(p) = &spec.work {
        w.stdio = Stdio::Stream(p.clone().into_bytes());
    }
    w
}

fn new_sink(app: &Arc<App>, id: &TurnId, agent: bool) -> Sink {
    Sink {
        store: app.store.clone(),
        id: id.clone(),
        events: app.events.clone(),
        stdout: Vec::new(),
        stderr: Vec::new(),
        cap: app.store.limits().max_output_bytes,
        parser: agent.then(warden_agent::EventParser::new),
        partial: [Vec::new(), Vec::new()],
    }
}

/// Runs `work` on a blocking thread; the turn is marked running when the worker has its name, and a cancel of
/// the turn reaches the worker through the contract.
async fn run_worker(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
    work: worker::Work,
    agent: bool,
) -> Result<(worker::Outcome, Sink), String> {
    let mut sink = new_sink(app, id, agent);
    let workers = app.workers.clone();
    let stop = handle.stop.clone();
    let (result, sink) = tokio::task::spawn_blocking(move || {
        let r = workers.run(&work, &mut sink, &stop);
        (r, sink)
    })
    .await
    .map_err(|e| format!("worker thread failed: {e}"))?;
    let outcome = result.map_err(|e| format!("failed to run the worker: {e}"))?;
    for p in &outcome.cleanup_problems {
        tracing::warn!(turn = %id, worker = %outcome.worker, problem = %p, "worker teardown");
    }
    Ok((outcome, sink))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Maps how the worker ended (and, for agent turns, what pi said) onto the stored outcome.
fn outcome_of(o: worker::Outcome, sink: Sink, handle: &RunningTurn) -> TurnOutcome {
    let exit_code = match o.end {
        worker::End::Exited(c) => Some(c),
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
    let worker_failure = o.end.failure();
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

/// Starts a warm agent for `spec`'s tenant (pi in RPC mode on the tenant's session, limits, network and
/// environment of `spec`, no wall-clock or output limit of its own: each turn enforces the turn's) and parks
/// it unless a turn or `/new` of the tenant came since `epoch`.
fn start_and_park(app: &Arc<App>, spec: &TurnSpec, epoch: u64) -> Result<(), String> {
    let max = app.opts.warm.max;
    if max == 0 || *app.shutdown.borrow() {
        return Ok(());
    }
    let prep = agent_turn::prepare_warm(app, &spec.tenant)?;
    let limits = warden_host::worker::Limits {
        memory_bytes: Some(spec.limits.memory_bytes),
        pids: Some(spec.limits.pids),
        timeout: None,
        output_bytes: None,
    };
    let mut work = warden_host::worker::Work::new(prep.argv.clone(), limits);
    work.network = network(spec.network);
    work.env.extend(prep.env.iter().cloned());
    work.env
        .extend(spec.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    work.mounts = prep.mounts.clone();
    work.cwd = Some(prep.cwd.clone());
    let fifo_host = agent_turn::tenant_dir(&app.opts.state_dir, &spec.tenant)
        .join("pi")
        .join(warm::FIFO);
    let agent = warden_agent::WarmAgent::start(
        app.workers.clone(),
        work,
        &fifo_host,
        &std::path::Path::new(agent_turn::AGENT_DIR).join(warm::FIFO),
        app.workers.file_owner(),
    )?;
    app.warm
        .started
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let parked = Parked::new(agent, prep.token, Fit::of(spec));
    app.warm.park(&spec.tenant, parked, epoch, max);
    Ok(())
}

/// Stops idle agents every so often until shutdown.
pub fn spawn_expiry(app: &Arc<App>) {
    let idle = app.opts.warm.idle;
    if app.opts.warm.max == 0 {
        return;
    }
    let every = (idle / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
    let app = app.clone();
    let mut down = app.shutdown.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => app.warm.expire(idle),
                _ = down.wait_for(|s| *s) => return,
            }
        }
    });
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
