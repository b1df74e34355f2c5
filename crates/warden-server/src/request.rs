//! A turn request as clients send it (`POST /v1/turns`), and its validated form, [`TurnSpec`],
//! which is what the store keeps (so a re-queued turn after a restart runs exactly the same).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use warden_core::Layout;

use crate::error::ApiError;

/// Longest prompt accepted (bytes); a larger one is a client mistake (413).
pub const MAX_PROMPT_BYTES: usize = 256 * 1024;
/// Most argv elements accepted.
pub const MAX_ARGV: usize = 4096;
/// Most env variables accepted.
pub const MAX_ENV: usize = 256;
/// Smallest memory limit accepted (4 MiB): a worker's init needs at least that.
pub const MIN_MEMORY_BYTES: u64 = 4 << 20;
/// Longest wall-clock limit a request may ask for (one day).
pub const MAX_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

/// The body of `POST /v1/turns`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TurnRequest {
    /// Owning tenant; absent or empty: the platform itself (the layout's namespace, `system`).
    #[serde(default)]
    pub tenant: String,
    /// Program and arguments (an argv turn); exclusive with `prompt`.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// Agent prompt (an agent turn with pi); exclusive with `argv`.
    #[serde(default)]
    pub prompt: Option<String>,
    /// Limits; missing fields take the layout's defaults.
    #[serde(default)]
    pub limits: Option<LimitsRequest>,
    /// `none` (default for argv turns), `shared` or `vnet` (always for agent turns).
    #[serde(default)]
    pub network: Option<Network>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
}

/// Requested limits; sizes are a byte count or a string such as `512M`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsRequest {
    /// Memory limit.
    #[serde(default)]
    pub memory: Option<Size>,
    /// Process limit.
    #[serde(default, deserialize_with = "whole_opt")]
    pub pids: Option<u64>,
    /// Wall-clock limit in milliseconds.
    #[serde(default, deserialize_with = "whole_opt")]
    pub timeout_ms: Option<u64>,
    /// Cap on stdout + stderr bytes.
    #[serde(default)]
    pub output_bytes: Option<Size>,
}

/// A size: bytes, or text with a unit (`512M`, `2G`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Size {
    /// A byte count.
    Bytes(#[serde(deserialize_with = "whole")] u64),
    /// A size with a unit.
    Text(String),
}

/// A whole number as JSON may write it: `5` or `5.0` (JSON Schema, and so the OpenAPI document,
/// calls both an integer; serde alone would refuse the second).
#[derive(Deserialize)]
#[serde(untagged)]
enum WholeNumber {
    Int(u64),
    Float(f64),
}

fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    to_u64(WholeNumber::deserialize(d)?)
}

fn whole_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<WholeNumber>::deserialize(d)?
        .map(to_u64)
        .transpose()
}

fn to_u64<E: serde::de::Error>(n: WholeNumber) -> Result<u64, E> {
    match n {
        WholeNumber::Int(n) => Ok(n),
        // 2^64 as f64: anything below it converts exactly when it has no fraction.
        WholeNumber::Float(f)
            if f >= 0.0 && f.fract() == 0.0 && f < 18_446_744_073_709_551_616.0 =>
        {
            Ok(f as u64)
        }
        WholeNumber::Float(f) => Err(E::custom(format!(
            "{f} is not a whole number in 0..=18446744073709551615"
        ))),
    }
}

impl Size {
    fn bytes(&self, field: &str) -> Result<u64, ApiError> {
        match self {
            Size::Bytes(n) => Ok(*n),
            Size::Text(t) => warden_core::layout::parse_size(t)
                .map_err(|why| ApiError::bad_request(format!("limits.{field}: {t:?}: {why}"))),
        }
    }
}

/// A worker's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// Only loopback.
    None,
    /// warden's own network namespace.
    Shared,
    /// A leased address on the bridge, behind the NAT.
    Vnet,
}

/// What a turn runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// A program.
    Argv(Vec<String>),
    /// A pi prompt.
    Prompt(String),
}

/// Limits resolved against the layout's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub struct ResolvedLimits {
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Process limit.
    pub pids: u64,
    /// Wall-clock limit.
    pub timeout_ms: u64,
    /// Output cap.
    pub output_bytes: u64,
}

/// A validated turn: everything the runner needs, stored as the turn's request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct TurnSpec {
    /// Owning tenant.
    pub tenant: String,
    /// What to run.
    pub work: Work,
    /// Resolved limits.
    pub limits: ResolvedLimits,
    /// The worker's network.
    pub network: Network,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
}

impl TurnSpec {
    /// The store's kind for this turn.
    pub fn kind(&self) -> warden_store::TurnKind {
        match self.work {
            Work::Argv(_) => warden_store::TurnKind::Argv,
            Work::Prompt(_) => warden_store::TurnKind::Agent,
        }
    }
}

