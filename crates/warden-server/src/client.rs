//! A small HTTP client of the API, used by the CLI (`warden turn`, `warden run --remote`,
//! `warden turns list|show`) and by tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::request::TurnRequest;
use crate::view::TurnView;

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The token or the server file could not be read.
    #[error("failed to read {path}: {source}\n  fix: start `warden serve` (it creates the token) or run `warden init`")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The request did not get an HTTP answer.
    #[error(
        "failed to reach the control plane at {url}: {source}\n  fix: is `warden serve` running?"
    )]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("the control plane answered {status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The error code.
        code: String,
        /// The message.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("failed to decode the control plane's answer: {0}")]
    Decode(String),
}

/// The file `serve` writes with the addresses it listens on.
pub const SERVE_FILE: &str = "serve.json";

/// Reads the bearer token from `<state_dir>/token`.
pub fn token(state_dir: &Path) -> Result<String, ClientError> {
    let path = crate::auth::token_path(state_dir);
    let text = std::fs::read_to_string(&path).map_err(|source| ClientError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(text.trim().to_string())
}

/// Filters of `turns_list`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only this tenant.
    pub tenant: Option<String>,
    /// Only this status.
    pub status: Option<String>,
    /// At most this many (default 50).
    pub limit: Option<usize>,
}

/// A client of one control plane.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of `base_url` (e.g. `http://127.0.0.1:3100`) with a token.
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Client {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Local control plane: no proxy from the environment must intercept it.
            .no_proxy()
            .build()
            .unwrap_or_default();
        Client {
            base: base_url.into().trim_end_matches('/').to_string(),
            token: token.into(),
            http,
        }
    }

    /// A client of the server using `state_dir`: its token, and the first address in its
    /// `serve.json`, else `127.0.0.1:<port>`.
    pub fn from_state_dir(state_dir: &Path, port: u16) -> Result<Client, ClientError> {
        let token = token(state_dir)?;
        let addr = std::fs::read_to_string(state_dir.join(SERVE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| {
                v["listening"]
                    .get(0)
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| format!("127.0.0.1:{port}"));
        Ok(Client::new(format!("http://{addr}"), token))
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> Result<String, ClientError> {
        let url = format!("{}/metrics", self.base);
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: url.clone(),
                source,
            })?;
        resp.text()
            .await
            .map_err(|source| ClientError::Http { url, source })
    }

    /// The base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Http {
                url: url.to_string(),
                source,
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        if !status.is_success() {
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(ClientError::Api {
                status: status.as_u16(),
                code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or(&String::from_utf8_lossy(&body))
                    .to_string(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Submits a turn and waits for its result.
    pub async fn submit_wait(&self, req: &TurnRequest) -> Result<TurnView, ClientError> {
        let url = format!("{}/v1/turns?wait=true", self.base);
        self.send(self.http.post(&url).json(req), &url).await
    }

    /// Submits a turn without waiting: `(id, status)`.
    pub async fn submit(&self, req: &TurnRequest) -> Result<(String, String), ClientError> {
        let url = format!("{}/v1/turns", self.base);
        let v: Value = self.send(self.http.post(&url).json(req), &url).await?;
        match (v["id"].as_str(), v["status"].as_str()) {
            (Some(id), Some(status)) => Ok((id.to_string(), status.to_string())),
            _ => Err(ClientError::Decode(format!("no id/status in {v}"))),
        }
    }

    /// One agent turn for `tenant`; waits for the reply.
    pub async fn turn(&self, tenant: &str, prompt: &str) -> Result<TurnView, ClientError> {
        let req = TurnRequest {
            tenant: tenant.into(),
            prompt: Some(prompt.into()),
            ..TurnRequest::default()
        };
        self.submit_wait(&req).await
    }

    /// Runs `argv` in a worker for `tenant`; waits for the result.
    pub async fn run_remote(&self, tenant: &str, argv: &[String]) -> Result<TurnView, ClientError> {
        let req = TurnRequest {
            tenant: tenant.into(),
            argv: Some(argv.to_vec()),
            ..TurnRequest::default()
        };
        self.submit_wait(&req).await
    }

    /// Turns, newest first.
    pub async fn turns_list(&self, q: &ListQuery) -> Result<Vec<TurnView>, ClientError> {
        let url = format!("{}/v1/turns", self.base);
        let mut params: Vec<(&str, String)> = Vec::new();
        if let Some(t) = &q.tenant {
            params.push(("tenant", t.clone()));
        }
        if let Some(s) = &q.status {
            params.push(("status", s.clone()));
        }
        if let Some(l) = q.limit {
            params.push(("limit", l.to_string()));
        }
        let v: Value = self.send(self.http.get(&url).query(&params), &url).await?;
        serde_json::from_value(v["turns"].clone()).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// One turn.
    pub async fn turns_show(&self, id: &str) -> Result<TurnView, ClientError> {
        let url = format!("{}/v1/turns/{id}", self.base);
        self.send(self.http.get(&url), &url).await
    }

    /// Cancels a turn.
    pub async fn cancel(&self, id: &str) -> Result<Value, ClientError> {
        let url = format!("{}/v1/turns/{id}", self.base);
        self.send(self.http.delete(&url), &url).await
    }
}
