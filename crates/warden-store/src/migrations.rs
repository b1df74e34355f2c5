//! The schema, as ordered migrations (rusqlite_migration keeps the version in `user_version`).

use rusqlite_migration::{Migrations, M};

const V1: &str = r#"
CREATE TABLE turns (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('argv', 'agent')),
    request       TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    exit_code     INTEGER,
    failure       TEXT,
    stdout        TEXT,
    stderr        TEXT,
    reply         TEXT,
    usage         TEXT,
    stop_reason   TEXT,
    worker        TEXT,
    created_ms    INTEGER NOT NULL,
    started_ms    INTEGER,
    finished_ms   INTEGER,
    event_count   INTEGER NOT NULL DEFAULT 0,
    event_bytes   INTEGER NOT NULL DEFAULT 0,
    events_truncated INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX turns_by_status ON turns (status);
CREATE INDEX turns_by_tenant ON turns (tenant, created_ms);
CREATE INDEX turns_by_created ON turns (created_ms);

CREATE TABLE turn_events (
    turn_id  TEXT NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('stdout', 'stderr', 'agent', 'end', 'truncated')),
    data     TEXT NOT NULL,
    at_ms    INTEGER NOT NULL,
    PRIMARY KEY (turn_id, seq)
) WITHOUT ROWID;

CREATE TABLE sessions (
    tenant       TEXT PRIMARY KEY,
    session_file TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    turn_count   INTEGER NOT NULL DEFAULT 0,
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL
);

CREATE TABLE leases (
    addr       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    holder_pid INTEGER,
    since_ms   INTEGER NOT NULL
);
CREATE INDEX leases_by_holder ON leases (holder);

CREATE TABLE journal (
    run_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    step       TEXT NOT NULL,
    action     TEXT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('planned', 'started', 'done', 'failed')),
    error      TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX journal_by_created ON journal (created_ms);
"#;

/// V2 drops V1's `journal` table: nothing used it (the apply journal is `warden-host`'s own SQLite file).
const V2: &str = r#"
DROP INDEX IF EXISTS journal_by_created;
DROP TABLE IF EXISTS journal;
"#;

/// V3 drops V1's `leases` table: nothing used it (worker addresses are `warden_host::lease`'s lock files).
const V3: &str = r#"
DROP INDEX IF EXISTS leases_by_holder;
DROP TABLE IF EXISTS leases;
"#;

/// V4: the Telegram channel. One row per update received from the Bot API (the chat's action, the
/// turn it became, the reply and how many of its parts were sent), and the channel's small state
/// (the getUpdates offset, the last error). The offset and the update rows are written in one
/// transaction, so a crash can neither skip an update nor record one twice.
const V4: &str = r#"
CREATE TABLE telegram_state (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE TABLE telegram_updates (
    update_id  INTEGER PRIMARY KEY,
    chat_id    INTEGER NOT NULL,
    message_id INTEGER,
    tenant     TEXT,
    action     TEXT NOT NULL CHECK (action IN ('turn', 'reply', 'reset')),
    prompt     TEXT,
    turn_id    TEXT,
    attempts   INTEGER NOT NULL DEFAULT 0,
    reply      TEXT,
    parts_sent INTEGER NOT NULL DEFAULT 0,
    state      TEXT NOT NULL CHECK (state IN ('accepted', 'replying', 'done')),
    error      TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX telegram_updates_pending ON telegram_updates (state, chat_id, update_id);
"#;

/// V5: the model gateway's token accounting, one row per provider request (a turn may make several).
/// `turn_id` is not a foreign key: a request is counted even if its turn row is gone.
const V5: &str = r#"
CREATE TABLE model_usage (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id           TEXT NOT NULL,
    tenant            TEXT NOT NULL,
    model             TEXT NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    estimated         INTEGER NOT NULL DEFAULT 0,
    created_ms        INTEGER NOT NULL
);
CREATE INDEX model_usage_by_turn ON model_usage (turn_id);
CREATE INDEX model_usage_by_tenant ON model_usage (tenant);
"#;

/// All migrations, oldest first; append new ones, never edit old ones.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2), M::up(V3), M::up(V4), M::up(V5)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }

    /// A store made by the V1-only schema (with a journal row) upgrades in place; its other data stays.
    #[test]
    fn v1_store_upgrades_and_loses_only_the_journal_and_leases() {
        use rusqlite_migration::{Migrations, M};
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        Migrations::new(vec![M::up(super::V1)])
            .to_latest(&mut conn)
            .unwrap();
        conn.execute_batch(
            "INSERT INTO journal VALUES ('r', 1, 'host', '{}', 'done', NULL, 1, 1);
             INSERT INTO sessions VALUES ('atlas', 'f', 'w', 1, 1, 1);",
        )
        .unwrap();
        super::migrations().to_latest(&mut conn).unwrap();
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 5);
        let journal: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN \
                 ('journal', 'journal_by_created', 'leases', 'leases_by_holder')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(journal, 0);
        let sessions: i64 = conn
            .query_row("SELECT count(*) FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sessions, 1);
    }
}
