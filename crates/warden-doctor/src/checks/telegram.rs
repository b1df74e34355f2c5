//! `telegram.bot`: the Bot API answers `getMe` for the configured token, no webhook is set (it
//! would make getUpdates fail with 409), and the poller lock of the state directory is held by
//! the `warden serve` of that directory. Only run when a bot token is configured; the token is
//! never part of what is printed.

use std::time::Duration;

use crate::report::Check;
use crate::Ctx;

const NAME: &str = "telegram.bot";

/// The pid `warden serve` wrote into `<state_dir>/serve.json`, if it runs.
fn serve_pid(ctx: &Ctx) -> Option<i64> {
    let text = std::fs::read_to_string(ctx.opts.state_dir.join("serve.json")).ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_i64()
}

/// `getMe` and `getWebhookInfo`, on a small runtime of this check's own thread.
fn ask(cfg: &warden_telegram::TelegramConfig) -> Result<(String, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start a runtime: {e}"))?;
    rt.block_on(async {
        let api =
            warden_telegram::BotApi::new(&cfg.api_url, &cfg.token).map_err(|e| e.to_string())?;
        let me = tokio::time::timeout(Duration::from_secs(5), api.get_me())
            .await
            .map_err(|_| "getMe did not answer within 5 s".to_string())?
            .map_err(|e| format!("getMe: {e}"))?;
        let hook = tokio::time::timeout(Duration::from_secs(5), api.webhook_info())
            .await
            .map_err(|_| "getWebhookInfo did not answer within 5 s".to_string())?
            .map_err(|e| format!("getWebhookInfo: {e}"))?;
        Ok((
            me["username"].as_str().unwrap_or("?").to_string(),
            hook["url"].as_str().unwrap_or("").to_string(),
        ))
    })
}

/// The check.
pub fn bot(ctx: &Ctx) -> Vec<Check> {
    let Some(cfg) = &ctx.opts.telegram else {
        return Vec::new();
    };
    let expected = format!(
        "{} answers getMe, no webhook is set, and this host's warden serve holds the poller lock",
        cfg.api_url
    );
    let (name, webhook) = match ask(cfg) {
        Ok(v) => v,
        Err(why) => {
            let fix = if why.contains("401") || why.contains("404") {
                "set telegram.bot_token (TELEGRAM_BOT_TOKEN) to the token @BotFather gave the bot"
            } else {
                "check telegram.api_url (TELEGRAM_API_URL) and that this host reaches it"
            };
            return vec![Check::fail(NAME, expected, why, fix)];
        }
    };
    if !webhook.is_empty() {
        return vec![Check::fail(
            NAME,
            expected,
            format!(
                "bot @{name}: a webhook is set ({webhook}); getUpdates answers 409 while it is"
            ),
            format!(
                "{} serve (it calls deleteWebhook at start)",
                ctx.opts.warden
            ),
        )];
    }
    let holder = warden_telegram::holder(&ctx.opts.state_dir);
    let serve = serve_pid(ctx);
    match (holder, serve) {
        (Some(h), Some(s)) if i64::from(h) == s => vec![Check::ok(
            NAME,
            expected,
            format!("bot @{name}; no webhook; polled by warden serve (pid {h})"),
        )],
        (Some(h), _) => vec![Check::fail(
            NAME,
            expected,
            format!(
                "bot @{name}; no webhook; the poller lock is held by pid {h}, which is not this state directory's warden serve ({})",
                serve.map(|p| format!("pid {p}")).unwrap_or_else(|| "not running".into())
            ),
            format!("stop pid {h}, then {} serve", ctx.opts.warden),
        )],
        (None, _) => vec![Check::warn(
            NAME,
            expected,
            format!("bot @{name}; no webhook; nothing polls (warden serve is not running)"),
            format!("{} serve", ctx.opts.warden),
        )],
    }
}
