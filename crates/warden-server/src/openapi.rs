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
    /// The operationId (named by the links from `POST /v1/turns`).
    pub id: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Whether the bearer token is required.
    pub auth: bool,
    /// Success status and the schema it returns (a `$ref` name, or `text`/`sse`).
    pub ok: (u16, &'static str),
}

/// Every route the router serves.
pub const ROUTES: [Route; 10] = [
    Route { method: "get", path: "/healthz", id: "health", summary: "Liveness and the addresses served", auth: false, ok: (200, "Health") },
    Route { method: "get", path: "/openapi.json", id: "openapi", summary: "This document", auth: false, ok: (200, "object") },
    Route { method: "get", path: "/v1/layout", id: "getLayout", summary: "The validated layout", auth: true, ok: (200, "object") },
    Route { method: "get", path: "/v1/jails", id: "listJails", summary: "Live workers and the layout's service jails", auth: true, ok: (200, "Jails") },
    Route { method: "post", path: "/v1/turns", id: "createTurn", summary: "Queue a turn (argv or agent prompt); ?wait=true returns the result", auth: true, ok: (202, "Accepted") },
    Route { method: "get", path: "/v1/turns", id: "listTurns", summary: "List turns, newest first (?tenant, status, kind, before, limit)", auth: true, ok: (200, "TurnList") },
    Route { method: "get", path: "/v1/turns/{id}", id: "getTurn", summary: "A turn and its result", auth: true, ok: (200, "Turn") },
    Route { method: "delete", path: "/v1/turns/{id}", id: "cancelTurn", summary: "Cancel a queued or running turn", auth: true, ok: (200, "Turn") },
    Route { method: "get", path: "/v1/turns/{id}/events", id: "turnEvents", summary: "Server-sent events: stdout, stderr, agent, then end (data = the result); resumes from Last-Event-ID", auth: true, ok: (200, "sse") },
    Route { method: "get", path: "/metrics", id: "metrics", summary: "Prometheus metrics", auth: true, ok: (200, "text") },
];

fn content(schema: &str) -> Value {
    match schema {
        "text" => json!({"text/plain": {"schema": {"type": "string"}}}),
        // Each event: `id` (the resume point), `event` (stdout, stderr, agent, end) and `data`.
        "sse" => json!({"text/event-stream": {"schema": {"type": "object", "properties": {
            "id": {"type": "string"}, "event": {"enum": ["stdout", "stderr", "agent", "end"]},
            "data": {"type": "string"}}}}}),
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
    let mut op = json!({"operationId": r.id, "summary": r.summary, "responses": responses});
    if r.auth {
        op["security"] = json!([{"bearer": []}]);
    }
    if r.path.contains("{id}") {
        op["parameters"] =
            json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}]);
    }
    if r.method == "delete" {
        op["responses"]["202"] = json!({"description": "cancelling (the worker is not gone within 5 s)",
            "content": content("Accepted")});
    }
    if r.method == "post" {
        op["requestBody"] = json!({"required": true, "content": content("TurnRequest")});
        op["parameters"] = json!([{"name": "wait", "in": "query", "schema": {"type": "boolean"}}]);
        op["responses"]["200"] =
            json!({"description": "the result (?wait=true)", "content": content("Turn")});
        // The queued turn's own routes, for clients (and schemathesis's stateful phase) to follow.
        let id = json!({"id": "$response.body#/id"});
        op["responses"]["202"]["links"] = json!({
            "GetTurn": {"operationId": "getTurn", "parameters": id},
            "CancelTurn": {"operationId": "cancelTurn", "parameters": id},
            "TurnEvents": {"operationId": "turnEvents", "parameters": id},
        });
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
    // Exactly what `request::TurnRequest::validate` accepts (narrower where JSON Schema cannot say
    // more): a schema-valid request is never answered 400.
    let u64_max = u64::MAX;
    let output_size = json!({"oneOf": [
        {"type": "integer", "minimum": 0, "maximum": u64_max},
        {"type": "string", "pattern": "^[1-9][0-9]{0,5}[KMGT]$", "examples": ["16M"]}]});
    let memory_size = json!({"oneOf": [
        {"type": "integer", "minimum": crate::request::MIN_MEMORY_BYTES, "maximum": u64_max},
        {"type": "string", "pattern": "^([4-9]|[1-9][0-9]{1,5})M$|^[1-9][0-9]{0,5}[GT]$", "examples": ["512M"]}]});
    let no_nul = "^[^\\u0000]*$";
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Warden control plane", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "the token in <state_dir>/token"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                    "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "TurnRequest": {"type": "object", "additionalProperties": false,
                    // An argv turn, or an agent turn (prompt), which runs on vnet only; never both.
                    "oneOf": [{"required": ["argv"]},
                        {"required": ["prompt"], "properties": {"network": {"const": "vnet"}}}],
                    "not": {"required": ["argv", "prompt"]},
                    "properties": {
                    "tenant": {"type": "string", "description": "one of the layout's tenants (with none configured, a DNS label); absent: the platform (namespace, system)",
                        "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
                    "argv": {"type": "array", "minItems": 1, "maxItems": crate::request::MAX_ARGV,
                        "prefixItems": [{"type": "string", "minLength": 1, "pattern": no_nul}],
                        "items": {"type": "string", "pattern": no_nul}},
                    "prompt": {"type": "string", "pattern": "\\S", "maxLength": crate::request::MAX_PROMPT_BYTES / 4,
                        "description": "at most 256 KiB of UTF-8 (a longer one is answered 413)"},
                    "limits": {"type": "object", "additionalProperties": false, "properties": {
                        "memory": memory_size,
                        "pids": {"type": "integer", "minimum": 1, "maximum": u64_max},
                        "timeout_ms": {"type": "integer", "minimum": 1, "maximum": crate::request::MAX_TIMEOUT_MS},
                        "output_bytes": output_size}},
                    "network": {"enum": ["none", "shared", "vnet"], "description": "agent turns (prompt) take vnet only"},
                    "env": {"type": "object", "maxProperties": crate::request::MAX_ENV,
                        "propertyNames": {"pattern": "^(?!PI_)[^=\\u0000]+$"},
                        "additionalProperties": {"type": "string", "pattern": no_nul}}}},
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
