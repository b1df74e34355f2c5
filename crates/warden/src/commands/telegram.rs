//! `warden telegram status`, and the channel's settings from the `telegram.*` keys (for `serve`
//! and `doctor`).

use crate::cli::{Global, TelegramCommand};
use crate::context;
use crate::exit::Exit;

/// The channel's settings; `None` when no bot token is set.
pub fn config(
    loaded: &warden_core::Loaded,
) -> Result<Option<warden_telegram::TelegramConfig>, Exit> {
    let c = &loaded.config;
    warden_telegram::TelegramConfig::from_keys(
        &c.telegram_bot_token,
        &c.telegram_api_url,
        &c.telegram_chats,
    )
    .map_err(Exit::usage)
}

/// Prints the channel's state from the store of the state directory (read while serve runs).
pub fn run(global: &Global, cmd: &TelegramCommand) -> Result<(), Exit> {
    let TelegramCommand::Status { json } = cmd;
    let (loaded, layout) = context::layout(global)?;
    let cfg = config(&loaded)?;
    let state_dir = context::state_dir(&layout, context::default_backend());
    let db = state_dir.join("control.db");
    let store = if db.exists() {
        Some(
            warden_store::Store::open(&db)
                .map_err(|e| Exit::failure(format!("failed to read {}: {e}", db.display())))?,
        )
    } else {
        None
    };
    let read = |key: &str| {
        store
            .as_ref()
            .and_then(|s| s.telegram_state(key).ok().flatten())
    };
    let offset = store.as_ref().and_then(|s| s.telegram_offset().ok());
    let counts: Vec<(String, u64)> = store
        .as_ref()
        .and_then(|s| s.telegram_counts().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(state, n)| (state.to_string(), n))
        .collect();
    let chats: Vec<(i64, String)> = cfg
        .as_ref()
        .map(|c| {
            c.chats
                .iter()
                .map(|(id, t)| (*id, t.clone().unwrap_or_else(|| layout.namespace.clone())))
                .collect()
        })
        .unwrap_or_default();
    let poller = warden_telegram::holder(&state_dir);
    let last_error = read(warden_telegram::channel::LAST_ERROR_KEY);
    let bot = read(warden_telegram::channel::BOT_KEY);
    if *json {
        let out = serde_json::json!({
            "enabled": cfg.is_some(),
            "api_url": cfg.as_ref().map(|c| c.api_url.clone()),
            "bot": bot,
            "offset": offset,
            "chats": chats.iter().map(|(id, t)| serde_json::json!({"chat_id": id, "tenant": t})).collect::<Vec<_>>(),
            "updates": counts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "poller_pid": poller,
            "last_error": last_error,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(());
    }
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    match &cfg {
        Some(c) => println!("channel:    on ({}; token set, not shown)", c.api_url),
        None => println!("channel:    off (telegram.bot_token / TELEGRAM_BOT_TOKEN is empty)"),
    }
    println!("bot:        {}", show(bot.map(|b| format!("@{b}"))));
    println!(
        "poller:     {}",
        poller
            .map(|p| format!("pid {p}"))
            .unwrap_or_else(|| "none (warden serve is not polling)".into())
    );
    println!("offset:     {}", show(offset.map(|o| o.to_string())));
    let chat_list: Vec<String> = chats.iter().map(|(id, t)| format!("{id} → {t}")).collect();
    println!(
        "chats:      {}",
        if chat_list.is_empty() {
            "none allowed (telegram.chats / TELEGRAM_ALLOWED_CHATS)".into()
        } else {
            chat_list.join(", ")
        }
    );
    let count_list: Vec<String> = counts.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "updates:    {}",
        if count_list.is_empty() {
            "none".into()
        } else {
            count_list.join(", ")
        }
    );
    println!("last error: {}", show(last_error));
    Ok(())
}
