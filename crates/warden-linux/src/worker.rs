//! `run`: the caller's side of a worker. It re-execs the helper (`<exe> __worker …`), feeds it
//! the spec, streams the worker's output back and returns the outcome as soon as the helper
//! reports it — before the helper's teardown, which finishes on its own.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::launch::spawn_helper;
use crate::proto::{Report, Started, HELPER_ARG};
use crate::record;
use crate::spawn::{self, slot, Slot, Streams};
use crate::spec::{Outcome, WorkerSpec};
use crate::sys::{self, dev_null, mono_us};

/// Which of the worker's output streams a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// The worker's standard streams.
pub enum Io<'a> {
    /// The caller's own stdin/stdout/stderr (the CLI).
    Inherit,
    /// `stdin` fed to the worker (then closed); output handed to `on_output` as it arrives
    /// (the server streams it).
    Stream {
        stdin: Vec<u8>,
        on_output: &'a mut dyn FnMut(OutputStream, &[u8]),
    },
}

/// Creates a worker, runs `spec.argv` in it, and returns how it ended. The worker is destroyed
/// by its helper; what is left when this returns is the helper's teardown in flight (cgroup
/// and veth removal, then the record), which needs no caller — see [`wait_torn_down`].
pub fn run(spec: &WorkerSpec, io: Io<'_>) -> Result<Outcome> {
    let started = Instant::now();
    let start_us = mono_us();
    let json = encode_spec(spec)?;
    let (report_r, report_w) = sys::pipe()?;
    let (lifeline_r, lifeline_w) = sys::pipe()?;
    let start = start_us.to_string();
    let args = [HELPER_ARG, json.as_str(), start.as_str()];
    // A namespace that carried nothing, for a worker without a network (fd 5: a cold helper has no
    // control pipe). Closed here when this returns; the helper has its own copy.
    let given_netns = spec
        .recycles_netns()
        .then(crate::netns_stash::take)
        .flatten();
    let netns_slot = given_netns.as_ref().map_or(Slot::Closed, slot);
    let (child, stream, stdin_bytes, stdin_w, out_r, err_r) = match io {
        Io::Inherit => {
            let slots = [
                Slot::Inherit,
                Slot::Inherit,
                Slot::Inherit,
                slot(&report_w),
                slot(&lifeline_r),
                netns_slot,
            ];
            let child = spawn_helper(&args, slots)?;
            (child, None, None, None, None, None)
        }
        Io::Stream { stdin, on_output } => {
            let streams = Streams::new(!stdin.is_empty())?;
            let [i, o, e] = streams.slots();
            let slots = [i, o, e, slot(&report_w), slot(&lifeline_r), netns_slot];
            let child = spawn_helper(&args, slots)?;
            (
                child,
                Some(on_output),
                Some(stdin),
                streams.stdin,
                Some(streams.stdout),
                Some(streams.stderr),
            )
        }
    };
    drop(report_w);
    drop(lifeline_r);

    let mut report = Vec::new();
    let feeder = spawn::feed_stdin(stdin_w, stdin_bytes.unwrap_or_default());
    match stream {
        None => {
            std::fs::File::from(report_r)
                .read_to_end(&mut report)
                .map_err(|e| Error::sys("read the helper's report", e))?;
        }
        Some(on_output) => pump(out_r, err_r, report_r, on_output, &mut report)?,
    }
    if let Some(f) = feeder {
        let _ = f.join();
    }
    let outcome = decode_report(&spec.name, &report, started);
    // The helper keeps going (teardown) after reporting; reap it in the background so the
    // caller does not wait for the kernel's veth destruction. A CLI that exits leaves it to
    // init, and its work to finish by itself. The lifeline goes last: dropping it starts the
    // teardown, which should not run before this caller has its result.
    reap_later(child);
    drop(lifeline_w);
    outcome
}

/// A valid spec as the helper's argument (JSON).
pub(crate) fn encode_spec(spec: &WorkerSpec) -> Result<String> {
    spec.validate()?;
    serde_json::to_string(spec).map_err(|e| Error::Json {
        op: "encode spec",
        source: e,
    })
}

/// The outcome in a helper's final report (`started`: when the caller began, for `total_us`).
pub(crate) fn decode_report(name: &str, report: &[u8], started: Instant) -> Result<Outcome> {
    match serde_json::from_slice::<Report>(report) {
        Ok(Report::Done {
            mut outcome,
            netns_from,
        }) => {
            if let Some(pid) = netns_from {
                crate::netns_stash::give(pid);
            }
            outcome.timings.total_us = started.elapsed().as_micros() as u64;
            Ok(outcome)
        }
        Ok(Report::NameInUse) => Err(Error::NameInUse {
            name: name.to_string(),
        }),
        Ok(Report::Failed(message)) => Err(Error::Setup {
            name: name.to_string(),
            message,
        }),
        Ok(Report::Started(_)) | Err(_) => Err(Error::Setup {
            name: name.to_string(),
            message: "failed to get a report: the helper died".into(),
        }),
    }
}

