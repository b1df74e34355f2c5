//! Shared helpers of the root tests: the skip rule, the cross-process test lock, throwaway
//! network namespaces (Drop guards) and the "nothing left behind" check. What warden-server's
//! root tests need too lives in warden-testkit.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use warden_linux::{Limits, NetworkMode, Vnet, WorkerSpec};
pub use warden_testkit::{Serial, TestNet};
// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use warden_testkit::unique;

/// Fails loudly when not root; otherwise the lock for the test (shared with warden-server's).
pub fn root_test(name: &str) -> Option<Serial> {
    let lock = warden_testkit::root_test(name);
    // Only this package's tests know where its helper binary is.
    warden_linux::set_helper_exe(env!("CARGO_BIN_EXE_warden-linux-test"));
    lock
}

/// A fresh state directory for the test's workers.
pub fn state_dir() -> tempfile::TempDir {
    warden_testkit::state_dir("wstate")
}

pub fn spec(name: &str, argv: &[&str], state: &Path) -> WorkerSpec {
    let mut s = WorkerSpec::new(name, argv, state);
    s.limits = Limits {
        timeout_ms: Some(20_000),
        ..Limits::default()
    };
    s
}

/// A throwaway namespace with bridge `warden0` at 10.0.1.1/24, deleted on drop.
pub fn test_net() -> TestNet {
    TestNet::new("wtest-")
}

pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

/// What worker tests need of a [`TestNet`] beyond the shared helpers.
pub trait WorkerNet {
    /// A vnet on this namespace's `warden0` with address `addr`.
    fn vnet(&self, addr: Ipv4Addr) -> NetworkMode;
    /// A namespace `outside` (192.0.2.2) reached only through NAT here (192.0.2.1).
    fn add_outside(&mut self) -> String;
}

impl WorkerNet for TestNet {
    fn vnet(&self, addr: Ipv4Addr) -> NetworkMode {
        NetworkMode::Vnet(Vnet {
            addr,
            prefix: 24,
            gateway: GATEWAY,
            bridge: "warden0".into(),
            dns: GATEWAY,
            host_netns: Some(self.path()),
        })
    }

    fn add_outside(&mut self) -> String {
        self.add_routed("wtout-", ("up0", "192.0.2.1/24"), ("down0", "192.0.2.2/24"))
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
        for dir in warden_testkit::cgroup_v1_dirs(name) {
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
    warden_testkit::assert_leases_free(state);
}
