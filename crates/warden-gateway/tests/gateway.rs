//! The gateway against the mock OpenAI provider, which answers only requests carrying the provider key.

use std::sync::Arc;

use serde_json::{json, Value};
use warden_agent::mock::{MockProvider, Reply, Script};
use warden_gateway::{router, Gateway, GatewayConfig};
use warden_store::Store;

const KEY: &str = "sk-test-provider-key-0123456789";

struct Fixture {
    gw: Arc<Gateway>,
    store: Arc<Store>,
    base: String,
    mock: MockProvider,
    _dir: tempfile::TempDir,
}

async fn start(budget: Option<u64>) -> Fixture {
    let script = Script::new(vec![Reply::Text {
        text: "Hello through the gateway.".into(),
    }])
    .with_required_key(KEY);
    let mock = MockProvider::start(("127.0.0.1", 0), script).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("control.db")).unwrap());
    let mut cfg = GatewayConfig::new(mock.base_url());
    cfg.api_key = Some(KEY.into());
    cfg.tenant_token_budget = budget;
    let gw = Gateway::new(cfg, store.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = router(gw.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Fixture {
        gw,
        store,
        base,
        mock,
        _dir: dir,
    }
}

fn chat() -> Value {
    json!({"model": "mock-model", "stream": true, "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Say hello"}]}
    ]})
}

async fn post(base: &str, token: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(token)
        .json(&chat())
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn a_turn_token_gets_the_keyed_provider_flattened_and_counted() {
    let f = start(None).await;
    let token = f.gw.grant("turn1", "acme").unwrap();
    assert!(!token.as_str().contains(KEY));
    let (status, body) = post(&f.base, token.as_str()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("data: "), "SSE passes through: {body}");
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(text, "Hello through the gateway.");
    let reqs = f.mock.completion_requests();
    assert_eq!(reqs.len(), 1);
    let auth: Vec<_> = reqs[0]
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone())
        .collect();
    assert_eq!(
        auth,
        vec![format!("Bearer {KEY}")],
        "the key is injected, the turn token is not forwarded"
    );
    assert_eq!(reqs[0].body["messages"][1]["content"], "Say hello");
    assert_eq!(reqs[0].body["stream_options"]["include_usage"], true);
    // The body is fully relayed before the usage row is written; wait for that row, not for a time.
    let mut usage = f.store.turn_model_usage("turn1").unwrap();
    for _ in 0..200 {
        if usage.requests == 1 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        usage = f.store.turn_model_usage("turn1").unwrap();
    }
    assert_eq!(
        (usage.requests, usage.prompt_tokens, usage.completion_tokens),
        (1, 100, 7)
    );
    assert_eq!(f.store.tenant_model_usage("acme").unwrap().total(), 107);
}

#[tokio::test]
async fn no_token_a_wrong_one_or_a_revoked_one_is_refused() {
    let f = start(None).await;
    let (s, body) = post(&f.base, "").await;
    assert_eq!(s, 401, "{body}");
    let (s, _) = post(&f.base, KEY).await;
    assert_eq!(s, 401, "the provider key itself is no turn token");
    let token = f.gw.grant("t", "acme").unwrap();
    let kept = token.as_str().to_string();
    drop(token);
    assert_eq!(f.gw.live_grants(), 0);
    let (s, body) = post(&f.base, &kept).await;
    assert_eq!(s, 401, "revoked at turn end: {body}");
    assert!(f.mock.requests().is_empty(), "nothing reached the provider");
}

/// A warm agent's token is minted at park time but opens only between its turn's activation and the turn's end;
/// usage goes to the turn it is open for.
#[tokio::test]
async fn a_parked_token_works_only_while_a_turn_holds_it_open() {
    let f = start(None).await;
    let parked = f.gw.mint("acme").unwrap();
    let (s, _) = post(&f.base, parked.as_str()).await;
    assert_eq!(s, 401, "parked, not open");
    assert_eq!((f.gw.parked_tokens(), f.gw.live_grants()), (1, 0));
    let open = parked.activate("turn-a");
    assert_eq!((f.gw.parked_tokens(), f.gw.live_grants()), (0, 1));
    let (s, body) = post(&f.base, parked.as_str()).await;
    assert_eq!(s, 200, "{body}");
    drop(open);
    let (s, _) = post(&f.base, parked.as_str()).await;
    assert_eq!(s, 401, "closed again at the turn's end");
    let open = parked.activate("turn-b");
    let (s, _) = post(&f.base, parked.as_str()).await;
    assert_eq!(s, 200);
    assert!(f.store.turn_model_usage("turn-a").unwrap().requests == 1);
    assert!(f.store.turn_model_usage("turn-b").unwrap().requests == 1);
    // Revoked with the agent, even in the middle of a turn.
    let kept = parked.as_str().to_string();
    drop(parked);
    let (s, _) = post(&f.base, &kept).await;
    assert_eq!(s, 401, "revoked when the agent goes");
    drop(open);
    assert_eq!((f.gw.parked_tokens(), f.gw.live_grants()), (0, 0));
}

#[tokio::test]
async fn a_tenant_over_its_budget_gets_429_and_others_go_on() {
    let f = start(Some(150)).await;
    let tokens = warden_store::model_usage::Tokens {
        prompt: 140,
        completion: 10,
        estimated: false,
    };
    f.store
        .record_model_usage("old", "acme", "m", tokens)
        .unwrap();
    let token = f.gw.grant("t2", "acme").unwrap();
    let (s, body) = post(&f.base, token.as_str()).await;
    assert_eq!(s, 429, "{body}");
    assert!(
        body.contains("tenant acme has used 150 of its 150-token budget"),
        "{body}"
    );
    let other = f.gw.grant("t3", "beta").unwrap();
    let (s, body) = post(&f.base, other.as_str()).await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502_naming_it_without_the_key() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    // A port nothing listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = format!("http://127.0.0.1:{port}/v1");
    let mut cfg = GatewayConfig::new(upstream.clone());
    cfg.api_key = Some(KEY.into());
    let gw = Gateway::new(cfg, store).unwrap();
    let token = gw.grant("t", "acme").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    let app = router(gw.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (s, body) = post(&base, token.as_str()).await;
    assert_eq!(s, 502, "{body}");
    assert!(body.contains(&upstream), "{body}");
    assert!(!body.contains(KEY), "{body}");
}

#[test]
fn an_https_upstream_is_refused_with_the_reason() {
    let store = Arc::new(Store::open_in_memory().unwrap());
    let err = Gateway::new(GatewayConfig::new("https://api.example/v1"), store)
        .err()
        .unwrap();
    assert!(err.to_string().contains("http://"), "{err}");
}
