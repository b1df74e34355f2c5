//! `/healthz`, `/v1/layout`, `/metrics`, `/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::state::{lock, App};

/// Liveness, the addresses served and those skipped.
pub async fn healthz(State(app): State<Arc<App>>) -> Json<Value> {
    let (bound, skipped) = lock(&app.listening).clone();
    let status = if *app.shutdown.borrow() {
        "shutting_down"
    } else {
        "ok"
    };
    Json(json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "listening": bound.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "skipped": skipped,
    }))
}

/// The validated layout.
pub async fn layout(State(app): State<Arc<App>>) -> Json<Value> {
    Json(serde_json::to_value(&app.layout).unwrap_or(Value::Null))
}

/// Prometheus text.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let (running, queued, limit) = app.load();
    let mut body = app.metrics.render(running, queued, limit);
    body.push_str(&app.workers.metrics());
    body.push_str(&app.warm.metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

/// The OpenAPI document.
pub async fn openapi() -> Json<Value> {
    Json(crate::openapi::document())
}
