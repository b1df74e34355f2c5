//! The zygote: a small single-threaded process that forks helpers for a long-lived,
//! multi-threaded caller (`warden serve`, `warden bench`).
//!
//! A helper started by `posix_spawn` pays an exec of this ~80 MB program every time: the
//! dynamic loader's relocations and CPU-feature probing (`cpuid`, which traps in a VM), the Rust
//! runtime's start, page faults on a fresh image — about 1.5 ms of CPU, a fifth of a whole
//! pooled turn's cost on a 2-core host, which caps how fast the pool refills. The zygote is
//! exec'd once; each helper is then a `fork` of it (a process of a few hundred KiB of dirty
//! memory), which then runs the same helper code a re-exec'd one runs.
//!
//! Protocol (a `SOCK_SEQPACKET` pair, the zygote's end on its descriptor 3): a request is one
//! message, JSON `{"args": [...], "slots": "ifc…"}` (per descriptor 0–5: `i` inherit, `c`
//! closed, `f` the next descriptor passed with `SCM_RIGHTS`); the answer is `{"pid": N}` with
//! a pidfd of the helper, or `{"error": "…"}`. The zygote reaps its children as they end
//! (SIGCHLD through a signalfd); callers watch a helper's end through its pidfd, opened before
//! the child can have been reaped. When the caller's end closes (the caller exited) the zygote
//! exits; helpers it forked live on by themselves.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spawn::{self, Helper, Slot};
use crate::sys;

/// argv[2] of the helper binary that makes it a zygote.
pub(crate) const ZYGOTE_ARG: &str = "__zygote";
/// The zygote's end of the socket.
const SOCKET_FD: RawFd = 3;
/// Most descriptors one request passes (0–5).
const MAX_FDS: usize = 6;
/// Largest request: a spec (argv, env, binds) is far smaller; an exec'd helper's spec
/// argument is bounded by the kernel at 128 KiB.
const MAX_REQUEST: usize = 256 << 10;

static ENABLED: AtomicBool = AtomicBool::new(false);
static ZYGOTE: Mutex<Option<Zygote>> = Mutex::new(None);

/// Makes this process start helpers through a zygote (started on first use). For long-lived
/// multi-threaded callers; a CLI that runs one worker is faster without.
pub fn use_zygote() {
    ENABLED.store(true, Ordering::Relaxed);
}

#[derive(Serialize, Deserialize)]
struct Request {
    args: Vec<String>,
    slots: String,
}

#[derive(Serialize, Deserialize)]
struct Answer {
    #[serde(default)]
    pid: Option<i32>,
    #[serde(default)]
    error: Option<String>,
}

struct Zygote {
    socket: OwnedFd,
    pid: libc::pid_t,
}

/// Starts a helper through the zygote, if enabled; `None` means "not enabled, spawn it
/// another way". A zygote that died is replaced once.
pub(crate) fn spawn(args: &[&str], slots: &[Slot; 6]) -> Option<Result<Helper>> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let mut guard = ZYGOTE.lock().unwrap_or_else(|p| p.into_inner());
    let mut last = None;
    for _ in 0..2 {
        if guard.is_none() {
            match Zygote::start() {
                Ok(z) => *guard = Some(z),
                Err(e) => return Some(Err(e)),
            }
        }
        let z = guard.as_ref()?;
        match z.request(args, slots) {
            Ok(h) => return Some(Ok(h)),
            Err(Failure::Refused(e)) => return Some(Err(e)),
            Err(Failure::Gone(e)) => {
                // The zygote died (killed?): reap it and start another.
                if let Some(old) = guard.take() {
                    // SAFETY: reaping our own child without blocking.
                    unsafe { libc::waitpid(old.pid, std::ptr::null_mut(), libc::WNOHANG) };
                }
                last = Some(e);
            }
        }
    }
    last.map(Err)
}

enum Failure {
    /// The zygote answered with an error (a fork failed): spawning again would not help.
    Refused(Error),
    /// The socket failed: the zygote is gone.
    Gone(Error),
}

impl Zygote {
    fn start() -> Result<Zygote> {
        let (mine, theirs) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .map_err(|e| Error::sys("create the zygote's socket", e))?;
        let null = sys::dev_null()?;
        let slots = [
            spawn::slot(&null),
            Slot::Inherit,
            Slot::Inherit,
            spawn::slot(&theirs),
            Slot::Closed,
            Slot::Closed,
        ];
        let h = spawn::spawn(
            crate::proto::helper_exe(),
            &[crate::proto::HELPER_ARG, ZYGOTE_ARG],
            slots,
        )?;
        Ok(Zygote {
            socket: mine,
            pid: h.pid,
        })
    }

