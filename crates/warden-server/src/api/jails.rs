//! `GET /v1/jails`: live workers (the backend's, through the worker contract, with the turn each runs) and the
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
    let workers: Vec<Value> = app
        .workers
        .list()
        .into_iter()
        .map(|w| {
            let mut v = json!({
                "name": w.name,
                "kind": "worker",
                "turn": by_worker.get(&w.name),
                "alive": w.alive,
            });
            if let (Some(v), Value::Object(detail)) = (v.as_object_mut(), w.detail) {
                v.extend(detail);
            }
            v
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
