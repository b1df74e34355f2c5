//! The root tests' lock, throwaway network namespaces and residue checks (Linux only).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::fcntl::{Flock, FlockArg};

/// The root-test lock, held until dropped.
pub struct Serial {
    // Never read: the lock lasts until this is dropped.
    _lock: Flock<File>,
}

/// Fails loudly when not root; otherwise returns the lock for the test.
pub fn root_test(name: &str) -> Option<Serial> {
    // A root test that cannot run fails loudly rather than passing without having run.
    assert!(
        nix::unistd::geteuid().is_root(),
        "{name} needs root (CI runs these as root): run `sudo cargo test`"
    );
    // Root tests are serialised across threads *and* processes (cargo test runs a binary's tests
    // on threads, nextest runs each test in its own process): a flock on one file does both.
    // Both suites take the same lock, since their workers share the host's cgroup tree.
    let f = File::create("/tmp/warden-linux-tests.lock").expect("open test lock");
    let lock = Flock::lock(f, FlockArg::LockExclusive).expect("lock the root-test lock");
    Some(Serial { _lock: lock })
}

/// A fresh temporary directory whose name starts with `prefix`.
pub fn state_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("state dir")
}

/// `prefix` plus a suffix that differs between processes and calls.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{:x}{:x}", std::process::id() % 4096, nanos % 65536)
}

/// Runs a command and panics with its stderr if it fails.
pub fn sh(args: &[&str]) {
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

/// A namespace with bridge `warden0` at 10.0.1.1/24, deleted on drop with those behind it.
pub struct TestNet {
    pub name: String,
    pub extra: Vec<String>,
}

impl TestNet {
    /// Creates the namespace, named `prefix` plus a unique suffix.
    pub fn new(prefix: &str) -> TestNet {
        let name = unique(prefix);
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

    /// The namespace's path, as workers and `nsenter --net` take it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
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

    /// Adds a namespace behind veth `up` (here) to `down` (there), reached only through NAT here.
    pub fn add_routed(
        &mut self,
        prefix: &str,
        (up, up_cidr): (&str, &str),
        (down, down_cidr): (&str, &str),
    ) -> String {
        let out = unique(prefix);
        sh(&["ip", "netns", "add", &out]);
        self.extra.push(out.clone());
        let n = self.name.as_str();
        sh(&[
            "ip", "-n", n, "link", "add", up, "type", "veth", "peer", "name", down, "netns", &out,
        ]);
        sh(&["ip", "-n", n, "addr", "add", up_cidr, "dev", up]);
        sh(&["ip", "-n", n, "link", "set", up, "up"]);
        sh(&["ip", "-n", &out, "addr", "add", down_cidr, "dev", down]);
        sh(&["ip", "-n", &out, "link", "set", down, "up"]);
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
        let rules = format!("add table ip wtest\nadd chain ip wtest post {{ type nat hook postrouting priority 100; }}\nadd rule ip wtest post oifname \"{up}\" masquerade\n");
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

/// The cgroup v1 directories a worker named `name` would have (memory, pids, cpu).
pub fn cgroup_v1_dirs(name: &str) -> Vec<PathBuf> {
    ["memory", "pids", "cpu"]
        .iter()
        .map(|ctl| {
            Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("warden")
                .join(name)
        })
        .collect()
}

/// Asserts that every lease lock file under `state` is free.
pub fn assert_leases_free(state: &Path) {
    if let Ok(rd) = std::fs::read_dir(state.join("leases")) {
        for e in rd.filter_map(|e| e.ok()) {
            let f = File::open(e.path()).unwrap();
            let free = Flock::lock(f, FlockArg::LockExclusiveNonblock).is_ok();
            assert!(free, "lease {:?} still held", e.file_name());
        }
    }
}
