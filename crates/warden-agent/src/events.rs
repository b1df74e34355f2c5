//! Incremental parsing of pi's `--mode json` stdout into typed events and one turn result.
//!
//! The rule (reference/agent-turn.md): the reply is the text of the last `message_end` whose message role
//! is `assistant`; stopReason `error`/`aborted` or an empty reply is a failed turn. pi prints `agent_end`
//! once per retry attempt, so nothing here stops at the first one: the caller feeds stdout until pi exits.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest stdout line kept; pi's events are far smaller unless a tool dumps huge output.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// How much of a bad line is kept in [`AgentFailure::BadJson`] and [`AgentEvent::Malformed`].
const BAD_LINE_PREVIEW: usize = 200;

/// Why the assistant stopped (pi's `stopReason`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum StopReason {
    /// Finished normally.
    Stop,
    /// Hit the token limit.
    Length,
    /// Wants to call tools (only final if pi was cut off).
    ToolUse,
    /// Provider or transport error.
    Error,
    /// Aborted (signal, timeout).
    Aborted,
    /// A value this version does not know.
    Other(String),
}

impl StopReason {
    /// The wire name (`stop`, `length`, `toolUse`, `error`, `aborted`, or the unknown value).
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::Stop => "stop",
            StopReason::Length => "length",
            StopReason::ToolUse => "toolUse",
            StopReason::Error => "error",
            StopReason::Aborted => "aborted",
            StopReason::Other(s) => s,
        }
    }
}

impl From<String> for StopReason {
    fn from(s: String) -> Self {
        match s.as_str() {
            "stop" => StopReason::Stop,
            "length" => StopReason::Length,
            "toolUse" => StopReason::ToolUse,
            "error" => StopReason::Error,
            "aborted" => StopReason::Aborted,
            _ => StopReason::Other(s),
        }
    }
}

impl From<StopReason> for String {
    fn from(r: StopReason) -> Self {
        r.as_str().to_string()
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token use and cost of one message, or summed over a turn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// Input (prompt) tokens, excluding cache reads/writes.
    pub input: u64,
    /// Output (completion) tokens.
    pub output: u64,
    /// Tokens read from the provider's cache.
    pub cache_read: u64,
    /// Tokens written to the provider's cache.
    pub cache_write: u64,
    /// pi's `totalTokens`.
    pub total_tokens: u64,
    /// pi's `cost.total` (USD; 0 for local models).
    pub cost: f64,
}

impl Usage {
    fn add(&mut self, other: &Usage) {
        self.input += other.input;
        self.output += other.output;
        self.cache_read += other.cache_read;
        self.cache_write += other.cache_write;
        self.total_tokens += other.total_tokens;
        self.cost += other.cost;
    }

    fn from_json(v: &Value) -> Usage {
        let n = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        Usage {
            input: n("input"),
            output: n("output"),
            cache_read: n("cacheRead"),
            cache_write: n("cacheWrite"),
            total_tokens: n("totalTokens"),
            cost: v
                .get("cost")
                .and_then(|c| c.get("total"))
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
        }
    }
}

/// The parts of a finished message (`message_end.message`) that a worker needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `user`, `assistant`, `toolResult`, or another role.
    pub role: String,
    /// The text blocks joined with `\n` (as pi's text mode prints them).
    pub text: String,
    /// `stopReason`, on assistant messages.
    pub stop_reason: Option<StopReason>,
    /// `errorMessage`, when the provider failed.
    pub error_message: Option<String>,
    /// Token use, on assistant messages.
    pub usage: Option<Usage>,
    /// Number of `toolCall` blocks.
    pub tool_calls: usize,
}

