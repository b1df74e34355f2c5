//! fakebot: a local stand-in for the Telegram Bot API (`reference/telegram.md`), so the Telegram
//! channel can be tested without Telegram's servers.
//!
//! One HTTP server on a loopback address. `/bot<TOKEN>/<method>` answers `getMe`, `getUpdates`
//! (long polling that honours `offset`, `limit` and `timeout`, and answers 409 to the older of
//! two overlapping polls, as Telegram does), `sendMessage` (400 for empty text, more than 4096
//! UTF-16 code units or a chat that never wrote to the bot), `sendChatAction`, `deleteWebhook`,
//! `setWebhook` and `getWebhookInfo` (getUpdates answers 409 while a webhook is set). Faults are
//! injected per method: an error status (409, 429 with `retry_after`, 5xx), a slow answer, or a
//! dropped connection. `/control/…` injects user messages and reads what the bot sent; the same
//! operations are methods of [`FakeBot`] for tests in the same process. See README.md for what is
//! not simulated.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

/// Longest message text Telegram accepts, in UTF-16 code units.
pub const MAX_TEXT_UTF16: usize = 4096;
/// The first `update_id` handed out.
const FIRST_UPDATE_ID: i64 = 100_000;

/// A message the bot sent (`sendMessage` that succeeded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMessage {
    /// Order among all sent messages, from 1.
    pub seq: u64,
    /// The chat.
    pub chat_id: i64,
    /// The text as received.
    pub text: String,
    /// The id Telegram would give it.
    pub message_id: i64,
    /// `reply_parameters.message_id`, if the bot replied to a message.
    pub reply_to: Option<i64>,
    /// When it arrived, ms since epoch.
    pub at_ms: i64,
}

/// One Bot API call as the stand-in saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Order among all calls, from 1.
    pub seq: u64,
    /// The method as called (case kept).
    pub method: String,
    /// The chat it named, if any.
    pub chat_id: Option<i64>,
    /// The HTTP status answered (0 for a dropped connection).
    pub status: u16,
    /// When it arrived, ms since epoch.
    pub at_ms: i64,
}

/// What an injected fault does to a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer this HTTP status with Telegram's error body (409, 429, 500, 502, ...).
    Status {
        /// The status.
        status: u16,
        /// For 429: `parameters.retry_after`, in seconds.
        #[serde(default)]
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer normally.
    Slow {
        /// The delay.
        delay_ms: u64,
    },
    /// Send the status line and headers, then drop the connection without a body (the call
    /// itself is not carried out).
    Drop,
}

/// A fault for the next `count` calls of `method` (`*`: any method).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// The method name (case-insensitive), or `*`.
    pub method: String,
    /// What happens.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many calls it hits.
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

#[derive(Default)]
struct BotState {
    next_update_id: i64,
    /// Updates not yet confirmed by an offset above them.
    updates: VecDeque<Value>,
    /// Highest offset a getUpdates confirmed with.
    confirmed: i64,
    next_message_id: HashMap<i64, i64>,
    /// Chats that wrote to the bot (sending elsewhere is `chat not found`).
    known_chats: HashSet<i64>,
    /// The message id of each user message, by update id.
    message_ids: HashMap<i64, i64>,
    sent: Vec<SentMessage>,
    calls: Vec<Call>,
    faults: Vec<Fault>,
    webhook_url: String,
    /// Bumped by every getUpdates: an older poll still waiting answers 409.
    poll_generation: u64,
}

struct Shared {
    token: String,
    state: Mutex<BotState>,
    /// Bumped on every new update and every new poll; long polls wait on it.
    wake: watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, BotState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.wake.send_modify(|n| *n += 1);
    }

    fn record(&self, method: &str, chat_id: Option<i64>, status: u16) {
        let mut s = self.lock();
        let seq = s.calls.len() as u64 + 1;
        s.calls.push(Call {
            seq,
            method: method.to_string(),
            chat_id,
            status,
            at_ms: now_ms(),
        });
    }

    fn inject_message(&self, chat_id: i64, text: &str) -> i64 {
        let mut s = self.lock();
        if s.next_update_id == 0 {
            s.next_update_id = FIRST_UPDATE_ID;
        }
        let update_id = s.next_update_id;
        s.next_update_id += 1;
        let message_id = next_message_id(&mut s, chat_id);
        s.known_chats.insert(chat_id);
        s.message_ids.insert(update_id, message_id);
        let chat_type = if chat_id < 0 { "group" } else { "private" };
        s.updates.push_back(json!({
            "update_id": update_id,
            "message": {
                "message_id": message_id,
                "date": now_ms() / 1000,
                "chat": {"id": chat_id, "type": chat_type},
                "from": {"id": chat_id.abs(), "is_bot": false, "first_name": "Tester"},
                "text": text,
            }
        }));
        drop(s);
        self.bump();
        update_id
    }
}

