//! The API against the real `warden serve` (a child process in a network namespace of the test's) running real
//! workers: argv turns end to end, bad input, SSE, queue bound, per-tenant order, cancel, metrics, OpenAPI,
//! client.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::server::{assert_no_residue, http, id_of, root_server, sse};
use serde_json::{json, Value};
use warden_server::openapi::ROUTES;

#[tokio::test]
async fn argv_turn_end_to_end_and_client() {
    let (_lock, _net, state, srv) = root_server("argv_turn_end_to_end_and_client", &[], &[]);
    let a = srv
        .post("/v1/turns?wait=true", r#"{"tenant":"acme","argv":["sh","-c","echo out; echo err >&2; exit 3"],"env":{"X":"1"}}"#)
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["status"], "failed");
    assert_eq!(a.body["failure"], "exit_code");
    assert_eq!(a.body["exit_code"], 3);
    assert_eq!(a.body["stdout"], "out\n");
    assert_eq!(a.body["stderr"], "err\n");
    // GET returns the same stored result.
    let g = srv.get(&format!("/v1/turns/{}", id_of(&a.body))).await;
    assert_eq!(g.body, a.body);

    // The client library.
    let c = srv.client();
    let v = c
        .run_remote("acme", &["sh".into(), "-c".into(), "echo $X; id -u".into()])
        .await
        .unwrap();
    assert_eq!(v.status.as_str(), "succeeded");
    assert_eq!(v.stdout, "\n1500\n", "workers run as the worker account");
    let listed = c
        .turns_list(&warden_server::ListQuery {
            tenant: Some("acme".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, v.id, "newest first");
    assert_eq!(c.turns_show(&v.id).await.unwrap(), v);
    assert_eq!(warden_server::token(state.path()).unwrap(), srv.token);

    // Limits reach the worker: a timeout is a failed turn that says so.
    let t = srv
        .post(
            "/v1/turns?wait=true",
            r#"{"tenant":"acme","argv":["sleep","5"],"limits":{"timeout_ms":200}}"#,
        )
        .await;
    assert_eq!(t.body["status"], "failed");
    assert_eq!(t.body["failure"], "timeout");
    let s = srv.post("/v1/turns?wait=true", r#"{"tenant":"acme","argv":["sh","-c","head -c 100000 /dev/zero"],"limits":{"output_bytes":1000}}"#).await;
    assert_eq!(s.body["failure"], "output_limit");

    // Jails: the layout's service jails; no live worker now.
    let j = srv.get("/v1/jails").await;
    assert_eq!(j.status, 200);
    assert!(j.body["services"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "clawdiegit"));
    let l = srv.get("/v1/layout").await;
    assert_eq!(l.body["gateway"], "10.0.1.1");

    let m = srv.get("/metrics").await;
    assert!(
        m.text
            .contains("warden_turns_total{status=\"succeeded\",failure=\"\"} 1"),
        "{}",
        m.text
    );
    assert!(m
        .text
        .contains("warden_turns_total{status=\"failed\",failure=\"timeout\"} 1"));
    assert!(m.text.contains("warden_queue_depth 0"));
    assert!(m.text.contains("warden_turn_duration_seconds_count 4"));
    drop(srv);
    assert_no_residue(state.path());
}

/// (method, url, token, body, expected status, expected error code)
type Case<'a> = (
    &'a str,
    String,
    Option<&'a str>,
    Option<String>,
    u16,
    &'a str,
);

#[tokio::test]
async fn bad_input_is_4xx_with_a_json_error() {
    let (_lock, _net, _state, srv) = root_server(
        "bad_input_is_4xx_with_a_json_error",
        &[],
        &[("TENANT_ID", "atlas,acme")],
    );
    let t = srv.token.as_str();
    let url = |p: &str| format!("{}{p}", srv.base);
    let big_prompt = json!({"tenant": "acme", "prompt": "x".repeat(300 * 1024)}).to_string();
    let huge_body = format!(r#"{{"tenant":"acme","argv":["{}"]}}"#, "y".repeat(2 << 20));
    // Most cases carry the right token; these spell out only what differs.
    let post_as = |tok, body: &str, status, code| {
        let body = Some(body.to_string());
        ("POST", url("/v1/turns"), tok, body, status, code)
    };
    let post = |body: &str, status, code| post_as(Some(t), body, status, code);
    let no_body = |method, p: &str, status, code| (method, url(p), Some(t), None, status, code);
    let acme_x = r#"{"tenant":"acme","argv":["x"]}"#;
    let cases: Vec<Case> = vec![
        post("{not json", 400, "bad_json"),
        post(
            r#"{"tenant":"acme","argv":["x"],"bogus":1}"#,
            400,
            "bad_json",
        ),
        post(r#"{"tenant":"nobody","argv":["x"]}"#, 404, "unknown_tenant"),
        post(r#"{"tenant":"acme"}"#, 400, "bad_request"),
        post(
            r#"{"tenant":"acme","argv":["x"],"limits":{"memory":"much"}}"#,
            400,
            "bad_request",
        ),
        post(&big_prompt, 413, "prompt_too_large"),
        post(&huge_body, 413, "body_too_large"),
        post_as(None, acme_x, 401, "unauthorized"),
        post_as(Some("wrong"), acme_x, 401, "unauthorized"),
        no_body("GET", "/v1/turns/nope", 404, "not_found"),
        no_body("GET", "/v1/turns/nope/events", 404, "not_found"),
        no_body("DELETE", "/v1/turns/nope", 404, "not_found"),
        no_body("GET", "/v1/turns?status=weird", 400, "bad_request"),
        no_body("GET", "/v1/nothing", 404, "not_found"),
        no_body("PUT", "/v1/turns", 405, "method_not_allowed"),
        ("GET", url("/metrics"), None, None, 401, "unauthorized"),
    ];
    for (method, u, tok, body, status, code) in cases {
        let a = http(method, &u, tok, body.as_deref()).await;
        assert_eq!(a.status, status, "{method} {u}: {}", a.text);
        assert_eq!(a.body["error"]["code"], code, "{method} {u}: {}", a.text);
        assert!(a.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // /healthz and /openapi.json need no token.
    assert_eq!(
        http("GET", &url("/healthz"), None, None).await.body["status"],
        "ok"
    );
    assert_eq!(
        http("GET", &url("/openapi.json"), None, None).await.body["openapi"],
        "3.1.0"
    );
    // Nothing ran.
    assert!(srv.get("/v1/turns").await.body["turns"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn openapi_documents_exactly_the_routes() {
    let (_lock, _net, _state, srv) = root_server("openapi_documents_exactly_the_routes", &[], &[]);
    let doc = srv.get("/openapi.json").await.body;
    let mut documented = 0;
    for r in ROUTES {
        assert!(
            doc["paths"][r.path][r.method].is_object(),
            "{} {} not in the document",
            r.method,
            r.path
        );
        documented += 1;
        // Every documented route exists: it answers something other than 404-no-route / 405.
        let path = r.path.replace("{id}", "does-not-exist");
        let body = (r.method == "post").then_some("{}");
        let tok = r.auth.then_some(srv.token.as_str());
        let (method, url) = (r.method.to_uppercase(), format!("{}{path}", srv.base));
        let a = http(&method, &url, tok, body).await;
        assert_ne!(a.status, 405, "{} {}", r.method, r.path);
        assert!(
            a.status != 404 || a.body["error"]["message"] != "no such route; see /openapi.json",
            "{} {} has no route",
            r.method,
            r.path
        );
        if r.auth {
            let no = http(&method, &url, None, body).await;
            assert_eq!(
                no.status, 401,
                "{} {} must need the token",
                r.method, r.path
            );
        }
    }
    let ops: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(ops, documented);
}

#[tokio::test]
async fn sse_streams_events_in_order_and_resumes() {
    let (_lock, _net, _state, srv) =
        root_server("sse_streams_events_in_order_and_resumes", &[], &[]);
    let a = srv.post("/v1/turns", r#"{"tenant":"acme","argv":["sh","-c","echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"]}"#).await;
    assert_eq!(a.status, 202);
    assert_eq!(a.body["status"], "queued");
    let id = id_of(&a.body);
    // Subscribed while the turn runs: live events, then the end.
    let evs = sse(&srv.base, &srv.token, &id, None).await;
    let kinds: Vec<&str> = evs.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds, ["stdout", "stderr", "stdout", "end"], "{evs:?}");
    assert_eq!(evs[0].2, "one\n");
    assert_eq!(evs[1].2, "two\n");
    assert_eq!(evs[2].2, "three\n");
    let ids: Vec<u64> = evs.iter().map(|e| e.0.unwrap()).collect();
    assert_eq!(ids, [1, 2, 3, 4]);
    let end: Value = serde_json::from_str(&evs[3].2).unwrap();
    let stored = srv.get(&format!("/v1/turns/{id}")).await.body;
    assert_eq!(end, stored, "the end event carries the stored result");
    assert_eq!(stored["stdout"], "one\nthree\n");
    // Reconnect from Last-Event-ID: only what follows.
    let rest = sse(&srv.base, &srv.token, &id, Some(2)).await;
    let kinds: Vec<&str> = rest.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(kinds, ["stdout", "end"]);
    assert_eq!(rest[0].0, Some(3));
}

#[tokio::test]
async fn queue_full_is_429_and_tenants_run_in_order() {
    let (_lock, _net, state, srv) = root_server(
        "queue_full_is_429_and_tenants_run_in_order",
        &["--concurrency", "2", "--queue", "3"],
        &[],
    );
    let turn = |tenant: &str| format!(r#"{{"tenant":"{tenant}","argv":["sleep","0.4"]}}"#);
    let mut ids = Vec::new();
    // a1 and b1 start at once (two tenants, concurrency 2); a2, a3 and b2 wait (queue 3).
    for t in ["a", "b", "a", "a", "b"] {
        let r = srv.post("/v1/turns", &turn(t)).await;
        assert_eq!(r.status, 202, "{}", r.text);
        ids.push((t, id_of(&r.body)));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let full = srv.post("/v1/turns", &turn("c")).await;
    assert_eq!(full.status, 429, "{}", full.text);
    assert_eq!(full.body["error"]["code"], "queue_full");
    let m = srv.get("/metrics").await.text;
    assert!(
        m.contains("warden_queue_depth 3") && m.contains("warden_workers_busy 2"),
        "{m}"
    );
    let mut done = Vec::new();
    for (t, id) in &ids {
        let v = srv
            .wait_turn(id, Duration::from_secs(20), |v| v["status"] == "succeeded")
            .await;
        done.push((
            *t,
            v["started_ms"].as_i64().unwrap(),
            v["finished_ms"].as_i64().unwrap(),
        ));
    }
    // Per tenant: each turn starts after the previous one of the same tenant finished.
    for t in ["a", "b"] {
        let mine: Vec<_> = done.iter().filter(|d| d.0 == t).collect();
        for w in mine.windows(2) {
            assert!(
                w[1].1 >= w[0].2,
                "tenant {t}: a turn started before its predecessor finished: {mine:?}"
            );
        }
    }
    // Tenants overlap: b1 ran while a1 ran.
    assert!(done[1].1 < done[0].2, "{done:?}");
    drop(srv);
    assert_no_residue(state.path());
}

#[tokio::test]
async fn cancel_queued_and_running_turns() {
    let (_lock, _net, state, srv) = root_server(
        "cancel_queued_and_running_turns",
        &["--concurrency", "1"],
        &[],
    );
    let running = srv
        .post_id("/v1/turns", r#"{"tenant":"a","argv":["sleep","30"]}"#)
        .await;
    let queued = srv
        .post_id("/v1/turns", r#"{"tenant":"b","argv":["true"]}"#)
        .await;
    srv.wait_turn(&running, Duration::from_secs(10), |v| {
        v["status"] == "running"
    })
    .await;
    let q = srv.delete(&format!("/v1/turns/{queued}")).await;
    assert_eq!(q.status, 200, "{}", q.text);
    assert_eq!(q.body["status"], "cancelled");
    assert_eq!(q.body["failure"], "cancelled");
    // Give the worker a moment to exist, then kill it through the API.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let r = srv.delete(&format!("/v1/turns/{running}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "cancelled");
    assert!(started.elapsed() < Duration::from_secs(3));
    // SSE of a cancelled turn ends with its stored result.
    let evs = sse(&srv.base, &srv.token, &running, None).await;
    assert_eq!(evs.last().unwrap().1, "end");
    let again = srv.delete(&format!("/v1/turns/{running}")).await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["error"]["code"], "already_finished");
    // The server is free again.
    let ok = srv
        .post("/v1/turns?wait=true", r#"{"tenant":"a","argv":["true"]}"#)
        .await;
    assert_eq!(ok.body["status"], "succeeded");
    drop(srv);
    assert_no_residue(state.path());
}
