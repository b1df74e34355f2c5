//! `/v1/turns`: submit (optionally waiting for the result), list, show, cancel, and the SSE
//! event stream.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde_json::json;
use warden_store::{NewTurn, TurnEvent, TurnFilter, TurnId, TurnKind, TurnStatus};

use crate::error::ApiError;
use crate::request::TurnRequest;
use crate::state::{lock, App};
use crate::view::{Accepted, TurnView};

fn flag(q: &HashMap<String, String>, name: &str) -> bool {
    matches!(
        q.get(name).map(String::as_str),
        Some("true" | "1" | "yes" | "")
    )
}

/// Parses, validates and queues a turn (the one place a turn is created).
pub fn submit(app: &Arc<App>, req: TurnRequest) -> Result<TurnId, ApiError> {
    submit_with(app, req, None)
}

/// [`submit`], registering `waiter` for the turn's result before it can start.
pub fn submit_with(
    app: &Arc<App>,
    req: TurnRequest,
    waiter: Option<tokio::sync::oneshot::Sender<TurnView>>,
) -> Result<TurnId, ApiError> {
    let spec = req.validate(&app.layout)?;
    if matches!(spec.work, crate::request::Work::Prompt(_)) {
        // Refused at once, with the fixing command: the server never installs pi (setup's `agent` step does).
        crate::agent_turn::installed_pi(app).map_err(|why| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "agent_unavailable", why)
        })?;
    }
    if *app.shutdown.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        ));
    }
    lock(&app.queue).reserve().map_err(|full| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "queue_full",
            format!("{} turns are already waiting; retry later", full.capacity),
        )
    })?;
    let new = NewTurn {
        tenant: spec.tenant.clone(),
        kind: spec.kind(),
        request: serde_json::to_value(&spec).unwrap_or_default(),
    };
    let turn = match app.store.create_turn(&new) {
        Ok(t) => t,
        Err(e) => {
            lock(&app.queue).unreserve();
            return Err(e.into());
        }
    };
    tracing::info!(turn = %turn.id, tenant = %turn.tenant, kind = %turn.kind, "turn queued");
    if let Some(w) = waiter {
        lock(&app.waiters)
            .entry(turn.id.clone())
            .or_default()
            .push(w);
    }
    let tenant = spec.tenant.clone();
    lock(&app.specs).insert(turn.id.clone(), spec);
    lock(&app.queue).push(&tenant, turn.id.clone(), true);
    crate::turn_runner::dispatch(app);
    Ok(turn.id)
}

/// `POST /v1/turns[?wait=true]`.
pub async fn create(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "body_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(r.status(), code, r.body_text())
    })?;
    let req: TurnRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_json",
            format!("invalid turn request: {e}"),
        )
    })?;
    // Subscribe before queueing so a very fast turn's end is not missed.
    let finished = app.finished.subscribe();
    if flag(&q, "wait") {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = submit_with(&app, req, Some(tx))?;
        let mut shutdown = app.shutdown.subscribe();
        let view = tokio::select! {
            // The result as stored by `App::finish`; if it was not delivered (a store error
            // at the end), read the store.
            r = rx => match r {
                Ok(v) => v,
                Err(_) => wait_for(&app, &id, finished).await?,
            },
            // Shutdown: the turn may stay queued.
            _ = async { shutdown.wait_for(|s| *s).await.is_ok() } => {
                wait_for(&app, &id, finished).await?
            }
        };
        let status = if view.status.is_terminal() {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return Ok((status, Json(view)).into_response());
    }
    let id = submit(&app, req)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id: id.to_string(),
            status: TurnStatus::Queued,
        }),
    )
        .into_response())
}

