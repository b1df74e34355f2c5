//! `warden serve`: the control plane (HTTP API, queue, workers) until SIGTERM.

use std::time::Duration;

use crate::backends;
use crate::cli::{Global, ServeArgs};
use crate::context;
use crate::exit::Exit;

/// The model gateway on `<gateway>:<gateway.port>`, forwarding to `agent.base_url` with the key from the
/// variable `agent.api_key_env` names (read here, in the host process, and nowhere else).
fn gateway_options(
    layout: &warden_core::Layout,
    agent: &warden_agent::AgentConfig,
) -> warden_server::GatewayOptions {
    let mut config = warden_gateway::GatewayConfig::new(agent.base_url.clone());
    config.api_key = agent
        .api_key_env
        .as_deref()
        .and_then(|var| std::env::var(var).ok())
        .filter(|k| !k.is_empty());
    config.flatten_content = layout.gateway_flatten_content;
    config.tenant_token_budget =
        (layout.gateway_tenant_token_budget > 0).then_some(layout.gateway_tenant_token_budget);
    let addr = std::net::SocketAddr::from((layout.gateway, layout.gateway_port));
    let listener = std::net::TcpListener::bind(addr)
        .map(std::sync::Arc::new)
        .map_err(|e| format!("{addr}: {e}"));
    warden_server::GatewayOptions { listener, config }
}

/// The host's Tailscale IPv4 address at the layout's port, read from `tailscale status --json` through the
/// runner; `Err(why)` while the node is not up.
fn tailscale_addr(port: u16) -> Result<std::net::SocketAddr, String> {
    let runner = warden_host::SystemRunner::new();
    let node = warden_host::tailscale::observe(&runner, &[]).map_err(|e| e.to_string())?;
    match node
        .status
        .as_ref()
        .filter(|_| node.running())
        .and_then(|s| s.ipv4())
    {
        Some(ip) => Ok(std::net::SocketAddr::from((ip, port))),
        None => Err(node.state_text()),
    }
}

/// `tailscale.mode = host`: the layout's listen addresses and the host's Tailscale IPv4 address. A node that is
/// not up at start is said, and serve listens on its address once it is (asked every few seconds).
fn with_tailscale(layout: &warden_core::Layout, opts: &mut warden_server::ServeOptions) {
    let mut addrs: Vec<std::net::SocketAddr> = layout
        .listen
        .iter()
        .map(|ip| std::net::SocketAddr::from((*ip, layout.port)))
        .collect();
    match tailscale_addr(layout.port) {
        Ok(addr) => addrs.push(addr),
        Err(why) => {
            tracing::warn!(
                "tailscale.mode = host, but the node is not up ({why}): listening on its address once `tailscale up` gives it one"
            );
            let port = layout.port;
            opts.late_listen = Some(warden_server::LateListen(std::sync::Arc::new(move || {
                tailscale_addr(port).ok()
            })));
        }
    }
    opts.listen = Some(addrs);
}

/// Builds the serve options from config and flags and runs the server.
pub fn run(global: &Global, args: &ServeArgs) -> Result<(), Exit> {
    let (loaded, layout) = context::layout(global)?;
    let backend = args.backend.unwrap_or_else(context::default_backend);
    let state_dir = context::state_dir(&layout, backend);
    context::ensure_state_dir(&state_dir)?;
    // Workers need an absolute state directory (bind sources, records).
    let state_dir = state_dir
        .canonicalize()
        .map_err(|e| Exit::failure(format!("failed to resolve {}: {e}", state_dir.display())))?;
    let mut opts = warden_server::ServeOptions::new(&state_dir);
    opts.agent = warden_doctor::pi_config::agent_config(&loaded.config);
    opts.telegram = crate::commands::telegram::config(&loaded)?;
    opts.gateway = Some(gateway_options(&layout, &opts.agent));
    opts.warm = warden_server::WarmOptions {
        max: layout.agent_warm as usize,
        idle: layout.agent_warm_idle,
    };
    // workers.pool: parked workers per network mode (none and vnet; argv turns take them).
    let pool = layout.pool_size as usize;
    let how = backends::WorkerUse {
        serve: true,
        pool: [pool, 0, pool],
    };
    if !args.listen.is_empty() {
        let mut addrs = Vec::new();
        for a in &args.listen {
            addrs.push(
                a.parse()
                    .map_err(|e| Exit::usage(format!("--listen {a:?}: {e} (want IP:PORT)")))?,
            );
        }
        opts.listen = Some(addrs);
    } else if layout.tailscale.mode == warden_core::tailscale::Mode::Host {
        with_tailscale(&layout, &mut opts);
    }
    if let Some(n) = args.concurrency {
        opts.concurrency = n.max(1);
    }
    if let Some(n) = args.queue {
        opts.queue_size = n;
    }
    if let Some(d) = &args.shutdown_deadline {
        opts.shutdown_deadline = warden_core::layout::parse_duration(d)
            .map_err(|why| Exit::usage(format!("--shutdown-deadline {d:?}: {why}")))?;
    }
    if let Some(p) = &args.recovery {
        opts.recovery =
            serde_json::from_value(serde_json::Value::String(p.clone())).map_err(|_| {
                Exit::usage(format!(
                    "--recovery {p:?}: want fail_running, fail_all or requeue_running"
                ))
            })?;
    }
    let workers = backends::workers(backend, &layout, &state_dir, how)?;
    if let Some(why) = workers.missing_limits() {
        // The backend refuses each worker unless workers.allow_unlimited; say it once at start.
        if layout.allow_unlimited {
            tracing::warn!(
                "workers run without memory and process limits (workers.allow_unlimited): {why}"
            );
        } else {
            tracing::warn!("workers will be refused: {why}");
        }
    }
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| Exit::failure(format!("failed to start the runtime: {e}")))?;
    let result = rt.block_on(warden_server::serve(layout, opts, workers));
    // A pi install still running in the background must not hold the exit.
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map_err(|e| Exit::failure(e.to_string()))
}
