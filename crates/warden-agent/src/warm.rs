//! A warm agent: pi started in `--mode rpc` ([`crate::rpc`]) in a worker of the one worker contract before its
//! turn, so a turn pays only for the model. `warden serve` parks them per tenant and `warden bench --agent`
//! measures them; both drive them through [`WarmAgent`].
//!
//! The contract hands a worker its stdin up front, so pi reads its commands from a FIFO in its agent dir
//! instead (`sh -c 'exec pi … < FIFO'`). The worker runs on its own thread; its output comes back over a
//! channel and, during a turn, goes to that turn's [`Events`] with pi's command responses left out, so a turn
//! sees the same event lines as a cold pi in json mode (less json mode's leading `session` header).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::chown;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use warden_host::worker::{self, Cancel, End, Events, LimitKind, Outcome, Stream, Work, Workers};

use crate::rpc::{self, RpcLine};

/// How often a waiting turn looks at its cancel request (a cancel is seen within this).
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// What the worker's thread reports.
enum Msg {
    Started(String),
    Out(Stream, Vec<u8>),
    Ended(Result<Outcome, String>),
}

/// How a warm turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEnd {
    /// pi finished the prompt (`agent_end`); the agent can take another turn.
    Done,
    /// The turn's cancel was asked for; the agent was stopped.
    Cancelled,
    /// The turn went over its wall-clock or output limit; the agent was stopped.
    Limit(LimitKind),
    /// pi refused the prompt (its error); the agent was stopped.
    Refused(String),
    /// The worker ended during the turn (how, or why it could not run).
    Died(Result<End, String>),
}

impl TurnEnd {
    /// Whether the agent can serve another turn after this one.
    pub fn reusable(&self) -> bool {
        *self == TurnEnd::Done
    }
}

/// A long-lived RPC-mode pi in a worker.
pub struct WarmAgent {
    /// pi's commands (the FIFO's write end); `None` once closed.
    commands: Option<File>,
    rx: Receiver<Msg>,
    cancel: Cancel,
    thread: Option<JoinHandle<()>>,
    worker: Option<String>,
    ended: Option<Result<Outcome, String>>,
    /// Bytes of stdout after the last complete line.
    partial: Vec<u8>,
    seq: u64,
}

impl WarmAgent {
    /// Starts pi (`work.argv`: an RPC-mode argv, [`rpc::pi_rpc_argv`]) in a worker whose commands come from a
    /// FIFO made at `fifo_host` (owned by `owner`, the worker's user), seen inside the worker as `fifo_inside`.
    /// `work`'s stdin is ignored. Returns at once; [`WarmAgent::wait_ready`] waits for pi to answer.
    pub fn start(
        workers: Arc<dyn Workers>,
        mut work: Work,
        fifo_host: &Path,
        fifo_inside: &Path,
        owner: (u32, u32),
    ) -> Result<WarmAgent, String> {
        make_fifo(fifo_host, owner)?;
        // Read and write: opening never blocks waiting for pi, and pi sees end of file only when this closes.
        let commands = OpenOptions::new()
            .read(true)
            .write(true)
            .open(fifo_host)
            .map_err(|e| format!("failed to open {}: {e}", fifo_host.display()))?;
        let mut argv = vec![
            "/bin/sh".to_string(),
            "-c".to_string(),
            format!("exec \"$0\" \"$@\" < '{}'", fifo_inside.display()),
        ];
        argv.append(&mut work.argv);
        work.argv = argv;
        work.stdio = worker::Stdio::Stream(Vec::new());
        let (tx, rx) = channel();
        let cancel = Cancel::new();
        let stop = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("warm-agent".into())
            .spawn(move || {
                let mut sink = Forward(tx.clone());
                let r = workers.run(&work, &mut sink, &stop);
                let _ = tx.send(Msg::Ended(r.map_err(|e| e.to_string())));
            })
            .map_err(|e| format!("failed to start a warm agent's thread: {e}"))?;
        Ok(WarmAgent {
            commands: Some(commands),
            rx,
            cancel,
            thread: Some(thread),
            worker: None,
            ended: None,
            partial: Vec::new(),
            seq: 0,
        })
    }

    /// The worker's name, once it has one.
    pub fn worker(&self) -> Option<&str> {
        self.worker.as_deref()
    }

