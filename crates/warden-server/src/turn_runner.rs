//! Runs one turn on a worker through the one worker contract (`warden_host::worker`, either backend): builds
//! the [`Work`], streams output into the store as events, cancels the worker through the contract, and records
//! the outcome.

use std::sync::Arc;

use warden_host::worker::{self, Events, Stdio, Stream};
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
    let agent = match &spec.work {
        Work::Prompt(_) => Some(agent_turn::prepare(app, &spec.tenant, id.as_str()).await?),
        Work::Argv(_) => None,
    };
    let work = work_of(&spec, agent.as_ref());
    let (outcome, sink) = match run_worker(app, id, handle, work, agent.is_some()).await {
        Ok(r) => r,
        // Killed while it was being set up: the cancel is what happened, not an infrastructure failure.
        Err(_) if handle.cancel_reason().is_some() => {
            return Ok(cancelled_outcome(
                handle.cancel_reason().unwrap_or("cancelled"),
            ))
        }
        Err(e) => return Err(e),
    };
    let outcome = outcome_of(outcome, sink, handle);
    if agent.is_some() && outcome.status == Some(TurnStatus::Succeeded) {
        if let Err(e) = app.store.record_session_turn(&spec.tenant) {
            tracing::warn!(turn = %id, error = %e, "failed to count the session turn");
        }
    }
    Ok(outcome)
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
    w.network = match spec.network {
        Network::None => worker::Network::None,
        Network::Shared => worker::Network::Shared,
        Network::Vnet => worker::Network::Vnet,
    };
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

/// Runs `work` on a blocking thread; the turn is marked running when the worker has its name, and a cancel of
/// the turn reaches the worker through the contract.
async fn run_worker(
    app: &Arc<App>,
    id: &TurnId,
    handle: &Arc<RunningTurn>,
    work: worker::Work,
    agent: bool,
) -> Result<(worker::Outcome, Sink), String> {
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