impl Message {
    fn from_json(v: &Value) -> Message {
        let role = str_field(v, "role").unwrap_or_default();
        let blocks = v.get("content").and_then(Value::as_array);
        let mut texts = Vec::new();
        let mut tool_calls = 0;
        if let Some(blocks) = blocks {
            for block in blocks {
                match block.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = block.get("text").and_then(Value::as_str) {
                            texts.push(t);
                        }
                    }
                    Some("toolCall") => tool_calls += 1,
                    _ => {}
                }
            }
        }
        // User messages may carry content as a plain string.
        let text = match v.get("content").and_then(Value::as_str) {
            Some(s) => s.to_string(),
            None => texts.join("\n"),
        };
        Message {
            role,
            text,
            stop_reason: str_field(v, "stopReason").map(StopReason::from),
            error_message: str_field(v, "errorMessage"),
            usage: v.get("usage").map(Usage::from_json),
            tool_calls,
        }
    }
}

/// One line of pi's JSON stdout, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentEvent {
    /// The session header (first line, also printed with `--no-session`).
    Session {
        /// Session uuid.
        id: String,
        /// Session format version.
        version: Option<u64>,
        /// The cwd stored in the session.
        cwd: Option<String>,
    },
    /// The agent loop started (once per attempt).
    AgentStart,
    /// The agent loop ended (once per attempt; several with retries).
    AgentEnd,
    /// One LLM call plus its tool executions started.
    TurnStart,
    /// That turn ended.
    TurnEnd,
    /// A message started.
    MessageStart {
        /// Message role.
        role: String,
    },
    /// Streaming progress of a message.
    MessageUpdate {
        /// Message role.
        role: String,
        /// `assistantMessageEvent.type`, e.g. `text_delta`, `toolcall_end`.
        kind: String,
        /// `assistantMessageEvent.delta`, when present.
        delta: Option<String>,
    },
    /// A message is complete.
    MessageEnd {
        /// The finished message.
        message: Message,
    },
    /// A tool started.
    ToolExecutionStart {
        /// Tool call id.
        tool_call_id: String,
        /// Tool name, e.g. `bash`.
        tool_name: String,
        /// Tool arguments.
        args: Value,
    },
    /// A tool reported partial output.
    ToolExecutionUpdate {
        /// Tool call id.
        tool_call_id: String,
        /// Tool name.
        tool_name: String,
    },
    /// A tool finished.
    ToolExecutionEnd {
        /// Tool call id.
        tool_call_id: String,
        /// Tool name.
        tool_name: String,
        /// Whether the tool failed.
        is_error: bool,
    },
    /// pi is about to retry after a transient error.
    AutoRetryStart {
        /// Attempt number.
        attempt: u64,
        /// Maximum attempts.
        max_attempts: u64,
        /// Delay before the attempt.
        delay_ms: u64,
        /// The error that caused the retry.
        error_message: String,
    },
    /// pi's retries are over.
    AutoRetryEnd {
        /// Whether a retry succeeded.
        success: bool,
        /// Last attempt number.
        attempt: u64,
        /// The final error, when all failed.
        final_error: Option<String>,
    },
    /// A valid JSON event of a kind this parser does not type (kept whole).
    Unknown {
        /// The `type` field (empty if missing).
        kind: String,
        /// The whole event.
        raw: Value,
    },
    /// A line that is not a JSON object (start of it kept).
    Malformed {
        /// The first bytes of the line.
        line: String,
    },
}

impl AgentEvent {
    /// Parses one line; anything that is not a JSON object becomes [`AgentEvent::Malformed`].
    pub fn parse(line: &str) -> AgentEvent {
        match serde_json::from_str::<Value>(line) {
            Ok(v) if v.is_object() => AgentEvent::from_json(v),
            _ => AgentEvent::Malformed {
                line: preview(line),
            },
        }
    }

