//! The channel: one long-polling receiver and one worker per chat.
//!
//! The receiver calls getUpdates from the stored offset, decides what each update asks for
//! ([`classify`]), and records the batch, the turns it starts and the next offset in one store
//! transaction. Each chat's worker takes that chat's recorded updates oldest first: it queues the
//! update's turn, keeps `typing` shown while it runs, fixes the reply (stored before the first
//! send), and sends it part by part, storing after every part how many were sent. After a crash,
//! the workers start from what the store says: a turn is waited for again (a turn the crash
//! interrupted is started once more), a reply resumes at the first part not recorded as sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{watch, Notify};
use warden_store::{Accepted, ChatAction, Store, TelegramUpdate, TurnStatus, UpdateState};

use crate::api::{BotApi, BotError};
use crate::config::TelegramConfig;
use crate::host::TurnHost;
use crate::split::{split, MAX_MESSAGE_UTF16};

/// Turns started for one update at most (a restart interrupting each of them, or the server
/// failing to set up a worker).
const MAX_ATTEMPTS: u32 = 4;
/// The longest wait between retries of a failing call.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `retry_after` honoured as given (longer asks are capped, then asked again).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The state key of the last error.
pub const LAST_ERROR_KEY: &str = "last_error";
/// The state key of the bot's username (from getMe).
pub const BOT_KEY: &str = "bot";

/// The help text (`/start`, `/help`).
const HELP: &str = "Write a message and Clawdie answers it.\n\
/ping - check that I am listening\n/chatid - this chat's id\n\
/cancel - stop the running answer\n/new - start a fresh conversation";

/// Why the channel stopped.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The token was refused or the Bot API cannot be used at all.
    #[error("the Telegram channel stopped: {0}")]
    Fatal(String),
}

