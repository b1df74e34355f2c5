//! A mock OpenAI-compatible provider for tests and benchmarks.
//!
//! std-only (one thread per connection) so tests need no async runtime. It answers `GET /v1/models` and
//! `POST /v1/chat/completions` (SSE when `stream:true`, in OpenAI's chunk format), replays a [`Script`]
//! one step per completion request, and records every request it received.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Largest request head or body the mock accepts; beyond that it answers 413.
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// What the mock answers to one chat-completion request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    /// A streamed text reply, split into several deltas, finish_reason `stop`.
    Text {
        /// The whole reply text.
        text: String,
    },
    /// One streamed function call, finish_reason `tool_calls`.
    ToolCall {
        /// Function (tool) name, e.g. `bash`.
        name: String,
        /// Function arguments, sent as a JSON string in several deltas.
        arguments: Value,
    },
    /// An HTTP error status with a JSON error body.
    HttpError {
        /// HTTP status, e.g. 500.
        status: u16,
        /// Error message placed in `{"error":{"message":...}}`.
        #[serde(default = "default_error_message")]
        message: String,
    },
    /// A stream whose chunks all have `choices: []`, then `[DONE]`.
    Empty,
}

fn default_error_message() -> String {
    "mock provider error".to_string()
}

/// One script step: a reply and an optional delay before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// What to answer.
    #[serde(flatten)]
    pub reply: Reply,
    /// Milliseconds to wait before answering (for timeout tests and benchmarks).
    #[serde(default)]
    pub delay_ms: u64,
}

/// The replies to give, in order; request `n` gets step `n`, and the last step repeats once exhausted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Script {
    /// Steps in request order.
    pub steps: Vec<Step>,
    /// When set, every request must carry `Authorization: Bearer <key>`; others get 401 (key-isolation tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_key: Option<String>,
}

impl Script {
    /// A script of the given replies without delays.
    pub fn new(replies: Vec<Reply>) -> Self {
        Script {
            steps: replies
                .into_iter()
                .map(|reply| Step { reply, delay_ms: 0 })
                .collect(),
            require_key: None,
        }
    }

    /// The same script, answering only requests that carry `key` as their bearer token.
    pub fn with_required_key(mut self, key: &str) -> Self {
        self.require_key = Some(key.to_string());
        self
    }

    /// Parses a script from JSON (`{"steps":[{"kind":"text","text":"hi"}, ...]}`).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Built-in scenarios: `text`, `tool` (bash `echo hi`, then a text reply), `error500`, `empty`.
    pub fn scenario(name: &str) -> Option<Self> {
        let replies = match name {
            "text" => vec![Reply::Text {
                text: "Hello from the mock provider.".to_string(),
            }],
            "tool" => vec![
                Reply::ToolCall {
                    name: "bash".to_string(),
                    arguments: json!({"command": "echo hi"}),
                },
                Reply::Text {
                    text: "The command printed hi.".to_string(),
                },
            ],
            "error500" => vec![Reply::HttpError {
                status: 500,
                message: "mock internal error".to_string(),
            }],
            "empty" => vec![Reply::Empty],
            _ => return None,
        };
        Some(Script::new(replies))
    }

    /// Names accepted by [`Script::scenario`].
    pub const SCENARIOS: [&'static str; 4] = ["text", "tool", "error500", "empty"];

    fn step(&self, n: usize) -> Step {
        match self.steps.get(n).or(self.steps.last()) {
            Some(step) => step.clone(),
            None => Step {
                reply: Reply::Empty,
                delay_ms: 0,
            },
        }
    }
}

/// One HTTP request as the mock received it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Request target (path and query).
    pub path: String,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or a JSON string holding the raw text when it is not JSON.
    pub body: Value,
}

struct Shared {
    script: Script,
    completions: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
    /// Microseconds spent answering completions (request read → response written), summed.
    busy_us: AtomicU64,
    stop: AtomicBool,
}