    fn from_json(v: Value) -> AgentEvent {
        let kind = str_field(&v, "type").unwrap_or_default();
        let s = |key: &str| str_field(&v, key).unwrap_or_default();
        let n = |key: &str| v.get(key).and_then(Value::as_u64).unwrap_or(0);
        let message_role = || {
            v.get("message")
                .and_then(|m| str_field(m, "role"))
                .unwrap_or_default()
        };
        match kind.as_str() {
            "session" => AgentEvent::Session {
                id: s("id"),
                version: v.get("version").and_then(Value::as_u64),
                cwd: str_field(&v, "cwd"),
            },
            "agent_start" => AgentEvent::AgentStart,
            "agent_end" => AgentEvent::AgentEnd,
            "turn_start" => AgentEvent::TurnStart,
            "turn_end" => AgentEvent::TurnEnd,
            "message_start" => AgentEvent::MessageStart {
                role: message_role(),
            },
            "message_update" => {
                let ev = v.get("assistantMessageEvent");
                AgentEvent::MessageUpdate {
                    role: message_role(),
                    kind: ev.and_then(|e| str_field(e, "type")).unwrap_or_default(),
                    delta: ev.and_then(|e| str_field(e, "delta")),
                }
            }
            "message_end" => match v.get("message") {
                Some(m) if m.is_object() => AgentEvent::MessageEnd {
                    message: Message::from_json(m),
                },
                _ => AgentEvent::Unknown { kind, raw: v },
            },
            "tool_execution_start" => AgentEvent::ToolExecutionStart {
                tool_call_id: s("toolCallId"),
                tool_name: s("toolName"),
                args: v.get("args").cloned().unwrap_or(Value::Null),
            },
            "tool_execution_update" => AgentEvent::ToolExecutionUpdate {
                tool_call_id: s("toolCallId"),
                tool_name: s("toolName"),
            },
            "tool_execution_end" => AgentEvent::ToolExecutionEnd {
                tool_call_id: s("toolCallId"),
                tool_name: s("toolName"),
                is_error: v.get("isError").and_then(Value::as_bool).unwrap_or(false),
            },
            "auto_retry_start" => AgentEvent::AutoRetryStart {
                attempt: n("attempt"),
                max_attempts: n("maxAttempts"),
                delay_ms: n("delayMs"),
                error_message: s("errorMessage"),
            },
            "auto_retry_end" => AgentEvent::AutoRetryEnd {
                success: v.get("success").and_then(Value::as_bool).unwrap_or(false),
                attempt: n("attempt"),
                final_error: str_field(&v, "finalError"),
            },
            _ => AgentEvent::Unknown { kind, raw: v },
        }
    }
}

/// Why an agent turn failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum AgentFailure {
    /// The last assistant message has stopReason `error` (HTTP error, connection error, ...).
    #[error("provider error: {0}")]
    ProviderError(String),
    /// The last assistant message has stopReason `aborted`.
    #[error("agent aborted")]
    Aborted,
    /// The last assistant message has no text (empty `choices`, template errors, cut-off tool use).
    #[error("agent gave an empty reply")]
    EmptyReply,
    /// pi printed nothing on stdout.
    #[error("agent printed no output")]
    NoOutput,
    /// No assistant message, and stdout had a line that is not JSON (its start is kept).
    #[error("agent printed a line that is not JSON: {0}")]
    BadJson(String),
    /// Valid events, but no assistant message ended (pi was cut off).
    #[error("agent output ended before an assistant message")]
    Incomplete,
    /// pi exited with a non-zero status (or by a signal: `None`) without a usable reply.
    #[error("agent exited with {}", exit_text(*.0))]
    Exited(Option<i32>),
}

impl AgentFailure {
    /// A stable short code for storage and metrics (`provider_error`, `empty_reply`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            AgentFailure::ProviderError(_) => "provider_error",
            AgentFailure::Aborted => "aborted",
            AgentFailure::EmptyReply => "empty_reply",
            AgentFailure::NoOutput => "no_output",
            AgentFailure::BadJson(_) => "bad_json",
            AgentFailure::Incomplete => "incomplete",
            AgentFailure::Exited(_) => "exited",
        }
    }
}

/// The outcome of one pi turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnResult {
    /// The reply text (text blocks of the last assistant message joined with `\n`).
    pub reply: String,
    /// stopReason of the last assistant message.
    pub stop_reason: Option<StopReason>,
    /// errorMessage of the last assistant message.
    pub error_message: Option<String>,
    /// Usage summed over every assistant message of the run (a tool turn makes several LLM calls).
    pub usage: Usage,
    /// Number of tool executions started.
    pub tool_calls: usize,
    /// Number of `agent_end` events (one per attempt when pi retries).
    pub attempts: usize,
    /// Session id from the header line.
    pub session_id: Option<String>,
    /// Number of stdout lines that were not JSON objects.
    pub malformed_lines: usize,
    /// Why the turn failed; `None` on success.
    pub failure: Option<AgentFailure>,
}

