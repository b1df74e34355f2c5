//! The parser on event streams recorded from real pi 0.73.1 against the mock provider
//! (re-record with `WARDEN_RECORD_FIXTURES=1 cargo test -p warden-agent --test pi_turns`).

use warden_agent::{parse_output, AgentEvent, AgentFailure, EventParser, StopReason};

const TEXT: &[u8] = include_bytes!("fixtures/text.jsonl");
const TOOL: &[u8] = include_bytes!("fixtures/tool.jsonl");
const ERROR500: &[u8] = include_bytes!("fixtures/error500.jsonl");
const EMPTY: &[u8] = include_bytes!("fixtures/empty.jsonl");
const SESSION_SECOND: &[u8] = include_bytes!("fixtures/session_second.jsonl");

fn kinds(stdout: &[u8]) -> Vec<String> {
    EventParser::new()
        .feed(stdout)
        .iter()
        .map(|e| match e {
            AgentEvent::Unknown { kind, .. } => format!("?{kind}"),
            other => serde_json::to_value(other).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string(),
        })
        .collect()
}

#[test]
fn text_fixture() {
    let r = parse_output(TEXT);
    assert_eq!(r.failure, None);
    assert_eq!(r.reply, "Hello from the mock provider.");
    assert_eq!(r.stop_reason, Some(StopReason::Stop));
    assert_eq!(r.usage.input, 100);
    assert_eq!(r.usage.output, 7);
    assert_eq!(r.usage.total_tokens, 107);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.malformed_lines, 0);
    let k = kinds(TEXT);
    assert_eq!(k[..3], ["session", "agent_start", "turn_start"]);
    assert_eq!(k.last().unwrap(), "agent_end");
    assert!(k.iter().all(|k| !k.starts_with('?')), "{k:?}");
}

#[test]
fn tool_fixture() {
    let r = parse_output(TOOL);
    assert_eq!(r.failure, None);
    assert_eq!(r.reply, "The command printed hi.");
    assert_eq!(r.tool_calls, 1);
    assert_eq!(r.usage.output, 14);
    let evs = EventParser::new().feed(TOOL);
    assert!(evs.iter().any(|e| matches!(e,
        AgentEvent::ToolExecutionStart { tool_name, args, .. } if tool_name == "bash" && args["command"] == "echo hi")));
    assert!(evs.iter().any(|e| matches!(
        e,
        AgentEvent::ToolExecutionEnd {
            is_error: false,
            ..
        }
    )));
    assert!(evs.iter().any(|e| matches!(e,
        AgentEvent::MessageEnd { message } if message.role == "assistant" && message.tool_calls == 1
            && message.stop_reason == Some(StopReason::ToolUse))));
    assert!(evs.iter().any(|e| matches!(e,
        AgentEvent::MessageEnd { message } if message.role == "toolResult" && message.text == "hi\n")));
    let turns = evs.iter().filter(|e| **e == AgentEvent::TurnStart).count();
    assert_eq!(turns, 2);
}

#[test]
fn error500_fixture() {
    let r = parse_output(ERROR500);
    assert_eq!(
        r.failure,
        Some(AgentFailure::ProviderError(
            "500 mock internal error".into()
        ))
    );
    assert_eq!(r.stop_reason, Some(StopReason::Error));
    assert_eq!(r.reply, "");
}

#[test]
fn empty_fixture() {
    let r = parse_output(EMPTY);
    assert_eq!(r.failure, Some(AgentFailure::EmptyReply));
    assert_eq!(r.stop_reason, Some(StopReason::Stop));
}

#[test]
fn session_second_fixture() {
    let r = parse_output(SESSION_SECOND);
    assert_eq!(r.failure, None);
    assert_eq!(r.reply, "second answer");
}

#[test]
fn every_byte_split_gives_the_same_result() {
    let whole = parse_output(TOOL);
    for size in [1, 5, 17, 100, 4096] {
        let mut p = EventParser::new();
        for chunk in TOOL.chunks(size) {
            p.feed(chunk);
        }
        assert_eq!(p.finish(), whole, "chunk size {size}");
    }
}

#[test]
fn truncated_stream_is_incomplete_not_a_panic() {
    // Cut pi off mid-stream (as a kill would), at every line boundary and inside lines.
    for cut in (0..TOOL.len()).step_by(97) {
        let r = parse_output(&TOOL[..cut]);
        if cut == 0 {
            assert_eq!(r.failure, Some(AgentFailure::NoOutput));
        } else {
            assert!(r.failure.is_some() || r.reply == "The command printed hi.");
        }
    }
}
