//! The control plane's root tests: a real `warden serve` in a throwaway network namespace with `warden0`
//! (warden-testkit's `TestNet`), reached from the test's own thread, which enters that namespace; raw HTTP,
//! SSE, the mock provider in a namespace of its own, and the residue checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_agent::mock::{MockProvider, Script};
pub use warden_testkit::{root_test, Serial, TestNet};

use super::{serve_command, Serve};

/// Where the mock provider listens: a namespace behind the test namespace, reached through its NAT.
pub const PROVIDER_ADDR: &str = "192.168.254.2";

/// A throwaway namespace with `warden0` at 10.0.1.1/24 (the layout's defaults), deleted on drop.
pub fn test_net() -> TestNet {
    TestNet::new("wtest-srv")
}

/// Adds the provider namespace (192.168.254.2), reachable from workers only through `net`'s forwarding and
/// masquerade. Returns its name.
pub fn add_provider(net: &mut TestNet) -> String {
    net.add_routed(
        "wtest-prov",
        ("toprov", "192.168.254.1/24"),
        ("fromwarden", "192.168.254.2/24"),
    )
}

/// Runs `f` on a thread that entered the namespace at `ns` (sockets it makes live there).
pub fn in_netns<T: Send + 'static>(ns: PathBuf, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        warden_linux::veth::enter_netns(&ns).expect("enter the namespace");
        f()
    })
    .join()
    .unwrap()
}

/// Moves the calling thread into `net` for the rest of the test, so that its connections reach a server
/// listening on the namespace's loopback. Tests that use it run on a current-thread runtime (`#[tokio::test]`):
/// a multi-threaded runtime's workers would stay where they were started.
pub fn enter(net: &TestNet) {
    warden_linux::veth::enter_netns(&net.path()).expect("enter the test namespace");
}

/// The mock OpenAI provider, listening in a namespace; it stops by connecting to itself, so it is dropped
/// from there too.
pub struct Provider {
    mock: Option<MockProvider>,
    ns: PathBuf,
}

impl Provider {
    /// Starts it on `addr` (port 0: any) inside the namespace `ns`.
    pub fn start(ns: PathBuf, addr: &str, script: Script) -> Provider {
        let addr = addr.to_string();
        let mock = in_netns(ns.clone(), move || {
            MockProvider::start((addr.as_str(), 0), script).expect("start the mock provider")
        });
        Provider {
            mock: Some(mock),
            ns,
        }
    }
}

impl std::ops::Deref for Provider {
    type Target = MockProvider;
    fn deref(&self) -> &MockProvider {
        self.mock.as_ref().unwrap()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let (mock, ns) = (self.mock.take(), self.ns.clone());
        in_netns(ns, move || drop(mock));
    }
}

/// `warden serve` in `net` on 127.0.0.1 (an ephemeral port) with `extra` flags and `env`; no warm pool unless
/// `env` sets `WARDEN_POOL_SIZE`.
pub fn start_server(net: &TestNet, state: &Path, extra: &[&str], env: &[(&str, &str)]) -> Serve {
    super::ensure_worker_account();
    let mut cmd = serve_command(Some(&net.path()), state, extra);
    cmd.env("WARDEN_POOL_SIZE", "0").envs(env.iter().copied());
    Serve::spawn(cmd, state)
}

/// A server test's usual start: the test lock, a namespace (which this thread enters), a fresh state dir and
/// a server on it. Bind all four: they drop server first, lock last.
pub fn root_server(
    name: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (Serial, TestNet, tempfile::TempDir, Serve) {
    let lock = root_test(name).expect("root_test never skips");
    let net = test_net();
    enter(&net);
    let state = state_dir();
    let srv = start_server(&net, state.path(), extra, env);
    (lock, net, state, srv)
}

/// A fresh state directory for a server.
pub fn state_dir() -> tempfile::TempDir {
    warden_testkit::state_dir("wsrv")
}

/// A raw HTTP answer: status and JSON body (Null if not JSON).
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

/// One request, without the client library.
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

impl Serve {
    /// GET `path` with the token.
    pub async fn get(&self, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        http("GET", &url, Some(&self.token), None).await
    }

    /// POST `body` to `path` with the token.
    pub async fn post(&self, path: &str, body: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        http("POST", &url, Some(&self.token), Some(body)).await
    }

    /// POSTs a turn and returns its id.
    pub async fn post_id(&self, path: &str, body: &str) -> String {
        id_of(&self.post(path, body).await.body)
    }

    /// DELETE `path` with the token.
    pub async fn delete(&self, path: &str) -> Answer {
        let url = format!("{}{path}", self.base);
        http("DELETE", &url, Some(&self.token), None).await
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

/// One parsed SSE block: (id, event, data).
type SseEvent = (Option<u64>, String, String);

/// Parses one SSE block (lines up to a blank line); None for a keep-alive comment.
fn sse_block(block: &str) -> Option<SseEvent> {
    let (mut eid, mut ev, mut data) = (None, String::new(), Vec::new());
    for line in block.lines() {
        let field = |name: &str| {
            line.strip_prefix(&format!("{name}: "))
                .or_else(|| line.strip_prefix(&format!("{name}:")))
                .map(str::to_string)
        };
        if let Some(v) = field("id") {
            eid = v.parse().ok();
        } else if let Some(v) = field("event") {
            ev = v;
        } else if let Some(v) = field("data") {
            data.push(v);
        }
    }
    (!ev.is_empty() || !data.is_empty()).then(|| (eid, ev, data.join("\n")))
}

/// SSE events of a turn's stream, read until `end` (or the stream closes; a 60 s silence fails).
pub async fn sse(base: &str, token: &str, id: &str, last_event_id: Option<u64>) -> Vec<SseEvent> {
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
            if let Some(event) = sse_block(&block) {
                let done = event.1 == "end";
                out.push(event);
                if done {
                    return out;
                }
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
