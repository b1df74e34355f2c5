//! A turn's event stream (stdout/stderr chunks, agent events, end), bounded per turn.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{now_ms, text_enum, Result, Store, StoreError, TurnId};

text_enum! {
    /// What an event carries.
    EventKind {
        /// A chunk of stdout.
        Stdout => "stdout",
        /// A chunk of stderr.
        Stderr => "stderr",
        /// One agent (pi) JSON event.
        Agent => "agent",
        /// The turn ended; always stored, even past the bound.
        End => "end",
        /// The bound was hit; later events (except `end`) were dropped.
        Truncated => "truncated",
    }
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnEvent {
    /// The turn.
    pub turn_id: TurnId,
    /// Position in the turn's stream, from 1.
    pub seq: u64,
    /// What it carries.
    pub kind: EventKind,
    /// The payload (text chunk or JSON text).
    pub data: String,
    /// When it was stored, ms since epoch.
    pub at_ms: i64,
}

/// What `append_event` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Appended {
    /// Stored at this seq.
    Stored {
        /// Its seq.
        seq: u64,
    },
    /// The bound was hit now: the event was dropped and the `truncated` marker stored at this seq.
    Truncated {
        /// The marker's seq.
        seq: u64,
    },
    /// Dropped: the turn's events were already truncated.
    Dropped,
}

impl Appended {
    /// The seq of the row written, if any.
    pub fn seq(self) -> Option<u64> {
        match self {
            Appended::Stored { seq } | Appended::Truncated { seq } => Some(seq),
            Appended::Dropped => None,
        }
    }
}

