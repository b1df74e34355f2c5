//! warden-store: the control plane's durable store.
//!
//! One SQLite file in WAL mode (readers never block the writer), `busy_timeout` so concurrent writers
//! wait instead of failing, and every write in an `IMMEDIATE` transaction so a read-then-write never
//! hits a lock upgrade. Tables: turns, turn_events (bounded per turn), sessions, telegram_updates and
//! telegram_state (the Telegram channel). (The apply journal is `warden-host`'s, in its own file; worker
//! address leases are `warden_host::lease`'s lock files.)

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, Transaction, TransactionBehavior};

pub mod events;
mod ids;
pub mod migrations;
pub mod model_usage;
pub mod sessions;
pub mod telegram;
pub mod turns;

pub use events::{Appended, EventKind, TurnEvent};
pub use ids::{new_id, TurnId};
pub use model_usage::ModelUsage;
pub use sessions::Session;
pub use telegram::{Accepted, ChatAction, TelegramUpdate, UpdateState};
pub use turns::{NewTurn, RecoveryPolicy, Turn, TurnFilter, TurnKind, TurnOutcome, TurnStatus};

/// How long a writer waits for another connection's write lock before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or configured.
    #[error("failed to open store {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// Applying migrations failed.
    #[error("failed to migrate store: {0}")]
    Migrate(#[from] rusqlite_migration::Error),
    /// A query failed.
    #[error("store query failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// JSON could not be encoded or decoded.
    #[error("failed to encode or decode JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// No turn has this id.
    #[error("turn {0} not found")]
    TurnNotFound(TurnId),
    /// The turn is not in a state that allows the change.
    #[error("turn {id} is {from}, it cannot become {to}")]
    InvalidTransition {
        /// The turn.
        id: TurnId,
        /// Its current status.
        from: TurnStatus,
        /// The requested status.
        to: TurnStatus,
    },
}

/// Result alias for store operations.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Per-turn bounds on stored output and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Events kept per turn before a single `truncated` marker (the `end` event is always kept).
    pub max_events_per_turn: u64,
    /// Bytes of event data kept per turn before the marker.
    pub max_event_bytes_per_turn: u64,
    /// Bytes of stdout and of stderr kept on the turn row.
    pub max_output_bytes: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_events_per_turn: 10_000,
            max_event_bytes_per_turn: 8 * 1024 * 1024,
            max_output_bytes: 1024 * 1024,
        }
    }
}

/// A handle on the store: one connection behind a mutex, so it is `Send + Sync`.
/// Open several (one per thread or process) for concurrent writers; WAL serialises them.
pub struct Store {
    conn: Mutex<Connection>,
    limits: StoreLimits,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`, with default limits.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, StoreLimits::default())
    }

    /// Opens the database at `path` with the given limits.
    pub fn open_with(path: &Path, limits: StoreLimits) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        configure(&conn).map_err(open_err)?;
        migrations::migrations().to_latest(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            limits,
        })
    }

    /// An in-memory store (tests; not shared between handles).
    pub fn open_in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn)?;
        migrations::migrations().to_latest(&mut conn)?;
        Ok(Store {
            conn: Mutex::new(conn),
            limits: StoreLimits::default(),
        })
    }

    /// The limits this handle enforces.
    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// The journal mode SQLite reports (`wal` for file databases).
    pub fn journal_mode(&self) -> Result<String> {
        let conn = self.conn();
        Ok(conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions roll back on drop).
        match self.conn.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Runs `f` in an IMMEDIATE transaction and commits it if `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode returns a row; in-memory databases answer "memory".
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    Ok(())
}

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Defines a string-backed enum stored as TEXT and serialised as its snake_case name.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!("unknown {} {:?}", stringify!($name), other)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(rusqlite::types::ToSqlOutput::from(self.as_str()))
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let s = v.as_str()?;
                s.parse().map_err(|e: String| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_wal_mode_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("warden.db");
        let store = Store::open(&path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
        drop(store);
        // Re-opening an already migrated database is a no-op migration.
        let store = Store::open(&path).unwrap();
        assert_eq!(store.journal_mode().unwrap(), "wal");
    }

    #[test]
    fn migrations_from_empty_create_every_table() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn();
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap();
        let names: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for t in ["model_usage", "sessions", "turn_events", "turns"] {
            assert!(names.iter().any(|n| n == t), "missing {t} in {names:?}");
        }
        assert!(
            !names.iter().any(|n| n == "journal"),
            "migration 2 drops the unused journal: {names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "leases"),
            "migration 3 drops the unused leases: {names:?}"
        );
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, 5);
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }

    #[test]
    fn open_fails_cleanly_on_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Store::open(dir.path()).is_err());
    }
}
