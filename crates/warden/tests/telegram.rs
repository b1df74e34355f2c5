//! The Telegram channel end to end through the real `warden serve`: the Bot API stand-in
//! (fakebot) on the loopback of a network namespace this test creates, `warden serve` in that
//! namespace (entered with `nsenter --net`) with `TELEGRAM_API_URL` pointing at the stand-in,
//! real pi in VNET workers reaching the mock OpenAI provider in a second namespace through the
//! NAT. Then `kill -9` of serve at pseudo-random moments (a fixed seed), restarted each time:
//! every message gets its reply, none twice beyond the documented sent→recorded window.

#![cfg(target_os = "linux")]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::server::{add_provider, in_netns, Provider, PROVIDER_ADDR};
use common::{state_with_pi, warden_bin, Serve};

use fakebot::{FakeBot, SentMessage};
use serde_json::Value;
use warden_agent::mock::{Reply, Script};
use warden_testkit::TestNet;

const TOKEN: &str = "4242:end-to-end-SECRET";
/// The two namespaces, the stand-in and the provider.
struct World {
    // Dropped in this order: the namespaces go last.
    provider: Provider,
    bot: FakeBot,
    net: TestNet,
}

fn world(script: Script) -> World {
    let mut net = TestNet::new("wtest-tg");
    let prov = add_provider(&mut net);
    let provider = Provider::start(
        PathBuf::from("/run/netns").join(prov),
        PROVIDER_ADDR,
        script,
    );
    let bot = in_netns(net.path(), || FakeBot::start("127.0.0.1:0", TOKEN).unwrap());
    World { net, bot, provider }
}

/// `warden serve` in the test namespace, polling the stand-in, its agent turns going to the mock provider.
fn start_serve(w: &World, state: &Path, chats: &str) -> Serve {
    let mut cmd = common::serve_command(Some(&w.net.path()), state, &[]);
    cmd.env("TELEGRAM_BOT_TOKEN", TOKEN)
        .env("TELEGRAM_API_URL", w.bot.api_url())
        .env("TELEGRAM_ALLOWED_CHATS", chats)
        .env("WARDEN_AGENT_BASE_URL", w.provider.base_url())
        .env("WARDEN_AGENT_MODEL", "mock-model")
        .env("WARDEN_POOL_SIZE", "0");
    Serve::spawn(cmd, state)
}

fn log_text(state: &Path) -> String {
    std::fs::read_to_string(state.join("serve.log")).unwrap_or_default()
}

fn warden(ns: Option<&TestNet>, state: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = match ns {
        Some(net) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net={}", net.path().display()))
                .arg("--")
                .arg(warden_bin());
            c
        }
        None => Command::new(warden_bin()),
    };
    cmd.args(["--state-dir", state.to_str().unwrap()])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    common::output_within(&mut cmd, common::WARDEN_LIMIT)
}

/// Waits until `pred` holds for what the bot sent (read from the stand-in's record).
fn wait_sent(
    bot: &FakeBot,
    within: Duration,
    pred: impl Fn(&[SentMessage]) -> bool,
) -> Vec<SentMessage> {
    bot.wait_sent(within, pred)
}

fn to(chat: i64, sent: &[SentMessage]) -> Vec<SentMessage> {
    sent.iter().filter(|m| m.chat_id == chat).cloned().collect()
}

