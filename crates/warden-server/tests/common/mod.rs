//! Shared helpers of the root tests: the skip rule and cross-process lock, throwaway network
//! namespaces (Drop guards), a `warden serve` child process, raw HTTP, and residue checks. What
//! warden-linux's root tests need too lives in warden-testkit.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
pub use warden_testkit::{root_test, TestNet};

pub const BIN: &str = env!("CARGO_BIN_EXE_warden-server-test");

/// A throwaway namespace with `warden0` at 10.0.1.1/24 (the layout's defaults), deleted on drop.
pub fn test_net() -> TestNet {
    TestNet::new("wtest-srv")
}

pub const PROVIDER_ADDR: &str = "192.168.254.2";

/// Adds the provider namespace (192.168.254.2), reachable from workers only through `net`'s
/// forwarding and masquerade. Returns its name.
pub fn add_provider(net: &mut TestNet) -> String {
    net.add_routed(
        "wtest-prov",
        ("toprov", "192.168.254.1/24"),
        ("fromwarden", "192.168.254.2/24"),
    )
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

/// A server test's usual start: the test lock, a fresh state dir and a server on it.
pub fn root_server(
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Option<(warden_testkit::Serial, tempfile::TempDir, Server)> {
    let lock = root_test(name)?;
    let state = state_dir();
    let srv = Server::start(state.path(), extra, env);
    Some((lock, state, srv))
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
    /// POSTs a turn and returns its id.
    pub async fn post_id(&self, path: &str, body: &str) -> String {
        id_of(&self.post(path, body).await.body)
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

/// The `id` of a turn's JSON.
pub fn id_of(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_string()
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
        for dir in warden_testkit::cgroup_v1_dirs(name) {
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
    warden_testkit::assert_leases_free(state);
}

/// pi's install prefix, shared with warden-agent's tests (`install_pi` is idempotent and locked).
pub fn pi_cache() -> PathBuf {
    match std::env::var_os("WARDEN_PI_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("pi-cache"),
    }
}

/// Installs the pinned pi into [`pi_cache`] the way setup's `agent` step does (npm, then the completion
/// marker); the server itself never installs it.
pub fn install_pi() {
    let version = warden_agent::AgentConfig::default().version;
    if let Err(e) = warden_agent::install_pi(&pi_cache(), &version) {
        panic!("failed to install pi {version} for the test (needs the npm registry): {e}");
    }
}

/// A fresh state directory for the server.
pub fn state_dir() -> tempfile::TempDir {
    warden_testkit::state_dir("wsrv")
}
