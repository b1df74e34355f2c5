//! End-to-end agent turns through the real `warden serve`: real pi inside a VNET worker, the model gateway on
//! the host, the mock OpenAI provider (in a separate "provider" namespace, or on the host's loopback); the
//! reply comes back through the API.
#![cfg(target_os = "linux")]

mod common;

use std::path::PathBuf;

use common::server::{
    add_provider, assert_no_residue, enter, root_test, sse, start_server, test_net, Provider,
    PROVIDER_ADDR,
};
use common::state_with_pi;
use serde_json::Value;
use warden_agent::mock::{Reply, Script};

#[tokio::test]
async fn agent_turns_reach_the_provider_through_the_gateway() {
    let _lock = root_test("agent_turns_reach_the_provider_through_the_gateway");
    let mut net = test_net();
    enter(&net);
    let prov_ns = add_provider(&mut net);
    let script = Script::new(vec![
        Reply::ToolCall {
            name: "bash".into(),
            arguments: serde_json::json!({"command": "echo hi > note.txt; cat note.txt"}),
        },
        Reply::Text {
            text: "The command printed hi.".into(),
        },
        Reply::HttpError {
            status: 500,
            message: "mock internal error".into(),
        },
    ]);
    let mock = Provider::start(
        PathBuf::from("/run/netns").join(&prov_ns),
        PROVIDER_ADDR,
        script,
    );
    let base_url = mock.base_url();
    assert!(base_url.starts_with("http://192.168.254.2:"), "{base_url}");
    let state = state_with_pi();
    let srv = start_server(
        &net,
        state.path(),
        &[],
        &[
            ("WARDEN_AGENT_BASE_URL", &base_url),
            ("WARDEN_AGENT_MODEL", "mock-model"),
        ],
    );

    // Turn 1: a tool call (run inside the worker) and the final text reply.
    let a = srv
        .post(
            "/v1/turns",
            r#"{"tenant":"acme","prompt":"-run echo hi (a prompt starting with a dash)"}"#,
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    let evs = sse(&srv.base, &srv.token, &id, None).await;
    let end: Value = serde_json::from_str(&evs.last().unwrap().2).unwrap();
    assert_eq!(
        end["status"],
        "succeeded",
        "{end:#}\nlog: {}",
        srv.log_text()
    );
    assert_eq!(end["kind"], "agent");
    assert_eq!(end["reply"], "The command printed hi.");
    assert_eq!(end["stop_reason"], "stop");
    assert_eq!(end["exit_code"], 0);
    assert!(end["usage"]["output"].as_u64().unwrap() > 0, "{end}");
    assert!(
        end["worker"].as_str().unwrap().starts_with('w'),
        "a vnet worker: {end}"
    );
    assert_eq!(end, srv.get(&format!("/v1/turns/{id}")).await.body);
    // The SSE stream carried pi's typed events, the tool execution among them.
    let agent_types: Vec<String> = evs
        .iter()
        .filter(|e| e.1 == "agent")
        .map(|e| {
            serde_json::from_str::<Value>(&e.2).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(agent_types.first().map(String::as_str), Some("session"));
    assert!(
        agent_types.iter().any(|t| t == "tool_execution_end"),
        "{agent_types:?}"
    );
    assert_eq!(agent_types.last().map(String::as_str), Some("agent_end"));
    // The tool ran in the tenant's persistent workspace, and its output went back to the model.
    let note = state.path().join("tenants/acme/workspace/note.txt");
    assert_eq!(std::fs::read_to_string(&note).unwrap(), "hi\n");
    let reqs = mock.completion_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body["model"], "mock-model");
    let tool_msg = reqs[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .cloned()
        .unwrap();
    assert!(tool_msg["content"].to_string().contains("hi"));

    // Turn 2: the provider fails with HTTP 500 — a failed turn that says why; the session
    // carried turn 1's history into the request.
    let b = srv.client().turn("acme", "and again").await.unwrap();
    assert_eq!(b.status.as_str(), "failed", "{b:?}");
    assert_eq!(b.failure.as_deref(), Some("provider_error"));
    assert_eq!(b.stop_reason.as_deref(), Some("error"));
    assert!(b.stderr.contains("mock internal error"), "{}", b.stderr);
    let reqs = mock.completion_requests();
    assert_eq!(reqs.len(), 3, "retries are off: one request");
    let history = reqs[2].body["messages"].to_string();
    assert!(
        history.contains("run echo hi") && history.contains("The command printed hi."),
        "{history}"
    );
    let sessions = std::fs::read_dir(state.path().join("tenants/acme/pi/sessions"))
        .unwrap()
        .count();
    assert_eq!(sessions, 1, "one persistent session file");

    drop(srv);
    assert_no_residue(state.path());
    drop(mock);
}

/// The provider key stays on the host: pi in the worker gets a turn token for the model gateway, the
/// gateway adds the key, and the provider (which refuses requests without it) answers. Inside the
/// worker, a bash tool call dumps every environment and command line it can see and searches its files
/// for the key; the test reads that output where it comes back to the provider.
#[tokio::test]
async fn keyed_turns_succeed_while_the_worker_holds_no_key() {
    let _lock = root_test("keyed_turns_succeed_while_the_worker_holds_no_key");
    let key = format!("sk-isolation-{}", std::process::id());
    // Split (as are the markers) so that the probe's own command line never contains them whole.
    let (k1, k2) = key.split_at(6);
    let probe = format!(
        "for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do tr '\\0' '\\n' < $f; echo; done 2>/dev/null; \
         echo ENV\"-DONE\"; grep -rlF \"{k1}\"\"{k2}\" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; \
         echo GREP\"-DONE\""
    );
    let net = test_net();
    enter(&net);
    let script = Script::new(vec![
        Reply::ToolCall {
            name: "bash".into(),
            arguments: serde_json::json!({ "command": probe }),
        },
        Reply::Text {
            text: "Checked.".into(),
        },
        Reply::ToolCall {
            name: "bash".into(),
            arguments: serde_json::json!({ "command": probe }),
        },
        Reply::Text {
            text: "Checked again.".into(),
        },
    ])
    .with_required_key(&key);
    // The provider listens on the host's loopback (the server's namespace): only host processes (the gateway)
    // can reach it, never a worker, whose namespace has its own loopback.
    let mock = Provider::start(net.path(), "127.0.0.1", script);
    let state = state_with_pi();
    // The gateway reads the key from the variable `agent.api_key_env` names.
    let srv = start_server(
        &net,
        state.path(),
        &[],
        &[
            ("WARDEN_AGENT_BASE_URL", &mock.base_url()),
            ("WARDEN_AGENT_MODEL", "mock-model"),
            ("WARDEN_AGENT_API_KEY_ENV", "TEST_PROVIDER_KEY"),
            ("TEST_PROVIDER_KEY", &key),
        ],
    );
    let a = srv.client().turn("acme", "check the key").await.unwrap();
    assert_reply(&srv, &a, "Checked.");
    assert_eq!(
        mock.completion_requests().len(),
        2,
        "both requests reached the keyed provider"
    );
    assert_no_key(&tool_output(&mock, 1), &key);
    // The second turn is served by the warm agent parked after the first: no key there either.
    let b = srv.client().turn("acme", "check again").await.unwrap();
    assert_reply(&srv, &b, "Checked again.");
    assert_eq!(
        metric(&srv, "warden_warm_turns_total").await,
        1,
        "served warm"
    );
    assert_eq!(mock.completion_requests().len(), 4);
    assert_no_key(&tool_output(&mock, 3), &key);
    // What pi was given: the gateway and a token — now the warm agent's, minted when it was parked.
    let models = std::fs::read_to_string(state.path().join("tenants/acme/pi/models.json")).unwrap();
    assert!(models.contains("http://10.0.1.1:8090/v1"), "{models}");
    assert!(!models.contains(&key), "{models}");
    let v: Value = serde_json::from_str(&models).unwrap();
    let token = v["providers"]["local"]["apiKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(token.starts_with("wt-"), "{token}");
    // That token is the parked warm agent's: refused by the gateway between turns.
    let parked = common::server::http(
        "POST",
        "http://10.0.1.1:8090/v1/chat/completions",
        Some(&token),
        Some(r#"{"model":"mock-model","messages":[{"role":"user","content":"hi"}]}"#),
    )
    .await;
    assert_eq!(parked.status, 401, "{}", parked.text);
    // The gateway counted the provider's reported tokens for the turn.
    let store = warden_store::Store::open(&state.path().join("control.db")).unwrap();
    let usage = store.turn_model_usage(&a.id).unwrap();
    assert_eq!(usage.requests, 2, "{usage:?}");
    assert_eq!(usage.completion_tokens, 14, "{usage:?}");
    drop(srv);
    assert_no_residue(state.path());
    drop(mock);
}

/// The tool result pi sent back in completion request `n`.
fn tool_output(mock: &Provider, n: usize) -> String {
    mock.completion_requests()[n].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .unwrap()
}

/// The probe ran (it saw pi's environment and finished its search) and found the key nowhere.
fn assert_no_key(tool_out: &str, key: &str) {
    assert!(tool_out.contains("PI_CODING_AGENT_DIR"), "{tool_out}");
    assert!(
        tool_out.contains("ENV-DONE") && tool_out.contains("GREP-DONE"),
        "{tool_out}"
    );
    let found = tool_out
        .split("ENV-DONE")
        .nth(1)
        .unwrap()
        .split("GREP-DONE")
        .next()
        .unwrap()
        .replace("\\n", "")
        .trim()
        .to_string();
    assert_eq!(found, "", "files holding the key: {found}");
    assert!(
        !tool_out.contains(key),
        "the key is in the worker: {tool_out}"
    );
}

/// The turn succeeded with `reply` (else the turn and the server's log).
fn assert_reply(srv: &common::Serve, v: &warden_server::TurnView, reply: &str) {
    assert_eq!(
        v.status.as_str(),
        "succeeded",
        "{v:?}\nlog: {}",
        srv.log_text()
    );
    assert_eq!(v.reply.as_deref(), Some(reply), "{v:?}");
}

/// A counter or gauge from `/metrics`.
async fn metric(srv: &common::Serve, name: &str) -> u64 {
    let text = srv.get("/metrics").await.text;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

/// The user messages of completion request `n`, as one string.
fn asked(mock: &Provider, n: usize) -> String {
    let reqs = mock.completion_requests();
    reqs[n].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["content"].to_string())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Warm agents in `warden serve`: after a tenant's turn a pi is parked for that tenant, and its next turn is
/// served by it (the warm-turn counter moves) in the same conversation; two
/// tenants never see each other's; a cancelled warm turn ends at once and the tenant goes on; nothing is left
/// after serve stops.
#[tokio::test]
async fn warm_agents_serve_a_tenants_next_turns_in_its_own_session() {
    let _lock = root_test("warm_agents_serve_a_tenants_next_turns_in_its_own_session");
    let net = test_net();
    enter(&net);
    let text = |t: &str| Reply::Text { text: t.into() };
    let mut script = Script::new(vec![
        text("A1"),
        text("A2"),
        text("B1"),
        text("B2"),
        text("slow"),
        text("A4"),
    ]);
    // Request 4 (acme's third turn) is answered only after 8 s: it is cancelled before.
    script.steps[4].delay_ms = 8_000;
    let mock = Provider::start(net.path(), "127.0.0.1", script);
    let state = state_with_pi();
    let srv = start_server(
        &net,
        state.path(),
        &[],
        &[
            ("WARDEN_AGENT_BASE_URL", &mock.base_url()),
            ("WARDEN_AGENT_MODEL", "mock-model"),
            ("WARDEN_AGENT_WARM", "2"),
        ],
    );
    let c = srv.client();
    let ok = |v: &warden_server::TurnView, reply: &str| assert_reply(&srv, v, reply);
    let a1 = c.turn("acme", "my fruit is apple").await.unwrap();
    ok(&a1, "A1");
    assert_eq!(
        metric(&srv, "warden_warm_turns_total").await,
        0,
        "the first turn is cold"
    );
    assert_eq!(
        metric(&srv, "warden_warm_agents").await,
        1,
        "a warm agent parked for acme"
    );
    let a2 = c.turn("acme", "what is my fruit?").await.unwrap();
    ok(&a2, "A2");
    assert_eq!(
        metric(&srv, "warden_warm_turns_total").await,
        1,
        "served warm"
    );
    let b1 = c.turn("beta", "my fruit is banana").await.unwrap();
    ok(&b1, "B1");
    let b2 = c.turn("beta", "what is my fruit?").await.unwrap();
    ok(&b2, "B2");
    assert_eq!(metric(&srv, "warden_warm_turns_total").await, 2);
    assert_eq!(
        metric(&srv, "warden_warm_agents").await,
        2,
        "one per tenant"
    );
    // One conversation per tenant: each second turn carried its own first turn, never the other tenant's.
    let (acme2, beta2) = (asked(&mock, 1), asked(&mock, 3));
    assert!(
        acme2.contains("apple") && acme2.contains("what is my fruit"),
        "{acme2}"
    );
    assert!(!acme2.contains("banana"), "{acme2}");
    assert!(
        beta2.contains("banana") && !beta2.contains("apple"),
        "{beta2}"
    );
    // The gateway billed the warm turn to itself.
    let store = warden_store::Store::open(&state.path().join("control.db")).unwrap();
    assert_eq!(store.turn_model_usage(&a2.id).unwrap().requests, 1);

    // A warm turn cancelled while the provider is answering: cancelled at once, the warm agent stopped.
    let id = srv
        .post_id(
            "/v1/turns",
            r#"{"tenant":"acme","prompt":"take your time"}"#,
        )
        .await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while mock.completion_requests().len() < 5 {
        assert!(
            std::time::Instant::now() < until,
            "the slow request never came"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let t = std::time::Instant::now();
    let r = srv.delete(&format!("/v1/turns/{id}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let end = srv
        .wait_turn(&id, std::time::Duration::from_secs(5), |v| {
            v["status"] == "cancelled"
        })
        .await;
    assert!(t.elapsed() < std::time::Duration::from_secs(3), "{end}");
    assert_eq!(end["failure"], "cancelled");
    assert_eq!(metric(&srv, "warden_warm_turns_total").await, 3);
    // The tenant goes on, warm again (a new agent was parked after the cancelled turn), in its session.
    let a4 = c.turn("acme", "still there?").await.unwrap();
    ok(&a4, "A4");
    assert_eq!(metric(&srv, "warden_warm_turns_total").await, 4);
    let acme4 = asked(&mock, 5);
    assert!(
        acme4.contains("apple") && !acme4.contains("banana"),
        "{acme4}"
    );
    let sessions = std::fs::read_dir(state.path().join("tenants/acme/pi/sessions"))
        .unwrap()
        .count();
    assert_eq!(sessions, 1, "one persistent session file");

    assert_eq!(
        warm_pis(),
        2,
        "acme's and beta's warm pi run until serve stops"
    );
    srv.stop();
    assert_no_residue(state.path());
    assert_eq!(warm_pis(), 0, "no warm pi outlives serve");
    drop(mock);
}

/// Processes reading a warm agent's command FIFO (pi's stdin, `/var/pi/rpc.in` inside its worker).
fn warm_pis() -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            std::fs::read_link(e.path().join("fd/0"))
                .is_ok_and(|l| l == std::path::Path::new("/var/pi/rpc.in"))
        })
        .count()
}