fn next_message_id(s: &mut BotState, chat_id: i64) -> i64 {
    let n = s.next_message_id.entry(chat_id).or_insert(0);
    *n += 1;
    *n
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A running stand-in; stops when dropped.
pub struct FakeBot {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBot {
    /// Binds `addr` (in the calling thread's network namespace) and serves on a thread of its own.
    pub fn start(addr: impl ToSocketAddrs, token: &str) -> io::Result<FakeBot> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            token: token.to_string(),
            state: Mutex::new(BotState::default()),
            wake: watch::channel(0).0,
        });
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = router(shared.clone());
        let thread = std::thread::Builder::new()
            .name("fakebot".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        eprintln!("fakebot: failed to start a runtime: {e}");
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("fakebot: {e}");
                            return;
                        }
                    };
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stop_rx.await;
                        })
                        .await;
                });
                // Long polls still waiting must not hold the stop.
                rt.shutdown_timeout(Duration::from_millis(100));
            })?;
        Ok(FakeBot {
            addr,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure as `telegram.api_url` (`http://IP:PORT`).
    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A user writes `text` in `chat_id`; returns the new update's id.
    pub fn user_message(&self, chat_id: i64, text: &str) -> i64 {
        self.shared.inject_message(chat_id, text)
    }

    /// The message id of the user message that became update `update_id`.
    pub fn message_id(&self, update_id: i64) -> Option<i64> {
        self.shared.lock().message_ids.get(&update_id).copied()
    }

    /// Every message the bot sent, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        self.shared.lock().sent.clone()
    }

    /// Every API call, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    /// Injects a fault.
    pub fn fault(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Sets (or, with an empty URL, clears) a webhook, as `setWebhook` would.
    pub fn set_webhook(&self, url: &str) {
        self.shared.lock().webhook_url = url.to_string();
        self.shared.bump();
    }

    /// Updates sent by the user and not yet confirmed by the bot.
    pub fn unconfirmed(&self) -> usize {
        self.shared.lock().updates.len()
    }

    /// Waits until `pred` holds for the sent messages (checked on every change), or `timeout`.
    pub fn wait_sent(
        &self,
        timeout: Duration,
        pred: impl Fn(&[SentMessage]) -> bool,
    ) -> Vec<SentMessage> {
        let mut rx = self.shared.wake.subscribe();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let sent = self.sent();
            if pred(&sent) || std::time::Instant::now() >= deadline {
                return sent;
            }
            // The stand-in bumps `wake` on every recorded message; a blocking wait on it needs a
            // runtime, so poll the version cheaply instead.
            let seen = *rx.borrow_and_update();
            while *rx.borrow() == seen && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

impl Drop for FakeBot {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{bot}/{method}", get(api).post(api))
        .route("/control/messages", post(control_message))
        .route("/control/sent", get(control_sent))
        .route("/control/calls", get(control_calls))
        .route("/control/faults", post(control_fault))
        .route("/control/webhook", post(control_webhook))
        .route("/control/state", get(control_state))
        .with_state(shared)
}

/// Telegram's error body with the HTTP status.
fn error(status: u16, description: &str, retry_after: Option<u64>) -> Response {
    let mut body = json!({"ok": false, "error_code": status, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({ "retry_after": s });
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(body)).into_response()
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

/// Parameters from the query string and a JSON or form body (Telegram accepts either).
fn params(query: BTreeMap<String, String>, body: &Bytes) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    for (k, v) in query {
        map.insert(k, Value::String(v));
    }
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(o)) => map.extend(o),
            Ok(_) => return Err("Bad Request: parameters must be a JSON object".into()),
            Err(_) => {
                // application/x-www-form-urlencoded
                let text = String::from_utf8_lossy(body);
                for pair in text.split('&').filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    map.insert(k.to_string(), Value::String(v.replace('+', " ")));
                }
            }
        }
    }
    Ok(Value::Object(map))
}

