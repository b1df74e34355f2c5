//! The Telegram channel's durable record: each update received from the Bot API, what it became
//! (a turn, a fixed reply, a session reset), its reply and how many parts of it were sent; and
//! the channel's small key/value state (the getUpdates offset, the last error).
//!
//! [`Store::telegram_accept`] writes a batch of updates, the turns they start and the new offset
//! in one transaction: after a crash either all of it is there (and Telegram is asked from the
//! new offset) or none of it (and Telegram sends the same updates again).

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::turns::insert_turn;
use crate::{now_ms, text_enum, NewTurn, Result, Store, TurnId};

text_enum! {
    /// Where an update is in its life.
    UpdateState {
        /// Recorded; its turn (if any) has not produced a reply yet.
        Accepted => "accepted",
        /// The reply is fixed and being sent, part by part.
        Replying => "replying",
        /// Every part was sent (or sending failed for good, see `error`).
        Done => "done",
    }
}

/// What an accepted update asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ChatAction {
    /// An agent turn (created in the same transaction).
    Turn(NewTurn),
    /// A reply known at once (a command, a refusal).
    Reply(String),
    /// A fresh agent session for the tenant, done in the chat's order.
    Reset {
        /// The chat's tenant.
        tenant: String,
    },
}

/// An update to record.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Telegram's `update_id`.
    pub update_id: i64,
    /// The chat it came from.
    pub chat_id: i64,
    /// The message, to reply to.
    pub message_id: Option<i64>,
    /// What it asks for.
    pub action: ChatAction,
}

/// A recorded update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelegramUpdate {
    /// Telegram's `update_id`.
    pub update_id: i64,
    /// The chat.
    pub chat_id: i64,
    /// The message.
    pub message_id: Option<i64>,
    /// The tenant of a turn or reset.
    pub tenant: Option<String>,
    /// `turn`, `reply` or `reset`.
    pub action: String,
    /// The prompt of a turn.
    pub prompt: Option<String>,
    /// The turn (the latest attempt).
    pub turn_id: Option<TurnId>,
    /// Turns started for it (a restart may interrupt one).
    pub attempts: u32,
    /// The reply, once fixed.
    pub reply: Option<String>,
    /// Parts of the reply already sent.
    pub parts_sent: u32,
    /// Where it is.
    pub state: UpdateState,
    /// Why sending failed for good.
    pub error: Option<String>,
    /// When it was recorded, ms since epoch.
    pub created_ms: i64,
    /// Last change.
    pub updated_ms: i64,
}

const COLUMNS: &str = "update_id, chat_id, message_id, tenant, action, prompt, turn_id, attempts, \
     reply, parts_sent, state, error, created_ms, updated_ms";

fn update_from_row(r: &Row<'_>) -> rusqlite::Result<TelegramUpdate> {
    Ok(TelegramUpdate {
        update_id: r.get(0)?,
        chat_id: r.get(1)?,
        message_id: r.get(2)?,
        tenant: r.get(3)?,
        action: r.get(4)?,
        prompt: r.get(5)?,
        turn_id: r.get(6)?,
        attempts: r.get::<_, i64>(7)?.max(0) as u32,
        reply: r.get(8)?,
        parts_sent: r.get::<_, i64>(9)?.max(0) as u32,
        state: r.get(10)?,
        error: r.get(11)?,
        created_ms: r.get(12)?,
        updated_ms: r.get(13)?,
    })
}

/// The state key of the getUpdates offset.
pub const OFFSET_KEY: &str = "offset";

fn set_state_in(tx: &rusqlite::Connection, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO telegram_state (key, value, updated_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = ?2, updated_ms = ?3",
        params![key, value, now_ms()],
    )?;
    Ok(())
}

