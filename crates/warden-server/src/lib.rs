//! warden-server: `warden serve`, the control plane.
//!
//! An axum HTTP API (bearer token, JSON errors) over a SQLite store (warden-store), a queue
//! (global concurrency limit, FIFO per tenant, bounded), and a runner that executes each turn in
//! an ephemeral worker of whichever backend the caller hands in (the one worker contract,
//! `warden_host::worker`: Linux namespaces or FreeBSD jails) — argv turns, or agent turns with pi
//! (warden-agent) on a VNET worker. On start it recovers from a crash (reaps orphaned workers, frees leases, settles
//! unfinished turns); on SIGTERM it stops accepting, lets running turns finish until a deadline,
//! then cancels them. [`client`] is the matching HTTP client for the CLI.
//!
//! Modules: `api/` (routes), `auth`, `request` (turn request → validated spec), `scheduler`
//! (the queue), `turn_runner`, `agent_turn`, `recovery`, `metrics`, `openapi`, `view` (results),
//! `state` (shared state, options), `client`, `telegram` (the Telegram channel's view of the
//! server; the channel itself is warden-telegram).
#![forbid(unsafe_code)]

pub mod agent_turn;
pub mod api;
pub mod auth;
pub mod client;
mod error;
pub mod metrics;
pub mod openapi;
pub mod recovery;
pub mod request;
pub mod scheduler;
pub mod state;
mod sync;
pub mod telegram;
mod turn_runner;
pub mod view;
pub mod warm;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use warden_core::Layout;
use warden_store::Store;

pub use client::{token, Client, ClientError, ListQuery};
pub use error::{ApiError, ServerError};
pub use request::{LimitsRequest, Network, TurnRequest};
pub use state::{GatewayOptions, LateListen, ServeOptions};
pub use view::TurnView;
pub use warden_host::worker::Workers;
pub use warden_store::RecoveryPolicy;
pub use warm::WarmOptions;

use crate::state::{lock, App};

/// Runs the control plane on `workers` until SIGTERM or SIGINT, then shuts down gracefully.
pub async fn serve(
    layout: Layout,
    opts: ServeOptions,
    workers: Arc<dyn Workers>,
) -> Result<(), ServerError> {
    serve_until(layout, opts, workers, termination()).await
}

/// Resolves on SIGTERM or SIGINT.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown signal received");
}

/// The addresses to bind: the override, else each layout address at the layout's port.
fn listen_addrs(layout: &Layout, opts: &ServeOptions) -> Vec<SocketAddr> {
    match &opts.listen {
        Some(list) => list.clone(),
        None => layout
            .listen
            .iter()
            .map(|ip| SocketAddr::from((*ip, layout.port)))
            .collect(),
    }
}

/// Runs the control plane until `stop` resolves, then shuts down gracefully.
pub async fn serve_until(
    layout: Layout,
    mut opts: ServeOptions,
    workers: Arc<dyn Workers>,
    stop: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    check_options(&mut opts)?;
    // One poller per state directory: taken before anything else, so a second serve stops here.
    let poller_lock = telegram_poller_lock(&layout, &opts)?;
    let token = Arc::new(auth::load_or_create_token(&opts.state_dir)?);
    let store = Arc::new(Store::open(&opts.state_dir.join("control.db"))?);
    let recovered = recover(&workers, &store, opts.recovery).await?;
    let (gateway, gateway_listener) = start_gateway(&opts, &store);
    let app = Arc::new(App {
        queue: Mutex::new(scheduler::Queue::new(opts.queue_size, opts.concurrency)),
        running: Mutex::new(Default::default()),
        events: watch::channel(0).0,
        finished: watch::channel(0).0,
        metrics: metrics::Metrics::default(),
        shutdown: watch::channel(false).0,
        listening: Mutex::new((Vec::new(), Vec::new())),
        workers,
        waiters: Mutex::new(Default::default()),
        specs: Mutex::new(Default::default()),
        gateway,
        warm: Default::default(),
        layout,
        opts,
        store,
    });
    for view in &recovered.ended {
        app.append_end(view);
    }
    for (tenant, id) in recovered.requeue {
        lock(&app.queue).push(&tenant, id, false);
    }
    let listeners = bind_listeners(&app).await?;
    let serve_file = write_serve_file(&app)?;
    let router = api::router(app.clone(), token);
    let mut servers: Vec<_> = listeners
        .into_iter()
        .map(|l| spawn_http(&app, l, router.clone()))
        .collect();
    if let (Some(l), Ok((gw, _))) = (gateway_listener, &app.gateway) {
        servers.push(spawn_http(&app, l, warden_gateway::router(gw.clone())));
    }
    if let Some(late) = app.opts.late_listen.clone() {
        tokio::spawn(listen_late(app.clone(), late, router.clone()));
    }
    // serve installs nothing (setup's `agent` step does): without pi, agent turns are refused at once.
    if let Err(e) = agent_turn::installed_pi(&app) {
        tracing::warn!(error = %e, "pi is not installed; agent turns will be refused");
    }
    crate::turn_runner::dispatch(&app);
    crate::turn_runner::spawn_expiry(&app);
    let channel = start_telegram(&app);
    tracing::info!(telegram = channel.is_some(), "control plane ready");

    stop.await;
    shutdown(&app).await;
    if let Some(c) = channel {
        // Chat workers finish the step under way (a part being sent gets recorded).
        if tokio::time::timeout(Duration::from_secs(10), c)
            .await
            .is_err()
        {
            tracing::warn!("the telegram channel did not stop in time");
        }
    }
    drop(poller_lock);
    for s in servers {
        // In-flight requests (SSE of a turn that will never run) must not hold the exit.
        match tokio::time::timeout(Duration::from_secs(2), s).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "http server ended with an error"),
            Ok(_) => {}
            Err(_) => tracing::info!("closed lingering connections"),
        }
    }
    {
        // Warm agents are stopped and their workers torn down before the backend's pool goes.
        let app = app.clone();
        let _ = tokio::task::spawn_blocking(move || app.warm.drain()).await;
    }
    {
        // Parked workers are discarded and waited for: nothing of them outlives the server.
        let workers = app.workers.clone();
        let _ = tokio::task::spawn_blocking(move || workers.shutdown()).await;
    }
    let _ = std::fs::remove_file(&serve_file);
    tracing::info!("control plane stopped");
    Ok(())
}

