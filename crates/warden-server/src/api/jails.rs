//! `GET /v1/jails`: live workers (warden-linux's records, with the turn each runs) and the
//! layout's service jails.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use warden_store::{TurnFilter, TurnStatus};

use crate::error::ApiError;
use crate::state::App;

/// Workers and service jails.
pub async fn list(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let state_dir = &app.opts.state_dir;
    let filter = TurnFilter {
        status: Some(TurnStatus::Running),
        ..TurnFilter::default()
    };
    let by_worker: HashMap<String, String> = app
        .store
        .list_turns(&filter, 10_000)?
        .into_iter()
        .filter_map(|t| t.worker.map(|w| (w, t.id.to_string())))
        .collect();
    let workers: Vec<Value> = warden_linux::record::list(state_dir)
        .into_iter()
        .map(|name| {
            let rec = warden_linux::record::Record::load(&warden_linux::record::record_path(
                state_dir, &name,
            ))
            .ok();
            json!({
                "name": name,
                "kind": "worker",
                "turn": by_worker.get(&name),
                "owner_pid": rec.as_ref().map(|r| r.owner_pid),
                "init_pid": rec.as_ref().and_then(|r| r.init_pid),
                "veth": rec.as_ref().and_then(|r| r.veth.clone()),
                "alive": rec.as_ref().is_some_and(|r| r.owner_alive()),
            })
        })
        .collect();
    let services: Vec<Value> = app
        .layout
        .services
        .iter()
        .map(|s| json!({"name": s.jail, "kind": "service", "role": s.role, "addr": s.addr, "fqdn": s.fqdn, "shape": s.shape}))
        .collect();
    Ok(Json(json!({"workers": workers, "services": services})))
}
