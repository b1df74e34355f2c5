//! A small dispatch binary for this crate's tests and benchmark: `__worker` → the worker helper;
//! `serve [flags]` → the control plane on the layout from the environment (defaults + `TENANT_ID`
//! etc.). Flags: `--state-dir DIR` (required), `--listen ADDR` (repeatable), `--host-netns PATH`,
//! `--concurrency N`, `--queue N`, `--deadline-ms N`, `--recovery fail_all|fail_running|requeue_running`,
//! `--pi-dir DIR`, `--base-url URL`, `--model ID`, `--pool N` (parked workers for network none),
//! `--gateway IP:PORT` (the model gateway there, forwarding to `--base-url`), `--gateway-key-env VAR`
//! (the provider key it injects, read from VAR), `--gateway-budget N`.
//! The workers are Linux ones (warden-linux's adapter of the worker contract): Linux test tooling.

use std::process::ExitCode;

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(warden_linux::HELPER_ARG) {
        warden_linux::helper_main();
    }
    if args.get(1).map(String::as_str) != Some("serve") {
        eprintln!("usage: warden-server-test __worker … | serve --state-dir DIR [flags]");
        return ExitCode::from(2);
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    match run(&args[2..]) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warden-server-test: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(target_os = "linux")]
fn run(args: &[String]) -> Result<(), String> {
    let mut opts = warden_server::ServeOptions::new("");
    let mut linux = warden_linux::LinuxOptions::new("");
    let mut listen = Vec::new();
    let (mut gateway, mut gateway_key, mut gateway_budget) = (None, None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--state-dir" => opts.state_dir = value.into(),
            "--listen" => listen.push(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--host-netns" => linux.host_netns = Some(value.into()),
            "--concurrency" => opts.concurrency = num(value)? as usize,
            "--queue" => opts.queue_size = num(value)? as usize,
            "--deadline-ms" => {
                opts.shutdown_deadline = std::time::Duration::from_millis(num(value)?)
            }
            "--recovery" => {
                opts.recovery = serde_json::from_value(serde_json::Value::String(value.clone()))
                    .map_err(|e| format!("--recovery: {e}"))?
            }
            "--pi-dir" => opts.pi_dir = Some(value.into()),
            "--pool" => linux.pool[0] = num(value)? as usize,
            "--base-url" => opts.agent.base_url = value.clone(),
            "--model" => opts.agent.model = value.clone(),
            "--gateway" => {
                gateway = Some(
                    value
                        .parse::<std::net::SocketAddr>()
                        .map_err(|e| format!("--gateway: {e}"))?,
                )
            }
            "--gateway-key-env" => gateway_key = std::env::var(value).ok(),
            "--gateway-budget" => gateway_budget = Some(num(value)?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if opts.state_dir.as_os_str().is_empty() {
        return Err("--state-dir is required".into());
    }
    if !listen.is_empty() {
        opts.listen = Some(listen);
    }
    if let Some(addr) = gateway {
        let mut config = warden_gateway::GatewayConfig::new(opts.agent.base_url.clone());
        config.api_key = gateway_key;
        config.tenant_token_budget = gateway_budget;
        // A socket belongs to the namespace it was made in: bind on a thread that entered the bridge's.
        let netns = linux.host_netns.clone();
        let listener = std::thread::spawn(move || -> Result<std::net::TcpListener, String> {
            if let Some(ns) = &netns {
                warden_linux::veth::enter_netns(ns)
                    .map_err(|e| format!("failed to enter {}: {e}", ns.display()))?;
            }
            std::net::TcpListener::bind(addr).map_err(|e: std::io::Error| format!("{addr}: {e}"))
        })
        .join()
        .unwrap_or_else(|_| Err("the bind thread panicked".into()))
        .map(std::sync::Arc::new);
        opts.gateway = Some(warden_server::GatewayOptions { listener, config });
    }
    let env = |name: &str| std::env::var(name).ok();
    let loaded = warden_core::load(None, &env, &Vec::new()).map_err(|e| e.to_string())?;
    let layout = warden_core::Layout::from_loaded(&loaded).map_err(|e| e.to_string())?;
    // Workers need an absolute state directory (bind sources, records).
    std::fs::create_dir_all(&opts.state_dir).map_err(|e| e.to_string())?;
    opts.state_dir = opts.state_dir.canonicalize().map_err(|e| e.to_string())?;
    linux.state_dir = opts.state_dir.clone();
    // A long-lived, multi-threaded process: helpers are forked by a zygote, not exec'd.
    linux.zygote = true;
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let workers = std::sync::Arc::new(warden_linux::LinuxWorkers::new(&layout, linux));
    let r = rt
        .block_on(warden_server::serve(layout, opts, workers))
        .map_err(|e| e.to_string());
    // A pi install still running in the background must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    r
}

/// The test server runs Linux workers.
#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    eprintln!("warden-server-test: Linux only");
    ExitCode::from(2)
}