/// An integer parameter given as a number or a string.
fn int_param(p: &Value, name: &str) -> Option<i64> {
    match p.get(name)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn take_fault(shared: &Shared, method: &str) -> Option<FaultKind> {
    let mut s = shared.lock();
    let pos = s
        .faults
        .iter()
        .position(|f| f.count > 0 && (f.method == "*" || f.method.eq_ignore_ascii_case(method)))?;
    let f = &mut s.faults[pos];
    f.count -= 1;
    let kind = f.kind.clone();
    if f.count == 0 {
        s.faults.remove(pos);
    }
    Some(kind)
}

async fn api(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    Query(query): Query<BTreeMap<String, String>>,
    body: Bytes,
) -> Response {
    let p = match params(query, &body) {
        Ok(p) => p,
        Err(e) => return error(400, &e, None),
    };
    let chat_id = int_param(&p, "chat_id");
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        shared.record(&method, chat_id, 401);
        return error(401, "Unauthorized", None);
    }
    match take_fault(&shared, &method) {
        Some(FaultKind::Status {
            status,
            retry_after,
        }) => {
            shared.record(&method, chat_id, status);
            let description = match status {
                409 => "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running".to_string(),
                429 => format!("Too Many Requests: retry after {}", retry_after.unwrap_or(1)),
                s if s >= 500 => "Internal Server Error".to_string(),
                _ => "Bad Request: injected".to_string(),
            };
            let retry = if status == 429 {
                Some(retry_after.unwrap_or(1))
            } else {
                None
            };
            return error(status, &description, retry);
        }
        Some(FaultKind::Drop) => {
            shared.record(&method, chat_id, 0);
            let failing = futures_util::stream::once(async {
                Err::<Bytes, io::Error>(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "fakebot: dropped connection",
                ))
            });
            return Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(Body::from_stream(failing))
                .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
        }
        Some(FaultKind::Slow { delay_ms }) => {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await
        }
        None => {}
    }
    let answer = match method.to_ascii_lowercase().as_str() {
        "getme" => ok(json!({
            "id": 7_000_000_001_i64, "is_bot": true, "first_name": "Clawdie (fakebot)",
            "username": "clawdie_fake_bot", "can_join_groups": true,
            "can_read_all_group_messages": false, "supports_inline_queries": false
        })),
        "getupdates" => get_updates(&shared, &p).await,
        "sendmessage" => send_message(&shared, &p),
        "sendchataction" => match chat_id {
            Some(c) if shared.lock().known_chats.contains(&c) => ok(json!(true)),
            Some(_) => error(400, "Bad Request: chat not found", None),
            None => error(400, "Bad Request: chat_id is empty", None),
        },
        "deletewebhook" => {
            shared.lock().webhook_url.clear();
            ok(json!(true))
        }
        "setwebhook" => {
            let url = p.get("url").and_then(Value::as_str).unwrap_or_default();
            shared.lock().webhook_url = url.to_string();
            shared.bump();
            ok(json!(true))
        }
        "getwebhookinfo" => {
            let s = shared.lock();
            ok(json!({
                "url": s.webhook_url, "has_custom_certificate": false,
                "pending_update_count": s.updates.len()
            }))
        }
        _ => error(404, "Not Found: method not found", None),
    };
    shared.record(&method, chat_id, answer.status().as_u16());
    answer
}

