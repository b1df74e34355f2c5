//! The agent configuration and the files pi reads from its agent dir (`models.json`, `settings.json`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use warden_core::pi::PI_PACKAGE;
/// The pinned package version; argv, env and event shapes were checked against it.
pub const PI_VERSION: &str = "0.73.1";

/// How a worker reaches one model through pi.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Provider name as pi knows it (`--provider`), and the key in models.json.
    pub provider: String,
    /// Model id (`--model`).
    pub model: String,
    /// OpenAI-compatible base URL, including `/v1`.
    pub base_url: String,
    /// pi's API flavour; `openai-completions` for local servers.
    pub api: String,
    /// Literal key written to models.json; pi also resolves it as an env var name if one exists.
    pub api_key: String,
    /// Name of an env var holding the key; when set it is written instead of `api_key`.
    pub api_key_env: Option<String>,
    /// Model context window in tokens.
    pub context_window: u64,
    /// Max tokens per completion.
    pub max_tokens: u64,
    /// Text appended to pi's system prompt (`--append-system-prompt`).
    pub append_system_prompt: Option<String>,
    /// npm package providing pi.
    pub package: String,
    /// Pinned package version.
    pub version: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            provider: "local".to_string(),
            model: "local-model".to_string(),
            base_url: "http://127.0.0.1:8080/v1".to_string(),
            api: "openai-completions".to_string(),
            api_key: "none".to_string(),
            api_key_env: None,
            // >= 32k so pi's auto-compaction threshold (window - 16384) is not hit every turn.
            context_window: 32768,
            max_tokens: 1024,
            append_system_prompt: None,
            package: PI_PACKAGE.to_string(),
            version: PI_VERSION.to_string(),
        }
    }
}

/// The `models.json` pi reads from its agent dir: one provider with one model and the compat flags
/// that local OpenAI-compatible servers need.
pub fn models_json(cfg: &AgentConfig) -> String {
    let api_key = cfg.api_key_env.as_deref().unwrap_or(&cfg.api_key);
    let value = json!({
        "providers": {
            cfg.provider.as_str(): {
                "baseUrl": cfg.base_url,
                "api": cfg.api,
                "apiKey": api_key,
                // Local servers reject the developer role, reasoning_effort, store and
                // max_completion_tokens; usage-in-stream is optional for them.
                "compat": {
                    "supportsDeveloperRole": false,
                    "supportsReasoningEffort": false,
                    "supportsUsageInStreaming": false,
                    "maxTokensField": "max_tokens",
                    "supportsStore": false
                },
                "models": [{
                    "id": cfg.model,
                    "contextWindow": cfg.context_window,
                    "maxTokens": cfg.max_tokens
                }]
            }
        }
    });
    pretty(&value)
}

/// The `settings.json` for worker runs: the orchestrator retries and owns the context, not pi.
/// `retry.provider.maxRetries: 0` also stops the OpenAI SDK's own retries (3 HTTP attempts per call).
pub fn settings_json() -> String {
    let value = json!({
        "retry": { "enabled": false, "provider": { "maxRetries": 0 } },
        "compaction": { "enabled": false },
        "quietStartup": true,
        "enableInstallTelemetry": false
    });
    pretty(&value)
}

/// Writes `models.json` and `settings.json` into `agent_dir` (created if missing) and returns their paths.
pub fn write_agent_dir(cfg: &AgentConfig, agent_dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(agent_dir)?;
    let models = agent_dir.join("models.json");
    let settings = agent_dir.join("settings.json");
    fs::write(&models, models_json(cfg))?;
    fs::write(&settings, settings_json())?;
    Ok(vec![models, settings])
}

fn pretty(value: &serde_json::Value) -> String {
    // Serialising a json! value cannot fail; fall back to the compact form to stay panic-free.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_json_has_provider_model_and_compat() {
        let cfg = AgentConfig {
            base_url: "http://127.0.0.1:9/v1".into(),
            ..AgentConfig::default()
        };
        let v: serde_json::Value = serde_json::from_str(&models_json(&cfg)).unwrap();
        let p = &v["providers"]["local"];
        assert_eq!(p["baseUrl"], "http://127.0.0.1:9/v1");
        assert_eq!(p["api"], "openai-completions");
        assert_eq!(p["apiKey"], "none");
        assert_eq!(p["compat"]["supportsDeveloperRole"], false);
        assert_eq!(p["compat"]["maxTokensField"], "max_tokens");
        assert_eq!(p["models"][0]["id"], "local-model");
        assert_eq!(p["models"][0]["contextWindow"], 32768);
    }

    #[test]
    fn api_key_env_wins_over_literal() {
        let cfg = AgentConfig {
            api_key_env: Some("MY_KEY".into()),
            ..AgentConfig::default()
        };
        let v: serde_json::Value = serde_json::from_str(&models_json(&cfg)).unwrap();
        assert_eq!(v["providers"]["local"]["apiKey"], "MY_KEY");
    }

    #[test]
    fn settings_disable_retry_and_compaction() {
        let v: serde_json::Value = serde_json::from_str(&settings_json()).unwrap();
        assert_eq!(v["retry"]["enabled"], false);
        assert_eq!(v["retry"]["provider"]["maxRetries"], 0);
        assert_eq!(v["compaction"]["enabled"], false);
    }

    #[test]
    fn config_defaults_fill_missing_fields() {
        let cfg: AgentConfig = serde_json::from_str(r#"{"model":"m"}"#).unwrap();
        assert_eq!(cfg.model, "m");
        assert_eq!(cfg.version, PI_VERSION);
        assert!(serde_json::from_str::<AgentConfig>(r#"{"bogus":1}"#).is_err());
    }
}
