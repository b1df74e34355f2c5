//! Real pi turns against the mock provider.
//!
//! Installs the pinned pi from the npm registry into `$WARDEN_PI_CACHE` (default `target/tmp/pi-cache`),
//! so it needs npm and node >= 20.6 (both on the CI image). Set `WARDEN_RECORD_FIXTURES=1` to rewrite
//! `tests/fixtures/*.jsonl` from these runs.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use warden_agent::mock::{MockProvider, Reply, Script};
use warden_agent::{
    find_node, install_pi, pi_command, write_agent_dir, AgentConfig, AgentFailure, EventParser,
    PiLauncher, StopReason, TurnResult, PI_VERSION,
};

const TURN_TIMEOUT: Duration = Duration::from_secs(90);

fn pi_cache() -> PathBuf {
    match std::env::var_os("WARDEN_PI_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("pi-cache"),
    }
}

/// Installs pi once per test binary; every test shares the launcher.
fn launcher() -> PiLauncher {
    static LAUNCHER: OnceLock<PiLauncher> = OnceLock::new();
    LAUNCHER
        .get_or_init(|| {
            let node = find_node().expect("a node >= 20.6 on PATH");
            let cli = install_pi(&pi_cache(), PI_VERSION)
                .unwrap_or_else(|e| panic!("installing pi {PI_VERSION} failed: {e}"));
            PiLauncher::node(node, &cli)
        })
        .clone()
}

struct Turn {
    result: TurnResult,
    stdout: Vec<u8>,
    stderr: String,
    exit: Option<i32>,
}

/// A scratch agent dir, workspace and session path for one test.
struct Sandbox {
    _dir: tempfile::TempDir,
    agent_dir: PathBuf,
    workspace: PathBuf,
    session: PathBuf,
}

fn sandbox(mock: &MockProvider) -> (Sandbox, AgentConfig) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = AgentConfig {
        base_url: mock.base_url(),
        ..AgentConfig::default()
    };
    let agent_dir = dir.path().join("agent");
    let workspace = dir.path().join("workspace");
    std::fs::create_dir_all(&workspace).unwrap();
    write_agent_dir(&cfg, &agent_dir).unwrap();
    let session = agent_dir.join("sessions").join("group.jsonl");
    (
        Sandbox {
            _dir: dir,
            agent_dir,
            workspace,
            session,
        },
        cfg,
    )
}

/// Runs one turn the way a worker does: prompt on stdin, stdout fed to the parser as it arrives.
fn run_turn(cfg: &AgentConfig, sb: &Sandbox, prompt: &str) -> Turn {
    let mut cmd = pi_command(cfg, &launcher(), &sb.session, &sb.agent_dir, &sb.workspace);
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn pi");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(prompt.as_bytes()).unwrap();
    drop(stdin);
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let out_reader = thread::spawn(move || {
        let mut parser = EventParser::new();
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    parser.feed(&buf[..n]);
                }
            }
        }
        (parser, raw)
    });
    let deadline = Instant::now() + TURN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (parser, stdout) = out_reader.join().unwrap();
    let stderr = err_reader.join().unwrap();
    let result = parser.finish_with_exit(status.code());
    Turn {
        result,
        stdout,
        stderr,
        exit: status.code(),
    }
}

fn record(name: &str, stdout: &[u8]) {
    if std::env::var_os("WARDEN_RECORD_FIXTURES").is_some() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(format!("{name}.jsonl"));
        std::fs::write(path, stdout).unwrap();
    }
}

fn messages(req: &Value) -> Vec<Value> {
    req["messages"].as_array().cloned().unwrap_or_default()
}

#[test]
fn text_turn_replies() {
    let mock = MockProvider::start("127.0.0.1:0", Script::scenario("text").unwrap()).unwrap();
    let (sb, cfg) = sandbox(&mock);
    let turn = run_turn(&cfg, &sb, "-a prompt that starts with a dash");
    record("text", &turn.stdout);
    assert_eq!(turn.exit, Some(0), "stderr: {}", turn.stderr);
    assert_eq!(turn.result.failure, None, "stderr: {}", turn.stderr);
    assert_eq!(turn.result.reply, "Hello from the mock provider.");
    assert_eq!(turn.result.stop_reason, Some(StopReason::Stop));
    assert_eq!(turn.result.tool_calls, 0);
    assert_eq!(turn.result.usage.output, 7);
    assert!(turn.result.session_id.is_some());
    let reqs = mock.completion_requests();
    assert_eq!(reqs.len(), 1);
    let body = &reqs[0].body;
    assert_eq!(body["model"], "local-model");
    assert_eq!(body["stream"], true);
    let msgs = messages(body);
    assert_eq!(msgs[0]["role"], "system");
    let user = msgs.last().unwrap();
    assert_eq!(user["role"], "user");
    assert!(user
        .to_string()
        .contains("-a prompt that starts with a dash"));
}

