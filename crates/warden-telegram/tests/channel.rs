//! The channel against the Bot API stand-in (fakebot) and a small in-test control plane whose
//! turns answer at once from their prompt: commands, refusals, split replies, typing, faults
//! (429, 5xx, dropped connections, a 400 that is not retried), /cancel, /new, a webhook left set.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fakebot::{FakeBot, Fault, FaultKind, SentMessage};
use tokio::sync::watch;
use warden_store::{NewTurn, Store, Turn, TurnId, TurnKind, TurnOutcome, TurnStatus};
use warden_telegram::{TelegramConfig, TurnHost};

const TOKEN: &str = "123456:test-token";

/// Turns that answer from their prompt: `long N` → N lines; `hold` → runs until cancelled;
/// anything else → `echo: <prompt>`.
struct EchoHost {
    store: Arc<Store>,
    started: Mutex<HashSet<TurnId>>,
    resets: Mutex<Vec<String>>,
    cancelled: Mutex<HashSet<TurnId>>,
}

impl EchoHost {
    fn finish(store: &Store, id: &TurnId, status: TurnStatus, reply: &str) {
        let outcome = TurnOutcome {
            status: Some(status),
            reply: Some(reply.to_string()),
            failure: (status == TurnStatus::Cancelled).then(|| "cancelled".to_string()),
            ..TurnOutcome::default()
        };
        let _ = store.finish_turn(id, &outcome);
    }
}

impl TurnHost for EchoHost {
    fn platform_tenant(&self) -> String {
        "system".into()
    }

    fn agent_turn(&self, tenant: &str, prompt: &str) -> Result<NewTurn, String> {
        Ok(NewTurn {
            tenant: tenant.into(),
            kind: TurnKind::Agent,
            request: serde_json::json!({"tenant": tenant, "work": {"prompt": prompt}}),
        })
    }

    fn enqueue(&self, _tenant: &str, id: &TurnId) {
        if !self.started.lock().unwrap().insert(id.clone()) {
            return;
        }
        let turn = self.store.get_turn(id).unwrap().unwrap();
        let prompt = turn.request["work"]["prompt"].as_str().unwrap().to_string();
        if prompt == "hold" {
            return;
        }
        let reply = match prompt.strip_prefix("long ") {
            Some(n) => (0..n.parse::<usize>().unwrap())
                .map(|i| format!("line {i:05} {}", "x".repeat(90)))
                .collect::<Vec<_>>()
                .join("\n"),
            None => format!("echo: {prompt}"),
        };
        Self::finish(&self.store, id, TurnStatus::Succeeded, &reply);
    }

    async fn wait(&self, id: &TurnId) -> Option<Turn> {
        loop {
            let t = self.store.get_turn(id).unwrap()?;
            if t.status.is_terminal() {
                return Some(t);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn cancel(&self, id: &TurnId) -> bool {
        self.cancelled.lock().unwrap().insert(id.clone());
        Self::finish(&self.store, id, TurnStatus::Cancelled, "");
        true
    }

    fn reset_session(&self, tenant: &str) -> Result<(), String> {
        self.resets.lock().unwrap().push(tenant.to_string());
        Ok(())
    }
}

struct Rig {
    bot: FakeBot,
    host: Arc<EchoHost>,
    store: Arc<Store>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), warden_telegram::ChannelError>>,
    _dir: tempfile::TempDir,
}

fn rig(chats: &[&str], before: impl FnOnce(&FakeBot)) -> Rig {
    let bot = FakeBot::start("127.0.0.1:0", TOKEN).unwrap();
    before(&bot);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("control.db")).unwrap());
    let host = Arc::new(EchoHost {
        store: store.clone(),
        started: Mutex::default(),
        resets: Mutex::default(),
        cancelled: Mutex::default(),
    });
    let chats: Vec<String> = chats.iter().map(|c| c.to_string()).collect();
    let mut cfg = TelegramConfig::from_keys(TOKEN, &bot.api_url(), &chats)
        .unwrap()
        .unwrap();
    cfg.poll_timeout = Duration::from_secs(2);
    cfg.typing_every = Duration::from_millis(200);
    let stop = watch::channel(false).0;
    let task = tokio::spawn(warden_telegram::run(
        cfg,
        store.clone(),
        host.clone(),
        stop.subscribe(),
    ));
    Rig {
        bot,
        host,
        store,
        stop,
        task,
        _dir: dir,
    }
}