/// Waits until the turn is final (or shutdown leaves it queued) and returns it.
pub async fn wait_for(
    app: &Arc<App>,
    id: &TurnId,
    mut finished: tokio::sync::watch::Receiver<u64>,
) -> Result<TurnView, ApiError> {
    let mut shutdown = app.shutdown.subscribe();
    loop {
        let turn = app
            .store
            .get_turn(id)?
            .ok_or_else(|| ApiError::not_found(format!("no turn {id}")))?;
        let stuck = *shutdown.borrow() && turn.status == TurnStatus::Queued;
        if turn.status.is_terminal() || stuck {
            return Ok(TurnView::from(&turn));
        }
        tokio::select! {
            _ = finished.changed() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// `GET /v1/turns?tenant=&status=&kind=&before=&limit=`.
pub async fn list(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let parse = |name: &str| q.get(name).filter(|s| !s.is_empty());
    let filter = TurnFilter {
        tenant: parse("tenant").cloned(),
        status: parse("status")
            .map(|s| s.parse::<TurnStatus>().map_err(ApiError::bad_request))
            .transpose()?,
        kind: parse("kind")
            .map(|s| s.parse::<TurnKind>().map_err(ApiError::bad_request))
            .transpose()?,
        before: parse("before").map(|s| TurnId::from(s.as_str())),
    };
    let limit = match parse("limit") {
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be 1..=1000"))?,
        None => 50,
    };
    let turns: Vec<TurnView> = app
        .store
        .list_turns(&filter, limit)?
        .iter()
        .map(TurnView::from)
        .collect();
    Ok(Json(json!({ "turns": turns })))
}

/// `GET /v1/turns/{id}`.
pub async fn show(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<TurnView>, ApiError> {
    let id = TurnId(id);
    let turn = app
        .store
        .get_turn(&id)?
        .ok_or_else(|| ApiError::not_found(format!("no turn {id}")))?;
    Ok(Json(TurnView::from(&turn)))
}

/// `DELETE /v1/turns/{id}`: a queued turn becomes cancelled, a running one has its worker killed.
pub async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = TurnId(id);
    let finished = app.finished.subscribe();
    if !app.cancel(&id, "cancelled")? {
        let turn = app
            .store
            .get_turn(&id)?
            .ok_or_else(|| ApiError::not_found(format!("no turn {id}")))?;
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_finished",
            format!("turn {id} is already {}", turn.status),
        ));
    }
    // Killing a worker takes milliseconds: answer with the final state when it is quick.
    let view = tokio::time::timeout(Duration::from_secs(5), wait_for(&app, &id, finished)).await;
    match view {
        Ok(v) => Ok((StatusCode::OK, Json(v?)).into_response()),
        Err(_) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id.to_string(), "status": "cancelling"})),
        )
            .into_response()),
    }
}

struct Tail {
    app: Arc<App>,
    id: TurnId,
    after: u64,
    pending: VecDeque<TurnEvent>,
    events: tokio::sync::watch::Receiver<u64>,
    shutdown: tokio::sync::watch::Receiver<bool>,
    done: bool,
    /// Polls seen with the turn final but no `end` stored (a crash between the two writes).
    final_without_end: u32,
}

fn sse_event(e: &TurnEvent) -> Event {
    Event::default()
        .id(e.seq.to_string())
        .event(e.kind.as_str())
        .data(&e.data)
}

/// `GET /v1/turns/{id}/events`: stored events after `Last-Event-ID` (or `?after=`), then live ones,
/// ending with `end` (whose data is the stored result).
pub async fn events(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let id = TurnId(id);
    if app.store.get_turn(&id)?.is_none() {
        return Err(ApiError::not_found(format!("no turn {id}")));
    }
    let after_text = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| q.get("after").cloned());
    let after = match after_text {
        Some(t) => t
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("Last-Event-ID must be an event seq"))?,
        None => 0,
    };
    let tail = Tail {
        events: app.events.subscribe(),
        shutdown: app.shutdown.subscribe(),
        app,
        id,
        after,
        pending: VecDeque::new(),
        done: false,
        final_without_end: 0,
    };
    let stream = stream::unfold(tail, |mut t| async move {
        loop {
            if t.done {
                return None;
            }
            if let Some(e) = t.pending.pop_front() {
                t.after = e.seq;
                if e.kind == warden_store::EventKind::End {
                    t.done = true;
                }
                return Some((Ok(sse_event(&e)), t));
            }
            // Mark the current tick seen before reading, so an append after the read wakes us.
            t.events.borrow_and_update();
            match t.app.store.events_since(&t.id, t.after) {
                Ok(evs) if !evs.is_empty() => {
                    t.pending.extend(evs);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(turn = %t.id, error = %e, "failed to read events");
                    return None;
                }
            }
            if let Ok(Some(turn)) = t.app.store.get_turn(&t.id) {
                if turn.status.is_terminal() {
                    t.final_without_end += 1;
                    if t.final_without_end > 20 {
                        // The end event was lost (crash between the two writes): synthesise it.
                        t.done = true;
                        let data =
                            serde_json::to_string(&TurnView::from(&turn)).unwrap_or_default();
                        return Some((Ok(Event::default().event("end").data(data)), t));
                    }
                }
            }
            if *t.shutdown.borrow() {
                // Give running turns their deadline; a queued turn's stream ends with the server.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::select! {
                _ = t.events.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
