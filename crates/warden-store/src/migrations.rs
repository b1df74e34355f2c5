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

/// All migrations, oldest first; append new ones, never edit old ones.
pub fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1)])
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        super::migrations().validate().unwrap();
    }
}