#[test]
fn telegram_chat_gets_the_agents_reply() {
    let _lock = warden_testkit::root_test("telegram_chat_gets_the_agents_reply");
    // No spaces: the mock streams one delta per word, and pi's JSON events repeat the whole
    // message so far, so many words would make the event stream quadratic (the output cap).
    let long: String = (0..120)
        .map(|i| format!("Line-{i:03}-of-a-long-answer-{}", "é😀x".repeat(20)))
        .collect::<Vec<_>>()
        .join("\n");
    let script = Script::new(vec![
        // Turn 1 runs a tool first: its output (the worker's environment) goes back to the
        // provider, which shows whether the bot token reached the worker.
        Reply::ToolCall {
            name: "bash".into(),
            arguments: serde_json::json!({"command": "env; cat /proc/1/environ | tr '\\0' '\\n'"}),
        },
        Reply::Text {
            text: "Hello from the model.".into(),
        },
        Reply::Text { text: long.clone() },
    ]);
    let w = world(script);
    let state = state_with_pi();
    let serve = start_serve(&w, state.path(), "42:acme");

    let hi = w.bot.user_message(42, "hi there");
    let sent = wait_sent(&w.bot, Duration::from_secs(120), |s| !to(42, s).is_empty());
    let mine = to(42, &sent);
    assert_eq!(mine.len(), 1, "{sent:#?}\n{}", log_text(state.path()));
    assert_eq!(
        mine[0].text,
        "Hello from the model.",
        "{}",
        log_text(state.path())
    );
    assert!(
        mine[0].reply_to.is_some(),
        "replies quote the user's message ({hi})"
    );
    assert!(
        w.bot.calls().iter().any(|c| c.method == "sendChatAction"),
        "typing was shown while the turn ran"
    );
    let bodies: Vec<String> = w
        .provider
        .completion_requests()
        .iter()
        .map(|r| r.body.to_string())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("HOME=/var/pi")),
        "the tool's output (the worker's environment) reached the provider: {bodies:?}"
    );
    assert!(
        bodies.iter().all(|b| !b.contains("SECRET")),
        "the bot token never enters a worker"
    );

    w.bot.user_message(42, "/ping");
    w.bot.user_message(42, "please write a long answer");
    w.bot.user_message(7, "let me in");
    let sent = wait_sent(&w.bot, Duration::from_secs(120), |s| {
        to(42, s).iter().any(|m| m.text.contains("Line-119")) && !to(7, s).is_empty()
    });
    let mine = to(42, &sent);
    assert_eq!(mine[1].text, "pong");
    let parts: Vec<&str> = mine[2..].iter().map(|m| m.text.as_str()).collect();
    assert!(
        parts.len() >= 3,
        "{} chars arrive split: {parts:?}",
        long.len()
    );
    for p in &parts {
        assert!(p.encode_utf16().count() <= 4096);
    }
    assert!(
        parts.join("\n") == long,
        "split at line boundaries, nothing lost: {} parts, {} of {} chars",
        parts.len(),
        parts.join("\n").chars().count(),
        long.chars().count()
    );
    let refused = to(7, &sent);
    assert_eq!(refused.len(), 1);
    assert!(refused[0].text.contains("(id 7)"), "{}", refused[0].text);

    // Status: offset, chats, who polls; never the token. (The last reply is recorded as done
    // just after the stand-in has it.)
    let t0 = Instant::now();
    let (out, status) = loop {
        let out = warden(
            None,
            state.path(),
            &["telegram", "status", "--json"],
            &[
                ("TELEGRAM_BOT_TOKEN", TOKEN),
                ("TELEGRAM_ALLOWED_CHATS", "42:acme"),
            ],
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if v["updates"]["done"] == 4 || t0.elapsed() > Duration::from_secs(30) {
            break (out, v);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["updates"]["done"], 4, "{status}");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("SECRET"), "{text}");
    assert_eq!(status["poller_pid"], serve.child.id() as i64, "{status}");
    assert!(status["offset"].as_i64().unwrap() > 0);
    assert_eq!(status["chats"][0]["tenant"], "acme");

    // The doctor sees the bot, no webhook, and this serve holding the lock.
    let api = w.bot.api_url();
    let env = [
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("TELEGRAM_API_URL", api.as_str()),
    ];
    let out = warden(Some(&w.net), state.path(), &["doctor", "--json"], &env);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "telegram.bot")
        .cloned()
        .unwrap_or_default();
    assert_eq!(check["status"], "ok", "{check:#}");
    assert!(!out.stdout.windows(6).any(|w| w == b"SECRET"));

    // A second serve on the same state directory stops with a clear error instead of polling.
    let out = warden(
        Some(&w.net),
        state.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already polling Telegram"), "{err}");
    assert!(!err.contains("SECRET"));
    assert!(
        !log_text(state.path()).contains("SECRET"),
        "the token is never logged"
    );
}

/// A tiny deterministic generator (xorshift64*): the kill moments differ per round, not per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % below
    }
}