struct Ctx<H> {
    api: BotApi,
    store: Arc<Store>,
    host: Arc<H>,
    cfg: TelegramConfig,
    stop: watch::Receiver<bool>,
    /// Chat workers by chat id: a wake-up for each.
    chats: Mutex<HashMap<i64, Arc<Notify>>>,
    /// The chat workers, joined when the channel stops (so a step under way is recorded).
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl<H: TurnHost> Ctx<H> {
    fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d`, or less if the channel stops; false if it stopped.
    async fn sleep(&self, d: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => !self.stopping(),
            _ = stop.wait_for(|s| *s) => false,
        }
    }

    fn last_error(&self, what: &str, e: &BotError) {
        tracing::warn!(error = %e, "telegram: {what}");
        let line = format!("{} {what}: {e}", warden_store::now_ms());
        if let Err(e) = self.store.set_telegram_state(LAST_ERROR_KEY, &line) {
            tracing::warn!(error = %e, "telegram: failed to store the last error");
        }
    }

    /// Wakes (starting if needed) the worker of `chat_id`.
    fn wake_chat(self: &Arc<Self>, chat_id: i64) {
        let mut chats = self.chats.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = chats.get(&chat_id) {
            n.notify_one();
            return;
        }
        let notify = Arc::new(Notify::new());
        chats.insert(chat_id, notify.clone());
        let ctx = self.clone();
        let handle = tokio::spawn(async move { chat_worker(ctx, chat_id, notify).await });
        self.workers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(handle);
    }
}

/// Runs the channel until `stop` becomes true. Fails only when the Bot API refuses the token.
pub async fn run<H: TurnHost>(
    cfg: TelegramConfig,
    store: Arc<Store>,
    host: Arc<H>,
    stop: watch::Receiver<bool>,
) -> Result<(), ChannelError> {
    let api =
        BotApi::new(&cfg.api_url, &cfg.token).map_err(|e| ChannelError::Fatal(e.to_string()))?;
    let ctx = Arc::new(Ctx {
        api,
        store,
        host,
        cfg,
        stop,
        chats: Mutex::new(HashMap::new()),
        workers: Mutex::new(Vec::new()),
    });
    if !start(&ctx).await? {
        return Ok(());
    }
    // Updates a previous run left unfinished.
    match ctx.store.telegram_pending() {
        Ok(pending) => {
            for u in pending {
                ctx.wake_chat(u.chat_id);
            }
        }
        Err(e) => tracing::error!(error = %e, "telegram: failed to read pending updates"),
    }
    let result = receive(&ctx).await;
    let workers = std::mem::take(&mut *ctx.workers.lock().unwrap_or_else(|p| p.into_inner()));
    for w in workers {
        let _ = w.await;
    }
    result
}

/// `deleteWebhook` (getUpdates refuses to run while one is set) and `getMe`, retried while
/// transient. Returns false if the channel was stopped meanwhile.
async fn start<H: TurnHost>(ctx: &Arc<Ctx<H>>) -> Result<bool, ChannelError> {
    let mut backoff = Duration::from_secs(1);
    loop {
        let r = match ctx.api.delete_webhook().await {
            Ok(_) => ctx.api.get_me().await,
            Err(e) => Err(e),
        };
        match r {
            Ok(me) => {
                let name = me["username"].as_str().unwrap_or("?").to_string();
                tracing::info!(bot = %name, "telegram: polling for updates");
                let _ = ctx.store.set_telegram_state(BOT_KEY, &name);
                return Ok(true);
            }
            Err(e) if !e.is_transient() => {
                ctx.last_error("the Bot API refused the bot", &e);
                return Err(ChannelError::Fatal(format!(
                    "{e} (check telegram.bot_token / TELEGRAM_BOT_TOKEN)"
                )));
            }
            Err(e) => {
                ctx.last_error("starting", &e);
                if !ctx.sleep(wait_for(&e, backoff)).await {
                    return Ok(false);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// How long to wait before retrying after `e`: Telegram's `retry_after`, else `backoff`.
fn wait_for(e: &BotError, backoff: Duration) -> Duration {
    match e.retry_after() {
        Some(s) => Duration::from_secs(s).min(MAX_RETRY_AFTER),
        None => backoff,
    }
}

/// The receiving loop: getUpdates, record, wake the chats.
async fn receive<H: TurnHost>(ctx: &Arc<Ctx<H>>) -> Result<(), ChannelError> {
    let mut backoff = Duration::from_millis(500);
    let mut stop = ctx.stop.clone();
    while !ctx.stopping() {
        let offset = match ctx.store.telegram_offset() {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, "telegram: failed to read the offset");
                if !ctx.sleep(MAX_BACKOFF).await {
                    break;
                }
                continue;
            }
        };
        let updates = tokio::select! {
            r = ctx.api.get_updates(offset, ctx.cfg.poll_timeout) => r,
            _ = stop.wait_for(|s| *s) => break,
        };
        let updates = match updates {
            Ok(u) => {
                backoff = Duration::from_millis(500);
                u
            }
            Err(e) if e.is_transient() => {
                ctx.last_error("getUpdates failed", &e);
                if !ctx.sleep(wait_for(&e, backoff)).await {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(e) => {
                ctx.last_error("getUpdates was refused", &e);
                return Err(ChannelError::Fatal(e.to_string()));
            }
        };
        if updates.is_empty() {
            continue;
        }
        if let Err(e) = accept(ctx, offset, &updates) {
            // Nothing was recorded and the offset did not move: Telegram sends them again.
            tracing::error!(error = %e, "telegram: failed to record updates");
            if !ctx.sleep(backoff).await {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    Ok(())
}

/// Records one getUpdates answer in one transaction, then acts on it.
fn accept<H: TurnHost>(
    ctx: &Arc<Ctx<H>>,
    offset: i64,
    updates: &[Value],
) -> Result<(), warden_store::StoreError> {
    let mut next = offset;
    let mut batch = Vec::new();
    let mut cancels = Vec::new();
    for u in updates {
        let Some(id) = u["update_id"].as_i64() else {
            continue;
        };
        next = next.max(id + 1);
        if id < offset {
            continue;
        }
        if let Some((accepted, cancel)) = classify(ctx, id, u)? {
            batch.push(accepted);
            cancels.extend(cancel);
        }
    }
    let recorded = ctx.store.telegram_accept(next, &batch)?;
    for turn in cancels {
        ctx.host.cancel(&turn);
    }
    for r in recorded {
        tracing::info!(update = r.update_id, chat = r.chat_id, action = %r.action, "telegram: update accepted");
        ctx.wake_chat(r.chat_id);
    }
    Ok(())
}

/// What an update asks for, and the turn a `/cancel` stops. `None`: nothing to answer (not a
/// message).
fn classify<H: TurnHost>(
    ctx: &Ctx<H>,
    update_id: i64,
    u: &Value,
) -> Result<Option<(Accepted, Option<warden_store::TurnId>)>, warden_store::StoreError> {
    let msg = &u["message"];
    let Some(chat_id) = msg["chat"]["id"].as_i64() else {
        return Ok(None);
    };
    let message_id = msg["message_id"].as_i64();
    let reply = |text: String| ChatAction::Reply(text);
    let mut cancel = None;
    let action = match (ctx.cfg.chats.get(&chat_id), msg["text"].as_str()) {
        (None, _) => reply(format!(
            "Sorry, this chat (id {chat_id}) is not allowed to talk to me."
        )),
        (Some(_), None) => reply("I can only read text messages.".into()),
        (Some(tenant), Some(text)) => {
            let tenant = tenant.clone().unwrap_or_else(|| ctx.host.platform_tenant());
            match command(text) {
                Some("ping") => reply("pong".into()),
                Some("chatid") => reply(format!("This chat's id is {chat_id}.")),
                Some("start" | "help") => reply(HELP.into()),
                Some("new") => ChatAction::Reset { tenant },
                Some("cancel") => {
                    let running = ctx
                        .store
                        .telegram_next_pending(chat_id)?
                        .filter(|p| p.action == "turn" && p.state == UpdateState::Accepted)
                        .and_then(|p| p.turn_id);
                    let text = if running.is_some() {
                        "Cancelling the running answer."
                    } else {
                        "Nothing is running in this chat."
                    };
                    cancel = running;
                    reply(text.into())
                }
                Some(other) => reply(format!("Unknown command /{other}.\n{HELP}")),
                None => match ctx.host.agent_turn(&tenant, text) {
                    Ok(new) => ChatAction::Turn(new),
                    Err(why) => reply(format!("Sorry, I cannot take this message: {why}")),
                },
            }
        }
    };
    Ok(Some((
        Accepted {
            update_id,
            chat_id,
            message_id,
            action,
        },
        cancel,
    )))
}

/// The command of a message (`/ping`, `/ping@my_bot` → `ping`), if it is one.
fn command(text: &str) -> Option<&str> {
    let word = text.trim().strip_prefix('/')?.split_whitespace().next()?;
    let name = word.split('@').next().unwrap_or(word);
    (!name.is_empty()).then_some(name)
}

/// Works through one chat's updates, oldest first.
async fn chat_worker<H: TurnHost>(ctx: Arc<Ctx<H>>, chat_id: i64, wake: Arc<Notify>) {
    let mut stop = ctx.stop.clone();
    while !ctx.stopping() {
        let next = match ctx.store.telegram_next_pending(chat_id) {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(chat = chat_id, error = %e, "telegram: failed to read the chat's updates");
                if !ctx.sleep(MAX_BACKOFF).await {
                    return;
                }
                continue;
            }
        };
        let Some(update) = next else {
            tokio::select! {
                _ = wake.notified() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            continue;
        };
        if !process(&ctx, update).await {
            return;
        }
    }
}

/// Moves one update a step on; false if the channel is stopping.
async fn process<H: TurnHost>(ctx: &Arc<Ctx<H>>, u: TelegramUpdate) -> bool {
    let store_failed = |e: warden_store::StoreError| {
        tracing::error!(update = u.update_id, error = %e, "telegram: failed to record progress");
    };
    match u.state {
        UpdateState::Accepted => {
            let reply = match u.action.as_str() {
                "turn" => match run_turn(ctx, &u).await {
                    Some(r) => r,
                    None => return false,
                },
                "reset" => {
                    let tenant = u.tenant.clone().unwrap_or_default();
                    match ctx.host.reset_session(&tenant) {
                        Ok(()) => "Started a new conversation.".to_string(),
                        Err(why) => {
                            tracing::warn!(%tenant, %why, "telegram: session reset failed");
                            "Sorry, I could not start a new conversation; please try again."
                                .to_string()
                        }
                    }
                }
                _ => u.reply.clone().unwrap_or_default(),
            };
            if let Err(e) = ctx.store.telegram_set_reply(u.update_id, &reply) {
                store_failed(e);
                return ctx.sleep(MAX_BACKOFF).await;
            }
            true
        }
        UpdateState::Replying => deliver(ctx, &u).await,
        UpdateState::Done => true,
    }
}

/// Waits for the update's turn (starting another when a restart interrupted it) and returns the
/// reply to send; `None` if the channel is stopping.
async fn run_turn<H: TurnHost>(ctx: &Arc<Ctx<H>>, u: &TelegramUpdate) -> Option<String> {
    let tenant = u.tenant.clone().unwrap_or_default();
    let mut u = u.clone();
    loop {
        let Some(turn_id) = u.turn_id.clone() else {
            return Some("Sorry, something went wrong before I could start.".into());
        };
        ctx.host.enqueue(&tenant, &turn_id);
        let typing = spawn_typing(ctx, u.chat_id);
        let outcome = ctx.host.wait(&turn_id).await;
        typing.abort();
        let turn = match outcome {
            Some(t) if t.status.is_terminal() => t,
            // Not final: the server is shutting down with the turn still queued.
            _ => return None,
        };
        let failure = turn.failure.as_deref().unwrap_or("");
        let interrupted = failure == warden_store::turns::INTERRUPTED || failure == "shutdown";
        // "infrastructure": the server could not set up the worker (e.g. the worker of a killed
        // server still holds its name for a moment); the agent did not answer, so try again soon.
        let infrastructure = failure == "infrastructure";
        let restart = turn.status != TurnStatus::Succeeded && (interrupted || infrastructure);
        if restart && ctx.stopping() {
            return None;
        }
        if restart && u.attempts < MAX_ATTEMPTS {
            if infrastructure && !ctx.sleep(Duration::from_secs(u64::from(u.attempts))).await {
                return None;
            }
            let prompt = u.prompt.clone().unwrap_or_default();
            let new = match ctx.host.agent_turn(&tenant, &prompt) {
                Ok(n) => n,
                Err(why) => return Some(format!("Sorry, I cannot take this message: {why}")),
            };
            match ctx.store.telegram_retry_turn(u.update_id, &new) {
                Ok(next) => {
                    tracing::info!(
                        update = u.update_id,
                        attempt = next.attempts,
                        "telegram: the turn was interrupted; running it again"
                    );
                    u = next;
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "telegram: failed to record a new turn");
                    return Some(reply_of(&turn));
                }
            }
        }
        return Some(reply_of(&turn));
    }
}

/// Shows `typing` in the chat every few seconds until aborted.
fn spawn_typing<H: TurnHost>(ctx: &Arc<Ctx<H>>, chat_id: i64) -> tokio::task::JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        loop {
            let wait = match ctx.api.send_chat_action(chat_id, "typing").await {
                Ok(_) => ctx.cfg.typing_every,
                // Typing is cosmetic: a failure only delays the next one.
                Err(e) => wait_for(&e, ctx.cfg.typing_every),
            };
            if !ctx.sleep(wait).await {
                return;
            }
        }
    })
}

/// The text a chat gets for a finished turn: the agent's reply, or a short reason (never
/// stderr, a path or a key).
pub fn reply_of(turn: &warden_store::Turn) -> String {
    let reply = turn.reply.as_deref().unwrap_or("").trim();
    match turn.status {
        TurnStatus::Succeeded if !reply.is_empty() => reply.to_string(),
        TurnStatus::Succeeded => {
            "I have no answer to that (the model replied with nothing).".into()
        }
        TurnStatus::Cancelled => "Cancelled.".into(),
        _ => {
            let why = match turn.failure.as_deref().unwrap_or("") {
                "timeout" => "it took longer than the time limit",
                "empty_reply" => "the model replied with nothing",
                "provider_error" | "aborted" | "incomplete" | "no_output" | "bad_json" => {
                    "the model could not be reached or failed"
                }
                "memory_limit" | "pids_limit" | "output_limit" => "it hit a resource limit",
                f if f == warden_store::turns::INTERRUPTED || f == "shutdown" => {
                    "Warden restarted while working on it"
                }
                _ => "something went wrong while running it",
            };
            format!(
                "Sorry, I could not answer: {why}. Please try again. (turn {})",
                turn.id
            )
        }
    }
}

/// Sends the rest of the update's reply; false if the channel is stopping.
async fn deliver<H: TurnHost>(ctx: &Arc<Ctx<H>>, u: &TelegramUpdate) -> bool {
    let text = u.reply.as_deref().unwrap_or("");
    let mut parts = split(text, MAX_MESSAGE_UTF16);
    if parts.is_empty() {
        parts.push("(empty reply)".into());
    }
    let mut chat_id = u.chat_id;
    for (i, part) in parts.iter().enumerate().skip(u.parts_sent as usize) {
        match send(ctx, &mut chat_id, part, u.message_id).await {
            Sent::Yes => {
                if let Err(e) = ctx.store.telegram_parts_sent(u.update_id, i as u32 + 1) {
                    // Not recorded: after a restart this part would go out again. Stop here and
                    // retry the record rather than sending more.
                    tracing::error!(error = %e, "telegram: failed to record a sent part");
                    return ctx.sleep(MAX_BACKOFF).await;
                }
            }
            Sent::Never(why) => {
                if let Err(e) = ctx.store.telegram_done(u.update_id, Some(&why)) {
                    tracing::error!(error = %e, "telegram: failed to record a failed reply");
                }
                return true;
            }
            Sent::Stopped => return false,
        }
    }
    if let Err(e) = ctx.store.telegram_done(u.update_id, None) {
        tracing::error!(error = %e, "telegram: failed to record a sent reply");
        return ctx.sleep(MAX_BACKOFF).await;
    }
    true
}

enum Sent {
    Yes,
    /// Refused for good (400, 403): the reason.
    Never(String),
    Stopped,
}

/// Sends one message: 429 waits `retry_after`, 5xx and network errors back off and retry, a
/// group that became a supergroup is followed once, anything else is given up at once.
async fn send<H: TurnHost>(
    ctx: &Arc<Ctx<H>>,
    chat_id: &mut i64,
    text: &str,
    reply_to: Option<i64>,
) -> Sent {
    let mut backoff = Duration::from_millis(500);
    let mut migrated = false;
    loop {
        if ctx.stopping() {
            return Sent::Stopped;
        }
        match ctx.api.send_message(*chat_id, text, reply_to).await {
            Ok(_) => return Sent::Yes,
            Err(BotError::Api {
                migrate_to: Some(to),
                ..
            }) if !migrated => {
                migrated = true;
                *chat_id = to;
            }
            Err(e) if e.is_transient() => {
                ctx.last_error("sendMessage failed", &e);
                if !ctx.sleep(wait_for(&e, backoff)).await {
                    return Sent::Stopped;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                ctx.last_error("sendMessage was refused", &e);
                return Sent::Never(e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::command;

    #[test]
    fn commands_are_recognised_with_or_without_the_bot_name() {
        assert_eq!(command("/ping"), Some("ping"));
        assert_eq!(command(" /ping@clawdie_bot now"), Some("ping"));
        assert_eq!(command("hello /ping"), None);
        assert_eq!(command("/"), None);
    }
}
