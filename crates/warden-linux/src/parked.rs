//! A parked worker, caller's side: a helper (`<exe> __worker <spec>` with `parked` set) whose
//! worker is built up to the command — namespaces, root, cgroups, veth with its address and
//! route — and whose command process (pid 2, forked by the init at park time) waits for a
//! [`Turn`]. Running a turn is one pipe write to the helper, which hands it to pid 2, which
//! execs the command; the rest is the cold path
//! (`run`): output pumped, limits enforced, outcome reported, then the worker destroyed by its
//! helper after the report, off the caller's critical path. A parked worker serves exactly one
//! turn: nothing is reused, so nothing of one turn can reach the next.
//!
//! Descriptors of the helper: 0/1/2 pipes kept here until the turn (stdin, output), 3 the
//! report pipe (one [`PARKED_BYTE`] once parked, then the JSON report), 4 the lifeline, 5 the
//! control pipe (the turn, then EOF).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::launch::spawn_helper;
use crate::lease::Lease;
use crate::proto::{HELPER_ARG, PARKED_BYTE};
use crate::spawn::{self, slot, Streams};
use crate::spec::{Outcome, Turn, WorkerSpec};
use crate::sys::{mono_us, pipe};
use crate::worker::{decode_report, encode_spec, pump, reap_later, Io, OutputStream};

type OnOutput<'a> = dyn FnMut(OutputStream, &[u8]) + 'a;

/// A worker waiting for its one turn. Dropping it discards the worker (its helper tears it down).
#[derive(Debug)]
pub struct Parked {
    name: String,
    child: Option<spawn::Helper>,
    report: Option<File>,
    control: Option<File>,
    lifeline: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// A Vnet worker's address, held until the turn is over (the lease module then skips the
    /// address while the worker's record exists, i.e. until its teardown is complete).
    lease: Option<Lease>,
    /// How long parking took (helper spawn → parked), µs.
    park_us: u64,
}

