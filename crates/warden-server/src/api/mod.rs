//! The HTTP API: routes, auth, and the layers every response goes through (JSON errors for
//! every 4xx/5xx, panics caught as JSON 500s, body limits, request tracing).

pub mod jails;
pub mod system;
pub mod turns;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::require_token;
use crate::error::error_response;
use crate::state::App;

/// The router: `/healthz` and `/openapi.json` open, everything else behind the bearer token.
pub fn router(app: Arc<App>, token: Arc<String>) -> Router {
    let body_limit = app.opts.max_body_bytes;
    let authed = Router::new()
        .route("/v1/layout", get(system::layout))
        .route("/v1/jails", get(jails::list))
        .route("/v1/turns", get(turns::list).post(turns::create))
        .route("/v1/turns/{id}", get(turns::show).delete(turns::cancel))
        .route("/v1/turns/{id}/events", get(turns::events))
        .route("/metrics", get(system::metrics))
        .route_layer(from_fn_with_state(token, require_token));
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/openapi.json", get(system::openapi))
        .merge(authed)
        .fallback(not_found)
        .layer(map_response(json_errors))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                tracing::error!("a request handler panicked");
                error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the server hit a bug handling this request",
                )
            },
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such route; see /openapi.json",
    )
}

/// Gives axum's own plain-text rejections (405, 413, 415, …) the API's JSON error body.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let code = match status {
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let reason = status.canonical_reason().unwrap_or("error").to_lowercase();
    error_response(status, code, &reason)
}
