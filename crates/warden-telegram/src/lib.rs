//! warden-telegram: the Telegram channel of `warden serve` (`reference/telegram.md`).
//!
//! Long polling of the Bot API ([`api`]), one process per state directory ([`lock`]), every chat
//! message recorded with its turn and the new offset in one store transaction, replies split at
//! 4096 UTF-16 units ([`split`]) and sent part by part with each sent part recorded
//! ([`channel`]). The control plane is reached through [`TurnHost`] only.
//!
//! Modules: `config` (keys → [`TelegramConfig`]), `api`, `split`, `lock`, `host`, `channel`.

pub mod api;
pub mod channel;
pub mod config;
pub mod host;
pub mod lock;
pub mod split;

pub use api::{BotApi, BotError};
pub use channel::{run, ChannelError};
pub use config::TelegramConfig;
pub use host::TurnHost;
pub use lock::{acquire, holder, LockError, PollerLock};
