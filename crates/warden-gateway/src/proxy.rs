//! The HTTP side: `/v1/*` from workers, forwarded to the upstream with the provider key.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use futures_util::stream;
use serde_json::json;

use crate::body::{rewrite_request, UsageScanner};
use crate::{Gateway, Grant};

/// The gateway's routes: everything under `/v1/`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/{*rest}", any(forward))
        .with_state(gateway)
}

/// An OpenAI-shaped error, which pi shows as the provider's message.
fn error(status: StatusCode, kind: &str, message: String) -> Response {
    let body = json!({"error": {"message": message, "type": kind}});
    (status, axum::Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(str::trim)
}

async fn forward(
    State(gw): State<Arc<Gateway>>,
    Path(rest): Path<String>,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(grant) = bearer(&headers).and_then(|t| gw.lookup(t)) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "no live turn token: the model gateway answers only turns that Warden is running"
                .into(),
        );
    };
    if let Some(budget) = gw.config.tenant_token_budget {
        let store = gw.store.clone();
        let tenant = grant.tenant.clone();
        let used = tokio::task::spawn_blocking(move || store.tenant_model_usage(&tenant)).await;
        match used {
            Ok(Ok(u)) if u.total() >= budget => {
                return error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "insufficient_quota",
                    format!(
                        "tenant {} has used {} of its {budget}-token budget (gateway.tenant_token_budget); raise the budget to go on",
                        grant.tenant,
                        u.total()
                    ),
                );
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    format!("failed to read the tenant's token usage: {e}"),
                )
            }
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    format!("usage lookup failed: {e}"),
                )
            }
        }
    }
    let body = match axum::body::to_bytes(body, gw.config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "request body larger than {} bytes or unreadable",
                    gw.config.max_body_bytes
                ),
            )
        }
    };
    // A rough prompt size (4 bytes a token) for servers that stream no usage.
    let prompt_estimate = body.len() as u64 / 4;
    let body = if method == Method::POST && rest.ends_with("chat/completions") {
        rewrite_request(&body, gw.config.flatten_content)
            .map(Bytes::from)
            .unwrap_or(body)
    } else {
        body
    };
    let url = format!("{}/{rest}", gw.config.upstream.trim_end_matches('/'));
    let mut req = gw.http.request(method, &url).body(body);
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = headers.get(&name) {
            req = req.header(name, v);
        }
    }
    if let Some(key) = &gw.config.api_key {
        req = req.bearer_auth(key);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            // reqwest's message names the URL, never a header: the key does not leak here.
            tracing::warn!(upstream = %gw.config.upstream, error = %e, "upstream unreachable");
            return error(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!(
                    "the model gateway could not reach its upstream {}: {e}",
                    gw.config.upstream
                ),
            );
        }
    };
    relay(gw, grant, prompt_estimate, resp)
}

/// Streams the upstream's answer back chunk by chunk, scanning it for usage, which is recorded when the
/// body ends (or the worker goes away).
fn relay(
    gw: Arc<Gateway>,
    grant: Grant,
    prompt_estimate: u64,
    resp: reqwest::Response,
) -> Response {
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp.headers().get(header::CONTENT_TYPE).cloned();
    let tap = Tap {
        gw,
        grant,
        scanner: UsageScanner::default(),
        prompt_estimate,
        recorded: false,
    };
    let body = stream::unfold((resp, tap), |(mut resp, mut tap)| async move {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                tap.scanner.feed(&chunk);
                Some((Ok::<Bytes, std::io::Error>(chunk), (resp, tap)))
            }
            Ok(None) => {
                tap.record();
                None
            }
            Err(e) => {
                tap.record();
                Some((Err(std::io::Error::other(e.to_string())), (resp, tap)))
            }
        }
    });
    let mut out = Response::new(Body::from_stream(body));
    *out.status_mut() = status;
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    // SSE through a proxy: no buffering on the way.
    out.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out
}

/// Records a response's usage exactly once: at its end, or when the stream is dropped early.
struct Tap {
    gw: Arc<Gateway>,
    grant: Grant,
    scanner: UsageScanner,
    prompt_estimate: u64,
    recorded: bool,
}

impl Tap {
    fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        self.scanner.finish();
        // Reported usage when the provider gives it; else an estimate (streamed chunks, body size), so
        // budgets hold against servers that report nothing in streams (llama-cpp-python).
        let (prompt, completion, estimated) = match self.scanner.usage {
            Some((p, c)) => (p, c, false),
            None if self.scanner.content_chunks > 0 => {
                (self.prompt_estimate, self.scanner.content_chunks, true)
            }
            None => (0, 0, false),
        };
        let model = self.scanner.model.clone().unwrap_or_default();
        if let Err(e) = self.gw.store.record_model_usage(
            &self.grant.turn,
            &self.grant.tenant,
            &model,
            warden_store::model_usage::Tokens {
                prompt,
                completion,
                estimated,
            },
        ) {
            tracing::warn!(turn = %self.grant.turn, error = %e, "failed to record model usage");
        }
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.record();
    }
}