#[test]
fn tool_call_then_reply() {
    let mock = MockProvider::start("127.0.0.1:0", Script::scenario("tool").unwrap()).unwrap();
    let (sb, cfg) = sandbox(&mock);
    let turn = run_turn(&cfg, &sb, "run echo hi");
    record("tool", &turn.stdout);
    assert_eq!(turn.result.failure, None, "stderr: {}", turn.stderr);
    assert_eq!(turn.result.reply, "The command printed hi.");
    assert_eq!(turn.result.tool_calls, 1);
    assert_eq!(turn.result.attempts, 1);
    // Two LLM calls: usage is summed over both.
    assert_eq!(turn.result.usage.output, 14);
    let reqs = mock.completion_requests();
    assert_eq!(reqs.len(), 2);
    let tool_msg = messages(&reqs[1].body)
        .into_iter()
        .find(|m| m["role"] == "tool")
        .expect("second request carries the tool result");
    assert_eq!(tool_msg["tool_call_id"], "call_mock0");
    assert!(tool_msg["content"].to_string().contains("hi"));
}

#[test]
fn http_500_is_a_provider_error() {
    let mock = MockProvider::start("127.0.0.1:0", Script::scenario("error500").unwrap()).unwrap();
    let (sb, cfg) = sandbox(&mock);
    let turn = run_turn(&cfg, &sb, "hello");
    record("error500", &turn.stdout);
    // json mode exits 0 on provider failure: the error is only in the events.
    assert_eq!(turn.exit, Some(0), "stderr: {}", turn.stderr);
    match &turn.result.failure {
        Some(AgentFailure::ProviderError(msg)) => assert!(msg.contains("500"), "{msg}"),
        other => panic!("expected a provider error, got {other:?}"),
    }
    assert_eq!(turn.result.stop_reason, Some(StopReason::Error));
    // settings.json turns off pi's and the SDK's retries: exactly one HTTP attempt.
    assert_eq!(mock.completion_requests().len(), 1);
}

#[test]
fn empty_choices_is_an_empty_reply() {
    let mock = MockProvider::start("127.0.0.1:0", Script::scenario("empty").unwrap()).unwrap();
    let (sb, cfg) = sandbox(&mock);
    let turn = run_turn(&cfg, &sb, "hello");
    record("empty", &turn.stdout);
    assert_eq!(turn.exit, Some(0), "stderr: {}", turn.stderr);
    assert_eq!(turn.result.failure, Some(AgentFailure::EmptyReply));
}

#[test]
fn session_file_persists_across_turns() {
    let script = Script::new(vec![
        Reply::Text {
            text: "first answer".into(),
        },
        Reply::Text {
            text: "second answer".into(),
        },
    ]);
    let mock = MockProvider::start("127.0.0.1:0", script).unwrap();
    let (sb, cfg) = sandbox(&mock);
    let first = run_turn(&cfg, &sb, "first question");
    assert_eq!(
        first.result.reply, "first answer",
        "stderr: {}",
        first.stderr
    );
    assert!(sb.session.is_file(), "pi created the session file");
    let second = run_turn(&cfg, &sb, "second question");
    record("session_second", &second.stdout);
    assert_eq!(
        second.result.reply, "second answer",
        "stderr: {}",
        second.stderr
    );
    assert_eq!(first.result.session_id, second.result.session_id);
    let reqs = mock.completion_requests();
    assert_eq!(reqs.len(), 2);
    let history = messages(&reqs[1].body);
    let text = serde_json::to_string(&history).unwrap();
    assert!(text.contains("first question"), "{text}");
    assert!(text.contains("first answer"), "{text}");
    assert!(text.contains("second question"), "{text}");
}
