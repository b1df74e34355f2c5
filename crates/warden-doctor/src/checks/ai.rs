//! `ai.models`: the ai jail's OpenAI-compatible server answers `GET /v1/models` and names the model.

use std::time::{Duration, Instant};

use warden_core::layout::Role;
use warden_core::linux_ai::MODEL_ALIAS;

use crate::report::Check;
use crate::Ctx;

/// The model server of the ai jail lists the local model.
pub fn models(ctx: &Ctx) -> Vec<Check> {
    let layout = ctx.layout();
    let Some(ai) = layout.service(Role::Ai) else {
        return Vec::new();
    };
    let url = format!("http://{}:{}/v1", ai.addr, layout.models_port);
    let expected = format!("GET {url}/models names {MODEL_ALIAS}");
    if ctx.simulated() {
        return vec![Check::skip(
            "ai.models",
            expected,
            "simulated host: no model server runs in a simulated jail",
        )];
    }
    let t0 = Instant::now();
    let check = match warden_core::models_probe::list_models(&url, Duration::from_secs(3)) {
        Ok(ids) if ids.iter().any(|m| m == MODEL_ALIAS) => Check::ok(
            "ai.models",
            expected,
            format!("{} in {} ms", ids.join(", "), t0.elapsed().as_millis()),
        ),
        Ok(ids) => Check::fail(
            "ai.models",
            expected,
            format!("the server lists {ids:?}"),
            "`warden setup --step ai` (re)starts the model server with the model",
        ),
        Err(e) => Check::fail(
            "ai.models",
            expected,
            e,
            format!(
                "`warden setup --step ai` starts the model server in {}",
                ai.jail
            ),
        ),
    };
    vec![check]
}