impl Rig {
    /// Waits (on the stand-in's record, not a fixed sleep) until `n` messages went to `chat`.
    async fn sent_to(&self, chat: i64, n: usize) -> Vec<SentMessage> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let sent: Vec<_> = self
                .bot
                .sent()
                .into_iter()
                .filter(|m| m.chat_id == chat)
                .collect();
            if sent.len() >= n || Instant::now() > deadline {
                return sent;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (20 s at most) until every update is answered and the offset is past `update`: a reply
    /// reaches the bot before the channel records it as done, so the store lags the bot a little.
    async fn settled_past(&self, update: i64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let pending = self.store.telegram_pending().unwrap();
            let offset = self.store.telegram_offset().unwrap();
            if pending.is_empty() && offset > update {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        let r = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the channel stops promptly");
        r.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_commands_refusals_and_split_replies() {
    let r = rig(&["42:acme", "-100"], |bot| {
        bot.set_webhook("https://old.example/hook")
    });
    let m1 = r.bot.user_message(42, "hello there");
    r.bot.user_message(42, "/ping");
    r.bot.user_message(42, "/chatid@clawdie_fake_bot");
    r.bot.user_message(42, "long 120");
    r.bot.user_message(7, "let me in");
    r.bot.user_message(-100, "group hello");

    let sent = r.sent_to(42, 6).await;
    let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts[0], "echo: hello there", "{texts:#?}");
    assert_eq!(
        sent[0].reply_to,
        Some(1),
        "replies answer the user's message ({m1})"
    );
    assert_eq!(texts[1], "pong");
    assert_eq!(texts[2], "This chat's id is 42.");
    // 120 lines of 101 characters: 12,119 characters in 3 messages of whole lines.
    let long: Vec<&str> = texts[3..].to_vec();
    assert_eq!(long.len(), 3, "{long:?}");
    for part in &long {
        assert!(part.encode_utf16().count() <= 4096);
        assert!(part.lines().all(|l| l.len() == 101), "whole lines only");
    }
    assert_eq!(long.join("\n").lines().count(), 120);

    let refused = r.sent_to(7, 1).await;
    assert_eq!(refused.len(), 1);
    assert!(refused[0].text.contains("(id 7)"), "{:?}", refused[0].text);
    let group = r.sent_to(-100, 1).await;
    assert_eq!(group[0].text, "echo: group hello");
    // The group has no tenant: its turn belongs to the platform.
    let turns = r
        .store
        .list_turns(&warden_store::TurnFilter::default(), 10)
        .unwrap();
    assert!(turns.iter().any(|t| t.tenant == "system"));
    assert!(turns
        .iter()
        .all(|t| t.tenant == "system" || t.tenant == "acme"));
    assert_eq!(turns.len(), 3, "the refused chat ran nothing");

    let calls = r.bot.calls();
    assert!(calls.iter().any(|c| c.method == "deleteWebhook"));
    assert!(
        calls.iter().all(|c| c.status != 409),
        "the webhook was deleted before polling"
    );
    // Everything is done and the offset is past the last update.
    r.settled_past(m1 + 5).await;
    assert!(r.store.telegram_pending().unwrap().is_empty());
    assert!(r.store.telegram_offset().unwrap() > m1 + 5);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn faults_are_retried_or_given_up_as_telegram_means_them() {
    let r = rig(&["5"], |bot| {
        bot.fault(Fault {
            method: "getUpdates".into(),
            kind: FaultKind::Drop,
            count: 1,
        });
        bot.fault(Fault {
            method: "getUpdates".into(),
            kind: FaultKind::Status {
                status: 502,
                retry_after: None,
            },
            count: 1,
        });
        bot.fault(Fault {
            method: "sendMessage".into(),
            kind: FaultKind::Status {
                status: 429,
                retry_after: Some(1),
            },
            count: 1,
        });
        bot.fault(Fault {
            method: "sendMessage".into(),
            kind: FaultKind::Status {
                status: 500,
                retry_after: None,
            },
            count: 2,
        });
    });
    r.bot.user_message(5, "one");
    let sent = r.sent_to(5, 1).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].text, "echo: one");
    let calls = r.bot.calls();
    let sends: Vec<_> = calls.iter().filter(|c| c.method == "sendMessage").collect();
    assert_eq!(
        sends.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![429, 500, 500, 200]
    );
    assert!(
        sends[1].at_ms - sends[0].at_ms >= 1000,
        "retry_after 1 s was honoured"
    );
    assert!(r
        .store
        .telegram_state("last_error")
        .unwrap()
        .unwrap()
        .contains("500"));

    // A 400 is not retried: that update is done with the error, and the next one is answered.
    r.bot.fault(Fault {
        method: "sendMessage".into(),
        kind: FaultKind::Status {
            status: 400,
            retry_after: None,
        },
        count: 1,
    });
    r.bot.user_message(5, "two");
    r.bot.user_message(5, "three");
    let sent = r.sent_to(5, 2).await;
    assert_eq!(sent[1].text, "echo: three");
    let refused: Vec<_> = r
        .bot
        .calls()
        .into_iter()
        .filter(|c| c.method == "sendMessage" && c.status == 400)
        .collect();
    assert_eq!(refused.len(), 1);
    let failed = r.store.telegram_recent(10).unwrap();
    let two = failed
        .iter()
        .find(|u| u.prompt.as_deref() == Some("two"))
        .unwrap();
    assert!(two.error.as_deref().unwrap().contains("400"), "{two:?}");
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_the_running_turn_and_new_resets_the_session() {
    let r = rig(&["9:acme"], |_| {});
    r.bot.user_message(9, "hold");
    // Wait until the held turn runs: `typing` is shown while it does.
    let t0 = Instant::now();
    while !r.bot.calls().iter().any(|c| c.method == "sendChatAction") {
        assert!(t0.elapsed() < Duration::from_secs(20));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    r.bot.user_message(9, "/cancel");
    r.bot.user_message(9, "/new");
    r.bot.user_message(9, "after");
    let sent = r.sent_to(9, 4).await;
    let texts: Vec<&str> = sent.iter().map(|m| m.text.as_str()).collect();
    assert!(texts.contains(&"Cancelled."), "{texts:?}");
    assert!(
        texts.contains(&"Cancelling the running answer."),
        "{texts:?}"
    );
    assert!(texts.contains(&"Started a new conversation."), "{texts:?}");
    assert_eq!(texts.last(), Some(&"echo: after"));
    assert_eq!(r.host.cancelled.lock().unwrap().len(), 1);
    assert_eq!(*r.host.resets.lock().unwrap(), vec!["acme".to_string()]);
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_token_stops_the_channel_with_a_clear_error() {
    let bot = FakeBot::start("127.0.0.1:0", "999:other").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("control.db")).unwrap());
    let host = Arc::new(EchoHost {
        store: store.clone(),
        started: Mutex::default(),
        resets: Mutex::default(),
        cancelled: Mutex::default(),
    });
    let cfg = TelegramConfig::from_keys(TOKEN, &bot.api_url(), &[])
        .unwrap()
        .unwrap();
    let stop = watch::channel(false).0;
    let err = warden_telegram::run(cfg, store.clone(), host, stop.subscribe())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("401") && err.contains("TELEGRAM_BOT_TOKEN"),
        "{err}"
    );
    assert!(
        !err.contains("test-token"),
        "the token is never printed: {err}"
    );
    let last = store.telegram_state("last_error").unwrap().unwrap();
    assert!(!last.contains("test-token"), "{last}");
}