    fn request(&self, args: &[&str], slots: &[Slot; 6]) -> std::result::Result<Helper, Failure> {
        let gone = |op: &'static str, e: nix::Error| Failure::Gone(Error::sys(op, e));
        let mut fds = Vec::new();
        let mut kinds = String::new();
        for (i, s) in slots.iter().enumerate() {
            kinds.push(match s {
                // "Inherit" means the caller's descriptor of that number as it is now, not the
                // zygote's (which are the caller's of when the zygote started): pass it.
                // SAFETY: F_GETFD only asks whether the descriptor is open.
                Slot::Inherit if unsafe { libc::fcntl(i as RawFd, libc::F_GETFD) } >= 0 => {
                    fds.push(i as RawFd);
                    'f'
                }
                Slot::Inherit => 'c',
                Slot::Closed => 'c',
                Slot::Fd(fd) => {
                    fds.push(*fd);
                    'f'
                }
            });
        }
        let body = serde_json::to_vec(&Request {
            args: args.iter().map(|a| a.to_string()).collect(),
            slots: kinds,
        })
        .map_err(|e| {
            Failure::Refused(Error::Json {
                op: "encode a zygote request",
                source: e,
            })
        })?;
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(&body)],
            if fds.is_empty() { &[] } else { &cmsg },
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| gone("send a request to the zygote", e))?;
        let mut buf = [0u8; 4096];
        let (n, mut received) = receive(self.socket.as_raw_fd(), &mut buf)
            .map_err(|e| gone("read the zygote's answer", e))?;
        let bytes = &buf[..n];
        if bytes.is_empty() {
            return Err(Failure::Gone(Error::Setup {
                name: String::new(),
                message: "the zygote exited".into(),
            }));
        }
        let answer: Answer = serde_json::from_slice(bytes).map_err(|e| {
            Failure::Gone(Error::Json {
                op: "decode the zygote's answer",
                source: e,
            })
        })?;
        match (answer.pid, answer.error) {
            (Some(pid), _) if !received.is_empty() => Ok(Helper {
                pid,
                pidfd: Some(received.remove(0)),
            }),
            (_, Some(message)) => Err(Failure::Refused(Error::Setup {
                name: String::new(),
                message: format!("the zygote failed to start a helper: {message}"),
            })),
            _ => Err(Failure::Gone(Error::Setup {
                name: String::new(),
                message: "the zygote's answer had no pidfd".into(),
            })),
        }
    }
}

/// One message into `buf` (its length) and the descriptors that came with it (close-on-exec).
/// A message longer than `buf` is an error (EMSGSIZE), never silently cut.
fn receive(fd: RawFd, buf: &mut [u8]) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(fd, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::Error::EINTR) => continue,
            other => break other?,
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(list) = c {
            // SAFETY: the kernel just installed these descriptors for us.
            fds.extend(list.into_iter().map(|f| unsafe { OwnedFd::from_raw_fd(f) }));
        }
    }
    if msg.flags.contains(MsgFlags::MSG_TRUNC) {
        return Err(nix::Error::EMSGSIZE);
    }
    Ok((msg.bytes, fds))
}

