//! pi's RPC mode (`--mode rpc`, pi's `docs/rpc.md`): a long-lived pi that reads one JSON command per
//! LF-terminated line on stdin and writes command responses and the same agent events as json mode, one per
//! line, on stdout. A warm agent is a pi started this way before its turn: the turn is one `prompt` line and
//! ends at pi's `agent_end` event; end of stdin makes pi exit.
//!
//! Framing is LF only ([`crate::EventParser`] splits that way): U+2028/U+2029 are valid inside JSON strings.

use std::path::Path;

use serde_json::{json, Value};

use crate::argv::{pi_argv, PiLauncher};
use crate::config::AgentConfig;

/// The argv (program first) of a long-lived RPC-mode pi on a persistent session file: the json-mode argv
/// ([`pi_argv`]) with `--mode rpc`.
pub fn pi_rpc_argv(cfg: &AgentConfig, launcher: &PiLauncher, session_file: &Path) -> Vec<String> {
    let mut argv = pi_argv(cfg, launcher, session_file);
    let first_own = 1 + launcher.args.len();
    if let Some(i) = argv[first_own..].iter().position(|a| a == "--mode") {
        argv[first_own + i + 1] = "rpc".to_string();
    }
    argv
}

/// The command line (LF-terminated) that starts a turn with `message` as the user's prompt.
pub fn prompt_line(id: &str, message: &str) -> String {
    line(&json!({"id": id, "type": "prompt", "message": message}))
}

/// A command line that pi answers at once without touching the model: a warm pi that answers it is ready.
pub fn ready_line(id: &str) -> String {
    line(&json!({"id": id, "type": "get_state"}))
}

fn line(v: &Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

/// What one line of an RPC-mode pi's stdout means to whoever drives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcLine {
    /// The answer to the command with this id: accepted, or refused with pi's error.
    Response {
        /// The command's id (empty when it had none).
        id: String,
        /// pi's error when it refused the command.
        error: Option<String>,
    },
    /// The agent finished the prompt (`agent_end`).
    AgentEnd,
    /// Any other event (json mode's events, which [`crate::EventParser`] reads).
    Event,
}

/// Classifies one stdout line (without its LF); `None` for a line that is not a JSON object.
pub fn classify(line: &str) -> Option<RpcLine> {
    let v: Value = serde_json::from_str(line.trim_end_matches('\r')).ok()?;
    let kind = v.get("type")?.as_str()?;
    Some(match kind {
        "response" => RpcLine::Response {
            id: v["id"].as_str().unwrap_or_default().to_string(),
            error: match v["success"].as_bool() {
                Some(true) => None,
                _ => Some(
                    v["error"]
                        .as_str()
                        .unwrap_or("pi refused the command")
                        .to_string(),
                ),
            },
        },
        "agent_end" => RpcLine::AgentEnd,
        _ => RpcLine::Event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_argv_is_the_json_argv_in_rpc_mode() {
        let cfg = AgentConfig::default();
        let launcher = PiLauncher::node("/usr/bin/node", Path::new("/opt/pi/dist/cli.js"));
        let session = Path::new("/var/pi/sessions/t.jsonl");
        let mut want = pi_argv(&cfg, &launcher, session);
        want[3] = "rpc".to_string();
        assert_eq!(pi_rpc_argv(&cfg, &launcher, session), want);
        assert_eq!(&want[2..4], ["--mode", "rpc"]);
    }

    #[test]
    fn a_prompt_is_one_lf_terminated_line_even_with_separators_inside() {
        let l = prompt_line("t1", "a\nb\u{2028}c");
        assert!(l.ends_with('\n'));
        assert_eq!(l.matches('\n').count(), 1);
        let v: Value = serde_json::from_str(l.trim_end()).unwrap();
        assert_eq!(v["type"], "prompt");
        assert_eq!(v["message"], "a\nb\u{2028}c");
    }

    #[test]
    fn responses_and_agent_end_are_told_apart() {
        assert_eq!(
            classify(r#"{"id":"r","type":"response","command":"get_state","success":true}"#),
            Some(RpcLine::Response {
                id: "r".into(),
                error: None
            })
        );
        assert_eq!(
            classify(r#"{"type":"response","command":"prompt","success":false,"error":"busy"}"#),
            Some(RpcLine::Response {
                id: String::new(),
                error: Some("busy".into())
            })
        );
        assert_eq!(
            classify(r#"{"type":"agent_end","messages":[]}"#),
            Some(RpcLine::AgentEnd)
        );
        assert_eq!(classify(r#"{"type":"turn_start"}"#), Some(RpcLine::Event));
        assert_eq!(classify("not json"), None);
    }
}
