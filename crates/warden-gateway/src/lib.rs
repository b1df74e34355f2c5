//! warden-gateway: the model gateway, the only provider endpoint a worker can reach.
//!
//! A worker's pi talks OpenAI-compatible HTTP to `http://<gateway>:<gateway port>/v1` with a per-turn
//! capability token as its API key ([`Gateway::grant`]). The gateway maps the token to its turn and tenant,
//! refuses tenants over their token budget (429), rewrites the request for the upstream (content-part arrays
//! flattened to strings for servers whose chat template needs them, usage asked for in streams), injects the
//! provider key from the host's config and streams the answer back unchanged, counting the tokens the
//! provider reports into the store. The token is revoked when the turn ends, so it is worth nothing after it;
//! the provider key never leaves the host process.
#![forbid(unsafe_code)]

mod body;
mod proxy;

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use warden_store::Store;

pub use body::{flatten_content, rewrite_request, UsageScanner};
pub use proxy::router;

/// How the gateway reaches its upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The upstream's OpenAI-compatible base URL, including `/v1` (the ai jail, or a provider).
    pub upstream: String,
    /// The provider key sent upstream as `Authorization: Bearer …`; `None` sends no key.
    pub api_key: Option<String>,
    /// Flatten content-part arrays made only of text into plain strings (SmolLM2's template needs it).
    pub flatten_content: bool,
    /// Tokens (prompt + completion) one tenant may use in total; `None`: unlimited.
    pub tenant_token_budget: Option<u64>,
    /// Largest request body accepted from a worker (bytes).
    pub max_body_bytes: usize,
}

impl GatewayConfig {
    /// A config for `upstream` with no key, flattening on, no budget, 16 MiB bodies.
    pub fn new(upstream: impl Into<String>) -> Self {
        GatewayConfig {
            upstream: upstream.into(),
            api_key: None,
            flatten_content: true,
            tenant_token_budget: None,
            max_body_bytes: 16 << 20,
        }
    }
}

/// Whose turn a token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The turn id.
    pub turn: String,
    /// The tenant the turn runs for (`system` for the platform).
    pub tenant: String,
}

/// The gateway's shared state: its config, the live grants, the store usage goes to.
pub struct Gateway {
    config: GatewayConfig,
    grants: Mutex<HashMap<String, Slot>>,
    store: Arc<Store>,
    http: reqwest::Client,
}

/// Errors building the gateway.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The upstream URL is not an http:// URL.
    #[error("gateway upstream {0:?} must be an http:// URL ending in the API root (e.g. http://10.0.1.4:8080/v1); https upstreams are not supported yet")]
    Upstream(String),
    /// The HTTP client could not be built.
    #[error("failed to build the gateway's HTTP client: {0}")]
    Client(String),
    /// No randomness for a token.
    #[error("failed to read /dev/urandom for a turn token: {0}")]
    Random(std::io::Error),
}

impl Gateway {
    /// A gateway over `store` with `config`.
    pub fn new(config: GatewayConfig, store: Arc<Store>) -> Result<Arc<Gateway>, GatewayError> {
        if !config.upstream.starts_with("http://") {
            return Err(GatewayError::Upstream(config.upstream.clone()));
        }
        let http = reqwest::Client::builder()
            // Never follow a redirect with the provider key to somewhere else.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| GatewayError::Client(e.to_string()))?;
        Ok(Arc::new(Gateway {
            config,
            grants: Mutex::new(HashMap::new()),
            store,
            http,
        }))
    }

    /// The config it runs with.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Issues a capability token for one turn; it is revoked when the returned [`TurnToken`] drops.
    pub fn grant(self: &Arc<Self>, turn: &str, tenant: &str) -> Result<TurnToken, GatewayError> {
        let token = self.register(tenant, Some(turn))?;
        Ok(TurnToken {
            token,
            gateway: self.clone(),
        })
    }

    /// Mints a token for a warm agent of `tenant` at park time: refused (401) until [`ParkedToken::activate`]
    /// opens it for one turn, refused again when that turn ends, revoked when the [`ParkedToken`] drops. A
    /// parked agent therefore holds a key that is worth nothing between turns.
    pub fn mint(self: &Arc<Self>, tenant: &str) -> Result<ParkedToken, GatewayError> {
        let token = self.register(tenant, None)?;
        Ok(ParkedToken {
            token,
            gateway: self.clone(),
        })
    }

    fn register(&self, tenant: &str, turn: Option<&str>) -> Result<String, GatewayError> {
        let mut raw = [0u8; 24];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .map_err(GatewayError::Random)?;
        let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let token = format!("wt-{token}");
        self.lock().insert(
            token.clone(),
            Slot {
                tenant: tenant.to_string(),
                turn: turn.map(str::to_string),
            },
        );
        Ok(token)
    }

    /// The grant a token stands for, while it is live and open for a turn.
    pub fn lookup(&self, token: &str) -> Option<Grant> {
        let slots = self.lock();
        let slot = slots.get(token)?;
        Some(Grant {
            turn: slot.turn.clone()?,
            tenant: slot.tenant.clone(),
        })
    }

    /// Tokens open for a turn now (tests, metrics).
    pub fn live_grants(&self) -> usize {
        self.lock().values().filter(|s| s.turn.is_some()).count()
    }

    /// Tokens of warm agents that are not open for a turn now.
    pub fn parked_tokens(&self) -> usize {
        self.lock().values().filter(|s| s.turn.is_none()).count()
    }

    fn set_turn(&self, token: &str, turn: Option<&str>) {
        if let Some(slot) = self.lock().get_mut(token) {
            slot.turn = turn.map(str::to_string);
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding this lock leaves a valid map; keep serving.
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A registered token: its tenant, and the turn it is open for (`None`: parked, refused).
struct Slot {
    tenant: String,
    turn: Option<String>,
}

/// A warm agent's token ([`Gateway::mint`]); dropping it revokes the token.
pub struct ParkedToken {
    token: String,
    gateway: Arc<Gateway>,
}

impl ParkedToken {
    /// The token, as written into the warm agent's models.json.
    pub fn as_str(&self) -> &str {
        &self.token
    }

    /// Opens the token for `turn` until the returned guard drops (the turn's end).
    pub fn activate(&self, turn: &str) -> OpenTurn {
        self.gateway.set_turn(&self.token, Some(turn));
        OpenTurn {
            token: self.token.clone(),
            gateway: self.gateway.clone(),
        }
    }
}

impl std::fmt::Debug for ParkedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParkedToken(…)")
    }
}

impl Drop for ParkedToken {
    fn drop(&mut self) {
        self.gateway.lock().remove(&self.token);
    }
}

/// A parked token opened for one turn; dropping it closes the token again (it stays minted).
pub struct OpenTurn {
    token: String,
    gateway: Arc<Gateway>,
}

impl std::fmt::Debug for OpenTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenTurn(…)")
    }
}

impl Drop for OpenTurn {
    fn drop(&mut self) {
        self.gateway.set_turn(&self.token, None);
    }
}

/// A turn's capability token; dropping it revokes the token.
pub struct TurnToken {
    token: String,
    gateway: Arc<Gateway>,
}

impl TurnToken {
    /// The token, as written into the worker's models.json.
    pub fn as_str(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for TurnToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TurnToken(…)")
    }
}

impl Drop for TurnToken {
    fn drop(&mut self) {
        self.gateway.lock().remove(&self.token);
    }
}