impl TurnResult {
    /// Whether the turn produced a usable reply.
    pub fn is_success(&self) -> bool {
        self.failure.is_none()
    }
}

/// Feeds on pi's stdout (bytes or lines) and yields typed events; `finish` gives the turn result.
#[derive(Debug)]
pub struct EventParser {
    buf: Vec<u8>,
    max_line_bytes: usize,
    discarding: bool,
    lines: usize,
    malformed: usize,
    first_bad_line: Option<String>,
    session_id: Option<String>,
    last_assistant: Option<Message>,
    usage: Usage,
    tool_calls: usize,
    agent_ends: usize,
}

impl Default for EventParser {
    fn default() -> Self {
        Self::new()
    }
}

impl EventParser {
    /// A parser with the default line limit.
    pub fn new() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }

    /// A parser that treats lines longer than `max` bytes as malformed instead of buffering them.
    pub fn with_max_line_bytes(max: usize) -> Self {
        EventParser {
            buf: Vec::new(),
            max_line_bytes: max.max(1),
            discarding: false,
            lines: 0,
            malformed: 0,
            first_bad_line: None,
            session_id: None,
            last_assistant: None,
            usage: Usage::default(),
            tool_calls: 0,
            agent_ends: 0,
        }
    }

    /// Feeds raw stdout bytes (any split); returns the events of every line completed by them.
    /// Lines are split on LF only, as pi frames them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<AgentEvent> {
        let mut events = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            match rest.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    if self.discarding {
                        self.discarding = false;
                    } else {
                        self.buf.extend_from_slice(&rest[..i]);
                        let line = std::mem::take(&mut self.buf);
                        if let Some(ev) = self.feed_line(&String::from_utf8_lossy(&line)) {
                            events.push(ev);
                        }
                    }
                    rest = &rest[i + 1..];
                }
                None => {
                    if !self.discarding {
                        self.buf.extend_from_slice(rest);
                        if self.buf.len() > self.max_line_bytes {
                            // Drop the oversized line now rather than buffer without bound.
                            let head = String::from_utf8_lossy(
                                &self.buf[..BAD_LINE_PREVIEW.min(self.buf.len())],
                            )
                            .into_owned();
                            self.buf.clear();
                            self.discarding = true;
                            self.lines += 1;
                            events.push(self.record_malformed(&head));
                        }
                    }
                    rest = &[];
                }
            }
        }
        events
    }

    /// Feeds one complete line (without its newline); blank lines yield nothing.
    pub fn feed_line(&mut self, line: &str) -> Option<AgentEvent> {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            return None;
        }
        self.lines += 1;
        if line.len() > self.max_line_bytes {
            return Some(self.record_malformed(line));
        }
        let event = AgentEvent::parse(line);
        match &event {
            AgentEvent::Malformed { .. } => return Some(self.record_malformed(line)),
            AgentEvent::Session { id, .. } => self.session_id = Some(id.clone()),
            AgentEvent::AgentEnd => self.agent_ends += 1,
            AgentEvent::ToolExecutionStart { .. } => self.tool_calls += 1,
            AgentEvent::MessageEnd { message } if message.role == "assistant" => {
                if let Some(u) = &message.usage {
                    self.usage.add(u);
                }
                self.last_assistant = Some(message.clone());
            }
            _ => {}
        }
        Some(event)
    }

    fn record_malformed(&mut self, line: &str) -> AgentEvent {
        self.malformed += 1;
        let head = preview(line);
        if self.first_bad_line.is_none() {
            self.first_bad_line = Some(head.clone());
        }
        AgentEvent::Malformed { line: head }
    }

    /// Ends the stream (a last line without newline is parsed) and applies the reply rule.
    pub fn finish(mut self) -> TurnResult {
        if !self.buf.is_empty() && !self.discarding {
            let line = std::mem::take(&mut self.buf);
            self.feed_line(&String::from_utf8_lossy(&line));
        }
        let (reply, stop_reason, error_message) = match &self.last_assistant {
            Some(m) => (
                m.text.clone(),
                m.stop_reason.clone(),
                m.error_message.clone(),
            ),
            None => (String::new(), None, None),
        };
        let failure = match (&self.last_assistant, &stop_reason) {
            (None, _) if self.lines == 0 => Some(AgentFailure::NoOutput),
            (None, _) => match &self.first_bad_line {
                Some(line) => Some(AgentFailure::BadJson(line.clone())),
                None => Some(AgentFailure::Incomplete),
            },
            (Some(_), Some(StopReason::Error)) => Some(AgentFailure::ProviderError(
                error_message
                    .clone()
                    .unwrap_or_else(|| "unknown provider error".to_string()),
            )),
            (Some(_), Some(StopReason::Aborted)) => Some(AgentFailure::Aborted),
            (Some(_), _) if reply.trim().is_empty() => Some(AgentFailure::EmptyReply),
            (Some(_), _) => None,
        };
        TurnResult {
            reply,
            stop_reason,
            error_message,
            usage: self.usage,
            tool_calls: self.tool_calls,
            attempts: self.agent_ends,
            session_id: self.session_id,
            malformed_lines: self.malformed,
            failure,
        }
    }

    /// Like [`finish`](Self::finish), and a non-zero exit (or a signal: `None`) fails a turn that had
    /// no assistant message; a provider error keeps its more precise reason.
    pub fn finish_with_exit(self, exit_code: Option<i32>) -> TurnResult {
        let mut result = self.finish();
        if exit_code == Some(0) {
            return result;
        }
        match result.failure {
            None
            | Some(AgentFailure::NoOutput)
            | Some(AgentFailure::Incomplete)
            | Some(AgentFailure::BadJson(_)) => {
                result.failure = Some(AgentFailure::Exited(exit_code))
            }
            _ => {}
        }
        result
    }
}