impl Store {
    /// Appends an event to a turn, keeping at most `max_events_per_turn` events and
    /// `max_event_bytes_per_turn` bytes, then one `truncated` marker; `end` events always go in.
    pub fn append_event(&self, turn: &TurnId, kind: EventKind, data: &str) -> Result<Appended> {
        let limits = self.limits;
        self.write(|tx| {
            // Cached statements: every chunk of output is an append.
            let counts: Option<(i64, i64, bool)> = tx
                .prepare_cached(
                    "SELECT event_count, event_bytes, events_truncated FROM turns WHERE id = ?1",
                )?
                .query_row([turn], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            let Some((count, bytes, truncated)) = counts else {
                return Err(StoreError::TurnNotFound(turn.clone()));
            };
            let (count, bytes) = (count.max(0) as u64, bytes.max(0) as u64);
            let seq = count + 1;
            let len = data.len() as u64;
            let insert = |kind: EventKind, data: &str| {
                tx.prepare_cached(
                    "INSERT INTO turn_events (turn_id, seq, kind, data, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![turn, seq as i64, kind, data, now_ms()])
            };
            if kind == EventKind::End {
                insert(kind, data)?;
                tx.prepare_cached("UPDATE turns SET event_count = ?2 WHERE id = ?1")?
                    .execute(params![turn, seq as i64])?;
                return Ok(Appended::Stored { seq });
            }
            if truncated {
                return Ok(Appended::Dropped);
            }
            if count >= limits.max_events_per_turn
                || bytes.saturating_add(len) > limits.max_event_bytes_per_turn
            {
                let marker = serde_json::json!({
                    "max_events": limits.max_events_per_turn,
                    "max_bytes": limits.max_event_bytes_per_turn,
                    "stored_events": count,
                    "stored_bytes": bytes,
                })
                .to_string();
                insert(EventKind::Truncated, &marker)?;
                tx.prepare_cached("UPDATE turns SET event_count = ?2, events_truncated = 1 WHERE id = ?1")?
                    .execute(params![turn, seq as i64])?;
                return Ok(Appended::Truncated { seq });
            }
            insert(kind, data)?;
            tx.prepare_cached("UPDATE turns SET event_count = ?2, event_bytes = ?3 WHERE id = ?1")?
                .execute(params![turn, seq as i64, (bytes + len) as i64])?;
            Ok(Appended::Stored { seq })
        })
    }

    /// The turn's events with seq greater than `after_seq` (0 for all), in order.
    pub fn events_since(&self, turn: &TurnId, after_seq: u64) -> Result<Vec<TurnEvent>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT turn_id, seq, kind, data, at_ms FROM turn_events WHERE turn_id = ?1 AND seq > ?2 ORDER BY seq",
        )?;
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![turn, after], |r| {
            Ok(TurnEvent {
                turn_id: r.get(0)?,
                seq: r.get::<_, i64>(1)?.max(0) as u64,
                kind: r.get(2)?,
                data: r.get(3)?,
                at_ms: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewTurn, StoreLimits, TurnKind};

    fn store_with(limits: StoreLimits) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(&dir.path().join("db"), limits).unwrap();
        (dir, store)
    }

    fn turn(store: &Store) -> TurnId {
        store
            .create_turn(&NewTurn {
                tenant: "t".into(),
                kind: TurnKind::Argv,
                request: serde_json::json!({"argv": ["echo"]}),
            })
            .unwrap()
            .id
    }

    #[test]
    fn seqs_count_up_and_events_since_resumes() {
        let store = Store::open_in_memory().unwrap();
        let id = turn(&store);
        assert_eq!(
            store.append_event(&id, EventKind::Stdout, "a").unwrap(),
            Appended::Stored { seq: 1 }
        );
        assert_eq!(
            store
                .append_event(&id, EventKind::Stderr, "b")
                .unwrap()
                .seq(),
            Some(2)
        );
        assert_eq!(
            store
                .append_event(&id, EventKind::Agent, "{}")
                .unwrap()
                .seq(),
            Some(3)
        );
        let all = store.events_since(&id, 0).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[1].kind, EventKind::Stderr);
        assert_eq!(all[1].data, "b");
        let later = store.events_since(&id, 2).unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].data, "{}");
        assert!(store.events_since(&id, 3).unwrap().is_empty());
        assert_eq!(store.get_turn(&id).unwrap().unwrap().event_count, 3);
    }

    #[test]
    fn count_bound_gives_one_marker_then_drops_but_keeps_end() {
        let (_d, store) = store_with(StoreLimits {
            max_events_per_turn: 3,
            ..StoreLimits::default()
        });
        let id = turn(&store);
        for _ in 0..3 {
            assert!(matches!(
                store.append_event(&id, EventKind::Stdout, "x").unwrap(),
                Appended::Stored { .. }
            ));
        }
        assert_eq!(
            store.append_event(&id, EventKind::Stdout, "x").unwrap(),
            Appended::Truncated { seq: 4 }
        );
        for _ in 0..10 {
            assert_eq!(
                store.append_event(&id, EventKind::Stdout, "x").unwrap(),
                Appended::Dropped
            );
        }
        assert_eq!(
            store
                .append_event(&id, EventKind::End, "{\"status\":\"succeeded\"}")
                .unwrap(),
            Appended::Stored { seq: 5 }
        );
        let evs = store.events_since(&id, 0).unwrap();
        let kinds: Vec<_> = evs.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Stdout,
                EventKind::Stdout,
                EventKind::Stdout,
                EventKind::Truncated,
                EventKind::End
            ]
        );
        assert!(store.get_turn(&id).unwrap().unwrap().events_truncated);
    }

    #[test]
    fn byte_bound() {
        let (_d, store) = store_with(StoreLimits {
            max_event_bytes_per_turn: 10,
            ..StoreLimits::default()
        });
        let id = turn(&store);
        assert!(matches!(
            store.append_event(&id, EventKind::Stdout, "12345").unwrap(),
            Appended::Stored { .. }
        ));
        assert!(matches!(
            store.append_event(&id, EventKind::Stdout, "12345").unwrap(),
            Appended::Stored { .. }
        ));
        assert!(matches!(
            store.append_event(&id, EventKind::Stdout, "1").unwrap(),
            Appended::Truncated { .. }
        ));
        let other = turn(&store);
        // A single oversized event truncates at once; other turns are unaffected.
        assert!(matches!(
            store
                .append_event(&other, EventKind::Stdout, &"y".repeat(11))
                .unwrap(),
            Appended::Truncated { seq: 1 }
        ));
        let third = turn(&store);
        assert!(matches!(
            store.append_event(&third, EventKind::Stdout, "ok").unwrap(),
            Appended::Stored { seq: 1 }
        ));
    }

    #[test]
    fn unknown_turn_is_an_error() {
        let store = Store::open_in_memory().unwrap();
        assert!(matches!(
            store.append_event(&TurnId::from("missing"), EventKind::Stdout, "x"),
            Err(StoreError::TurnNotFound(_))
        ));
        assert!(store
            .events_since(&TurnId::from("missing"), 0)
            .unwrap()
            .is_empty());
    }
}