/// Creates the state directory and makes it absolute (workers need absolute paths: bind sources, records);
/// `pi_dir` must be absolute.
fn check_options(opts: &mut ServeOptions) -> Result<(), ServerError> {
    std::fs::create_dir_all(&opts.state_dir)
        .map_err(|e| ServerError::io("create directory", &opts.state_dir, e))?;
    opts.state_dir = opts
        .state_dir
        .canonicalize()
        .map_err(|e| ServerError::io("resolve", &opts.state_dir, e))?;
    if let Some(dir) = &opts.pi_dir {
        if !dir.is_absolute() {
            return Err(ServerError::Options(format!(
                "pi_dir {} must be absolute",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// With a Telegram channel: its chats' tenants are valid, and this server holds the state directory's poller
/// lock.
fn telegram_poller_lock(
    layout: &Layout,
    opts: &ServeOptions,
) -> Result<Option<warden_telegram::PollerLock>, ServerError> {
    let Some(cfg) = &opts.telegram else {
        return Ok(None);
    };
    for tenant in cfg.chats.values().flatten() {
        request::check_tenant(layout, tenant).map_err(|e| {
            ServerError::Telegram(format!(
                "telegram.chats: {} (fix the chat's tenant)",
                e.message
            ))
        })?;
    }
    warden_telegram::acquire(&opts.state_dir)
        .map(Some)
        .map_err(|e| ServerError::Telegram(e.to_string()))
}

/// Settles what a previous server left (on a blocking thread: it reaps workers), and logs it.
async fn recover(
    workers: &Arc<dyn Workers>,
    store: &Arc<Store>,
    policy: RecoveryPolicy,
) -> Result<recovery::Recovered, ServerError> {
    let recovered = {
        let (workers, store) = (workers.clone(), store.clone());
        tokio::task::spawn_blocking(move || recovery::recover(&*workers, &store, policy))
            .await
            .map_err(|e| ServerError::Options(format!("recovery thread failed: {e}")))??
    };
    for line in &recovered.reaped {
        tracing::info!(%line, "reaped");
    }
    if !recovered.interrupted.is_empty() {
        tracing::warn!(count = recovered.interrupted.len(), policy = ?policy, "settled turns a previous server left unfinished");
    }
    Ok(recovered)
}

/// Binds every listen address that can be bound (the others are logged and listed as skipped); none is an
/// error.
async fn bind_listeners(app: &App) -> Result<Vec<tokio::net::TcpListener>, ServerError> {
    let mut listeners = Vec::new();
    for addr in listen_addrs(&app.layout, &app.opts) {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                let bound = l.local_addr().unwrap_or(addr);
                tracing::info!(%bound, "listening");
                lock(&app.listening).0.push(bound);
                listeners.push(l);
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "skipping a listen address that cannot be bound");
                lock(&app.listening).1.push(format!("{addr}: {e}"));
            }
        }
    }
    if listeners.is_empty() {
        let skipped = lock(&app.listening).1.join("; ");
        return Err(ServerError::NoListener(skipped));
    }
    Ok(listeners)
}

/// How often a late listen address is asked for.
const LATE_LISTEN_EVERY: Duration = Duration::from_secs(2);

/// Binds the address `late` names once it is there (and not bound yet), serving `router` on it; asks every
/// [`LATE_LISTEN_EVERY`] until then or until shutdown. A socket bound to an address stays bound when the
/// address goes away and accepts again when it comes back, so one bind is enough.
async fn listen_late(app: Arc<App>, late: state::LateListen, router: axum::Router) {
    let mut down = app.shutdown.subscribe();
    loop {
        let ask = late.0.clone();
        let addr = tokio::task::spawn_blocking(move || ask())
            .await
            .ok()
            .flatten();
        if let Some(addr) = addr {
            if lock(&app.listening).0.contains(&addr) {
                return;
            }
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(bound = %addr, "listening (address that appeared after start)");
                    lock(&app.listening).0.push(addr);
                    if let Err(e) = write_serve_file(&app) {
                        tracing::warn!(error = %e, "could not update serve.json");
                    }
                    // Ends with the app's shutdown, as the others do; serve does not wait for it.
                    drop(spawn_http(&app, l, router));
                    return;
                }
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "late listen address not bindable yet")
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(LATE_LISTEN_EVERY) => {}
            _ = down.wait_for(|s| *s) => return,
        }
    }
}

/// Writes `serve.json` (pid and bound addresses: how clients find this server); returns its path.
fn write_serve_file(app: &App) -> Result<std::path::PathBuf, ServerError> {
    let serve_file = app.opts.state_dir.join(client::SERVE_FILE);
    let info = serde_json::json!({
        "pid": std::process::id(),
        "listening": lock(&app.listening).0.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    });
    std::fs::write(&serve_file, info.to_string())
        .map_err(|e| ServerError::io("write", &serve_file, e))?;
    Ok(serve_file)
}

/// Serves `router` on `listener` until the app shuts down.
fn spawn_http(
    app: &App,
    listener: tokio::net::TcpListener,
    router: axum::Router,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let mut down = app.shutdown.subscribe();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = down.wait_for(|s| *s).await;
            })
            .await
    })
}

