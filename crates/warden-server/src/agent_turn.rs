//! Agent turns with pi (reference/agent-turn.md): pi installed (pinned) into `<state_dir>/pi` by setup's
//! `agent` step — never by the server, so no turn waits on a package registry — and bound read-only at `/opt/pi`; per tenant a workspace
//! (`<state_dir>/tenants/<t>/workspace` → `/workspace`) and an agent dir with `models.json`,
//! `settings.json` and the session file (`<state_dir>/tenants/<t>/pi` → `/var/pi`), both
//! persistent across turns and bound at stable paths because pi stores the cwd in the session.

use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use warden_agent::{pi_argv, pi_env, write_agent_dir, PiLauncher, PI_PACKAGE};
use warden_host::worker::Mount;

use crate::state::App;
pub use crate::warm::Credential;

/// Where pi's install prefix appears inside a worker.
pub const PI_MOUNT: &str = "/opt/pi";
/// The tenant's workspace (pi's cwd) inside a worker.
pub const WORKSPACE: &str = "/workspace";
/// The tenant's pi agent dir inside a worker.
pub const AGENT_DIR: &str = "/var/pi";

/// What a worker needs to run one pi turn for a tenant.
#[derive(Debug)]
pub struct AgentPrep {
    /// pi's argv (node + cli.js + flags).
    pub argv: Vec<String>,
    /// pi's environment.
    pub env: Vec<(String, String)>,
    /// The pi install, workspace and agent dir.
    pub mounts: Vec<Mount>,
    /// The workspace.
    pub cwd: PathBuf,
    /// The agent's token at the model gateway; revoked when this drops.
    pub token: Credential,
}

/// The host directory of a tenant.
pub fn tenant_dir(state_dir: &Path, tenant: &str) -> PathBuf {
    state_dir.join("tenants").join(tenant)
}

/// The pinned pi's `dist/cli.js` if setup installed it completely; otherwise why not, with the command that
/// installs it. Never installs anything: a host without a route to the registry gets its answer at once.
pub fn installed_pi(app: &App) -> Result<PathBuf, String> {
    let pi_dir = app.opts.pi_dir();
    let version = &app.opts.agent.version;
    warden_agent::install::installed_pi(&pi_dir, version).ok_or_else(|| {
        format!(
            "pi {version} is not installed in {} (warden serve installs nothing)\n  fix: warden setup --backend linux --step agent",
            pi_dir.display()
        )
    })
}

fn mkdir_owned(dir: &Path, owner: (u32, u32)) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    chown(dir, Some(owner.0), Some(owner.1))
        .map_err(|e| format!("failed to chown {}: {e}", dir.display()))
}

/// What pi in a worker is told about its provider: the model gateway with a fresh token when one is
/// configured (open for `turn`, or parked for a warm agent when `turn` is `None`), else `agent.base_url`
/// directly. Never the provider key: that stays in the host process.
fn worker_agent_config(
    app: &Arc<App>,
    turn: Option<&str>,
    tenant: &str,
) -> Result<(warden_agent::AgentConfig, Credential), String> {
    let mut cfg = app.opts.agent.clone();
    cfg.api_key_env = None;
    if app.opts.gateway.is_none() {
        cfg.api_key = "none".into();
        return Ok((cfg, Credential::None));
    }
    let (gw, url) = app.gateway.as_ref().map_err(|why| why.clone())?;
    cfg.base_url = url.clone();
    let token = match turn {
        Some(turn) => Credential::Turn(gw.grant(turn, tenant).map_err(|e| e.to_string())?),
        None => Credential::Parked(gw.mint(tenant).map_err(|e| e.to_string())?),
    };
    cfg.api_key = match &token {
        Credential::Turn(t) => t.as_str().to_string(),
        Credential::Parked(t) => t.as_str().to_string(),
        Credential::None => "none".to_string(),
    };
    Ok((cfg, token))
}

/// Prepares a tenant's dirs and pi files and returns the worker's part of the cold turn `turn`.
pub async fn prepare(app: &Arc<App>, tenant: &str, turn: &str) -> Result<AgentPrep, String> {
    prepare_agent(app, tenant, Some(turn))
}

/// Prepares a tenant's dirs and pi files for a warm agent: pi in RPC mode, a parked gateway token.
pub fn prepare_warm(app: &Arc<App>, tenant: &str) -> Result<AgentPrep, String> {
    prepare_agent(app, tenant, None)
}

fn prepare_agent(app: &Arc<App>, tenant: &str, turn: Option<&str>) -> Result<AgentPrep, String> {
    let (agent_cfg, token) = worker_agent_config(app, turn, tenant)?;
    let cli = installed_pi(app)?;
    // The worker's node: the host's on Linux (host release), the release's own in a FreeBSD jail.
    let node = app.workers.node().map_err(|e| e.to_string())?;
    let pi_dir = app.opts.pi_dir();
    let cli_rel = cli.strip_prefix(&pi_dir).map_err(|_| {
        format!(
            "pi's cli.js {} is outside {}",
            cli.display(),
            pi_dir.display()
        )
    })?;
    let cli_inside = Path::new(PI_MOUNT).join(cli_rel);
    let owner = app.workers.file_owner();
    let base = tenant_dir(&app.opts.state_dir, tenant);
    let workspace = base.join("workspace");
    let agent_dir = base.join("pi");
    mkdir_owned(&workspace, owner)?;
    mkdir_owned(&agent_dir, owner)?;
    mkdir_owned(&agent_dir.join("sessions"), owner)?;
    // Rewritten every turn so a config change reaches the next turn.
    write_agent_dir(&agent_cfg, &agent_dir)
        .map_err(|e| format!("failed to write pi's agent dir: {e}"))?;
    let session = Path::new(AGENT_DIR)
        .join("sessions")
        .join(format!("{tenant}.jsonl"));
    let launcher = PiLauncher::node(&node, &cli_inside);
    let argv = match turn {
        Some(_) => pi_argv(&agent_cfg, &launcher, &session),
        None => warden_agent::pi_rpc_argv(&agent_cfg, &launcher, &session),
    };
    let mut env = pi_env(Path::new(AGENT_DIR));
    env.push(("HOME".into(), AGENT_DIR.into()));
    app.store
        .upsert_session(tenant, &session.to_string_lossy(), WORKSPACE)
        .map_err(|e| format!("failed to record the session: {e}"))?;
    tracing::debug!(tenant, package = PI_PACKAGE, "agent turn prepared");
    Ok(AgentPrep {
        argv,
        env,
        mounts: vec![
            Mount {
                source: pi_dir,
                target: PI_MOUNT.into(),
                writable: false,
            },
            Mount {
                source: workspace,
                target: WORKSPACE.into(),
                writable: true,
            },
            Mount {
                source: agent_dir,
                target: AGENT_DIR.into(),
                writable: true,
            },
        ],
        cwd: PathBuf::from(WORKSPACE),
        token,
    })
}
