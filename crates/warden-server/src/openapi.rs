//! The OpenAPI 3.1 document of the API, kept by hand next to one route table ([`ROUTES`]) that a
//! test checks against the router (utoipa would derive it, but the schemas here are few and the
//! table keeps the doc honest without a proc-macro dependency).

use serde_json::{json, Map, Value};

/// A documented route.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method, lowercase.
    pub method: &'static str,
    /// Path template.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Whether the bearer token is required.
    pub auth: bool,
    /// Success status and the schema it returns (a `$ref` name, or `text`/`sse`).
    pub ok: (u16, &'static str),
}

/// Every route the router serves.
pub const ROUTES: [Route; 10] = [
    Route { method: "get", path: "/healthz", summary: "Liveness and the addresses served", auth: false, ok: (200, "Health") },
    Route { method: "get", path: "/openapi.json", summary: "This document", auth: false, ok: (200, "object") },
    Route { method: "get", path: "/v1/layout", summary: "The validated layout", auth: true, ok: (200, "object") },
    Route { method: "get", path: "/v1/jails", summary: "Live workers and the layout's service jails", auth: true, ok: (200, "Jails") },
    Route { method: "post", path: "/v1/turns", summary: "Queue a turn (argv or agent prompt); ?wait=true returns the result", auth: true, ok: (202, "Accepted") },
    Route { method: "get", path: "/v1/turns", summary: "List turns, newest first (?tenant, status, kind, before, limit)", auth: true, ok: (200, "TurnList") },
    Route { method: "get", path: "/v1/turns/{id}", summary: "A turn and its result", auth: true, ok: (200, "Turn") },
    Route { method: "delete", path: "/v1/turns/{id}", summary: "Cancel a queued or running turn", auth: true, ok: (200, "Turn") },
    Route { method: "get", path: "/v1/turns/{id}/events", summary: "Server-sent events: stdout, stderr, agent, then end (data = the result); resumes from Last-Event-ID", auth: true, ok: (200, "sse") },
    Route { method: "get", path: "/metrics", summary: "Prometheus metrics", auth: true, ok: (200, "text") },
];

fn content(schema: &str) -> Value {
    match schema {
        "text" => json!({"text/plain": {"schema": {"type": "string"}}}),
        "sse" => json!({"text/event-stream": {"schema": {"type": "string"}}}),
        "object" => json!({"application/json": {"schema": {"type": "object"}}}),
        name => {
            json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}})
        }
    }
}

fn operation(r: &Route) -> Value {
    let mut responses = Map::new();
    responses.insert(
        r.ok.0.to_string(),
        json!({"description": "success", "content": content(r.ok.1)}),
    );
    let errors: &[u16] = match (r.method, r.path) {
        ("post", _) => &[400, 401, 404, 413, 429, 503],
        (_, p) if p.contains("{id}") => &[401, 404, 409],
        _ if r.auth => &[401],
        _ => &[],
    };
    for code in errors {
        responses.insert(
            code.to_string(),
            json!({"description": "error", "content": content("Error")}),
        );
    }
    let mut op = json!({"summary": r.summary, "responses": responses});
    if r.auth {
        op["security"] = json!([{"bearer": []}]);
    }
    if r.path.contains("{id}") {
        op["parameters"] =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    }
    if r.method == "post" {
        op["requestBody"] = json!({"required": true, "content": content("TurnRequest")});
        op["parameters"] = json!([{"name": "wait", "in": "query", "schema": {"type": "boolean"}}]);
        op["responses"]["200"] =
            json!({"description": "the result (?wait=true)", "content": content("Turn")});
    }
    op
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for r in &ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method] = operation(r);
    }
    let size = json!({"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "examples": ["512M"]}]});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Warden control plane", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "the token in <state_dir>/token"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "TurnRequest": {"type": "object", "required": ["tenant"], "additionalProperties": false, "properties": {
                    "tenant": {"type": "string"},
                    "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "prompt": {"type": "string", "maxLength": crate::request::MAX_PROMPT_BYTES},
                    "limits": {"type": "object", "additionalProperties": false, "properties": {
                        "memory": size, "pids": {"type": "integer"}, "timeout_ms": {"type": "integer"}, "output_bytes": size}},
                    "network": {"enum": ["none", "shared", "vnet"]},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "Accepted": {"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"}}},
                "Turn": {"type": "object", "properties": {
                    "id": {"type": "string"}, "tenant": {"type": "string"}, "kind": {"enum": ["argv", "agent"]},
                    "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                    "exit_code": {"type": ["integer", "null"]}, "failure": {"type": ["string", "null"]},
                    "stdout": {"type": "string"}, "stderr": {"type": "string"}, "reply": {"type": ["string", "null"]},
                    "usage": {"type": ["object", "null"]}, "stop_reason": {"type": ["string", "null"]},
                    "worker": {"type": ["string", "null"]}, "created_ms": {"type": "integer"},
                    "started_ms": {"type": ["integer", "null"]}, "finished_ms": {"type": ["integer", "null"]},
                    "timings": {"type": "object"}, "request": {"type": "object"}}},
                "TurnList": {"type": "object", "properties": {"turns": {"type": "array", "items": {"$ref": "#/components/schemas/Turn"}}}},
                "Jails": {"type": "object", "properties": {"workers": {"type": "array"}, "services": {"type": "array"}}},
                "Health": {"type": "object", "properties": {"status": {"type": "string"}, "listening": {"type": "array"}, "skipped": {"type": "array"}}}
            }
        }
    })
}