impl Store {
    /// The next getUpdates offset (0 before the first update).
    pub fn telegram_offset(&self) -> Result<i64> {
        Ok(self
            .telegram_state(OFFSET_KEY)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// A value of the channel's state.
    pub fn telegram_state(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT value FROM telegram_state WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Sets a value of the channel's state.
    pub fn set_telegram_state(&self, key: &str, value: &str) -> Result<()> {
        self.write(|tx| set_state_in(tx, key, value))
    }

    /// Records a batch of updates, creates their turns, and moves the offset to `next_offset`
    /// (never backwards), all in one transaction. An update already recorded (Telegram sent it
    /// again) is skipped. Returns the updates newly recorded.
    pub fn telegram_accept(
        &self,
        next_offset: i64,
        updates: &[Accepted],
    ) -> Result<Vec<TelegramUpdate>> {
        self.write(|tx| {
            let mut recorded = Vec::new();
            for u in updates {
                let known: Option<i64> = tx
                    .query_row(
                        "SELECT update_id FROM telegram_updates WHERE update_id = ?1",
                        [u.update_id],
                        |r| r.get(0),
                    )
                    .optional()?;
                if known.is_some() {
                    continue;
                }
                let (action, tenant, prompt, turn_id, reply, state) = match &u.action {
                    ChatAction::Turn(new) => {
                        let turn = insert_turn(tx, new)?;
                        let prompt = new
                            .request
                            .get("work")
                            .and_then(|w| w.get("prompt"))
                            .and_then(|p| p.as_str())
                            .map(str::to_string);
                        let t = Some(new.tenant.clone());
                        ("turn", t, prompt, Some(turn.id), None, UpdateState::Accepted)
                    }
                    ChatAction::Reply(text) => (
                        "reply",
                        None,
                        None,
                        None,
                        Some(text.clone()),
                        UpdateState::Replying,
                    ),
                    ChatAction::Reset { tenant } => (
                        "reset",
                        Some(tenant.clone()),
                        None,
                        None,
                        None,
                        UpdateState::Accepted,
                    ),
                };
                let attempts = i64::from(turn_id.is_some());
                let now = now_ms();
                let sql = format!(
                    "INSERT INTO telegram_updates (update_id, chat_id, message_id, tenant, action, prompt, \
                     turn_id, attempts, reply, parts_sent, state, error, created_ms, updated_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, NULL, ?11, ?11) RETURNING {COLUMNS}"
                );
                let row = tx.query_row(
                    &sql,
                    params![
                        u.update_id,
                        u.chat_id,
                        u.message_id,
                        tenant,
                        action,
                        prompt,
                        turn_id,
                        attempts,
                        reply,
                        state,
                        now
                    ],
                    update_from_row,
                )?;
                recorded.push(row);
            }
            let current: i64 = tx
                .query_row(
                    "SELECT value FROM telegram_state WHERE key = ?1",
                    [OFFSET_KEY],
                    |r| r.get::<_, String>(0),
                )
                .optional()?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if next_offset > current {
                set_state_in(tx, OFFSET_KEY, &next_offset.to_string())?;
            }
            Ok(recorded)
        })
    }

    /// One recorded update.
    pub fn telegram_update(&self, update_id: i64) -> Result<Option<TelegramUpdate>> {
        let sql = format!("SELECT {COLUMNS} FROM telegram_updates WHERE update_id = ?1");
        Ok(self
            .conn()
            .query_row(&sql, [update_id], update_from_row)
            .optional()?)
    }

    /// Updates not done yet, oldest first.
    pub fn telegram_pending(&self) -> Result<Vec<TelegramUpdate>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM telegram_updates WHERE state != 'done' ORDER BY update_id"
        );
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], update_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The oldest update of `chat_id` not done yet.
    pub fn telegram_next_pending(&self, chat_id: i64) -> Result<Option<TelegramUpdate>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM telegram_updates WHERE state != 'done' AND chat_id = ?1 \
             ORDER BY update_id LIMIT 1"
        );
        Ok(self
            .conn()
            .query_row(&sql, [chat_id], update_from_row)
            .optional()?)
    }

    /// The most recent updates, newest first.
    pub fn telegram_recent(&self, limit: usize) -> Result<Vec<TelegramUpdate>> {
        let sql =
            format!("SELECT {COLUMNS} FROM telegram_updates ORDER BY update_id DESC LIMIT ?1");
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([limit as i64], update_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Updates per state.
    pub fn telegram_counts(&self) -> Result<Vec<(UpdateState, u64)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT state, count(*) FROM telegram_updates GROUP BY state")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, UpdateState>(0)?,
                r.get::<_, i64>(1)?.max(0) as u64,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Starts another turn for an accepted update whose turn a restart interrupted.
    pub fn telegram_retry_turn(&self, update_id: i64, new: &NewTurn) -> Result<TelegramUpdate> {
        self.write(|tx| {
            let turn = insert_turn(tx, new)?;
            let sql = format!(
                "UPDATE telegram_updates SET turn_id = ?2, attempts = attempts + 1, updated_ms = ?3 \
                 WHERE update_id = ?1 AND state = 'accepted' RETURNING {COLUMNS}"
            );
            Ok(tx.query_row(
                &sql,
                params![update_id, turn.id, now_ms()],
                update_from_row,
            )?)
        })
    }

    /// Fixes an accepted update's reply (from then on it is only sent, never recomputed).
    pub fn telegram_set_reply(&self, update_id: i64, reply: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE telegram_updates SET reply = ?2, state = 'replying', parts_sent = 0, updated_ms = ?3 \
                 WHERE update_id = ?1 AND state = 'accepted'",
                params![update_id, reply, now_ms()],
            )?;
            Ok(())
        })
    }

    /// Records that the first `parts_sent` parts of the reply were sent.
    pub fn telegram_parts_sent(&self, update_id: i64, parts_sent: u32) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE telegram_updates SET parts_sent = ?2, updated_ms = ?3 WHERE update_id = ?1",
                params![update_id, i64::from(parts_sent), now_ms()],
            )?;
            Ok(())
        })
    }

    /// Marks an update done (`error`: why its reply could not be sent).
    pub fn telegram_done(&self, update_id: i64, error: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE telegram_updates SET state = 'done', error = ?2, updated_ms = ?3 WHERE update_id = ?1",
                params![update_id, error, now_ms()],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TurnKind;

    fn turn(prompt: &str) -> ChatAction {
        ChatAction::Turn(NewTurn {
            tenant: "acme".into(),
            kind: TurnKind::Agent,
            request: serde_json::json!({"tenant": "acme", "work": {"prompt": prompt}}),
        })
    }

    #[test]
    fn accept_records_updates_turns_and_offset_once() {
        let store = Store::open_in_memory().unwrap();
        assert_eq!(store.telegram_offset().unwrap(), 0);
        let batch = vec![
            Accepted {
                update_id: 10,
                chat_id: 7,
                message_id: Some(1),
                action: turn("hello"),
            },
            Accepted {
                update_id: 11,
                chat_id: 8,
                message_id: Some(2),
                action: ChatAction::Reply("pong".into()),
            },
        ];
        let rec = store.telegram_accept(12, &batch).unwrap();
        assert_eq!(rec.len(), 2);
        assert_eq!(rec[0].prompt.as_deref(), Some("hello"));
        assert_eq!(rec[0].attempts, 1);
        let id = rec[0].turn_id.clone().unwrap();
        assert_eq!(store.get_turn(&id).unwrap().unwrap().tenant, "acme");
        assert_eq!(rec[1].state, UpdateState::Replying);
        assert_eq!(store.telegram_offset().unwrap(), 12);
        // Telegram sending the batch again records nothing new, and the offset never goes back.
        assert!(store.telegram_accept(11, &batch).unwrap().is_empty());
        assert_eq!(store.telegram_offset().unwrap(), 12);
        assert_eq!(store.telegram_pending().unwrap().len(), 2);

        store.telegram_set_reply(10, "hi").unwrap();
        store.telegram_parts_sent(10, 1).unwrap();
        store.telegram_done(10, None).unwrap();
        let u = store.telegram_update(10).unwrap().unwrap();
        assert_eq!((u.state, u.parts_sent), (UpdateState::Done, 1));
        assert_eq!(store.telegram_pending().unwrap().len(), 1);
    }

    #[test]
    fn a_failed_batch_leaves_no_trace() {
        let store = Store::open_in_memory().unwrap();
        let bad = NewTurn {
            tenant: "acme".into(),
            kind: TurnKind::Agent,
            request: serde_json::json!({}),
        };
        let batch = vec![Accepted {
            update_id: 1,
            chat_id: 1,
            message_id: None,
            action: ChatAction::Turn(bad),
        }];
        // The offset write fails (a trigger refuses it): the update row and its turn go too.
        store
            .conn()
            .execute_batch("CREATE TRIGGER fail BEFORE INSERT ON telegram_state BEGIN SELECT RAISE(ABORT, 'boom'); END;")
            .unwrap();
        assert!(store.telegram_accept(2, &batch).is_err());
        assert!(store.telegram_pending().unwrap().is_empty());
        assert!(store
            .list_turns(&crate::TurnFilter::default(), 10)
            .unwrap()
            .is_empty());
    }
}
