//! Shared helpers of the root tests: the skip rule, the cross-process test lock, throwaway
//! network namespaces (Drop guards) and the "nothing left behind" check.
#![allow(dead_code)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use warden_linux::{Limits, NetworkMode, Vnet, WorkerSpec};

/// Root tests are serialised across threads *and* processes (cargo test runs a binary's tests
/// on threads, nextest runs each test in its own process): a flock on one file does both.
pub struct Serial(File);

/// Returns `None` (and says so loudly) when not root; otherwise the lock for the test.
pub fn root_test(name: &str) -> Option<Serial> {
    // A root test that cannot run fails loudly rather than passing without having run.
    assert!(
        nix::unistd::geteuid().is_root(),
        "{name} needs root (CI runs these as root): run `sudo cargo test`"
    );
    warden_linux::set_helper_exe(env!("CARGO_BIN_EXE_warden-linux-test"));
    let f = File::create("/tmp/warden-linux-tests.lock").expect("open test lock");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    Some(Serial(f))
}

pub fn state_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wstate")
        .tempdir()
        .expect("state dir")
}

pub fn spec(name: &str, argv: &[&str], state: &Path) -> WorkerSpec {
    let mut s = WorkerSpec::new(name, argv, state);
    s.limits = Limits {
        timeout_ms: Some(20_000),
        ..Limits::default()
    };
    s
}

pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{:x}{:x}", std::process::id() % 4096, nanos % 65536)
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with bridge `warden0` at 10.0.1.1/24, deleted on drop.
pub struct TestNet {
    pub name: String,
    pub extra: Vec<String>,
}

pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

impl TestNet {
    pub fn new() -> TestNet {
        let name = unique("wtest-");
        sh(&["ip", "netns", "add", &name]);
        let net = TestNet {
            name,
            extra: Vec::new(),
        };
        let n = net.name.as_str();
        sh(&["ip", "-n", n, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", n, "link", "add", "warden0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            "10.0.1.1/24",
            "dev",
            "warden0",
        ]);
        sh(&["ip", "-n", n, "link", "set", "warden0", "up"]);
        net
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    pub fn vnet(&self, addr: Ipv4Addr) -> NetworkMode {
        NetworkMode::Vnet(Vnet {
            addr,
            prefix: 24,
            gateway: GATEWAY,
            bridge: "warden0".into(),
            dns: GATEWAY,
            host_netns: Some(self.path()),
        })
    }

    /// Links of the test namespace whose name contains `needle`.
    pub fn links_matching(&self, needle: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_string)
            .collect()
    }

    /// A second namespace `outside` (192.0.2.2) routed only through this one (192.0.2.1), with
    /// forwarding and an nft masquerade here, as the host network code does for real.
    pub fn add_outside(&mut self) -> String {
        let out = unique("wtout-");
        sh(&["ip", "netns", "add", &out]);
        self.extra.push(out.clone());
        let n = self.name.as_str();
        sh(&[
            "ip", "-n", n, "link", "add", "up0", "type", "veth", "peer", "name", "down0", "netns",
            &out,
        ]);
        sh(&["ip", "-n", n, "addr", "add", "192.0.2.1/24", "dev", "up0"]);
        sh(&["ip", "-n", n, "link", "set", "up0", "up"]);
        sh(&[
            "ip",
            "-n",
            &out,
            "addr",
            "add",
            "192.0.2.2/24",
            "dev",
            "down0",
        ]);
        sh(&["ip", "-n", &out, "link", "set", "down0", "up"]);
        sh(&["ip", "-n", &out, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let rules = "add table ip wtest\nadd chain ip wtest post { type nat hook postrouting priority 100; }\nadd rule ip wtest post oifname \"up0\" masquerade\n";
        let f = std::env::temp_dir().join(format!("{out}.nft"));
        std::fs::write(&f, rules).unwrap();
        sh(&["ip", "netns", "exec", n, "nft", "-f", f.to_str().unwrap()]);
        let _ = std::fs::remove_file(&f);
        out
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in self.extra.iter().chain(std::iter::once(&self.name)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A TCP listener inside network namespace `ns` (a path), accepting connections for `within`;
/// returns a thread that yields the peers seen (it stops after `max` of them).
pub fn listen_in(
    ns: PathBuf,
    addr: SocketAddr,
    within: Duration,
    max: usize,
) -> std::thread::JoinHandle<Vec<SocketAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        warden_linux::veth::enter_netns(&ns).expect("enter netns");
        let l = TcpListener::bind(addr).expect("bind listener");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let mut peers = Vec::new();
        let start = Instant::now();
        while start.elapsed() < within && peers.len() < max {
            match l.accept() {
                Ok((_, peer)) => peers.push(peer),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        peers
    });
    rx.recv().expect("listener ready");
    h
}

/// Asserts that nothing of the named workers is left: records, mounts, cgroups, veths, leases.
pub fn assert_no_residue(state: &Path, names: &[String], net: Option<&TestNet>) {
    for name in names {
        assert!(
            warden_linux::wait_torn_down(state, name, Duration::from_secs(10)),
            "worker {name} still recorded after 10 s"
        );
    }
    let workers: Vec<_> = std::fs::read_dir(state.join("workers"))
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(workers.is_empty(), "records left: {workers:?}");
    let state_s = state.display().to_string();
    for mi in ["/proc/self/mountinfo", "/proc/1/mountinfo"] {
        let text = std::fs::read_to_string(mi).unwrap();
        let left: Vec<_> = text.lines().filter(|l| l.contains(&state_s)).collect();
        assert!(left.is_empty(), "mounts left in {mi}: {left:?}");
    }
    for name in names {
        for ctl in ["memory", "pids", "cpu"] {
            let dir = Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("warden")
                .join(name);
            assert!(!dir.exists(), "cgroup left: {}", dir.display());
        }
        let v2 = Path::new("/sys/fs/cgroup/warden").join(name);
        assert!(!v2.exists(), "cgroup left: {}", v2.display());
        // No process of the host still sits in a namespace created for this worker: every
        // process's cgroup file would name it.
        for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
            if let Ok(cg) = std::fs::read_to_string(entry.path().join("cgroup")) {
                assert!(
                    !cg.contains(&format!("/warden/{name}\n")),
                    "process {:?} left in {name}",
                    entry.file_name()
                );
            }
        }
    }
    if let Some(net) = net {
        let start = Instant::now();
        loop {
            let left = net.links_matching("e0a_");
            if left.is_empty() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "veths left: {left:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // Leases: every lock file must be free.
    if let Ok(rd) = std::fs::read_dir(state.join("leases")) {
        for e in rd.filter_map(|e| e.ok()) {
            let f = File::open(e.path()).unwrap();
            // SAFETY: flock on a descriptor we own.
            let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            assert!(free, "lease {:?} still held", e.file_name());
        }
    }
}