async fn get_updates(shared: &Arc<Shared>, p: &Value) -> Response {
    let offset = int_param(p, "offset").unwrap_or(0);
    let limit = int_param(p, "limit").unwrap_or(100).clamp(1, 100) as usize;
    let timeout = int_param(p, "timeout").unwrap_or(0).clamp(0, 50) as u64;
    let generation = {
        let mut s = shared.lock();
        if !s.webhook_url.is_empty() {
            return error(
                409,
                "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
                None,
            );
        }
        // Confirm: everything below the offset is forgotten.
        if offset > 0 {
            s.updates
                .retain(|u| u["update_id"].as_i64().unwrap_or(0) >= offset);
            s.confirmed = s.confirmed.max(offset);
        } else if offset < 0 {
            let keep = offset.unsigned_abs() as usize;
            while s.updates.len() > keep {
                s.updates.pop_front();
            }
        }
        s.poll_generation += 1;
        s.poll_generation
    };
    // Wake an older poll so it answers 409.
    shared.bump();
    let mut wake = shared.wake.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    loop {
        {
            let s = shared.lock();
            if s.poll_generation != generation {
                return error(409, "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running", None);
            }
            let ready: Vec<Value> = s
                .updates
                .iter()
                .filter(|u| offset <= 0 || u["update_id"].as_i64().unwrap_or(0) >= offset)
                .take(limit)
                .cloned()
                .collect();
            if !ready.is_empty() || tokio::time::Instant::now() >= deadline {
                return ok(Value::Array(ready));
            }
        }
        wake.borrow_and_update();
        tokio::select! {
            _ = wake.changed() => {}
            _ = tokio::time::sleep_until(deadline) => {}
        }
    }
}

fn send_message(shared: &Shared, p: &Value) -> Response {
    let Some(chat_id) = int_param(p, "chat_id") else {
        return error(400, "Bad Request: chat_id is empty", None);
    };
    let text = p.get("text").and_then(Value::as_str).unwrap_or_default();
    if text.is_empty() {
        return error(400, "Bad Request: message text is empty", None);
    }
    if text.encode_utf16().count() > MAX_TEXT_UTF16 {
        return error(400, "Bad Request: message is too long", None);
    }
    let reply_to = p
        .get("reply_parameters")
        .and_then(|r| match r {
            Value::String(s) => serde_json::from_str::<Value>(s).ok(),
            other => Some(other.clone()),
        })
        .and_then(|r| int_param(&r, "message_id"));
    let mut s = shared.lock();
    if !s.known_chats.contains(&chat_id) {
        return error(400, "Bad Request: chat not found", None);
    }
    let message_id = next_message_id(&mut s, chat_id);
    let seq = s.sent.len() as u64 + 1;
    let at_ms = now_ms();
    s.sent.push(SentMessage {
        seq,
        chat_id,
        text: text.to_string(),
        message_id,
        reply_to,
        at_ms,
    });
    drop(s);
    shared.bump();
    ok(json!({
        "message_id": message_id, "date": at_ms / 1000,
        "chat": {"id": chat_id, "type": if chat_id < 0 { "group" } else { "private" }},
        "from": {"id": 7_000_000_001_i64, "is_bot": true, "first_name": "Clawdie (fakebot)"},
        "text": text,
    }))
}

#[derive(Deserialize)]
struct NewMessage {
    chat_id: i64,
    text: String,
}

async fn control_message(
    State(shared): State<Arc<Shared>>,
    Json(m): Json<NewMessage>,
) -> Json<Value> {
    let id = shared.inject_message(m.chat_id, &m.text);
    Json(json!({ "update_id": id }))
}

async fn control_sent(State(shared): State<Arc<Shared>>) -> Json<Vec<SentMessage>> {
    Json(shared.lock().sent.clone())
}

async fn control_calls(State(shared): State<Arc<Shared>>) -> Json<Vec<Call>> {
    Json(shared.lock().calls.clone())
}

async fn control_fault(State(shared): State<Arc<Shared>>, Json(f): Json<Fault>) -> Json<Value> {
    shared.lock().faults.push(f);
    Json(json!({"ok": true}))
}

#[derive(Deserialize)]
struct Webhook {
    url: String,
}

async fn control_webhook(State(shared): State<Arc<Shared>>, Json(w): Json<Webhook>) -> Json<Value> {
    shared.lock().webhook_url = w.url;
    shared.bump();
    Json(json!({"ok": true}))
}

async fn control_state(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let s = shared.lock();
    Json(json!({
        "unconfirmed_updates": s.updates.len(),
        "confirmed_offset": s.confirmed,
        "webhook_url": s.webhook_url,
        "sent": s.sent.len(),
        "calls": s.calls.len(),
        "faults_pending": s.faults.len(),
    }))
}
