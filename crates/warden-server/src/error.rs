//! Errors: [`ServerError`] for `serve` itself (start-up and fatal IO), [`ApiError`] for one HTTP
//! request (always a JSON body `{"error":{"code":…,"message":…}}`).

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why `serve` could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A file or directory of the state dir could not be read or written.
    #[error("failed to {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The store could not be opened or queried.
    #[error("store error: {0}")]
    Store(#[from] warden_store::StoreError),
    /// Crash recovery (the reaper) failed.
    #[error("failed to reap orphaned workers: {0}")]
    Reap(warden_host::worker::WorkerError),
    /// Installing pi failed.
    #[error("failed to install pi: {0}")]
    InstallPi(#[from] warden_agent::InstallError),
    /// No listen address could be bound.
    #[error("failed to bind any listen address: {0}")]
    NoListener(String),
    /// The HTTP server failed.
    #[error("http server failed: {0}")]
    Http(std::io::Error),
    /// The Telegram channel cannot start (another poller, a chat's unknown tenant).
    #[error("telegram: {0}")]
    Telegram(String),
    /// The options are inconsistent.
    #[error("invalid serve options: {0}")]
    Options(String),
}

impl ServerError {
    /// An IO error with its operation and path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ServerError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// An error answered to an HTTP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (`bad_request`, `unknown_tenant`, `queue_full`, …).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with code `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500 with code `internal`; the cause goes to the log, not only to the client.
    pub fn internal(message: impl Into<String>) -> Self {
        let message = message.into();
        tracing::error!(%message, "internal error");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<warden_store::StoreError> for ApiError {
    fn from(e: warden_store::StoreError) -> Self {
        match e {
            warden_store::StoreError::TurnNotFound(id) => {
                ApiError::not_found(format!("no turn {id}"))
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, self.code, &self.message)
    }
}

/// The JSON error body every 4xx/5xx of the API carries.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}