/// Starts the Telegram channel when one is configured.
fn start_telegram(app: &Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    let cfg = app.opts.telegram.clone()?;
    let host = Arc::new(telegram::ServerTurns { app: app.clone() });
    let (store, stop) = (app.store.clone(), app.shutdown.subscribe());
    Some(tokio::spawn(async move {
        if let Err(e) = warden_telegram::run(cfg, store, host, stop).await {
            tracing::error!(error = %e, "telegram channel stopped");
        }
    }))
}

/// Builds the model gateway over its listener (bound by the caller, in the network namespace that holds
/// the bridge). A failure is kept as the reason agent turns give, not a startup error: argv turns do not
/// need it.
fn start_gateway(
    opts: &ServeOptions,
    store: &Arc<Store>,
) -> (state::GatewaySlot, Option<tokio::net::TcpListener>) {
    let Some(g) = &opts.gateway else {
        return (Err("no model gateway is configured".into()), None);
    };
    let gw = match warden_gateway::Gateway::new(g.config.clone(), store.clone()) {
        Ok(gw) => gw,
        Err(e) => return (Err(e.to_string()), None),
    };
    let bound = g.listener.clone().and_then(|l| {
        l.try_clone()
            .and_then(|l| {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
            })
            .map_err(|e| e.to_string())
    });
    let addr = match &g.listener {
        Ok(l) => l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        Err(_) => "the gateway address".to_string(),
    };
    match bound {
        Ok(l) => {
            let local = l.local_addr().map(|a| a.to_string()).unwrap_or(addr);
            tracing::info!(%local, upstream = %g.config.upstream, "model gateway listening");
            (Ok((gw, format!("http://{local}/v1"))), Some(l))
        }
        Err(e) => {
            let why = format!(
                "the model gateway cannot listen on {addr}: {e} (run `warden setup` so the bridge has the gateway address, or change gateway.port)"
            );
            tracing::warn!(%why, "agent turns will fail");
            (Err(why), None)
        }
    }
}

/// Stops accepting, lets running turns finish until the deadline, then cancels them.
async fn shutdown(app: &Arc<App>) {
    app.shutdown.send_replace(true);
    lock(&app.queue).pause();
    let deadline = Instant::now() + app.opts.shutdown_deadline;
    let mut finished = app.finished.subscribe();
    while lock(&app.queue).running() > 0 && Instant::now() < deadline {
        // Short waits: a runner counts as done only just after its turn's `finished` wake-up.
        let _ = tokio::time::timeout(Duration::from_millis(20), finished.changed()).await;
    }
    let left: Vec<_> = lock(&app.running).values().cloned().collect();
    if !left.is_empty() {
        tracing::warn!(
            count = left.len(),
            "shutdown deadline passed; cancelling running turns"
        );
        for h in left {
            h.cancel("shutdown");
        }
        let grace = Instant::now() + Duration::from_secs(10);
        while lock(&app.queue).running() > 0 && Instant::now() < grace {
            let _ = tokio::time::timeout(Duration::from_millis(20), finished.changed()).await;
        }
    }
}