/// Starts a persistent jail (`spec.persistent` set): re-execs the helper, which detaches as the
/// jail's supervisor (its output appended to `log`), and returns once the jail is up.
pub(crate) fn start_jail(spec: &WorkerSpec, log: &Path) -> Result<Started> {
    let json = encode_spec(spec)?;
    let (report_r, report_w) = sys::pipe()?;
    let out: OwnedFd = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| Error::io("open", log, e))?
        .into();
    let start = mono_us().to_string();
    let null = dev_null()?;
    // No lifeline: the jail outlives this command.
    let slots = [
        slot(&null),
        slot(&out),
        slot(&out),
        slot(&report_w),
        Slot::Closed,
        Slot::Closed,
    ];
    let child = spawn_helper(&[HELPER_ARG, &json, &start], slots)?;
    drop(report_w);
    let mut report = Vec::new();
    let read = std::fs::File::from(report_r).read_to_end(&mut report);
    // The helper forks its supervisor off at once and exits: reaping it does not wait for the jail.
    let _ = child.wait();
    read.map_err(|e| Error::sys("read the helper's report", e))?;
    match serde_json::from_slice::<Report>(&report) {
        Ok(Report::Started(started)) => Ok(started),
        Ok(Report::NameInUse) => Err(Error::NameInUse {
            name: spec.name.clone(),
        }),
        Ok(Report::Failed(message)) => Err(Error::Setup {
            name: spec.name.clone(),
            message,
        }),
        Ok(Report::Done { .. }) | Err(_) => Err(Error::Setup {
            name: spec.name.clone(),
            message: format!(
                "failed to get a report: the helper died (see {})",
                log.display()
            ),
        }),
    }
}

/// Hands a helper that has reported (and is tearing its worker down) to one long-lived reaper
/// thread: a thread per turn cost a spawn on the caller's path and, in a long-running server,
/// grew the allocator's per-thread arenas.
pub(crate) fn reap_later(child: spawn::Helper) {
    use std::sync::mpsc::{channel, Sender};
    static REAPER: OnceLock<Option<Sender<spawn::Helper>>> = OnceLock::new();
    let tx = REAPER.get_or_init(|| {
        let (tx, rx) = channel::<spawn::Helper>();
        std::thread::Builder::new()
            .name("warden-reaper".into())
            .spawn(move || {
                for c in rx {
                    let _ = c.wait();
                }
            })
            .ok()
            .map(|_| tx)
    });
    match tx {
        Some(tx) => {
            if let Err(e) = tx.send(child) {
                let c = e.0;
                std::thread::spawn(move || {
                    let _ = c.wait();
                });
            }
        }
        None => {
            let c = child;
            std::thread::spawn(move || {
                let _ = c.wait();
            });
        }
    }
}

/// Polls the helper's stdout, stderr and report pipes until all three are closed.
pub(crate) fn pump(
    out: Option<OwnedFd>,
    err: Option<OwnedFd>,
    report_r: OwnedFd,
    on_output: &mut dyn FnMut(OutputStream, &[u8]),
    report: &mut Vec<u8>,
) -> Result<()> {
    let mut fds: Vec<(Option<OwnedFd>, Option<OutputStream>)> = vec![
        (out, Some(OutputStream::Stdout)),
        (err, Some(OutputStream::Stderr)),
        (Some(report_r), None),
    ];
    let mut buf = vec![0u8; 16384];
    loop {
        let mut pfds: Vec<libc::pollfd> = fds
            .iter()
            .filter_map(|(fd, _)| fd.as_ref())
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if pfds.is_empty() {
            return Ok(());
        }
        // SAFETY: pfds is a valid pollfd array.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(Error::sys("poll the helper", e));
        }
        for p in pfds.iter().filter(|p| p.revents != 0) {
            let Some(slot) = fds
                .iter_mut()
                .find(|(fd, _)| fd.as_ref().is_some_and(|f| f.as_raw_fd() == p.fd))
            else {
                continue;
            };
            // SAFETY: reading into our buffer from a descriptor we own.
            let r = unsafe { libc::read(p.fd, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                if r < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                    continue;
                }
                slot.0 = None;
                continue;
            }
            let chunk = &buf[..r as usize];
            match slot.1 {
                Some(which) => on_output(which, chunk),
                None => report.extend_from_slice(chunk),
            }
        }
    }
}

/// `run` with stdin empty and output collected: `(outcome, stdout, stderr)`.
pub fn run_captured(spec: &WorkerSpec) -> Result<(Outcome, Vec<u8>, Vec<u8>)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut collect = |s: OutputStream, b: &[u8]| match s {
        OutputStream::Stdout => out.extend_from_slice(b),
        OutputStream::Stderr => err.extend_from_slice(b),
    };
    let outcome = run(
        spec,
        Io::Stream {
            stdin: Vec::new(),
            on_output: &mut collect,
        },
    )?;
    Ok((outcome, out, err))
}

/// Waits until the worker `name` is fully torn down (its record is gone). True if it was
/// within `timeout`. For callers that must know nothing is left (tests, shutdown).
pub fn wait_torn_down(state_dir: &Path, name: &str, timeout: Duration) -> bool {
    let path = record::record_path(state_dir, name);
    let start = Instant::now();
    while path.exists() {
        if start.elapsed() > timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}