    /// Whether the worker still runs (reads what it reported meanwhile; output between turns is dropped).
    pub fn alive(&mut self) -> bool {
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
        }
        self.ended.is_none()
    }

    fn take(&mut self, m: Msg) -> Option<(Stream, Vec<u8>)> {
        match m {
            Msg::Started(name) => self.worker = Some(name),
            Msg::Out(s, b) => return Some((s, b)),
            Msg::Ended(r) => self.ended = Some(r),
        }
        None
    }

    fn next_id(&mut self, what: &str) -> String {
        self.seq += 1;
        format!("{what}-{}", self.seq)
    }

    /// Waits until pi answers a command (it has started and read its session), up to `deadline`.
    pub fn wait_ready(&mut self, deadline: Instant, cancel: &Cancel) -> Result<(), String> {
        let id = self.next_id("ready");
        self.send(&rpc::ready_line(&id))?;
        let mut found = None;
        let end = self.pump(deadline, cancel, &mut |_, line| match line {
            Some(RpcLine::Response { id: got, error }) if *got == id => {
                found = Some(error.clone());
                true
            }
            _ => false,
        });
        match (found, end) {
            (Some(None), _) => Ok(()),
            (Some(Some(e)), _) => Err(format!("pi refused a command: {e}")),
            (None, Some(end)) => Err(format!("the warm agent did not start: {end:?}")),
            (None, None) => Err("the warm agent did not start".into()),
        }
    }

    /// Runs one turn: `message` as the prompt, pi's event lines (and its stderr) to `events` until `agent_end`,
    /// a cancel, `deadline` (a wall-clock limit) or more than `output_bytes` of output. Only [`TurnEnd::Done`]
    /// leaves the agent usable; otherwise it has been told to stop.
    pub fn turn(
        &mut self,
        message: &str,
        events: &mut dyn Events,
        deadline: Instant,
        output_bytes: Option<u64>,
        cancel: &Cancel,
    ) -> TurnEnd {
        let id = self.next_id("prompt");
        if let Err(e) = self.send(&rpc::prompt_line(&id, message)) {
            self.cancel.cancel();
            return TurnEnd::Died(Err(e));
        }
        let (mut refused, mut done, mut out) = (None, false, 0u64);
        let mut over = false;
        let end = self.pump(deadline, cancel, &mut |bytes, line| {
            out += bytes.len() as u64;
            if output_bytes.is_some_and(|cap| out > cap) {
                over = true;
                return true;
            }
            match line {
                Some(RpcLine::Response { id: got, error }) => {
                    if *got == id && error.is_some() {
                        refused = error.clone();
                        return true;
                    }
                }
                Some(RpcLine::AgentEnd) => {
                    events.output(Stream::Stdout, bytes);
                    done = true;
                    return true;
                }
                Some(_) => events.output(Stream::Stdout, bytes),
                None => events.output(Stream::Stderr, bytes),
            }
            false
        });
        let result = match (over, refused, done, end) {
            (true, ..) => TurnEnd::Limit(LimitKind::Output),
            (_, Some(e), ..) => TurnEnd::Refused(e),
            (_, _, true, _) => TurnEnd::Done,
            (_, _, _, Some(end)) => end,
            _ => TurnEnd::Died(Err("the warm agent stopped answering".into())),
        };
        if !result.reusable() {
            self.cancel.cancel();
        }
        result
    }

    /// Reads the worker's reports until `accept` takes a stdout line (with its LF) or the turn ends another way:
    /// then the reason. stderr reaches `accept` as raw chunks with no line (`None`, stream stderr).
    fn pump(
        &mut self,
        deadline: Instant,
        cancel: &Cancel,
        accept: &mut dyn FnMut(&[u8], &Option<RpcLine>) -> bool,
    ) -> Option<TurnEnd> {
        loop {
            if cancel.is_cancelled() {
                return Some(TurnEnd::Cancelled);
            }
            if let Some(r) = &self.ended {
                return Some(TurnEnd::Died(
                    r.as_ref().map(|o| o.end).map_err(Clone::clone),
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(TurnEnd::Limit(LimitKind::Timeout));
            }
            let msg = match self.rx.recv_timeout(left.min(CANCEL_POLL)) {
                Ok(m) => m,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => {
                    return Some(TurnEnd::Died(Err("the warm agent's thread is gone".into())))
                }
            };
            let Some((stream, bytes)) = self.take(msg) else {
                continue;
            };
            if stream == Stream::Stderr {
                if accept(&bytes, &STDERR) {
                    return None;
                }
                continue;
            }
            self.partial.extend_from_slice(&bytes);
            while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.partial.drain(..=i).collect();
                let kind = rpc::classify(&String::from_utf8_lossy(&line[..i]));
                let kind = kind.or(Some(RpcLine::Event));
                if accept(&line, &kind) {
                    return None;
                }
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        let Some(c) = self.commands.as_mut() else {
            return Err("the warm agent's commands are closed".into());
        };
        c.write_all(line.as_bytes())
            .map_err(|e| format!("failed to write to the warm agent: {e}"))
    }

    /// Ends the agent: end of file on its commands (pi exits), then a kill after `grace`; waits for its worker
    /// to be torn down and says how it ended.
    pub fn stop(mut self, grace: Duration) -> Result<Outcome, String> {
        self.commands = None;
        let until = Instant::now() + grace;
        while self.ended.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.cancel.cancel();
            }
            match self.rx.recv_timeout(left.max(CANCEL_POLL)) {
                Ok(m) => {
                    self.take(m);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.ended
            .take()
            .unwrap_or_else(|| Err("the warm agent's thread is gone".into()))
    }
}

impl Drop for WarmAgent {
    fn drop(&mut self) {
        // Not stopped by `stop`: kill it; its thread tears the worker down by itself.
        if self.thread.is_some() {
            self.cancel.cancel();
        }
    }
}

/// The marker [`WarmAgent::pump`] hands with a stderr chunk.
const STDERR: Option<RpcLine> = None;

/// A fresh FIFO (one a dead agent left is replaced), mode 0600, owned by the worker's user.
fn make_fifo(path: &Path, owner: (u32, u32)) -> Result<(), String> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("failed to remove {}: {e}", path.display())),
    }
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
    chown(path, Some(owner.0), Some(owner.1))
        .map_err(|e| format!("failed to chown {}: {e}", path.display()))
}

/// The worker's reports, sent to the agent's channel.
struct Forward(Sender<Msg>);

impl Events for Forward {
    fn started(&mut self, worker: &str) {
        let _ = self.0.send(Msg::Started(worker.to_string()));
    }
    fn output(&mut self, stream: Stream, bytes: &[u8]) {
        let _ = self.0.send(Msg::Out(stream, bytes.to_vec()));
    }
}
