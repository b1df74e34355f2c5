//! warden-agent: the `pi` agent turn contract (reference/agent-turn.md).
//!
//! A worker writes `models.json`/`settings.json` into an agent dir ([`write_agent_dir`]), runs
//! [`pi_argv`] with [`pi_env`] in the workspace cwd, writes the prompt to stdin and closes it, feeds
//! stdout to an [`EventParser`], and calls [`EventParser::finish_with_exit`] when pi exits.

#![forbid(unsafe_code)]

pub mod argv;
pub mod config;
pub mod events;
pub mod install;
pub mod mock;
pub mod rpc;
pub mod warm;

pub use argv::{pi_args, pi_argv, pi_command, pi_env, PiLauncher};
pub use config::{
    models_json, settings_json, write_agent_dir, AgentConfig, PI_PACKAGE, PI_VERSION,
};
pub use events::{
    parse_output, AgentEvent, AgentFailure, EventParser, Message, StopReason, TurnResult, Usage,
};
pub use install::{find_node, install_pi, install_pi_until, pi_bin, pi_cli_js, InstallError};
pub use rpc::{pi_rpc_argv, RpcLine};
pub use warm::{TurnEnd, WarmAgent};
