//! The channel's settings, from the `telegram.*` config keys: the bot token (a secret: never
//! printed, logged or handed to a worker), the Bot API's base URL, and the allowed chats with the
//! tenant each talks to.

use std::collections::BTreeMap;
use std::time::Duration;

/// The default Bot API base URL.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// How the channel runs.
#[derive(Clone)]
pub struct TelegramConfig {
    /// The bot token.
    pub token: String,
    /// The Bot API base URL (`https://api.telegram.org`, or a stand-in).
    pub api_url: String,
    /// Allowed chats: chat id → tenant (`None`: the platform).
    pub chats: BTreeMap<i64, Option<String>>,
    /// getUpdates' long-poll timeout.
    pub poll_timeout: Duration,
    /// How often `typing` is sent while a turn runs.
    pub typing_every: Duration,
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("token", &"<set>")
            .field("api_url", &self.api_url)
            .field("chats", &self.chats)
            .finish()
    }
}

impl TelegramConfig {
    /// The config from the keys' values; `None` when no token is set (the channel is off).
    pub fn from_keys(
        token: &str,
        api_url: &str,
        chats: &[String],
    ) -> Result<Option<TelegramConfig>, String> {
        let token = token.trim();
        if token.is_empty() {
            return Ok(None);
        }
        // The token goes into URL paths: refuse anything that could change the path.
        if !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_' || b == b'-')
        {
            return Err(
                "telegram.bot_token has characters a Bot API token never has \
                 (want digits, ':', letters, '_' or '-', as @BotFather gives it)"
                    .into(),
            );
        }
        let api_url = if api_url.trim().is_empty() {
            DEFAULT_API_URL.to_string()
        } else {
            api_url.trim().trim_end_matches('/').to_string()
        };
        if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
            return Err(format!(
                "telegram.api_url {api_url:?} must start with https:// (or http:// for a local stand-in)"
            ));
        }
        Ok(Some(TelegramConfig {
            token: token.to_string(),
            api_url,
            chats: parse_chats(chats)?,
            poll_timeout: Duration::from_secs(30),
            typing_every: Duration::from_secs(4),
        }))
    }
}

/// Parses `id[:tenant]` entries (`TELEGRAM_ALLOWED_CHATS` is a comma-separated list of them).
pub fn parse_chats(entries: &[String]) -> Result<BTreeMap<i64, Option<String>>, String> {
    let mut chats = BTreeMap::new();
    for entry in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
        let (id, tenant) = match entry.split_once(':') {
            Some((id, t)) => (id.trim(), Some(t.trim().to_string())),
            None => (entry, None),
        };
        let id: i64 = id.parse().map_err(|_| {
            format!(
                "telegram.chats entry {entry:?}: the chat id must be an integer \
                 (negative for groups), e.g. \"123456789:atlas\" or \"-1001234567890\""
            )
        })?;
        if let Some(t) = &tenant {
            if t.is_empty() {
                return Err(format!(
                    "telegram.chats entry {entry:?}: empty tenant (drop the ':' for the platform)"
                ));
            }
        }
        if chats.insert(id, tenant).is_some() {
            return Err(format!(
                "telegram.chats names chat {id} twice; keep one entry"
            ));
        }
    }
    Ok(chats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn chats_with_and_without_tenants() {
        let c = parse_chats(&list(&["42:atlas", " -1001 ", ""])).unwrap();
        assert_eq!(c.get(&42), Some(&Some("atlas".into())));
        assert_eq!(c.get(&-1001), Some(&None));
        assert!(parse_chats(&list(&["x:atlas"]))
            .unwrap_err()
            .contains("integer"));
        assert!(parse_chats(&list(&["1", "1:a"]))
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn no_token_means_off_and_debug_hides_it() {
        assert!(TelegramConfig::from_keys("", "", &[]).unwrap().is_none());
        let c = TelegramConfig::from_keys("123:abc-DEF_9", "", &[])
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url, DEFAULT_API_URL);
        assert!(!format!("{c:?}").contains("abc-DEF"));
        assert!(TelegramConfig::from_keys("12/../x", "", &[]).is_err());
        assert!(TelegramConfig::from_keys("1:a", "ftp://x", &[]).is_err());
    }
}
