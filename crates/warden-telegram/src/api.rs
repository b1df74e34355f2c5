//! The Bot API client: `POST <api_url>/bot<TOKEN>/<method>` with a JSON body, answers
//! `{"ok":true,"result":…}` or `{"ok":false,"error_code":N,"description":…,"parameters":…}`.
//! The token is part of every URL, so no error or log line ever carries a URL: reqwest errors are
//! stripped of theirs ([`reqwest::Error::without_url`]).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// How long a call other than getUpdates may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(20);
/// Added to the long-poll timeout for the HTTP timeout of getUpdates (reference: poll + 10 s).
const POLL_SLACK: Duration = Duration::from_secs(10);

/// A failed call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// Telegram answered with an error.
    #[error("Telegram answered {status}: {description}")]
    Api {
        /// HTTP status (Telegram's `error_code` is "subject to change", the status is not).
        status: u16,
        /// Telegram's description.
        description: String,
        /// `parameters.retry_after` (429), seconds.
        retry_after: Option<u64>,
        /// `parameters.migrate_to_chat_id` (a group became a supergroup).
        migrate_to: Option<i64>,
    },
    /// The call did not get an answer (connection refused or dropped, timeout).
    #[error("failed to reach the Bot API: {0}")]
    Network(String),
    /// The answer was not the Bot API's JSON.
    #[error("the Bot API answered something unexpected: {0}")]
    Decode(String),
}

impl BotError {
    /// Whether trying again later can succeed (429, 5xx, 409, network, garbled answers).
    pub fn is_transient(&self) -> bool {
        match self {
            BotError::Api { status, .. } => *status == 429 || *status == 409 || *status >= 500,
            BotError::Network(_) | BotError::Decode(_) => true,
        }
    }

    /// Seconds Telegram asked to wait (429).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            BotError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<u64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

/// A Bot API client for one bot.
#[derive(Clone)]
pub struct BotApi {
    http: reqwest::Client,
    /// `<api_url>/bot<TOKEN>`: never printed.
    base: String,
}

impl std::fmt::Debug for BotApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BotApi { .. }")
    }
}

impl BotApi {
    /// A client of the Bot API at `api_url` (e.g. `https://api.telegram.org`) for `token`.
    pub fn new(api_url: &str, token: &str) -> Result<BotApi, BotError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| BotError::Network(e.without_url().to_string()))?;
        Ok(BotApi {
            http,
            base: format!("{}/bot{}", api_url.trim_end_matches('/'), token),
        })
    }

    /// Calls `method` with `params`; `timeout` bounds the whole exchange.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        params: &Value,
        timeout: Duration,
    ) -> Result<T, BotError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .timeout(timeout)
            .json(params)
            .send()
            .await
            .map_err(|e| BotError::Network(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| BotError::Network(e.without_url().to_string()))?;
        let env: Envelope = serde_json::from_slice(&body)
            .map_err(|e| BotError::Decode(format!("HTTP {status}, {} bytes: {e}", body.len())))?;
        if !env.ok {
            let p = env.parameters;
            return Err(BotError::Api {
                status,
                description: env.description.unwrap_or_default(),
                retry_after: p.as_ref().and_then(|p| p.retry_after),
                migrate_to: p.as_ref().and_then(|p| p.migrate_to_chat_id),
            });
        }
        serde_json::from_value(env.result.unwrap_or(Value::Null))
            .map_err(|e| BotError::Decode(format!("{method} result: {e}")))
    }

    /// `getMe`: the bot's user.
    pub async fn get_me(&self) -> Result<Value, BotError> {
        self.call("getMe", &json!({}), CALL_TIMEOUT).await
    }

    /// `deleteWebhook` (pending updates are kept).
    pub async fn delete_webhook(&self) -> Result<bool, BotError> {
        self.call(
            "deleteWebhook",
            &json!({"drop_pending_updates": false}),
            CALL_TIMEOUT,
        )
        .await
    }

    /// `getWebhookInfo`.
    pub async fn webhook_info(&self) -> Result<Value, BotError> {
        self.call("getWebhookInfo", &json!({}), CALL_TIMEOUT).await
    }

    /// `getUpdates` from `offset`, waiting up to `poll` for one to arrive.
    pub async fn get_updates(&self, offset: i64, poll: Duration) -> Result<Vec<Value>, BotError> {
        let params = json!({
            "offset": offset,
            "timeout": poll.as_secs(),
            "allowed_updates": ["message"],
        });
        self.call("getUpdates", &params, poll + POLL_SLACK).await
    }

    /// `sendMessage` as plain text (no parse mode), as a reply to `reply_to` when given.
    pub async fn send_message(
        &self,
        chat_id: i64,
        text: &str,
        reply_to: Option<i64>,
    ) -> Result<Value, BotError> {
        let mut params = json!({"chat_id": chat_id, "text": text});
        if let Some(m) = reply_to {
            params["reply_parameters"] =
                json!({"message_id": m, "allow_sending_without_reply": true});
        }
        self.call("sendMessage", &params, CALL_TIMEOUT).await
    }

    /// `sendChatAction` (`typing` lasts about 5 s).
    pub async fn send_chat_action(&self, chat_id: i64, action: &str) -> Result<bool, BotError> {
        self.call(
            "sendChatAction",
            &json!({"chat_id": chat_id, "action": action}),
            CALL_TIMEOUT,
        )
        .await
    }
}