impl Parked {
    /// Starts a helper for `spec` (marked parked) and waits until its worker is parked.
    pub fn park(spec: &WorkerSpec, lease: Option<Lease>) -> Result<Parked> {
        let t0 = Instant::now();
        let mut spec = spec.clone();
        spec.parked = true;
        spec.persistent = None;
        let json = encode_spec(&spec)?;
        let (report_r, report_w) = pipe()?;
        let (lifeline_r, lifeline_w) = pipe()?;
        let (control_r, control_w) = pipe()?;
        // Stdin is a pipe whatever the turn brings: it is known only when the turn comes.
        let streams = Streams::new(true)?;
        let start = mono_us().to_string();
        let [i, o, e] = streams.slots();
        let slots = [
            i,
            o,
            e,
            slot(&report_w),
            slot(&lifeline_r),
            slot(&control_r),
        ];
        let child = spawn_helper(&[HELPER_ARG, &json, &start], slots)?;
        drop((streams.child, report_w, lifeline_r, control_r));
        let mut report = File::from(report_r);
        let mut first = [0u8; 1];
        let n = loop {
            match report.read(&mut first) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let parked = Parked {
            name: spec.name.clone(),
            stdin: streams.stdin,
            stdout: Some(streams.stdout),
            stderr: Some(streams.stderr),
            child: Some(child),
            report: Some(report),
            control: Some(File::from(control_w)),
            lifeline: Some(lifeline_w),
            lease,
            park_us: t0.elapsed().as_micros() as u64,
        };
        match n {
            Ok(1) if first[0] == PARKED_BYTE => Ok(parked),
            Ok(n) => Err(parked.failed(&first[..n])),
            Err(e) => {
                drop(parked);
                Err(Error::sys("read the helper's report", e))
            }
        }
    }

    /// The helper did not park: its report (starting with `head`) says why.
    fn failed(mut self, head: &[u8]) -> Error {
        let mut body = head.to_vec();
        if let Some(mut r) = self.report.take() {
            let _ = r.read_to_end(&mut body);
        }
        self.discard();
        match decode_report(&self.name, &body, Instant::now()) {
            Err(e) => e,
            Ok(_) => Error::Setup {
                name: self.name.clone(),
                message: "the helper reported an outcome instead of parking".into(),
            },
        }
    }

    /// The worker's name (its record, cgroups and hostname).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The helper's pid (for measuring what a parked worker costs).
    pub fn helper_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.pid as u32)
    }

    /// A Vnet worker's leased address.
    pub fn addr(&self) -> Option<std::net::Ipv4Addr> {
        self.lease.as_ref().map(Lease::addr)
    }

    /// How long parking took, µs.
    pub fn park_us(&self) -> u64 {
        self.park_us
    }

    /// Runs `turn` on this worker and returns how it ended; the worker is destroyed afterwards
    /// (by its helper, after the report). With [`Io::Inherit`] the output goes to this
    /// process's stdout/stderr and the command's stdin is empty.
    pub fn run(mut self, turn: &Turn, io: Io<'_>) -> Result<Outcome> {
        let started = Instant::now();
        turn.validate(&self.name)?;
        let mut turn = turn.clone();
        turn.sent_us = mono_us();
        let body = serde_json::to_vec(&turn).map_err(|e| Error::Json {
            op: "encode turn",
            source: e,
        })?;
        let mut control = self.control.take().ok_or_else(|| Error::Setup {
            name: self.name.clone(),
            message: "the parked worker was already used".into(),
        })?;
        // The helper parked in the idle class; the turn must not wait behind other work.
        if let Some(h) = &self.child {
            crate::sched::normal(h.pid);
        }
        // One write, then EOF: the helper reads the turn to the end.
        control
            .write_all(&body)
            .map_err(|e| Error::sys("hand the turn to the parked worker", e))?;
        drop(control);
        let mut stdout_sink = |s: OutputStream, b: &[u8]| {
            let _ = match s {
                OutputStream::Stdout => std::io::stdout().write_all(b),
                OutputStream::Stderr => std::io::stderr().write_all(b),
            };
        };
        let (stdin_bytes, on_output): (Vec<u8>, &mut OnOutput) = match io {
            Io::Inherit => (Vec::new(), &mut stdout_sink),
            Io::Stream { stdin, on_output } => (stdin, on_output),
        };
        let feeder = spawn::feed_stdin(self.stdin.take(), stdin_bytes);
        let report_r = self
            .report
            .take()
            .map(OwnedFd::from)
            .ok_or_else(|| Error::Setup {
                name: self.name.clone(),
                message: "the parked worker has no report pipe".into(),
            })?;
        let mut report = Vec::new();
        let pumped = pump(
            self.stdout.take(),
            self.stderr.take(),
            report_r,
            on_output,
            &mut report,
        );
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let outcome = pumped.and_then(|()| decode_report(&self.name, &report, started));
        // Dropping the lifeline lets the helper tear down: after our own work, since on a small
        // host the teardown would otherwise run before the caller gets its result.
        self.reap_in_background();
        self.lifeline = None;
        outcome
    }

    /// Closes every pipe to the helper: it tears the worker down and exits.
    fn close(&mut self) {
        self.control = None;
        self.lifeline = None;
        self.stdin = None;
        self.stdout = None;
        self.stderr = None;
        self.report = None;
    }

    /// Discards the worker and waits until its helper has torn it down and exited.
    pub fn discard(&mut self) {
        self.close();
        if let Some(child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// The helper keeps going (teardown) after reporting; reap it without waiting here.
    fn reap_in_background(&mut self) {
        if let Some(child) = self.child.take() {
            reap_later(child);
        }
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        self.close();
        self.reap_in_background();
    }
}

/// Discards many parked workers at once: all are told first, then all are waited for, so their
/// teardowns overlap.
pub fn discard_all(mut parked: Vec<Parked>) {
    for p in &mut parked {
        p.close();
    }
    for p in &mut parked {
        p.discard();
    }
}
