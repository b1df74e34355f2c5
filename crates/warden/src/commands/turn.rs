//! `warden turn`: one agent turn through the control plane; prints the reply. `warden token`.

use std::io::Read;

use crate::cli::{Global, TurnArgs};
use crate::context;
use crate::exit::Exit;

/// A client of the local control plane (token and address from the state directory).
pub fn client(global: &Global) -> Result<warden_server::Client, Exit> {
    let (_, layout) = context::layout(global)?;
    let state = context::state_dir(&layout, context::default_backend());
    warden_server::Client::from_state_dir(&state, layout.port)
        .map_err(|e| Exit::failure(e.to_string()))
}

/// Maps a client error onto an exit code: the server rejecting the input is bad input (2).
pub fn client_exit(e: warden_server::ClientError) -> Exit {
    match &e {
        warden_server::ClientError::Api { status, .. } if (400..500).contains(status) => {
            Exit::usage(e.to_string())
        }
        _ => Exit::failure(e.to_string()),
    }
}

/// Runs a tokio future on a small runtime.
pub fn block_on<T>(f: impl std::future::Future<Output = T>) -> Result<T, Exit> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::failure(format!("failed to start the runtime: {e}")))?;
    Ok(rt.block_on(f))
}

/// Sends the prompt (arguments, or stdin when none) and prints the reply; exit 1 if the turn failed.
pub fn run(global: &Global, args: &TurnArgs) -> Result<(), Exit> {
    let prompt = if args.prompt.is_empty() {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Exit::failure(format!("failed to read the prompt from stdin: {e}")))?;
        s
    } else {
        args.prompt.join(" ")
    };
    let c = client(global)?;
    let tenant = match &args.tenant {
        Some(t) => t.clone(),
        None => context::layout(global)?.1.namespace,
    };
    let view = block_on(c.turn(&tenant, &prompt))?.map_err(client_exit)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&view).unwrap_or_default()
        );
    } else if let Some(reply) = &view.reply {
        println!("{reply}");
    }
    if view.status.as_str() == "succeeded" {
        Ok(())
    } else {
        Err(Exit::failure(format!(
            "turn {} {}: {}",
            view.id,
            view.status,
            view.failure.as_deref().unwrap_or("no reason")
        )))
    }
}

/// `warden token`: prints the control plane's bearer token.
pub fn token(global: &Global) -> Result<(), Exit> {
    let (_, layout) = context::layout(global)?;
    let state = context::state_dir(&layout, context::default_backend());
    let t = warden_server::token(&state).map_err(|e| Exit::failure(e.to_string()))?;
    println!("{t}");
    Ok(())
}