/// Parses a whole stdout capture at once.
pub fn parse_output(stdout: &[u8]) -> TurnResult {
    let mut parser = EventParser::new();
    parser.feed(stdout);
    parser.finish()
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("status {c}"),
        None => "a signal".to_string(),
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn preview(line: &str) -> String {
    match line.char_indices().nth(BAD_LINE_PREVIEW) {
        Some((i, _)) => line[..i].to_string(),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT_TURN: &str = concat!(
        r#"{"type":"session","version":3,"id":"abc","timestamp":"t","cwd":"/w"}"#,
        "\n",
        r#"{"type":"agent_start"}"#,
        "\n",
        r#"{"type":"turn_start"}"#,
        "\n",
        r#"{"type":"message_start","message":{"role":"user","content":[{"type":"text","text":"hi"}]}}"#,
        "\n",
        r#"{"type":"message_end","message":{"role":"user","content":[{"type":"text","text":"hi"}]}}"#,
        "\n",
        r#"{"type":"message_update","message":{"role":"assistant","content":[]},"assistantMessageEvent":{"type":"text_delta","delta":"Hel"}}"#,
        "\n",
        r#"{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"Hello"}],"stopReason":"stop","usage":{"input":10,"output":2,"cacheRead":0,"cacheWrite":0,"totalTokens":12,"cost":{"total":0.5}}}}"#,
        "\n",
        r#"{"type":"turn_end","message":{},"toolResults":[]}"#,
        "\n",
        r#"{"type":"agent_end","messages":[]}"#,
        "\n",
    );

    #[test]
    fn text_turn_gives_reply_and_usage() {
        let r = parse_output(TEXT_TURN.as_bytes());
        assert_eq!(r.failure, None);
        assert_eq!(r.reply, "Hello");
        assert_eq!(r.stop_reason, Some(StopReason::Stop));
        assert_eq!(r.usage.total_tokens, 12);
        assert_eq!(r.usage.cost, 0.5);
        assert_eq!(r.session_id.as_deref(), Some("abc"));
        assert_eq!(r.attempts, 1);
    }

    #[test]
    fn byte_splits_do_not_matter() {
        for split in [1, 2, 3, 7, 64] {
            let mut p = EventParser::new();
            let mut n = 0;
            for chunk in TEXT_TURN.as_bytes().chunks(split) {
                n += p.feed(chunk).len();
            }
            assert_eq!(n, 9, "split {split}");
            assert_eq!(p.finish().reply, "Hello");
        }
    }

    #[test]
    fn typed_events() {
        let evs = EventParser::new().feed(TEXT_TURN.as_bytes());
        assert!(matches!(&evs[0], AgentEvent::Session { id, version: Some(3), .. } if id == "abc"));
        assert_eq!(evs[1], AgentEvent::AgentStart);
        assert!(matches!(&evs[3], AgentEvent::MessageStart { role } if role == "user"));
        assert!(
            matches!(&evs[5], AgentEvent::MessageUpdate { kind, delta: Some(d), .. } if kind == "text_delta" && d == "Hel")
        );
        assert_eq!(evs[8], AgentEvent::AgentEnd);
    }

    #[test]
    fn provider_error_and_aborted() {
        let err = r#"{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"error","errorMessage":"500 boom"}}"#;
        assert_eq!(
            parse_output(err.as_bytes()).failure,
            Some(AgentFailure::ProviderError("500 boom".into()))
        );
        let ab = r#"{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"par"}],"stopReason":"aborted"}}"#;
        assert_eq!(
            parse_output(ab.as_bytes()).failure,
            Some(AgentFailure::Aborted)
        );
    }

    #[test]
    fn empty_reply_and_whitespace_reply() {
        let e = r#"{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"stop"}}"#;
        assert_eq!(
            parse_output(e.as_bytes()).failure,
            Some(AgentFailure::EmptyReply)
        );
        let w = r#"{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"  \n"}],"stopReason":"stop"}}"#;
        assert_eq!(
            parse_output(w.as_bytes()).failure,
            Some(AgentFailure::EmptyReply)
        );
    }

    #[test]
    fn no_output_incomplete_and_bad_json() {
        assert_eq!(parse_output(b"").failure, Some(AgentFailure::NoOutput));
        assert_eq!(parse_output(b"\n\n").failure, Some(AgentFailure::NoOutput));
        assert_eq!(
            parse_output(b"{\"type\":\"agent_start\"}\n").failure,
            Some(AgentFailure::Incomplete)
        );
        assert_eq!(
            parse_output(b"Error: Unknown option: -x\n").failure,
            Some(AgentFailure::BadJson("Error: Unknown option: -x".into()))
        );
    }

    #[test]
    fn malformed_lines_never_panic() {
        let junk: &[&[u8]] = &[
            b"{", b"[]", b"null", b"42", b"\"str\"", b"{\"type\":5}", b"{\"type\":\"message_end\"}",
            b"{\"type\":\"message_end\",\"message\":[1]}",
            b"{\"type\":\"message_end\",\"message\":{\"role\":7,\"content\":{\"x\":1},\"usage\":\"no\"}}",
            b"{\"type\":\"tool_execution_start\",\"args\":[1,2]}", b"\xff\xfe\xfd", b"\r",
        ];
        for j in junk {
            let mut p = EventParser::new();
            p.feed(j);
            p.feed(b"\n");
            let _ = p.finish();
        }
        let mut all = junk.join(&b'\n');
        all.extend_from_slice(TEXT_TURN.as_bytes());
        let r = parse_output(&all);
        assert_eq!(r.reply, "Hello");
        assert!(r.malformed_lines >= 5);
    }

    #[test]
    fn oversized_line_is_dropped_and_reported() {
        let mut p = EventParser::with_max_line_bytes(50);
        let evs = p.feed(&[b'x'; 40]);
        assert!(evs.is_empty());
        let evs = p.feed(&[b'y'; 40]);
        assert!(matches!(&evs[0], AgentEvent::Malformed { .. }));
        assert!(p.feed(&[b'z'; 100]).is_empty());
        let evs = p.feed(b"zz\n{\"type\":\"agent_start\"}\n");
        assert_eq!(evs, vec![AgentEvent::AgentStart]);
        assert!(
            matches!(p.finish().failure, Some(AgentFailure::BadJson(l)) if l.starts_with("xxx"))
        );
    }

    #[test]
    fn last_line_without_newline_counts() {
        let trimmed = TEXT_TURN.trim_end();
        let (head, last_two) = trimmed.rsplit_once('\n').unwrap();
        let _ = last_two;
        let r = parse_output(head.as_bytes());
        assert_eq!(r.reply, "Hello");
        assert_eq!(r.attempts, 0);
    }

    #[test]
    fn retries_take_the_last_assistant_message() {
        let attempt_err = r#"{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"error","errorMessage":"Connection error.","usage":{"totalTokens":0}}}"#;
        let retry = r#"{"type":"auto_retry_start","attempt":1,"maxAttempts":3,"delayMs":2000,"errorMessage":"Connection error."}"#;
        let ok = r#"{"type":"message_end","message":{"role":"assistant","content":[{"type":"text","text":"ok"}],"stopReason":"stop","usage":{"totalTokens":5}}}"#;
        let end = r#"{"type":"agent_end","messages":[]}"#;
        let retry_end = r#"{"type":"auto_retry_end","success":true,"attempt":1}"#;
        let stream = [attempt_err, end, retry, ok, end, retry_end].join("\n");
        let mut p = EventParser::new();
        let evs = p.feed(stream.as_bytes());
        assert!(matches!(
            evs[2],
            AgentEvent::AutoRetryStart {
                attempt: 1,
                max_attempts: 3,
                delay_ms: 2000,
                ..
            }
        ));
        let r = p.finish();
        assert_eq!(r.failure, None);
        assert_eq!(r.reply, "ok");
        assert_eq!(r.attempts, 2);
        assert_eq!(r.usage.total_tokens, 5);
    }

    #[test]
    fn unknown_kinds_are_kept_raw() {
        let line = r#"{"type":"compaction_start","reason":"threshold"}"#;
        match AgentEvent::parse(line) {
            AgentEvent::Unknown { kind, raw } => {
                assert_eq!(kind, "compaction_start");
                assert_eq!(raw["reason"], "threshold");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn exit_code_overrides_missing_reply() {
        let mut p = EventParser::new();
        p.feed(b"{\"type\":\"agent_start\"}\n");
        assert_eq!(
            p.finish_with_exit(Some(143)).failure,
            Some(AgentFailure::Exited(Some(143)))
        );
        let mut p = EventParser::new();
        p.feed(TEXT_TURN.as_bytes());
        assert_eq!(p.finish_with_exit(Some(0)).failure, None);
        let err = r#"{"type":"message_end","message":{"role":"assistant","content":[],"stopReason":"error","errorMessage":"x"}}"#;
        let mut p = EventParser::new();
        p.feed(err.as_bytes());
        assert_eq!(
            p.finish_with_exit(Some(1)).failure,
            Some(AgentFailure::ProviderError("x".into()))
        );
    }

    #[test]
    fn failure_serialises_with_kind_and_detail() {
        let v = serde_json::to_value(AgentFailure::ProviderError("m".into())).unwrap();
        assert_eq!(v, serde_json::json!({"kind":"provider_error","detail":"m"}));
        assert_eq!(AgentFailure::EmptyReply.code(), "empty_reply");
        assert_eq!(
            AgentFailure::Exited(Some(1)).to_string(),
            "agent exited with status 1"
        );
        assert_eq!(
            AgentFailure::Exited(None).to_string(),
            "agent exited with a signal"
        );
        assert_eq!(StopReason::from("toolUse".to_string()), StopReason::ToolUse);
    }
}