#[test]
fn kill9_loses_no_update_and_answers_none_twice() {
    let _lock = warden_testkit::root_test("kill9_loses_no_update_and_answers_none_twice");
    const REPLY: &str = "ok from the model";
    let w = world(Script::new(vec![Reply::Text { text: REPLY.into() }]));
    let state = state_with_pi();
    let chats = "42:acme,43:beta";
    let seed = 0x5eed_7e1e_u64;
    let mut rng = Rng(seed);
    // (chat, user message id) of every message sent.
    let mut asked: Vec<(i64, i64)> = Vec::new();
    // How many messages the stand-in had received when each killed server was dead.
    let mut kills_at: Vec<usize> = Vec::new();
    let rounds = 10;
    for round in 0..rounds {
        let mut serve = start_serve(&w, state.path(), chats);
        for _ in 0..1 + rng.next(3) {
            let chat = 42 + rng.next(2) as i64;
            let update = w.bot.user_message(chat, &format!("round {round} question"));
            asked.push((chat, w.bot.message_id(update).unwrap()));
        }
        // A pseudo-random moment: while polling, while a turn runs, while a reply is sent.
        std::thread::sleep(Duration::from_millis(200 + rng.next(4000)));
        serve.kill9();
        kills_at.push(w.bot.sent().len());
    }
    let serve = start_serve(&w, state.path(), chats);
    let total = asked.len();
    let answered = |s: &[SentMessage]| {
        let mut replied: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for m in s {
            if let Some(r) = m.reply_to {
                *replied.entry((m.chat_id, r)).or_default() += 1;
            }
        }
        replied
    };
    wait_sent(&w.bot, Duration::from_secs(300), |s| {
        answered(s).len() >= total
    });
    // Everything the store holds is done: no reply is still due.
    let t0 = Instant::now();
    loop {
        let out = warden(
            None,
            state.path(),
            &["telegram", "status", "--json"],
            &[("TELEGRAM_BOT_TOKEN", TOKEN)],
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let pending = v["updates"]["accepted"].as_u64().unwrap_or(0)
            + v["updates"]["replying"].as_u64().unwrap_or(0);
        if pending == 0 && v["updates"]["done"].as_u64() == Some(total as u64) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "updates still pending: {v}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(serve);
    let sent = w.bot.sent();
    let replied = answered(&sent);
    let keys: Vec<(i64, i64)> = replied.keys().copied().collect();
    asked.sort();
    assert_eq!(
        keys,
        asked,
        "every message got a reply (seed {seed:#x})\n{}",
        log_text(state.path())
    );
    for m in &sent {
        assert!(
            m.text == REPLY || m.text.contains("Warden restarted"),
            "only the model's reply (or the restart notice after 4 attempts): {:?}\n{}",
            m.text,
            log_text(state.path())
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("ERROR") || l.contains("failed"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // A second copy is only allowed where a kill fell between "sent" and "recorded": the first
    // copy was the last message its server sent to that chat before it was killed.
    // The server (0 = the first) that sent message `seq`: the first whose kill came after it.
    let generation_of = |seq: u64| {
        kills_at
            .iter()
            .position(|k| seq as usize <= *k)
            .unwrap_or(kills_at.len())
    };
    let mut duplicates = 0;
    for ((chat, reply_to), n) in &replied {
        if *n == 1 {
            continue;
        }
        assert_eq!(
            *n, 2,
            "answered more than twice: chat {chat} message {reply_to}"
        );
        duplicates += 1;
        let copies: Vec<&SentMessage> = sent
            .iter()
            .filter(|m| m.chat_id == *chat && m.reply_to == Some(*reply_to))
            .collect();
        let g = generation_of(copies[0].seq);
        assert!(
            g < kills_at.len(),
            "a duplicate without a kill: chat {chat} message {reply_to}"
        );
        let later_same_gen = sent
            .iter()
            .any(|m| m.chat_id == *chat && m.seq > copies[0].seq && generation_of(m.seq) == g);
        assert!(
            !later_same_gen,
            "chat {chat} message {reply_to} was answered twice although its server went on sending to that chat after the first copy (so it had recorded it)"
        );
    }
    eprintln!(
        "kill -9 test: seed {seed:#x}, {rounds} kills, {total} messages, {} replies sent, {duplicates} duplicate(s) inside the sent→recorded window",
        sent.len()
    );
}