/// A running mock provider; stops when dropped.
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl MockProvider {
    /// Binds `addr` (use port 0 for a free port) and serves `script` on a background thread.
    pub fn start(addr: impl ToSocketAddrs, script: Script) -> io::Result<MockProvider> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            script,
            completions: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            busy_us: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("mock-provider".to_string())
            .spawn(move || accept_loop(listener, accept_shared))?;
        Ok(MockProvider {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL to configure a client with (`http://<addr>/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self.shared.requests.lock() {
            Ok(reqs) => reqs.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Only the chat-completion requests received so far.
    pub fn completion_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/chat/completions"))
            .collect()
    }

    /// Time spent answering completion requests so far, summed over requests (from a request read to its
    /// response written): what a benchmark subtracts from a turn's wall time to get the agent's overhead.
    pub fn busy(&self) -> Duration {
        Duration::from_micros(self.shared.busy_us.load(Ordering::SeqCst))
    }

    /// Stops accepting connections and waits for the accept thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so it sees the stop flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(handle) = self.accept.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = conn else { continue };
        let conn_shared = Arc::clone(&shared);
        let _ = thread::Builder::new()
            .name("mock-provider-conn".to_string())
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
            });
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Serves requests on one connection until the client closes it or a response ends it.
fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let req = match read_request(&mut reader) {
            Ok(Some(req)) => req,
            Ok(None) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                write_simple(
                    &mut out,
                    400,
                    "application/json",
                    br#"{"error":"bad request"}"#,
                )?;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let read_at = Instant::now();
        let body_json = serde_json::from_slice::<Value>(&req.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&req.body).into_owned()));
        let recorded = RecordedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            headers: req.headers.clone(),
            body: body_json.clone(),
        };
        match shared.requests.lock() {
            Ok(mut reqs) => reqs.push(recorded),
            Err(poisoned) => poisoned.into_inner().push(recorded),
        }
        let path = req.path.split('?').next().unwrap_or("");
        if let Some(key) = &shared.script.require_key {
            let want = format!("Bearer {key}");
            let ok = req
                .headers
                .iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v.trim() == want);
            if !ok {
                write_simple(
                    &mut out,
                    401,
                    "application/json",
                    br#"{"error":{"message":"mock provider: missing or wrong API key","type":"invalid_api_key"}}"#,
                )?;
                continue;
            }
        }
        let keep_alive = match (req.method.as_str(), path) {
            ("GET", "/v1/models") | ("GET", "/models") => {
                let model = json!({"object":"list","data":[{"id":"mock-model","object":"model","created":0,"owned_by":"warden"}]});
                write_simple(
                    &mut out,
                    200,
                    "application/json",
                    model.to_string().as_bytes(),
                )?;
                true
            }
            ("POST", "/v1/chat/completions") | ("POST", "/chat/completions") => {
                let n = shared.completions.fetch_add(1, Ordering::SeqCst);
                let step = shared.script.step(n);
                if step.delay_ms > 0 {
                    thread::sleep(Duration::from_millis(step.delay_ms));
                }
                let answered = answer_completion(&mut out, &step.reply, &body_json, n);
                let spent = u64::try_from(read_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                shared.busy_us.fetch_add(spent, Ordering::SeqCst);
                answered?
            }
            _ => {
                write_simple(
                    &mut out,
                    404,
                    "application/json",
                    br#"{"error":"not found"}"#,
                )?;
                true
            }
        };
        if !keep_alive {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

/// Reads one request; `Ok(None)` when the peer closed the connection before sending one.
fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid("bad request line"));
    };
    let (method, path) = (method.to_string(), path.to_string());
    let mut headers = Vec::new();
    let mut head_bytes = line.len();
    loop {
        let mut h = String::new();
        let n = reader.read_line(&mut h)?;
        head_bytes += n;
        if n == 0 || head_bytes > MAX_REQUEST_BYTES {
            return Err(invalid("truncated or oversized head"));
        }
        let h = h.trim_end_matches(['\r', '\n']);
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let body = if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        read_chunked(reader)?
    } else {
        let len: usize = match header("content-length") {
            Some(v) => v.parse().map_err(|_| invalid("bad content-length"))?,
            None => 0,
        };
        if len > MAX_REQUEST_BYTES {
            return Err(invalid("body too large"));
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid("bad chunk size"))?;
        if body.len() + size > MAX_REQUEST_BYTES {
            return Err(invalid("body too large"));
        }
        if size == 0 {
            // Trailers, then the final blank line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_simple(
    out: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    write!(
        out,
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n",
        reason_phrase(status),
        body.len()
    )?;
    out.write_all(body)?;
    out.flush()
}

/// Answers one completion request; returns whether the connection may be reused.
fn answer_completion(
    out: &mut impl Write,
    reply: &Reply,
    body: &Value,
    n: usize,
) -> io::Result<bool> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string();
    if let Reply::HttpError { status, message } = reply {
        let err =
            json!({"error":{"message":message,"type":"server_error","param":null,"code":null}});
        write_simple(out, *status, "application/json", err.to_string().as_bytes())?;
        return Ok(true);
    }
    let id = format!("chatcmpl-mock{n}");
    let chunks = completion_chunks(reply, &id, &model, n);
    let streaming = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !streaming {
        let whole = whole_completion(reply, &id, &model, n);
        write_simple(out, 200, "application/json", whole.to_string().as_bytes())?;
        return Ok(true);
    }
    // Chunked transfer encoding, one SSE event per chunk, then the terminating zero chunk.
    write!(
        out,
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )?;
    for chunk in chunks {
        write_sse(out, &format!("data: {chunk}\n\n"))?;
    }
    write_sse(out, "data: [DONE]\n\n")?;
    out.write_all(b"0\r\n\r\n")?;
    out.flush()?;
    Ok(true)
}

fn write_sse(out: &mut impl Write, event: &str) -> io::Result<()> {
    write!(out, "{:x}\r\n{event}\r\n", event.len())?;
    out.flush()
}

/// Deterministic usage numbers so tests can check token accounting end to end.
fn usage(n: usize) -> Value {
    let prompt = 100 + n as u64;
    json!({"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7})
}

fn chunk(id: &str, model: &str, choices: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000u64, "model": model,
           "system_fingerprint": "fp_mock", "choices": choices})
}

fn delta_choice(delta: Value, finish: Option<&str>) -> Value {
    json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}])
}

/// Splits text into word-sized pieces (spaces kept) so clients see several deltas.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for ch in text.chars() {
        cur.push(ch);
        if ch == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn completion_chunks(reply: &Reply, id: &str, model: &str, n: usize) -> Vec<Value> {
    let mut chunks = Vec::new();
    match reply {
        Reply::Text { text } => {
            chunks.push(chunk(
                id,
                model,
                delta_choice(json!({"role":"assistant","content":""}), None),
            ));
            for piece in pieces(text) {
                chunks.push(chunk(
                    id,
                    model,
                    delta_choice(json!({"content": piece}), None),
                ));
            }
            chunks.push(chunk(id, model, delta_choice(json!({}), Some("stop"))));
        }
        Reply::ToolCall { name, arguments } => {
            let call_id = format!("call_mock{n}");
            chunks.push(chunk(
                id,
                model,
                delta_choice(
                    json!({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":call_id,"type":"function","function":{"name":name,"arguments":""}}]}),
                    None,
                ),
            ));
            let args = arguments.to_string();
            // Split the arguments string in two to exercise partial-JSON accumulation.
            let mid = args
                .char_indices()
                .nth(args.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            for part in [&args[..mid], &args[mid..]] {
                if !part.is_empty() {
                    chunks.push(chunk(
                        id,
                        model,
                        delta_choice(
                            json!({"tool_calls":[{"index":0,"function":{"arguments":part}}]}),
                            None,
                        ),
                    ));
                }
            }
            chunks.push(chunk(
                id,
                model,
                delta_choice(json!({}), Some("tool_calls")),
            ));
        }
        Reply::Empty => {
            chunks.push(chunk(id, model, json!([])));
            return chunks;
        }
        Reply::HttpError { .. } => return chunks,
    }
    // OpenAI's include_usage shape: a final chunk with empty choices and the usage object.
    let mut last = chunk(id, model, json!([]));
    last["usage"] = usage(n);
    chunks.push(last);
    chunks
}

fn whole_completion(reply: &Reply, id: &str, model: &str, n: usize) -> Value {
    let (message, finish) = match reply {
        Reply::Text { text } => (json!({"role":"assistant","content":text}), "stop"),
        Reply::ToolCall { name, arguments } => (
            json!({"role":"assistant","content":null,"tool_calls":[{"id":format!("call_mock{n}"),"type":"function","function":{"name":name,"arguments":arguments.to_string()}}]}),
            "tool_calls",
        ),
        Reply::Empty | Reply::HttpError { .. } => {
            return json!({"id": id, "object": "chat.completion", "created": 1_700_000_000u64, "model": model, "choices": []})
        }
    };
    json!({"id": id, "object": "chat.completion", "created": 1_700_000_000u64, "model": model,
           "choices": [{"index":0,"message":message,"logprobs":null,"finish_reason":finish}], "usage": usage(n)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn http(addr: SocketAddr, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    fn post(addr: SocketAddr, body: &str) -> String {
        http(
            addr,
            &format!(
                "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    }

    #[test]
    fn models_endpoint_lists_a_model() {
        let mock = MockProvider::start("127.0.0.1:0", Script::scenario("text").unwrap()).unwrap();
        let out = http(mock.addr(), "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK"));
        assert!(out.contains("\"object\":\"list\""));
    }

    #[test]
    fn text_reply_streams_chunks_and_done() {
        let mock = MockProvider::start("127.0.0.1:0", Script::scenario("text").unwrap()).unwrap();
        let out = post(mock.addr(), r#"{"model":"m","stream":true,"messages":[]}"#);
        assert!(out.contains("text/event-stream"));
        assert!(out.contains("chat.completion.chunk"));
        assert!(out.contains("\"finish_reason\":\"stop\""));
        assert!(out.contains("data: [DONE]"));
        let reqs = mock.completion_requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].body["model"], "m");
    }

    #[test]
    fn busy_time_counts_completions_only() {
        let mut script = Script::scenario("text").unwrap();
        script.steps[0].delay_ms = 30;
        let mock = MockProvider::start("127.0.0.1:0", script).unwrap();
        http(mock.addr(), "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n");
        assert_eq!(
            mock.busy(),
            Duration::ZERO,
            "a models request is not provider time"
        );
        post(mock.addr(), r#"{"stream":true}"#);
        let busy = mock.busy();
        assert!(busy >= Duration::from_millis(30), "{busy:?}");
        assert!(busy < Duration::from_secs(10), "{busy:?}");
    }

    #[test]
    fn tool_scenario_then_text_then_repeats_last() {
        let mock = MockProvider::start("127.0.0.1:0", Script::scenario("tool").unwrap()).unwrap();
        let body = r#"{"stream":true}"#;
        assert!(post(mock.addr(), body).contains("\"finish_reason\":\"tool_calls\""));
        assert!(post(mock.addr(), body).contains("\"finish_reason\":\"stop\""));
        assert!(post(mock.addr(), body).contains("\"finish_reason\":\"stop\""));
    }

    #[test]
    fn error_and_empty_scenarios() {
        let mock =
            MockProvider::start("127.0.0.1:0", Script::scenario("error500").unwrap()).unwrap();
        assert!(post(mock.addr(), "{}").starts_with("HTTP/1.1 500"));
        let mock = MockProvider::start("127.0.0.1:0", Script::scenario("empty").unwrap()).unwrap();
        let out = post(mock.addr(), r#"{"stream":true}"#);
        assert!(out.contains("\"choices\":[]"));
        assert!(!out.contains("finish_reason"));
    }

    #[test]
    fn garbage_request_gets_400_not_a_panic() {
        let mock = MockProvider::start("127.0.0.1:0", Script::new(vec![])).unwrap();
        let out = http(
            mock.addr(),
            "POST /v1/chat/completions HTTP/1.1\r\ncontent-length: zz\r\n\r\n",
        );
        assert!(out.starts_with("HTTP/1.1 400"));
        // An empty script still answers (with an empty stream).
        assert!(post(mock.addr(), r#"{"stream":true}"#).contains("[DONE]"));
    }

    #[test]
    fn script_json_round_trip() {
        let s = Script::from_json(
            r#"{"steps":[{"kind":"text","text":"a b"},{"kind":"http_error","status":503,"delay_ms":5},{"kind":"empty"}]}"#,
        )
        .unwrap();
        assert_eq!(s.steps.len(), 3);
        assert_eq!(s.steps[1].delay_ms, 5);
        assert_eq!(
            Script::from_json(&serde_json::to_string(&s).unwrap()).unwrap(),
            s
        );
    }
}