/// The zygote's loop: one fork per request, until the caller's end closes.
pub(crate) fn zygote_main() -> ! {
    // Terminal signals are the caller's business (its exit closes the socket).
    crate::sys::ignore_terminal_signals();
    // SAFETY: signal state of this single-threaded process. SIGCHLD is blocked and read from a
    // signalfd (children are reaped as they end).
    let sigfd = unsafe {
        libc::fcntl(SOCKET_FD, libc::F_SETFD, libc::FD_CLOEXEC);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGCHLD);
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK)
    };
    // Allocated once: a helper forked from here must not start by copying a freshly touched
    // buffer of ours (copy-on-write), nor pay for zeroing one.
    let mut buf = vec![0u8; MAX_REQUEST];
    loop {
        let mut pfds = [
            libc::pollfd {
                fd: SOCKET_FD,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: sigfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: polling descriptors we own.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), if sigfd >= 0 { 2 } else { 1 }, -1) };
        if n < 0 {
            continue;
        }
        if pfds[1].revents != 0 {
            let mut info = [0u8; 128];
            // SAFETY: draining the signalfd into a local buffer, then reaping without blocking.
            unsafe {
                while libc::read(sigfd, info.as_mut_ptr().cast(), info.len()) > 0 {}
                while libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) > 0 {}
            }
        }
        if pfds[0].revents == 0 {
            continue;
        }
        let (n, fds) = match receive(SOCKET_FD, &mut buf) {
            Ok(m) => m,
            Err(nix::Error::EMSGSIZE) => (usize::MAX, Vec::new()),
            Err(_) => std::process::exit(1),
        };
        if n == 0 {
            std::process::exit(0);
        }
        let answer = match buf.get(..n).map(serde_json::from_slice::<Request>) {
            Some(Ok(req)) => fork_one(&req, &fds),
            Some(Err(e)) => Err(format!("bad request: {e}")),
            None => Err(format!("request larger than {MAX_REQUEST} bytes")),
        };
        drop(fds);
        let (body, pidfd, gate) = match answer {
            Ok((pid, pidfd, gate)) => (
                Answer {
                    pid: Some(pid),
                    error: None,
                },
                Some(pidfd),
                Some(gate),
            ),
            Err(message) => (
                Answer {
                    pid: None,
                    error: Some(message),
                },
                None,
                None,
            ),
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let raw: Vec<RawFd> = pidfd.iter().map(AsRawFd::as_raw_fd).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let sent = sendmsg::<()>(
            SOCKET_FD,
            &[IoSlice::new(&body)],
            if raw.is_empty() { &[] } else { &cmsg },
            MsgFlags::empty(),
            None,
        );
        // The answer is out: let the child go.
        drop(gate);
        if sent.is_err() {
            std::process::exit(1);
        }
    }
}

/// Forks a helper for `req` with the received descriptors; returns its pid, a pidfd and the
/// gate: the child waits until the gate closes, i.e. until its answer is sent (otherwise a
/// new child often runs first and the caller's answer waits for its whole setup).
fn fork_one(
    req: &Request,
    fds: &[OwnedFd],
) -> std::result::Result<(i32, OwnedFd, OwnedFd), String> {
    let mut next = fds.iter();
    let mut slots: [Slot; 6] = [
        Slot::Inherit,
        Slot::Inherit,
        Slot::Inherit,
        Slot::Inherit,
        Slot::Inherit,
        Slot::Inherit,
    ];
    if req.slots.len() != 6 {
        return Err(format!("want 6 slots, got {:?}", req.slots));
    }
    for (i, k) in req.slots.chars().enumerate() {
        slots[i] = match k {
            'i' => Slot::Inherit,
            'c' => Slot::Closed,
            'f' => Slot::Fd(
                next.next()
                    .ok_or("fewer descriptors than slots")?
                    .as_raw_fd(),
            ),
            other => return Err(format!("unknown slot kind {other:?}")),
        };
    }
    let (gate_r, gate_w) = sys::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the zygote is single-threaded; the child leaves with _exit.
    match unsafe { libc::fork() } {
        0 => {
            drop(gate_w);
            let mut byte = [0u8; 1];
            // SAFETY: blocking read on our pipe end until the zygote closes its end.
            while unsafe { libc::read(gate_r.as_raw_fd(), byte.as_mut_ptr().cast(), 1) } < 0 {}
            // SAFETY: rearranging the child's own descriptors (the socket is closed there).
            if unsafe { spawn::place_slots(&slots, Some(SOCKET_FD)) }.is_err() {
                // SAFETY: leaving the child at once.
                unsafe { libc::_exit(125) };
            }
            let code = crate::helper::run_helper(&req.args_with_exe());
            // SAFETY: leaving the child.
            unsafe { libc::_exit(code) }
        }
        pid if pid > 0 => {
            // Our child is reaped only in the loop, so it exists even if it has already ended.
            let fd = sys::pidfd_open(pid)
                .map_err(|e| format!("failed to open a pidfd for helper {pid}: {e}"))?;
            Ok((pid, fd, gate_w))
        }
        _ => Err(format!("fork: {}", std::io::Error::last_os_error())),
    }
}

impl Request {
    /// `[exe, args…]`: the argv a re-exec'd helper would see.
    fn args_with_exe(&self) -> Vec<String> {
        let mut v = vec![crate::proto::helper_exe().display().to_string()];
        v.extend(self.args.iter().cloned());
        v
    }
}
