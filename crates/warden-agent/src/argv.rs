//! The exact argv and environment of one non-interactive pi turn.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::config::AgentConfig;

/// How to start pi: a program and the arguments that precede pi's own (e.g. `node dist/cli.js`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PiLauncher {
    /// The executable (`node`, or a `pi` on PATH).
    pub program: PathBuf,
    /// Arguments before pi's own, e.g. the path of `dist/cli.js`.
    pub args: Vec<String>,
}

impl PiLauncher {
    /// Runs `dist/cli.js` with a chosen node, so the `#!/usr/bin/env node` shebang cannot pick an old node.
    pub fn node(node: impl Into<PathBuf>, cli_js: &Path) -> Self {
        PiLauncher {
            program: node.into(),
            args: vec![cli_js.to_string_lossy().into_owned()],
        }
    }

    /// Runs a `pi` executable directly.
    pub fn bin(pi: impl Into<PathBuf>) -> Self {
        PiLauncher {
            program: pi.into(),
            args: Vec::new(),
        }
    }
}

/// The full argv (program first) for one json-mode turn on a persistent session file.
/// The prompt is not in it: it always goes on stdin (argv cannot carry a prompt that starts with `-`).
pub fn pi_argv(cfg: &AgentConfig, launcher: &PiLauncher, session_file: &Path) -> Vec<String> {
    let mut argv = vec![launcher.program.to_string_lossy().into_owned()];
    argv.extend(launcher.args.iter().cloned());
    argv.extend(pi_args(cfg, session_file));
    argv
}

/// pi's own arguments (no program) for one json-mode turn; every flag exists in pi 0.73.1 (`dist/cli/args.js`).
pub fn pi_args(cfg: &AgentConfig, session_file: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "--mode",
        "json",
        "--session",
        &session_file.to_string_lossy(),
        "--provider",
        &cfg.provider,
        "--model",
        &cfg.model,
        "--no-extensions",
        "--no-skills",
        "--no-prompt-templates",
        "--no-themes",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(text) = &cfg.append_system_prompt {
        args.push("--append-system-prompt".to_string());
        args.push(text.clone());
    }
    args
}

/// Environment for a pi turn: its agent dir (models.json, settings.json) and no network at start-up.
pub fn pi_env(agent_dir: &Path) -> Vec<(String, String)> {
    vec![
        (
            "PI_CODING_AGENT_DIR".to_string(),
            agent_dir.to_string_lossy().into_owned(),
        ),
        ("PI_OFFLINE".to_string(), "1".to_string()),
        ("PI_SKIP_VERSION_CHECK".to_string(), "1".to_string()),
        ("PI_TELEMETRY".to_string(), "0".to_string()),
    ]
}

/// A ready `Command` for one turn: argv, env, cwd, piped stdin/stdout/stderr; the caller writes the
/// prompt to stdin and closes it.
pub fn pi_command(
    cfg: &AgentConfig,
    launcher: &PiLauncher,
    session_file: &Path,
    agent_dir: &Path,
    cwd: &Path,
) -> Command {
    let mut cmd = Command::new(&launcher.program);
    cmd.args(&launcher.args)
        .args(pi_args(cfg, session_file))
        .envs(pi_env(agent_dir))
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_json_mode_with_session_and_no_discovery() {
        let cfg = AgentConfig::default();
        let launcher = PiLauncher::node("/usr/bin/node", Path::new("/opt/pi/dist/cli.js"));
        let argv = pi_argv(&cfg, &launcher, Path::new("/var/pi/sessions/g.jsonl"));
        assert_eq!(
            argv,
            [
                "/usr/bin/node",
                "/opt/pi/dist/cli.js",
                "--mode",
                "json",
                "--session",
                "/var/pi/sessions/g.jsonl",
                "--provider",
                "local",
                "--model",
                "local-model",
                "--no-extensions",
                "--no-skills",
                "--no-prompt-templates",
                "--no-themes"
            ]
        );
    }

    #[test]
    fn append_system_prompt_is_one_argument() {
        let cfg = AgentConfig {
            append_system_prompt: Some("be brief; -x".into()),
            ..AgentConfig::default()
        };
        let args = pi_args(&cfg, Path::new("s.jsonl"));
        assert_eq!(
            &args[args.len() - 2..],
            ["--append-system-prompt", "be brief; -x"]
        );
    }

    #[test]
    fn env_sets_agent_dir_and_offline() {
        let env = pi_env(Path::new("/var/pi"));
        assert!(env.contains(&("PI_CODING_AGENT_DIR".into(), "/var/pi".into())));
        assert!(env.contains(&("PI_OFFLINE".into(), "1".into())));
        assert!(env.contains(&("PI_SKIP_VERSION_CHECK".into(), "1".into())));
        assert!(env.contains(&("PI_TELEMETRY".into(), "0".into())));
    }
}