/// Whether `name` is a DNS label: `[a-z0-9-]`, 1..=63, no leading or trailing `-`.
pub fn is_dns_label(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Checks the tenant: the platform's own (the layout's namespace, `system`), one of the layout's
/// tenants, or — when the layout names none — any DNS label (a development host without tenants
/// configured still works; the label rule keeps the name safe as a path component under
/// `<state_dir>/tenants/`).
pub fn check_tenant(layout: &Layout, tenant: &str) -> Result<(), ApiError> {
    // The platform (the root install's shared state) is always a valid owner.
    let known = if tenant == layout.namespace {
        true
    } else if layout.tenants.is_empty() {
        is_dns_label(tenant)
    } else {
        layout.tenants.iter().any(|t| t.name == tenant)
    };
    if known {
        return Ok(());
    }
    let accepted = if layout.tenants.is_empty() {
        "a DNS label ([a-z0-9-], 1..=63 characters)".to_string()
    } else {
        layout.tenant_names()
    };
    Err(ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "unknown_tenant",
        format!("unknown tenant {tenant:?}; accepted: {accepted}"),
    ))
}

impl TurnRequest {
    /// Validates the request against the layout and resolves its defaults.
    pub fn validate(mut self, layout: &Layout) -> Result<TurnSpec, ApiError> {
        if self.tenant.is_empty() {
            self.tenant = layout.namespace.clone();
        }
        check_tenant(layout, &self.tenant)?;
        let work = match (self.argv, self.prompt) {
            (Some(_), Some(_)) => {
                return Err(ApiError::bad_request(
                    "give either argv or prompt, not both",
                ))
            }
            (None, None) => {
                return Err(ApiError::bad_request(
                    "give argv (a program) or prompt (an agent turn)",
                ))
            }
            (Some(argv), None) => {
                if argv.is_empty() || argv[0].is_empty() {
                    return Err(ApiError::bad_request(
                        "argv needs at least the program to run",
                    ));
                }
                if argv.len() > MAX_ARGV {
                    return Err(ApiError::bad_request(format!(
                        "argv has more than {MAX_ARGV} elements"
                    )));
                }
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err(ApiError::bad_request("argv contains a NUL byte"));
                }
                Work::Argv(argv)
            }
            (None, Some(prompt)) => {
                if prompt.len() > MAX_PROMPT_BYTES {
                    return Err(ApiError::new(
                        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                        "prompt_too_large",
                        format!(
                            "prompt is {} bytes; the limit is {MAX_PROMPT_BYTES}",
                            prompt.len()
                        ),
                    ));
                }
                if prompt.trim().is_empty() {
                    return Err(ApiError::bad_request("prompt is empty"));
                }
                Work::Prompt(prompt)
            }
        };
        let network = match (&work, self.network) {
            (Work::Prompt(_), None | Some(Network::Vnet)) => Network::Vnet,
            (Work::Prompt(_), Some(other)) => {
                return Err(ApiError::bad_request(format!(
                    "agent turns run on the vnet network (they reach the provider through the NAT), not {other:?}"
                )))
            }
            (Work::Argv(_), n) => n.unwrap_or(Network::None),
        };
        let d = layout.limits;
        let req = self.limits.unwrap_or_default();
        let limits = ResolvedLimits {
            memory_bytes: req
                .memory
                .as_ref()
                .map(|s| s.bytes("memory"))
                .transpose()?
                .unwrap_or(d.memory_bytes),
            pids: req.pids.unwrap_or(u64::from(d.pids)),
            timeout_ms: req.timeout_ms.unwrap_or(d.timeout.as_millis() as u64),
            output_bytes: req
                .output_bytes
                .as_ref()
                .map(|s| s.bytes("output_bytes"))
                .transpose()?
                .unwrap_or(d.output_bytes),
        };
        if limits.memory_bytes < MIN_MEMORY_BYTES {
            return Err(ApiError::bad_request("limits.memory must be at least 4M"));
        }
        if limits.pids == 0 {
            return Err(ApiError::bad_request("limits.pids must be at least 1"));
        }
        if limits.timeout_ms == 0 || limits.timeout_ms > MAX_TIMEOUT_MS {
            return Err(ApiError::bad_request(format!(
                "limits.timeout_ms must be 1..={MAX_TIMEOUT_MS}"
            )));
        }
        let env = self.env.unwrap_or_default();
        if env.len() > MAX_ENV {
            return Err(ApiError::bad_request(format!(
                "env has more than {MAX_ENV} variables"
            )));
        }
        for (k, v) in &env {
            let good = !k.is_empty()
                && !k.contains('=')
                && !k.contains('\0')
                && !v.contains('\0')
                && !k.starts_with("PI_");
            if !good {
                return Err(ApiError::bad_request(format!(
                    "env name {k:?} is not allowed (non-empty, no '=' or NUL, PI_* is reserved)"
                )));
            }
        }
        Ok(TurnSpec {
            tenant: self.tenant,
            work,
            limits,
            network,
            env,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(tenants: &[&str]) -> Layout {
        let env = |name: &str| match name {
            "TENANT_ID" if !tenants.is_empty() => Some(tenants.join(",")),
            _ => None,
        };
        let loaded = warden_core::load(None, &env, &Vec::new()).unwrap();
        Layout::from_loaded(&loaded).unwrap()
    }

    fn req(json: &str) -> TurnRequest {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn argv_defaults_come_from_the_layout() {
        let l = layout(&[]);
        let s = req(r#"{"tenant":"acme","argv":["true"]}"#)
            .validate(&l)
            .unwrap();
        assert_eq!(s.network, Network::None);
        assert_eq!(s.limits.memory_bytes, 512 << 20);
        assert_eq!(s.limits.timeout_ms, 300_000);
    }

    #[test]
    fn whole_numbers_may_be_written_with_a_zero_fraction() {
        let r = req(
            r#"{"tenant":"t","argv":["true"],"limits":{"pids":7.0,"timeout_ms":1000.0,"memory":8388608.0}}"#,
        );
        let l = r.limits.clone().unwrap();
        assert_eq!((l.pids, l.timeout_ms), (Some(7), Some(1000)));
        assert!(matches!(l.memory, Some(Size::Bytes(8388608))));
        // null is "not given", as clients serialising an empty Option send it.
        let r = req(r#"{"tenant":"t","argv":["true"],"limits":{"pids":null,"timeout_ms":null}}"#);
        let l = r.limits.unwrap();
        assert_eq!((l.pids, l.timeout_ms), (None, None));
        for bad in [
            r#"{"pids":1.5}"#,
            r#"{"pids":-1}"#,
            r#"{"pids":-1.0}"#,
            r#"{"pids":1e20}"#,
        ] {
            let body = format!(r#"{{"tenant":"t","argv":["true"],"limits":{bad}}}"#);
            assert!(serde_json::from_str::<TurnRequest>(&body).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_accept_sizes_as_text_or_bytes() {
        let l = layout(&[]);
        let s = req(r#"{"tenant":"a","argv":["x"],"limits":{"memory":"64M","output_bytes":100,"timeout_ms":5}}"#)
            .validate(&l)
            .unwrap();
        assert_eq!(s.limits.memory_bytes, 64 << 20);
        assert_eq!(s.limits.output_bytes, 100);
        assert_eq!(s.limits.timeout_ms, 5);
    }

    #[test]
    fn agent_turns_are_vnet() {
        let l = layout(&[]);
        let s = req(r#"{"tenant":"a","prompt":"hi"}"#).validate(&l).unwrap();
        assert_eq!(s.network, Network::Vnet);
        assert!(req(r#"{"tenant":"a","prompt":"hi","network":"none"}"#)
            .validate(&l)
            .is_err());
    }

    #[test]
    fn bad_requests() {
        let l = layout(&[]);
        for body in [
            r#"{"tenant":"a"}"#,
            r#"{"tenant":"a","argv":[]}"#,
            r#"{"tenant":"a","argv":["x"],"prompt":"y"}"#,
            r#"{"tenant":"a","argv":["x"],"limits":{"memory":"lots"}}"#,
            r#"{"tenant":"a","argv":["x"],"limits":{"timeout_ms":0}}"#,
            r#"{"tenant":"a","argv":["x"],"env":{"A=B":"c"}}"#,
            r#"{"tenant":"a","prompt":"  "}"#,
        ] {
            let e = req(body).validate(&l).unwrap_err();
            assert_eq!(e.status, 400, "{body}");
        }
        let e = req(r#"{"tenant":"../etc","argv":["x"]}"#)
            .validate(&l)
            .unwrap_err();
        assert_eq!(e.code, "unknown_tenant");
        let big = format!(
            r#"{{"tenant":"a","prompt":"{}"}}"#,
            "x".repeat(MAX_PROMPT_BYTES + 1)
        );
        assert_eq!(req(&big).validate(&l).unwrap_err().status, 413);
    }

    #[test]
    fn configured_tenants_restrict() {
        let l = layout(&["atlas"]);
        assert!(check_tenant(&l, "atlas").is_ok());
        assert_eq!(
            check_tenant(&l, "other").unwrap_err().code,
            "unknown_tenant"
        );
    }
}
