//! Warden's pure core: config → validated [`layout::Layout`] → rendered files and [`plan::Plan`]s. No IO here;
//! backends observe hosts and apply plans.

#![forbid(unsafe_code)]

pub mod account;
pub mod bastille_agent;
pub mod bastille_cms;
pub mod bastille_git;
mod bastille_injail;
pub mod bastille_plan;
pub mod bastille_teardown;
pub mod cms;
pub mod config;
pub mod db;
pub mod error;
pub mod forgejo;
pub mod git;
pub mod http_get;
pub mod layout;
pub mod linux_ai;
pub mod linux_cms;
pub mod linux_db;
pub mod linux_git;
pub mod linux_plan;
pub mod linux_release;
pub mod linux_teardown;
pub mod models_probe;
pub mod names;
pub mod observed;
pub mod pi;
pub mod plan;
pub mod render;
pub mod snapshot_tag;
pub mod tailscale;
pub mod tailscale_plan;

pub use config::{load, Config, Loaded};
pub use error::{ConfigError, Source};
pub use layout::Layout;
pub use plan::{Action, Blocker, Op, Plan, Step};
