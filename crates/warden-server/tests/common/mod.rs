//! Shared helpers of the root tests: the skip rule and cross-process lock, throwaway network
//! namespaces (Drop guards), a `warden serve` child process, raw HTTP, and residue checks.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_warden-server-test");

/// Serialises root tests across threads and processes — with warden-linux's root tests too
/// (same lock file), since workers of both suites share the host's cgroup tree.
pub struct Serial(File);

pub fn root_test(name: &str) -> Option<Serial> {
    // A root test that cannot run fails loudly rather than passing without having run.
    assert!(
        nix::unistd::geteuid().is_root(),
        "{name} needs root (CI runs these as root): run `sudo cargo test`"
    );
    let f = File::create("/tmp/warden-linux-tests.lock").expect("open test lock");
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    Some(Serial(f))
}

pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{:x}{:x}", std::process::id() % 4096, nanos % 65536)
}

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

/// A network namespace with bridge `warden0` at 10.0.1.1/24 (the layout's defaults), deleted
/// on drop, and optionally a "provider" namespace behind it (veth, forwarding, nft masquerade).
pub struct TestNet {
    pub name: String,
    pub extra: Vec<String>,
}

pub const PROVIDER_ADDR: &str = "192.168.254.2";

impl TestNet {
    pub fn new() -> TestNet {
        let name = unique("wtest-srv");
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

    /// Adds the provider namespace (192.168.254.2), reachable from workers only through this
    /// namespace's forwarding and masquerade. Returns its name.
    pub fn add_provider(&mut self) -> String {
        let p = unique("wtest-prov");
        sh(&["ip", "netns", "add", &p]);
        self.extra.push(p.clone());
        let n = self.name.as_str();
        sh(&[
            "ip",
            "-n",
            n,
            "link",
            "add",
            "toprov",
            "type",
            "veth",
            "peer",
            "name",
            "fromwarden",
            "netns",
            &p,
        ]);
        sh(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            "192.168.254.1/24",
            "dev",
            "toprov",
        ]);
        sh(&["ip", "-n", n, "link", "set", "toprov", "up"]);
        sh(&[
            "ip",
            "-n",
            &p,
            "addr",
            "add",
            "192.168.254.2/24",
            "dev",
            "fromwarden",
        ]);
        sh(&["ip", "-n", &p, "link", "set", "fromwarden", "up"]);
        sh(&["ip", "-n", &p, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        let rules = "add table ip wtest\nadd chain ip wtest post { type nat hook postrouting priority 100; }\nadd rule ip wtest post oifname \"toprov\" masquerade\n";
        let f = std::env::temp_dir().join(format!("{p}.nft"));
        std::fs::write(&f, rules).unwrap();
        sh(&["ip", "netns", "exec", n, "nft", "-f", f.to_str().unwrap()]);
        let _ = std::fs::remove_file(&f);
        p
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in self.extra.iter().chain(std::iter::once(&self.name)) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A `warden serve` child process on 127.0.0.1 (an ephemeral port), stopped on drop.
pub struct Server {
    pub child: Child,
    pub state: PathBuf,
    pub base: String,
    pub token: String,
    pub log: PathBuf,
}

impl Server {
    // The child is owned by the returned `Server`, whose Drop waits for it.
    #[allow(clippy::zombie_processes)]
    pub fn start(state: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let _ = std::fs::remove_file(state.join("serve.json"));
        let log = state.join("serve.log");
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(BIN)
            .args([
                "serve",
                "--state-dir",
                state.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(["--pi-dir", pi_cache().to_str().unwrap()])
            .args(extra)
            .envs(env.iter().copied())
            .env("WARDEN_LOG", "info,tower_http=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start the server");
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(state.join("serve.json")) {
                if let Ok(v) = serde_json::from_str::<Value>(&text) {
                    let addr = v["listening"][0].as_str().unwrap().to_string();
                    let token = std::fs::read_to_string(state.join("token"))
                        .unwrap()
                        .trim()
                        .to_string();
                    return Server {
                        child,
                        state: state.to_path_buf(),
                        base: format!("http://{addr}"),
                        token,
                        log,
                    };
                }
            }
            if start.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not start: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn client(&self) -> warden_server::Client {
        warden_server::Client::new(self.base.clone(), self.token.clone())
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM and wait (up to `within`); true if it exited.
    pub fn terminate(&mut self, within: Duration) -> bool {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if !self.terminate(Duration::from_secs(15)) {
                self.kill9();
            }
        }
    }
}

/// A raw HTTP answer: status and JSON body (Null if not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

pub async fn http(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client.request(method.parse().unwrap(), url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

impl Server {
    pub async fn get(&self, path: &str) -> Answer {
        http(
            "GET",
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await
    }
    pub async fn post(&self, path: &str, body: &str) -> Answer {
        http(
            "POST",
            &format!("{}{path}", self.base),
            Some(&self.token),
            Some(body),
        )
        .await
    }
    pub async fn delete(&self, path: &str) -> Answer {
        http(
            "DELETE",
            &format!("{}{path}", self.base),
            Some(&self.token),
            None,
        )
        .await
    }

    /// Polls a turn until `pred` holds (or panics after `within`).
    pub async fn wait_turn(
        &self,
        id: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            let a = self.get(&format!("/v1/turns/{id}")).await;
            if pred(&a.body) {
                return a.body;
            }
            assert!(
                start.elapsed() < within,
                "turn {id} never matched; last: {}",
                a.text
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// SSE events of a stream, read until `end` (or the stream closes): (id, event, data).
pub async fn sse(
    base: &str,
    token: &str,
    id: &str,
    last_event_id: Option<u64>,
) -> Vec<(Option<u64>, String, String)> {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut req = client
        .get(format!("{base}/v1/turns/{id}/events"))
        .bearer_auth(token);
    if let Some(l) = last_event_id {
        req = req.header("Last-Event-ID", l.to_string());
    }
    let mut resp = req.send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = String::new();
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = tokio::time::timeout(Duration::from_secs(60), resp.chunk())
        .await
        .expect("sse stalled")
    {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(pos) = buf.find("\n\n") {
            let block: String = buf.drain(..pos + 2).collect();
            let (mut eid, mut ev, mut data) = (None, String::new(), Vec::new());
            for line in block.lines() {
                if let Some(v) = line
                    .strip_prefix("id: ")
                    .or_else(|| line.strip_prefix("id:"))
                {
                    eid = v.parse().ok();
                } else if let Some(v) = line
                    .strip_prefix("event: ")
                    .or_else(|| line.strip_prefix("event:"))
                {
                    ev = v.to_string();
                } else if let Some(v) = line
                    .strip_prefix("data: ")
                    .or_else(|| line.strip_prefix("data:"))
                {
                    data.push(v.to_string());
                }
            }
            if ev.is_empty() && data.is_empty() {
                continue; // keep-alive comment
            }
            let done = ev == "end";
            out.push((eid, ev, data.join("\n")));
            if done {
                return out;
            }
        }
    }
    out
}

/// Nothing of a server's workers is left: records, cgroups, held leases.
pub fn assert_no_residue(state: &Path) {
    let start = Instant::now();
    loop {
        let left = warden_linux::record::list(state);
        if left.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "worker records left: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The workers this server ran (their names are in its store): no cgroup of theirs is left.
    let store = warden_store::Store::open(&state.join("control.db")).unwrap();
    let turns = store
        .list_turns(&warden_store::TurnFilter::default(), 100_000)
        .unwrap();
    for name in turns.iter().filter_map(|t| t.worker.as_deref()) {
        for ctl in ["memory", "pids", "cpu"] {
            let dir = Path::new("/sys/fs/cgroup")
                .join(ctl)
                .join("warden")
                .join(name);
            let start = Instant::now();
            while dir.exists() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "cgroup left: {}",
                    dir.display()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(state.join("leases")) {
        for e in rd.filter_map(|e| e.ok()) {
            let f = File::open(e.path()).unwrap();
            // SAFETY: flock on a descriptor we own.
            let free = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
            assert!(free, "lease {:?} still held", e.file_name());
        }
    }
}

/// pi's install prefix, shared with warden-agent's tests (`install_pi` is idempotent and locked).
pub fn pi_cache() -> PathBuf {
    match std::env::var_os("WARDEN_PI_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("pi-cache"),
    }
}

pub fn state_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wsrv")
        .tempdir()
        .expect("state dir")
}
